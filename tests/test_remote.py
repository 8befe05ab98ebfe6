"""The remote backend (``engine.backend openai``) against a scripted OpenAI-compatible server.

``tests/fake_openai.py`` plays vLLM / llama-server / Ollama, well behaved or not. Four layers:

- the engine itself (``RemoteEngine``): what it learns from the server, the exact bytes it
  sends, how streamed pieces, stops, ``until``, usage and llama-server timings come back;
- the failure matrix: every way a server fails is one ``EngineError`` naming the URL and the
  setting to fix, within a bounded time (the table goes to ``tests/.artifacts/``);
- cancellation: a cancelled generation ends and closes its HTTP stream at once;
- the real LSP server (``codenook serve`` over stdio) on the fake: the prompt it sends is the
  in-process prompt byte for byte, and completions, code actions and hovers work, while a
  server that is down is one message and empty answers.

Run as a script (``python tests/test_remote.py``), this file is the in-process twin of the
prompt-identity test: ``codenook serve`` with a scripted engine that has Qwen's FIM markers
and counts tokens exactly like the fake server's ``/tokenize``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import math
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import pytest_lsp
from lsprotocol import types
from pytest_lsp import ClientServerConfig, LanguageClient, client_capabilities

# What pytest and conftest.py do, for the script mode below too.
sys.path.insert(0, str(Path(__file__).parent / "fixtures"))
sys.path.insert(0, str(Path(__file__).parent))

from lsp_editor import Editor

from codenook.engine.protocol import (
    EngineError,
    EngineUnreachable,
    FimTokens,
    GenerationRequest,
    GenerationResult,
)
from codenook.engine.remote import CALIBRATION, COUNT_TIMEOUT_S, QWEN_FIM, RemoteEngine
from codenook.engine.remote_http import RemoteConfig
from codenook.settings import Settings
from fake_engine import INFO, FakeEngine
from fake_openai import QWEN_SPECIALS, FakeOpenAI, Reply, count_tokens

MODEL = "qwen3-coder-30b"
TIMEOUT_S = 1.0  # engine.timeoutS wherever a timeout is waited for
ARTIFACTS = Path(__file__).parent / ".artifacts"
KEY_ENV = "CODENOOK_TEST_REMOTE_KEY"
STARCODER_SPECIALS = (
    "<fim_prefix>",
    "<fim_suffix>",
    "<fim_middle>",
    "<fim_pad>",
    "<repo_name>",
    "<file_sep>",
    "<|endoftext|>",
)
CODELLAMA_SPECIALS = ("<PRE>", "<SUF>", "<MID>", "</s>")


def never() -> bool:
    return False


def _free_port() -> int:
    """A port nothing listens on (the OS just handed it out and it was closed again)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def fake() -> Iterator[FakeOpenAI]:
    with FakeOpenAI(specials=QWEN_SPECIALS) as server:
        yield server


@pytest.fixture
def engines() -> Iterator[Callable[..., RemoteEngine]]:
    """Builds engines on a URL (or a fake) and closes them after the test."""
    made: list[RemoteEngine] = []

    def make(target: FakeOpenAI | str, **config: Any) -> RemoteEngine:
        url = target.url if isinstance(target, FakeOpenAI) else target
        config.setdefault("timeout_s", TIMEOUT_S)
        engine = RemoteEngine(RemoteConfig(url, **config))
        made.append(engine)
        return engine

    yield make
    for engine in made:
        engine.close()


# -- discovery -------------------------------------------------------------------------------


def test_discovery_lists_models_and_learns_qwen_markers_from_tokenize(engines) -> None:
    with FakeOpenAI(models=(MODEL, "other"), specials=QWEN_SPECIALS) as fake:
        engine = engines(fake)
        info, found = engine.info, engine.discovery
        assert [(r.method, r.path) for r in fake.requests[:3]] == [
            ("GET", "/v1/models"),
            ("GET", "/props"),
            ("POST", "/tokenize"),
        ]
        assert fake.bodies("/tokenize")[0] == {
            "content": "a",
            "prompt": "a",
            "model": MODEL,
            "add_special": False,
            "add_special_tokens": False,
            "parse_special": True,
        }
    assert engine.model == MODEL and info.path == MODEL  # unset engine.model: the first listed
    assert info.architecture == "remote"
    assert info.description == f"OpenAI-compatible at {fake.url}"
    assert info.fim == QWEN_FIM and info.eos_text == "<|endoftext|>"
    assert info.chat_template is None and info.n_ctx == 4096
    assert found.models == [MODEL, "other"] and found.server == "OpenAI-compatible"
    assert found.tokenizer is True
    assert found.chars_per_token == len(CALIBRATION) / count_tokens(CALIBRATION, QWEN_SPECIALS)
    assert found.fim_source == "the server's /tokenize: " + " ".join(QWEN_FIM.markers())
    assert found.context_source == "model.contextSize (the server does not say its own)"
    assert found.template_source.startswith("ChatML")


def test_engine_model_picks_a_listed_model(engines) -> None:
    with FakeOpenAI(models=(MODEL, "other"), specials=QWEN_SPECIALS) as fake:
        engine = engines(fake, model="other")
        engine.generate(GenerationRequest("x = ", max_tokens=2), never)
        assert engine.info.path == "other" and fake.completions[0]["model"] == "other"
        assert {b["model"] for b in fake.bodies("/tokenize")} == {"other"}


@pytest.mark.parametrize(
    ("specials", "fim", "eos"),
    [
        (
            STARCODER_SPECIALS,
            FimTokens(
                prefix="<fim_prefix>",
                suffix="<fim_suffix>",
                middle="<fim_middle>",
                pad="<fim_pad>",
                repo_name="<repo_name>",
                file_sep="<file_sep>",
            ),
            "<|endoftext|>",
        ),
        (CODELLAMA_SPECIALS, FimTokens(prefix="<PRE>", suffix="<SUF>", middle="<MID>"), "</s>"),
        (("<|endoftext|>",), FimTokens(), "<|endoftext|>"),
    ],
    ids=["starcoder", "codellama", "no-fim"],
)
def test_other_families_markers_are_read_from_tokenize(
    engines, specials: tuple[str, ...], fim: FimTokens, eos: str
) -> None:
    with FakeOpenAI(specials=specials) as fake:
        engine = engines(fake)
    assert engine.info.fim == fim and engine.info.eos_text == eos
    if fim.has_fim:
        assert engine.discovery.fim_source == "the server's /tokenize: " + " ".join(fim.markers())
    else:
        assert engine.discovery.fim_source == (
            "the server's /tokenize: the model has no FIM markers (prefix-only prompts)"
        )


def test_without_tokenize_prompts_are_prefix_only_and_counts_estimated(engines) -> None:
    with FakeOpenAI(specials=None) as fake:
        engine = engines(fake)
        assert engine.tokenize("x" * 35) == [0] * 10  # 35 characters at 3.5 per token
        assert len(fake.bodies("/tokenize")) == 1  # the one probe, answered 404
    found = engine.discovery
    assert engine.info.fim == FimTokens() and engine.info.eos_text is None
    assert found.tokenizer is False and found.chars_per_token == 3.5
    assert found.fim_source == (
        "unknown: the server has no /tokenize endpoint, so completions use a prefix-only"
        " prompt; set engine.promptFormat to qwen for Qwen3-Coder's FIM prompt"
    )


def test_a_slow_tokenize_calibrates_an_estimate_instead_of_counting_every_line(engines) -> None:
    """Over a slow link a round trip per line would stall the first completion by seconds:
    the markers are still learned, and budgets use the calibrated estimate."""
    with FakeOpenAI(specials=QWEN_SPECIALS, stalls={"/tokenize": 0.02}) as fake:
        engine = engines(fake)
        before = len(fake.bodies("/tokenize"))
        counted = len(engine.tokenize("x" * 70))
        after = len(fake.bodies("/tokenize"))
    found = engine.discovery
    assert engine.info.fim == QWEN_FIM
    assert found.tokenizer and not found.exact_counts and found.round_trip_s >= 0.02
    assert after == before  # counted locally
    assert counted == math.ceil(70 / found.chars_per_token)


def test_prompt_format_qwen_and_none_override_discovery(engines) -> None:
    with FakeOpenAI(specials=None) as fake:
        qwen = engines(fake, prompt_format="qwen")
    assert qwen.info.fim == QWEN_FIM and qwen.info.eos_text == "<|endoftext|>"
    assert qwen.discovery.fim_source == "engine.promptFormat qwen"
    with FakeOpenAI(specials=QWEN_SPECIALS) as fake:
        none = engines(fake, prompt_format="none")
        probed = [b["content"] for b in fake.bodies("/tokenize")]
    assert none.info.fim == FimTokens() and none.info.eos_text is None
    assert none.discovery.fim_source == "engine.promptFormat none: prefix-only prompts"
    assert probed == ["a", CALIBRATION, CALIBRATION, CALIBRATION]  # calibration, no markers


def test_llama_server_props_give_context_template_and_cache_prompt(engines) -> None:
    props = {
        "default_generation_settings": {"n_ctx": 8192},
        "chat_template": "{% for m in messages %}{{ m['content'] }}{% endfor %}",
    }
    with FakeOpenAI(props=props, specials=QWEN_SPECIALS) as fake:
        engine = engines(fake)
        engine.generate(GenerationRequest("x = ", max_tokens=3), never)
        body = fake.completions[0]
    assert engine.discovery.server == "llama-server"
    assert engine.info.description == f"llama-server at {fake.url}"
    assert engine.info.n_ctx == 8192 and engine.discovery.context_source == "the server's /props"
    assert engine.info.chat_template == props["chat_template"]
    assert engine.discovery.template_source == "the server's /props"
    assert body["cache_prompt"] is True and body["timings_per_token"] is True


def test_vllm_max_model_len_gives_the_context(engines) -> None:
    with FakeOpenAI(owned_by="vllm", max_model_len=32768) as fake:
        engine = engines(fake, context_size=2048)
    assert engine.discovery.server == "vLLM" and engine.info.n_ctx == 32768
    assert engine.discovery.context_source == "the server's max_model_len"
    with FakeOpenAI() as fake:
        assert engines(fake, context_size=2048).info.n_ctx == 2048


@pytest.mark.parametrize("suffix", ["/v1", "/v1/", "", "/"])
def test_the_url_may_end_in_v1_or_not(engines, suffix: str) -> None:
    with FakeOpenAI() as fake:
        engines(f"http://127.0.0.1:{fake.port}{suffix}")
        assert fake.requests[0].path == "/v1/models"


# -- what is sent ----------------------------------------------------------------------------


def test_the_completion_body_is_exact(fake: FakeOpenAI, engines) -> None:
    engine = engines(fake)
    parts = [("<|fim_prefix|>", True), ("def f():\n    return ", False), ("<|fim_middle|>", True)]
    engine.generate(GenerationRequest(parts, max_tokens=7, stop=("\n\n", "")), never)
    engine.generate(GenerationRequest("π = ", max_tokens=0), never)
    first, second = fake.completions
    assert first == {
        "model": MODEL,
        "prompt": "<|fim_prefix|>def f():\n    return <|fim_middle|>",
        "max_tokens": 7,
        "temperature": 0,
        "stream": True,
        "stream_options": {"include_usage": True},
        "stop": ["\n\n"],
    }
    assert second == {
        "model": MODEL,
        "prompt": "π = ",
        "max_tokens": 1,
        "temperature": 0,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    for request in fake.requests:
        assert "Authorization" not in request.headers
    assert fake.requests[-1].headers["Content-Type"] == "application/json"


def test_user_text_that_spells_a_marker_stays_text(fake: FakeOpenAI, engines) -> None:
    """The server parses markers anywhere in a string prompt; in-process, text parts never
    are. So a text part's marker spellings reach the server broken by U+2060."""
    engine = engines(fake)
    code = 'END = "<|endoftext|>"  # <|fim_middle|> <|im_start|>\n'
    parts = [("<|fim_prefix|>", True), (code, False), ("<|fim_middle|>", True)]
    engine.generate(GenerationRequest(parts, max_tokens=2), never)
    engine.generate(GenerationRequest("<|im_end|>", max_tokens=2), never)  # a str is text
    first, second = (body["prompt"] for body in fake.completions)
    assert first == (
        '<|fim_prefix|>END = "<\u2060|endoftext|>"  # <\u2060|fim_middle|> <\u2060|im_start|>\n'
        "<|fim_middle|>"
    )
    assert second == "<\u2060|im_end|>"


def _remote_settings(url: str, **engine: Any) -> Settings:
    values = {"engine.backend": "openai", "engine.url": url}
    values.update({f"engine.{k}": v for k, v in engine.items()})
    return Settings.from_values(values)


def test_the_api_key_comes_from_the_environment_variable(
    monkeypatch: pytest.MonkeyPatch, engines
) -> None:
    monkeypatch.setenv(KEY_ENV, "sk-test-123")
    with FakeOpenAI(api_key="sk-test-123", specials=QWEN_SPECIALS) as fake:
        settings = _remote_settings(fake.url, apiKeyEnv=KEY_ENV, timeoutS=1)
        config = RemoteConfig.from_settings(settings)
        assert config.api_key == "sk-test-123" and config.timeout_s == 1.0
        engine = RemoteEngine(config)
        try:
            result = engine.generate(GenerationRequest("x = ", max_tokens=2), never)
        finally:
            engine.close()
        paths = {r.path for r in fake.requests}
        headers = {r.headers.get("Authorization") for r in fake.requests}
    assert result.text == "Hello world"
    assert paths == {"/v1/models", "/props", "/tokenize", "/v1/completions"}
    assert headers == {"Bearer sk-test-123"}  # on every request
    assert "sk-test-123" not in repr(settings.values)  # keys never live in settings


def test_an_unset_key_variable_or_url_fails_clearly(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(KEY_ENV, raising=False)
    with pytest.raises(EngineError) as unset:
        RemoteConfig.from_settings(_remote_settings("http://gpu-box:8000/v1", apiKeyEnv=KEY_ENV))
    assert str(unset.value) == (
        f"engine.apiKeyEnv names the environment variable {KEY_ENV}, which is not set in the"
        " environment codenook was started from"
    )
    with pytest.raises(EngineError) as no_url:
        RemoteConfig.from_settings(Settings.from_values({"engine.backend": "openai"}))
    assert "engine.url is not set" in str(no_url.value)
    with pytest.raises(EngineError) as bad_url:
        RemoteEngine(RemoteConfig("gpu-box:8000/v1"))
    assert "engine.url 'gpu-box:8000/v1' is not an http:// or https:// URL" in str(bad_url.value)


# -- what comes back -------------------------------------------------------------------------


def test_streamed_pieces_reach_on_text(fake: FakeOpenAI, engines) -> None:
    engine = engines(fake)
    fake.reply = Reply(pieces=("def", " add", "(a, b):", "\n    return a + b"))
    seen: list[str] = []
    result = engine.generate(
        GenerationRequest("# add\n", max_tokens=50, on_text=seen.append), never
    )
    assert seen == ["def", " add", "(a, b):", "\n    return a + b"]
    assert result.text == "def add(a, b):\n    return a + b"
    assert result.stop_reason == "eos" and result.generated_tokens == 4
    assert engine.counters.requests == 1 and engine.counters.generated_tokens == 4
    fake.reply = Reply(pieces=("a", "b"), finish_reason="length")
    assert engine.generate(GenerationRequest("x", max_tokens=2), never).stop_reason == "length"


def test_client_side_stop_strings_cut_the_text(fake: FakeOpenAI, engines) -> None:
    engine = engines(fake)
    fake.reply = Reply(pieces=("x = 1", "\n", "\ny = 2", "\n"))
    seen: list[str] = []
    request = GenerationRequest("", max_tokens=50, stop=("\n\n",), on_text=seen.append)
    result = engine.generate(request, never)
    assert result.text == "x = 1" and result.stop_reason == "stop"
    assert seen == ["x = 1", "\n"]  # the stop's first half had streamed, as in-process
    fake.reply = Reply(pieces=("a<|file", "_sep|>b"))  # a stop split across two pieces
    result = engine.generate(GenerationRequest("", stop=("<|file_sep|>",)), never)
    assert result.text == "a" and result.stop_reason == "stop"


def test_until_ends_the_generation_and_closes_the_stream(fake: FakeOpenAI, engines) -> None:
    engine = engines(fake)
    fake.reply = Reply(pieces=("one\n", "two\n", "three\n", "four\n"), delay_s=0.3)
    started = time.perf_counter()
    request = GenerationRequest("", max_tokens=50, until=lambda text: text.count("\n") >= 2)
    result = engine.generate(request, never)
    ended = time.perf_counter()
    assert result.text == "one\ntwo\n" and result.stop_reason == "until"
    assert ended - started < 0.6  # two pieces (one wait of 0.3 s), not four
    _eventually(lambda: len(fake.hung_up) == 1, 1.0)
    assert fake.hung_up[0] - ended < 0.2


def test_usage_fills_prompt_cached_and_prefilled_tokens(fake: FakeOpenAI, engines) -> None:
    engine = engines(fake)
    fake.reply = Reply(
        pieces=("a", "b", "c"),
        usage={
            "prompt_tokens": 120,
            "completion_tokens": 5,
            "total_tokens": 125,
            "prompt_tokens_details": {"cached_tokens": 96},
        },
    )
    result = engine.generate(GenerationRequest("x = ", max_tokens=9), never)
    assert (result.prompt_tokens, result.cached_tokens, result.prefilled_tokens) == (120, 96, 24)
    assert result.generated_tokens == 5
    counters = engine.counters
    assert (counters.prompt_tokens, counters.cached_tokens, counters.prefilled_tokens) == (
        120,
        96,
        24,
    )


def test_llama_server_timings_fill_the_figures(fake: FakeOpenAI, engines) -> None:
    engine = engines(fake)
    fake.reply = Reply(
        pieces=("a",),
        timings={"prompt_n": 7, "cache_n": 93, "predicted_n": 1, "prompt_ms": 3.1},
    )
    result = engine.generate(GenerationRequest("x = ", max_tokens=9), never)
    assert (result.prompt_tokens, result.cached_tokens, result.prefilled_tokens) == (100, 93, 7)


def test_without_figures_the_prompt_is_counted_by_tokenize(fake: FakeOpenAI, engines) -> None:
    engine = engines(fake)
    parts = [("<|fim_prefix|>", True), ("def f(x):\n    return x", False), ("<|fim_middle|>", True)]
    result = engine.generate(GenerationRequest(parts, max_tokens=9), never)
    expected = count_tokens("<|fim_prefix|>def f(x):\n    return x<|fim_middle|>", QWEN_SPECIALS)
    assert expected == 1 + 3 + 1 + 4 + 1
    assert (result.prompt_tokens, result.cached_tokens, result.prefilled_tokens) == (
        expected,
        0,
        expected,
    )


def test_a_time_budget_ends_a_stalled_stream(fake: FakeOpenAI, engines) -> None:
    engine = engines(fake, timeout_s=30.0)
    fake.reply = Reply(pieces=("a", "b"), stall_after=1, stall_s=10)
    started = time.perf_counter()
    result = engine.generate(GenerationRequest("x", max_tokens=9, time_budget_s=0.3), never)
    assert result.text == "a" and result.stop_reason == "time"
    assert time.perf_counter() - started < 0.6


# -- the failure matrix ----------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    """One way of failing: ``prepare`` builds what is needed and returns the URL the message
    must name and the call that must fail; ``hints`` must all be in the message."""

    name: str
    prepare: Callable[[FakeOpenAI, Callable[..., RemoteEngine]], tuple[str, Callable[[], Any]]]
    hints: tuple[str, ...]
    bound_s: float = 0.5
    attempts: int | None = None  # completion requests the server must have seen
    unreachable: bool = False  # an EngineUnreachable (loading is tried again later)


def _generate(engine: RemoteEngine) -> Callable[[], GenerationResult]:
    return lambda: engine.generate(GenerationRequest("x = ", max_tokens=8), never)


def _on_completion(**reply: Any) -> Callable[..., tuple[str, Callable[[], Any]]]:
    """A server that discovers fine and then answers completions with ``Reply(**reply)``."""

    def prepare(fake: FakeOpenAI, engines: Callable[..., RemoteEngine]) -> Any:
        engine = engines(fake)
        fake.reply = Reply(**{"pieces": ("one ", "two ", "three "), **reply})
        return fake.url, _generate(engine)

    return prepare


def _on_discovery(**script: Any) -> Callable[..., tuple[str, Callable[[], Any]]]:
    """A server whose discovery fails: ``script`` sets the fake's fields; ``model`` and
    ``url_path`` configure the client."""

    def prepare(fake: FakeOpenAI, engines: Callable[..., RemoteEngine]) -> Any:
        model = script.pop("model", None)
        url = f"http://127.0.0.1:{fake.port}{script.pop('url_path', '/v1')}"
        for key, value in script.items():
            setattr(fake, key, value)
        return url, lambda: engines(url, model=model)

    return prepare


def _server_down(fake: FakeOpenAI, engines: Callable[..., RemoteEngine]) -> Any:
    url = f"http://127.0.0.1:{_free_port()}/v1"
    return url, lambda: engines(url)


def _server_gone(fake: FakeOpenAI, engines: Callable[..., RemoteEngine]) -> Any:
    engine = engines(fake)
    fake.stop()
    return fake.url, _generate(engine)


CONTEXT_ERROR = (
    "This model's maximum context length is 32768 tokens. However, you requested 40000 tokens"
)
CASES = [
    Case(
        "server down at start (nothing listens)",
        _server_down,
        ("cannot reach the model server", "start it, or fix engine.url"),
        unreachable=True,
    ),
    Case(
        "server gone after start (refused, retried 3 times)",
        _server_gone,
        ("cannot reach the model server", "engine.url"),
        bound_s=2.5,
        unreachable=True,
    ),
    Case(
        "401 at start (no key sent)",
        _on_discovery(api_key="sk-needed"),
        ("HTTP 401", "Incorrect API key provided", "engine.apiKeyEnv"),
    ),
    Case(
        "401 on /v1/completions",
        _on_completion(status=401, error="Incorrect API key provided"),
        ("refused /v1/completions (HTTP 401", "engine.apiKeyEnv"),
        attempts=1,
    ),
    Case(
        "403 on /v1/completions",
        _on_completion(status=403, error="Forbidden"),
        ("HTTP 403", "engine.apiKeyEnv"),
        attempts=1,
    ),
    Case(
        "404 at start (wrong base URL)",
        _on_discovery(url_path="/openai/v1"),
        ("refused /v1/models (HTTP 404", "check engine.url"),
    ),
    Case(
        "engine.model not served",
        _on_discovery(model="qwen2.5-coder-7b"),
        ("does not serve 'qwen2.5-coder-7b'", MODEL, "set engine.model"),
    ),
    Case(
        "404 on /v1/completions (model gone)",
        _on_completion(status=404, error="The model `qwen3-coder-30b` does not exist."),
        ("HTTP 404", "engine.url", "engine.model"),
        attempts=1,
    ),
    Case(
        "400 on /v1/completions (prompt too long)",
        _on_completion(status=400, error=CONTEXT_ERROR),
        ("HTTP 400", "maximum context length", "context length"),
        attempts=1,
    ),
    Case(
        "500 on /v1/completions",
        _on_completion(status=500, error="CUDA out of memory"),
        ("HTTP 500", "CUDA out of memory", "see the server's log"),
        attempts=1,
    ),
    Case(
        "503 on every try (retried 3 times)",
        _on_completion(status=503, error="the model is loading"),
        ("HTTP 503", "see the server's log"),
        bound_s=2.5,
        attempts=4,
    ),
    Case(
        "503 at start (still loading; loading is tried again)",
        _on_discovery(statuses={"/v1/models": 503}),
        ("refused /v1/models (HTTP 503", "see the server's log"),
        unreachable=True,
    ),
    Case(
        "timeout at start (/v1/models silent)",
        _on_discovery(stalls={"/v1/models": 10.0}),
        ("did not answer within engine.timeoutS (1 s)",),
        bound_s=TIMEOUT_S + 0.5,
        unreachable=True,
    ),
    Case(
        "timeout before the first byte",
        _on_completion(stall_s=10.0),
        ("did not answer within engine.timeoutS (1 s)",),
        bound_s=TIMEOUT_S + 0.5,
        attempts=1,
        unreachable=True,
    ),
    Case(
        "timeout mid-stream",
        _on_completion(stall_after=1, stall_s=10.0),
        ("did not answer within engine.timeoutS (1 s)",),
        bound_s=TIMEOUT_S + 0.5,
        attempts=1,
        unreachable=True,
    ),
    Case(
        "stream cut halfway (chunked, no [DONE])",
        _on_completion(cut_after=2),
        ("closed the stream before the answer ended",),
        attempts=1,
    ),
    Case(
        "stream cut halfway (HTTP/1.0 close-delimited)",
        _on_completion(cut_after=2, chunked=False),
        ("closed the stream before the answer ended",),
        attempts=1,
    ),
    Case(
        "malformed chunk",
        _on_completion(malformed_after=1),
        ("sent a malformed stream chunk: '{not json'",),
        attempts=1,
    ),
    Case(
        "error object mid-stream",
        _on_completion(error_after=1, error="Internal server error: decode failed"),
        ("failed mid-answer: Internal server error: decode failed",),
        attempts=1,
    ),
]

MATRIX: dict[str, tuple[str, float, str]] = {}  # case -> (exception, seconds, message)


def _row(name: str, kind: str, seconds: float, message: str, url: str | None) -> None:
    if url:
        message = message.replace(url, url.split("://")[0] + "://127.0.0.1:PORT/v1")
    MATRIX[name] = (kind, seconds, message)
    print(f"{name}: {kind} after {seconds:.2f} s: {message}")


@pytest.fixture(scope="module", autouse=True)
def _write_matrix() -> Iterator[None]:
    """tests/.artifacts/remote-failures.md: what each failure says (quoted in issue #13)."""
    yield
    if not MATRIX:
        return
    order = [c.name for c in CASES]
    names = sorted(MATRIX, key=lambda n: (order.index(n) if n in order else len(order), n))
    lines = [
        "# Remote backend: what each failure says",
        "",
        "Generated by tests/test_remote.py (engine.timeoutS 1) against tests/fake_openai.py.",
        "",
        "| case | raises | seconds | message |",
        "|---|---|---|---|",
    ]
    for name in names:
        kind, seconds, message = MATRIX[name]
        cell = message.replace("|", "\\|").replace("\n", " ")
        lines.append(f"| {name} | {kind} | {seconds:.2f} | {cell} |")
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "remote-failures.md").write_text("\n".join(lines) + "\n", encoding="utf-8")


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_each_failure_is_one_clear_engine_error(case: Case, engines) -> None:
    with FakeOpenAI(specials=QWEN_SPECIALS) as fake:
        url, call = case.prepare(fake, engines)
        started = time.perf_counter()
        with pytest.raises(EngineError) as failed:
            call()
        elapsed = time.perf_counter() - started
        attempts = fake.attempts
    message = str(failed.value)
    _row(case.name, type(failed.value).__name__, elapsed, message, url)
    assert url in message, message
    for hint in case.hints:
        assert hint in message, (hint, message)
    assert elapsed < case.bound_s, (elapsed, message)
    assert isinstance(failed.value, EngineUnreachable) == case.unreachable, failed.value
    if case.attempts is not None:
        assert attempts == case.attempts


def test_503_while_loading_is_retried_until_it_answers(fake: FakeOpenAI, engines) -> None:
    engine = engines(fake)
    fake.reply = Reply(pieces=("ok",), status=503, fail_first=2, error="loading model")
    started = time.perf_counter()
    result = engine.generate(GenerationRequest("x = ", max_tokens=4), never)
    elapsed = time.perf_counter() - started
    assert result.text == "ok" and fake.attempts == 3  # two 503s, then 200
    assert 0.7 < elapsed < 1.5  # the backoff: 0.25 s, then 0.5 s
    _row(
        "503 twice, then 200 (retried)",
        "none",
        elapsed,
        f"answered {result.text!r} on attempt {fake.attempts}",
        None,
    )


def test_an_unset_key_variable_row() -> None:
    """The one failure before any request: recorded in the table too."""
    settings = _remote_settings("http://gpu-box:8000/v1", apiKeyEnv="CODENOOK_NO_SUCH_KEY")
    with pytest.raises(EngineError) as unset:
        RemoteConfig.from_settings(settings)
    assert "CODENOOK_NO_SUCH_KEY" in str(unset.value)
    _row("engine.apiKeyEnv names an unset variable", "EngineError", 0.0, str(unset.value), None)


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    """A self-signed certificate for 127.0.0.1 (no authority the system trusts)."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    return str(cert), str(key)


def test_tls_is_verified_and_ca_file_adds_an_authority(
    certificate: tuple[str, str], engines
) -> None:
    with FakeOpenAI(tls=certificate, specials=QWEN_SPECIALS) as fake:
        started = time.perf_counter()
        with pytest.raises(EngineError) as untrusted:
            engines(fake)
        elapsed = time.perf_counter() - started
        message = str(untrusted.value)
        _row("TLS: certificate of an unknown authority", "EngineError", elapsed, message, fake.url)
        assert f"TLS verification of {fake.url} failed" in message
        assert "set engine.caFile" in message and elapsed < 0.5
        engine = engines(fake, ca_file=certificate[0])
        result = engine.generate(GenerationRequest("x = ", max_tokens=4), never)
        assert result.text == "Hello world" and engine.info.fim == QWEN_FIM
    with pytest.raises(EngineError) as unreadable:
        engines("https://127.0.0.1:1/v1", ca_file="/nonexistent/ca.pem")
    assert "engine.caFile '/nonexistent/ca.pem' cannot be read" in str(unreadable.value)


# -- cancellation ----------------------------------------------------------------------------


def _eventually(check: Callable[[], bool], seconds: float) -> None:
    end = time.perf_counter() + seconds
    while not check() and time.perf_counter() < end:
        time.sleep(0.005)
    assert check()


def test_cancel_ends_the_generation_and_closes_the_stream_at_once(
    fake: FakeOpenAI, engines
) -> None:
    engine = engines(fake)
    fake.reply = Reply(pieces=[f"line {i}\n" for i in range(40)], delay_s=0.5)
    cancel = threading.Event()
    marks: list[float] = []

    def first_piece(piece: str) -> None:
        marks.append(time.perf_counter())
        cancel.set()

    request = GenerationRequest("x", max_tokens=100, on_text=first_piece)
    result = engine.generate(request, cancel.is_set)
    returned = time.perf_counter() - marks[0]
    assert result.stop_reason == "cancelled" and result.text == "line 0\n"
    assert len(marks) == 1 and returned < 0.2
    _eventually(lambda: len(fake.hung_up) == 1, 1.0)
    assert fake.hung_up[0] - marks[0] < 0.2  # the server saw its connection close
    assert engine.counters.cancelled == 1


def test_a_job_cancelled_before_it_starts_sends_nothing(fake: FakeOpenAI, engines) -> None:
    engine = engines(fake)
    result = engine.generate(GenerationRequest("x", max_tokens=4), lambda: True)
    assert result.stop_reason == "cancelled" and result.text == ""
    assert fake.completions == [] and engine.counters.cancelled == 1


def test_cancel_during_the_503_backoff_stops_retrying(fake: FakeOpenAI, engines) -> None:
    engine = engines(fake)
    fake.reply = Reply(status=503, error="loading")
    cancel = threading.Event()
    threading.Timer(0.1, cancel.set).start()
    started = time.perf_counter()
    result = engine.generate(GenerationRequest("x", max_tokens=4), cancel.is_set)
    assert result.stop_reason == "cancelled" and fake.attempts == 1
    assert time.perf_counter() - started < 0.3  # not the 0.25 + 0.5 + 1 s of backoff


def test_no_piece_reaches_on_text_after_a_cancel(fake: FakeOpenAI, engines) -> None:
    """The in-process engine checks ``cancelled()`` before every token; a fast server fills
    the socket buffer with hundreds of pieces that must not be delivered after a cancel."""
    engine = engines(fake)
    fake.reply = Reply(pieces=[f"p{i} " for i in range(3000)])
    cancel = threading.Event()
    seen: list[str] = []

    def on_text(piece: str) -> None:
        seen.append(piece)
        cancel.set()

    result = engine.generate(
        GenerationRequest("x", max_tokens=5000, on_text=on_text), cancel.is_set
    )
    assert result.stop_reason == "cancelled"
    assert seen == ["p0 "] and result.text == "p0 "


def test_a_silent_tokenize_costs_at_most_one_timeout(fake: FakeOpenAI, engines) -> None:
    """Counts run on the editor's thread (completion context budgets); a server whose
    /tokenize stops answering must not cost a timeout per line."""
    engine = engines(fake, timeout_s=0.5)
    fake.stalls["/tokenize"] = 10.0
    started = time.perf_counter()
    counts = [len(engine.tokenize(f"line {i} = {i} * 2\n")) for i in range(2)]
    estimate = math.ceil(len("line 0 = 0 * 2\n") / engine.discovery.chars_per_token)
    assert counts == [estimate, estimate]
    assert time.perf_counter() - started < 0.5 + 0.4  # one timeout of 0.5 s, not two


def test_a_count_never_waits_the_whole_engine_timeout(fake: FakeOpenAI, engines) -> None:
    """engine.timeoutS is for answers (a long prompt may take a while to start); a count
    blocks the editor, so it gives up after COUNT_TIMEOUT_S and estimates."""
    engine = engines(fake, timeout_s=5.0)
    fake.stalls["/tokenize"] = 10.0
    started = time.perf_counter()
    counted = len(engine.tokenize("total = price * quantity\n"))
    assert counted == math.ceil(
        len("total = price * quantity\n") / engine.discovery.chars_per_token
    )
    assert time.perf_counter() - started < COUNT_TIMEOUT_S + 0.4


# -- through the real LSP server -------------------------------------------------------------

LSP = pytest.mark.asyncio(loop_scope="module")
SERVE = [sys.executable, "-m", "codenook", "serve"]
TWIN = [sys.executable, str(Path(__file__).resolve())]
SERVER_ENV = {**os.environ, KEY_ENV: "sk-lsp-456"}
DOWN_PORT = _free_port()  # the `down` server's engine.url: nothing listens there at first
CODE = "def area(r):\n    return 3.14 * r * r\n\n\nx = area(2)\n"
ACTION_REPLY = (
    "```python\n",
    "def area(r):\n",
    '    """Area of a circle of radius r."""\n',
    "    return 3.14 * r * r\n",
    "```\n",
)
MODELS_PY = '''"""Domain objects."""


def parse_price(text: str, currency: str = "EUR") -> float:
    """Read a price such as '12.50 €'."""
    return float(text.split()[0])


class Basket:
    """Prices in one currency."""

    def add(self, price: str) -> None:
        self.items.append(parse_price(price))
'''
# Long enough that the prefix window (context.prefixTokens) cuts its first lines off.
ORDERS_PY = (
    "from .models import Basket, parse_price\n\n\n"
    + "".join(f"RATE_{i} = {i * 7919}.{i * 31:03}  # 🧾 tax band {i}\n" for i in range(40))
    + "\n\ndef total(prices: list[str]) -> float:\n"
    "    return sum(parse_price(p) for p in prices)\n\n\n"
    "def cheapest(prices: list[str]) -> float:\n"
    "    basket = Basket()\n"
    "    return "
)
IDENTITY_SETTINGS = {
    "completion": {"speculative": False, "maxTokens": 8},
    "trace": {"prompts": True},
    "context": {
        "prefixTokens": 550,
        "suffixTokens": 32,
        "headerTokens": 48,
        "crossFileTokens": 120,
    },
}


def _plain(value: Any) -> Any:
    """pygls hands custom results back as namedtuples; tests read them as dicts."""
    if hasattr(value, "_asdict"):
        return {k: _plain(v) for k, v in value._asdict().items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


async def _stats(client: Any) -> dict[str, Any]:
    return dict(_plain(await client.protocol.send_request_async("codenook/stats", {})))


async def _until(check: Callable[[], Any], seconds: float = 10.0) -> None:
    """Wait for an async ``check`` to hold."""
    for _ in range(int(seconds / 0.02)):
        if await check():
            return
        await asyncio.sleep(0.02)
    raise AssertionError("timed out")


async def _ready(client: Any, *, index: bool = False) -> dict[str, Any]:
    for _ in range(500):
        stats = await _stats(client)
        indexed = not index or (
            stats.get("index") and all(i["state"] == "ready" for i in stats["index"].values())
        )
        if stats.get("state") in ("idle", "failed") and indexed:
            return stats
        await asyncio.sleep(0.02)
    raise AssertionError(f"the server never became ready: {stats}")


async def _start(client: Any, root: Path, options: dict[str, Any], **caps: Any) -> Editor:
    editor = Editor(client, root)
    client.editor = editor
    client.problems = []

    @client.feature(types.WORKSPACE_APPLY_EDIT)
    def apply_edit(ls: LanguageClient, params: types.ApplyWorkspaceEditParams) -> Any:
        return editor.apply(params)

    @client.feature("codenook/problem")
    def problem(ls: LanguageClient, params: Any) -> None:
        client.problems.append(_plain(params))

    @client.feature(types.CLIENT_REGISTER_CAPABILITY)
    def register(ls: LanguageClient, params: types.RegistrationParams) -> None:
        return None

    @client.feature("codenook/status")
    def status(ls: LanguageClient, params: Any) -> None:
        return None

    capabilities = client_capabilities("visual-studio-code")
    if caps.get("problems"):
        capabilities.experimental = {"codenook": {"problems": True}}
    await client.initialize_session(
        types.InitializeParams(
            capabilities=capabilities,
            root_uri=root.as_uri(),
            workspace_folders=[types.WorkspaceFolder(uri=root.as_uri(), name=root.name)],
            initialization_options=options,
        )
    )
    return editor


def _inline(client: Any, uri: str, line: int, character: int) -> Any:
    return client.text_document_inline_completion_async(
        types.InlineCompletionParams(
            text_document=types.TextDocumentIdentifier(uri),
            position=types.Position(line, character),
            context=types.InlineCompletionContext(
                trigger_kind=types.InlineCompletionTriggerKind.Invoked
            ),
        )
    )


def _texts(result: Any) -> list[str]:
    items = result.items if isinstance(result, types.InlineCompletionList) else result or []
    return [i.insert_text if isinstance(i.insert_text, str) else i.insert_text.value for i in items]


def _end_of(text: str) -> tuple[int, int]:
    lines = text.split("\n")
    return len(lines) - 1, len(lines[-1])  # ASCII last line: UTF-16 columns = characters


def _traced_prompt(client: Any) -> str:
    traces = [m.message for m in client.log_messages if "--- prompt ---" in m.message]
    assert traces, "trace.prompts logs the prompt"
    return str(traces[-1].split("--- prompt ---\n", 1)[1].split("\n--- raw ---", 1)[0])


@pytest.fixture(scope="module")
def lsp_fake() -> Iterator[FakeOpenAI]:
    """The server every LSP test below talks to (each sets its reply); it wants a key."""
    with FakeOpenAI(api_key="sk-lsp-456", specials=QWEN_SPECIALS) as server:
        yield server


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A workspace folder with two files, so prompts have repository-level sections."""
    root = tmp_path_factory.mktemp("remote-shop")
    (root / "shop").mkdir()
    (root / "shop" / "__init__.py").write_text("")
    (root / "shop" / "models.py").write_text(MODELS_PY, encoding="utf-8")
    (root / "shop" / "orders.py").write_text(ORDERS_PY, encoding="utf-8")
    return root


def _remote_options(url: str, **more: Any) -> dict[str, Any]:
    engine = {"backend": "openai", "url": url, "apiKeyEnv": KEY_ENV, "timeoutS": 2}
    return {**more, "engine": engine}


@pytest_lsp.fixture(
    config=ClientServerConfig(server_command=SERVE, server_env=SERVER_ENV), scope="module"
)
async def remote(lsp_client: LanguageClient, lsp_fake: FakeOpenAI, project: Path):
    options = _remote_options(
        lsp_fake.url,
        completion={"speculative": False},
        hover={"timeBudgetMs": 10000},
        index={"enabled": False},
    )
    await _start(lsp_client, project, options)
    assert (await _ready(lsp_client))["state"] == "idle"
    yield
    await lsp_client.shutdown_session()


@pytest_lsp.fixture(
    config=ClientServerConfig(server_command=SERVE, server_env=SERVER_ENV), scope="module"
)
async def remote_twin(lsp_client: LanguageClient, project: Path):
    fake = FakeOpenAI(specials=QWEN_SPECIALS).start()
    lsp_client.fake = fake  # type: ignore[attr-defined]
    await _start(lsp_client, project, _remote_options(fake.url, **IDENTITY_SETTINGS))
    assert (await _ready(lsp_client, index=True))["state"] == "idle"
    yield
    await lsp_client.shutdown_session()
    fake.stop()


@pytest_lsp.fixture(config=ClientServerConfig(server_command=TWIN), scope="module")
async def inprocess_twin(lsp_client: LanguageClient, project: Path):
    await _start(lsp_client, project, IDENTITY_SETTINGS)
    assert (await _ready(lsp_client, index=True))["state"] == "idle"
    yield
    await lsp_client.shutdown_session()


@pytest_lsp.fixture(
    config=ClientServerConfig(server_command=SERVE, server_env=SERVER_ENV), scope="module"
)
async def down(lsp_client: LanguageClient, project: Path):
    url = f"http://127.0.0.1:{DOWN_PORT}/v1"
    options = _remote_options(url, completion={"speculative": False})
    await _start(lsp_client, project, options, problems=True)
    yield
    await lsp_client.shutdown_session()


@LSP
async def test_the_remote_prompt_is_the_in_process_prompt(
    remote_twin: Any, inprocess_twin: Any, project: Path
) -> None:
    """The same document and cursor through ``codenook serve`` twice: once on the fake
    server (engine.backend openai, FIM markers learned from its ``/tokenize``), once
    in-process on a scripted engine with Qwen's markers whose tokenizer counts exactly like
    that ``/tokenize`` (``fake_openai.count_tokens``). Both run the real LSP layer, context
    builder, workspace index and budgets. The budgets cut the prefix window and choose among
    cross-file chunks, and the toy tokenizer is far from proportional on this digit-heavy
    file, so equal prompts need the remote path to count through ``/tokenize`` too (a twin
    that estimated from the calibrated average instead was checked to start its window 16
    lines higher). Not circular: the remote side is read from the bytes the fake server
    received, the in-process side from the trace of what its engine was given. The text
    holds non-ASCII characters to catch any re-encoding on the wire."""
    remote_client, twin_client = remote_twin, inprocess_twin
    fake: FakeOpenAI = remote_client.fake
    uri = remote_client.editor.open("shop/orders.py", ORDERS_PY)
    assert twin_client.editor.open("shop/orders.py", ORDERS_PY) == uri
    line, character = _end_of(ORDERS_PY)
    fake.reply = Reply(pieces=("min(",))
    await _inline(remote_client, uri, line, character)
    await _inline(twin_client, uri, line, character)
    sent = fake.completions[-1]
    in_process = _traced_prompt(twin_client)
    assert sent["prompt"] == in_process
    assert sent["stop"] == list(QWEN_FIM.markers())
    assert sent["prompt"] == _traced_prompt(remote_client)
    prompt = in_process  # and what it holds: the repository layout, cut by the budgets
    assert prompt.startswith(f"<|repo_name|>{project.name}\n<|file_sep|>")
    assert "<|file_sep|>shop/models.py\n" in prompt
    assert prompt.index("<|file_sep|>shop/models.py") < prompt.index("<|file_sep|>shop/orders.py")
    assert prompt.endswith("<|fim_middle|>    return ")
    assert "from .models import Basket, parse_price" in prompt  # the import header
    assert "\nRATE_29 = 229651.899  # 🧾 tax band 29\n" in prompt and "RATE_28" not in prompt
    assert "'12.50 €'" in prompt and "return float(" not in prompt  # signatures, no bodies


@LSP
async def test_inline_completion_returns_the_scripted_text(
    remote: Any, lsp_fake: FakeOpenAI
) -> None:
    client = remote
    lsp_fake.reply = Reply(pieces=("x", " *", " 2"))
    text = "def double(x: int) -> int:\n    return "
    uri = client.editor.open("double.py", text)
    before = len(lsp_fake.completions)
    assert _texts(await _inline(client, uri, *_end_of(text))) == ["x * 2"]
    body = lsp_fake.completions[before]
    assert body["model"] == MODEL and body["stop"] == list(QWEN_FIM.markers())
    assert body["prompt"].endswith("<|fim_middle|>    return ")
    assert {r.headers.get("Authorization") for r in lsp_fake.requests} == {"Bearer sk-lsp-456"}
    stats = await _stats(client)
    assert stats["architecture"] == "remote" and stats["model"] == MODEL
    assert stats["lastCompletion"]["generated_tokens"] == 3


@LSP
async def test_a_code_action_streams_its_edit(remote: Any, lsp_fake: FakeOpenAI) -> None:
    client = remote
    lsp_fake.reply = Reply(pieces=ACTION_REPLY, delay_s=0.02)
    uri = client.editor.open("action.py", CODE)
    client.editor.edits.clear()
    args = {
        "uri": uri,
        "version": client.editor.docs[uri][0],
        "range": {"start": {"line": 0, "character": 4}, "end": {"line": 0, "character": 4}},
        "action": "docstring",
    }
    raw = await client.workspace_execute_command_async(
        types.ExecuteCommandParams(command="codenook.runAction", arguments=[args])
    )
    result = _plain(raw)
    assert result["status"] == "applied", result
    assert client.editor.docs[uri][1] == CODE.replace(
        "def area(r):\n", 'def area(r):\n    """Area of a circle of radius r."""\n'
    )
    assert len(client.editor.edits) >= 2, "streamed line by line"
    prompt = lsp_fake.completions[-1]["prompt"]  # the chat rendered locally (ChatML)
    assert prompt.startswith("<|im_start|>") and prompt.endswith("<|im_start|>assistant\n")
    assert "return 3.14 * r * r" in prompt


@LSP
async def test_a_hover_explains_with_the_servers_text(remote: Any, lsp_fake: FakeOpenAI) -> None:
    client = remote
    lsp_fake.reply = Reply(pieces=("Computes the area", " of a circle of radius r."))
    uri = client.editor.open("hover.py", CODE)
    hover = await client.text_document_hover_async(
        types.HoverParams(types.TextDocumentIdentifier(uri), types.Position(4, 5))
    )
    assert hover is not None
    assert hover.contents.value == (
        "```python\ndef area(r):\n```\n\nComputes the area of a circle of radius r."
    )


@LSP
async def test_a_server_that_is_down_is_one_message_then_recovers(down: Any) -> None:
    client = down
    url = f"http://127.0.0.1:{DOWN_PORT}/v1"
    stats = await _ready(client)
    assert stats["state"] == "failed" and url in stats["error"]
    uri = client.editor.open("down.py", CODE)
    for _ in range(3):
        assert _texts(await _inline(client, uri, 4, 9)) == []
    told = [p for p in client.problems if url in p["message"]]
    assert len(told) == 1, client.problems
    assert told[0]["setting"] == "engine.url"
    message = told[0]["message"]
    assert message.startswith(
        f"codenook: model unavailable: cannot reach the model server at {url} ("
    )
    assert message.endswith("): start it, or fix engine.url")
    assert client.messages == []  # the structured problem replaces window/showMessage
    _row("LSP: server down (codenook/problem)", "problem", 0.0, message, url)
    # The server comes up: the engine's next try (within 2 s) finds it.
    with FakeOpenAI(port=DOWN_PORT, specials=QWEN_SPECIALS) as fake:
        fake.reply = Reply(pieces=("2",))

        async def idle() -> bool:
            return (await _stats(client))["state"] == "idle"

        await _until(idle, 10.0)  # the next try is 2 s after the first
        assert _texts(await _inline(client, uri, 4, 9)) == ["2"]
    assert len([p for p in client.problems if url in p["message"]]) == 1


# -- the in-process twin of the prompt-identity test (script mode) -----------------------------


class TwinEngine(FakeEngine):
    """A model with Qwen's FIM markers whose tokenizer counts like the fake's /tokenize."""

    def __init__(self) -> None:
        super().__init__(reply="")
        self.info = dataclasses.replace(INFO, path="twin", fim=QWEN_FIM, eos_text="<|endoftext|>")

    def tokenize(self, text: str, special: bool = False) -> list[int]:
        return [0] * count_tokens(text, QWEN_SPECIALS, parse_special=special)


if __name__ == "__main__":
    from codenook.cli import build_parser, cmd_serve

    sys.exit(cmd_serve(build_parser().parse_args(["serve"]), loader=lambda settings: TwinEngine))
