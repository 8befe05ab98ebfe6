"""Edits that stream a replacement into one region of a document, line by line.

Pure bookkeeping: each call returns the next edit in coordinates of the document as it is
right before that edit (the LSP layer checks that the document really is in that state before
sending it). The first edit replaces the original region; later ones append lines; ``restore``
puts the original back in a single edit, so the user gets one undo step.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass

from codenook.assist.actions import ReplyParser


@dataclass(frozen=True)
class Edit:
    start: int
    end: int
    text: str

    def apply(self, text: str) -> str:
        return text[: self.start] + self.text + text[self.end :]


class EditStream:
    def __init__(self, start: int, original: str) -> None:
        self.start = start
        self.original = original
        self.shown: list[str] = []
        self.replaced = False
        self.edits = 0

    @property
    def current(self) -> str:
        """What the region holds now."""
        return "\n".join(self.shown) if self.replaced else self.original

    def advance(self, lines: Sequence[str]) -> Edit | None:
        """The edit that adds ``lines[len(shown):]`` (lines only ever get appended)."""
        if len(lines) <= len(self.shown) and self.replaced:
            return None
        if not lines:
            return None
        if not self.replaced:
            edit = Edit(self.start, self.start + len(self.original), "\n".join(lines))
            self.replaced = True
        else:
            end = self.start + len(self.current)
            edit = Edit(end, end, "\n" + "\n".join(lines[len(self.shown) :]))
        self.shown = list(lines)
        self.edits += 1
        return edit

    def finish(self, final: str) -> Edit | None:
        """The edit that makes the region exactly ``final`` (None when it already is)."""
        if self.current == final:
            return None
        current = self.current
        # Append when the final text extends what is shown (the usual case), else replace.
        if final.startswith(current) and self.replaced:
            end = self.start + len(current)
            edit = Edit(end, end, final[len(current) :])
        else:
            edit = Edit(self.start, self.start + len(current), final)
        self.shown = final.split("\n")
        self.replaced = True
        self.edits += 1
        return edit

    def restore(self) -> Edit | None:
        """One edit that puts the original region back (None when nothing was changed)."""
        if not self.replaced or self.current == self.original:
            return None
        edit = Edit(self.start, self.start + len(self.current), self.original)
        self.shown = []
        self.replaced = False
        return edit


@dataclass
class Outcome:
    status: str  # "applied" | "rejected" | "cancelled" | "stopped"
    text: str  # what the region holds at the end
    message: str = ""
    edits: int = 0


class StreamStopped(Exception):
    """The document changed under the stream (the user typed): leave everything as it is."""


async def run_stream(
    pieces: AsyncIterator[str],
    stream: EditStream,
    apply: Callable[[Edit], Awaitable[bool]],
    reindent: Callable[[list[str]], list[str]],
    validate: Callable[[str], None],
    cancelled: Callable[[], bool],
) -> Outcome:
    """Stream a reply into the document and settle it: keep, restore, or stop.

    ``apply`` sends one edit and returns False when it could not be applied to the document
    version it was computed for (the user edited meanwhile): streaming then stops and the region
    is left exactly as the user has it. ``validate`` raises ValueError for a reply that must not
    stay; the original is then restored in one edit, as it is on cancel.

    Cancellation comes two ways and ends the same: ``cancelled()`` (the progress's cancel
    button) or the task being cancelled (``$/cancelRequest``). An edit already on its way is
    awaited to its end, never abandoned halfway, so the restore knows what the buffer holds.
    """
    parser = ReplyParser()
    settle = _Settle(apply)
    try:
        async for piece in pieces:
            if cancelled() or settle.interrupted:
                break
            parser.feed(piece)
            edit = stream.advance(reindent(parser.complete_lines()))
            if edit is not None and not await settle(edit):
                raise StreamStopped
    except StreamStopped:
        return Outcome(
            "stopped", stream.current, "the document changed; streaming stopped", stream.edits
        )
    except asyncio.CancelledError:
        settle.interrupted = True
    finally:
        await _close(pieces)
    if cancelled() or settle.interrupted:
        return await _restore(stream, settle, "cancelled", "cancelled; the original is back")
    final = "\n".join(reindent(parser.code(final=True).split("\n")))
    try:
        validate(final)
    except ValueError as exc:
        return await _restore(stream, settle, "rejected", str(exc))
    edit = stream.finish(final)
    if edit is not None and not await settle(edit):
        return Outcome(
            "stopped", stream.current, "the document changed; streaming stopped", stream.edits
        )
    if settle.interrupted:  # cancelled while the last edit was on its way
        return await _restore(stream, settle, "cancelled", "cancelled; the original is back")
    return Outcome("applied", final, "", stream.edits)


class _Settle:
    """Applies edits to their end even when the task is cancelled meanwhile (and notes it)."""

    def __init__(self, apply: Callable[[Edit], Awaitable[bool]]) -> None:
        self._apply = apply
        self.interrupted = False

    async def __call__(self, edit: Edit) -> bool:
        sending = asyncio.ensure_future(self._apply(edit))
        try:
            return await asyncio.shield(sending)
        except asyncio.CancelledError:
            self.interrupted = True
        # The user's cancel waits for the edit on its way; a second cancel (the event loop
        # shutting down, which also cancels the edit itself) gives up rather than spinning.
        try:
            return await asyncio.shield(sending)
        except asyncio.CancelledError:
            sending.cancel()
            raise


async def _restore(
    stream: EditStream, apply: Callable[[Edit], Awaitable[bool]], status: str, message: str
) -> Outcome:
    edit = stream.restore()
    if edit is not None and not await apply(edit):
        return Outcome(
            "stopped", stream.current, "the document changed; could not restore", stream.edits
        )
    return Outcome(status, stream.original, message, stream.edits)


async def _close(pieces: AsyncIterator[str]) -> None:
    close = getattr(pieces, "aclose", None)
    if close is not None:
        await close()
