"""The OpenAI-compatible API: chat completions (with tools), raw completions and the models.

The conversation goes the same way as Anthropic's (convert.py, reply.py); only the shapes
differ. ``/v1/completions`` takes the prompt as the model's raw input, special tokens parsed
the way llama-server does, so a client can write its own template or FIM prompt.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from typing import Any

from codenook.api.convert import ApiError, Conversation, ToolDef, Turn, assistant_text, invalid
from codenook.api.reply import ReplyAssembler, TextDelta, ToolUse, new_id
from codenook.api.service import Outcome, Responder, Service, drive

FINISH = {"length": "length", "cancelled": "stop"}


def openai_error(error: ApiError) -> dict[str, Any]:
    return {"error": {"message": error.message, "type": error.kind, "param": None, "code": None}}


# -- request ---------------------------------------------------------------------------------


def _content(content: Any, where: str) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise invalid(f"{where}.content: must be a string or a list of parts")
    texts = []
    for part in content:
        kind = part.get("type") if isinstance(part, Mapping) else None
        if kind == "text" and isinstance(part.get("text"), str):
            texts.append(part["text"])
        elif kind in ("image_url", "input_audio", "file"):
            raise invalid(f"{where}: {kind} parts are not supported (the model reads only text)")
    return "\n\n".join(texts)


def _assistant(message: Mapping[str, Any], where: str, service: Service) -> str:
    text = _content(message.get("content"), where)
    calls: list[tuple[str, Mapping[str, Any]]] = []
    ids: list[str] = []
    for call in message.get("tool_calls") or []:
        function = call.get("function") if isinstance(call, Mapping) else None
        if not isinstance(function, Mapping):
            raise invalid(f"{where}.tool_calls: each call needs a function")
        arguments = function.get("arguments") or "{}"
        try:
            parsed = json.loads(arguments) if isinstance(arguments, str) else arguments
        except ValueError:
            parsed = {}
        calls.append((str(function.get("name", "")), parsed if isinstance(parsed, dict) else {}))
        ids.append(str(call.get("id", "")))
    return service.memory.recall(text, ids) or assistant_text(text, calls)


def parse_tools(raw: Any, choice: Any) -> list[ToolDef]:
    if not raw or choice == "none":
        return []
    if not isinstance(raw, list):
        raise invalid("tools: must be a list")
    tools = []
    for i, tool in enumerate(raw):
        function = tool.get("function") if isinstance(tool, Mapping) else None
        if not isinstance(function, Mapping) or not isinstance(function.get("name"), str):
            raise invalid(f"tools.{i}: a function tool needs a name")
        schema = function.get("parameters")
        schema = schema if isinstance(schema, Mapping) else {"type": "object", "properties": {}}
        tools.append(ToolDef(function["name"], str(function.get("description") or ""), schema))
    return tools


def parse_chat(body: Mapping[str, Any], service: Service) -> Conversation:
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise invalid("messages: a non-empty list of messages is required")
    turns: list[Turn] = []
    for i, message in enumerate(messages):
        where = f"messages.{i}"
        if not isinstance(message, Mapping):
            raise invalid(f"{where}: must be an object")
        role = message.get("role")
        if role in ("system", "developer"):
            turns.append(Turn("system", _content(message.get("content"), where)))
        elif role == "user":
            turns.append(Turn("user", _content(message.get("content"), where)))
        elif role == "assistant":
            turns.append(Turn("assistant", _assistant(message, where, service)))
        elif role in ("tool", "function"):
            turns.append(Turn("tool", _content(message.get("content"), where)))
        else:
            raise invalid(f"{where}.role: unknown role {role!r}")
    return Conversation(turns, parse_tools(body.get("tools"), body.get("tool_choice")))


def parse_limits(body: Mapping[str, Any]) -> tuple[int | None, list[str]]:
    max_tokens = body.get("max_completion_tokens", body.get("max_tokens"))
    if max_tokens is not None and (
        not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 1
    ):
        raise invalid("max_tokens: must be a positive integer")
    stop = body.get("stop")
    stops = [stop] if isinstance(stop, str) else list(stop or [])
    if not all(isinstance(s, str) for s in stops):
        raise invalid("stop: must be a string or a list of strings")
    return max_tokens, stops


# -- response --------------------------------------------------------------------------------


def usage(outcome: Outcome) -> dict[str, Any]:
    result = outcome.result
    return {
        "prompt_tokens": result.prompt_tokens,
        "completion_tokens": result.generated_tokens,
        "total_tokens": result.prompt_tokens + result.generated_tokens,
        "prompt_tokens_details": {"cached_tokens": min(result.cached_tokens, result.prompt_tokens)},
    }


def finish_reason(outcome: Outcome, calls: bool) -> str:
    if calls:
        return "tool_calls"
    return FINISH.get(outcome.stop_reason, "stop")


def _tool_call(use: ToolUse, index: int) -> dict[str, Any]:
    arguments = json.dumps(use.input, ensure_ascii=False)
    return {
        "index": index,
        "id": use.id,
        "type": "function",
        "function": {"name": use.name, "arguments": arguments},
    }


def _model(body: Mapping[str, Any], service: Service) -> str:
    model = body.get("model")
    return model if isinstance(model, str) and model else service.name(service.backend.engine)


async def chat(service: Service, body: Mapping[str, Any], response: Responder) -> None:
    """``POST /v1/chat/completions``."""
    conversation = parse_chat(body, service)
    max_tokens, stops = parse_limits(body)
    _, prepared = await service.prepare_chat(conversation, max_tokens, stops)
    model, chat_id, created = _model(body, service), new_id("chatcmpl-"), int(time.time())
    stream = bool(body.get("stream"))
    options = body.get("stream_options")
    include_usage = isinstance(options, Mapping) and bool(options.get("include_usage"))
    assembler = ReplyAssembler(conversation.tools, "call_")
    calls: list[ToolUse] = []

    def chunk(delta: dict[str, Any], finish: str | None = None) -> tuple[None, dict[str, Any]]:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
        body = {"id": chat_id, "object": "chat.completion.chunk", "created": created}
        return None, {**body, "model": model, "choices": [choice]}

    def deltas(ops: list[Any]) -> list[tuple[None, dict[str, Any]]]:
        out = []
        for op in ops:
            if isinstance(op, TextDelta):
                out.append(chunk({"content": op.text}))
            elif isinstance(op, ToolUse):
                calls.append(op)
                out.append(chunk({"tool_calls": [_tool_call(op, len(calls) - 1)]}))
        return out

    if stream:
        await response.start_events()
        await response.events([chunk({"role": "assistant", "content": ""})])

    async def piece(item: str) -> None:
        ops = assembler.feed(item)
        if stream and ops:
            await response.events(deltas(ops))

    outcome = await drive(service, prepared, piece)
    tail = assembler.close()
    content = assembler.content
    service.memory.remember(content, outcome.text)
    finish = finish_reason(outcome, bool(content.tool_uses))
    if stream:
        events: list[tuple[str | None, Any]] = [*deltas(tail), chunk({}, finish)]
        if include_usage:
            last = {"id": chat_id, "object": "chat.completion.chunk", "created": created}
            events.append((None, {**last, "model": model, "choices": [], "usage": usage(outcome)}))
        events.append((None, "[DONE]"))
        await response.events(events)
        await response.end()
        return
    message: dict[str, Any] = {"role": "assistant", "content": content.text or None}
    if content.tool_uses:
        message["tool_calls"] = [
            {
                "id": b["id"],
                "type": "function",
                "function": {"name": b["name"], "arguments": json.dumps(b["input"])},
            }
            for b in content.tool_uses
        ]
    choice = {"index": 0, "message": message, "logprobs": None, "finish_reason": finish}
    answer = {"id": chat_id, "object": "chat.completion", "created": created, "model": model}
    await response.json(200, {**answer, "choices": [choice], "usage": usage(outcome)})


async def completions(service: Service, body: Mapping[str, Any], response: Responder) -> None:
    """``POST /v1/completions``: the prompt is the model's raw input, specials parsed."""
    prompt = body.get("prompt")
    if isinstance(prompt, list) and len(prompt) == 1 and isinstance(prompt[0], str):
        prompt = prompt[0]
    if not isinstance(prompt, str) or not prompt:
        raise invalid("prompt: a non-empty string is required (one prompt per request)")
    max_tokens, stops = parse_limits(body)
    model_info = await service.model()
    parts = ((prompt, True),)
    n = await service.count(model_info, parts)
    # The OpenAI default is 16 tokens; a raw prompt has no turn end to stop at otherwise.
    limit = 16 if max_tokens is None else max_tokens
    prepared = service.fit(model_info.info, parts, n, limit, stops, checkpoint_end=False)
    model, cmpl_id, created = _model(body, service), new_id("cmpl-"), int(time.time())
    stream = bool(body.get("stream"))

    def chunk(text: str, finish: str | None) -> dict[str, Any]:
        choice = {"text": text, "index": 0, "logprobs": None, "finish_reason": finish}
        head = {"id": cmpl_id, "object": "text_completion", "created": created}
        return {**head, "model": model, "choices": [choice]}

    if stream:
        await response.start_events()

    async def piece(item: str) -> None:
        if stream:
            await response.events([(None, chunk(item, None))])

    outcome = await drive(service, prepared, piece)
    finish = finish_reason(outcome, False)
    if stream:
        last = chunk("", finish)
        options = body.get("stream_options")
        if isinstance(options, Mapping) and options.get("include_usage"):
            last["usage"] = usage(outcome)
        await response.events([(None, last), (None, "[DONE]")])
        await response.end()
        return
    answer = chunk(outcome.text, finish)
    await response.json(200, {**answer, "usage": usage(outcome)})


def models(service: Service, anthropic: bool, wanted: str | None = None) -> dict[str, Any]:
    """``GET /v1/models`` (and ``/v1/models/ID``, which answers for any id): the one model,
    in Anthropic's shape when the client sent ``anthropic-version``."""
    name = wanted or service.name(service.backend.engine)
    if anthropic:
        entry: dict[str, Any] = {
            "type": "model",
            "id": name,
            "display_name": name,
            "created_at": "1970-01-01T00:00:00Z",
        }
        if wanted:
            return entry
        return {"data": [entry], "has_more": False, "first_id": name, "last_id": name}
    plain: dict[str, Any] = {"id": name, "object": "model", "created": 0, "owned_by": "codenook"}
    return plain if wanted else {"object": "list", "data": [plain]}
