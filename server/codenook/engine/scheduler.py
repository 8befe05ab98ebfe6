"""The engine thread: the only thread that touches the model, fed by a priority queue.

Async callers (LSP handlers, the CLI) ``await worker.generate(...)``. The request becomes a
job; the engine thread runs the most urgent job first. Two rules keep an editor responsive:
a newer job with the same ``key`` (one document's completion) supersedes the older one, which is
dropped if it has not started and cancelled between tokens if it has; a cancelled caller
(``$/cancelRequest``) cancels its job the same way, so the engine is free within one token;
and a long job (code action, agent step) is parked at a token boundary when a more urgent one
arrives, then resumed where it stopped: each kind of work runs in its own llama.cpp sequence
("lane"), so its state survives the interruption and its prompt is not read again.
The async side waits on a ``threading.Event`` through ``anyio.to_thread`` so the engine thread
never blocks on the event loop.
"""

from __future__ import annotations

import contextlib
import enum
import heapq
import itertools
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

import anyio

from codenook.engine.protocol import (
    Engine,
    EngineError,
    EngineUnreachable,
    GenerationRequest,
    GenerationResult,
    Step,
)

# Seconds between tries to reach a model that lives elsewhere: the first wait, the longest.
RETRY_LOAD_S = (2.0, 30.0)


class Priority(enum.IntEnum):
    """Lower runs first. Completion is what the user is waiting on while typing."""

    COMPLETION = 0
    HOVER = 1
    CODE_ACTION = 2
    AGENT = 3
    SPECULATIVE = 4


EngineState = Literal["idle", "loading", "generating", "failed", "stopped"]


def lane_of(priority: Priority, window: int = 0) -> int:
    """Keystrokes (completions and their guesses) share lane 0, so a keystroke reuses what
    the last one read. Hovers and code actions (lane 1) and agent steps (lane 2) keep lanes of
    their own: each can be parked for a keystroke at a token boundary, and none evicts the
    keystroke lane's prompt (a hover there made the next keystroke re-read the file) or an
    agent's, which its next step extends. On a shared engine host each further editor window
    types into a lane of its own (3, 4, …), so windows typing in turn do not re-read each
    other's prompts; those lanes come last, so a full cache gives them up first."""
    if priority in (Priority.COMPLETION, Priority.SPECULATIVE):
        return 0 if window <= 0 else 2 + window
    return 1 if priority in (Priority.HOVER, Priority.CODE_ACTION) else 2


class Superseded(Exception):
    """A newer request for the same key replaced this one before it finished."""


class Cancelled(Exception):
    """The caller went away (client cancel, shutdown) before the job finished."""


@dataclass
class Status:
    state: EngineState
    queue_length: int
    last_tokens_per_s: float
    error: str | None = None


@dataclass
class Job:
    request: GenerationRequest
    priority: Priority
    key: str | None
    seq: int
    lane: int = 0
    submitted: float = field(default_factory=time.perf_counter)
    result: GenerationResult | None = None
    error: BaseException | None = None
    done: threading.Event = field(default_factory=threading.Event)
    _cancel: threading.Event = field(default_factory=threading.Event)
    superseded: bool = False
    started: float = 0.0

    def cancel(self, *, superseded: bool = False) -> None:
        self.superseded = self.superseded or superseded
        self._cancel.set()

    @property
    def cancelled(self) -> bool:
        return self._cancel.is_set()

    def __lt__(self, other: Job) -> bool:
        return (self.priority, self.seq) < (other.priority, other.seq)


class EngineWorker:
    """Owns the engine thread. ``loader`` builds the engine on that thread (model load)."""

    def __init__(
        self,
        loader: Callable[[], Engine],
        on_status: Callable[[Status], None] | None = None,
    ) -> None:
        self._loader = loader
        self._on_status = on_status
        self._queue: list[Job] = []
        self._latest: dict[str, Job] = {}
        self._cv = threading.Condition()
        self._seq = itertools.count()
        self._stopping = False
        self._started = False
        self._state: EngineState = "loading"
        self._error: str | None = None
        self._last_tps = 0.0
        self._loaded = threading.Event()
        self._current: Job | None = None
        self._parked: dict[int, Job] = {}  # lane -> job paused for a more urgent one
        self._steps: dict[int, Step] = {}  # job seq -> its paused generation
        self.preemptions = 0
        self.engine: Engine | None = None
        self._thread = threading.Thread(target=self._run, name="codenook-engine", daemon=True)

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> EngineWorker:
        """Start the engine thread (once); a worker already stopped stays stopped."""
        with self._cv:
            if self._started or self._stopping:
                return self
            self._started = True
        self._publish()  # "loading": clients can show it while a big model maps in
        self._thread.start()
        return self

    def stop(self, timeout: float | None = 5.0) -> None:
        """Stop taking jobs and end every one: queued and parked jobs end at once as
        Cancelled, the running one at its next token. Then wait up to ``timeout`` seconds
        for the engine thread to close the model (0: do not wait); safe before ``start``."""
        with self._cv:
            self._stopping = True
            ended = self._queue + list(self._parked.values())
            self._queue, self._parked = [], {}
            if self._current is not None:
                self._current.cancel()
            if not self._started:
                self._state = "stopped"
            self._cv.notify_all()
        for job in ended:
            job.cancel()
            job.error = Cancelled("engine is shutting down")
            job.done.set()
        if self._started and timeout != 0 and self._thread is not threading.current_thread():
            self._thread.join(timeout)

    def wait_loaded(self, timeout: float | None = None) -> bool:
        return self._loaded.wait(timeout)

    @property
    def error(self) -> str | None:
        """Why the model is unavailable, or None when it loaded (or is still loading)."""
        return self._error

    def status(self) -> Status:
        with self._cv:
            waiting = len(self._queue) + len(self._parked)
            return Status(self._state, waiting, self._last_tps, self._error)

    # -- submitting --------------------------------------------------------------------------

    def submit(
        self,
        request: GenerationRequest,
        priority: Priority,
        key: str | None = None,
        window: int = 0,
    ) -> Job:
        job = Job(request, priority, key, next(self._seq), lane_of(priority, window))
        with self._cv:
            if self._stopping:
                job.error = Cancelled("engine is shutting down")
                job.done.set()
                return job
            if key is not None:
                older = self._latest.get(key)
                if older is not None and not older.done.is_set():
                    older.cancel(superseded=True)
                self._latest[key] = job
            heapq.heappush(self._queue, job)
            self._cv.notify_all()
        self._publish()
        return job

    async def generate(
        self,
        request: GenerationRequest,
        priority: Priority,
        key: str | None = None,
        window: int = 0,
    ) -> GenerationResult:
        """Run ``request`` on the engine; raises Superseded, Cancelled or EngineError."""
        job = self.submit(request, priority, key, window)
        try:
            await anyio.to_thread.run_sync(job.done.wait, abandon_on_cancel=True)
        except BaseException:
            job.cancel()
            raise
        if job.error is not None:
            raise job.error
        assert job.result is not None
        if job.superseded and job.result.stop_reason == "cancelled":
            raise Superseded(key)
        return job.result

    # -- the engine thread -------------------------------------------------------------------

    def _publish(self) -> None:
        if self._on_status is not None:
            # A status listener must never take the engine down.
            with contextlib.suppress(Exception):
                self._on_status(self.status())

    def _next_job(self) -> Job | None:
        """The most urgent runnable job: queued, or parked and waiting to resume.

        A queued job whose lane holds a parked job waits for it (one sequence per lane).
        """
        with self._cv:
            while True:
                if self._stopping:
                    return None
                for dropped in [j for j in self._queue if j.cancelled]:
                    self._queue.remove(dropped)
                    dropped.result = GenerationResult("", "cancelled")
                    dropped.done.set()
                heapq.heapify(self._queue)
                self._drop_overtaken_guesses()
                busy = {j.lane for j in self._parked.values()}
                candidates = [j for j in self._queue if j.lane not in busy]
                candidates += list(self._parked.values())
                if candidates:
                    job = min(candidates, key=self._rank)
                    if job in self._queue:
                        self._queue.remove(job)
                        heapq.heapify(self._queue)
                    self._current = job
                    self._state = "generating"
                    return job
                self._cv.wait()

    def _waiting_for(self, lane: int) -> list[int]:
        return [j.priority for j in self._queue if j.lane == lane and not j.cancelled]

    def _drop_overtaken_guesses(self) -> None:
        """A parked guess (speculative) with real work queued for its lane is dropped, as it
        would be if it were running; resumed first (see ``_rank``), it ends at its next step."""
        for job in self._parked.values():
            waiting = self._waiting_for(job.lane)
            if job.priority == Priority.SPECULATIVE and waiting and min(waiting) < job.priority:
                job.cancel()

    def _rank(self, job: Job) -> tuple[int, int]:
        """A parked job is as urgent as the most urgent job waiting for its lane: a keystroke
        queued behind a parked job must not wait for every other lane's work."""
        if self._parked.get(job.lane) is not job:
            return (job.priority, job.seq)
        return (min([job.priority, *self._waiting_for(job.lane)]), job.seq)

    def _run(self) -> None:
        with self._cv:
            stopped = self._stopping
            if stopped:
                self._state = "stopped"
        if stopped:  # stopped between start() and this thread's first step: load nothing
            self._loaded.set()
            self._publish()
            return
        delay = RETRY_LOAD_S[0]
        while True:
            try:
                self.engine = self._loader()
                break
            except Exception as exc:
                message = (
                    str(exc) if isinstance(exc, EngineError) else f"{type(exc).__name__}: {exc}"
                )
                with self._cv:
                    self._error = message
                    self._state = "failed"
                self._loaded.set()
                self._publish()
                if not isinstance(exc, EngineUnreachable):
                    self._fail_forever()
                    return
                # A server that is down now may be up in a while: keep failing jobs at once
                # with the message, and try again with backoff.
                if not self._fail_forever(time.monotonic() + delay):
                    return
                delay = min(delay * 2, RETRY_LOAD_S[1])
        with self._cv:
            self._error = None
            self._state = "idle" if not self._stopping else "stopped"
        self._loaded.set()
        self._publish()
        try:
            while (job := self._next_job()) is not None:
                self._publish()
                self._execute(job)
                with self._cv:
                    self._current = None
                    self._state = "idle" if not self._stopping else "stopped"
                self._publish()
        finally:
            with self._cv:
                self._state = "stopped"
                ended = self._queue + list(self._parked.values())
                self._queue, self._parked = [], {}
            for job in ended:
                job.error = Cancelled("engine stopped")
                job.done.set()
            engine, self.engine = self.engine, None
            if engine is not None:
                engine.close()
            self._publish()

    def _urgent_waiting(self, job: Job) -> Job | None:
        with self._cv:
            waiting = [j for j in self._queue if not j.cancelled and j.priority < job.priority]
            return min(waiting) if waiting else None

    def _execute(self, job: Job) -> None:
        """Drive a job token by token; park it when a more urgent job needs the engine."""
        assert self.engine is not None
        lane = job.lane
        steps = self._steps.pop(job.seq, None)
        try:
            if steps is None:
                job.started = time.perf_counter()
                # Inside the try: an engine that fails before its first step must fail the
                # job, not the engine thread.
                steps = self.engine.start(job.request, lambda: job.cancelled, lane)
            else:
                with self._cv:
                    self._parked.pop(lane, None)
            while True:
                next(steps)
                urgent = self._urgent_waiting(job)
                if urgent is None:
                    continue
                if urgent.lane != lane:
                    # Its own sequence keeps the job's state: resume later where it stopped.
                    with self._cv:
                        self._parked[lane] = job
                        self._steps[job.seq] = steps
                        self.preemptions += 1
                    return
                if job.priority == Priority.SPECULATIVE:
                    job.cancel()  # a guess is not worth delaying a keystroke
        except StopIteration as done:
            job.result = done.value
            job.result.queued_s = job.started - job.submitted
            if job.result.generated_tokens and job.result.decode_s > 0:
                self._last_tps = job.result.tokens_per_s
        except Exception as exc:
            job.error = exc if isinstance(exc, EngineError) else EngineError(str(exc))
        job.done.set()

    def _fail_forever(self, until: float | None = None) -> bool:
        """Without a model every job fails at once with the load error; until ``until``
        (monotonic) when given: then True says it is time to load again."""
        while True:
            with self._cv:
                while not self._queue and not self._stopping:
                    left = None if until is None else until - time.monotonic()
                    if left is not None and left <= 0:
                        return True
                    self._cv.wait(left)
                if self._stopping:
                    self._state = "stopped"
                    return False
                jobs, self._queue = self._queue, []
            for job in jobs:
                job.error = EngineError(self._error or "model unavailable")
                job.done.set()
