"""The APIs' mapping with scripted model replies (random weights never write a tool call):
a tool-use round trip through both SDKs, stop sequences, authentication, and the answers
while the model loads or after it failed."""

from __future__ import annotations

import asyncio
import http.client
import json
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import anthropic
import openai
import pytest

from codenook.api import start_api
from codenook.api.convert import call_xml
from codenook.engine.host import EngineHost
from codenook.engine.protocol import (
    EngineCounters,
    EngineError,
    GenerationRequest,
    GenerationResult,
    Step,
    run_to_end,
    tokenize_parts,
)
from fake_engine import INFO
from test_api_support import ApiThread

READ_TOOL: Any = {
    "name": "Read",
    "description": "Read a file",
    "input_schema": {
        "type": "object",
        "properties": {"file_path": {"type": "string"}, "limit": {"type": "integer"}},
        "required": ["file_path"],
    },
}
CALL = call_xml("Read", {"file_path": "a.py", "limit": 10})


class Scripted:
    """Replies with the next scripted text, a few characters per step, honouring ``stop``,
    ``until`` and ``max_tokens`` (one character, one token) like the real engine does."""

    def __init__(self, replies: list[str]) -> None:
        self.info = INFO
        self.counters = EngineCounters()
        self.replies = replies
        self.prompts: list[str] = []

    def tokenize(self, text: str, special: bool = False) -> list[int]:
        return list(text.encode())

    def generate(self, request: GenerationRequest, cancelled: Callable[[], bool], lane: int = 0):
        return run_to_end(self.start(request, cancelled, lane))

    def start(self, request: GenerationRequest, cancelled: Callable[[], bool], lane: int = 0):
        return self._run(request, cancelled)

    def _run(self, request: GenerationRequest, cancelled: Callable[[], bool]) -> Step:
        parts = request.prompt if not isinstance(request.prompt, str) else [(request.prompt, 0)]
        self.prompts.append("".join(text for text, _ in parts))
        reply = self.replies.pop(0) if self.replies else "ok"
        result = GenerationResult("", "eos", len(tokenize_parts(self.tokenize, request.prompt)))
        for at in range(0, len(reply), 3):
            if cancelled():
                result.stop_reason = "cancelled"
                return result
            if result.generated_tokens >= request.max_tokens:
                result.stop_reason = "length"
                return result
            if reply[at:].startswith("FAIL"):
                raise EngineError("llama.cpp failed to decode")
            piece = reply[at : at + 3]
            result.text += piece
            result.generated_tokens += 1
            if request.on_text:
                request.on_text(piece)
            if request.until and request.until(result.text):
                result.stop_reason = "until"
                return result
            yield
        return result

    def close(self) -> None:
        pass


@pytest.fixture
def scripted() -> Iterator[tuple[ApiThread, Scripted]]:
    engine = Scripted([])
    host = EngineHost(lambda: engine).start()
    thread = ApiThread(host)
    try:
        yield thread, engine
    finally:
        thread.close()
        host.stop()


def test_a_tool_use_round_trip_through_the_anthropic_sdk(
    scripted: tuple[ApiThread, Scripted],
) -> None:
    thread, engine = scripted
    client = thread.anthropic()
    reply1 = "I will read it.\n\n" + CALL
    engine.replies += [reply1, reply1, "It defines add."]
    ask: Any = [{"role": "user", "content": "What is in a.py?"}]
    with client.messages.stream(model="m", max_tokens=500, messages=ask, tools=[READ_TOOL]) as s:
        streamed = s.get_final_message()
    message = client.messages.create(model="m", max_tokens=500, messages=ask, tools=[READ_TOOL])
    for turn in (streamed, message):
        assert turn.stop_reason == "tool_use"
        assert [b.type for b in turn.content] == ["text", "tool_use"]
        use = turn.content[1]
        assert use.type == "tool_use"
        assert (use.name, use.input) == ("Read", {"file_path": "a.py", "limit": 10})
    assert engine.prompts[0] == engine.prompts[1]
    assert "## Read\nRead a file\nParameters:" in engine.prompts[0]  # the fallback description

    use = message.content[1]
    assert use.type == "tool_use"
    follow: Any = [
        *ask,
        {"role": "assistant", "content": [b.model_dump() for b in message.content]},
        {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": use.id, "content": "1\tdef add"}],
        },
    ]
    final = client.messages.create(model="m", max_tokens=500, messages=follow, tools=[READ_TOOL])
    assert final.stop_reason == "end_turn" and final.content[0].type == "text"
    assert final.content[0].text == "It defines add."
    # Turn 2 = turn 1's prompt + exactly what the model wrote + the result + a new header.
    assert engine.prompts[2].startswith(engine.prompts[1] + reply1 + "<|im_end|>\n")
    assert "<tool_response>\n1\tdef add\n</tool_response>" in engine.prompts[2]


def test_a_tool_call_round_trip_through_the_openai_sdk(
    scripted: tuple[ApiThread, Scripted],
) -> None:
    thread, engine = scripted
    client = thread.openai()
    engine.replies += [CALL, CALL]
    tools: Any = [
        {
            "type": "function",
            "function": {"name": "Read", "parameters": READ_TOOL["input_schema"]},
        }
    ]
    ask: Any = [{"role": "user", "content": "Read a.py"}]
    answer = client.chat.completions.create(model="m", messages=ask, tools=tools)
    choice = answer.choices[0]
    assert choice.finish_reason == "tool_calls" and choice.message.content is None
    calls = choice.message.tool_calls
    assert calls is not None and calls[0].id.startswith("call_")
    function = calls[0].function  # type: ignore[union-attr]
    assert (function.name, function.arguments) == ("Read", '{"file_path": "a.py", "limit": 10}')
    chunks = list(client.chat.completions.create(model="m", messages=ask, tools=tools, stream=True))
    deltas = [c.choices[0].delta.tool_calls for c in chunks if c.choices[0].delta.tool_calls]
    assert len(deltas) == 1 and deltas[0][0].function.arguments == function.arguments  # type: ignore[union-attr]
    assert chunks[-1].choices[0].finish_reason == "tool_calls"

    engine.replies.append("done")
    follow = [
        *ask,
        answer.choices[0].message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": calls[0].id, "content": "x = 1"},
    ]
    final = client.chat.completions.create(model="m", messages=follow, tools=tools)
    assert final.choices[0].message.content == "done"
    assert engine.prompts[-1].startswith(engine.prompts[0] + CALL + "<|im_end|>\n")


def test_stop_sequences_end_the_reply_and_are_never_streamed(
    scripted: tuple[ApiThread, Scripted],
) -> None:
    thread, engine = scripted
    client = thread.anthropic()
    engine.replies += ["abcdeSTOPfgh", "abcdeSTOPfgh"]
    ask: Any = [{"role": "user", "content": "go"}]
    with client.messages.stream(
        model="m", max_tokens=50, messages=ask, stop_sequences=["STOP"]
    ) as stream:
        pieces = list(stream.text_stream)
        message = stream.get_final_message()
    assert "".join(pieces) == "abcde" and not any("S" in p for p in pieces)
    assert (message.stop_reason, message.stop_sequence) == ("stop_sequence", "STOP")
    completion = thread.openai().completions.create(
        model="m", prompt="x", max_tokens=50, stop="STOP"
    )
    assert completion.choices[0].text == "abcde"
    assert completion.choices[0].finish_reason == "stop"


def test_an_engine_failure_is_a_500_or_an_error_event_in_the_stream(
    scripted: tuple[ApiThread, Scripted],
) -> None:
    thread, engine = scripted
    client = thread.anthropic()
    engine.replies += ["abcFAIL", "abcFAIL"]
    ask: Any = [{"role": "user", "content": "go"}]
    with pytest.raises(anthropic.InternalServerError) as error:
        client.messages.create(model="m", max_tokens=50, messages=ask)
    assert error.value.body["error"]["message"] == (  # type: ignore[index]
        "engine error: llama.cpp failed to decode"
    )
    events = []
    with (
        pytest.raises(anthropic.APIStatusError, match=r"llama\.cpp failed to decode"),
        client.messages.stream(model="m", max_tokens=50, messages=ask) as stream,
    ):
        events.extend(event.type for event in stream)
    assert events[:2] == ["message_start", "content_block_start"]
    engine.replies.append("fine")
    assert client.messages.create(model="m", max_tokens=50, messages=ask).content


def test_concurrent_requests_are_all_answered_one_after_another(
    scripted: tuple[ApiThread, Scripted],
) -> None:
    thread, engine = scripted
    engine.replies += [f"reply {i}" for i in range(4)]
    ask: Any = [{"role": "user", "content": "hi"}]

    def one(_: int) -> str:
        message = thread.anthropic().messages.create(model="m", max_tokens=50, messages=ask)
        block = message.content[0]
        return block.text if block.type == "text" else ""

    with ThreadPoolExecutor(4) as pool:
        answers = sorted(pool.map(one, range(4)))
    assert answers == [f"reply {i}" for i in range(4)]
    assert thread.server.counters.requests == 4


def test_the_api_key_is_required_when_set() -> None:
    host = EngineHost(lambda: Scripted([])).start()
    thread = ApiThread(host, api_key="s3cret")
    try:
        with pytest.raises(anthropic.AuthenticationError):
            thread.anthropic(api_key="wrong").models.list()
        with pytest.raises(openai.AuthenticationError) as error:
            thread.openai(api_key="wrong").models.list()
        assert error.value.body["type"] == "authentication_error"  # type: ignore[index]
        ask: Any = [{"role": "user", "content": "hi"}]
        assert (
            thread.anthropic(api_key="s3cret")
            .messages.create(model="m", max_tokens=5, messages=ask)
            .content
        )
        bearer = thread.anthropic(api_key=None, auth_token="s3cret")
        assert bearer.messages.create(model="m", max_tokens=5, messages=ask).content
        assert thread.server.counters.errors == 2
    finally:
        thread.close()
        host.stop()


class Unloaded:
    """A backend whose model has not loaded (``error`` None) or failed to (``error`` set)."""

    def __init__(self, error: str | None) -> None:
        self.engine = None
        self.error = error

    async def generate(self, *args: Any, **kwargs: Any) -> Any:
        raise AssertionError("never called without a model")


def test_requests_wait_for_the_model_then_answer_503() -> None:
    thread = ApiThread(Unloaded(None), load_wait_s=0.2)
    try:
        ask: Any = [{"role": "user", "content": "hi"}]
        with pytest.raises(anthropic.InternalServerError) as error:
            thread.anthropic().messages.create(model="m", max_tokens=5, messages=ask)
        assert error.value.status_code == 503
        assert "still loading" in error.value.body["error"]["message"]  # type: ignore[index]
    finally:
        thread.close()
    thread = ApiThread(Unloaded("model file not found: /m/q.gguf"))
    try:
        with pytest.raises(openai.InternalServerError) as failed:
            thread.openai().chat.completions.create(model="m", messages=ask)
        assert failed.value.status_code == 503
        assert failed.value.body["message"] == (  # type: ignore[index]
            "model unavailable: model file not found: /m/q.gguf"
        )
    finally:
        thread.close()


def test_a_request_waiting_for_the_model_is_answered_once_it_loads() -> None:
    gate = threading.Event()

    def load() -> Scripted:
        gate.wait(10)
        return Scripted(["loaded"])

    host = EngineHost(load).start()
    thread = ApiThread(host)
    try:
        timer = threading.Timer(0.3, gate.set)
        timer.start()
        ask: Any = [{"role": "user", "content": "hi"}]
        reply = thread.anthropic().messages.create(model="m", max_tokens=50, messages=ask)
        assert reply.content[0].type == "text" and reply.content[0].text == "loaded"
    finally:
        gate.set()
        thread.close()
        host.stop()


class Slow:
    """A backend whose prompt takes a while to read: the stream must stay alive meanwhile."""

    def __init__(self) -> None:
        self.engine = Scripted([])
        self.error = None

    async def generate(self, request: GenerationRequest, *args: Any) -> GenerationResult:
        await asyncio.sleep(0.4)
        assert request.on_text is not None
        request.on_text("hi")
        return GenerationResult("hi", "eos", 10, generated_tokens=1)


def test_a_silent_stream_gets_pings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("codenook.api.http.PING_S", 0.1)
    thread = ApiThread(Slow())
    try:
        ask: Any = [{"role": "user", "content": "hi"}]
        with thread.anthropic().messages.stream(model="m", max_tokens=5, messages=ask) as stream:
            kinds = [event.type for event in stream]
            assert stream.get_final_message().content[0].type == "text"
        assert kinds[0] == "message_start" and "ping" not in kinds  # the SDK hides pings
        body = json.dumps({"model": "m", "max_tokens": 5, "stream": True, "messages": ask})
        connection = http.client.HTTPConnection("127.0.0.1", thread.server.port, timeout=10)
        connection.request("POST", "/v1/messages", body=body)
        text = connection.getresponse().read().decode()
        connection.close()
        names = [line[7:] for line in text.splitlines() if line.startswith("event: ")]
        assert names[0] == "message_start" and names[1] == "ping"
        assert names.index("content_block_start") > names.index("ping")
    finally:
        thread.close()


def test_only_loopback_unless_remote_is_allowed() -> None:
    async def bind(host: str, allow: bool) -> Any:
        server = await start_api(Unloaded(None), host, 0, api_key=None, allow_remote=allow)
        await server.close()
        return server

    with pytest.raises(ValueError, match="not a loopback address"):
        asyncio.run(bind("0.0.0.0", False))
    assert asyncio.run(bind("0.0.0.0", True)).port > 0
    assert asyncio.run(bind("localhost", False)).port > 0
