"""A fake OpenAI-compatible model server for the remote backend's tests (standard library only).

The remote backend (``codenook.engine.remote``) must behave well against vLLM, SGLang,
llama-server and Ollama, and most of all when they misbehave: refuse a key, lose the model,
stall, cut a stream, send garbage. A real server cannot be told to do any of that on cue, so
this one is scripted per test instead. It runs ``http.server.ThreadingHTTPServer`` on a free
port in a background thread and:

- records every request (method, path, headers, JSON body, arrival time) in ``requests``,
  which is how tests check the exact bytes the backend sends;
- answers ``GET /v1/models``; ``GET /props`` only when given ``props`` (llama-server's
  endpoint; others answer 404); ``POST /tokenize`` only when given ``specials`` (a toy
  tokenizer, ``count_tokens``: each special string, line break and digit is one token,
  other text one token per 3 characters, so a test can predict every count exactly);
- streams ``POST /v1/completions`` as server-sent events (``data: {...}`` ... ``data:
  [DONE]``) from a ``Reply`` script, with HTTP/1.1 chunked framing like vLLM and
  llama-server (or close-delimited HTTP/1.0), and each way of failing a ``Reply`` can ask
  for: an error status (optionally only the first N times), a stall before the first byte or
  mid-stream, a stream cut without ``[DONE]``, a malformed chunk, an error object mid-stream;
- notices when the client hangs up while it waits between pieces (``hung_up`` holds the
  ``time.perf_counter()`` of each), which is how the cancellation test measures that a
  cancelled generation closes its stream at once rather than at the next piece.
"""

from __future__ import annotations

import contextlib
import json
import math
import re
import select
import socket
import ssl
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

# What a Qwen2.5/Qwen3-Coder tokenizer reads as one token each.
QWEN_SPECIALS = (
    "<|fim_prefix|>",
    "<|fim_suffix|>",
    "<|fim_middle|>",
    "<|fim_pad|>",
    "<|repo_name|>",
    "<|file_sep|>",
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
)
CHARS_PER_TOKEN = 3  # the toy tokenizer's rate on ordinary text


def count_tokens(text: str, specials: Sequence[str] = (), parse_special: bool = True) -> int:
    """Tokens of ``text`` by the toy tokenizer: a special string, a line break and a digit
    (as Qwen's tokenizer splits numbers) are one token each, other text one token per
    ``CHARS_PER_TOKEN`` characters (rounded up). Not proportional to the length, so an
    estimate from an average rate is far off on digit-heavy code: a client that really asks
    ``/tokenize`` can be told from one that estimates.

    Tests that build the in-process twin of a remote run count with this very function, so
    both sides cut their context windows at the same lines."""
    pieces = [text]
    if specials and parse_special:
        pattern = "|".join(re.escape(s) for s in sorted(specials, key=len, reverse=True))
        pieces = re.split(f"({pattern})", text)
    total = 0
    for i, piece in enumerate(pieces):
        if i % 2:
            total += 1  # a special
            continue
        for run in _RUNS.findall(piece):
            total += 1 if run == "\n" or run.isdigit() else math.ceil(len(run) / CHARS_PER_TOKEN)
    return total


_RUNS = re.compile(r"[0-9]|\n|[^0-9\n]+")


@dataclass
class Reply:
    """What ``POST /v1/completions`` answers; every field other than the first two is one
    way a real server has been seen to behave. Piece indexes count from 0: ``cut_after=2``
    sends two pieces, then hangs up."""

    pieces: Sequence[str] = ("Hello", " world")
    delay_s: float = 0.0  # silence before every piece but the first
    status: int = 200  # an error status answered instead of the stream...
    fail_first: int = 0  # ...only to the first N attempts when N > 0 (a 503 while loading)
    error: str = "scripted failure"  # the error's message, as OpenAI's {"error": {...}}
    stall_s: float = 0.0  # silence before the status line (nothing at all arrives)
    stall_after: int | None = None  # the stall comes after this many pieces instead
    cut_after: int | None = None  # hang up after this many pieces, without [DONE]
    malformed_after: int | None = None  # send ``data: {not json`` after this many pieces
    error_after: int | None = None  # send an error object after this many pieces
    finish_reason: str = "stop"
    usage: dict[str, Any] | None = None  # a last chunk with "usage" (include_usage)
    timings: dict[str, Any] | None = None  # llama-server's "timings", on the finishing chunk
    chunked: bool = True  # False: no framing, the body ends when the connection closes


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    body: Any  # the JSON body, None without one
    at: float  # time.perf_counter() when it arrived


@dataclass
class FakeOpenAI:
    """The server's script (change any field between requests) and what it saw."""

    models: Sequence[str] = ("qwen3-coder-30b",)
    owned_by: str = "fake"
    max_model_len: int | None = None  # vLLM lists each model's context length
    props: dict[str, Any] | None = None  # GET /props's answer (llama-server); None -> 404
    specials: Sequence[str] | None = None  # the toy tokenizer's specials; None -> no /tokenize
    api_key: str | None = None  # when set, requests without "Bearer KEY" get 401
    reply: Reply = field(default_factory=Reply)
    stalls: dict[str, float] = field(default_factory=dict)  # path -> silence before answering
    statuses: dict[str, int] = field(default_factory=dict)  # path -> error status to answer
    tls: tuple[str, str] | None = None  # (certificate, key) PEM files: serve https
    port: int = 0  # 0: any free port

    def __post_init__(self) -> None:
        self.requests: list[Recorded] = []
        self.hung_up: list[float] = []  # when a client closed a stream we were still sending
        self._attempts = 0
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # -- running --------------------------------------------------------------------------

    def start(self) -> FakeOpenAI:
        server = _Server(("127.0.0.1", self.port), _Handler)
        server.fake = self
        server.tls = None
        if self.tls is not None:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(*self.tls)
            server.tls = context
        self._server = server
        self.port = server.server_address[1]
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop listening and end every handler still waiting (a stalled stream)."""
        self._stopping.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> FakeOpenAI:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        scheme = "https" if self.tls else "http"
        return f"{scheme}://127.0.0.1:{self.port}/v1"

    # -- what it saw ------------------------------------------------------------------------

    def bodies(self, path: str) -> list[Any]:
        return [r.body for r in self.requests if r.path == path]

    @property
    def completions(self) -> list[dict[str, Any]]:
        """The JSON bodies of every ``POST /v1/completions``, in order."""
        return self.bodies("/v1/completions")

    @property
    def attempts(self) -> int:
        """Completion requests answered so far (error statuses included)."""
        return self._attempts

    def reset(self) -> None:
        with self._lock:
            self.requests.clear()
            self.hung_up.clear()
            self._attempts = 0

    def _record(self, request: Recorded) -> None:
        with self._lock:
            self.requests.append(request)

    def _next_attempt(self) -> int:
        with self._lock:
            self._attempts += 1
            return self._attempts


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    fake: FakeOpenAI
    tls: ssl.SSLContext | None

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that hangs up or refuses our certificate is what some tests are about,
        not a failure of the fake: say nothing."""


class _Hangup(Exception):
    """The client closed the connection while we were answering."""


class _Stopped(Exception):
    """The fake is shutting down: a handler still waiting gives up."""


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server
    _chunked = False  # the framing of the stream being sent

    def setup(self) -> None:
        if self.server.tls is not None:  # the handshake runs here, in the handler's thread
            self.request = self.server.tls.wrap_socket(self.request, server_side=True)
        super().setup()

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")

    # -- routing --------------------------------------------------------------------------

    def _serve(self, method: str) -> None:
        fake = self.server.fake
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = {"unparsable": raw.decode("utf-8", "replace")}
        path = self.path
        fake._record(Recorded(method, path, dict(self.headers), body, time.perf_counter()))
        try:
            if path in fake.stalls:
                self._quiet(fake.stalls[path])
            if fake.api_key and self.headers.get("Authorization") != f"Bearer {fake.api_key}":
                self._error(401, "Incorrect API key provided", "invalid_request_error")
            elif path in fake.statuses:
                self._error(fake.statuses[path], f"scripted {fake.statuses[path]} on {path}")
            elif (method, path) == ("GET", "/v1/models"):
                self._models()
            elif (method, path) == ("GET", "/props") and fake.props is not None:
                self._json(200, fake.props)
            elif (method, path) == ("POST", "/tokenize") and fake.specials is not None:
                self._tokenize(body)
            elif (method, path) == ("POST", "/v1/completions"):
                self._complete(body)
            else:
                self._error(404, f"Not Found: {method} {path}", "not_found_error")
        except _Hangup:
            fake.hung_up.append(time.perf_counter())
            self.close_connection = True
        except _Stopped:
            self.close_connection = True

    def _models(self) -> None:
        fake = self.server.fake
        data = []
        for name in fake.models:
            entry: dict[str, Any] = {"id": name, "object": "model", "owned_by": fake.owned_by}
            if fake.max_model_len is not None:
                entry["max_model_len"] = fake.max_model_len
            data.append(entry)
        self._json(200, {"object": "list", "data": data})

    def _tokenize(self, body: Any) -> None:
        fake = self.server.fake
        body = body if isinstance(body, dict) else {}
        text = body.get("content", body.get("prompt", ""))
        n = count_tokens(str(text), fake.specials or (), bool(body.get("parse_special", True)))
        self._json(200, {"tokens": list(range(1000, 1000 + n))})

    # -- the completion stream ---------------------------------------------------------------

    def _complete(self, body: Any) -> None:
        fake = self.server.fake
        reply = fake.reply
        attempt = fake._next_attempt()
        if reply.stall_s and reply.stall_after is None:
            self._quiet(reply.stall_s)
        if reply.status != 200 and (reply.fail_first == 0 or attempt <= reply.fail_first):
            kind = "invalid_request_error" if reply.status < 500 else "server_error"
            self._error(reply.status, reply.error, kind)
            return
        model = body.get("model") if isinstance(body, dict) else None
        self._chunked = reply.chunked
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        if reply.chunked:
            self.send_header("Transfer-Encoding", "chunked")
        else:  # no length, no chunks: the body ends when the connection closes
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        for i, piece in enumerate(reply.pieces):
            if i == reply.cut_after:
                self._hang_up()
                return
            if i == reply.malformed_after:
                self._send(b"data: {not json\n\n")
            if i == reply.error_after:
                error = {"error": {"message": reply.error, "type": "server_error", "code": 500}}
                self._event(error)
                self._send(b"data: [DONE]\n\n")
                self._end()
                return
            if i == reply.stall_after:
                self._quiet(reply.stall_s)
            if i > 0 and reply.delay_s:
                self._quiet(reply.delay_s)
            self._event(_chunk(model, piece, None))
        if reply.cut_after is not None and reply.cut_after >= len(reply.pieces):
            self._hang_up()
            return
        last = _chunk(model, "", reply.finish_reason)
        if reply.timings is not None:
            last["timings"] = reply.timings
        self._event(last)
        if reply.usage is not None:
            usage = _chunk(model, "", None)
            usage["choices"] = []
            usage["usage"] = reply.usage
            self._event(usage)
        self._send(b"data: [DONE]\n\n")
        self._end()

    def _event(self, payload: dict[str, Any]) -> None:
        self._send(b"data: " + json.dumps(payload).encode() + b"\n\n")

    def _send(self, data: bytes) -> None:
        """One piece of the body, framed as the reply says; a closed client is a _Hangup."""
        if self._chunked:
            data = f"{len(data):x}\r\n".encode() + data + b"\r\n"
        try:
            self.wfile.write(data)
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError) as exc:
            raise _Hangup from exc

    def _end(self) -> None:
        if self._chunked:
            with contextlib.suppress(OSError):
                self.wfile.write(b"0\r\n\r\n")
                self.wfile.flush()

    def _hang_up(self) -> None:
        """Close mid-answer: no [DONE], and with chunked framing no last chunk either."""
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)

    def _quiet(self, seconds: float) -> None:
        """Send nothing for ``seconds``; raise ``_Hangup`` as soon as the client hangs up
        meanwhile. A client sends nothing after its request, so a readable socket means the
        end of the connection. (Over TLS the silence is kept without watching.)"""
        fake = self.server.fake
        end = time.perf_counter() + seconds
        watch = not isinstance(self.connection, ssl.SSLSocket)
        while (left := end - time.perf_counter()) > 0:
            if fake._stopping.is_set():
                raise _Stopped
            step = min(left, 0.01)
            if not watch:
                time.sleep(step)
                continue
            readable, _, _ = select.select([self.connection], [], [], step)
            if readable:
                try:
                    peeked = self.connection.recv(1, socket.MSG_PEEK)
                except OSError:
                    peeked = b""
                if not peeked:
                    raise _Hangup
                time.sleep(step)  # unexpected bytes: keep the silence anyway

    # -- plain answers ------------------------------------------------------------------------

    def _json(self, status: int, payload: Any) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        with contextlib.suppress(OSError):
            self.wfile.write(data)

    def _error(self, status: int, message: str, kind: str = "server_error") -> None:
        self._json(status, {"error": {"message": message, "type": kind, "code": status}})


def _chunk(model: Any, text: str, finish: str | None) -> dict[str, Any]:
    return {
        "id": "cmpl-fake",
        "object": "text_completion",
        "created": 0,
        "model": model,
        "choices": [{"index": 0, "text": text, "logprobs": None, "finish_reason": finish}],
    }
