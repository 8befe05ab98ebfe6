"""Caching must change nothing but speed: cached runs equal uncached runs bit for bit.

Random edit sequences (typing at the cursor, deleting, edits far above the cursor, undo) go
through the real context and prompt builders into two engines on the same model, one with
prefix reuse and checkpoints, one without. Every step compares the digest of the prompt's
logits and the greedy tokens, and the cached engine must really have reused something.
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from codenook.completion.context import Budget, build_completion_context
from codenook.completion.prompts import completion_prompt
from codenook.engine.llama import LlamaEngine
from codenook.engine.protocol import GenerationRequest
from codenook.text.documents import Document

BASE = """import math
from dataclasses import dataclass


@dataclass
class Point:
    x: float
    y: float

    def norm(self) -> float:
        return math.hypot(self.x, self.y)


def centroid(points: list[Point]) -> Point:
    n = len(points)
    sx = sum(p.x for p in points)
    sy = sum(p.y for p in points)
    return Point(sx / n, sy / n)


def farthest(points: list[Point], origin: Point) -> Point:
    best = points[0]
    for p in points:
        """


def _never() -> bool:
    return False


def _edits(seed: int, steps: int) -> list[str]:
    """Successive document texts: mostly typing at the end, sometimes something else."""
    rng = random.Random(seed)
    texts = [BASE]
    history = [BASE]
    typing = "d = math.dist((p.x, p.y), (origin.x, origin.y))\n        if d > best_d:"
    typed = 0
    for _ in range(steps):
        text = texts[-1]
        roll = rng.random()
        if roll < 0.6 and typed < len(typing):
            text = text + typing[typed]
            typed += 1
        elif roll < 0.7 and text.endswith(typing[:typed]) and typed:
            text = text[:-1]
            typed -= 1
        elif roll < 0.8:
            text = text.replace("    x: float", f"    x: float  # {rng.randint(0, 99)}", 1)
        elif roll < 0.9 and len(history) > 2:
            text = history[-2]  # undo
            typed = max(0, typed - 1)
        else:
            text = text.replace("n = len(points)", "count = len(points)", 1)
        history.append(text)
        texts.append(text)
    return texts


def _prompts(texts: list[str], engine: LlamaEngine) -> list[GenerationRequest]:
    requests = []
    budget = Budget(prefix_tokens=120, suffix_tokens=24, header_tokens=40)
    for version, text in enumerate(texts):
        doc = Document("file:///repo/geometry.py", text, version)
        ctx = build_completion_context(
            doc.snapshot(), len(text), budget, lambda s: len(engine.tokenize(s)), "geometry.py"
        )
        prompt = completion_prompt(ctx, engine.info.fim, "repo", "#")
        requests.append(
            GenerationRequest(prompt.parts, max_tokens=6, checkpoint_after=prompt.checkpoint_after)
        )
    return requests


# SmolLM2 is ~50x slower per token than the 2 MB hybrid fixture: fewer steps for it.
@pytest.mark.parametrize(
    ("model", "seed", "steps"),
    [("plain", 1, 12), ("hybrid", 1, 40), ("hybrid", 2, 40), ("hybrid", 3, 40)],
)
def test_cached_runs_equal_uncached_runs(
    model: str, seed: int, steps: int, smollm_path: Path, hybrid_path: Path
) -> None:
    path = smollm_path if model == "plain" else hybrid_path
    cached = LlamaEngine(path, n_ctx=1024, n_batch=64)
    fresh = LlamaEngine(path, n_ctx=1024, n_batch=64, prefix_cache=False)
    try:
        requests = _prompts(_edits(seed, steps), cached)
        reused = 0
        for step, request in enumerate(requests):
            warm = cached.generate(request, _never)
            cold = fresh.generate(request, _never)
            assert cold.cached_tokens == 0
            assert warm.prompt_logits_digest == cold.prompt_logits_digest, step
            assert warm.text == cold.text, step
            reused += warm.cached_tokens
            if step:
                assert warm.prefilled_tokens < warm.prompt_tokens or warm.cached_tokens == 0
        # Reuse really happened: most prompt tokens of the session came from the cache.
        assert reused > 0.5 * fresh.counters.prompt_tokens, (reused, fresh.counters)
        if model == "hybrid":
            assert cached.counters.checkpoint_hits > len(requests) // 2
            assert cached.checkpoints.bytes <= cached.checkpoints.budget_bytes
    finally:
        cached.close()
        fresh.close()


def test_checkpoint_memory_budget_is_respected(hybrid_path: Path) -> None:
    probe = LlamaEngine(hybrid_path, n_ctx=512, n_batch=64)
    try:
        probe.generate(GenerationRequest("def f(x):\n    return x\n", max_tokens=1), _never)
        one = probe.checkpoints.bytes // max(1, len(probe.checkpoints))
    finally:
        probe.close()
    assert one > 0
    engine = LlamaEngine(hybrid_path, n_ctx=512, n_batch=64, checkpoint_bytes=3 * one)
    try:
        for i in range(12):
            engine.generate(
                GenerationRequest(f"def f{i}(x):\n    return x * {i}\n", max_tokens=1), _never
            )
            assert engine.checkpoints.bytes <= 3 * one
        assert len(engine.checkpoints) <= 3
        assert engine.checkpoints.evictions > 0
    finally:
        engine.close()
