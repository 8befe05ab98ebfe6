"""Agent steps on the real engine: each step's prompt extends the previous one, so each step
must read only its new tokens (plain and hybrid models), in a lane of its own that code
actions do not evict and keystrokes may interrupt without changing a step's output."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from codenook.engine.llama import LlamaEngine
from codenook.engine.protocol import (
    GenerationRequest,
    GenerationResult,
    PromptPart,
    run_to_end,
    tokenize_parts,
)
from codenook.engine.scheduler import EngineWorker, Job, Priority, Superseded, lane_of

AGENT_LANE = lane_of(Priority.AGENT)
HEADER = "<|im_start|>system\nYou are a coding agent. Use tools.<|im_end|>\n<|im_start|>user\n"
TASK = "Rename the function add to plus in calc.py and update its callers."
ASSISTANT = "<|im_end|>\n<|im_start|>assistant\n"
TOOL = "<|im_end|>\n<|im_start|>tool\n"
ACTION: list[PromptPart] = [
    ("<|im_start|>user\n", True),
    ("Add type hints:\ndef add(a, b):\n    return a + b\n", False),
    (ASSISTANT, True),
]
SHORT = "def add(a, b):\n    return "


def never() -> bool:
    return False


def first_step() -> list[PromptPart]:
    return [(HEADER, True), (TASK, False), (ASSISTANT, True)]


def next_step(parts: list[PromptPart], reply: str, step: int) -> list[PromptPart]:
    """The previous prompt plus the reply, a tool result and the next assistant header."""
    result = f"ok: {step} files changed"
    return [*parts, (reply, False), (TOOL, True), (result, False), (ASSISTANT, True)]


def n_tokens(engine: LlamaEngine, parts: list[PromptPart]) -> int:
    return len(tokenize_parts(engine.tokenize, parts))


@pytest.fixture(params=["plain", "hybrid"])
def model(request: pytest.FixtureRequest, smollm_path: Path, hybrid_path: Path) -> Path:
    return smollm_path if request.param == "plain" else hybrid_path


def test_every_priority_has_a_lane_and_long_work_does_not_share_one() -> None:
    assert {lane_of(p) for p in Priority} == set(range(LlamaEngine.LANES))
    assert len({lane_of(Priority.COMPLETION), lane_of(Priority.CODE_ACTION), AGENT_LANE}) == 3


def test_each_agent_step_prefills_only_its_new_tokens(model: Path) -> None:
    engine = LlamaEngine(model, n_ctx=1024, n_batch=64)
    fresh = LlamaEngine(model, n_ctx=1024, n_batch=64, prefix_cache=False)
    try:
        parts, previous = first_step(), 0
        for step in range(3):
            request = GenerationRequest(parts, max_tokens=6, checkpoint_end=True)
            total = n_tokens(engine, parts)
            warm = engine.generate(request, never, AGENT_LANE)
            cold = fresh.generate(request, never, AGENT_LANE)
            assert (warm.cached_tokens, warm.prefilled_tokens) == (previous, total - previous)
            # Reuse changes the work, not the reply. (Not the logits' digest: CPU kernels
            # round differently for some batch sizes, so chunking the prompt otherwise may
            # change the last bits.)
            assert warm.text == cold.text, step
            parts, previous = next_step(parts, warm.text, step), total
    finally:
        engine.close()
        fresh.close()


def test_without_an_end_checkpoint_a_hybrid_step_reads_old_tokens_again(
    hybrid_path: Path,
) -> None:
    engine = LlamaEngine(hybrid_path, n_ctx=1024, n_batch=64)
    try:
        parts = first_step()
        first = engine.generate(GenerationRequest(parts, max_tokens=6), never, AGENT_LANE)
        parts = next_step(parts, first.text, 0)
        second = engine.generate(GenerationRequest(parts, max_tokens=6), never, AGENT_LANE)
        assert second.prefilled_tokens > n_tokens(engine, parts) - first.prompt_tokens
    finally:
        engine.close()


def test_keystrokes_between_hybrid_steps_do_not_evict_the_next_steps_start(
    hybrid_path: Path,
) -> None:
    probe = LlamaEngine(hybrid_path, n_ctx=1024, n_batch=64)
    try:
        probe.generate(GenerationRequest(SHORT, max_tokens=1), never)
        one = probe.checkpoints.bytes // len(probe.checkpoints)
    finally:
        probe.close()
    engine = LlamaEngine(hybrid_path, n_ctx=1024, n_batch=64, checkpoint_bytes=2 * one)
    try:
        parts = first_step()
        first = engine.generate(
            GenerationRequest(parts, max_tokens=6, checkpoint_end=True), never, AGENT_LANE
        )
        for i in range(6):  # the user types while the agent's tool runs
            engine.generate(GenerationRequest(f"{SHORT}{i} * ", max_tokens=2), never, 0)
        assert engine.checkpoints.evictions > 0
        parts = next_step(parts, first.text, 0)
        second = engine.generate(
            GenerationRequest(parts, max_tokens=6, checkpoint_end=True), never, AGENT_LANE
        )
        assert second.cached_tokens == first.prompt_tokens
        assert second.prefilled_tokens == n_tokens(engine, parts) - first.prompt_tokens
    finally:
        engine.close()


def _interrupted_at(engine: LlamaEngine, request: GenerationRequest, k: int) -> GenerationResult:
    """Run ``request`` in the agent lane, pausing it after ``k`` steps for a keystroke."""
    steps = engine.start(request, never, AGENT_LANE)
    for _ in range(k):
        next(steps)
    engine.generate(GenerationRequest(SHORT, max_tokens=3), never, 0)
    return run_to_end(steps)


def test_a_step_paused_at_any_boundary_finishes_as_if_uninterrupted(model: Path) -> None:
    engine = LlamaEngine(model, n_ctx=1024, n_batch=64, prefix_cache=False)
    try:
        request = GenerationRequest(first_step(), max_tokens=4)
        solo = engine.start(request, never, AGENT_LANE)
        boundaries = 0
        while True:
            try:
                next(solo)
                boundaries += 1
            except StopIteration as done:
                expected: GenerationResult = done.value
                break
        assert boundaries >= 4  # prefill chunks and tokens
        for k in range(1, boundaries + 1):
            result = _interrupted_at(engine, request, k)
            assert result.text == expected.text, k
            assert result.prompt_logits_digest == expected.prompt_logits_digest, k
    finally:
        engine.close()


def _parts_of_about(engine: LlamaEngine, unit: str, tokens: int) -> list[PromptPart]:
    text = unit
    while len(engine.tokenize(text + unit)) <= tokens:
        text += unit
    return [(text, False)]


def test_a_full_cache_gives_up_the_agent_lane_first_and_the_step_reads_again(
    model: Path,
) -> None:
    """256 cells for three lanes: a keystroke's long prompt needs the parked agent step's
    cells; the code action's lane stays, and the agent step still ends as it would have."""
    engine = LlamaEngine(model, n_ctx=256, n_batch=64)
    alone = LlamaEngine(model, n_ctx=256, n_batch=64)
    try:
        action = GenerationRequest(_parts_of_about(engine, "a = 1\n", 50), 4)
        agent = GenerationRequest(_parts_of_about(engine, "b = 2\n", 70), 16)
        keystroke = GenerationRequest(_parts_of_about(engine, "c = 3\n", 150), 4)
        solo = alone.generate(agent, never, AGENT_LANE)
        code_lane = lane_of(Priority.CODE_ACTION)
        first_action = engine.generate(action, never, code_lane)
        steps = engine.start(agent, never, AGENT_LANE)
        for _ in range(6):
            next(steps)  # into generation
        engine.generate(keystroke, never, 0)  # does not fit beside both long lanes
        again = engine.generate(action, never, code_lane)
        assert again.cached_tokens == first_action.prompt_tokens - 2  # the agent lane went
        assert again.text == first_action.text
        result = run_to_end(steps)
        assert result.text == solo.text
        assert result.prefilled_tokens == 2 * solo.prompt_tokens  # its prompt, read again
    finally:
        engine.close()
        alone.close()


# -- through the scheduler ----------------------------------------------------------------------


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def reference(smollm_path: Path) -> Iterator[LlamaEngine]:
    engine = LlamaEngine(smollm_path, n_ctx=1024, n_batch=64)
    yield engine
    engine.close()


@pytest.fixture
def worker(smollm_path: Path) -> Iterator[EngineWorker]:
    w = EngineWorker(lambda: LlamaEngine(smollm_path, n_ctx=1024, n_batch=64)).start()
    assert w.wait_loaded(60)
    yield w
    w.stop()


def _submitting_on_first_token(
    worker: EngineWorker, request: GenerationRequest, priority: Priority, into: list[Job]
) -> Callable[[str], None]:
    """An ``on_text`` that submits a more urgent job at the first generated token, so the
    pre-emption happens mid-generation on every run, not only when timing allows."""

    def on_text(_piece: str) -> None:
        if not into:
            into.append(worker.submit(request, priority, key="doc"))

    return on_text


@pytest.mark.anyio
async def test_keystroke_preempts_an_agent_step_which_still_reads_only_its_new_tokens(
    reference: LlamaEngine, worker: EngineWorker
) -> None:
    step1 = GenerationRequest(first_step(), max_tokens=8, checkpoint_end=True)
    expected1 = reference.generate(step1, never, AGENT_LANE)
    parts = next_step(first_step(), expected1.text, 0)
    expected2 = reference.generate(
        GenerationRequest(parts, max_tokens=8, checkpoint_end=True), never, AGENT_LANE
    )
    quick = reference.generate(GenerationRequest(SHORT, max_tokens=4), never, 0)

    assert (await worker.generate(step1, Priority.AGENT)).text == expected1.text
    urgent: list[Job] = []
    keystroke = GenerationRequest(SHORT, max_tokens=4)
    step2 = GenerationRequest(
        parts,
        max_tokens=8,
        checkpoint_end=True,
        on_text=_submitting_on_first_token(worker, keystroke, Priority.COMPLETION, urgent),
    )
    result = await worker.generate(step2, Priority.AGENT)
    assert urgent and urgent[0].done.wait(30) and urgent[0].result is not None
    assert urgent[0].result.text == quick.text
    assert worker.preemptions == 1
    assert result.text == expected2.text
    # Not read again: only what step 2 added to step 1's prompt.
    assert result.prefilled_tokens == expected2.prefilled_tokens
    assert result.prefilled_tokens == n_tokens(reference, parts) - expected1.prompt_tokens
    assert result.cached_tokens == expected1.prompt_tokens


@pytest.mark.anyio
async def test_code_action_and_agent_step_interleave_in_separate_lanes(
    reference: LlamaEngine, worker: EngineWorker
) -> None:
    action = GenerationRequest(ACTION, max_tokens=6)
    action_lane = lane_of(Priority.CODE_ACTION)
    expected_action = reference.generate(action, never, action_lane)
    parts, previous, expected = first_step(), 0, []
    for step in range(3):
        expected.append(
            reference.generate(
                GenerationRequest(parts, max_tokens=6, checkpoint_end=True), never, AGENT_LANE
            )
        )
        parts = next_step(parts, expected[-1].text, step)

    parts, urgent = first_step(), []
    for step in range(3):
        on_text = None
        if step == 1:  # a code action arrives in the middle of this step
            on_text = _submitting_on_first_token(worker, action, Priority.CODE_ACTION, urgent)
        request = GenerationRequest(parts, max_tokens=6, checkpoint_end=True, on_text=on_text)
        result = await worker.generate(request, Priority.AGENT)
        assert result.text == expected[step].text, step
        assert result.cached_tokens == previous, step  # the code action evicted nothing
        previous = result.prompt_tokens
        if step == 1:
            # Between two agent steps: the code action's own lane is still warm.
            again = await worker.generate(action, Priority.CODE_ACTION)
            assert again.text == expected_action.text
            assert again.cached_tokens == again.prompt_tokens - 2
        parts = next_step(parts, result.text, step)
    assert urgent[0].done.is_set() and urgent[0].result is not None
    assert urgent[0].result.text == expected_action.text
    assert worker.preemptions == 1


@pytest.mark.anyio
async def test_a_keystroke_behind_a_parked_guess_does_not_wait_for_an_agent_step(
    reference: LlamaEngine, worker: EngineWorker
) -> None:
    """A speculative guess parked for an agent step holds lane 0; a keystroke queued for lane 0
    must not wait for the whole agent step: the guess is dropped and the keystroke runs."""
    quick = reference.generate(GenerationRequest(SHORT, max_tokens=4), never, 0)
    keystroke: list[Job] = []
    agent_jobs: list[Job] = []
    agent_tokens: list[bool] = []  # per agent token: whether the keystroke had ended
    submit_keystroke = _submitting_on_first_token(
        worker, GenerationRequest(SHORT, max_tokens=4), Priority.COMPLETION, keystroke
    )

    def agent_text(piece: str) -> None:
        submit_keystroke(piece)
        agent_tokens.append(keystroke[0].done.is_set())

    agent = GenerationRequest(ACTION, max_tokens=120, on_text=agent_text)

    def start_agent(_piece: str) -> None:
        if not agent_jobs:
            agent_jobs.append(worker.submit(agent, Priority.AGENT))

    guess = GenerationRequest(ACTION, max_tokens=120, on_text=start_agent)
    with pytest.raises(Superseded):  # the keystroke is for the guess's document
        await worker.generate(guess, Priority.SPECULATIVE, key="doc")
    assert agent_jobs[0].done.wait(60) and agent_jobs[0].result is not None
    assert keystroke[0].done.is_set() and keystroke[0].result is not None
    assert keystroke[0].result.text == quick.text
    # The keystroke ended right after the agent step's first token, not after its last.
    assert len(agent_tokens) > 3 and agent_tokens[1:3] == [True, True], agent_tokens[:5]
