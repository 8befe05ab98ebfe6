"""An immutable text in chunks, so that an edit costs as much in a long text as in a short one.

A Python ``str`` cannot be edited in place: splicing one character into a 24 MB document copies
the whole document (twice, and into freshly faulted-in memory), tens of milliseconds per
keystroke. A ``Rope`` keeps its text as a list of chunks of at most ``CHUNK`` code points; an
edit builds a new rope that shares every chunk it does not touch, so it copies the edited
chunks and the list of chunks, nothing else. ``str(rope)`` joins the chunks once, when some
reader really needs the whole text, and keeps the result.
"""

from __future__ import annotations

import bisect


class Rope:
    CHUNK = 1 << 15

    __slots__ = ("_chunks", "_joined", "_length", "_starts")

    def __init__(self, text: str = "") -> None:
        self._joined: str | None = text
        # Chunked on the first edit: a text that is never edited is never copied.
        self._chunks: list[str] | None = None
        self._starts: list[int] = []
        self._length = len(text)

    def __len__(self) -> int:
        return self._length

    def __str__(self) -> str:
        if self._joined is None:
            assert self._chunks is not None
            self._joined = "".join(self._chunks)
        return self._joined

    def slice(self, start: int, end: int) -> str:
        """``str(self)[start:end]`` for ``0 <= start``, without joining the whole text."""
        if self._joined is not None:
            return self._joined[start:end]
        chunks, starts = self._chunked()
        end = min(end, self._length)
        if start >= end:
            return ""
        k = bisect.bisect_right(starts, start) - 1
        if end <= starts[k] + len(chunks[k]):
            return chunks[k][start - starts[k] : end - starts[k]]
        parts = []
        while k < len(chunks) and starts[k] < end:
            parts.append(chunks[k][max(0, start - starts[k]) : end - starts[k]])
            k += 1
        return "".join(parts)

    def edited(self, start: int, end: int, inserted: str) -> Rope:
        """This text with ``[start, end)`` replaced by ``inserted``, sharing the other chunks."""
        chunks, starts = self._chunked()
        k0 = bisect.bisect_right(starts, start) - 1
        k1 = bisect.bisect_right(starts, end) - 1
        middle = "".join(
            (chunks[k0][: start - starts[k0]], inserted, chunks[k1][end - starts[k1] :])
        )
        # Keep chunks from dwindling: a short middle takes in the next chunk.
        if len(middle) < self.CHUNK // 2 and k1 + 1 < len(chunks):
            k1 += 1
            middle += chunks[k1]
        pieces = _split(middle, self.CHUNK)
        delta = len(inserted) - (end - start)
        first = starts[k0]
        piece_starts = []
        for piece in pieces:
            piece_starts.append(first)
            first += len(piece)
        new = Rope.__new__(Rope)
        new._joined = None
        new._chunks = [*chunks[:k0], *pieces, *chunks[k1 + 1 :]] or [""]
        new._starts = [*starts[:k0], *piece_starts, *(s + delta for s in starts[k1 + 1 :])] or [0]
        new._length = self._length + delta
        return new

    def _chunked(self) -> tuple[list[str], list[int]]:
        if self._chunks is None:
            text = str(self)
            size = self.CHUNK
            self._starts = list(range(0, len(text), size)) or [0]
            self._chunks = [text[i : i + size] for i in range(0, len(text), size)] or [""]
        return self._chunks, self._starts


def _split(text: str, size: int) -> list[str]:
    """``text`` in nearly equal pieces of at most ``size`` (none when it is empty)."""
    if not text:
        return []
    count = -(-len(text) // size)
    step = -(-len(text) // count)
    return [text[i : i + step] for i in range(0, len(text), step)]
