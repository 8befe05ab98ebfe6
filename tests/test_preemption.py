"""Pre-emption on the real engine: a keystroke interrupts a long generation, which then
finishes exactly as if nothing had happened (its lane kept its state)."""

from __future__ import annotations

import time
from pathlib import Path

import anyio
import pytest

from codenook.engine.llama import LlamaEngine
from codenook.engine.protocol import GenerationRequest
from codenook.engine.scheduler import EngineWorker, Priority

pytestmark = pytest.mark.anyio

LONG = "# A long explanation of binary search trees.\nclass Node:\n    def __init__(self"
SHORT = "def add(a, b):\n    return "


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.mark.parametrize("model", ["plain", "hybrid"])
async def test_keystroke_preempts_long_job_and_long_job_output_is_unchanged(
    model: str, smollm_path: Path, hybrid_path: Path
) -> None:
    path = smollm_path if model == "plain" else hybrid_path
    # The 2 MB fixture decodes ~1000 tokens/s: give it a long enough job to interrupt.
    n = 48 if model == "plain" else 400
    reference = LlamaEngine(path, n_ctx=2048, n_batch=64)
    try:
        expected = reference.generate(GenerationRequest(LONG, max_tokens=n), lambda: False, 1)
        quick = reference.generate(GenerationRequest(SHORT, max_tokens=4), lambda: False, 0)
    finally:
        reference.close()
    worker = EngineWorker(lambda: LlamaEngine(path, n_ctx=2048, n_batch=64)).start()
    try:
        assert worker.wait_loaded(60)
        long_job = worker.submit(GenerationRequest(LONG, max_tokens=n), Priority.CODE_ACTION)
        deadline = time.monotonic() + 30
        while worker.status().state != "generating" and time.monotonic() < deadline:
            await anyio.sleep(0.001)
        result = await worker.generate(
            GenerationRequest(SHORT, max_tokens=4), Priority.COMPLETION, key="doc"
        )
        answered_first = not long_job.done.is_set()
        assert long_job.done.wait(60)
        assert long_job.result is not None
        assert result.text == quick.text
        assert long_job.result.text == expected.text
        assert long_job.result.prompt_tokens == long_job.result.prefilled_tokens  # read once
        assert answered_first and worker.preemptions == 1
    finally:
        worker.stop()
