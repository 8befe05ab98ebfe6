"""The inline-completion pipeline, shared by the LSP handler and ``codenook complete``.

Steps: context (pure, from a snapshot) -> prompt (pure) -> engine (on its thread, latest
request per document wins) -> post-processing (pure). Each step's cost is recorded in
``Timings`` so a user can see where the time went.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from codenook.completion.context import Budget, CompletionContext, build_completion_context
from codenook.completion.postprocess import Judge, Shape, postprocess, strip_dropped_indent
from codenook.completion.prompts import Prompt, completion_prompt, takes_chunks
from codenook.engine.host import Host
from codenook.engine.protocol import EngineError, GenerationRequest, GenerationResult
from codenook.engine.scheduler import Cancelled, Priority, Superseded
from codenook.lru import CachedCounter
from codenook.settings import Settings
from codenook.text import languages
from codenook.text.documents import Document, Snapshot
from codenook.uris import display_path, folder_name
from codenook.workspace.context import WorkspaceContext
from codenook.workspace.crossfile import Chunk


class NotReady(EngineError):
    """The model is still loading; not an error worth showing."""


@dataclass
class Timings:
    context_ms: float = 0.0
    queued_ms: float = 0.0
    prefill_ms: float = 0.0
    decode_ms: float = 0.0
    total_ms: float = 0.0
    prompt_tokens: int = 0
    cached_tokens: int = 0
    prefilled_tokens: int = 0
    generated_tokens: int = 0
    stop_reason: str = ""

    def summary(self) -> str:
        return (
            f"context {self.context_ms:.1f} ms | prompt {self.prompt_tokens} tokens"
            f" ({self.cached_tokens} cached, {self.prefilled_tokens} prefilled)"
            f" | queued {self.queued_ms:.1f} ms | prefill {self.prefill_ms:.1f} ms"
            f" | decode {self.decode_ms:.1f} ms ({self.generated_tokens} tokens,"
            f" stop: {self.stop_reason}) | total {self.total_ms:.1f} ms"
        )


@dataclass
class Suggestion:
    text: str
    raw: str
    prompt: Prompt | None  # None when answered from the suggestion already shown
    context: CompletionContext | None
    timings: Timings = field(default_factory=Timings)
    # More texts for the same place, none empty or repeated: only when asked for.
    alternatives: list[str] = field(default_factory=list)

    @property
    def typed_through(self) -> bool:
        return self.prompt is None

    @property
    def texts(self) -> list[str]:
        """Every suggestion, the first one first (empty when there is none)."""
        return [self.text, *self.alternatives] if self.text else []


@dataclass(frozen=True)
class Shown:
    """The last suggestion of a document and the text around the cursor it was made for."""

    before: str
    after: str
    text: str
    # The alternatives listed with it: the client may show any of them (cycling).
    others: tuple[str, ...] = ()
    # Whether it answered an explicit request: the list for this place is then known.
    listed: bool = False


def typed_through(shown: Shown, before: str, after: str) -> str | None:
    """The rest of a shown suggestion when the user has typed its beginning, else None.

    Typing what the ghost text shows must not cost a model call (nor flicker): the answer is
    the suggestion minus what was typed, as long as nothing else in the document changed.
    A client that cycled to an alternative shows that one, so each listed text counts.
    """
    rests = typed_rests(shown, before, after)
    return rests[0] if rests else None


def typed_rests(shown: Shown, before: str, after: str) -> list[str]:
    """What is left of each listed text that the typing so far agrees with, in list order."""
    if after != shown.after or not before.startswith(shown.before):
        return []
    typed = before[len(shown.before) :]
    texts = (shown.text, *shown.others)
    return [t[len(typed) :] for t in texts if len(typed) < len(t) and t.startswith(typed)]


def distinct(texts: Iterable[str]) -> list[str]:
    """The texts without empty ones and repeats, in order."""
    return list(dict.fromkeys(t for t in texts if t))


@dataclass
class CompletionCounters:
    requests: int = 0
    typed_through: int = 0  # answered from the suggestion on screen
    speculative_hits: int = 0  # answered from the guess made for after an acceptance
    speculated: int = 0  # guesses computed
    empty: int = 0


class CompletionService:
    def __init__(
        self,
        host: Host,
        settings: Callable[[], Settings],
        roots: Callable[[], list[str]] = list,
        workspace: WorkspaceContext | None = None,
    ) -> None:
        self._host = host
        self._settings = settings
        self._roots = roots
        self._workspace = workspace
        self._counted: object = None  # the engine whose tokenizer _cached_count wraps
        self._cached_count = CachedCounter(self._count)
        self._shown: dict[str, Shown] = {}
        self._speculated: dict[str, Shown] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self.counters = CompletionCounters()

    def forget(self, uri: str) -> None:
        """Drop what we remember of a closed document."""
        self._shown.pop(uri, None)
        self._speculated.pop(uri, None)

    def _count(self, text: str) -> int:
        engine = self._host.engine
        if engine is None:
            return max(1, len(text) // 3)
        return len(engine.tokenize(text))

    def _counter(self) -> CachedCounter:
        """Token counts remembered per model: lines and chunks repeat between keystrokes."""
        engine = self._host.engine
        if engine is not self._counted:
            self._counted = engine
            self._cached_count = CachedCounter(self._count)
        return self._cached_count

    def prepare(self, snapshot: Snapshot, offset: int) -> tuple[Prompt, Shape, CompletionContext]:
        """Context and prompt for a completion; synchronous so the snapshot's tree is current."""
        settings = self._settings()
        engine = self._host.engine
        if engine is None:
            if self._host.error:
                raise EngineError(self._host.error)
            raise NotReady("the model is still loading")
        budget = Budget(
            settings.context.prefixTokens,
            settings.context.suffixTokens if engine.info.fim.has_fim else 0,
            settings.context.headerTokens,
        )
        roots = self._roots()
        path = display_path(snapshot.uri, roots)
        count = self._counter()
        ctx = build_completion_context(snapshot, offset, budget, count, path)
        chunks: Sequence[Chunk] = ()
        cross_budget = settings.context.crossFileTokens
        if self._workspace is not None and cross_budget > 0 and takes_chunks(engine.info.fim):
            chunks = self._workspace.crossfile(snapshot, offset, ctx, cross_budget, count).chunks
        repo = folder_name(roots[0]) if roots else "workspace"
        comment = languages.comment_prefix(snapshot.uri)
        prompt = completion_prompt(ctx, engine.info.fim, repo, comment, chunks)
        lines = snapshot.lines
        # Post-processing compares against the document itself, whatever the prompt's
        # suffix budget (prefix-only models get no suffix at all).
        next_lines = range(ctx.cursor_line + 1, min(lines.line_count, ctx.cursor_line + 40))
        following = "\n".join(lines.line_text(n) for n in next_lines)
        previous = lines.line_text(ctx.cursor_line - 1) if ctx.cursor_line > 0 else ""
        shape = Shape(
            ctx.line_prefix,
            ctx.line_suffix,
            following,
            previous,
            settings.completion.maxLines,
        )
        return prompt, shape, ctx

    async def complete(
        self, snapshot: Snapshot, offset: int, *, reuse_shown: bool = True, alternatives: int = 1
    ) -> Suggestion:
        """A post-processed suggestion at ``offset``; raises Superseded/Cancelled/EngineError.

        ``reuse_shown=False`` always asks the model (``codenook complete --repeat`` measures
        the warm engine, not the typed-through shortcut) and does not speculate.
        ``alternatives`` > 1 asks the model for up to that many texts in one job; the one on
        screen (typed through) stays first, so cycling starts from what the user sees.
        """
        started = time.perf_counter()
        self.counters.requests += 1
        before, after = snapshot.text[:offset], snapshot.text[offset:]
        if alternatives > 1:
            return await self._complete_many(snapshot, offset, alternatives, reuse_shown, started)
        if reuse_shown:
            for memory, counter in (
                (self._shown, "typed_through"),
                (self._speculated, "speculative_hits"),
            ):
                shown = memory.get(snapshot.uri)
                rest = typed_through(shown, before, after) if shown else None
                if rest is None:
                    continue
                setattr(self.counters, counter, getattr(self.counters, counter) + 1)
                if memory is self._speculated:
                    # The user accepted the previous suggestion: the guess is now what shows.
                    self._shown[snapshot.uri] = self._speculated.pop(snapshot.uri)
                    self._speculate(snapshot.uri, before, after, rest)
                total_ms = (time.perf_counter() - started) * 1000
                timings = Timings(total_ms=total_ms, stop_reason="typed-through")
                return Suggestion(rest, rest, None, None, timings)
        self._speculated.pop(snapshot.uri, None)
        suggestion = await self._ask_model(snapshot, offset, Priority.COMPLETION, started)
        self._remember(snapshot.uri, before, after, suggestion, reuse_shown)
        return suggestion

    async def _complete_many(
        self, snapshot: Snapshot, offset: int, count: int, reuse_shown: bool, started: float
    ) -> Suggestion:
        before, after = snapshot.text[:offset], snapshot.text[offset:]
        shown = self._shown.get(snapshot.uri) if reuse_shown else None
        rests = typed_rests(shown, before, after) if shown else []
        if shown is not None and shown.listed and rests:
            # The list for this place was computed: typing through it keeps it.
            self.counters.typed_through += 1
            total_ms = (time.perf_counter() - started) * 1000
            timings = Timings(total_ms=total_ms, stop_reason="typed-through")
            return Suggestion(rests[0], rests[0], None, None, timings, rests[1:count])
        self._speculated.pop(snapshot.uri, None)
        suggestion = await self._ask_model(snapshot, offset, Priority.COMPLETION, started, count)
        texts = distinct([*rests[:1], *suggestion.texts])[:count]
        suggestion.text, suggestion.alternatives = (texts[0], texts[1:]) if texts else ("", [])
        self._remember(snapshot.uri, before, after, suggestion, reuse_shown, listed=True)
        return suggestion

    def _remember(
        self,
        uri: str,
        before: str,
        after: str,
        suggestion: Suggestion,
        speculate: bool,
        listed: bool = False,
    ) -> None:
        if suggestion.text:
            others = tuple(suggestion.alternatives)
            self._shown[uri] = Shown(before, after, suggestion.text, others, listed)
            if speculate:
                self._speculate(uri, before, after, suggestion.text)
        else:
            self._shown.pop(uri, None)
            self.counters.empty += 1

    async def _ask_model(
        self,
        snapshot: Snapshot,
        offset: int,
        priority: Priority,
        started: float,
        alternatives: int = 1,
    ) -> Suggestion:
        prompt, shape, ctx = self.prepare(snapshot, offset)
        context_done = time.perf_counter()
        settings = self._settings()
        until = Judge(shape, prompt.dropped_indent)
        request = GenerationRequest(
            prompt.parts,
            max_tokens=settings.completion.maxTokens,
            stop=prompt.stop,
            time_budget_s=settings.completion.timeBudgetMs / 1000,
            until=until,
            checkpoint_after=prompt.checkpoint_after,
            alternatives=alternatives,
            until_alternative=until,
            until_data=until.to_data() if alternatives > 1 else None,
        )
        # Speculation shares the document's key: the next real request supersedes it.
        result = await self._host.generate(request, priority, key=snapshot.uri)
        texts = distinct(
            _finish(text, stop, prompt, shape)
            for text, stop in [(result.text, result.stop_reason)]
            + [(a.text, a.stop_reason) for a in result.alternatives]
        )
        text, others = (texts[0], texts[1:]) if texts else ("", [])
        timings = _timings(result, (context_done - started) * 1000, started)
        return Suggestion(text, result.text, prompt, ctx, timings, others)

    def _speculate(self, uri: str, before: str, after: str, shown: str) -> None:
        """Compute, at the lowest priority, the suggestion that follows once ``shown`` is
        accepted, so accepting and continuing costs no wait (llama.vim's speculative FIM)."""
        if not self._settings().completion.speculative:
            return
        accepted = before + shown

        async def guess() -> None:
            doc = Document(uri, accepted + after, -1)
            try:
                result = await self._ask_model(
                    doc.snapshot(), len(accepted), Priority.SPECULATIVE, time.perf_counter()
                )
            except (EngineError, Superseded, Cancelled):
                return
            if result.text:
                self._speculated[uri] = Shown(accepted, after, result.text)
                self.counters.speculated += 1

        task = asyncio.get_running_loop().create_task(guess())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


def _finish(text: str, stop_reason: str, prompt: Prompt, shape: Shape) -> str:
    """What the user sees of a model's text."""
    raw = strip_dropped_indent(text, prompt.dropped_indent)
    done = postprocess(raw, shape) if raw is not None else ""
    if stop_reason == "time":
        # A budget cut may leave the last line half-written: keep complete lines only.
        done = done[: done.rfind("\n")].rstrip() if "\n" in done else ""
    return done


def _timings(result: GenerationResult, context_ms: float, started: float) -> Timings:
    return Timings(
        context_ms=context_ms,
        queued_ms=result.queued_s * 1000,
        prefill_ms=result.prefill_s * 1000,
        decode_ms=result.decode_s * 1000,
        total_ms=(time.perf_counter() - started) * 1000,
        prompt_tokens=result.prompt_tokens,
        cached_tokens=result.cached_tokens,
        prefilled_tokens=result.prefilled_tokens,
        generated_tokens=result.generated_tokens,
        stop_reason=result.stop_reason,
    )
