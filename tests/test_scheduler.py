"""The engine thread's scheduling rules, exactly, with a scripted engine."""

from __future__ import annotations

import asyncio
import threading
import time

import anyio
import pytest

from codenook.engine import scheduler
from codenook.engine.protocol import EngineError, EngineUnreachable, GenerationRequest
from codenook.engine.scheduler import EngineWorker, Priority, Superseded, lane_of
from fake_engine import FakeEngine

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def engine() -> FakeEngine:
    return FakeEngine()


@pytest.fixture
def worker(engine: FakeEngine):
    w = EngineWorker(lambda: engine).start()
    assert w.wait_loaded(5)
    yield w
    w.stop()


def _hold(engine: FakeEngine, worker: EngineWorker) -> None:
    """Occupy the engine with a long job so that later submissions queue up."""
    engine.gate.clear()
    worker.submit(GenerationRequest("blocker"), Priority.AGENT, key="agent")
    assert engine.running.wait(5)


async def test_completion_runs_before_older_lower_priority_jobs(
    engine: FakeEngine, worker: EngineWorker
) -> None:
    _hold(engine, worker)
    agent = worker.submit(GenerationRequest("agent-step"), Priority.AGENT)
    hover = worker.submit(GenerationRequest("hover"), Priority.HOVER)
    completion = worker.submit(GenerationRequest("completion"), Priority.COMPLETION)
    engine.gate.set()
    for job in (agent, hover, completion):
        assert job.done.wait(5)
    assert engine.started == ["blocker", "completion", "hover", "agent-step"]


async def test_superseded_completion_is_dropped_before_it_starts(
    engine: FakeEngine, worker: EngineWorker
) -> None:
    _hold(engine, worker)
    results: dict[str, object] = {}

    async def ask(name: str) -> None:
        try:
            results[name] = await worker.generate(
                GenerationRequest(name), Priority.COMPLETION, key="file:///a.py"
            )
        except Superseded as exc:
            results[name] = exc

    async with anyio.create_task_group() as tg:
        tg.start_soon(ask, "old")
        await anyio.sleep(0.05)
        tg.start_soon(ask, "new")
        await anyio.sleep(0.05)
        engine.gate.set()
    assert isinstance(results["old"], Superseded)
    assert getattr(results["new"], "text", None) == "abcdef"
    assert "old" not in engine.started


async def test_running_completion_is_cancelled_by_a_newer_one(
    engine: FakeEngine, worker: EngineWorker
) -> None:
    engine.gate.clear()
    results: dict[str, object] = {}

    async def ask(name: str) -> None:
        try:
            results[name] = await worker.generate(
                GenerationRequest(name), Priority.COMPLETION, key="doc"
            )
        except Superseded as exc:
            results[name] = exc

    async with anyio.create_task_group() as tg:
        tg.start_soon(ask, "first")
        await anyio.to_thread.run_sync(engine.running.wait, 5)
        tg.start_soon(ask, "second")
        await anyio.sleep(0.1)
        engine.gate.set()
    assert isinstance(results["first"], Superseded)
    assert engine.started == ["first", "second"]


async def test_cancelled_caller_frees_the_engine(engine: FakeEngine, worker: EngineWorker):
    engine.gate.clear()
    with anyio.move_on_after(0.2):
        await worker.generate(GenerationRequest("slow"), Priority.COMPLETION, key="doc")
    # The job was cancelled between steps; the engine takes the next request at once.
    engine.gate.set()
    result = await worker.generate(GenerationRequest("next"), Priority.COMPLETION, key="doc")
    assert result.text == "abcdef"
    assert engine.counters.cancelled == 1


async def test_failed_load_answers_every_request_with_the_reason() -> None:
    def broken():
        raise EngineError("model file not found: /nope.gguf")

    seen = []
    worker = EngineWorker(broken, on_status=seen.append).start()
    try:
        assert worker.wait_loaded(5)
        assert worker.status().state == "failed"
        with pytest.raises(EngineError, match="not found"):
            await worker.generate(GenerationRequest("x"), Priority.COMPLETION)
        assert any(s.state == "failed" and "not found" in (s.error or "") for s in seen)
    finally:
        worker.stop()


async def test_an_unreachable_server_is_tried_again_until_it_answers(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A remote model's server down at start-up: requests fail at once with the message while
    the worker keeps trying with backoff; once it answers, the same worker serves."""
    monkeypatch.setattr(scheduler, "RETRY_LOAD_S", (0.05, 0.1))
    tries = []

    def flaky() -> FakeEngine:
        tries.append(time.monotonic())
        if len(tries) < 3:
            raise EngineUnreachable("cannot reach the model server at http://gpu:8000/v1")
        return FakeEngine(reply="ok")

    seen = []
    worker = EngineWorker(flaky, on_status=seen.append).start()
    try:
        assert worker.wait_loaded(5)
        with pytest.raises(EngineError, match="cannot reach"):
            await worker.generate(GenerationRequest("x"), Priority.COMPLETION)
        deadline = time.monotonic() + 5
        while worker.status().state != "idle" and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        assert len(tries) == 3 and worker.error is None
        assert tries[2] - tries[1] >= tries[1] - tries[0] >= 0.04  # backoff grows
        result = await worker.generate(GenerationRequest("x"), Priority.COMPLETION)
        assert result.text == "ok"
        failed = [s for s in seen if s.state == "failed"]
        assert failed and all("cannot reach" in (s.error or "") for s in failed)
        assert seen[-1].state == "idle" and seen[-1].error is None
    finally:
        worker.stop()


def test_a_wrong_model_file_is_not_tried_again() -> None:
    tries = []

    def broken() -> FakeEngine:
        tries.append(1)
        raise EngineError("model file not found: /nope.gguf")

    worker = EngineWorker(broken).start()
    try:
        assert worker.wait_loaded(5)
        time.sleep(0.3)
        assert tries == [1] and worker.status().state == "failed"
    finally:
        worker.stop()


async def test_status_reports_queue_and_state(engine: FakeEngine, worker: EngineWorker):
    _hold(engine, worker)
    worker.submit(GenerationRequest("a"), Priority.HOVER)
    worker.submit(GenerationRequest("b"), Priority.CODE_ACTION)
    status = worker.status()
    assert status.state == "generating" and status.queue_length == 2
    engine.gate.set()
    done = threading.Event()
    worker.submit(GenerationRequest("c"), Priority.AGENT).done.wait(5)
    done.set()
    assert worker.status().queue_length == 0


async def test_completion_preempts_a_long_job_which_resumes_where_it_was() -> None:
    engine = FakeEngine(reply="0123456789", step_s=0.02)
    worker = EngineWorker(lambda: engine).start()
    try:
        assert worker.wait_loaded(5)
        agent = worker.submit(GenerationRequest("agent", max_tokens=10), Priority.AGENT)
        while len(engine.steps) < 3:
            await anyio.sleep(0.005)
        result = await worker.generate(
            GenerationRequest("keystroke", max_tokens=3), Priority.COMPLETION, key="doc"
        )
        assert result.text == "012"
        assert not agent.done.is_set(), "the completion was answered before the long job ended"
        assert agent.done.wait(5)
        assert agent.result is not None and agent.result.text == "0123456789"
        # The agent began once (its prompt was not read again) and the keystroke ran inside it.
        assert engine.started == ["agent", "keystroke"]
        owners = [name for name, _ in engine.steps]
        first_key = owners.index("keystroke")
        assert first_key > 0 and "agent" in owners[first_key + 3 :]
        assert worker.preemptions == 1
    finally:
        worker.stop()


async def test_same_lane_jobs_wait_and_speculation_yields_to_keystrokes() -> None:
    engine = FakeEngine(reply="0123456789", step_s=0.02)
    worker = EngineWorker(lambda: engine).start()
    try:
        assert worker.wait_loaded(5)
        guess = worker.submit(GenerationRequest("guess", max_tokens=10), Priority.SPECULATIVE)
        while not engine.steps:
            await anyio.sleep(0.005)
        result = await worker.generate(
            GenerationRequest("keystroke", max_tokens=2), Priority.COMPLETION, key="doc"
        )
        assert result.text == "01"
        assert guess.done.wait(5)
        assert guess.result is not None and guess.result.stop_reason == "cancelled"
        assert worker.preemptions == 0
    finally:
        worker.stop()


async def test_code_action_preempts_an_agent_step_in_its_own_lane() -> None:
    engine = FakeEngine(reply="0123456789", step_s=0.02)
    worker = EngineWorker(lambda: engine).start()
    try:
        assert worker.wait_loaded(5)
        agent = worker.submit(GenerationRequest("agent", max_tokens=10), Priority.AGENT)
        while len(engine.steps) < 3:
            await anyio.sleep(0.005)
        later = worker.submit(GenerationRequest("agent-2", max_tokens=2), Priority.AGENT)
        result = await worker.generate(
            GenerationRequest("action", max_tokens=3), Priority.CODE_ACTION
        )
        assert result.text == "012"
        assert not agent.done.is_set()
        assert agent.done.wait(5) and later.done.wait(5)
        assert agent.result is not None and agent.result.text == "0123456789"
        # The action ran inside the agent step; the second step waited for the first's lane.
        assert engine.started == ["agent", "action", "agent-2"]
        assert worker.preemptions == 1
    finally:
        worker.stop()


async def test_a_keystroke_preempts_a_running_hover_and_keeps_its_own_lane() -> None:
    """Hovers run in the action lane: a keystroke parks a hover at a token boundary instead
    of waiting for its whole explanation, and never finds its lane's prompt replaced."""
    engine = FakeEngine(reply="0123456789", step_s=0.02)
    worker = EngineWorker(lambda: engine).start()
    try:
        assert worker.wait_loaded(5)
        hover = worker.submit(GenerationRequest("hover", max_tokens=10), Priority.HOVER)
        while len(engine.steps) < 3:
            await anyio.sleep(0.005)
        result = await worker.generate(
            GenerationRequest("keystroke", max_tokens=2), Priority.COMPLETION
        )
        assert result.text == "01" and not hover.done.is_set()
        assert hover.done.wait(5)
        assert hover.result is not None and hover.result.text == "0123456789"
        assert engine.started == ["hover", "keystroke"] and worker.preemptions == 1
        assert lane_of(Priority.HOVER) != lane_of(Priority.COMPLETION)
    finally:
        worker.stop()


async def test_a_newer_hover_supersedes_an_older_one(engine: FakeEngine, worker: EngineWorker):
    _hold(engine, worker)
    older = worker.submit(GenerationRequest("hover-1"), Priority.HOVER, key="hover")
    newer = worker.submit(GenerationRequest("hover-2"), Priority.HOVER, key="hover")
    engine.gate.set()
    assert older.done.wait(5) and newer.done.wait(5)
    assert older.superseded and newer.result is not None and newer.result.text
    assert engine.started == ["blocker", "hover-2"]
