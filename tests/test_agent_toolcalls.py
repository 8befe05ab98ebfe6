"""The streaming tool-call parser: Qwen3-Coder's XML calls, Hermes JSON calls, malformed ones.

The fuzz tests check what the agent loop relies on: no input raises, any split of a reply
gives the same events as the whole reply, every character of the reply comes back either as
visible text or inside a call's ``raw``, and well-formed calls round-trip exactly.
``CODENOOK_FUZZ=N`` runs N new examples instead of the fixed CI ones.
"""

from __future__ import annotations

import itertools
import json
import os
import re
from dataclasses import dataclass

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from codenook.agent import toolcalls
from codenook.agent.toolcalls import (
    CallDone,
    CallFailed,
    CallStarted,
    Event,
    MalformedCall,
    Text,
    ToolCall,
    ToolCallParser,
    parse_reply,
)

ENDED = "the reply ended inside a tool call (no </tool_call>)"

FUZZ = int(os.environ.get("CODENOOK_FUZZ") or 0)
FUZZ_SETTINGS = settings(
    max_examples=FUZZ or 200,
    deadline=None,
    derandomize=not FUZZ,
    database=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)


def feed_pieces(pieces: list[str]) -> tuple[list[Event], ToolCallParser]:
    parser = ToolCallParser()
    events: list[Event] = []
    for piece in pieces:
        events += parser.feed(piece)
    events += parser.close()
    return events, parser


def merged(events: list[Event]) -> list[Event]:
    out: list[Event] = []
    for event in events:
        if isinstance(event, Text):
            if not event.text:
                continue
            if out and isinstance(out[-1], Text):
                out[-1] = Text(out[-1].text + event.text)
                continue
        out.append(event)
    return out


def split_at(text: str, cuts: list[int]) -> list[str]:
    points = sorted({min(c, len(text)) for c in cuts})
    bounds = [0, *points, len(text)]
    return [text[a:b] for a, b in itertools.pairwise(bounds)]


def call_xml(name: str, params: list[tuple[str, str]]) -> str:
    inner = "".join(f"<parameter={k}>\n{v}\n</parameter>\n" for k, v in params)
    return f"<tool_call>\n<function={name}>\n{inner}</function>\n</tool_call>"


def only_call(text: str) -> ToolCall | MalformedCall:
    _, calls = parse_reply(text)
    assert len(calls) == 1
    return calls[0]


# --- well-formed calls ---------------------------------------------------------------------


def test_multiline_code_value_keeps_indentation_and_strips_one_newline_each_side() -> None:
    code = "    def f(x):\n        if x < 1:\n            return 0\n\n"
    text = call_xml("write_file", [("path", "src/a.py"), ("content", code)])
    call = only_call(text)
    assert call == ToolCall("write_file", {"path": "src/a.py", "content": code}, text)
    assert list(call.arguments) == ["path", "content"]


def test_values_containing_parameter_closers_that_are_not_closers() -> None:
    value = 'x = "</parameter>"\n</parameter> trailing\ny = "</parameter"\n<parameter=nope>'
    text = call_xml("edit", [("new", value), ("old", "</parameter>z")])
    assert only_call(text) == ToolCall("edit", {"new": value, "old": "</parameter>z"}, text)


def test_compact_and_spaced_layouts() -> None:
    compact = (
        "<tool_call><function=f><parameter=a>1</parameter>"
        "<parameter=b>2</parameter></function></tool_call>"
    )
    assert only_call(compact) == ToolCall("f", {"a": "1", "b": "2"}, compact)
    spaced = (
        "<tool_call>  <function= f >\n\n <parameter= a >x</parameter>  \n </function> </tool_call>"
    )
    assert only_call(spaced) == ToolCall("f", {"a": "x"}, spaced)


def test_no_parameters() -> None:
    text = "<tool_call>\n<function=list_files>\n</function>\n</tool_call>"
    assert only_call(text) == ToolCall("list_files", {}, text)


def test_several_calls_with_text_before_between_and_after() -> None:
    first = call_xml("read_file", [("path", "a.py")])
    second = call_xml("read_file", [("path", "b.py")])
    visible, calls = parse_reply(f"Let me look.\n{first}\nand then\n{second}\nDone.")
    assert visible == "Let me look.\n\nand then\n\nDone."
    assert calls == [
        ToolCall("read_file", {"path": "a.py"}, first),
        ToolCall("read_file", {"path": "b.py"}, second),
    ]


def test_stray_closers_and_function_tags_outside_calls_are_text() -> None:
    text = "a </tool_call> b <function=x> c </parameter> <tool_c d <"
    assert parse_reply(text) == (text, [])


def test_missing_function_closer_is_tolerated() -> None:
    text = "<tool_call>\n<function=f>\n<parameter=a>\n1\n</parameter>\n</tool_call>"
    assert only_call(text) == ToolCall("f", {"a": "1"}, text)


def test_reply_stopped_after_function_closer_is_a_complete_call() -> None:
    text = "<tool_call>\n<function=f>\n<parameter=a>\n1\n</parameter>\n</function>\n"
    assert parse_reply("ok " + text) == ("ok ", [ToolCall("f", {"a": "1"}, text)])
    cut = text + "</tool_c"  # max_tokens inside the closer
    assert only_call(cut) == ToolCall("f", {"a": "1"}, cut)


def test_json_variant() -> None:
    args = {"path": "a.py", "line": 3, "flags": ["x", "y"], "deep": {"k": None}, "t": True}
    text = "<tool_call>\n" + json.dumps({"name": "read_file", "arguments": args}) + "\n</tool_call>"
    call = only_call(text)
    assert call == ToolCall(
        "read_file",
        {
            "path": "a.py",
            "line": "3",
            "flags": '["x", "y"]',
            "deep": '{"k": null}',
            "t": "true",
        },
        text,
    )
    as_string = '<tool_call>{"name": "f", "arguments": "{\\"a\\": 1}"}</tool_call>'
    assert only_call(as_string) == ToolCall("f", {"a": "1"}, as_string)
    no_args = '<tool_call>{"name": "f"}</tool_call>'
    assert only_call(no_args) == ToolCall("f", {}, no_args)


# --- malformed calls -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("<parameter=a>1</parameter>", "the tool call has no <function=NAME> tag"),
        ("hello", "the tool call has no <function=NAME> tag"),
        ("", "the tool call has no <function=NAME> tag"),
        ("<function=><parameter=a>1</parameter>", "the tool call's function name is empty"),
        ("<function=read file>", "the function name 'read file' is not valid"),
        ("<function=f<parameter=a>1</parameter>", "the <function=NAME> tag is not closed with '>'"),
        ("<function=f><parameter=a>1", "parameter 'a' is not closed with </parameter>"),
        (
            "<function=f><parameter=a>1</parameter> junk",
            "parameter 'a' is not closed with </parameter>",
        ),
        (
            "<function=f><parameter=a>1</parameter><parameter=a>2</parameter>",
            "parameter 'a' is given twice",
        ),
        (
            "<function=f>\nplease <parameter=a>1</parameter>",
            "unexpected text 'please <parameter=a>1</parameter>' in the tool call"
            " outside any <parameter=NAME> tag",
        ),
        (
            "<function=f><parameter=>1</parameter>",
            "a <parameter=NAME> tag is malformed or not closed",
        ),
        ("<function=f></function> extra", "unexpected text 'extra' after </function>"),
        ('{"name": ', "the tool call is not valid JSON"),
        ('{"arguments": {}}', 'the JSON tool call has no "name" string'),
        ('{"name": "f", "arguments": [1]}', 'the JSON tool call\'s "arguments" is not an object'),
    ],
)
def test_malformed_calls_fail_with_a_message_and_parsing_continues(body: str, message: str) -> None:
    bad = f"<tool_call>{body}</tool_call>"
    good = call_xml("g", [("k", "v")])
    visible, calls = parse_reply(f"before {bad} between {good} after")
    assert visible == "before  between  after"
    assert calls == [MalformedCall(message, bad), ToolCall("g", {"k": "v"}, good)]


@pytest.mark.parametrize(
    "text",
    [
        "<tool_call>",
        "<tool_call>\n<funct",
        "<tool_call>\n<function=read_fi",
        "<tool_call>\n<function=f>\n<parameter=path>\na.py",
        "<tool_call>\n<function=f>\n<parameter=path>\na.py\n</parameter>\n",
        "<tool_call>\n<function=f>\n<parameter=path>\na.py\n</parameter>\n</func",
        "<tool_call>\n<function=f>\n<parame",
        '<tool_call>{"name": "f", "argu',
    ],
)
def test_reply_ending_inside_a_call(text: str) -> None:
    events, parser = feed_pieces(["say ", text])
    assert isinstance(events[-1], CallFailed)
    assert events[-1].error == MalformedCall(ENDED, text)
    assert parser.completed == 1


def test_too_long_call_fails_and_skips_to_its_closer(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(toolcalls, "MAX_CALL_CHARS", 200)
    long = "<tool_call><function=f><parameter=a>" + "x" * 300 + "</parameter></tool_call>"
    text = "a" + long + "b" + call_xml("g", [])
    for pieces in ([text], list(text), split_at(text, [7, 150, 199, 210, 333])):
        events, parser = feed_pieces(pieces)
        assert merged(events) == [
            Text("a"),
            CallStarted("f"),
            CallFailed(MalformedCall("tool call too long (over 200 characters)", long[:200])),
            Text("b"),
            CallStarted("g"),
            CallDone(ToolCall("g", {}, call_xml("g", []))),
        ]
        assert parser.completed == 2


def test_too_long_at_the_real_cap_streams_in_bounded_memory() -> None:
    parser = ToolCallParser()
    events = parser.feed("<tool_call><function=f><parameter=a>")
    for _ in range(120):
        events += parser.feed("y" * 10_000)
    events += parser.feed("</parameter></tool_call>done")
    events += parser.close()
    assert [type(e) for e in events] == [CallStarted, CallFailed, Text]
    assert isinstance(events[1], CallFailed)
    assert events[1].error.message == "tool call too long (over 1000000 characters)"
    assert events[2] == Text("done")


def test_hostile_json_does_not_raise() -> None:
    for body in ["[" * 100_000, '{"name": "f", "arguments": ' + "[" * 100_000, "{" * 50_000]:
        call = only_call(f"<tool_call>{body}</tool_call>")
        assert isinstance(call, MalformedCall)


# --- streaming -----------------------------------------------------------------------------


def test_only_a_possible_tag_start_is_held_back() -> None:
    parser = ToolCallParser()
    assert parser.feed("a < b, c <") == [Text("a < b, c ")]
    assert parser.feed("tool_c") == []
    assert parser.feed("ode>") == [Text("<tool_code>")]
    assert parser.feed("x </tool_call> <function=f>") == [Text("x </tool_call> <function=f>")]
    assert parser.feed("<tool_") == []
    assert parser.close() == [Text("<tool_")]


def test_call_started_as_soon_as_the_function_tag_is_complete() -> None:
    text = "Reading.\n" + call_xml("read_file", [("path", "a.py")]) + "\nafter"
    parser = ToolCallParser()
    seen: list[tuple[str, list[Event]]] = []
    shown = ""
    for i, ch in enumerate(text):
        events = parser.feed(ch)
        shown += "".join(e.text for e in events if isinstance(e, Text))
        if ch == "r" and text[: i + 1].endswith("after"):
            assert shown == "Reading.\n\nafter"  # text after the call streams at once
        if any(not isinstance(e, Text) for e in events):
            seen.append((text[: i + 1], events))
    tag_end = text.index("<function=read_file>") + len("<function=read_file>")
    assert seen[0] == (text[:tag_end], [CallStarted("read_file")])
    assert seen[1][0] == text[: text.index("</tool_call>") + len("</tool_call>")]
    assert seen[1][1] == [
        CallDone(ToolCall("read_file", {"path": "a.py"}, call_xml("read_file", [("path", "a.py")])))
    ]
    assert len(seen) == 2
    assert parser.completed == 1
    assert parser.close() == []


def test_completed_counts_done_and_failed() -> None:
    parser = ToolCallParser()
    assert parser.completed == 0
    parser.feed("<tool_call><function=f></tool_call>x<tool_call>oops</tool_call>")
    assert parser.completed == 2
    parser.feed("<tool_call><function=g>")
    assert parser.completed == 2
    parser.close()
    assert parser.completed == 3


# --- fuzz ----------------------------------------------------------------------------------

FRAGMENTS = [
    "<tool_call>",
    "</tool_call>",
    "<function=",
    "read_file",
    ">",
    "<parameter=",
    "path",
    "</parameter>",
    "</function>",
    "\n",
    " ",
    "x",
    "<",
    "{",
    "}",
    '"name": "f"',
    "<tool_c",
]
CUTS = st.lists(st.integers(min_value=0, max_value=400), max_size=12)


def check_invariants(text: str, cuts: list[int]) -> list[Event]:
    """Whole, split and char-by-char feeding agree, and no character of the reply is lost."""
    whole, parser = feed_pieces([text])
    for pieces in (split_at(text, cuts), list(text)):
        assert merged(feed_pieces(pieces)[0]) == merged(whole)
    pieces_back = []
    last_started: str | None = None
    for event in whole:
        if isinstance(event, Text):
            pieces_back.append(event.text)
        elif isinstance(event, CallStarted):
            assert last_started is None
            last_started = event.name
        else:
            if isinstance(event, CallDone):
                assert last_started == event.call.name
                pieces_back.append(event.call.raw)
            else:
                pieces_back.append(event.error.raw)
            last_started = None
    assert "".join(pieces_back) == text
    assert parser.completed == sum(isinstance(e, (CallDone, CallFailed)) for e in whole)
    visible, calls = parse_reply(text)
    assert visible == "".join(e.text for e in whole if isinstance(e, Text))
    assert len(calls) == parser.completed
    return whole


@FUZZ_SETTINGS
@given(st.lists(st.sampled_from(FRAGMENTS), max_size=40).map("".join), CUTS)
def test_fuzz_fragment_mixes(text: str, cuts: list[int]) -> None:
    check_invariants(text, cuts)


NAMES = st.from_regex(r"[A-Za-z_][A-Za-z0-9_.-]{0,12}", fullmatch=True)
VALUE_BITS = [
    "x",
    "\n",
    "  ",
    "\t",
    "<",
    ">",
    "</parameter",
    "</parameter>",
    "<parameter=",
    "</function>",
    "<function=y>",
    "<tool_call",
    "def f():\n    return 1\n",
    "é✓",
]
CLOSES_EARLY = re.compile(r"</parameter>\s*(<parameter=|</function>)")


def acceptable(value: str) -> bool:
    """A value the format can carry: no </tool_call>, no </parameter> that would close it."""
    return "</tool_call>" not in value and not CLOSES_EARLY.search(value)


VALUES = st.lists(st.sampled_from(VALUE_BITS), max_size=10).map("".join).filter(acceptable)
PARAMS = st.lists(st.tuples(NAMES, VALUES), max_size=4, unique_by=lambda p: p[0])
OUTSIDE = (
    st.lists(st.sampled_from(["x", " ", "\n", "<", ">", "</tool_call>", "<function=", "<tool_c"]))
    .map("".join)
    .filter(lambda t: "<tool_call>" not in t)
)
GAPS = st.sampled_from(["\n", "", " ", "\n\n", " \n "])


@dataclass(frozen=True)
class Generated:
    raw: str
    call: ToolCall
    header_end: int  # where <function=NAME> ends
    function_end: int  # where the </function> tag ends; -1 when it is left out


@st.composite
def calls(draw: st.DrawFn) -> Generated:
    name, params = draw(NAMES), draw(PARAMS)
    compact = draw(st.booleans())
    raw = "<tool_call>" + draw(GAPS) + f"<function={name}>"
    header_end = len(raw)
    raw += draw(GAPS)
    for key, value in params:
        if compact and not value.startswith("\n") and not value.endswith("\n"):
            raw += f"<parameter={key}>{value}</parameter>" + draw(GAPS)
        else:
            raw += f"<parameter={key}>\n{value}\n</parameter>" + draw(GAPS)
    function_end = -1
    if draw(st.integers(0, 4)):  # </function> is sometimes missing
        raw += "</function>"
        function_end = len(raw)
        raw += draw(GAPS)
    raw += "</tool_call>"
    return Generated(raw, ToolCall(name, dict(params), raw), header_end, function_end)


@FUZZ_SETTINGS
@given(st.lists(st.tuples(OUTSIDE, calls()), max_size=3), OUTSIDE, CUTS)
def test_fuzz_valid_calls_round_trip(
    chunks: list[tuple[str, Generated]], tail: str, cuts: list[int]
) -> None:
    text = "".join(before + gen.raw for before, gen in chunks) + tail
    check_invariants(text, cuts)
    visible, parsed = parse_reply(text)
    assert visible == "".join(before for before, _ in chunks) + tail
    assert parsed == [gen.call for _, gen in chunks]


@FUZZ_SETTINGS
@given(calls(), st.integers(min_value=0), CUTS)
def test_fuzz_truncated_calls(gen: Generated, at: int, cuts: list[int]) -> None:
    text = gen.raw[: at % (len(gen.raw) + 1)]
    events = check_invariants(text, cuts)
    visible, parsed = parse_reply(text)
    complete = text == gen.raw or 0 <= gen.function_end <= len(text)
    if len(text) < len("<tool_call>"):
        assert (visible, parsed) == (text, [])
    elif complete:  # stopped after </function>: the call is whole
        assert parsed == [ToolCall(gen.call.name, gen.call.arguments, text)]
    else:
        assert parsed == [MalformedCall(ENDED, text)]
    assert (CallStarted(gen.call.name) in events) == (len(text) >= gen.header_end)
