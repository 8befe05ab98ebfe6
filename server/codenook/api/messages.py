"""The Anthropic Messages API: ``POST /v1/messages`` (streaming and not) and ``count_tokens``.

Claude Code is the client that matters (docs/api.md): it streams, expects ``event:`` lines,
sends a ``system``-role entry inside ``messages`` and many fields we have no use for, which
are accepted and ignored. The request is turned into ``Turn``s (convert.py), the reply into
content blocks (reply.py); this module only speaks the API's shapes.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from codenook.api.convert import (
    ApiError,
    Conversation,
    ToolDef,
    Turn,
    assistant_text,
    invalid,
    render,
)
from codenook.api.reply import (
    BlockEnd,
    Content,
    Op,
    ReplyAssembler,
    ReplyMemory,
    TextDelta,
    ToolUse,
    new_id,
)
from codenook.api.service import Outcome, Prepared, Responder, Service, drive

Event = tuple[str, dict[str, Any]]

IMAGE_IN_RESULT = "[{kind} omitted: this model cannot read images or documents]"


# -- request ---------------------------------------------------------------------------------


def _text_of(content: Any, where: str, *, results: bool = False) -> str:
    """The text of a string or a list of content blocks (tool results' own content)."""
    if isinstance(content, str):
        return content
    if content is None:
        return ""
    if not isinstance(content, list):
        raise invalid(f"{where}: content must be a string or a list of blocks")
    texts = []
    for block in content:
        kind = block.get("type") if isinstance(block, Mapping) else None
        if kind == "text":
            texts.append(_str(block.get("text"), f"{where}.text"))
        elif kind in ("image", "document") and results:
            texts.append(IMAGE_IN_RESULT.format(kind=kind))
        elif kind in ("image", "document"):
            raise invalid(f"{where}: {kind} blocks are not supported (the model reads only text)")
    return "\n\n".join(texts)


def _str(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise invalid(f"{where}: expected a string")
    return value


def _user_turns(content: Any, where: str) -> list[Turn]:
    if isinstance(content, str):
        return [Turn("user", content)]
    if not isinstance(content, list):
        raise invalid(f"{where}.content: must be a string or a list of blocks")
    turns: list[Turn] = []
    texts: list[str] = []
    for i, block in enumerate(content):
        at = f"{where}.content.{i}"
        if not isinstance(block, Mapping):
            raise invalid(f"{at}: must be an object")
        kind = block.get("type")
        if kind == "tool_result":
            if texts:
                turns.append(Turn("user", "\n\n".join(texts)))
                texts = []
            text = _text_of(block.get("content"), at, results=True)
            if block.get("is_error"):
                text = f"[error] {text}"
            turns.append(Turn("tool", text))
        elif kind == "text":
            texts.append(_str(block.get("text"), f"{at}.text"))
        elif kind in ("image", "document"):
            raise invalid(f"{at}: {kind} blocks are not supported (the model reads only text)")
    if texts:
        turns.append(Turn("user", "\n\n".join(texts)))
    return turns


def _assistant_raw(content: Any, where: str, memory: ReplyMemory) -> str:
    """The assistant turn as the model's own text: remembered if it was our reply."""
    if isinstance(content, str):
        return memory.recall(content, ()) or content
    if not isinstance(content, list):
        raise invalid(f"{where}.content: must be a string or a list of blocks")
    texts: list[str] = []
    calls: list[tuple[str, Mapping[str, Any]]] = []
    ids: list[str] = []
    for block in content:
        if not isinstance(block, Mapping):
            continue
        kind = block.get("type")
        if kind == "text" and isinstance(block.get("text"), str):
            texts.append(block["text"])
        elif kind == "tool_use":
            args = block.get("input")
            calls.append((str(block.get("name", "")), args if isinstance(args, Mapping) else {}))
            ids.append(str(block.get("id", "")))
        # thinking / redacted_thinking and anything else: not the model's text here
    text = "".join(texts)
    return memory.recall(text, ids) or assistant_text(text, calls)


def parse_tools(raw: Any, choice: Any) -> list[ToolDef]:
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise invalid("tools: must be a list")
    if isinstance(choice, Mapping) and choice.get("type") == "none":
        return []
    tools = []
    for i, tool in enumerate(raw):
        if not isinstance(tool, Mapping) or not isinstance(tool.get("name"), str):
            raise invalid(f"tools.{i}: a tool needs a name")
        schema = tool.get("input_schema")
        if not isinstance(schema, Mapping):
            continue  # server tools (web search and the like) are not ours to run
        tools.append(ToolDef(tool["name"], str(tool.get("description") or ""), schema))
    return tools


def parse_conversation(body: Mapping[str, Any], memory: ReplyMemory) -> Conversation:
    """The request's system prompt, messages and tools as ``Turn``s (pure but for ``memory``)."""
    turns: list[Turn] = []
    system = body.get("system")
    if system is not None:
        text = _text_of(system, "system")
        if text:
            turns.append(Turn("system", text))
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise invalid("messages: a non-empty list of messages is required")
    prefill = ""
    for i, message in enumerate(messages):
        where = f"messages.{i}"
        if not isinstance(message, Mapping):
            raise invalid(f"{where}: must be an object")
        role, content = message.get("role"), message.get("content")
        if role == "user":
            turns += _user_turns(content, where)
        elif role == "assistant":
            raw = _assistant_raw(content, where, memory)
            if i == len(messages) - 1:
                prefill = raw  # the reply continues it (Anthropic's prefill)
            else:
                turns.append(Turn("assistant", raw))
        elif role == "system":
            turns.append(Turn("system", _text_of(content, where)))
        else:
            raise invalid(f"{where}.role: must be 'user' or 'assistant', not {role!r}")
    return Conversation(turns, parse_tools(body.get("tools"), body.get("tool_choice")), prefill)


def parse_limits(body: Mapping[str, Any]) -> tuple[int, list[str]]:
    max_tokens = body.get("max_tokens")
    if not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 1:
        raise invalid("max_tokens: a positive integer is required")
    stops = body.get("stop_sequences") or []
    if not isinstance(stops, list) or not all(isinstance(s, str) for s in stops):
        raise invalid("stop_sequences: must be a list of strings")
    return max_tokens, stops


# -- response --------------------------------------------------------------------------------


def usage(prepared: Prepared, outcome: Outcome | None) -> dict[str, int]:
    """Honest figures: the input not read from cache, the cached part, the tokens generated.
    Before the generation only the prompt's length is known (all of it counted as input)."""
    if outcome is None:
        return {
            "input_tokens": prepared.prompt_tokens,
            "output_tokens": 0,
            "cache_read_input_tokens": 0,
            "cache_creation_input_tokens": 0,
        }
    result = outcome.result
    cached = min(result.cached_tokens, result.prompt_tokens)
    return {
        "input_tokens": result.prompt_tokens - cached,
        "output_tokens": result.generated_tokens,
        "cache_read_input_tokens": cached,
        "cache_creation_input_tokens": 0,
    }


def stop_reason(content: Content, outcome: Outcome) -> str:
    if content.tool_uses:
        return "tool_use"
    if outcome.stop_reason == "stop_sequence":
        return "stop_sequence"
    return "max_tokens" if outcome.stop_reason == "length" else "end_turn"


def message(
    msg_id: str, model: str, content: Content, prepared: Prepared, outcome: Outcome
) -> dict[str, Any]:
    reason = stop_reason(content, outcome)
    return {
        "id": msg_id,
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content.blocks,
        "stop_reason": reason,
        "stop_sequence": outcome.stop_sequence if reason == "stop_sequence" else None,
        "usage": usage(prepared, outcome),
    }


def start_events(msg_id: str, model: str, prepared: Prepared) -> list[Event]:
    start: dict[str, Any] = {
        "id": msg_id,
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
        "usage": usage(prepared, None),
    }
    return [("message_start", {"type": "message_start", "message": start})]


def op_events(ops: Sequence[Op]) -> list[Event]:
    """Content-block operations as stream events."""
    events: list[Event] = []
    for op in ops:
        if isinstance(op, TextDelta):
            if op.first:
                block: dict[str, Any] = {"type": "text", "text": ""}
                events.append(_block_start(op.index, block))
            delta = {"type": "text_delta", "text": op.text}
            events.append(_delta(op.index, delta))
        elif isinstance(op, ToolUse):
            block = {"type": "tool_use", "id": op.id, "name": op.name, "input": {}}
            events.append(_block_start(op.index, block))
            partial = json.dumps(op.input, ensure_ascii=False)
            events.append(_delta(op.index, {"type": "input_json_delta", "partial_json": partial}))
        elif isinstance(op, BlockEnd):
            events.append(("content_block_stop", {"type": "content_block_stop", "index": op.index}))
    return events


def _block_start(index: int, block: dict[str, Any]) -> Event:
    return (
        "content_block_start",
        {"type": "content_block_start", "index": index, "content_block": block},
    )


def _delta(index: int, delta: dict[str, Any]) -> Event:
    return ("content_block_delta", {"type": "content_block_delta", "index": index, "delta": delta})


def end_events(content: Content, prepared: Prepared, outcome: Outcome) -> list[Event]:
    reason = stop_reason(content, outcome)
    delta = {
        "stop_reason": reason,
        "stop_sequence": outcome.stop_sequence if reason == "stop_sequence" else None,
    }
    return [
        (
            "message_delta",
            {"type": "message_delta", "delta": delta, "usage": usage(prepared, outcome)},
        ),
        ("message_stop", {"type": "message_stop"}),
    ]


def error_body(error: ApiError) -> dict[str, Any]:
    return {"type": "error", "error": {"type": error.kind, "message": error.message}}


# -- handlers --------------------------------------------------------------------------------


async def create(service: Service, body: Mapping[str, Any], response: Responder) -> None:
    """``POST /v1/messages``: the full message, or its events as they are generated."""
    conversation = parse_conversation(body, service.memory)
    max_tokens, stops = parse_limits(body)
    _, prepared = await service.prepare_chat(conversation, max_tokens, stops)
    requested = body.get("model")
    model = requested if isinstance(requested, str) else service.name(service.backend.engine)
    msg_id = new_id("msg_")
    assembler = ReplyAssembler(conversation.tools)
    stream = bool(body.get("stream"))
    if stream:
        await response.start_events()
        await response.events(start_events(msg_id, model, prepared))

    async def piece(item: str) -> None:
        ops = assembler.feed(item)
        if stream and ops:
            await response.events(op_events(ops))

    outcome = await drive(service, prepared, piece)
    ops = assembler.close()
    content = assembler.content
    service.memory.remember(content, outcome.text)
    if stream:
        await response.events(op_events(ops) + end_events(content, prepared, outcome))
        await response.end()
    else:
        await response.json(200, message(msg_id, model, content, prepared, outcome))


async def count_tokens(service: Service, body: Mapping[str, Any], response: Responder) -> None:
    """``POST /v1/messages/count_tokens``: the prompt the same request would read."""
    conversation = parse_conversation(body, service.memory)
    model = await service.model()
    parts = render(conversation, model.info.chat_template, model.info.eos_text or "")
    await response.json(200, {"input_tokens": await service.count(model, parts)})
