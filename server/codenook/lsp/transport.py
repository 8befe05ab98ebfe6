"""The byte stream under the protocol: framing that survives garbage, stdio and TCP serving,
the TCP token, and an exit that never waits on a stuck thread.

pygls's reader matches ``Content-Length: N`` exactly, so a lower-case header (or any line it
does not expect) leaves it deaf for good. ``FrameReader`` reads header names
case-insensitively, accepts CRLF or LF, and on garbage says so on stderr and resynchronises on
the next ``Content-Length`` header. Bodies go to ``RpcProtocol.receive`` (``lsp/rpc``).

Over TCP the first message on a connection must be ``initialize`` carrying the token as
``initializationOptions.token``; one client is served, every other connection is closed with
a line on stderr.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import os
import re
import secrets
import sys
import threading
import time
import traceback
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from codenook.lsp.rpc import INVALID_REQUEST, say, usable_id

if TYPE_CHECKING:
    from codenook.lsp.server import CodenookServer

CHUNK = 65536
MAX_CONTENT_LENGTH = 256 * 1024 * 1024
MAX_FIRST_MESSAGE = 1024 * 1024  # before a TCP client has shown its token
MAX_HEADER_LINE = 8192
AUTH_TIMEOUT_S = 10.0
EXIT_BUDGET_S = 1.5  # from exit (or end of input) until the process is gone
_HEADER = re.compile(rb"([A-Za-z][A-Za-z0-9_-]*)[ \t]*:[ \t]*(.*?)[ \t]*")
_CONTENT_LENGTH = b"content-length"


class FrameReader:
    """Splits a byte stream into message bodies; ``complain`` hears about garbage once per
    run of it (until a message is framed again)."""

    def __init__(
        self, complain: Callable[[str], None], max_length: int = MAX_CONTENT_LENGTH
    ) -> None:
        self.complain = complain
        self.max_length = max_length
        self._buffer = bytearray()
        self._body: int | None = None  # bytes of body still to come
        self._length: int | None = None  # the Content-Length of the header block being read
        self._in_block = False
        self._bad_block = False
        self._in_garbage = False

    def feed(self, data: bytes) -> list[bytes]:
        """The bodies completed by ``data`` (the rest is kept for the next call)."""
        self._buffer += data
        bodies: list[bytes] = []
        while True:
            if self._body is not None:
                if len(self._buffer) < self._body:
                    break
                bodies.append(bytes(self._buffer[: self._body]))
                del self._buffer[: self._body]
                self._body = None
                continue
            end = self._buffer.find(b"\n")
            if end < 0:
                if len(self._buffer) > MAX_HEADER_LINE:
                    self._skip_long_line()
                break
            line = bytes(self._buffer[:end])
            del self._buffer[: end + 1]
            self._line(line[:-1] if line.endswith(b"\r") else line)
        return bodies

    def leftover(self) -> bool:
        """Whether the input ended inside a message."""
        return self._body is not None or bool(self._buffer.strip()) or self._in_block

    def _problem(self, message: str) -> None:
        if not self._in_garbage:
            self._in_garbage = True
            self.complain(f"{message}; skipping to the next Content-Length header")

    def _end_block(self) -> None:
        self._length, self._in_block, self._bad_block = None, False, False

    def _line(self, line: bytes) -> None:
        if not line.strip():
            if self._length is not None:
                self._body, self._in_garbage = self._length, False
            elif self._in_block and not self._bad_block:
                self._problem("a header block without Content-Length")
            self._end_block()
            return
        match = _HEADER.fullmatch(line)
        if match is None:
            start = line.lower().find(_CONTENT_LENGTH)
            self._problem(f"not an LSP header: {line[: start if start > 0 else 80][:80]!r}")
            self._end_block()
            if start > 0:  # a header glued to the garbage before it (a body without framing)
                self._line(line[start:])
            return
        self._in_block = True
        if match.group(1).lower() != _CONTENT_LENGTH:
            return  # Content-Type, or a header LSP does not define: nothing to do with it
        value = match.group(2)
        if value.isdigit() and len(value) <= 12 and int(value) <= self.max_length:
            self._length = int(value)
        else:
            self._problem(f"bad Content-Length {value[:40]!r} (0 to {self.max_length} bytes)")
            self._length, self._bad_block = None, True

    def _skip_long_line(self) -> None:
        """A 'header' longer than any real one: garbage; keep what may start a header."""
        start = self._buffer.lower().find(_CONTENT_LENGTH, 1)
        drop = start if start > 0 else len(self._buffer) - len(_CONTENT_LENGTH)
        self._problem(f"{drop} bytes without a line break: {bytes(self._buffer[:40])!r}…")
        self._end_block()
        del self._buffer[:drop]


class Writer:
    """pygls's writer for one connection: never raises; a lost connection ends the session."""

    def __init__(
        self, write: Callable[[bytes], Any], close: Callable[[], Any], lost: Callable[[], None]
    ) -> None:
        self._write = write
        self._close = close
        self._lost = lost
        self.closed = False

    def write(self, data: bytes) -> None:
        if self.closed:
            return
        try:
            self._write(data)
        except (OSError, ValueError):
            self.closed = True
            self._lost()

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            with contextlib.suppress(OSError, ValueError, RuntimeError):
                self._close()


def _write_all(stream: BinaryIO) -> Callable[[bytes], None]:
    def write(data: bytes) -> None:
        view = memoryview(data)
        while view:
            view = view[stream.write(view) or 0 :]
        stream.flush()

    return write


class Session:
    """One client's messages through the protocol, from the first byte to exit."""

    def __init__(
        self,
        server: CodenookServer,
        frames: FrameReader,
        write: Callable[[bytes], Any],
        close: Callable[[], Any],
    ) -> None:
        self.server = server
        self.protocol = server.protocol
        self.frames = frames
        self._ended = asyncio.Event()
        self.protocol.on_exit = lambda code: self._ended.set()
        self._writer = Writer(write, close, self._ended.set)
        self.protocol.set_writer(self._writer)

    def receive(self, bodies: list[bytes]) -> None:
        for body in bodies:
            if self._ended.is_set():
                return
            try:
                self.protocol.receive(body)
            except Exception as exc:  # a bug must cost one message, not the session
                trace = "".join(traceback.format_exception(exc))
                say(f"internal error handling a message: {exc}\n{trace}")

    async def run(self, read: Callable[[], Awaitable[bytes]]) -> int:
        """Until exit, the end of input or a lost connection; then wind down."""
        ended = asyncio.ensure_future(self._ended.wait())
        try:
            while not self._ended.is_set():
                reading = asyncio.ensure_future(read())
                await asyncio.wait({reading, ended}, return_when=asyncio.FIRST_COMPLETED)
                if not reading.done():
                    reading.cancel()
                    break
                chunk = reading.result()
                if not chunk:
                    if self.frames.leftover():
                        say("the input ended inside a message")
                    break
                self.receive(self.frames.feed(chunk))
        finally:
            ended.cancel()
        return await self.wind_down()

    async def wind_down(self) -> int:
        """Cancel what is in flight (answered while the connection lasts), stop the engine
        without waiting for it, give handlers a moment to answer, close the connection."""
        code = self.protocol.end_of_input()
        handlers = self.protocol.handler_tasks()
        self.protocol.cancel_requests()
        self.server.app.stop(timeout=0)
        if handlers:
            await asyncio.wait(handlers, timeout=0.5)
        self._writer.close()
        return code


# -- stdio -----------------------------------------------------------------------------------------


def _raw_reader(stream: BinaryIO) -> Callable[[int], bytes]:
    """Reads on the file descriptor itself: a thread blocked in a buffered reader holds its
    lock, and the interpreter aborts at exit when it cannot take that lock to close stdin."""
    try:
        fd = stream.fileno()
    except (AttributeError, OSError, ValueError):
        return getattr(stream, "read1", stream.read)
    return lambda size: os.read(fd, size)


async def serve_io(server: CodenookServer, stdin: BinaryIO, stdout: BinaryIO) -> int:
    """Serve one client over stdin/stdout; the exit status (0 after shutdown + exit)."""
    loop = asyncio.get_running_loop()
    chunks: asyncio.Queue[bytes] = asyncio.Queue()
    read = _raw_reader(stdin)

    def pump() -> None:
        # A daemon thread: blocked in read() at exit, it never holds the process.
        while True:
            try:
                chunk = read(CHUNK)
            except (OSError, ValueError):
                chunk = b""
            try:
                loop.call_soon_threadsafe(chunks.put_nowait, chunk)
            except RuntimeError:  # the loop has closed
                return
            if not chunk:
                return

    threading.Thread(target=pump, name="codenook-stdin", daemon=True).start()
    session = Session(server, FrameReader(say), _write_all(stdout), stdout.close)
    return await session.run(chunks.get)


# -- TCP -------------------------------------------------------------------------------------------


def tcp_token(token_file: str | None, env: str | None) -> tuple[str, str]:
    """The token and how the startup line names it: from ``token_file`` (read, or created
    0600 with a new token), from ``env`` (``CODENOOK_TOKEN``), or new and shown on stderr."""
    if token_file:
        path = Path(token_file).expanduser()
        if path.exists():
            token = path.read_text(encoding="utf-8").strip()
            if not token:
                raise ValueError(f"token file {path} is empty")
            if path.stat().st_mode & 0o077:
                say(f"warning: token file {path} is readable by others (chmod 600 it)")
        else:
            token = secrets.token_urlsafe(32)
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                out.write(token + "\n")
        return token, f"the token is in {path}"
    if env and env.strip():
        return env.strip(), "the token is CODENOOK_TOKEN's"
    token = secrets.token_urlsafe(32)
    return token, f"token {token}"


def _token_ok(data: Any, token: str) -> bool:
    if not isinstance(data, dict) or data.get("method") != "initialize":
        return False
    params = data.get("params")
    options = params.get("initializationOptions") if isinstance(params, dict) else None
    given = options.get("token") if isinstance(options, dict) else None
    if not isinstance(given, str):
        return False
    return hmac.compare_digest(given.encode("utf-8"), token.encode("utf-8"))


def _without_token(data: dict[str, Any]) -> bytes:
    """The initialize message as the protocol sees it: the token is not a setting."""
    options = data["params"]["initializationOptions"]
    data["params"]["initializationOptions"] = {k: v for k, v in options.items() if k != "token"}
    return json.dumps(data).encode("utf-8")


async def serve_tcp(server: CodenookServer, host: str, port: int, token: str, announce: str) -> int:
    """Serve the first connection that shows ``token``; refuse every other one."""
    finished: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    owner: list[Any] = []
    waiting: set[asyncio.StreamWriter] = set()  # connections that have not shown the token

    async def refuse(writer: asyncio.StreamWriter, peer: Any, why: str) -> None:
        say(f"refused a connection from {peer}: {why}")
        writer.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(writer.wait_closed(), 1.0)

    async def first_message(reader: asyncio.StreamReader) -> tuple[Any, list[bytes], FrameReader]:
        garbage: list[str] = []
        frames = FrameReader(garbage.append, MAX_FIRST_MESSAGE)
        while True:
            chunk = await reader.read(CHUNK)
            if not chunk:
                raise ConnectionError("closed before initialize")
            bodies = frames.feed(chunk)
            if garbage:
                raise ConnectionError(f"not LSP ({garbage[0]})")
            if bodies:
                try:
                    data = json.loads(bodies[0])
                except (ValueError, RecursionError):
                    data = None
                return data, bodies[1:], frames

    async def connected(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")
        if owner or finished.done():
            await refuse(writer, peer, "a client is connected already (one per server)")
            return
        waiting.add(writer)
        try:
            data, rest, frames = await asyncio.wait_for(first_message(reader), AUTH_TIMEOUT_S)
        except (TimeoutError, asyncio.TimeoutError):
            await refuse(writer, peer, f"no initialize within {AUTH_TIMEOUT_S:.0f} s")
            return
        except (ConnectionError, OSError) as exc:
            await refuse(writer, peer, str(exc))
            return
        finally:
            waiting.discard(writer)
        if owner or finished.done():
            await refuse(writer, peer, "a client is connected already (one per server)")
            return
        if not _token_ok(data, token):
            msg_id = data.get("id") if isinstance(data, dict) else None
            if isinstance(data, dict) and data.get("method") == "initialize" and usable_id(msg_id):
                message = "codenook: wrong or missing token (initializationOptions.token)"
                error = {"code": INVALID_REQUEST, "message": message}
                body = json.dumps({"jsonrpc": "2.0", "id": msg_id, "error": error}).encode()
                writer.write(b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
            await refuse(writer, peer, "the first message was not initialize with the token")
            return
        owner.append(peer)
        say(f"client connected from {peer}")
        frames.max_length, frames.complain = MAX_CONTENT_LENGTH, say

        def write(data: bytes) -> None:
            if not writer.is_closing():
                writer.write(data)

        session = Session(server, frames, write, writer.close)
        session.receive([_without_token(data), *rest])
        code = await session.run(lambda: reader.read(CHUNK))
        if not finished.done():
            finished.set_result(code)

    listener = await asyncio.start_server(connected, host, port)
    bound = listener.sockets[0].getsockname()
    say(f"listening on {bound[0]}:{bound[1]}; {announce} (send it as initializationOptions.token)")
    try:
        return await finished
    finally:
        listener.close()  # not wait_closed: it would wait for connections still unauthenticated
        for writer in waiting:
            writer.close()


# -- leaving ---------------------------------------------------------------------------------------


def leave(code: int, since: float) -> int:
    """Return ``code`` once the threads that would hold the interpreter open have ended;
    past the exit budget (from ``since``), name them and end the process anyway."""
    deadline = since + EXIT_BUDGET_S
    for thread in threading.enumerate():
        if thread is threading.current_thread() or thread.daemon:
            continue
        thread.join(max(0.0, deadline - time.monotonic()))
    stuck = [
        t.name
        for t in threading.enumerate()
        if t is not threading.current_thread() and not t.daemon and t.is_alive()
    ]
    if stuck:
        say(f"exiting with threads still running: {', '.join(stuck)}")
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    return code
