"""The replay: typing a trace into a target in real time, and what became of each request.

Time is the measurement, so this loop does nothing but keep to the plan: a request is sent
when the editor's debounce would send it, the previous one still in flight is cancelled as an
editor cancels it, and answers are awaited on their own tasks so a slow answer never delays
the next keystroke.
"""

from __future__ import annotations

import asyncio
import dataclasses
from dataclasses import dataclass
from typing import Any, Protocol

from codenook.devtools.bench.trace import Buffer, Edit, Trace, plan

DRAIN_TIMEOUT_S = 120.0  # how long the answers may take after the last keystroke


@dataclass
class RequestRecord:
    """One completion request of the replay and what became of it."""

    index: int  # the event whose keystroke triggered it
    keystroke_at: float  # loop time the triggering keystroke was sent
    sent_at: float
    version: int = 0
    answered_at: float | None = None
    # pending, then: answered | cancelled (the server acknowledged our cancel) | late
    # (answered although we cancelled it) | skipped (the client sent nothing: llama.vim's
    # rules) | error | lost (no answer before the run ended)
    outcome: str = "pending"
    cancel_sent: bool = False
    stale: bool = False  # answered after a newer keystroke had been sent
    suggestion: str | None = None
    error: str | None = None
    # Engine facts for this request when known: prompt/cached/prefilled/generated tokens,
    # decode_ms (codenook: from codenook/stats lastCompletion; llama-server: its timings).
    engine: dict[str, float] | None = None

    @property
    def latency_ms(self) -> float | None:
        if self.answered_at is None:
            return None
        return (self.answered_at - self.keystroke_at) * 1000

    def to_json(self) -> dict[str, Any]:
        latency = self.latency_ms
        return {
            "event": self.index,
            "version": self.version,
            "outcome": self.outcome,
            "latency_ms": None if latency is None else round(latency, 1),
            "cancel_sent": self.cancel_sent,
            "stale": self.stale,
            "suggestion": self.suggestion,
            "error": self.error,
            "engine": self.engine,
        }


class Target(Protocol):
    """What a replay drives: codenook over LSP, or llama-server over HTTP as llama.vim."""

    async def change(self, version: int, edit: Edit) -> None: ...

    async def complete(self, record: RequestRecord, buffer: Buffer) -> None:
        """Send the request and return once it is sent; ``wait`` fills in the answer."""
        ...

    async def cancel(self, record: RequestRecord) -> None: ...

    async def wait(self, record: RequestRecord) -> None: ...


async def _sleep_until(loop: asyncio.AbstractEventLoop, deadline: float) -> None:
    delay = deadline - loop.time()
    if delay > 0:
        await asyncio.sleep(delay)


async def replay(
    trace: Trace, target: Target, speed: float = 1.0
) -> tuple[list[RequestRecord], float]:
    """Type ``trace`` into ``target`` in real time; the requests and the wall time in seconds.

    A target with a ``debounce_ms`` attribute is asked with that debounce instead of the
    trace's (the llama.vim peer asks on every keystroke).
    """
    debounce = getattr(target, "debounce_ms", None)
    if debounce is not None:
        trace = dataclasses.replace(trace, debounce_ms=float(debounce))
    loop = asyncio.get_running_loop()
    buffer = Buffer(trace.initial_text, trace.cursor)
    version = 1
    key_times: list[float] = []
    records: list[RequestRecord] = []
    waits: list[asyncio.Task[None]] = []
    start = loop.time()
    for step in plan(trace, speed):
        deadline = start + step.at_ms / 1000
        if step.kind == "ask":  # the editor's timer starts when the keystroke really happened
            deadline = max(deadline, key_times[step.index] + trace.debounce_ms / 1000)
        await _sleep_until(loop, deadline)
        if step.kind == "key":
            edit = buffer.apply(trace.events[step.index])
            if edit is not None:
                version += 1
                await target.change(version, edit)
            key_times.append(loop.time())
            continue
        if records and records[-1].outcome == "pending" and not records[-1].cancel_sent:
            records[-1].cancel_sent = True
            await target.cancel(records[-1])
        record = RequestRecord(step.index, key_times[step.index], loop.time(), version)
        records.append(record)
        await target.complete(record, buffer)
        waits.append(asyncio.ensure_future(target.wait(record)))
    if waits:
        await asyncio.wait(waits, timeout=DRAIN_TIMEOUT_S)
    for task in waits:
        task.cancel()
    elapsed = loop.time() - start
    for record in records:
        if record.outcome == "pending":
            record.outcome = "lost"
        later = key_times[record.index + 1] if record.index + 1 < len(key_times) else None
        record.stale = bool(
            record.answered_at is not None and later is not None and record.answered_at > later
        )
    return records, elapsed
