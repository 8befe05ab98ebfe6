"""The engine host: the one model of a process, behind the narrow interface sessions use.

Editor sessions (documents, workspace, settings, the services built on them) never hold the
engine thread itself; they hold the host and ask it to generate, for the model's description
and for its status. That keeps the session side unchanged when a reload swaps the engine
thread underneath, and it is the seam a host shared by several editor windows will sit on.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from codenook.engine.protocol import Engine, GenerationRequest, GenerationResult
from codenook.engine.scheduler import EngineWorker, Priority, Status

# Builds the engine on the engine thread; the host calls it again on every reload.
Loader = Callable[[], Engine]


class EngineHost:
    def __init__(self, loader: Loader, on_status: Callable[[Status], None] | None = None) -> None:
        self._on_status = on_status
        self._worker = self._new_worker(loader)
        self._started = False
        self.reloads = 0

    def _new_worker(self, loader: Loader) -> EngineWorker:
        def publish(status: Status) -> None:
            # A worker being replaced still reports "stopped"; only the current one speaks.
            if self._on_status is not None and worker is self._worker:
                self._on_status(status)

        worker = EngineWorker(loader, publish)
        return worker

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> EngineHost:
        if not self._started:
            self._started = True
            self._worker.start()
        return self

    def stop(self, timeout: float | None = 5.0) -> None:
        self._worker.stop(timeout)

    def reload(self, loader: Loader) -> None:
        """Load the model again with ``loader``, without two models in memory at once.

        The old engine thread is stopped fully before the new one loads, in a helper thread,
        so the caller (the event loop) never waits; requests made meanwhile queue on the new
        engine, requests in flight on the old one end as cancelled.
        """
        old = self._worker
        new = self._worker = self._new_worker(loader)
        self.reloads += 1
        if not self._started:
            return

        def replace() -> None:
            old.stop(timeout=None)
            new.start()

        threading.Thread(target=replace, name="codenook-reload", daemon=True).start()

    @property
    def started(self) -> bool:
        return self._started

    def wait_loaded(self, timeout: float | None = None) -> bool:
        return self._worker.wait_loaded(timeout)

    # -- what sessions ask -------------------------------------------------------------------

    @property
    def engine(self) -> Engine | None:
        """The loaded engine (None while loading or after a failure); for its description and
        tokenizer, which are safe to use from any thread."""
        return self._worker.engine

    @property
    def error(self) -> str | None:
        return self._worker.error

    @property
    def preemptions(self) -> int:
        return self._worker.preemptions

    def status(self) -> Status:
        return self._worker.status()

    async def generate(
        self, request: GenerationRequest, priority: Priority, key: str | None = None
    ) -> GenerationResult:
        """Run ``request``; raises Superseded, Cancelled or EngineError (see the scheduler)."""
        return await self._worker.generate(request, priority, key)
