"""``codenook bench``: replay a recorded typing session through the real server and measure it.

The benchmark is an editor without a screen. It starts ``codenook serve`` as a subprocess and
talks JSON-RPC to it over stdio: ``initialize`` with the mode's settings, ``didOpen``, then one
incremental ``didChange`` per keystroke and, when the typist pauses longer than the debounce, a
``textDocument/inlineCompletion`` request; a request still in flight when a newer one is sent
is cancelled with ``$/cancelRequest``. Each mode gets a fresh server, so the modes share
nothing but the trace. ``llama-server`` (llama.cpp's own HTTP server) can be replayed the same
way against its ``/infill`` endpoint for comparison.

Only the standard library is used here (the LSP layer alone imports pygls, and the engine
alone imports llama.cpp): what is measured is the server process, not this client.

Sections: traces (format, buffer, recorder), the replay plan, the JSON-RPC client, the two
targets (codenook over LSP, llama-server over HTTP), the report, the command line.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import http.client
import json
import math
import os
import platform
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

TRACE_VERSION = 1
DEFAULT_DEBOUNCE_MS = 75.0
DEFAULT_TRACE_NAME = "sample-python.json"
DEFAULT_MAX_TOKENS = 16
LLAMA_SERVER = "llama-server"
# Settings that make a mode; they are applied over --settings/--set, so a mode always wins.
MODE_SETTINGS: dict[str, dict[str, Any]] = {
    "off": {"engine.prefixCache": False},
    "on": {"engine.prefixCache": True},
}
SERVER_COMMAND = [sys.executable, "-m", "codenook", "serve"]
READY_TIMEOUT_S = 300.0
DRAIN_TIMEOUT_S = 120.0
LINE_PAUSE_CHANCE = 0.35  # how often the recorder's typist pauses before starting a line


class BenchError(Exception):
    """A problem the user must fix (bad trace, server that does not start); ends the command."""


# -- traces ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Event:
    """One keystroke: exactly one of ``insert``, ``delete`` (backspaces) or ``move``."""

    delay_ms: float
    insert: str | None = None
    delete: int = 0
    move: tuple[int, int] | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"delay_ms": self.delay_ms}
        if self.insert is not None:
            out["insert"] = self.insert
        elif self.delete:
            out["delete"] = self.delete
        elif self.move is not None:
            out["move"] = {"line": self.move[0], "character": self.move[1]}
        return out

    @classmethod
    def from_json(cls, raw: Any, where: str) -> Event:
        if not isinstance(raw, dict):
            raise BenchError(f"{where}: expected an object, got {raw!r}")
        delay = raw.get("delay_ms", 0)
        if isinstance(delay, bool) or not isinstance(delay, int | float) or delay < 0:
            raise BenchError(f"{where}: delay_ms must be a number >= 0, got {delay!r}")
        kinds = [k for k in ("insert", "delete", "move") if k in raw]
        if len(kinds) != 1:
            raise BenchError(f"{where}: needs exactly one of insert, delete, move")
        if "insert" in raw:
            text = raw["insert"]
            if not isinstance(text, str) or not text or "\r" in text:
                raise BenchError(f"{where}: insert must be a non-empty string without \\r")
            return cls(float(delay), insert=text)
        if "delete" in raw:
            count = raw["delete"]
            if isinstance(count, bool) or not isinstance(count, int) or count < 1:
                raise BenchError(f"{where}: delete must be a positive integer, got {count!r}")
            return cls(float(delay), delete=count)
        return cls(float(delay), move=_position_from_json(raw["move"], where))


def _position_from_json(raw: Any, where: str) -> tuple[int, int]:
    if not isinstance(raw, dict):
        raise BenchError(f"{where}: a position is {{'line': L, 'character': C}}, got {raw!r}")
    line, character = raw.get("line"), raw.get("character")
    for value in (line, character):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise BenchError(f"{where}: line and character must be integers >= 0, got {raw!r}")
    assert isinstance(line, int) and isinstance(character, int)
    return line, character


@dataclass
class Trace:
    """A typing session: a document, a cursor and the keystrokes typed from there.

    Positions (``cursor``, ``move``) count lines from 0 and characters as Unicode code
    points; the replay converts them to the UTF-16 columns LSP uses.
    """

    initial_text: str
    cursor: tuple[int, int]
    events: list[Event]
    uri_path: str = "example.py"
    language_id: str = "python"
    debounce_ms: float = DEFAULT_DEBOUNCE_MS
    recorded: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "version": TRACE_VERSION,
            "uri_path": self.uri_path,
            "language_id": self.language_id,
            "debounce_ms": self.debounce_ms,
            "cursor": {"line": self.cursor[0], "character": self.cursor[1]},
        }
        if self.recorded:
            out["recorded"] = self.recorded
        out["initial_text"] = self.initial_text
        out["events"] = [e.to_json() for e in self.events]
        return out

    @classmethod
    def from_json(cls, raw: Any) -> Trace:
        if not isinstance(raw, dict):
            raise BenchError("a trace is a JSON object")
        if raw.get("version") != TRACE_VERSION:
            raise BenchError(
                f"trace version {raw.get('version')!r} is not supported (expected {TRACE_VERSION})"
            )
        text = raw.get("initial_text")
        if not isinstance(text, str) or "\r" in text:
            raise BenchError("initial_text must be a string with \\n line endings")
        events = raw.get("events")
        if not isinstance(events, list) or not events:
            raise BenchError("events must be a non-empty list")
        debounce = raw.get("debounce_ms", DEFAULT_DEBOUNCE_MS)
        if isinstance(debounce, bool) or not isinstance(debounce, int | float) or debounce < 0:
            raise BenchError(f"debounce_ms must be a number >= 0, got {debounce!r}")
        trace = cls(
            initial_text=text,
            cursor=_position_from_json(raw.get("cursor", {"line": 0, "character": 0}), "cursor"),
            events=[Event.from_json(e, f"event {i}") for i, e in enumerate(events)],
            uri_path=str(raw.get("uri_path", "example.py")),
            language_id=str(raw.get("language_id", "python")),
            debounce_ms=float(debounce),
            recorded=dict(raw.get("recorded") or {}),
        )
        trace.final_text()  # every edit must apply: fail on load, not halfway through a run
        return trace

    @classmethod
    def load(cls, path: Path) -> Trace:
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise BenchError(f"cannot read trace {path}: {exc}") from exc
        try:
            return cls.from_json(raw)
        except BenchError as exc:
            raise BenchError(f"trace {path}: {exc}") from exc

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(self.dumps(), encoding="utf-8")

    def dumps(self) -> str:
        """The trace as JSON text, one event per line so that a diff stays readable."""
        raw = self.to_json()
        events = raw.pop("events")
        head = json.dumps(raw, indent=1, ensure_ascii=False)[:-2]
        lines = ",\n  ".join(json.dumps(e, ensure_ascii=False) for e in events)
        return f'{head},\n "events": [\n  {lines}\n ]\n}}\n'

    def final_text(self) -> str:
        """The document after every event (a recorded trace ends with its source file)."""
        buffer = Buffer(self.initial_text, self.cursor)
        for number, event in enumerate(self.events):
            try:
                buffer.apply(event)
            except BenchError as exc:
                raise BenchError(f"event {number}: {exc}") from exc
        return buffer.text


@dataclass(frozen=True)
class Edit:
    """An LSP range edit: start and end as (line, UTF-16 column), and the new text."""

    start: tuple[int, int]
    end: tuple[int, int]
    text: str


class Buffer:
    """The editor's copy of the document and its cursor (a code point offset)."""

    def __init__(self, text: str, cursor: tuple[int, int]) -> None:
        self.text = text
        self.offset = self.offset_of(*cursor)

    def offset_of(self, line: int, character: int) -> int:
        start = 0
        for _ in range(line):
            newline = self.text.find("\n", start)
            if newline == -1:
                raise BenchError(f"the document has no line {line}")
            start = newline + 1
        end = self.text.find("\n", start)
        length = (end if end != -1 else len(self.text)) - start
        if character > length:
            raise BenchError(f"line {line} has {length} characters, not {character}")
        return start + character

    def position(self, offset: int | None = None) -> tuple[int, int]:
        """(line, UTF-16 column) of ``offset`` (default: the cursor), as LSP counts them."""
        offset = self.offset if offset is None else offset
        line_start = self.text.rfind("\n", 0, offset) + 1
        column = len(self.text[line_start:offset].encode("utf-16-le")) // 2
        return self.text.count("\n", 0, offset), column

    def apply(self, event: Event) -> Edit | None:
        """Apply ``event``; the edit to send, or None for a cursor move."""
        if event.move is not None:
            self.offset = self.offset_of(*event.move)
            return None
        if event.insert is not None:
            at = self.position()
            self.text = self.text[: self.offset] + event.insert + self.text[self.offset :]
            self.offset += len(event.insert)
            return Edit(at, at, event.insert)
        if event.delete > self.offset:
            raise BenchError(f"cannot delete {event.delete} characters before offset {self.offset}")
        start, end = self.position(self.offset - event.delete), self.position()
        self.text = self.text[: self.offset - event.delete] + self.text[self.offset :]
        self.offset -= event.delete
        return Edit(start, end, "")

    def prefix(self) -> str:
        return self.text[: self.offset]

    def suffix(self) -> str:
        return self.text[self.offset :]


def traces_dir() -> Path:
    """Shipped traces: inside the wheel when packaged, else the repository's ``benchmarks``."""
    packaged = Path(__file__).resolve().parents[1] / "benchmarks" / "traces"
    if packaged.is_dir():
        return packaged
    return Path(__file__).resolve().parents[3] / "benchmarks" / "traces"


def default_trace() -> Path:
    return traces_dir() / DEFAULT_TRACE_NAME


# -- recording ---------------------------------------------------------------------------------


def record(
    source: str,
    start_line: int,
    lines: int,
    *,
    cpm: float = 300.0,
    seed: int = 0,
    auto_indent: bool = False,
    typo_rate: float = 0.0,
    uri_path: str = "example.py",
    language_id: str = "python",
    debounce_ms: float = DEFAULT_DEBOUNCE_MS,
) -> Trace:
    """A trace that types lines ``[start_line, start_line + lines)`` (0-based) of ``source``.

    The initial document is ``source`` without those lines, the cursor at the start of where
    they were; each character is a keystroke (a newline too). Inter-key delays follow a
    seeded log-normal rhythm whose mean is ``60000 / cpm`` ms, and a line sometimes starts
    after a pause (0.4 to 1.5 s). ``auto_indent`` makes a newline carry the next line's
    indentation, as editors do; ``typo_rate`` is the chance that a letter is first mistyped
    and corrected with a backspace. Replaying every event reproduces ``source``.
    """
    text = source.replace("\r\n", "\n").replace("\r", "\n")
    kept = text.splitlines(keepends=True)
    if not 0 <= start_line < len(kept):
        raise BenchError(f"the file has {len(kept)} lines; cannot start at line {start_line + 1}")
    if lines < 1 or cpm <= 0:
        raise BenchError("--lines and --cpm must be positive")
    typed = kept[start_line : start_line + lines]
    initial = "".join(kept[:start_line] + kept[start_line + lines :])
    rng = random.Random(seed)
    mean_ms = 60000.0 / cpm
    sigma = 0.4

    def gap() -> float:
        # Log-normal with mean ``mean_ms``; nobody types faster than ~30 ms per key.
        value = rng.lognormvariate(math.log(mean_ms) - sigma * sigma / 2, sigma)
        return round(max(30.0, value), 1)

    events: list[Event] = []
    pause_next = True  # the first keystroke comes after the file has been looked at
    for number, line in enumerate(typed):
        body = line
        if auto_indent:
            indent = line[: len(line) - len(line.lstrip(" \t"))]
            body = line[len(indent) :]
            if number == 0 and indent:
                events.append(Event(round(gap() + rng.uniform(400, 1500), 1), insert=indent))
                pause_next = False
        for char in body:
            delay = gap()
            if pause_next and (not events or rng.random() < LINE_PAUSE_CHANCE):
                delay += rng.uniform(400.0, 1500.0)
            pause_next = False
            if typo_rate > 0 and char.isalpha() and rng.random() < typo_rate:
                wrong = rng.choice([c for c in "asdfghjklqwertyuiop" if c != char])
                events.append(Event(round(delay, 1), insert=wrong))
                events.append(Event(round(gap() + rng.uniform(150.0, 400.0), 1), delete=1))
                delay = gap()
            insert = char
            if char == "\n":
                pause_next = True
                if auto_indent and number + 1 < len(typed):
                    following = typed[number + 1]
                    insert += following[: len(following) - len(following.lstrip(" \t"))]
            events.append(Event(round(delay, 1), insert=insert))
    if not events:
        raise BenchError("the chosen lines are empty: nothing to type")
    trace = Trace(
        initial_text=initial,
        cursor=(start_line, 0),
        events=events,
        uri_path=uri_path,
        language_id=language_id,
        debounce_ms=debounce_ms,
    )
    final = trace.final_text()
    assert final == text, "a recorded trace must reproduce its source"
    return trace


# -- the replay plan ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Step:
    """At ``at_ms`` after the start: apply event ``index`` (``key``) or ask after it (``ask``)."""

    at_ms: float
    kind: str
    index: int


def plan(trace: Trace, speed: float = 1.0) -> list[Step]:
    """When each keystroke is typed and when the debounce timer sends a request.

    Delays are divided by ``speed``; the debounce is the editor's and is not. A keystroke
    followed by a longer idle than the debounce (or the last one) triggers a request at
    keystroke + debounce; one followed sooner by the next keystroke triggers nothing.
    """
    steps: list[Step] = []
    now = 0.0
    for index, event in enumerate(trace.events):
        delay = event.delay_ms / speed
        if index > 0 and delay > trace.debounce_ms:
            steps.append(Step(now + trace.debounce_ms, "ask", index - 1))
        now += delay
        steps.append(Step(now, "key", index))
    steps.append(Step(now + trace.debounce_ms, "ask", len(trace.events) - 1))
    return steps


# -- JSON-RPC over stdio -----------------------------------------------------------------------


class RpcError(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(f"{message} ({code})")
        self.code = code


REQUEST_CANCELLED = -32800


class JsonRpcClient:
    """Content-Length framed JSON-RPC over a subprocess's pipes, as LSP clients speak it.

    Responses resolve futures with ``(arrival time, message)``; requests from the server get
    an empty answer (null, or one null per ``workspace/configuration`` item); notifications
    are kept for the report (``window/showMessage``) or dropped.
    """

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self._process = process
        self._pending: dict[int, asyncio.Future[tuple[float, dict[str, Any]]]] = {}
        self._ids = 0
        self.messages: list[str] = []
        # Answers to server->client requests beyond the defaults (e.g. workspace/applyEdit).
        self.handlers: dict[str, Callable[[Any], Any]] = {}
        self._reader = asyncio.ensure_future(self._read_forever())

    async def _read_message(self) -> dict[str, Any] | None:
        stdout = self._process.stdout
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
        stdin = self._process.stdin
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


# -- what a request became ---------------------------------------------------------------------


@dataclass
class RequestRecord:
    """One completion request of the replay and what became of it."""

    index: int  # the event whose keystroke triggered it
    keystroke_at: float  # loop time the triggering keystroke was sent
    sent_at: float
    version: int = 0
    answered_at: float | None = None
    # pending, then: answered | cancelled (the server acknowledged our cancel) | late
    # (answered although we cancelled it) | error | lost (no answer before the run ended)
    outcome: str = "pending"
    cancel_sent: bool = False
    stale: bool = False  # answered after a newer keystroke had been sent
    suggestion: str | None = None
    error: str | None = None
    # Engine facts for this request when known: prompt/cached/prefilled/generated tokens,
    # decode_ms (codenook: from codenook/stats lastCompletion; llama-server: its timings).
    engine: dict[str, float] | None = None

    @property
    def latency_ms(self) -> float | None:
        if self.answered_at is None:
            return None
        return (self.answered_at - self.keystroke_at) * 1000

    def to_json(self) -> dict[str, Any]:
        latency = self.latency_ms
        return {
            "event": self.index,
            "version": self.version,
            "outcome": self.outcome,
            "latency_ms": None if latency is None else round(latency, 1),
            "cancel_sent": self.cancel_sent,
            "stale": self.stale,
            "suggestion": self.suggestion,
            "error": self.error,
            "engine": self.engine,
        }


class Target(Protocol):
    """What a replay drives: codenook over LSP, or llama-server over HTTP."""

    async def change(self, version: int, edit: Edit) -> None: ...

    async def complete(self, record: RequestRecord, buffer: Buffer) -> None:
        """Send the request and return once it is sent; ``wait`` fills in the answer."""
        ...

    async def cancel(self, record: RequestRecord) -> None: ...

    async def wait(self, record: RequestRecord) -> None: ...


async def _sleep_until(loop: asyncio.AbstractEventLoop, deadline: float) -> None:
    delay = deadline - loop.time()
    if delay > 0:
        await asyncio.sleep(delay)


async def replay(
    trace: Trace, target: Target, speed: float = 1.0
) -> tuple[list[RequestRecord], float]:
    """Type ``trace`` into ``target`` in real time; the requests and the wall time in seconds."""
    loop = asyncio.get_running_loop()
    buffer = Buffer(trace.initial_text, trace.cursor)
    version = 1
    key_times: list[float] = []
    records: list[RequestRecord] = []
    waits: list[asyncio.Task[None]] = []
    start = loop.time()
    for step in plan(trace, speed):
        deadline = start + step.at_ms / 1000
        if step.kind == "ask":  # the editor's timer starts when the keystroke really happened
            deadline = max(deadline, key_times[step.index] + trace.debounce_ms / 1000)
        await _sleep_until(loop, deadline)
        if step.kind == "key":
            edit = buffer.apply(trace.events[step.index])
            if edit is not None:
                version += 1
                await target.change(version, edit)
            key_times.append(loop.time())
            continue
        if records and records[-1].outcome == "pending" and not records[-1].cancel_sent:
            records[-1].cancel_sent = True
            await target.cancel(records[-1])
        record = RequestRecord(step.index, key_times[step.index], loop.time(), version)
        records.append(record)
        await target.complete(record, buffer)
        waits.append(asyncio.ensure_future(target.wait(record)))
    if waits:
        await asyncio.wait(waits, timeout=DRAIN_TIMEOUT_S)
    for task in waits:
        task.cancel()
    elapsed = loop.time() - start
    for record in records:
        if record.outcome == "pending":
            record.outcome = "lost"
        later = key_times[record.index + 1] if record.index + 1 < len(key_times) else None
        record.stale = bool(
            record.answered_at is not None and later is not None and record.answered_at > later
        )
    return records, elapsed


# -- codenook over LSP -------------------------------------------------------------------------


class CodenookTarget:
    """A ``codenook serve`` subprocess driven like an editor drives it."""

    def __init__(self, settings: dict[str, Any], trace: Trace, root: Path) -> None:
        self.settings = settings
        self.trace = trace
        self.root = root
        self.uri = (root / trace.uri_path).as_uri()
        self.process: asyncio.subprocess.Process | None = None
        self.rpc: JsonRpcClient | None = None
        self.log = tempfile.TemporaryFile()  # noqa: SIM115 - closed by the run_* function
        self.load_ms = 0.0
        self._futures: dict[int, tuple[int, asyncio.Future[tuple[float, dict[str, Any]]]]] = {}

    async def start(self) -> dict[str, Any]:
        """Start the server, open the document, wait for the model; the first stats."""
        loop = asyncio.get_running_loop()
        self.process = await asyncio.create_subprocess_exec(
            *SERVER_COMMAND,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=self.log,
        )
        self.rpc = JsonRpcClient(self.process)
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


async def run_codenook_mode(
    name: str, trace: Trace, settings: dict[str, Any], speed: float
) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="codenook-bench-") as root:
        target = CodenookTarget(settings, trace, Path(root))
        try:
            first = await target.start()
            records, elapsed = await replay(trace, target, speed)
            stats = await target.stats()
        except BenchError as exc:
            tail = target.log_tail()
            raise BenchError(f"mode {name}: {exc}\n--- server log (tail) ---\n{tail}") from exc
        finally:
            await target.stop()
            target.log.close()
    report = summarize(name, trace, records, elapsed)
    report["settings"] = settings
    report["model"] = first.get("model")
    report["architecture"] = first.get("architecture")
    report["load_ms"] = round(target.load_ms, 1)
    report["messages"] = list(target.rpc.messages) if target.rpc else []
    add_engine_stats(report, records, stats)
    return report


# -- llama-server over HTTP (the peer) ---------------------------------------------------------


class LlamaServerTarget:
    """llama.cpp's ``llama-server`` fed the same trace through ``/infill``.

    The document stays on this side; every request sends the whole text before and after the
    cursor, with ``cache_prompt`` so the server reuses what it can (and ``--cache-reuse 256``
    lets it shift matching chunks). A request is cancelled by closing its connection.
    """

    def __init__(self, binary: str, model: Path, settings: dict[str, Any]) -> None:
        self.binary = binary
        self.model = model
        self.context = int(settings.get("model.contextSize", 4096))
        self.threads = int(settings.get("model.threads", 0))
        self.max_tokens = int(settings.get("completion.maxTokens", DEFAULT_MAX_TOKENS))
        self.port = _free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self.log = tempfile.TemporaryFile()  # noqa: SIM115 - closed by the run_* function
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


async def run_llama_server_mode(
    binary: str, trace: Trace, settings: dict[str, Any], speed: float
) -> dict[str, Any]:
    from codenook.engine.models import NoModel, resolve_model_path

    try:
        model = resolve_model_path(settings.get("model.path"))
    except NoModel as exc:
        raise BenchError(str(exc)) from exc
    target = LlamaServerTarget(binary, model, settings)
    try:
        await target.start()
        records, elapsed = await replay(trace, target, speed)
    except BenchError as exc:
        raise BenchError(f"mode {LLAMA_SERVER}: {exc}\n--- log ---\n{target.log_tail()}") from exc
    finally:
        target.stop()
        target.log.close()
    report = summarize(LLAMA_SERVER, trace, records, elapsed)
    report["settings"] = {
        "binary": binary,
        "context": target.context,
        "n_predict": target.max_tokens,
    }
    report["model"] = str(model)
    report["load_ms"] = round(target.load_ms, 1)
    errors = [r.error for r in records if r.outcome == "error" and r.error]
    report["messages"] = errors[:1]
    add_peer_stats(report, records)
    return report


# -- the report --------------------------------------------------------------------------------


def percentile(values: Sequence[float], share: float) -> float | None:
    """Nearest-rank percentile (``share`` in 0..1); None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(share * len(ordered)) - 1)]


def _ratio(numerator: float, denominator: float) -> float | None:
    return numerator / denominator if denominator else None


def summarize(
    name: str, trace: Trace, records: list[RequestRecord], elapsed: float
) -> dict[str, Any]:
    """What the client saw: requests, outcomes and keystroke→answer latencies."""
    latencies = [r.latency_ms for r in records if r.outcome == "answered"]
    values = [v for v in latencies if v is not None]
    outcomes = {k: sum(r.outcome == k for r in records) for k in _OUTCOMES}
    return {
        "mode": name,
        "keystrokes": len(trace.events),
        "requests_sent": len(records),
        **outcomes,
        "cancel_sent": sum(r.cancel_sent for r in records),
        "stale": sum(r.stale for r in records if r.outcome == "answered"),
        "suggestions": sum(bool(r.suggestion) for r in records if r.outcome == "answered"),
        "latency_ms": {
            "median": statistics.median(values) if values else None,
            "p95": percentile(values, 0.95),
            "mean": statistics.fmean(values) if values else None,
            "max": max(values) if values else None,
        },
        "replay_s": round(elapsed, 2),
        "requests": [r.to_json() for r in records],
    }


_OUTCOMES = ("answered", "cancelled", "late", "error", "lost")


def _ran_model(record: RequestRecord) -> bool:
    """An answered request that ran the model (a typed-through answer did not)."""
    engine = record.engine
    return record.outcome == "answered" and engine is not None and engine["prompt_tokens"] > 0


def _hit_rate_and_speed(report: dict[str, Any], records: list[RequestRecord]) -> None:
    """Per-request engine facts of the answered requests: hit rate, decode speed, latency."""
    ran = [r for r in records if _ran_model(r)]
    sampled = [r.engine for r in ran if r.engine is not None]
    report["sampled_requests"] = len(sampled)
    report["prefix_hit_rate"] = _ratio(sum(s["cached_tokens"] > 0 for s in sampled), len(sampled))
    decoded = sum(s["decoded_tokens"] for s in sampled if s["decode_ms"] > 0)
    decode_s = sum(s["decode_ms"] for s in sampled if s["decoded_tokens"] > 0) / 1000
    report["decode_tokens_per_s"] = _ratio(decoded, decode_s)
    values = [v for v in (r.latency_ms for r in ran) if v is not None]
    report["model_latency_ms"] = {
        "median": statistics.median(values) if values else None,
        "p95": percentile(values, 0.95),
    }


def add_engine_stats(
    report: dict[str, Any], records: list[RequestRecord], stats: dict[str, Any]
) -> None:
    """Engine totals from ``codenook/stats`` (every engine request, cancelled ones too)."""
    counters = stats.get("counters") or {}
    report["counters"] = counters
    engine_requests = int(counters.get("requests", 0))
    report["engine_requests"] = engine_requests
    for key in ("prompt_tokens", "cached_tokens", "prefilled_tokens", "generated_tokens"):
        report[f"{key}_per_request"] = _ratio(counters.get(key, 0), engine_requests)
    report["reuse_ratio"] = _ratio(
        counters.get("cached_tokens", 0), counters.get("prompt_tokens", 0)
    )
    report["engine_cancelled"] = counters.get("cancelled")
    report["checkpoint_hits"] = counters.get("checkpoint_hits")
    report["checkpoint_saves"] = counters.get("checkpoint_saves")
    completion = stats.get("completionCounters")
    if isinstance(completion, dict):
        report["completion_counters"] = completion
        report["typed_through"] = completion.get("typedThrough")
        report["typed_through_share"] = _ratio(
            float(completion.get("typedThrough") or 0), float(completion.get("requests") or 0)
        )
    else:
        report["completion_counters"] = None
        report["typed_through"] = None
        report["typed_through_share"] = None
    _hit_rate_and_speed(report, records)
    if report["decode_tokens_per_s"] is None and stats.get("tokensPerSecond"):
        report["decode_tokens_per_s"] = float(stats["tokensPerSecond"])


def add_peer_stats(report: dict[str, Any], records: list[RequestRecord]) -> None:
    """llama-server reports only the requests it answered: totals come from those."""
    sampled = [r.engine for r in records if r.outcome in ("answered", "late") and r.engine]
    answered = len(sampled)
    totals = {
        key: sum(s[key] for s in sampled)
        for key in ("prompt_tokens", "cached_tokens", "prefilled_tokens", "generated_tokens")
    }
    report["counters"] = totals
    report["engine_requests"] = answered
    for key, total in totals.items():
        report[f"{key}_per_request"] = _ratio(total, answered)
    report["reuse_ratio"] = _ratio(totals["cached_tokens"], totals["prompt_tokens"])
    for key in ("engine_cancelled", "checkpoint_hits", "checkpoint_saves", "typed_through"):
        report[key] = None
    report["completion_counters"] = None
    report["typed_through_share"] = None
    _hit_rate_and_speed(report, records)


def _number(value: Any, digits: int = 0) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return f"{value:.{digits}f}"


def _percent(value: Any) -> str:
    return "n/a" if value is None else f"{100 * value:.0f} %"


ROWS: tuple[tuple[str, Callable[[dict[str, Any]], str]], ...] = (
    ("completion requests sent", lambda r: _number(r["requests_sent"])),
    ("  answered", lambda r: _number(r["answered"])),
    ("  cancelled", lambda r: _number(r["cancelled"])),
    ("  answered after our cancel", lambda r: _number(r["late"])),
    ("  errors / never answered", lambda r: f"{r['error']} / {r['lost']}"),
    ("  answers after a newer keystroke", lambda r: _number(r["stale"])),
    ("  non-empty suggestions", lambda r: _number(r["suggestions"])),
    ("latency median (ms)", lambda r: _number(r["latency_ms"]["median"])),
    ("latency p95 (ms)", lambda r: _number(r["latency_ms"]["p95"])),
    ("  median / p95 of model answers (ms)", lambda r: _latency_pair(r["model_latency_ms"])),
    ("engine requests", lambda r: _number(r["engine_requests"])),
    ("  cancelled in the engine", lambda r: _number(r["engine_cancelled"])),
    ("prompt tokens / engine request", lambda r: _number(r["prompt_tokens_per_request"], 1)),
    ("prefilled tokens / engine request", lambda r: _number(r["prefilled_tokens_per_request"], 1)),
    ("reuse ratio (cached / prompt tokens)", lambda r: _percent(r["reuse_ratio"])),
    ("prefix hit rate (answered requests)", lambda r: _percent(r["prefix_hit_rate"])),
    ("checkpoint hits / saves", lambda r: _pair(r["checkpoint_hits"], r["checkpoint_saves"])),
    ("answered without a model call", lambda r: _typed_through(r)),
    ("decode tokens/s", lambda r: _number(r["decode_tokens_per_s"], 1)),
    ("model load (ms)", lambda r: _number(r["load_ms"])),
    ("replay wall time (s)", lambda r: _number(r["replay_s"], 1)),
)


def _latency_pair(latency: dict[str, Any]) -> str:
    return f"{_number(latency['median'])} / {_number(latency['p95'])}"


def _pair(a: Any, b: Any) -> str:
    return "n/a" if a is None else f"{a} / {b}"


def _typed_through(report: dict[str, Any]) -> str:
    share = report["typed_through_share"]
    if share is None:
        return "n/a"
    return f"{report['typed_through']} ({_percent(share)})"


def format_table(reports: Sequence[dict[str, Any]]) -> str:
    """Rows = metrics, one column per mode, then the on/off ratio of prefilled tokens."""
    label_width = max(len(label) for label, _ in ROWS) + 2
    widths = [max(13, len(r["mode"]) + 2) for r in reports]
    lines = [
        "metric".ljust(label_width)
        + "".join(r["mode"].rjust(w) for r, w in zip(reports, widths, strict=True))
    ]
    for label, cell in ROWS:
        cells = "".join(cell(r).rjust(w) for r, w in zip(reports, widths, strict=True))
        lines.append(label.ljust(label_width) + cells)
    by_mode = {r["mode"]: r for r in reports}
    on = (by_mode.get("on") or {}).get("prefilled_tokens_per_request")
    off = (by_mode.get("off") or {}).get("prefilled_tokens_per_request")
    if on is not None and off:
        inverse = f" (1/{off / on:.0f})" if on else ""
        lines.append(f"\nprefilled tokens per request, on/off: {on / off:.3f}{inverse}")
    return "\n".join(lines)


# -- the command line --------------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``codenook bench [options]`` runs a trace; ``codenook bench record SOURCE`` makes one."""
    parser.add_argument(
        "--trace", type=Path, help=f"trace file (default: the shipped {DEFAULT_TRACE_NAME})"
    )
    parser.add_argument(
        "--modes",
        default="off,on",
        help="comma-separated: off, on, llama-server (default: off,on, plus llama-server when"
        " --llama-server is given)",
    )
    parser.add_argument("--model", help="GGUF model file (sets model.path)")
    parser.add_argument("--settings", help="JSON file with settings for every mode")
    parser.add_argument(
        "--set", action="append", metavar="KEY=VALUE", help="one setting, JSON value (repeatable)"
    )
    parser.add_argument(
        "--max-tokens",
        type=int,
        default=DEFAULT_MAX_TOKENS,
        help=f"completion.maxTokens (default {DEFAULT_MAX_TOKENS})",
    )
    parser.add_argument(
        "--speed", type=float, default=1.0, help="typing speed factor (2 = twice as fast)"
    )
    parser.add_argument("--json", type=Path, metavar="FILE", help="write every number here")
    parser.add_argument(
        "--llama-server", metavar="PATH", help="llama.cpp's llama-server binary: adds that mode"
    )
    parser.description = (
        "Replay a recorded typing session through `codenook serve` the way an editor does, once"
        " per mode (prefix cache off / on, optionally llama-server), and compare latency and"
        " prompt work. Without a subcommand the trace is run; `record` makes a trace."
    )
    sub = parser.add_subparsers(
        dest="bench_command",
        title="subcommand (optional)",
        metavar="record SOURCE --out FILE | assist",
    )
    assist = sub.add_parser(
        "assist", help="time hover (cold / cached) and a streamed code action instead"
    )
    assist.add_argument("--model", dest="assist_model", help="GGUF model file (model.path)")
    assist.add_argument("--json", dest="assist_json", type=Path, metavar="FILE")
    rec = sub.add_parser("record", help="make a trace by typing lines of an existing file")
    rec.add_argument("source", type=Path, help="the file whose lines are typed")
    rec.add_argument("--out", type=Path, required=True, help="trace file to write")
    rec.add_argument("--start-line", type=int, default=1, help="first typed line, 1-based")
    rec.add_argument("--lines", type=int, default=10, help="how many lines to type")
    rec.add_argument("--cpm", type=float, default=300.0, help="characters per minute")
    rec.add_argument("--seed", type=int, default=0, help="seed of the typing rhythm")
    rec.add_argument(
        "--auto-indent",
        action="store_true",
        help="a newline also inserts the next line's indentation (as editors do)",
    )
    rec.add_argument(
        "--typo-rate", type=float, default=0.0, help="chance a letter is mistyped and backspaced"
    )
    rec.add_argument("--language-id", help="LSP language id (default: from the extension)")
    rec.add_argument(
        "--debounce-ms", type=float, default=DEFAULT_DEBOUNCE_MS, help="the editor's debounce"
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="codenook bench", description="Replay a typing session through the server."
    )
    add_arguments(parser)
    return parser


_LANGUAGE_IDS = {
    ".py": "python",
    ".js": "javascript",
    ".ts": "typescript",
    ".tsx": "typescriptreact",
    ".jsx": "javascriptreact",
    ".go": "go",
    ".rs": "rust",
}


def cmd_record(args: argparse.Namespace) -> int:
    try:
        source = args.source.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise BenchError(f"cannot read {args.source}: {exc}") from exc
    trace = record(
        source,
        args.start_line - 1,
        args.lines,
        cpm=args.cpm,
        seed=args.seed,
        auto_indent=args.auto_indent,
        typo_rate=args.typo_rate,
        uri_path=args.source.name,
        language_id=args.language_id or _LANGUAGE_IDS.get(args.source.suffix, "plaintext"),
        debounce_ms=args.debounce_ms,
    )
    trace.recorded = {
        "source": args.source.name,
        "start_line": args.start_line,
        "lines": args.lines,
        "cpm": args.cpm,
        "seed": args.seed,
        "auto_indent": args.auto_indent,
        "typo_rate": args.typo_rate,
    }
    trace.save(args.out)
    seconds = sum(e.delay_ms for e in trace.events) / 1000
    print(f"wrote {args.out}: {len(trace.events)} keystrokes, {seconds:.1f} s of typing")
    return 0


def bench_settings(args: argparse.Namespace) -> dict[str, Any]:
    """Settings shared by every mode, as flat dotted keys; problems are reported, not fatal."""
    from codenook.settings import parse_settings

    raw: dict[str, Any] = {"completion.maxTokens": args.max_tokens}
    if args.settings:
        try:
            loaded = json.loads(Path(args.settings).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise BenchError(f"cannot read settings file {args.settings}: {exc}") from exc
        if not isinstance(loaded, dict):
            raise BenchError(f"settings file {args.settings} must hold a JSON object")
        raw.update(loaded.get("codenook", loaded))
    for item in args.set or []:
        key, _, value = item.partition("=")
        try:
            raw[key] = json.loads(value)
        except ValueError:
            raw[key] = value
    if args.model:
        raw["model.path"] = args.model
    settings, problems = parse_settings(raw)
    for problem in problems:
        print(f"codenook bench: {problem}", file=sys.stderr)
    defaults = parse_settings({})[0]
    return {k: v for k, v in settings.values.items() if v != defaults[k]}


async def run_modes(
    modes: list[str], trace: Trace, settings: dict[str, Any], args: argparse.Namespace
) -> list[dict[str, Any]]:
    reports = []
    for mode in modes:
        print(f"codenook bench: running mode {mode} ...", file=sys.stderr)
        if mode == LLAMA_SERVER:
            binary = find_llama_server(args.llama_server) if args.llama_server else None
            if binary is None:
                where = args.llama_server or "(no --llama-server given)"
                print(
                    f"codenook bench: skipping {LLAMA_SERVER}: no binary at {where}",
                    file=sys.stderr,
                )
                continue
            reports.append(await run_llama_server_mode(binary, trace, settings, args.speed))
        else:
            mode_settings = {**settings, **MODE_SETTINGS[mode]}
            reports.append(await run_codenook_mode(mode, trace, mode_settings, args.speed))
    return reports


def _load_average() -> float | None:
    try:
        return float(Path("/proc/loadavg").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def cmd_run(args: argparse.Namespace) -> int:
    trace_path = args.trace or default_trace()
    trace = Trace.load(trace_path)
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    if args.llama_server and LLAMA_SERVER not in modes:
        modes.append(LLAMA_SERVER)
    unknown = [m for m in modes if m not in MODE_SETTINGS and m != LLAMA_SERVER]
    if unknown or not modes:
        raise BenchError(f"unknown mode {unknown}: choose from off, on, {LLAMA_SERVER}")
    if args.speed <= 0:
        raise BenchError("--speed must be positive")
    settings = bench_settings(args)
    load = _load_average()
    if load is not None and load > 0.5 * (os.cpu_count() or 1):
        print(
            f"codenook bench: the machine is busy (load average {load:.1f}); timings will be"
            " noisy, token counts less so",
            file=sys.stderr,
        )
    reports = asyncio.run(run_modes(modes, trace, settings, args))
    if not reports:
        raise BenchError("no mode ran")
    header = (
        f"trace {trace_path.name}: {len(trace.events)} keystrokes,"
        f" {sum(e.delay_ms for e in trace.events) / args.speed / 1000:.1f} s of typing,"
        f" debounce {trace.debounce_ms:g} ms, speed {args.speed:g};"
        f" completion.maxTokens {settings.get('completion.maxTokens', 64)}"
    )
    models = {Path(r["model"]).name for r in reports if r.get("model")}
    print(header)
    print(f"model {', '.join(sorted(models)) or 'n/a'}; {os.cpu_count()} CPUs\n")
    print(format_table(reports))
    for report in reports:
        for message in report.get("messages") or []:
            print(f"[{report['mode']}] {message}", file=sys.stderr)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        document = {
            "trace": {
                "path": str(trace_path),
                "keystrokes": len(trace.events),
                "debounce_ms": trace.debounce_ms,
                "recorded": trace.recorded,
            },
            "speed": args.speed,
            "settings": settings,
            "machine": {
                "cpus": os.cpu_count(),
                "platform": platform.platform(),
                "load_average_before": load,
                "load_average_after": _load_average(),
            },
            "modes": {r["mode"]: r for r in reports},
        }
        args.json.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    return 0


def main(args: argparse.Namespace) -> int:
    """Entry point for ``codenook bench``: ``record`` makes a trace, otherwise run one."""
    try:
        if args.bench_command == "record":
            return cmd_record(args)
        if args.bench_command == "assist":
            from codenook.devtools.bench_assist import run_assist

            return run_assist(args.assist_model or args.model, args.assist_json or args.json)
        return cmd_run(args)
    except BenchError as exc:
        print(f"codenook bench: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main(build_parser().parse_args()))
