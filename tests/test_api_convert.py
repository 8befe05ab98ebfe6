"""The APIs' translation, exactly: request JSON to turns and prompt, reply text to content
blocks, stop sequences, and the Anthropic event sequence. Pure functions, no engine."""

from __future__ import annotations

import pytest

from codenook.api import messages, openai
from codenook.api.convert import (
    ApiError,
    Conversation,
    ToolDef,
    Turn,
    call_xml,
    coerce_arguments,
    render,
    to_messages,
)
from codenook.api.reply import (
    ReplyAssembler,
    ReplyMemory,
    StopWatch,
    TextDelta,
    assemble,
    find_stop,
    held_back,
)
from codenook.api.service import Outcome, Prepared, Service
from codenook.assist.chat import Message
from codenook.engine.protocol import GenerationResult
from fake_engine import INFO

READ = ToolDef(
    "Read",
    "Read a file.",
    {
        "type": "object",
        "properties": {
            "file_path": {"type": "string"},
            "limit": {"type": "integer"},
            "flags": {"type": "array"},
        },
    },
)
NATIVE_TEMPLATE = (
    "{% if tools %}<|im_start|>system\n{% for t in tools %}TOOL {{ t.function.name }}\n"
    "{% endfor %}<|im_end|>\n{% endif %}"
    "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
    "{# tool_call #}"
)


def claude_code_request() -> dict:
    """The shape Claude Code 2.1 sends (shared/notes/claude-code.md), shortened."""
    return {
        "model": "qwen3-coder-next",
        "max_tokens": 32000,
        "stream": True,
        "thinking": {"type": "adaptive"},
        "output_config": {"effort": "high"},
        "context_management": {"edits": []},
        "metadata": {"user_id": "u"},
        "system": [
            {"type": "text", "text": "You are Claude Code."},
            {"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}},
        ],
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "<system-reminder>ctx</system-reminder>"},
                    {"type": "text", "text": "say hello", "cache_control": {"type": "ephemeral"}},
                ],
            },
            {"role": "system", "content": "Environment: linux"},
        ],
        "tools": [
            {
                "name": "Read",
                "description": "Read a file.",
                "input_schema": READ.schema,
                "cache_control": {"type": "ephemeral"},
            },
            {"type": "web_search_20250305", "name": "web_search"},
        ],
    }


def test_a_claude_code_request_becomes_one_system_turn_and_in_place_system_text() -> None:
    conversation = messages.parse_conversation(claude_code_request(), ReplyMemory())
    assert conversation.turns == [
        Turn("system", "You are Claude Code.\n\nBe brief."),
        Turn("user", "<system-reminder>ctx</system-reminder>\n\nsay hello"),
        Turn("system", "Environment: linux"),
    ]
    assert [t.name for t in conversation.tools] == ["Read"]  # the server tool is not ours
    assert to_messages(conversation.turns, native=False) == [
        Message("system", "You are Claude Code.\n\nBe brief."),
        Message(
            "user", "<system-reminder>ctx</system-reminder>\n\nsay hello\n\nEnvironment: linux"
        ),
    ]


def test_a_later_system_entry_joins_the_next_user_message_when_none_precedes_it() -> None:
    turns = [Turn("user", "a"), Turn("assistant", "b"), Turn("system", "s"), Turn("user", "c")]
    assert to_messages(turns, native=False) == [
        Message("user", "a"),
        Message("assistant", "b"),
        Message("user", "s\n\nc"),
    ]


def test_tool_results_are_user_text_without_native_tools_and_tool_turns_with_them() -> None:
    body = {
        "messages": [
            {"role": "user", "content": "read it"},
            {
                "role": "assistant",
                "content": [
                    {"type": "thinking", "thinking": "hmm", "signature": "sig"},
                    {"type": "text", "text": "Reading."},
                    {"type": "tool_use", "id": "toolu_a", "name": "Read", "input": {"limit": 2}},
                    {"type": "tool_use", "id": "toolu_b", "name": "Read", "input": {"x": "y"}},
                ],
            },
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": "toolu_a", "content": "1\tx"},
                    {
                        "type": "tool_result",
                        "tool_use_id": "toolu_b",
                        "content": [{"type": "text", "text": "no such file"}],
                        "is_error": True,
                    },
                    {"type": "text", "text": "go on"},
                ],
            },
        ]
    }
    conversation = messages.parse_conversation(body, ReplyMemory())
    raw = "Reading.\n" + call_xml("Read", {"limit": 2}) + "\n" + call_xml("Read", {"x": "y"})
    assert conversation.turns == [
        Turn("user", "read it"),
        Turn("assistant", raw),
        Turn("tool", "1\tx"),
        Turn("tool", "[error] no such file"),
        Turn("user", "go on"),
    ]
    assert call_xml("Read", {"limit": 2}) == (
        "<tool_call>\n<function=Read>\n<parameter=limit>\n2\n</parameter>\n</function>\n</tool_call>"
    )
    fallback = to_messages(conversation.turns, native=False)
    assert fallback[2:] == [
        Message(
            "user",
            "<tool_response>\n1\tx\n</tool_response>\n"
            "<tool_response>\n[error] no such file\n</tool_response>",
        ),
        Message("user", "go on"),
    ]
    native = to_messages(conversation.turns, native=True)
    assert [m.role for m in native] == ["user", "assistant", "tool", "tool", "user"]


def test_an_echoed_reply_renders_as_exactly_what_the_model_wrote() -> None:
    memory = ReplyMemory()
    raw = "I will read.\n\n" + call_xml("Read", {"limit": " 2"})  # not what we would render
    content = assemble(raw, [READ])
    memory.remember(content, raw)
    echoed = {
        "messages": [
            {"role": "user", "content": "q"},
            {"role": "assistant", "content": content.blocks},
            {"role": "user", "content": "next"},
        ]
    }
    assert messages.parse_conversation(echoed, memory).turns[1] == Turn("assistant", raw)
    memory.remember(assemble("just text", []), "just text")
    assert memory.recall("just text", ()) == "just text"


def test_images_are_refused_at_top_level_and_a_placeholder_in_tool_results() -> None:
    image = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": ""}}
    with pytest.raises(ApiError) as refused:
        messages.parse_conversation(
            {"messages": [{"role": "user", "content": [image]}]}, ReplyMemory()
        )
    assert refused.value.status == 400 and "image" in refused.value.message
    result = {"type": "tool_result", "tool_use_id": "t", "content": [image]}
    turns = messages.parse_conversation(
        {"messages": [{"role": "user", "content": [result]}]}, ReplyMemory()
    ).turns
    assert turns == [Turn("tool", messages.IMAGE_IN_RESULT.format(kind="image"))]


def test_bad_requests_name_the_field() -> None:
    for body, field in [
        ({}, "messages"),
        ({"messages": [{"role": "bot", "content": "x"}]}, "role"),
        ({"messages": "hi"}, "messages"),
    ]:
        with pytest.raises(ApiError) as error:
            messages.parse_conversation(body, ReplyMemory())
        assert field in error.value.message
    with pytest.raises(ApiError):
        messages.parse_limits({"max_tokens": 0})
    assert messages.parse_limits({"max_tokens": 5, "stop_sequences": ["x"]}) == (5, ["x"])


def test_tool_choice_none_offers_no_tools() -> None:
    body = claude_code_request() | {"tool_choice": {"type": "none"}}
    assert messages.parse_conversation(body, ReplyMemory()).tools == []


def test_arguments_are_typed_by_the_schema_and_bad_json_stays_text() -> None:
    args = {"file_path": "12", "limit": "40", "flags": "[1, 2]", "other": "7"}
    assert coerce_arguments(args, READ.schema) == {
        "file_path": "12",
        "limit": 40,
        "flags": [1, 2],
        "other": "7",
    }
    assert coerce_arguments({"limit": "lots"}, READ.schema) == {"limit": "lots"}


def test_a_reply_becomes_text_and_tool_use_blocks_in_order() -> None:
    raw = (
        "Let me look.\n\n"
        + call_xml("Read", {"file_path": "a.py", "limit": 3})
        + "\n"
        + "<tool_call>\n<function=Read>\n<parameter=x>\n</tool_call>"
        + "\n"
    )
    content = assemble(raw, [READ])
    kinds = [b["type"] for b in content.blocks]
    assert kinds == ["text", "tool_use", "text"]
    assert content.blocks[0]["text"] == "Let me look.\n\n"
    use = content.blocks[1]
    assert (use["name"], use["input"]) == ("Read", {"file_path": "a.py", "limit": 3})
    assert use["id"].startswith("toolu_") and len(use["id"]) == 30
    assert content.blocks[2]["text"].startswith("\n<tool_call>\n<function=Read>")  # malformed
    # Without tools, a call-shaped text is only text.
    assert [b["type"] for b in assemble(raw, []).blocks] == ["text"]


def test_streaming_a_reply_in_any_pieces_gives_the_same_blocks() -> None:
    raw = "Hi.\n" + call_xml("Read", {"file_path": "a.py"}) + "\n\nDone."
    whole = [{k: v for k, v in b.items() if k != "id"} for b in assemble(raw, [READ]).blocks]
    for size in (1, 3, 7):
        assembler = ReplyAssembler([READ])
        ops = []
        for at in range(0, len(raw), size):
            ops += assembler.feed(raw[at : at + size])
        ops += assembler.close()
        got = [{k: v for k, v in b.items() if k != "id"} for b in assembler.content.blocks]
        assert got == whole
        assert [type(op).__name__ for op in ops if not isinstance(op, TextDelta) or op.first] == [
            "TextDelta",
            "BlockEnd",
            "ToolUse",
            "BlockEnd",
            "TextDelta",
            "BlockEnd",
        ]


def test_stop_sequences_cut_the_reply_and_never_show_a_partial_one() -> None:
    assert find_stop("abcENDxEND", ["END", "cE"]) == (2, "cE")
    assert held_back("abcEN", ["END"]) == 2
    assert held_back("abc", ["END"]) == 0
    watch = StopWatch(["END"])
    shown = "".join(watch.push(p) for p in ["ab", "cE", "N", "Dmore"])
    assert shown == "abc" and watch.hit == (3, "END") and watch.text == "abc"
    assert not StopWatch(["END"]).until("xxEN")
    until = StopWatch(["END"]).until
    assert not until("xxE") and until("xxEND")  # found across two calls
    watch = StopWatch(["END"])
    shown = "".join(watch.push(p) for p in ["ab", "E"]) + watch.finish("abE")
    assert shown == "abE" and watch.hit is None


def _outcome(text: str, reason: str = "eos", stop: str | None = None) -> Outcome:
    result = GenerationResult(
        text, "eos", prompt_tokens=100, cached_tokens=60, prefilled_tokens=40, generated_tokens=7
    )
    return Outcome(text, text, reason, stop, result)


def test_the_event_sequence_of_a_streamed_tool_use_reply() -> None:
    prepared = Prepared((("p", False),), 100, 50, ())
    raw = "Reading.\n" + call_xml("Read", {"limit": 2})
    assembler = ReplyAssembler([READ])
    events = messages.start_events("msg_1", "m", prepared)
    events += messages.op_events(assembler.feed(raw) + assembler.close())
    outcome = _outcome(raw)
    events += messages.end_events(assembler.content, prepared, outcome)
    assert [name for name, _ in events] == [
        "message_start",
        "content_block_start",
        "content_block_delta",
        "content_block_stop",
        "content_block_start",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    assert events[0][1]["message"]["usage"]["input_tokens"] == 100  # the estimate before
    assert events[2][1]["delta"] == {"type": "text_delta", "text": "Reading.\n"}
    start = events[4][1]["content_block"]
    assert (start["type"], start["name"], start["input"]) == ("tool_use", "Read", {})
    assert events[5][1]["delta"] == {"type": "input_json_delta", "partial_json": '{"limit": 2}'}
    assert events[7][1] == {
        "type": "message_delta",
        "delta": {"stop_reason": "tool_use", "stop_sequence": None},
        "usage": {
            "input_tokens": 40,
            "output_tokens": 7,
            "cache_read_input_tokens": 60,
            "cache_creation_input_tokens": 0,
        },
    }


def test_stop_reasons() -> None:
    text = assemble("hello", [])
    assert messages.stop_reason(text, _outcome("hello")) == "end_turn"
    assert messages.stop_reason(text, _outcome("hello", "length")) == "max_tokens"
    assert messages.stop_reason(text, _outcome("hello", "stop_sequence", "X")) == "stop_sequence"
    assert openai.finish_reason(_outcome("hello", "length"), False) == "length"
    assert openai.finish_reason(_outcome("hello"), True) == "tool_calls"


def test_native_templates_get_the_tools_and_others_a_description() -> None:
    conversation = Conversation([Turn("user", "hi"), Turn("tool", "ok")], [READ], prefill="Sure")
    native = "".join(text for text, _ in render(conversation, NATIVE_TEMPLATE))
    assert native.startswith("<|im_start|>system\nTOOL Read\n")
    assert "<|im_start|>tool\nok<|im_end|>" in native
    assert native.endswith("<|im_start|>assistant\nSure")
    parts = render(conversation, None)
    fallback = "".join(text for text, _ in parts)
    assert fallback.startswith("<|im_start|>system\n# Tools")
    assert '## Read\nRead a file.\nParameters: {"type":"object"' in fallback
    assert "<tool_response>\nok\n</tool_response>" in fallback
    assert ("hi", False) in parts  # user text is never parsed for special tokens


def test_openai_messages_become_the_same_turns() -> None:
    service = Service(backend=None)  # type: ignore[arg-type]
    body = {
        "messages": [
            {"role": "developer", "content": "be brief"},
            {"role": "user", "content": [{"type": "text", "text": "hi"}]},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "Read", "arguments": '{"limit": 2}'},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "call_1", "content": "data"},
        ],
        "tools": [{"type": "function", "function": {"name": "Read", "parameters": READ.schema}}],
    }
    conversation = openai.parse_chat(body, service)
    assert conversation.turns == [
        Turn("system", "be brief"),
        Turn("user", "hi"),
        Turn("assistant", call_xml("Read", {"limit": 2})),
        Turn("tool", "data"),
    ]
    assert conversation.tools[0].schema == READ.schema
    assert openai.parse_chat(body | {"tool_choice": "none"}, service).tools == []
    with pytest.raises(ApiError):
        openai.parse_chat(
            {"messages": [{"role": "user", "content": [{"type": "image_url"}]}]}, service
        )


def test_a_prompt_that_does_not_fit_is_a_400_that_says_so() -> None:
    service = Service(backend=None)  # type: ignore[arg-type]
    parts = (("p", False),)
    with pytest.raises(ApiError) as error:
        service.fit(INFO, parts, 4096, 10, [])
    assert error.value.status == 400
    assert error.value.message == (
        "prompt is 4096 tokens; the model's context is 4096 (model.contextSize)"
    )
    assert service.fit(INFO, parts, 4000, 32000, []).max_tokens == 96  # capped to what fits
    assert service.fit(INFO, parts, 4000, None, []).max_tokens == 96
    assert service.fit(INFO, parts, 10, 5, ["", "x"]).stops == ("x",)
