"""The engine host: the one model of a process, behind the narrow interface sessions use.

Editor sessions (documents, workspace, settings, the services built on them) never hold the
engine thread itself; they hold the host and ask it to generate, for the model's description
and for its status. That keeps the session side unchanged when a reload swaps the engine
thread underneath, and it is the seam a host shared by several editor windows will sit on.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Protocol

from codenook.engine.protocol import Engine, GenerationRequest, GenerationResult
from codenook.engine.scheduler import EngineWorker, Priority, Status

# Builds the engine on the engine thread; the host calls it again on every reload.
Loader = Callable[[], Engine]


class Host(Protocol):
    """What services need of a host, whether the model is in this process or shared."""

    @property
    def engine(self) -> Engine | None: ...

    @property
    def error(self) -> str | None: ...

    async def generate(
        self, request: GenerationRequest, priority: Priority, key: str | None = None
    ) -> GenerationResult: ...


class EngineHost:
    def __init__(self, loader: Loader, on_status: Callable[[Status], None] | None = None) -> None:
        self._on_status = on_status
        self._lock = threading.Lock()
        self._worker = self._new_worker(loader)
        self._started = False
        self._stopped = False
        self._next: Loader | None = None  # the newest reload not applied yet
        self._reloading = False  # whether a reload thread is applying them
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
        with self._lock:
            if not self._started and not self._stopped:
                self._started = True
                self._worker.start()
        return self

    def stop(self, timeout: float | None = 5.0) -> None:
        """End every job and stop the engine; a reload under way starts nothing more.
        ``timeout`` bounds the wait for the engine thread (0: do not wait)."""
        with self._lock:
            self._stopped = True
            self._next = None
            worker = self._worker
        worker.stop(timeout)

    def reload(self, loader: Loader) -> None:
        """Load the model again with ``loader``, without two models in memory at once.

        The old engine thread is stopped fully before the new one loads, in a helper thread,
        so the caller (the event loop) never waits; requests made meanwhile queue on the new
        engine, requests in flight on the old one end as cancelled. Reloads are serialised:
        one asked for while another is under way replaces any that has not started loading,
        so the last settings win and the engine always ends loaded or failed.
        """
        with self._lock:
            self.reloads += 1
            if self._stopped:
                return
            if not self._started:  # nothing loaded yet: start() will load this one
                old, self._worker = self._worker, self._new_worker(loader)
            else:
                self._next = loader
                if self._reloading:
                    return
                self._reloading = True
                old = None
        if old is not None:
            old.stop(timeout=0)  # never started: only ends the jobs queued on it
            return
        threading.Thread(target=self._apply_reloads, name="codenook-reload", daemon=True).start()

    def _apply_reloads(self) -> None:
        while True:
            with self._lock:
                loader, self._next = self._next, None
                if loader is None or self._stopped:
                    self._reloading = False
                    return
                old = self._worker
                new = self._worker = self._new_worker(loader)
            old.stop(timeout=None)  # may be one that never started: that returns at once
            with self._lock:
                if self._next is None and not self._stopped:
                    new.start()

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
        self,
        request: GenerationRequest,
        priority: Priority,
        key: str | None = None,
        window: int = 0,
    ) -> GenerationResult:
        """Run ``request``; raises Superseded, Cancelled or EngineError (see the scheduler).
        ``window`` is the editor window's number on a shared host (its interactive lane)."""
        return await self._worker.generate(request, priority, key, window)
