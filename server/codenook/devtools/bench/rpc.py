"""The benchmark's side of LSP: Content-Length framed JSON-RPC over a server's stdio pipes.

Hand-written on the standard library (no pygls here): what is measured is the server process,
so the client must add as little as possible, and it must see every message's arrival time.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
from collections.abc import Callable
from typing import IO, Any

from codenook.devtools.bench.errors import BenchError

# The server runs under this interpreter, so the benchmark measures the installed codenook.
SERVER_COMMAND = [sys.executable, "-m", "codenook", "serve"]
REQUEST_CANCELLED = -32800
# engine.mode for a whole process tree; it wins over the settings a server is sent, so the
# benchmark sets it for every server it starts (a user's own value must not leak in).
ENGINE_MODE_ENV = "CODENOOK_ENGINE_MODE"
RUNTIME_DIR_ENV = "CODENOOK_RUNTIME_DIR"


def server_env(mode: str = "inprocess", runtime_dir: str | None = None) -> dict[str, str]:
    """The environment of a server the benchmark starts: its engine mode always explicit
    (``inprocess`` unless the scenario measures the shared host), and the shared host's
    runtime directory when one is given."""
    env = {**os.environ, ENGINE_MODE_ENV: mode}
    if runtime_dir is not None:
        env[RUNTIME_DIR_ENV] = runtime_dir
    return env


class RpcError(Exception):
    """An error response: raised so that a failed call cannot pass for an empty result."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(f"{message} ({code})")
        self.code = code


class JsonRpcClient:
    """Content-Length framed JSON-RPC over a subprocess's pipes, as LSP clients speak it.

    Responses resolve futures with ``(arrival time, message)``; requests from the server get
    an empty answer (null, or one null per ``workspace/configuration`` item); notifications
    are kept for the report (``window/showMessage``) or dropped.
    """

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self._pending: dict[int, asyncio.Future[tuple[float, dict[str, Any]]]] = {}
        self._ids = 0
        self.messages: list[str] = []
        # Answers to server->client requests beyond the defaults (e.g. workspace/applyEdit).
        self.handlers: dict[str, Callable[[Any], Any]] = {}
        self._reader = asyncio.ensure_future(self._read_forever())

    async def _read_message(self) -> dict[str, Any] | None:
        stdout = self.process.stdout
        assert stdout is not None
        length = -1
        while True:
            line = await stdout.readline()
            if not line:
                return None
            line = line.strip()
            if not line:
                break
            name, _, value = line.decode("ascii", "replace").partition(":")
            if name.strip().lower() == "content-length":
                length = int(value)
        if length < 0:
            raise BenchError("the server sent a message without Content-Length")
        message: dict[str, Any] = json.loads(await stdout.readexactly(length))
        return message

    async def _read_forever(self) -> None:
        loop = asyncio.get_running_loop()
        error: BaseException = BenchError("the server closed its output")
        try:
            while (message := await self._read_message()) is not None:
                arrived = loop.time()
                if "method" not in message:
                    future = self._pending.pop(message.get("id"), None)  # type: ignore[arg-type]
                    if future is not None and not future.done():
                        future.set_result((arrived, message))
                elif "id" in message:
                    await self._answer_server_request(message)
                elif message["method"] == "window/showMessage":
                    self.messages.append(str((message.get("params") or {}).get("message")))
        except (asyncio.IncompleteReadError, ValueError, BenchError, OSError) as exc:
            error = exc
        for future in self._pending.values():
            if not future.done():
                future.set_exception(BenchError(f"the server stopped answering: {error}"))
        self._pending.clear()

    async def _answer_server_request(self, message: dict[str, Any]) -> None:
        result: Any = None
        handler = self.handlers.get(message["method"])
        if handler is not None:
            result = handler(message.get("params"))
            if asyncio.iscoroutine(result):
                result = await result
        elif message["method"] == "workspace/configuration":
            items = (message.get("params") or {}).get("items") or []
            result = [None] * len(items)
        await self._send({"jsonrpc": "2.0", "id": message["id"], "result": result})

    async def _send(self, message: dict[str, Any]) -> None:
        body = json.dumps(message, ensure_ascii=False).encode("utf-8")
        stdin = self.process.stdin
        assert stdin is not None
        stdin.write(b"Content-Length: %d\r\n\r\n" % len(body) + body)
        await stdin.drain()

    async def request(
        self, method: str, params: Any
    ) -> tuple[int, asyncio.Future[tuple[float, dict[str, Any]]]]:
        """Send a request; its id and the future of ``(arrival time, response)``."""
        self._ids += 1
        future: asyncio.Future[tuple[float, dict[str, Any]]] = (
            asyncio.get_running_loop().create_future()
        )
        self._pending[self._ids] = future
        if self._reader.done():
            future.set_exception(BenchError("the server is gone"))
        else:
            await self._send(
                {"jsonrpc": "2.0", "id": self._ids, "method": method, "params": params}
            )
        return self._ids, future

    async def call(self, method: str, params: Any, timeout: float = 30.0) -> Any:
        """A request whose result is awaited; raises RpcError for an error response."""
        _, future = await self.request(method, params)
        try:
            _, response = await asyncio.wait_for(future, timeout)
        except asyncio.TimeoutError as exc:
            raise BenchError(f"{method}: no answer within {timeout:.0f} s") from exc
        if "error" in response:
            error = response["error"]
            raise RpcError(int(error.get("code", 0)), str(error.get("message")))
        return response.get("result")

    async def notify(self, method: str, params: Any) -> None:
        await self._send({"jsonrpc": "2.0", "method": method, "params": params})

    async def close(self) -> None:
        self._reader.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await self._reader


async def start_server(log: IO[bytes], env: dict[str, str] | None = None) -> JsonRpcClient:
    """A fresh ``codenook serve`` and its client; stderr goes to ``log`` for error reports.
    ``env`` defaults to ``server_env()``: a model of the server's own, never the user's
    shared engine host (whose settings would not be the ones measured)."""
    process = await asyncio.create_subprocess_exec(
        *SERVER_COMMAND,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=log,
        env=server_env() if env is None else env,
    )
    return JsonRpcClient(process)
