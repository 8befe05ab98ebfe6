"""The two things a trace is replayed into: ``codenook serve`` over LSP, and llama.cpp's
``llama-server`` over HTTP as the peer to compare with.

Both satisfy ``replay.Target``, so the replay loop and the report cannot tell them apart and
the comparison is of the servers alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from codenook.devtools.bench.errors import BenchError
from codenook.devtools.bench.replay import DRAIN_TIMEOUT_S, RequestRecord
from codenook.devtools.bench.rpc import REQUEST_CANCELLED, JsonRpcClient, RpcError, start_server
from codenook.devtools.bench.trace import Buffer, Edit, Trace
from codenook.settings import Settings

READY_TIMEOUT_S = 300.0  # a large model on a slow disk takes minutes to load


class CodenookTarget:
    """A ``codenook serve`` subprocess driven like an editor drives it."""

    def __init__(
        self,
        settings: dict[str, Any],
        trace: Trace,
        root: Path,
        env: dict[str, str] | None = None,
    ) -> None:
        self.settings = settings
        self.trace = trace
        self.root = root
        self.env = env  # None: rpc.server_env(), an in-process model
        self.uri = (root / trace.uri_path).as_uri()
        self.process: asyncio.subprocess.Process | None = None
        self.rpc: JsonRpcClient | None = None
        self.log = tempfile.TemporaryFile()  # noqa: SIM115 - closed by run.py's run_*_mode
        self.load_ms = 0.0
        self._futures: dict[int, tuple[int, asyncio.Future[tuple[float, dict[str, Any]]]]] = {}

    async def start(self) -> dict[str, Any]:
        """Start the server, open the document, wait for the model; the first stats."""
        loop = asyncio.get_running_loop()
        self.rpc = await start_server(self.log, self.env)
        self.process = self.rpc.process
        root_uri = self.root.as_uri()
        await self.rpc.call(
            "initialize",
            {
                "processId": os.getpid(),
                "clientInfo": {"name": "codenook-bench"},
                "rootUri": root_uri,
                "workspaceFolders": [{"uri": root_uri, "name": self.root.name}],
                "initializationOptions": self.settings,
                "capabilities": {
                    "general": {"positionEncodings": ["utf-16"]},
                    "textDocument": {
                        "synchronization": {"dynamicRegistration": False},
                        "inlineCompletion": {"dynamicRegistration": False},
                    },
                    "workspace": {"configuration": True, "workspaceFolders": True},
                    "window": {"workDoneProgress": True, "showMessage": {}},
                },
            },
            timeout=60,
        )
        started = loop.time()
        await self.rpc.notify("initialized", {})
        await self._open()
        deadline = started + READY_TIMEOUT_S
        while True:
            stats = await self.stats()
            if stats.get("state") == "idle":
                self.load_ms = (loop.time() - started) * 1000
                return stats
            if stats.get("state") == "failed":
                raise BenchError(f"the model did not load: {stats.get('error')}")
            if loop.time() > deadline:
                raise BenchError(f"the engine was not ready after {READY_TIMEOUT_S:.0f} s: {stats}")
            await asyncio.sleep(0.05)

    async def open_in(self, other: CodenookTarget) -> None:
        """Replay into ``other``'s running server (the same window) with this target's own
        document: only ``didOpen`` is sent; ``other`` stops the server."""
        self.rpc, self.process = other.rpc, other.process
        await self._open()

    async def _open(self) -> None:
        assert self.rpc is not None
        await self.rpc.notify(
            "textDocument/didOpen",
            {
                "textDocument": {
                    "uri": self.uri,
                    "languageId": self.trace.language_id,
                    "version": 1,
                    "text": self.trace.initial_text,
                }
            },
        )

    async def stats(self) -> dict[str, Any]:
        assert self.rpc is not None
        result = await self.rpc.call("codenook/stats", {})
        return result if isinstance(result, dict) else {}

    async def change(self, version: int, edit: Edit) -> None:
        assert self.rpc is not None
        await self.rpc.notify(
            "textDocument/didChange",
            {
                "textDocument": {"uri": self.uri, "version": version},
                "contentChanges": [
                    {
                        "range": {
                            "start": {"line": edit.start[0], "character": edit.start[1]},
                            "end": {"line": edit.end[0], "character": edit.end[1]},
                        },
                        "text": edit.text,
                    }
                ],
            },
        )

    async def complete(self, record: RequestRecord, buffer: Buffer) -> None:
        assert self.rpc is not None
        line, character = buffer.position()
        self._futures[id(record)] = await self.rpc.request(
            "textDocument/inlineCompletion",
            {
                "textDocument": {"uri": self.uri},
                "position": {"line": line, "character": character},
                "context": {"triggerKind": 2},  # Automatic: the editor asked, not the user
            },
        )

    async def cancel(self, record: RequestRecord) -> None:
        assert self.rpc is not None
        msg_id, _ = self._futures[id(record)]
        await self.rpc.notify("$/cancelRequest", {"id": msg_id})

    async def wait(self, record: RequestRecord) -> None:
        _, future = self._futures[id(record)]
        try:
            arrived, response = await future
        except BenchError as exc:
            record.outcome, record.error = "error", str(exc)
            return
        if "error" in response:
            code = int(response["error"].get("code", 0))
            record.outcome = "cancelled" if code == REQUEST_CANCELLED else "error"
            record.error = None if code == REQUEST_CANCELLED else str(response["error"])
            return
        record.answered_at = arrived
        record.outcome = "late" if record.cancel_sent else "answered"
        record.suggestion = _first_item(response.get("result"))
        if record.outcome == "answered":
            await self._engine_facts(record)

    async def _engine_facts(self, record: RequestRecord) -> None:
        """What the engine did for this request, when ``lastCompletion`` is still its own."""
        with contextlib.suppress(BenchError, RpcError):
            last = (await self.stats()).get("lastCompletion") or {}
            if last.get("uri") == self.uri and last.get("version") == record.version:
                keys = ("prompt_tokens", "cached_tokens", "prefilled_tokens", "generated_tokens")
                times = ("queued_ms", "prefill_ms", "decode_ms", "total_ms")
                facts = {k: float(last.get(k) or 0) for k in (*keys, *times)}
                # The first token comes out of reading the prompt; each later one is a decode.
                facts["decoded_tokens"] = max(0.0, facts["generated_tokens"] - 1)
                record.engine = facts

    async def stop(self) -> None:
        if self.rpc is not None:
            with contextlib.suppress(BenchError, RpcError):
                await self.rpc.call("shutdown", None, timeout=15)
                await self.rpc.notify("exit", None)
        if self.process is not None:
            try:
                await asyncio.wait_for(self.process.wait(), 15)
            except asyncio.TimeoutError:
                self.process.kill()
                await self.process.wait()
        if self.rpc is not None:
            await self.rpc.close()

    def log_tail(self, lines: int = 15) -> str:
        self.log.seek(0)
        text = self.log.read().decode("utf-8", "replace")
        return "\n".join(text.splitlines()[-lines:])


def _first_item(result: Any) -> str | None:
    items = result.get("items") if isinstance(result, dict) else result
    if not isinstance(items, list) or not items:
        return ""
    text = items[0].get("insertText") if isinstance(items[0], dict) else None
    if isinstance(text, dict):  # a StringValue snippet
        text = text.get("value")
    return text if isinstance(text, str) else ""


# -- llama-server over HTTP (the peer) ---------------------------------------------------------


class LlamaServerTarget:
    """llama.cpp's ``llama-server`` fed the same trace through ``/infill``.

    The document stays on this side; every request sends the whole text before and after the
    cursor, with ``cache_prompt`` so the server reuses what it can (and ``--cache-reuse 256``
    lets it shift matching chunks). A request is cancelled by closing its connection.
    """

    def __init__(self, binary: str, model: Path, settings: Settings) -> None:
        self.binary = binary
        self.model = model
        self.context = settings.model.contextSize
        self.threads = settings.model.threads
        self.max_tokens = settings.completion.maxTokens
        self.port = _free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self.log = tempfile.TemporaryFile()  # noqa: SIM115 - closed by run.py's run_*_mode
        self.load_ms = 0.0
        self._connections: dict[int, http.client.HTTPConnection] = {}
        self._bodies: dict[int, bytes] = {}

    async def start(self) -> None:
        command = [self.binary, "-m", str(self.model), "--host", "127.0.0.1"]
        command += ["--port", str(self.port), "--cache-reuse", "256", "-c", str(self.context)]
        if self.threads:
            command += ["-t", str(self.threads)]
        started = time.monotonic()
        self.process = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=self.log, stderr=subprocess.STDOUT
        )
        while time.monotonic() - started < READY_TIMEOUT_S:
            if self.process.poll() is not None:
                raise BenchError(f"llama-server exited with {self.process.returncode}")
            if await asyncio.to_thread(self._healthy):
                self.load_ms = (time.monotonic() - started) * 1000
                return
            await asyncio.sleep(0.2)
        raise BenchError(f"llama-server was not ready after {READY_TIMEOUT_S:.0f} s")

    def _healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/health", timeout=2) as r:
                return bool(r.status == 200)
        except (urllib.error.URLError, OSError):
            return False

    async def change(self, version: int, edit: Edit) -> None:
        return None  # the document lives here; each request carries it

    async def complete(self, record: RequestRecord, buffer: Buffer) -> None:
        body = {
            "input_prefix": buffer.prefix(),
            "input_suffix": buffer.suffix(),
            "input_extra": [],
            "prompt": "",
            "n_predict": self.max_tokens,
            "cache_prompt": True,
            "temperature": 0,
            "samplers": ["top_k"],
            "top_k": 1,
            "stream": False,
        }
        self._bodies[id(record)] = json.dumps(body).encode("utf-8")
        self._connections[id(record)] = http.client.HTTPConnection(
            "127.0.0.1", self.port, timeout=DRAIN_TIMEOUT_S
        )

    async def cancel(self, record: RequestRecord) -> None:
        sock = self._connections[id(record)].sock
        if sock is not None:  # llama-server stops a task whose client went away
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    async def wait(self, record: RequestRecord) -> None:
        connection = self._connections[id(record)]
        loop = asyncio.get_running_loop()
        try:
            status, payload = await asyncio.to_thread(
                _post, connection, "/infill", self._bodies.pop(id(record))
            )
        except (OSError, http.client.HTTPException, ValueError) as exc:
            record.outcome = "cancelled" if record.cancel_sent else "error"
            record.error = None if record.cancel_sent else f"{type(exc).__name__}: {exc}"
            return
        finally:
            connection.close()
        arrived = loop.time()
        if status != 200 or not isinstance(payload, dict):
            record.outcome, record.error = "error", f"HTTP {status}: {payload}"[:300]
            return
        record.answered_at = arrived
        record.outcome = "late" if record.cancel_sent else "answered"
        record.suggestion = str(payload.get("content", ""))
        timings = payload.get("timings") or {}
        prompt = float(payload.get("tokens_evaluated") or 0)
        prefilled = float(timings.get("prompt_n") or 0)
        cached = timings.get("cache_n")
        record.engine = {
            "prompt_tokens": prompt,
            "cached_tokens": float(cached if cached is not None else max(0.0, prompt - prefilled)),
            "prefilled_tokens": prefilled,
            "generated_tokens": float(timings.get("predicted_n") or 0),
            "decoded_tokens": float(timings.get("predicted_n") or 0),  # as its tokens/s counts
            "decode_ms": float(timings.get("predicted_ms") or 0),
            "prefill_ms": float(timings.get("prompt_ms") or 0),
        }

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def log_tail(self, lines: int = 15) -> str:
        self.log.seek(0)
        return "\n".join(self.log.read().decode("utf-8", "replace").splitlines()[-lines:])


def _post(connection: http.client.HTTPConnection, path: str, body: bytes) -> tuple[int, Any]:
    connection.request("POST", path, body, {"Content-Type": "application/json"})
    response = connection.getresponse()
    data = response.read()
    try:
        return response.status, json.loads(data)
    except ValueError:
        return response.status, data.decode("utf-8", "replace")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def find_llama_server(given: str) -> str | None:
    """The executable at ``given`` (a path or a name on PATH), or None."""
    if os.sep in given or Path(given).exists():
        return given if os.access(given, os.X_OK) and Path(given).is_file() else None
    return shutil.which(given)
