"""The llama.cpp backend on real models: reuse, stops, budgets, cancellation, bad files."""

from __future__ import annotations

from pathlib import Path

import pytest

from codenook.engine.llama import LlamaEngine, inspect_model
from codenook.engine.protocol import EngineError, GenerationRequest

CODE = "def fibonacci(n):\n    if n < 2:\n        return n\n    return "


@pytest.fixture(scope="module")
def smollm(smollm_path: Path):
    engine = LlamaEngine(smollm_path, n_ctx=1024, n_batch=64)
    yield engine
    engine.close()


@pytest.fixture(scope="module")
def hybrid(hybrid_path: Path):
    engine = LlamaEngine(hybrid_path, n_ctx=1024, n_batch=64)
    yield engine
    engine.close()


def never() -> bool:
    return False


def test_second_prompt_reuses_the_shared_prefix(smollm: LlamaEngine) -> None:
    first = smollm.generate(GenerationRequest(CODE, max_tokens=4), never)
    second = smollm.generate(GenerationRequest(CODE + "fib", max_tokens=4), never)
    assert first.prompt_tokens > 10
    assert second.cached_tokens >= first.prompt_tokens - 2
    assert second.prefilled_tokens == second.prompt_tokens - second.cached_tokens
    assert second.prefilled_tokens <= 4


def test_max_tokens_and_stop_sequences(smollm: LlamaEngine) -> None:
    limited = smollm.generate(GenerationRequest(CODE, max_tokens=3), never)
    assert limited.generated_tokens <= 3
    full = smollm.generate(GenerationRequest(CODE, max_tokens=24), never)
    assert full.text, "the model should say something here"
    stop = full.text.strip()[:2]
    stopped = smollm.generate(GenerationRequest(CODE, max_tokens=24, stop=(stop,)), never)
    assert stopped.stop_reason == "stop"
    assert stop not in stopped.text


def test_until_and_streaming_callback(smollm: LlamaEngine) -> None:
    pieces: list[str] = []
    result = smollm.generate(
        GenerationRequest(CODE, max_tokens=40, until=lambda t: len(t) >= 5, on_text=pieces.append),
        never,
    )
    assert result.stop_reason in ("until", "eos")
    assert "".join(pieces) == result.text


def test_cancel_stops_within_one_token(smollm: LlamaEngine) -> None:
    calls = {"n": 0}

    def cancel_after_three_checks() -> bool:
        calls["n"] += 1
        return calls["n"] > 3

    result = smollm.generate(GenerationRequest(CODE, max_tokens=200), cancel_after_three_checks)
    assert result.stop_reason == "cancelled"
    assert result.generated_tokens <= 3
    assert smollm.counters.cancelled >= 1


def test_time_budget(smollm: LlamaEngine) -> None:
    result = smollm.generate(GenerationRequest(CODE, max_tokens=500, time_budget_s=0.0), never)
    assert result.stop_reason in ("time", "eos")
    assert result.generated_tokens <= 1


def test_prompt_too_long_is_a_clear_error(smollm: LlamaEngine) -> None:
    with pytest.raises(EngineError, match=r"does not fit model\.contextSize"):
        smollm.generate(GenerationRequest("x = 1\n" * 2000, max_tokens=8), never)
    # The engine still serves after the error.
    assert smollm.generate(GenerationRequest(CODE, max_tokens=2), never).prompt_tokens > 0


def test_hybrid_model_is_detected_and_generates(hybrid: LlamaEngine) -> None:
    assert hybrid.info.architecture == "qwen3next"
    assert hybrid.info.is_hybrid and hybrid.info.needs_checkpoints
    assert hybrid.info.fim.has_repo_level
    prompt = f"{hybrid.info.fim.prefix}def f():{hybrid.info.fim.suffix}\n{hybrid.info.fim.middle}"
    first = hybrid.generate(GenerationRequest(prompt, max_tokens=8), never)
    assert first.generated_tokens == 8 and first.text


def test_hybrid_never_reuses_state_it_cannot_rewind(hybrid: LlamaEngine, hybrid_path: Path):
    """An edit inside the resident tokens must re-read the prompt, and give the fresh answer."""
    base = "class A:\n    def run(self):\n        return 1\n"
    hybrid.generate(GenerationRequest(base, max_tokens=6), never)
    edited = base.replace("run", "walk")
    warm = hybrid.generate(GenerationRequest(edited, max_tokens=6), never)
    assert warm.cached_tokens == 0
    fresh = LlamaEngine(hybrid_path, n_ctx=1024, n_batch=64)
    try:
        cold = fresh.generate(GenerationRequest(edited, max_tokens=6), never)
    finally:
        fresh.close()
    assert warm.text == cold.text


def test_missing_and_corrupt_models_raise_actionable_errors(tmp_path: Path) -> None:
    with pytest.raises(EngineError, match=r"not found.*model\.path"):
        LlamaEngine(tmp_path / "nope.gguf")
    junk = tmp_path / "junk.gguf"
    junk.write_bytes(b"not a model at all")
    with pytest.raises(EngineError, match="not a GGUF"):
        LlamaEngine(junk)
    truncated = tmp_path / "truncated.gguf"
    truncated.write_bytes(b"GGUF" + b"\x03\x00\x00\x00" + b"\x00" * 20)
    with pytest.raises(EngineError, match="could not load"):
        LlamaEngine(truncated)
    with pytest.raises(EngineError):
        inspect_model(truncated)
