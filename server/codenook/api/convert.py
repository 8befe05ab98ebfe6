"""Conversations of both APIs as one list of turns, and turns as the model's prompt: pure.

Anthropic and OpenAI spell the same conversation differently (content blocks against roles
and ``tool_calls``); both are read into ``Turn``s, and from there one path renders them with
the model's own chat template. The rendering must only ever grow at its end as a
conversation goes on, so the engine reuses the previous turn's prompt: nothing here depends
on how long the conversation is, and earlier turns render the same way every time.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from codenook.agent.prompts import uses_tools
from codenook.assist.chat import Message, render_chat
from codenook.engine.protocol import PromptPart


class ApiError(Exception):
    """A request the API answers with an error; ``kind`` is Anthropic's error type name."""

    def __init__(self, status: int, kind: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.kind = kind
        self.message = message


def invalid(message: str) -> ApiError:
    return ApiError(400, "invalid_request_error", message)


@dataclass(frozen=True)
class ToolDef:
    name: str
    description: str
    schema: Mapping[str, Any]

    def openai_schema(self) -> dict[str, Any]:
        """The function schema tool-trained templates expect in their ``tools`` variable."""
        return {
            "type": "function",
            "function": {
                "name": self.name,
                "description": self.description,
                "parameters": dict(self.schema),
            },
        }


@dataclass(frozen=True)
class Turn:
    """One message of either API: role system, user, assistant (the model's raw text) or tool."""

    role: str
    text: str


@dataclass
class Conversation:
    turns: list[Turn]
    tools: list[ToolDef] = field(default_factory=list)
    # Text the reply must continue (a trailing assistant message: Anthropic's "prefill").
    prefill: str = ""


# -- the tool-call format the model writes, for replies we did not generate ourselves --------


def call_xml(name: str, arguments: Mapping[str, Any]) -> str:
    """A call in Qwen3-Coder's format; values that are not strings are written as JSON."""
    lines = ["<tool_call>", f"<function={name}>"]
    for key, value in arguments.items():
        text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
        lines += [f"<parameter={key}>", text, "</parameter>"]
    lines += ["</function>", "</tool_call>"]
    return "\n".join(lines)


def assistant_text(text: str, calls: Sequence[tuple[str, Mapping[str, Any]]]) -> str:
    parts = [text.rstrip()] if text.strip() else []
    parts += [call_xml(name, args) for name, args in calls]
    return "\n".join(parts)


def coerce_arguments(arguments: Mapping[str, str], schema: Mapping[str, Any] | None) -> dict:
    """Tool input from the model's string values, typed by the tool's JSON schema.

    The XML format carries every value as text; a schema that says a property is a number,
    boolean, array or object gets the parsed JSON, and text that does not parse stays text
    (the client's tool reports the mistake better than we could).
    """
    properties = (schema or {}).get("properties") or {}
    result: dict[str, Any] = {}
    for key, value in arguments.items():
        prop = properties.get(key) if isinstance(properties, Mapping) else None
        kinds = prop.get("type") if isinstance(prop, Mapping) else None
        kinds = [kinds] if isinstance(kinds, str) else list(kinds or [])
        if not kinds or "string" in kinds:
            result[key] = value
            continue
        try:
            result[key] = json.loads(value)
        except ValueError:
            result[key] = value
    return result


# -- the fallback for templates that know nothing of tools -----------------------------------

FALLBACK = """\
# Tools

You can call these tools. Each is described by its name, what it does and a JSON schema of
its parameters:
{tools}

To call a tool, reply with this format, one call or several, and nothing after them:
<tool_call>
<function=TOOL_NAME>
<parameter=PARAMETER_NAME>
value (JSON for numbers, booleans, arrays and objects)
</parameter>
</function>
</tool_call>
Each result comes back in a <tool_response> block."""


def describe_tools(tools: Sequence[ToolDef]) -> str:
    blocks = []
    for tool in tools:
        schema = json.dumps(tool.schema, ensure_ascii=False, separators=(",", ":"))
        blocks.append(f"## {tool.name}\n{tool.description.strip()}\nParameters: {schema}")
    return "\n\n".join(blocks)


# -- turns to template messages --------------------------------------------------------------


def to_messages(turns: Sequence[Turn], native: bool) -> list[Message]:
    """The template's messages: one system message first, tool results in the template's form.

    System turns before the conversation proper are merged into one system message (many
    templates accept a system message only first). A system turn later on (Claude Code sends
    one right after the first user message) keeps its place: its text joins the user message
    before it, or else the one after it, so roles still alternate for strict templates.
    Without native tool support a tool result is user text in ``<tool_response>`` tags, and
    consecutive results share one user message.
    """
    system: list[str] = []
    out: list[Message] = []
    pending: list[str] = []  # mid-conversation system text waiting for the next user message
    started = False
    for turn in turns:
        if turn.role == "system":
            if not started:
                system.append(turn.text)
            elif out and out[-1].role == "user":
                out[-1] = Message("user", _join(out[-1].content, turn.text))
            else:
                pending.append(turn.text)
            continue
        started = True
        if turn.role == "tool" and not native:
            text = f"<tool_response>\n{turn.text}\n</tool_response>"
            if out and out[-1].role == "user" and out[-1].content.endswith("</tool_response>"):
                out[-1] = Message("user", out[-1].content + "\n" + text)
                continue
            turn = Turn("user", text)
        if turn.role == "user" and pending:
            turn = Turn("user", _join(*pending, turn.text))
            pending = []
        out.append(Message(turn.role, turn.text))
    if pending:
        out.append(Message("user", _join(*pending)))
    if system:
        out.insert(0, Message("system", _join(*system)))
    return out


def _join(*texts: str) -> str:
    return "\n\n".join(t for t in texts if t)


def render(
    conversation: Conversation, template: str | None, eos_token: str = ""
) -> tuple[PromptPart, ...]:
    """The prompt for the next assistant turn: the conversation through the model's template,
    tools natively where the template knows them and described in the system message where
    it does not, and any prefill as plain text after the assistant header."""
    native = uses_tools(template)
    turns = list(conversation.turns)
    tools = conversation.tools
    if tools and not native:
        described = FALLBACK.format(tools=describe_tools(tools))
        first_other = next((i for i, t in enumerate(turns) if t.role != "system"), len(turns))
        turns.insert(first_other, Turn("system", described))
    messages = to_messages(turns, native)
    if not messages:
        raise invalid("messages: at least one message is required")
    schemas = [t.openai_schema() for t in tools] if tools and native else None
    try:
        parts = render_chat(template, messages, eos_token=eos_token, tools=schemas)
    except ValueError as exc:
        raise invalid(str(exc)) from exc
    if conversation.prefill:
        parts = (*parts, (conversation.prefill, False))
    return parts
