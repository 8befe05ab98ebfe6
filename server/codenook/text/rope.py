"""An immutable text in chunks, so that an edit costs as much in a long text as in a short one.

A Python ``str`` cannot be edited in place: splicing one character into a 24 MB document copies
the whole document (twice, and into freshly faulted-in memory), tens of milliseconds per
keystroke. A ``Rope`` keeps its text as a list of chunks of at most ``CHUNK`` code points; an
edit builds a new rope that shares every chunk it does not touch, so it copies the edited
chunks and the list of chunks, nothing else. ``str(rope)`` joins the chunks once, when some
reader really needs the whole text, and keeps the result.

tree-sitter reads UTF-8 bytes and places nodes at (row, byte column) points, rows ending at
``\n`` only. The rope answers in those terms too, chunk by chunk: each chunk's UTF-8 encoding
is made when first asked for and shared by every later rope that keeps the chunk, so after an
edit only the edited chunks are encoded again, and a keystroke never encodes, joins or scans
the whole text.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable


class Rope:
    CHUNK = 1 << 15

    __slots__ = (
        "_byte_starts",
        "_chunks",
        "_encoded",
        "_joined",
        "_length",
        "_row_starts",
        "_starts",
    )

    def __init__(self, text: str = "") -> None:
        self._joined: str | None = text
        # Chunked on the first edit: a text that is never edited is never copied.
        self._chunks: list[str] | None = None
        self._starts: list[int] = []
        self._length = len(text)
        # Per chunk, made when first needed: its UTF-8 bytes (shared with edited ropes), and
        # the byte offset and row (``\n`` count) at which it starts (this rope's own).
        self._encoded: list[bytes | None] = []
        self._byte_starts: list[int] | None = None
        self._row_starts: list[int] | None = None

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
        encoded = self._encoded
        new._encoded = [*encoded[:k0], *([None] * len(pieces)), *encoded[k1 + 1 :]] or [None]
        new._byte_starts = None
        new._row_starts = None
        return new

    # -- UTF-8 and tree-sitter points ---------------------------------------------------------

    def utf8_offset(self, offset: int) -> int:
        """The UTF-8 byte offset of code-point ``offset``."""
        chunks, starts = self._chunked()
        k = self._chunk_of(offset)
        head = chunks[k][: offset - starts[k]]
        return self._byte_index()[k] + (len(head) if head.isascii() else len(head.encode()))

    def utf8_to_offset(self, byte: int) -> int:
        """The code-point offset of UTF-8 byte offset ``byte`` (one inside a character
        counts as that character's start)."""
        _, starts = self._chunked()
        byte_starts = self._byte_index()
        k = bisect.bisect_right(byte_starts, byte) - 1
        head = self._bytes_of(k)[: byte - byte_starts[k]]
        return starts[k] + len(head.decode("utf-8", "ignore"))

    def tree_point(self, offset: int) -> tuple[int, int]:
        r"""tree-sitter's (row, byte column) of code-point ``offset``: rows end at ``\n`` only
        (a lone ``\r``, a line break for LSP, is not one for tree-sitter)."""
        chunks, starts = self._chunked()
        k = self._chunk_of(offset)
        inside = offset - starts[k]
        row = self._row_index()[k] + chunks[k].count("\n", 0, inside)
        newline = chunks[k].rfind("\n", 0, inside)
        j = k
        while newline < 0 and j > 0:  # the row began in an earlier chunk
            j -= 1
            newline = chunks[j].rfind("\n")
        row_start = starts[j] + newline + 1 if newline >= 0 else 0
        return row, self.utf8_offset(offset) - self.utf8_offset(row_start)

    def utf8_reader(self) -> Callable[[int, object], bytes]:
        """A read callable for ``Parser.parse``: the UTF-8 bytes from a byte offset to the end
        of the chunk holding it (tree-sitter asks again for what follows)."""
        chunks, _ = self._chunked()
        byte_starts = self._byte_index()
        total = byte_starts[-1] + len(self._bytes_of(len(chunks) - 1))

        def read(byte: int, _point: object) -> bytes:
            if byte >= total:
                return b""
            k = bisect.bisect_right(byte_starts, byte) - 1
            return self._bytes_of(k)[byte - byte_starts[k] :]

        return read

    def _chunk_of(self, offset: int) -> int:
        """The chunk holding ``offset`` (the last one for the end of the text)."""
        _, starts = self._chunked()
        return bisect.bisect_right(starts, offset) - 1

    def _bytes_of(self, k: int) -> bytes:
        data = self._encoded[k]
        if data is None:
            assert self._chunks is not None
            data = self._encoded[k] = self._chunks[k].encode()
        return data

    # The caches below are filled by whichever thread asks first (the parse thread reads the
    # rope the event loop edits from): each is built aside and stored whole.

    def _byte_index(self) -> list[int]:
        if self._byte_starts is None:
            chunks, _ = self._chunked()
            starts = [0]
            for k in range(len(chunks) - 1):
                starts.append(starts[-1] + len(self._bytes_of(k)))
            self._byte_starts = starts
        return self._byte_starts

    def _row_index(self) -> list[int]:
        if self._row_starts is None:
            chunks, _ = self._chunked()
            starts = [0]
            for k in range(len(chunks) - 1):
                starts.append(starts[-1] + chunks[k].count("\n"))
            self._row_starts = starts
        return self._row_starts

    def _chunked(self) -> tuple[list[str], list[int]]:
        if self._chunks is None:
            text = str(self)
            size = self.CHUNK
            chunks = [text[i : i + size] for i in range(0, len(text), size)] or [""]
            self._encoded = [None] * len(chunks)
            self._starts = list(range(0, len(text), size)) or [0]
            self._chunks = chunks  # last: the others are ready once this is set
        return self._chunks, self._starts


def _split(text: str, size: int) -> list[str]:
    """``text`` in nearly equal pieces of at most ``size`` (none when it is empty)."""
    if not text:
        return []
    count = -(-len(text) // size)
    step = -(-len(text) // count)
    return [text[i : i + step] for i in range(0, len(text), step)]
