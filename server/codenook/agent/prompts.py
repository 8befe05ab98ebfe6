"""The agent's conversation as prompt parts: pure functions, no engine, no editor.

The conversation is rendered with the model's own chat template and grows only at its end:
every step's prompt starts with the previous step's prompt, part for part, so the engine
reuses all of it and prefills only the new turn. That rules out anything that rewrites
earlier turns (trimming old tool results, re-rendering replies as structured calls): a
reply goes back exactly as the model wrote it.

Tool-trained templates (Qwen3-Coder's) get the tool list through their ``tools`` variable
and describe it in the words the model was trained on. Templates without tool support (the
embedded SmolLM2, plain ChatML) get the fallback: the same tools and the same
``<tool_call><function=…>`` format described in the system message, and tool results in a
user turn wrapped in ``<tool_response>`` (docs/agent.md).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from codenook.assist.chat import Message, render_chat
from codenook.engine.protocol import PromptPart


@dataclass(frozen=True)
class Param:
    name: str
    kind: str  # JSON schema type: "string" or "integer"
    description: str
    required: bool = True


@dataclass(frozen=True)
class ToolSpec:
    name: str
    description: str
    params: tuple[Param, ...]

    def schema(self) -> dict[str, Any]:
        """The OpenAI-style function schema chat templates expect in ``tools``."""
        properties = {p.name: {"type": p.kind, "description": p.description} for p in self.params}
        return {
            "type": "function",
            "function": {
                "name": self.name,
                "description": self.description,
                "parameters": {
                    "type": "object",
                    "properties": properties,
                    "required": [p.name for p in self.params if p.required],
                },
            },
        }


SYSTEM = """\
You are codenook's coding agent, working in the user's project {roots} inside their editor.
Do the user's task by calling tools. Read before you edit: edit_file replaces an exact piece \
of a file's current text, so copy old_text exactly from read_file's output, with enough lines \
to be unique. Edits land in the user's editor as unsaved changes. Keep changes minimal and in \
the project's style. Run commands (tests, builds) only when they help; the user may refuse. \
When the task is done, or cannot be done, call finish with a short summary of what you changed.\
"""

FALLBACK_TOOLS = """

# Tools
To call a tool, reply with exactly this format, one call or several, and nothing after them:
<tool_call>
<function=TOOL_NAME>
<parameter=PARAMETER_NAME>
value
</parameter>
</function>
</tool_call>
Each tool's result comes back in a <tool_response> block. The tools:
{tools}"""


def describe_tools(tools: Sequence[ToolSpec]) -> str:
    """The fallback's tool list: one block per tool, parameters with their types."""
    blocks = []
    for tool in tools:
        lines = [f"- {tool.name}: {tool.description}"]
        for p in tool.params:
            optional = "" if p.required else ", optional"
            lines.append(f"  - {p.name} ({p.kind}{optional}): {p.description}")
        blocks.append("\n".join(lines))
    return "\n".join(blocks)


def uses_tools(template: str | None) -> bool:
    """Whether a template renders the ``tools`` variable (else the fallback describes them)."""
    return bool(template) and "tools" in str(template) and "tool_call" in str(template)


def system_message(roots: Sequence[str], tools: Sequence[ToolSpec], native: bool) -> str:
    text = SYSTEM.format(roots=", ".join(roots) or "(no folder)")
    return text if native else text + FALLBACK_TOOLS.format(tools=describe_tools(tools))


def task_message(task: str, path: str | None, selection: str | None) -> str:
    """The user's turn: the task and what the editor showed when it was asked."""
    text = task.strip()
    if path:
        text += f"\n\nThe file open in the editor: {path}"
    if selection:
        text += f"\nThe selected text:\n```\n{selection}\n```"
    return text


def tool_result(content: str, native: bool) -> Message:
    """A tool's result as the next message: the template's own tool role when it has one."""
    if native:
        return Message("tool", content)
    return Message("user", f"<tool_response>\n{content}\n</tool_response>")


def render(
    template: str | None,
    messages: Sequence[Message],
    tools: Sequence[ToolSpec],
    *,
    native: bool,
    bos_token: str = "",
    eos_token: str = "",
) -> tuple[PromptPart, ...]:
    schemas: list[Mapping[str, Any]] | None = [t.schema() for t in tools] if native else None
    return render_chat(template, messages, bos_token=bos_token, eos_token=eos_token, tools=schemas)
