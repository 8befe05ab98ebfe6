"""Tool calls in a streaming model reply (Qwen3-Coder's XML format, and Hermes JSON).

The agent loop shows the reply while it is generated and may stop generating as soon as the
first call is complete, so the reply is parsed piece by piece as tokens arrive rather than
once at the end. Visible text is passed on at once; only a tail that could still become
``<tool_call>`` is held back, because showing half a tag and then taking it back is worse
than a few characters of delay. A call's own text is held until its ``</tool_call>``: a
``</parameter>`` can only be told apart from code that merely contains that string by what
follows it, and the call is judged only once it is whole, so any split of the reply gives the
same events as the whole reply at once. Nothing here raises: a malformed call becomes an
error the loop sends back to the model, which can then try again.
"""

from __future__ import annotations

import contextlib
import json
import re
from dataclasses import dataclass
from typing import Literal

MAX_CALL_CHARS = 1_000_000  # a runaway call must not hold unbounded memory
_HEADER_WINDOW = 1000  # CallStarted needs <function=NAME> early; later is not a header
_START, _END = "<tool_call>", "</tool_call>"
_FUNC, _FUNC_END = "<function=", "</function>"
_PARAM, _PARAM_END = "<parameter=", "</parameter>"
_ENDED = "the reply ended inside a tool call (no </tool_call>)"
_WS = re.compile(r"\s*")
_NAME = re.compile(r"[^\s<>]+")


@dataclass(frozen=True)
class ToolCall:
    name: str
    arguments: dict[str, str]  # parameter name -> value, in the order given
    raw: str  # the exact text of the call, from <tool_call> to </tool_call>


@dataclass(frozen=True)
class MalformedCall:
    message: str  # one sentence, sent back to the model as the tool's error
    raw: str


@dataclass(frozen=True)
class Text:
    text: str  # adjacent Text events may be split anywhere


@dataclass(frozen=True)
class CallStarted:
    name: str


@dataclass(frozen=True)
class CallDone:
    call: ToolCall


@dataclass(frozen=True)
class CallFailed:
    error: MalformedCall


Event = Text | CallStarted | CallDone | CallFailed  # a runtime union: fine on 3.10


def _snippet(text: str) -> str:
    text = text.strip()
    return repr(text if len(text) <= 40 else text[:40] + "…")


def _header(body: str, final: bool) -> tuple[Literal["ok", "pending", "bad"], str, int]:
    """Judge ``<function=NAME>`` at the start of a call body: (state, name or error, end).

    Monotone on purpose: once a prefix of the body is "ok" or "bad", every longer body gets the
    same verdict, so CallStarted is the same whether the call arrived in pieces or at once.
    """
    head = body[:_HEADER_WINDOW]
    final = final or len(body) >= _HEADER_WINDOW
    start = _WS.match(head).end()  # type: ignore[union-attr]
    if not head.startswith(_FUNC, start):
        if not final and _FUNC.startswith(head[start:]):
            return "pending", "", 0
        return "bad", "the tool call has no <function=NAME> tag", 0
    begin = start + len(_FUNC)
    close = head.find(">", begin)
    less = head.find("<", begin)
    if close < 0 or 0 <= less < close:
        if close < 0 and less < 0 and not final:
            return "pending", "", 0
        return "bad", "the <function=NAME> tag is not closed with '>'", 0
    name = head[begin:close].strip()
    if not name:
        return "bad", "the tool call's function name is empty", 0
    if not _NAME.fullmatch(name):
        return "bad", f"the function name {_snippet(name)} is not valid", 0
    return "ok", name, close + 1


def _skip_ws(text: str, pos: int) -> int:
    return _WS.match(text, pos).end()  # type: ignore[union-attr]


def _find_closer(body: str, start: int) -> int:
    """The ``</parameter>`` that really ends a value: one followed by the next tag or the end."""
    at = body.find(_PARAM_END, start)
    while at >= 0:
        after = _skip_ws(body, at + len(_PARAM_END))
        if after == len(body) or body.startswith((_PARAM, _FUNC_END), after):
            return at
        at = body.find(_PARAM_END, at + 1)
    return -1


def _parse_xml(body: str, pos: int, name: str, raw: str, ended: bool) -> ToolCall | MalformedCall:
    arguments: dict[str, str] = {}
    while True:
        pos = _skip_ws(body, pos)
        if pos == len(body):
            if not ended:  # a stop sequence may cut </tool_call>, but not before </function>
                return MalformedCall(_ENDED, raw)
            return ToolCall(name, arguments, raw)
        if body.startswith(_FUNC_END, pos):
            rest = body[pos + len(_FUNC_END) :].strip()
            if rest and (ended or not _END.startswith(rest)):
                return MalformedCall(f"unexpected text {_snippet(rest)} after </function>", raw)
            return ToolCall(name, arguments, raw)
        if not body.startswith(_PARAM, pos):
            if not ended and any(tag.startswith(body[pos:]) for tag in (_PARAM, _FUNC_END, _END)):
                return MalformedCall(_ENDED, raw)
            message = f"unexpected text {_snippet(body[pos : pos + 60])} in the tool call"
            return MalformedCall(message + " outside any <parameter=NAME> tag", raw)
        begin = pos + len(_PARAM)
        close = body.find(">", begin)
        key = body[begin:close].strip() if close >= 0 else ""
        if close < 0 or not _NAME.fullmatch(key):
            if close < 0 and not ended:
                return MalformedCall(_ENDED, raw)
            return MalformedCall("a <parameter=NAME> tag is malformed or not closed", raw)
        if key in arguments:
            return MalformedCall(f"parameter '{key}' is given twice", raw)
        end = _find_closer(body, close + 1)
        if end < 0:
            if not ended:
                return MalformedCall(_ENDED, raw)
            return MalformedCall(f"parameter '{key}' is not closed with </parameter>", raw)
        value = body[close + 1 : end]
        value = value[1:] if value.startswith("\n") else value  # the format's own newlines
        arguments[key] = value[:-1] if value.endswith("\n") else value
        pos = end + len(_PARAM_END)


def _parse_json(body: str, raw: str, ended: bool) -> ToolCall | MalformedCall:
    try:
        obj = json.loads(body)
    except (ValueError, RecursionError):
        return MalformedCall("the tool call is not valid JSON" if ended else _ENDED, raw)
    name = obj.get("name") if isinstance(obj, dict) else None
    if not isinstance(name, str) or not name.strip():
        return MalformedCall('the JSON tool call has no "name" string', raw)
    args = obj.get("arguments", obj.get("parameters"))
    if isinstance(args, str):  # some models send the arguments as a JSON string
        with contextlib.suppress(ValueError, RecursionError):
            args = json.loads(args)
    if args is None:
        args = {}
    if not isinstance(args, dict):
        return MalformedCall('the JSON tool call\'s "arguments" is not an object', raw)
    arguments = {
        str(k): v if isinstance(v, str) else json.dumps(v, ensure_ascii=False)
        for k, v in args.items()
    }
    return ToolCall(name.strip(), arguments, raw)


def _finish(raw: str, ended: bool, started: bool) -> list[Event]:
    """The events that end one call, whose whole text (``ended``: with ``</tool_call>``) is raw."""
    body = raw[len(_START) : len(raw) - len(_END) if ended else len(raw)]
    events: list[Event] = []
    try:
        state, name, pos = _header(body, final=True)
        if state == "ok":
            if not started:
                events.append(CallStarted(name))
            result = _parse_xml(body, pos, name, raw, ended)
        elif body.lstrip().startswith("{"):
            result = _parse_json(body, raw, ended)
            if isinstance(result, ToolCall):
                events.append(CallStarted(result.name))
        else:  # cut off before the header was complete: say so rather than "no tag"
            cut = not ended and _header(body, final=False)[0] == "pending"
            result = MalformedCall(_ENDED if cut else name, raw)
    except Exception as exc:  # never raise into the agent loop; the model gets the reason
        result = MalformedCall(f"the tool call could not be parsed ({type(exc).__name__})", raw)
    events.append(CallDone(result) if isinstance(result, ToolCall) else CallFailed(result))
    return events


class ToolCallParser:
    """Feed the reply as it streams; each feed returns what can be shown or run so far."""

    def __init__(self) -> None:
        self._buf = ""  # outside: held-back tail; in a call: the call so far; skipping: tail
        self._mode: Literal["text", "call", "skip"] = "text"
        self._scan = 0  # in a call: where to look for </tool_call> next
        self._header: Literal["ok", "pending", "bad"] = "pending"
        self._completed = 0

    @property
    def completed(self) -> int:
        return self._completed

    def feed(self, piece: str) -> list[Event]:
        self._buf += piece
        events: list[Event] = []
        while self._step(events):
            pass
        self._completed += sum(isinstance(e, (CallDone, CallFailed)) for e in events)
        return events

    def close(self) -> list[Event]:
        events: list[Event] = []
        if self._mode == "text" and self._buf:
            events.append(Text(self._buf))
        elif self._mode == "call":
            events.extend(_finish(self._buf, ended=False, started=self._header == "ok"))
        self._completed += sum(isinstance(e, (CallDone, CallFailed)) for e in events)
        self._buf, self._mode = "", "text"
        return events

    def _step(self, events: list[Event]) -> bool:
        """Make what progress the buffer allows; True if the mode changed (try again)."""
        buf = self._buf
        if self._mode == "text":
            at = buf.find(_START)
            if at < 0:
                keep = next(
                    (n for n in range(len(_START) - 1, 0, -1) if buf.endswith(_START[:n])), 0
                )
                if len(buf) > keep:
                    events.append(Text(buf[: len(buf) - keep]))
                self._buf = buf[len(buf) - keep :]
                return False
            if at:
                events.append(Text(buf[:at]))
            self._buf, self._mode = buf[at:], "call"
            self._scan, self._header = len(_START), "pending"
            return True
        if self._mode == "skip":
            at = buf.find(_END)
            if at < 0:
                self._buf = buf[-(len(_END) - 1) :]
                return False
            self._buf, self._mode = buf[at + len(_END) :], "text"
            return True
        at = buf.find(_END, self._scan, MAX_CALL_CHARS)
        if at >= 0:
            end = at + len(_END)
            events.extend(_finish(buf[:end], ended=True, started=self._header == "ok"))
            self._buf, self._mode = buf[end:], "text"
            return True
        if len(buf) >= MAX_CALL_CHARS:
            raw = buf[:MAX_CALL_CHARS]
            state, name, _ = _header(raw[len(_START) :], final=True)
            if self._header == "pending" and state == "ok":
                events.append(CallStarted(name))
            message = f"tool call too long (over {MAX_CALL_CHARS} characters)"
            events.append(CallFailed(MalformedCall(message, raw)))
            # An </tool_call> may straddle the cap; skip to the first one, wherever it is.
            self._buf, self._mode = buf[MAX_CALL_CHARS - len(_END) + 1 :], "skip"
            return True
        self._scan = max(len(_START), len(buf) - len(_END) + 1)
        if self._header == "pending":
            state, name, _ = _header(buf[len(_START) :], final=False)
            self._header = state
            if state == "ok":
                events.append(CallStarted(name))
        return False


def parse_reply(text: str) -> tuple[str, list[ToolCall | MalformedCall]]:
    """A finished reply's visible text and its calls in order: the same as streaming it."""
    parser = ToolCallParser()
    events = parser.feed(text) + parser.close()
    visible = "".join(e.text for e in events if isinstance(e, Text))
    calls: list[ToolCall | MalformedCall] = []
    for event in events:
        if isinstance(event, CallDone):
            calls.append(event.call)
        elif isinstance(event, CallFailed):
            calls.append(event.error)
    return visible, calls
