"""A JSON-RPC client that speaks raw bytes: for feeding a language server what no real
client would send, and for reading exactly what it answers.

``RawClient.spawn(argv)`` runs a server over stdio, ``RawClient.connect(host, port)`` talks to
one over TCP. Replies are parsed from ``Content-Length`` framing on a reader thread, so a test
never blocks on a silent server: every wait has a timeout. Requests the server sends to the
client (``window/workDoneProgress/create``, ``workspace/configuration``…) are recorded and
answered with ``null`` unless ``answers`` says otherwise.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, BinaryIO

TESTS = Path(__file__).resolve().parent.parent
SERVE_FAKE = [sys.executable, str(TESTS / "serve_fake.py")]

Message = dict[str, Any]


class Timeout(AssertionError):
    """The server did not send what was waited for in time."""


def frame(body: bytes | str, header: str = "Content-Length") -> bytes:
    data = body.encode("utf-8") if isinstance(body, str) else body
    return f"{header}: {len(data)}\r\n\r\n".encode("ascii") + data


class RawClient:
    def __init__(
        self,
        reader: Callable[[int], bytes],
        writer: Callable[[bytes], None],
        closer: Callable[[], None],
        process: subprocess.Popen[bytes] | None = None,
        sock: socket.socket | None = None,
    ) -> None:
        self._read = reader
        self._write = writer
        self._close = closer
        self.process = process
        self.socket = sock
        self.messages: list[Message] = []  # everything the server sent, in order
        self.garbage: list[bytes] = []  # output that was not a framed JSON message
        self.answers: dict[str, Any] = {}  # method -> result for server-to-client requests
        self.auto_answer = True
        self.eof = threading.Event()
        self._lock = threading.Condition()
        self._ids = itertools.count(1)
        self._stderr: list[bytes] = []
        threading.Thread(target=self._reader, name="rawclient-reader", daemon=True).start()
        if process is not None and process.stderr is not None:
            threading.Thread(
                target=self._drain, args=(process.stderr,), name="rawclient-stderr", daemon=True
            ).start()

    # -- starting -------------------------------------------------------------------------------

    @classmethod
    def spawn(
        cls,
        argv: Sequence[str] = SERVE_FAKE,
        *,
        fake: dict[str, Any] | None = None,
        env: dict[str, str] | None = None,
        cwd: str | None = None,
    ) -> RawClient:
        """Run ``argv`` with stdin/stdout as the message stream (stderr is collected)."""
        full_env = {**os.environ, **(env or {})}
        if fake is not None:
            full_env["CODENOOK_FAKE"] = json.dumps(fake)
        process = subprocess.Popen(
            list(argv),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=full_env,
            cwd=cwd,
        )
        assert process.stdin is not None and process.stdout is not None
        stdin, stdout = process.stdin, process.stdout

        def write(data: bytes) -> None:
            stdin.write(data)
            stdin.flush()

        def close() -> None:
            with contextlib.suppress(OSError):
                stdin.close()

        return cls(lambda n: os.read(stdout.fileno(), n), write, close, process)

    @classmethod
    def connect(cls, host: str, port: int, timeout: float = 10.0) -> RawClient:
        sock = socket.create_connection((host, port), timeout=timeout)
        sock.settimeout(None)

        def read(n: int) -> bytes:
            try:
                return sock.recv(n)
            except OSError:
                return b""

        def close() -> None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_WR)

        return cls(read, sock.sendall, close, sock=sock)

    # -- sending --------------------------------------------------------------------------------

    def send_raw(self, data: bytes) -> None:
        """Write ``data`` as is: no framing, no encoding."""
        self._write(data)

    def send(self, message: Any) -> None:
        """Frame and send one JSON value (a message, a batch, anything)."""
        self.send_raw(frame(json.dumps(message)))

    def next_id(self) -> int:
        return next(self._ids)

    def send_request(self, method: str, params: Any = None, *, omit_params: bool = False) -> int:
        """Send a request without waiting; its id (for ``read_until``)."""
        msg_id = self.next_id()
        message: Message = {"jsonrpc": "2.0", "id": msg_id, "method": method}
        if not omit_params:
            message["params"] = params
        self.send(message)
        return msg_id

    def request(
        self, method: str, params: Any = None, *, timeout: float = 10.0, omit_params: bool = False
    ) -> Message:
        """Send a request and wait for its answer (the whole response message)."""
        msg_id = self.send_request(method, params, omit_params=omit_params)
        return self.read_until(msg_id, timeout)

    def notify(self, method: str, params: Any = None) -> None:
        self.send({"jsonrpc": "2.0", "method": method, "params": params})

    def close_input(self) -> None:
        """End the server's input (EOF on stdin, or half-close the socket)."""
        self._close()

    # -- receiving ------------------------------------------------------------------------------

    def read_until(self, msg_id: Any, timeout: float = 10.0) -> Message:
        """The response to ``msg_id`` (a result or an error), however long it is in coming."""
        return self.wait_for(
            lambda m: "method" not in m and m.get("id") == msg_id, timeout, f"answer to {msg_id!r}"
        )

    def responses(self, msg_id: Any) -> list[Message]:
        with self._lock:
            return [m for m in self.messages if "method" not in m and m.get("id") == msg_id]

    def from_server(self, method: str) -> list[Message]:
        """The requests and notifications the server sent with ``method``."""
        with self._lock:
            return [m for m in self.messages if m.get("method") == method]

    def wait_for(
        self, check: Callable[[Message], bool], timeout: float, what: str, start: int = 0
    ) -> Message:
        """The first message (from index ``start``) that passes ``check``."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while True:
                for message in self.messages[start:]:
                    if check(message):
                        return message
                left = deadline - time.monotonic()
                if left <= 0:
                    raise Timeout(f"no {what} within {timeout}s; got {self.messages[-5:]}")
                if self.eof.is_set():
                    raise Timeout(f"no {what}: the server closed its output; {self.stderr[-2000:]}")
                self._lock.wait(min(left, 0.05))

    def wait_exit(self, timeout: float = 10.0) -> int:
        """The server's exit status; Timeout if it is still running."""
        assert self.process is not None
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired as exc:
            raise Timeout(f"the server did not exit within {timeout}s") from exc

    @property
    def stderr(self) -> str:
        return b"".join(self._stderr).decode("utf-8", "replace")

    def wait_stderr(self, text: str, timeout: float = 5.0, start: int = 0) -> str:
        """Until the server's stderr (from character ``start``) holds ``text``; returns it."""
        deadline = time.monotonic() + timeout
        while text not in self.stderr[start:]:
            if time.monotonic() > deadline:
                raise Timeout(f"{text!r} not on stderr within {timeout}s:\n{self.stderr[-3000:]}")
            time.sleep(0.02)
        return self.stderr

    def kill(self) -> None:
        self._close()
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
        if self.socket is not None:
            self.socket.close()

    def __enter__(self) -> RawClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.kill()

    # -- the reader thread ------------------------------------------------------------------

    def _drain(self, stream: BinaryIO) -> None:
        while chunk := stream.read1(65536):  # type: ignore[attr-defined]
            self._stderr.append(chunk)

    def _reader(self) -> None:
        buffer = b""
        try:
            while True:
                while b"\r\n\r\n" not in buffer:
                    chunk = self._read(65536)
                    if not chunk:
                        if buffer:
                            self.garbage.append(buffer)
                        return
                    buffer += chunk
                head, _, buffer = buffer.partition(b"\r\n\r\n")
                length = None
                for line in head.split(b"\r\n"):
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value.strip())
                if length is None:
                    self.garbage.append(head)
                    continue
                while len(buffer) < length:
                    chunk = self._read(65536)
                    if not chunk:
                        self.garbage.append(buffer)
                        return
                    buffer += chunk
                body, buffer = buffer[:length], buffer[length:]
                try:
                    message = json.loads(body)
                except ValueError:
                    self.garbage.append(body)
                    continue
                self._received(message)
        finally:
            self.eof.set()
            with self._lock:
                self._lock.notify_all()

    def _received(self, message: Message) -> None:
        with self._lock:
            self.messages.append(message)
            self._lock.notify_all()
        if self.auto_answer and "method" in message and "id" in message:
            result = self.answers.get(message["method"])
            with contextlib.suppress(OSError):
                self.send({"jsonrpc": "2.0", "id": message["id"], "result": result})


# -- a session --------------------------------------------------------------------------------

CODE = "def area(r):\n    return 3.14 * r * r\n\n\nx = area(2)\n"
ROOT = TESTS / "workspace"


def initialize(
    client: RawClient,
    capabilities: dict[str, Any] | None = None,
    options: dict[str, Any] | None = None,
    *,
    ready: bool = True,
) -> Message:
    """initialize + initialized; with ``ready`` until the engine is idle."""
    init_options = {"completion": {"speculative": False}, "index": {"enabled": False}}
    init_options.update(options or {})
    reply = client.request(
        "initialize",
        {
            "processId": None,
            "rootUri": ROOT.as_uri(),
            "capabilities": capabilities if capabilities is not None else {},
            "initializationOptions": init_options,
        },
    )
    assert "result" in reply, reply
    client.notify("initialized", {})
    if ready:
        wait_state(client, "idle")
    return reply


def wait_state(client: RawClient, *states: str, timeout: float = 10.0) -> Message:
    deadline = time.monotonic() + timeout
    while True:
        stats = client.request("codenook/stats", {})["result"]
        if stats["state"] in states or time.monotonic() > deadline:
            assert stats["state"] in states, stats
            return stats
        time.sleep(0.05)


def open_document(client: RawClient, name: str, text: str = CODE, version: int = 1) -> str:
    uri = (ROOT / name).as_uri()
    client.notify(
        "textDocument/didOpen",
        {"textDocument": {"uri": uri, "languageId": "python", "version": version, "text": text}},
    )
    return uri


def inline_params(uri: str, line: int, character: int) -> dict[str, Any]:
    return {
        "textDocument": {"uri": uri},
        "position": {"line": line, "character": character},
        "context": {"triggerKind": 1},
    }


def complete(client: RawClient, uri: str, line: int = 4, character: int = 9) -> Message:
    return client.request("textDocument/inlineCompletion", inline_params(uri, line, character))


def shutdown_and_exit(client: RawClient, timeout: float = 10.0) -> int:
    reply = client.request("shutdown", omit_params=True)
    assert reply.get("result", "missing") is None, reply
    client.notify("exit")
    return client.wait_exit(timeout)
