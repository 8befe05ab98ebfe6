"""A small HTTP/1.1 server on asyncio streams, so the APIs add nothing to install.

Clients are SDKs and Claude Code on the same machine: keep-alive, ``Content-Length`` (or
chunked) request bodies, JSON answers and server-sent events sent chunked. While a request
is answered the connection is watched: a client that goes away cancels its generation,
which frees the engine within one token.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import ipaddress
import json
import logging
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from codenook.api.convert import ApiError, invalid
from codenook.api.messages import count_tokens, create, error_body
from codenook.api.openai import chat, completions, models, openai_error
from codenook.api.service import Backend, Counters, Service

log = logging.getLogger(__name__)

MAX_BODY = 32 * 1024 * 1024
MAX_HEAD = 64 * 1024
WATCH_S = 0.05  # how often a request checks that its client is still there
PING_S = 10.0  # an event stream silent this long (a long prefill) gets a ping
REASONS = {
    200: "OK",
    400: "Bad Request",
    401: "Unauthorized",
    404: "Not Found",
    405: "Method Not Allowed",
    411: "Length Required",
    413: "Payload Too Large",
    500: "Internal Server Error",
    503: "Service Unavailable",
}


class Disconnected(Exception):
    """The client closed the connection while we were answering."""


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str]  # lower-case names
    body: bytes

    @property
    def anthropic(self) -> bool:
        """Whether errors and listings take Anthropic's shape rather than OpenAI's."""
        return self.path.startswith("/v1/messages") or "anthropic-version" in self.headers


async def read_request(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> Request | None:
    """The next request on the connection, or None when the client closed it."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError as exc:
        if exc.partial.strip():
            raise invalid("incomplete request head") from exc
        return None
    except asyncio.LimitOverrunError as exc:
        raise ApiError(413, "request_too_large", "request headers too large") from exc
    lines = head.decode("latin-1").split("\r\n")
    try:
        method, target, _version = lines[0].split(" ", 2)
    except ValueError as exc:
        raise invalid("malformed request line") from exc
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if ":" in line:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
    if headers.get("expect", "").lower() == "100-continue":
        writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
    if "chunked" in headers.get("transfer-encoding", "").lower():
        body = await _read_chunked(reader)
    else:
        try:
            length = int(headers.get("content-length", "0"))
        except ValueError as exc:
            raise invalid("malformed Content-Length") from exc
        if length > MAX_BODY:
            raise ApiError(413, "request_too_large", f"request body over {MAX_BODY} bytes")
        body = await reader.readexactly(length) if length > 0 else b""
    path = target.split("?", 1)[0].split("#", 1)[0]
    return Request(method.upper(), path, headers, body)


async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
    body = bytearray()
    while True:
        line = await reader.readuntil(b"\r\n")
        try:
            size = int(line.split(b";", 1)[0].strip(), 16)
        except ValueError as exc:
            raise invalid("malformed chunk size") from exc
        if size == 0:
            while (await reader.readuntil(b"\r\n")) != b"\r\n":  # trailers
                pass
            return bytes(body)
        if len(body) + size > MAX_BODY:
            raise ApiError(413, "request_too_large", f"request body over {MAX_BODY} bytes")
        body += await reader.readexactly(size)
        await reader.readexactly(2)


class Response:
    """One answer on a connection: a JSON body, or server-sent events in chunks."""

    def __init__(self, writer: asyncio.StreamWriter, request: Request, keep_alive: bool) -> None:
        self._writer = writer
        self.request = request
        self.keep_alive = keep_alive
        self.started = False  # the status line is out: errors now go into the stream
        self.streaming = False
        self.ended = False
        self.status = 0
        self.last_write = 0.0
        self.writing = False  # a write waits for the client: no ping may wait beside it

    async def _write(self, data: bytes) -> None:
        self.writing = True
        try:
            self._writer.write(data)
            await self._writer.drain()
        except (ConnectionError, RuntimeError) as exc:
            raise Disconnected() from exc
        finally:
            self.writing = False
        self.last_write = asyncio.get_running_loop().time()

    def _head(self, status: int, headers: Sequence[tuple[str, str]]) -> bytes:
        self.started, self.status = True, status
        lines = [f"HTTP/1.1 {status} {REASONS.get(status, 'Error')}"]
        lines += [f"{k}: {v}" for k, v in headers]
        lines.append(f"Connection: {'keep-alive' if self.keep_alive else 'close'}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")

    async def json(self, status: int, body: Any) -> None:
        data = json.dumps(body, ensure_ascii=False).encode("utf-8")
        headers = [("Content-Type", "application/json"), ("Content-Length", str(len(data)))]
        head = self._head(status, headers)
        self.ended = True
        await self._write(head + (data if self.request.method != "HEAD" else b""))

    async def empty(self, status: int) -> None:
        self.ended = True
        await self._write(self._head(status, [("Content-Length", "0")]))

    async def start_events(self) -> None:
        headers = [
            ("Content-Type", "text/event-stream; charset=utf-8"),
            ("Cache-Control", "no-cache"),
            ("Transfer-Encoding", "chunked"),
        ]
        self.streaming = True
        await self._write(self._head(200, headers))

    async def events(self, events: Sequence[tuple[str | None, Any]]) -> None:
        text = ""
        for name, body in events:
            data = body if isinstance(body, str) else json.dumps(body, ensure_ascii=False)
            text += (f"event: {name}\n" if name else "") + f"data: {data}\n\n"
        if text:
            data_bytes = text.encode("utf-8")
            await self._write(b"%x\r\n%s\r\n" % (len(data_bytes), data_bytes))

    async def end(self) -> None:
        if self.streaming and not self.ended:
            self.ended = True
            await self._write(b"0\r\n\r\n")


class ApiServer:
    """The running APIs: bound address, counters, and ``close``."""

    def __init__(self, service: Service, api_key: str | None) -> None:
        self.service = service
        self._key = api_key.encode() if api_key else None
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.Task[None]] = set()
        self.host = ""
        self.port = 0

    @property
    def counters(self) -> Counters:
        return self.service.counters

    @property
    def active(self) -> int:
        """Requests being answered now (the daemon stays up while there are any)."""
        return self.service.counters.active

    def stats(self) -> dict[str, int]:
        c = self.service.counters
        return {
            "requests": c.requests,
            "active": c.active,
            "cancelled": c.cancelled,
            "errors": c.errors,
        }

    async def _start(self, host: str, port: int) -> None:
        self._server = await asyncio.start_server(self._connection, host, port, limit=MAX_HEAD)
        sockname = self._server.sockets[0].getsockname()
        self.host, self.port = sockname[0], sockname[1]

    async def close(self) -> None:
        """Stop listening and end every connection (their generations are cancelled)."""
        if self._server is not None:
            self._server.close()
        for task in list(self._connections):
            task.cancel()
        await asyncio.gather(*self._connections, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()

    # -- connections ---------------------------------------------------------------------

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        try:
            while True:
                try:
                    request = await read_request(reader, writer)
                except ApiError as error:
                    bad = Request("POST", "/", {}, b"")
                    body = _error_body(bad, error)
                    with contextlib.suppress(Disconnected):
                        await Response(writer, bad, False).json(error.status, body)
                    self.counters.errors += 1
                    break
                except (asyncio.IncompleteReadError, ConnectionError):
                    break
                if request is None:
                    break
                keep_alive = request.headers.get("connection", "").lower() != "close"
                response = Response(writer, request, keep_alive)
                if not await self._answer(reader, request, response):
                    break
                if not response.keep_alive or not response.ended:
                    break
        except asyncio.CancelledError:
            pass
        finally:
            self._connections.discard(task)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _answer(
        self, reader: asyncio.StreamReader, request: Request, response: Response
    ) -> bool:
        """Answer one request while watching the client; False if the client went away."""
        counters = self.counters
        counters.requests += 1
        counters.active += 1
        handler = asyncio.ensure_future(self._handle(request, response))
        gone = False
        try:
            while not handler.done():
                await asyncio.wait({handler}, timeout=WATCH_S)
                if handler.done():
                    break
                if reader.at_eof() or reader.exception() is not None:
                    gone = True
                    handler.cancel()
                    await asyncio.gather(handler, return_exceptions=True)
                    break
                await self._ping(response)
            if not gone:
                gone = not handler.result()
        except asyncio.CancelledError:
            handler.cancel()
            await asyncio.gather(handler, return_exceptions=True)
            raise
        finally:
            counters.active -= 1
        if gone:
            counters.cancelled += 1
        return not gone

    async def _ping(self, response: Response) -> None:
        idle = asyncio.get_running_loop().time() - response.last_write
        live = response.streaming and not response.ended and not response.writing
        live = live and response.request.anthropic
        if live and idle > PING_S:
            with contextlib.suppress(Disconnected):
                await response.events([("ping", {"type": "ping"})])

    async def _handle(self, request: Request, response: Response) -> bool:
        """Route and answer; False if the client went away. Errors answer in the API's shape."""
        try:
            await self._route(request, response)
            return True
        except Disconnected:
            return False
        except ApiError as error:
            return await self._fail(request, response, error)
        except Exception as exc:
            log.exception("API request failed")
            internal = ApiError(500, "api_error", f"internal error: {type(exc).__name__}: {exc}")
            return await self._fail(request, response, internal)

    async def _fail(self, request: Request, response: Response, error: ApiError) -> bool:
        self.counters.errors += 1
        body = _error_body(request, error)
        try:
            if not response.started:
                await response.json(error.status, body)
            elif response.streaming and not response.ended:
                name = "error" if request.anthropic else None
                await response.events([(name, body)])
                await response.end()
                response.keep_alive = False
        except Disconnected:
            return False
        return True

    def _authorised(self, request: Request) -> bool:
        if self._key is None:
            return True
        given = request.headers.get("x-api-key", "")
        bearer = request.headers.get("authorization", "")
        if bearer[:7].lower() == "bearer ":
            given = given or bearer[7:].strip()
        return hmac.compare_digest(given.encode(), self._key)

    async def _route(self, request: Request, response: Response) -> None:
        method, path = request.method, request.path.rstrip("/") or "/"
        if path == "/" and method in ("GET", "HEAD"):
            await response.json(200, {"status": "ok", "service": "codenook"})
            return
        if not self._authorised(request):
            raise ApiError(401, "authentication_error", "invalid API key")
        service = self.service
        if path.startswith("/v1/models") and method in ("GET", "HEAD"):
            wanted = path[len("/v1/models/") :] or None if path != "/v1/models" else None
            await response.json(200, models(service, request.anthropic, wanted))
            return
        routes = {
            "/v1/messages": create,
            "/v1/messages/count_tokens": count_tokens,
            "/v1/chat/completions": chat,
            "/v1/completions": completions,
        }
        handler = routes.get(path)
        if handler is None:
            raise ApiError(404, "not_found_error", f"no such endpoint: {method} {request.path}")
        if method != "POST":
            raise ApiError(405, "invalid_request_error", f"{path} takes POST, not {method}")
        await handler(service, _json_body(request), response)


def _json_body(request: Request) -> dict[str, Any]:
    try:
        body = json.loads(request.body)
    except (ValueError, RecursionError) as exc:
        raise invalid(f"the request body is not valid JSON: {exc}") from exc
    if not isinstance(body, dict):
        raise invalid("the request body must be a JSON object")
    return body


def _error_body(request: Request, error: ApiError) -> dict[str, Any]:
    return error_body(error) if request.anthropic else openai_error(error)


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        try:
            infos = socket.getaddrinfo(host, None)
        except OSError:
            return False
        return bool(infos) and all(ipaddress.ip_address(i[4][0]).is_loopback for i in infos)


async def start_api(
    backend: Backend,
    host: str,
    port: int,
    *,
    api_key: str | None,
    allow_remote: bool,
    model_name: str | None = None,
    load_wait_s: float = 300.0,
) -> ApiServer:
    """Serve the Anthropic and OpenAI APIs for ``backend`` on ``host:port`` (0: any free port).

    Binding beyond loopback exposes the model (and whatever the client's tools do with its
    answers) to the network, so it takes ``allow_remote``; ``api_key`` then matters most.
    """
    if not allow_remote and not _is_loopback(host):
        raise ValueError(
            f"refusing to serve the API on {host!r}: it is not a loopback address"
            " (use 127.0.0.1, or allow remote access explicitly)"
        )
    server = ApiServer(Service(backend, model_name, load_wait_s), api_key)
    await server._start(host, port)
    return server
