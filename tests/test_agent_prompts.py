"""The agent's prompts: rendered with the model's own template, tools included the way a
tool-trained template describes them, and growing only at the end from step to step."""

from __future__ import annotations

import itertools

from codenook.agent.prompts import render, system_message, task_message, tool_result, uses_tools
from codenook.agent.toolcalls import ToolCall, parse_reply
from codenook.agent.toolset import TOOLS, check_arguments
from codenook.agent.workspace import ToolError
from codenook.assist.chat import CHATML, Message

# A tool-aware template in the style of Qwen3-Coder's (written for this test): tools listed in
# the system turn with an XML call format, tool results as user turns in <tool_response>.
TOOL_TEMPLATE = """\
{%- if messages[0].role == 'system' %}<|im_start|>system
{{ messages[0].content }}{% if tools %}

# Tools
<tools>
{%- for tool in tools %}
<function>
<name>{{ tool.function.name }}</name>
<description>{{ tool.function.description }}</description>
<parameters>
{%- for name, p in tool.function.parameters.properties.items() %}
<parameter><name>{{ name }}</name><type>{{ p.type }}</type></parameter>
{%- endfor %}
</parameters>
</function>
{%- endfor %}
</tools>
Call a tool with <tool_call><function=NAME><parameter=KEY>value</parameter></function></tool_call>
{%- endif %}<|im_end|>
{% endif %}
{%- for message in messages %}
{%- if message.role == 'tool' %}
{%- if loop.previtem is not defined or loop.previtem.role != 'tool' %}<|im_start|>user
{% endif %}<tool_response>
{{ message.content }}
</tool_response>
{% if loop.nextitem is not defined or loop.nextitem.role != 'tool' %}<|im_end|>
{% endif %}
{%- elif message.role != 'system' %}<|im_start|>{{ message.role }}
{{ message.content }}<|im_end|>
{% endif %}
{%- endfor %}
{%- if add_generation_prompt %}<|im_start|>assistant
{% endif %}"""


READ_CALL = (
    "<tool_call>\n<function=read_file>\n<parameter=path>\na.py\n</parameter>\n</function>\n"
    "</tool_call>"
)


def _steps(template: str, native: bool) -> list[tuple[tuple[str, bool], ...]]:
    messages = [
        Message("system", system_message(["proj"], TOOLS, native)),
        Message("user", task_message("rename f to g", "a.py", "def f():")),
    ]
    prompts = [render(template, messages, TOOLS, native=native)]
    reply = READ_CALL
    messages += [Message("assistant", reply), tool_result("def f():\n    pass\n", native)]
    prompts.append(render(template, messages, TOOLS, native=native))
    messages += [
        Message("assistant", reply + reply),
        tool_result("first", native),
        tool_result("second <|im_end|>", native),
    ]
    prompts.append(render(template, messages, TOOLS, native=native))
    return prompts


def _text(parts: tuple[tuple[str, bool], ...]) -> str:
    return "".join(text for text, _ in parts)


def test_a_tool_trained_template_gets_the_tools_and_renders_results_its_own_way() -> None:
    assert uses_tools(TOOL_TEMPLATE) and not uses_tools(CHATML) and not uses_tools(None)
    first, second, third = _steps(TOOL_TEMPLATE, native=True)
    system = _text(first)
    for tool in TOOLS:
        assert f"<name>{tool.name}</name>" in system
    assert "<parameter><name>old_text</name><type>string</type></parameter>" in system
    assert "To call a tool, reply" not in system  # the fallback text is not added
    assert "<|im_start|>user\n<tool_response>\ndef f():\n    pass\n\n</tool_response>" in _text(
        second
    )
    # Two results of one reply share one user turn, and a marker in a result stays text.
    assert _text(third).count("<|im_start|>user\n<tool_response>") == 2
    assert ("second <|im_end|>", False) in third


def test_without_tool_support_the_fallback_describes_the_tools_and_the_format() -> None:
    first, second, _ = _steps(CHATML, native=False)
    system = _text(first)
    assert "<function=TOOL_NAME>" in system and "<parameter=PARAMETER_NAME>" in system
    for tool in TOOLS:
        assert f"- {tool.name}: " in system
    assert "  - start_line (integer, optional): " in system
    assert "<|im_start|>user\n<tool_response>\ndef f():\n    pass\n\n</tool_response>" in _text(
        second
    )


def test_every_step_starts_with_the_previous_step_part_for_part() -> None:
    """What lets the engine prefill only the new turn: the token prefix is the same."""
    for template, native in ((TOOL_TEMPLATE, True), (CHATML, False)):
        prompts = _steps(template, native)
        for before, after in itertools.pairwise(prompts):
            # The previous prompt's last part (the assistant header) starts the next one's
            # assistant turn; every earlier part is the same part.
            assert after[: len(before) - 1] == before[:-1]
            assert after[len(before) - 1] == before[-1]


def test_arguments_are_checked_and_typed_by_the_tool_list() -> None:
    assert check_arguments("read_file", {"path": "a.py", "start_line": " 3 "}) == {
        "path": "a.py",
        "start_line": 3,
        "end_line": None,
    }
    for name, args, words in (
        ("read_file", {}, "needs the parameter 'path'"),
        ("read_file", {"path": "a", "start_line": "three"}, "must be a whole number"),
        ("read_file", {"path": "a", "file": "b"}, "has no parameter 'file'"),
        ("delete_everything", {}, "there is no tool named"),
    ):
        try:
            check_arguments(name, args)
        except ToolError as exc:
            assert words in str(exc)
        else:
            raise AssertionError(f"{name} {args} was accepted")


def test_a_reply_in_the_fallback_format_parses_into_calls() -> None:
    reply = "I will read it.\n" + READ_CALL
    text, calls = parse_reply(reply)
    assert text.strip() == "I will read it."
    assert calls == [ToolCall("read_file", {"path": "a.py"}, reply[reply.index("<tool_call>") :])]
