"""Model-backed code actions and hover explanations (the services behind the LSP handlers).

Both build chat prompts with the model's own template and run on the shared engine: code
actions at code-action priority in the long-work lane (a keystroke pre-empts them), hovers at
hover priority with a time budget, answering with the signature alone rather than making the
editor wait, while the explanation finishes in the background for the next hover.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import anyio

from codenook.assist.actions import (
    KINDS,
    ActionError,
    ActionKind,
    Region,
    ReplyParser,
    action_messages,
    choose_region,
    instruction_for,
)
from codenook.assist.chat import TemplateError, render_chat
from codenook.assist.hover import (
    HoverCache,
    Target,
    clean_explanation,
    hover_messages,
    hover_target,
    render_hover,
)
from codenook.engine.host import Host
from codenook.engine.protocol import EngineError, GenerationRequest, PromptPart
from codenook.engine.scheduler import Priority
from codenook.settings import Settings
from codenook.text.documents import Snapshot


@dataclass(frozen=True)
class ActionPlan:
    kind: ActionKind
    region: Region
    original: str
    parts: tuple[PromptPart, ...]


class AssistService:
    def __init__(self, host: Host, settings: Callable[[], Settings]) -> None:
        self._host = host
        self._settings = settings
        self.hover_cache = HoverCache()
        self._pending: dict[str, asyncio.Task[str | None]] = {}

    def _chat(self, messages: list) -> tuple[PromptPart, ...]:
        engine = self._host.engine
        if engine is None:
            raise EngineError(self._host.error or "the model is still loading")
        try:
            return render_chat(
                engine.info.chat_template, messages, eos_token=engine.info.eos_text or ""
            )
        except TemplateError as exc:
            raise ActionError(str(exc)) from exc

    # -- code actions ------------------------------------------------------------------------

    def plan(
        self,
        snapshot: Snapshot,
        start: int,
        end: int,
        kind_key: str,
        path: str,
        *,
        message: str = "",
        instruction: str = "",
    ) -> ActionPlan:
        kind = KINDS.get(kind_key)
        if kind is None:
            raise ActionError(f"unknown action {kind_key!r}")
        region = choose_region(snapshot, start, end)
        text = instruction_for(kind, message=message, instruction=instruction)
        parts = self._chat(action_messages(snapshot, region, text, path))
        return ActionPlan(kind, region, region.text(snapshot), parts)

    async def stream(self, plan: ActionPlan) -> AsyncIterator[str]:
        """Pieces of the model's reply as they are generated.

        Closing the iterator early (the user cancelled or typed) cancels the generation.
        """
        loop = asyncio.get_running_loop()
        send, receive = anyio.create_memory_object_stream[str | None](math.inf)
        parser = ReplyParser()

        def on_text(piece: str) -> None:
            parser.feed(piece)
            loop.call_soon_threadsafe(push, piece)

        settings = self._settings()
        request = GenerationRequest(
            plan.parts,
            max_tokens=settings.actions.maxTokens,
            on_text=on_text,
            until=lambda _text: parser.finished,
        )

        def push(piece: str | None) -> None:
            # The reader may be gone already (cancelled, or the user typed): drop the piece.
            with contextlib.suppress(anyio.BrokenResourceError, anyio.ClosedResourceError):
                send.send_nowait(piece)

        job = asyncio.ensure_future(self._host.generate(request, Priority.CODE_ACTION))
        job.add_done_callback(lambda _: loop.call_soon(push, None))
        try:
            async with receive:
                async for piece in receive:
                    if piece is None:
                        break
                    yield piece
            await job  # re-raise an engine error
        finally:
            send.close()
            if not job.done():
                job.cancel()

    # -- hover -------------------------------------------------------------------------------

    def hover_target(self, snapshot: Snapshot, offset: int) -> Target | None:
        return hover_target(snapshot, offset)

    async def hover(self, target: Target) -> tuple[str, bool]:
        """Markdown for ``target`` and whether the explanation came from the cache."""
        engine = self._host.engine
        if engine is None:
            return render_hover(target, None), False
        key = HoverCache.key(engine.info.path, target)
        cached = self.hover_cache.get(key)
        if cached is not None:
            return render_hover(target, cached), True
        task = self._pending.get(key)
        if task is None:
            task = asyncio.ensure_future(self._explain(target, key))
            self._pending[key] = task
            task.add_done_callback(lambda _: self._pending.pop(key, None))
        budget = self._settings().hover.timeBudgetMs / 1000
        try:
            explanation = await asyncio.wait_for(asyncio.shield(task), budget)
        except (TimeoutError, asyncio.TimeoutError):
            return render_hover(target, None), False  # the cache fills in the background
        return render_hover(target, explanation), False

    async def _explain(self, target: Target, key: str) -> str | None:
        settings = self._settings()
        try:
            # A model whose template cannot render the question still gets its signature
            # shown: the hover degrades, it never fails.
            parts = self._chat(hover_messages(target))
            request = GenerationRequest(parts, max_tokens=settings.hover.maxTokens)
            # One key for every hover: the newest supersedes an older one still waiting or
            # running (the pointer has moved on; its explanation is not worth the engine).
            result = await self._host.generate(request, Priority.HOVER, key="hover")
        except (EngineError, ActionError):
            return None
        explanation = clean_explanation(result.text)
        if explanation:
            self.hover_cache.put(key, explanation)
        return explanation or None
