"""What both APIs share: waiting for the model, fitting a prompt, running and streaming it.

API requests run at the agent's priority, so a keystroke in any editor pre-empts them at a
token boundary, and every chat request keeps a checkpoint at the end of its prompt: the next
turn of the conversation extends that prompt and the engine reads only the new tokens.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncGenerator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from codenook.api.convert import ApiError, Conversation, render
from codenook.api.reply import ReplyMemory, StopWatch
from codenook.engine.protocol import (
    EngineError,
    GenerationRequest,
    GenerationResult,
    ModelInfo,
    PromptPart,
    tokenize_parts,
)
from codenook.engine.scheduler import Cancelled, Priority, Superseded

LOAD_POLL_S = 0.05


class Model(Protocol):
    """The loaded model as the APIs see it: its description and its tokenizer."""

    @property
    def info(self) -> ModelInfo: ...

    def tokenize(self, text: str, special: bool = False) -> list[int]: ...


class Backend(Protocol):
    """The engine host (in-process ``EngineHost`` or the shared host's client)."""

    @property
    def engine(self) -> Model | None: ...

    @property
    def error(self) -> str | None: ...

    async def generate(
        self, request: GenerationRequest, priority: Priority, key: str | None = None
    ) -> GenerationResult: ...


class Responder(Protocol):
    """How a handler answers (http.Response): one JSON body, or a stream of events."""

    async def json(self, status: int, body: Any) -> None: ...

    async def start_events(self) -> None: ...

    async def events(self, events: Sequence[tuple[str | None, Any]]) -> None:
        """Server-sent events: (event name or None for data-only, JSON body or raw string)."""
        ...

    async def end(self) -> None: ...


@dataclass
class Counters:
    """Lifetime totals for tests and status reports."""

    requests: int = 0
    active: int = 0
    cancelled: int = 0  # requests whose client went away before the answer was complete
    errors: int = 0  # answers with an error status (or an error event in a stream)


@dataclass
class Prepared:
    """A request ready for the engine: its prompt, measured, and its limits."""

    parts: tuple[PromptPart, ...]
    prompt_tokens: int
    max_tokens: int
    stops: tuple[str, ...]
    model_stops: tuple[str, ...] = ()
    checkpoint_end: bool = True


@dataclass
class Outcome:
    """The finished generation as the client sees it."""

    text: str  # cut at a stop sequence
    raw: str  # everything the model generated
    stop_reason: str  # the engine's reason; "stop_sequence" when a client's stop ended it
    stop_sequence: str | None
    result: GenerationResult


@dataclass
class Service:
    backend: Backend
    model_name: str | None = None
    load_wait_s: float = 300.0
    counters: Counters = field(default_factory=Counters)
    memory: ReplyMemory = field(default_factory=ReplyMemory)

    async def model(self) -> Model:
        """The loaded model; waits while it loads (up to ``load_wait_s``), then 503."""
        deadline = time.monotonic() + self.load_wait_s
        while True:
            engine = self.backend.engine
            if engine is not None:
                return engine
            error = self.backend.error
            if error is not None:
                raise ApiError(503, "api_error", f"model unavailable: {error}")
            if time.monotonic() >= deadline:
                message = f"the model is still loading (waited {self.load_wait_s:g} s)"
                raise ApiError(503, "overloaded_error", message)
            await asyncio.sleep(LOAD_POLL_S)

    def name(self, model: Model | None) -> str:
        """The model's id for listings: the configured name, else the GGUF file's stem."""
        if self.model_name:
            return self.model_name
        return Path(model.info.path).stem if model is not None else "codenook"

    async def count(self, model: Model, parts: Sequence[PromptPart]) -> int:
        # Tokenizing a 20k-token request takes a while: off the event loop.
        tokens = await asyncio.to_thread(tokenize_parts, model.tokenize, parts)
        return len(tokens)

    async def prepare_chat(
        self, conversation: Conversation, max_tokens: int | None, stops: Sequence[str]
    ) -> tuple[Model, Prepared]:
        model = await self.model()
        info = model.info
        parts = render(conversation, info.chat_template, info.eos_text or "")
        n = await self.count(model, parts)
        model_stops = tuple(s for s in ("<|im_end|>", info.eos_text) if s)
        return model, self.fit(info, parts, n, max_tokens, stops, model_stops, True)

    def fit(
        self,
        info: ModelInfo,
        parts: tuple[PromptPart, ...],
        n: int,
        max_tokens: int | None,
        stops: Sequence[str],
        model_stops: Sequence[str] = (),
        checkpoint_end: bool = True,
    ) -> Prepared:
        """Cap the reply to what fits the context; a prompt that does not fit is a 400."""
        room = info.n_ctx - n
        if room < 1:
            raise ApiError(
                400,
                "invalid_request_error",
                f"prompt is {n} tokens; the model's context is {info.n_ctx} (model.contextSize)",
            )
        wanted = room if max_tokens is None else max_tokens
        return Prepared(
            parts,
            n,
            max(1, min(wanted, room)),
            tuple(s for s in stops if s),
            tuple(model_stops),
            checkpoint_end,
        )

    async def run(self, prepared: Prepared) -> AsyncGenerator[str | Outcome, None]:
        """The reply's final text as it becomes final, then the ``Outcome``.

        Pieces arrive on the engine thread and hop to the event loop; text that could still
        turn into a stop sequence is held back. Closing the iterator (the client went away)
        cancels the engine job, which ends within one token.
        """
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[str | None] = asyncio.Queue()
        watch = StopWatch(prepared.stops)

        def on_text(piece: str) -> None:
            loop.call_soon_threadsafe(queue.put_nowait, piece)

        request = GenerationRequest(
            prepared.parts,
            max_tokens=prepared.max_tokens,
            stop=prepared.model_stops,
            on_text=on_text,
            until=watch.until if watch.stops else None,
            checkpoint_end=prepared.checkpoint_end,
        )
        job = asyncio.ensure_future(self.backend.generate(request, Priority.AGENT))
        job.add_done_callback(lambda _: queue.put_nowait(None))
        try:
            while (piece := await queue.get()) is not None:
                out = watch.push(piece)
                if out:
                    yield out
            result = await _result(job)
            rest = watch.finish(result.text)
            if rest:
                yield rest
            hit = watch.hit
            yield Outcome(
                text=watch.text,
                raw=result.text,
                stop_reason="stop_sequence" if hit else result.stop_reason,
                stop_sequence=hit[1] if hit else None,
                result=result,
            )
        finally:
            if not job.done():
                job.cancel()
                # Let the cancellation reach the engine before the caller moves on.
                await asyncio.gather(job, return_exceptions=True)


async def _result(job: asyncio.Future[GenerationResult]) -> GenerationResult:
    try:
        return await job
    except (Cancelled, Superseded) as exc:
        raise ApiError(503, "overloaded_error", f"the engine stopped the request: {exc}") from exc
    except EngineError as exc:
        raise ApiError(500, "api_error", f"engine error: {exc}") from exc


async def collect(stream: AsyncGenerator[str | Outcome, None]) -> Outcome:
    """Drive ``Service.run`` to its outcome (the non-streaming answers)."""
    outcome: Outcome | None = None
    async for item in stream:
        if isinstance(item, Outcome):
            outcome = item
    assert outcome is not None
    return outcome


async def drive(
    service: Service, prepared: Prepared, on_piece: Callable[[str], Awaitable[None]]
) -> Outcome:
    """Run ``prepared`` to its outcome, handing each streamed piece on; if the consumer fails
    (the client went away), closing the stream cancels the engine job."""
    async with contextlib.aclosing(service.run(prepared)) as pieces:
        async for item in pieces:
            if isinstance(item, Outcome):
                return item
            await on_piece(item)
    raise RuntimeError("the generation ended without an outcome")
