"""The APIs on the real engine, through the official ``anthropic`` and ``openai`` SDKs.

Random weights write gibberish, so these tests are about the transport: streamed text equal
to the final message, honest usage (turn 2 reads only its new tokens), token counts, errors
in each API's shape, and a client that closes its stream freeing the engine at once.
"""

from __future__ import annotations

import http.client
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import openai
import pytest

from codenook.app import model_loader
from codenook.engine.host import EngineHost
from codenook.settings import Settings
from test_api_convert import claude_code_request
from test_api_support import ApiThread

N_CTX = 4096


@pytest.fixture(scope="module", params=["hybrid", "plain"])
def api(
    request: pytest.FixtureRequest, hybrid_path: Path, smollm_path: Path
) -> Iterator[tuple[ApiThread, EngineHost]]:
    path = hybrid_path if request.param == "hybrid" else smollm_path
    settings = Settings.from_values({"model.contextSize": N_CTX, "model.batchSize": 256})
    host = EngineHost(model_loader(settings, path)).start()
    assert host.wait_loaded(60) and host.engine is not None, host.error
    thread = ApiThread(host)
    try:
        yield thread, host
    finally:
        thread.close()
        host.stop()


def raw(thread: ApiThread, method: str, path: str, body: bytes | None = None) -> Any:
    connection = http.client.HTTPConnection("127.0.0.1", thread.server.port, timeout=30)
    headers = {"Content-Type": "application/json", "anthropic-version": "2023-06-01"}
    connection.request(method, path, body=body, headers=headers)
    response = connection.getresponse()
    data = response.read()
    connection.close()
    return response.status, dict(response.getheaders()), data


def test_streamed_text_is_the_message_and_turn_two_reads_only_its_new_tokens(
    api: tuple[ApiThread, EngineHost],
) -> None:
    thread, _ = api
    client = thread.anthropic()
    first = [{"role": "user", "content": "Write a haiku about parsers."}]
    with client.messages.stream(model="local", max_tokens=24, messages=first) as stream:
        pieces = list(stream.text_stream)
        turn1 = stream.get_final_message()
    assert turn1.model == "local" and turn1.role == "assistant"
    text = "".join(b.text for b in turn1.content if b.type == "text")
    assert "".join(pieces) == text
    assert turn1.stop_reason in ("end_turn", "max_tokens")
    prompt1 = turn1.usage.input_tokens + (turn1.usage.cache_read_input_tokens or 0)
    assert turn1.usage.output_tokens > 0
    counted = client.messages.count_tokens(model="local", messages=first)  # type: ignore[arg-type]
    assert counted.input_tokens == prompt1

    second: list[Any] = [
        *first,
        {"role": "assistant", "content": [b.model_dump() for b in turn1.content]},
        {"role": "user", "content": "Another one."},
    ]
    turn2 = client.messages.create(model="local", max_tokens=8, messages=second)
    cached = turn2.usage.cache_read_input_tokens or 0
    prompt2 = turn2.usage.input_tokens + cached
    assert cached >= prompt1, "turn 2 must reuse all of turn 1's prompt"
    assert prompt2 > prompt1 + turn1.usage.output_tokens - 2
    assert client.messages.count_tokens(model="local", messages=second).input_tokens == prompt2
    assert thread.server.counters.errors == 0


def test_a_claude_code_shaped_request_streams_events_with_event_lines(
    api: tuple[ApiThread, EngineHost],
) -> None:
    thread, _ = api
    body = claude_code_request() | {"max_tokens": 16}
    status, headers, data = raw(thread, "POST", "/v1/messages?beta=true", json.dumps(body).encode())
    assert status == 200
    assert headers["Content-Type"].startswith("text/event-stream")
    names = [line[7:] for line in data.decode().splitlines() if line.startswith("event: ")]
    assert names[0] == "message_start" and names[-2:] == ["message_delta", "message_stop"]
    status, _, _ = raw(thread, "HEAD", "/")
    assert status == 200


def test_errors_come_in_the_apis_shapes(api: tuple[ApiThread, EngineHost]) -> None:
    thread, _ = api
    client = thread.anthropic()
    too_long = [{"role": "user", "content": "word " * (N_CTX * 2)}]
    with pytest.raises(anthropic.BadRequestError) as error:
        client.messages.create(model="m", max_tokens=8, messages=too_long)  # type: ignore[arg-type]
    message = error.value.body["error"]["message"]  # type: ignore[index]
    assert message.startswith("prompt is ") and f"context is {N_CTX}" in message
    status, _, data = raw(thread, "POST", "/v1/messages", b"{not json")
    assert status == 400
    assert json.loads(data)["error"]["type"] == "invalid_request_error"
    assert json.loads(data)["type"] == "error"
    with pytest.raises(anthropic.BadRequestError, match="max_tokens"):
        body = {"model": "m", "messages": [{"role": "user", "content": "x"}]}
        client.post("/v1/messages", body=body, cast_to=object)
    with pytest.raises(anthropic.NotFoundError):
        client.get("/v1/nothing", cast_to=object)
    with pytest.raises(openai.BadRequestError) as bad:
        thread.openai().chat.completions.create(model="m", messages=too_long)  # type: ignore[arg-type]
    assert bad.value.body["message"].startswith("prompt is ")  # type: ignore[index]
    assert thread.server.counters.errors >= 5


def test_closing_a_stream_cancels_the_generation_and_the_next_request_is_served(
    api: tuple[ApiThread, EngineHost],
) -> None:
    thread, host = api
    assert host.engine is not None
    engine_cancelled = host.engine.counters.cancelled
    client = thread.anthropic()
    long = [{"role": "user", "content": "Count to a thousand."}]
    with client.messages.stream(model="m", max_tokens=3000, messages=long) as stream:
        for event in stream:
            if event.type == "content_block_delta":
                break
    deadline = time.monotonic() + 10
    while thread.server.counters.cancelled == 0 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert thread.server.counters.cancelled == 1
    while host.engine.counters.cancelled == engine_cancelled and time.monotonic() < deadline:
        time.sleep(0.02)
    assert host.engine.counters.cancelled == engine_cancelled + 1
    reply = client.messages.create(model="m", max_tokens=4, messages=long)
    assert reply.usage.output_tokens <= 4
    while thread.server.counters.active and time.monotonic() < deadline:
        time.sleep(0.01)  # the server counts the answer done just after the client has it
    assert thread.server.counters.active == 0


def test_openai_chat_completions_models(api: tuple[ApiThread, EngineHost]) -> None:
    thread, host = api
    client = thread.openai()
    messages: Any = [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "Hello"},
    ]
    answer = client.chat.completions.create(model="gpt-x", messages=messages, max_tokens=12)
    assert answer.model == "gpt-x" and answer.choices[0].finish_reason in ("stop", "length")
    assert answer.usage is not None and answer.usage.completion_tokens > 0
    chunks = list(
        client.chat.completions.create(
            model="gpt-x",
            messages=messages,
            max_tokens=12,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    streamed = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert streamed == answer.choices[0].message.content
    usage = chunks[-1].usage
    assert usage is not None and usage.prompt_tokens == answer.usage.prompt_tokens
    assert usage.prompt_tokens_details is not None
    assert usage.prompt_tokens_details.cached_tokens >= usage.prompt_tokens - 2  # same prompt

    completion = client.completions.create(model="raw", prompt="def add(a, b):", max_tokens=6)
    assert completion.choices[0].finish_reason in ("stop", "length")
    pieces = client.completions.create(
        model="raw", prompt="def add(a, b):", max_tokens=6, stream=True
    )
    assert "".join(c.choices[0].text for c in pieces) == completion.choices[0].text

    assert host.engine is not None
    stem = Path(host.engine.info.path).stem
    assert [m.id for m in client.models.list()] == [stem]
    assert client.models.retrieve("anything").id == "anything"
