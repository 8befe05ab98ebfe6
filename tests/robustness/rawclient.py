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
import dataclasses
import itertools
import json
import os
import re
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


# -- a client-side model of the open documents --------------------------------------------------
#
# What the server's copy of each document must be after what the client sent, computed here
# independently of the server's code, with LSP's rules: lines end at \n, \r\n or \r (never at
# \f, \v, U+2028…), columns count units of the negotiated encoding (UTF-16 unless a client
# declared another), a column past the end of its line means the end of the line, one inside a
# surrogate pair means the pair's start (codenook's choice; LSP leaves it open), and the
# position one line past the last, column 0, is the end of the text. Where LSP leaves the
# outcome to the server, the model follows codenook's lsp/documents.py: a didChange whose
# params do not parse (a number outside 0..2^31-1) is dropped whole; a ranged change that does
# not fit the text leaves the copy as it was and out of sync, later ranged changes are ignored
# and a full-text change brings it back; the version is the last didChange's that had changes.

POSITION_MAX = 2**31 - 1  # LSP's uinteger
_LSP_BREAK = re.compile(r"\r\n|\r|\n")


def unit_width(ch: str, encoding: str = "utf-16") -> int:
    """How many units of ``encoding`` the character ``ch`` counts for in an LSP column."""
    if encoding == "utf-32":
        return 1
    if encoding == "utf-8":
        return len(ch.encode("utf-8", "surrogatepass"))
    return 2 if ord(ch) > 0xFFFF else 1


def lsp_lines(text: str) -> list[tuple[int, int]]:
    """(start, end) code-point offsets of each LSP line of ``text``, its line break left out."""
    lines = []
    start = 0
    for match in _LSP_BREAK.finditer(text):
        lines.append((start, match.start()))
        start = match.end()
    lines.append((start, len(text)))
    return lines


def lsp_line_length(text: str, line: int, encoding: str = "utf-16") -> int:
    """The length of ``line`` in units of ``encoding`` (0 for a line that does not exist)."""
    lines = lsp_lines(text)
    if not 0 <= line < len(lines):
        return 0
    start, end = lines[line]
    return sum(unit_width(ch, encoding) for ch in text[start:end])


def lsp_offset(text: str, line: int, character: int, encoding: str = "utf-16") -> int | None:
    """The code-point offset of an LSP position in ``text``; None where there is none."""
    if line < 0 or character < 0:
        return None
    lines = lsp_lines(text)
    if line >= len(lines):
        return len(text) if line == len(lines) and character == 0 else None
    start, end = lines[line]
    used = 0
    for index in range(start, end):
        width = unit_width(text[index], encoding)
        if used + width > character:
            return index
        used += width
    return end


def lsp_splice(text: str, rng: Any, new_text: str, encoding: str = "utf-16") -> str | None:
    """``text`` with ``rng`` (an LSP range, JSON) replaced; None when the range is not in it."""
    start = lsp_offset(text, rng["start"]["line"], rng["start"]["character"], encoding)
    end = lsp_offset(text, rng["end"]["line"], rng["end"]["character"], encoding)
    if start is None or end is None or end < start:
        return None
    return text[:start] + new_text + text[end:]


def _is_uinteger(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= POSITION_MAX


def change_parses(change: Any) -> bool:
    """Whether one content change of a didChange is one the server can read at all."""
    if not isinstance(change, dict) or not isinstance(change.get("text"), str):
        return False
    if "rangeLength" in change and not _is_uinteger(change["rangeLength"]):
        return False
    if "range" not in change:
        return True
    rng = change["range"]
    try:
        numbers = [rng[k][n] for k in ("start", "end") for n in ("line", "character")]
    except (KeyError, TypeError):
        return False
    return all(_is_uinteger(n) for n in numbers)


@dataclasses.dataclass
class ModelDocument:
    uri: str
    text: str  # what the server's copy must hold (kept as it was while out of sync)
    version: int  # the server's version of it
    sent: int  # the highest version the client has sent for it
    out_of_sync: bool = False


class ModelClient(RawClient):
    """A RawClient that keeps a model of each document it opened (``documents``) and behaves
    like an editor towards ``workspace/applyEdit``: an edit for the version the model holds
    is applied to the model, sent back as ``didChange`` and answered ``applied: true``; any
    other (a stale version, an unknown or out-of-sync document, a range that is not in the
    text) is answered ``applied: false``. ``refuse_edits`` refuses every edit;
    ``edit_answer`` answers every edit with those members (a result or an error) instead.

    Every send goes through one lock, so the model, the versions and the order in which the
    server receives changes always agree, whichever thread sends. Answers are indexed by id
    (``reply``), which stays fast over hundreds of thousands of messages.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.model_lock = threading.RLock()
        self.documents: dict[str, ModelDocument] = {}
        self.encoding = "utf-16"
        self.refuse_edits = False
        self.edit_answer: Message | None = None  # {"result": ...} or {"error": ...}, verbatim
        self.edits_applied = 0
        self.edits_refused = 0
        self.model_errors: list[str] = []  # applyEdit params the model could not read
        self._replies: dict[Any, list[Message]] = {}
        super().__init__(*args, **kwargs)

    # -- sending ------------------------------------------------------------------------------

    def send_raw(self, data: bytes) -> None:
        with self.model_lock:
            super().send_raw(data)

    def open_document(
        self, uri: str, text: str, version: int = 1, language_id: str = "python"
    ) -> None:
        item = {"uri": uri, "languageId": language_id, "version": version, "text": text}
        with self.model_lock:
            self.notify("textDocument/didOpen", {"textDocument": item})
            self.documents[uri] = ModelDocument(uri, text, version, version)

    def close_document(self, uri: str) -> None:
        with self.model_lock:
            self.notify("textDocument/didClose", {"textDocument": {"uri": uri}})
            self.documents.pop(uri, None)

    def change_document(self, uri: str, changes: list[Any], version: int | None = None) -> int:
        """Send a didChange (``version``: the next one by default) and follow it in the
        model; the version sent."""
        with self.model_lock:
            doc = self.documents.get(uri)
            if version is None:
                version = (doc.sent if doc is not None else 0) + 1
            params = {"textDocument": {"uri": uri, "version": version}, "contentChanges": changes}
            self.notify("textDocument/didChange", params)
            if doc is None:
                return version
            doc.sent = max(doc.sent, version)
            if not all(change_parses(c) for c in changes):
                return version  # dropped whole by the server
            for change in changes:
                if "range" not in change:
                    doc.text, doc.out_of_sync = change["text"], False
                elif not doc.out_of_sync:
                    spliced = lsp_splice(doc.text, change["range"], change["text"], self.encoding)
                    if spliced is None:
                        doc.out_of_sync = True
                    else:
                        doc.text = spliced
            if changes:
                doc.version = version
            return version

    # -- receiving ----------------------------------------------------------------------------

    def reply(self, msg_id: Any, timeout: float = 10.0) -> Message:
        """The answer to ``msg_id``, looked up by id."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while not self._replies.get(msg_id):
                left = deadline - time.monotonic()
                if left <= 0:
                    raise Timeout(f"no answer to {msg_id!r} within {timeout}s")
                if self.eof.is_set():
                    raise Timeout(f"no answer to {msg_id!r}: the server closed its output")
                self._lock.wait(min(left, 0.05))
            return self._replies[msg_id][0]

    def replies(self, msg_id: Any) -> list[Message]:
        """Every answer with ``msg_id`` (exactly one is right)."""
        with self._lock:
            return list(self._replies.get(msg_id, ()))

    def call(self, method: str, params: Any = None, timeout: float = 10.0) -> Message:
        """``request``, with the answer looked up by id."""
        return self.reply(self.send_request(method, params), timeout)

    def stderr_since(self, chunk: int) -> str:
        """The server's stderr from chunk number ``chunk`` on (see ``stderr_chunks``)."""
        return b"".join(self._stderr[chunk:]).decode("utf-8", "replace")

    @property
    def stderr_chunks(self) -> int:
        return len(self._stderr)

    def _received(self, message: Message) -> None:
        if "method" not in message:
            with self._lock:
                self._replies.setdefault(message.get("id"), []).append(message)
        is_edit = message.get("method") == "workspace/applyEdit" and "id" in message
        if not (is_edit and self.auto_answer):
            super()._received(message)
            return
        with self._lock:
            self.messages.append(message)
            self._lock.notify_all()
        if self.edit_answer is not None:
            with contextlib.suppress(OSError):
                self.send({"jsonrpc": "2.0", "id": message["id"], **self.edit_answer})
            return
        with self.model_lock:
            try:
                result = self._apply_workspace_edit(message.get("params"))
            except (KeyError, TypeError, AttributeError) as exc:
                self.model_errors.append(f"{exc!r}: {message}")
                result = {"applied": False, "failureReason": f"unreadable edit: {exc!r}"}
            with contextlib.suppress(OSError):
                self.send({"jsonrpc": "2.0", "id": message["id"], "result": result})

    def _apply_workspace_edit(self, params: Any) -> dict[str, Any]:
        """Apply an edit to the model and send its didChange, as an editor would."""
        edit = params["edit"]
        targets: list[tuple[str, Any, list[Any]]] = []
        for change in edit.get("documentChanges") or []:
            if "kind" in change:
                return self._refused("file operations are not supported")
            identifier = change["textDocument"]
            targets.append((identifier["uri"], identifier.get("version"), change["edits"]))
        for uri, edits in (edit.get("changes") or {}).items():
            targets.append((uri, None, edits))
        if self.refuse_edits:
            return self._refused("this client refuses edits")
        planned: list[tuple[ModelDocument, list[Any], str]] = []
        for uri, version, edits in targets:
            doc = self.documents.get(uri)
            if doc is None:
                return self._refused(f"{uri} is not open here")
            if version is not None and version != doc.version:
                return self._refused(f"{uri} is at version {doc.version}, not {version}")
            if doc.out_of_sync:  # the server knows: it marked the copy at this very version
                self.model_errors.append(f"an edit for {uri}, out of sync at v{version}")
                return self._refused(f"{uri} is out of sync")
            # All ranges of one document's edits refer to its text before any of them.
            spans = []
            for text_edit in edits:
                rng = text_edit["range"]
                start = lsp_offset(
                    doc.text, rng["start"]["line"], rng["start"]["character"], self.encoding
                )
                end = lsp_offset(
                    doc.text, rng["end"]["line"], rng["end"]["character"], self.encoding
                )
                if start is None or end is None or end < start:
                    return self._refused(f"range {rng} is not in {uri}")
                spans.append((start, end, text_edit))
            spans.sort(key=lambda span: (span[0], span[1]), reverse=True)
            if any(later[0] < earlier[1] for earlier, later in itertools.pairwise(spans[::-1])):
                return self._refused("overlapping edits")
            text = doc.text
            for start, end, text_edit in spans:
                text = text[:start] + text_edit["newText"] + text[end:]
            planned.append((doc, [span[2] for span in spans], text))
        for doc, ordered, text in planned:
            # Last edit first: each range stays valid in the text the previous ones left.
            changes = [{"range": e["range"], "text": e["newText"]} for e in ordered]
            self.change_document(doc.uri, changes)
            if doc.text != text:  # the model's own two ways of applying disagree
                self.model_errors.append(f"edit applied as {doc.text!r}, expected {text!r}")
        self.edits_applied += 1
        return {"applied": True}

    def _refused(self, reason: str) -> dict[str, Any]:
        self.edits_refused += 1
        return {"applied": False, "failureReason": reason}
