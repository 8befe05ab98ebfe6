"""The engine host and worker when reloads and stops come at awkward moments: every job
ends, every reload ends in a loaded or failed engine, no thread is left waiting."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest

from codenook.engine.host import EngineHost
from codenook.engine.protocol import Engine, EngineError, GenerationRequest
from codenook.engine.scheduler import Cancelled, EngineWorker, Priority, Status
from fake_engine import FakeEngine


def _until(check: Callable[[], bool], seconds: float = 5.0) -> bool:
    deadline = time.monotonic() + seconds
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


class Loaders:
    """Loaders that each build a named engine once ``release`` is set; records the order."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.loaded: list[str] = []
        self.engines: dict[str, FakeEngine] = {}

    def __call__(self, name: str, fail: bool = False) -> Callable[[], Engine]:
        def load() -> Engine:
            assert self.release.wait(10)
            self.loaded.append(name)
            if fail:
                raise EngineError(f"{name} cannot load")
            engine = self.engines[name] = FakeEngine(reply=name)
            return engine

        return load


def test_stop_ends_queued_and_running_jobs() -> None:
    engine = FakeEngine()
    engine.gate.clear()
    worker = EngineWorker(lambda: engine).start()
    assert worker.wait_loaded(5)
    running = worker.submit(GenerationRequest("running"), Priority.COMPLETION, key="a")
    assert engine.running.wait(5)
    queued = [worker.submit(GenerationRequest(f"q{i}"), Priority.HOVER) for i in range(3)]
    worker.stop(timeout=5)
    for job in [running, *queued]:
        assert job.done.wait(1), job.request.prompt
    assert all(isinstance(job.error, Cancelled) for job in queued)
    assert engine.closed


def test_stop_before_start_ends_queued_jobs_and_does_not_raise() -> None:
    worker = EngineWorker(FakeEngine)
    job = worker.submit(GenerationRequest("never"), Priority.COMPLETION)
    worker.stop(timeout=1)
    assert job.done.wait(1) and isinstance(job.error, Cancelled)
    worker.start()  # a stopped worker does not start (and does not load) any more
    assert worker.status().state == "stopped"


def test_stop_while_loading_ends_queued_jobs_at_once() -> None:
    loaders = Loaders()
    worker = EngineWorker(loaders("slow")).start()
    job = worker.submit(GenerationRequest("waiting"), Priority.COMPLETION)
    worker.stop(timeout=0)
    assert job.done.wait(1) and isinstance(job.error, Cancelled)
    loaders.release.set()
    assert _until(lambda: worker.status().state == "stopped")
    assert loaders.engines["slow"].closed


def test_quick_reloads_end_with_the_last_loader_and_one_model_at_a_time() -> None:
    loaders = Loaders()
    statuses: list[Status] = []
    host = EngineHost(loaders("first"), statuses.append).start()
    host.reload(loaders("second"))  # the first is still loading: its stop must wait
    host.reload(loaders("third"))
    host.reload(loaders("fourth"))
    assert host.reloads == 3
    loaders.release.set()
    assert _until(lambda: host.status().state == "idle"), host.status()
    assert host.engine is loaders.engines["fourth"]
    # "second" and "third" were replaced before they started: never loaded.
    assert loaders.loaded == ["first", "fourth"]
    assert loaders.engines["first"].closed
    assert statuses[-1].state == "idle"
    host.stop()


def test_reload_to_a_failing_model_ends_failed_with_a_message() -> None:
    loaders = Loaders()
    loaders.release.set()
    host = EngineHost(loaders("good")).start()
    assert host.wait_loaded(5)
    host.reload(loaders("bad", fail=True))
    assert _until(lambda: host.status().state == "failed"), host.status()
    assert host.error == "bad cannot load"
    host.reload(loaders("good again"))
    assert _until(lambda: host.status().state == "idle"), host.status()
    host.stop()


def test_reloads_before_start_only_keep_the_last_loader() -> None:
    loaders = Loaders()
    loaders.release.set()
    host = EngineHost(loaders("first"))
    host.reload(loaders("second"))
    host.reload(loaders("third"))
    host.start()
    assert host.wait_loaded(5)
    assert loaders.loaded == ["third"]
    host.stop()


def test_stop_during_a_reload_starts_nothing_more() -> None:
    loaders = Loaders()
    host = EngineHost(loaders("first")).start()
    host.reload(loaders("second"))
    host.stop(timeout=0)
    loaders.release.set()
    time.sleep(0.3)
    assert loaders.loaded == ["first"]
    assert _until(lambda: host.status().state == "stopped"), host.status()


@pytest.mark.anyio
async def test_a_job_submitted_during_a_reload_is_answered() -> None:
    loaders = Loaders()
    loaders.release.set()
    host = EngineHost(loaders("first")).start()
    assert host.wait_loaded(5)
    host.reload(loaders("second"))
    result = await host.generate(GenerationRequest("after"), Priority.COMPLETION)
    assert result.text == "second"
    host.stop()


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"
