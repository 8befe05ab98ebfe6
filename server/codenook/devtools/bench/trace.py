"""Traces: the recorded typing session, the editor's buffer it is replayed into, and the plan.

A trace is data, not timing: every position is validated when it is loaded so that a broken
trace fails before a server is started, and the plan (when each key is typed, when the
editor's debounce fires) is computed up front so the replay loop only has to keep time.
"""

from __future__ import annotations

import json
import math
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from codenook.devtools.bench.errors import BenchError

TRACE_VERSION = 1
DEFAULT_DEBOUNCE_MS = 75.0
DEFAULT_TRACE_NAME = "sample-python.json"
LINE_PAUSE_CHANCE = 0.35  # how often the recorder's typist pauses before starting a line


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
    """Shipped traces: inside the wheel when packaged, else the repository's ``benchmarks``.

    The wheel force-includes ``benchmarks/traces`` as ``codenook/benchmarks/traces``; a
    checkout keeps it at the top, above ``server/codenook/devtools/bench``.
    """
    here = Path(__file__).resolve()
    packaged = here.parents[2] / "benchmarks" / "traces"
    if packaged.is_dir():
        return packaged
    return here.parents[4] / "benchmarks" / "traces"


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
