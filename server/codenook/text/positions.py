"""Conversions between LSP positions and offsets into a document's text.

LSP counts columns in the negotiated encoding (UTF-16 code units for VS Code, UTF-8 bytes for
Neovim, code points rarely), Python strings index code points, and tree-sitter wants UTF-8
byte offsets. Every conversion lives here so that exactly one place gets surrogate pairs and
multi-byte characters right.
"""

from __future__ import annotations

import bisect
import re
from dataclasses import dataclass
from enum import Enum
from itertools import accumulate

from codenook.text.rope import Rope


class Encoding(str, Enum):
    UTF8 = "utf-8"
    UTF16 = "utf-16"
    UTF32 = "utf-32"

    @classmethod
    def parse(cls, value: object) -> Encoding:
        """Accept what a client or pygls hands us; unknown values fall back to the LSP default."""
        text = str(getattr(value, "value", value) or "").lower()
        for member in cls:
            if member.value == text:
                return member
        return cls.UTF16


class PositionError(ValueError):
    """A position that does not exist in the document (line past the end, negative numbers)."""


def _units(ch: str, encoding: Encoding) -> int:
    if encoding is Encoding.UTF32:
        return 1
    cp = ord(ch)
    if encoding is Encoding.UTF16:
        return 2 if cp > 0xFFFF else 1
    if cp < 0x80:
        return 1
    if cp < 0x800:
        return 2
    if cp < 0x10000:
        return 3
    return 4


def column_to_index(line: str, column: int, encoding: Encoding) -> int:
    """Code-point index in ``line`` of an LSP column; columns past the end clamp to the end.

    Clamping (instead of failing) follows the LSP rule that a character offset greater than
    the line length defaults back to the line length. A column that falls inside a
    multi-unit character snaps to the character's start.
    """
    if column < 0:
        raise PositionError(f"negative column {column}")
    if encoding is Encoding.UTF32 or line.isascii():
        return min(column, len(line))
    used = 0
    for index, ch in enumerate(line):
        width = _units(ch, encoding)
        if used + width > column:
            return index
        used += width
    return len(line)


def index_to_column(line: str, index: int, encoding: Encoding) -> int:
    """LSP column of a code-point index within ``line``."""
    head = line[:index]
    if encoding is Encoding.UTF32 or head.isascii():
        return len(head)
    return sum(_units(ch, encoding) for ch in head)


@dataclass(frozen=True)
class Point:
    """A zero-based (line, code-point column) position, independent of any wire encoding."""

    line: int
    column: int


_BREAK = re.compile(r"\r\n|\r|\n")


def count_line_breaks(text: str) -> int:
    r"""How many LSP line breaks (``\n``, ``\r\n``, ``\r``) ``text`` holds."""
    return text.count("\n") + text.count("\r") - text.count("\r\n")


def line_starts(text: str, lo: int = 0, hi: int | None = None) -> list[int]:
    r"""The offsets ``p``, ``lo <= p <= hi``, at which a line of ``text`` starts.

    LSP breaks lines at ``\n``, ``\r\n`` and ``\r`` only (never at the other characters
    ``str.splitlines`` splits on: ``\v``, ``\f``, ``\x1c``-``\x1e``, ``\x85``, U+2028,
    U+2029). Whether ``p`` starts a line depends on the characters at ``p - 1`` and ``p`` only,
    so the scan reads ``text[lo - 1 : hi + 1]`` and nothing else.
    """
    end = len(text) if hi is None else min(hi, len(text))
    found = [0] if lo <= 0 else []
    if hi is None and lo <= 0 and "\r" not in text:
        # The common case, and the one a whole large document takes: one C-speed split.
        found.extend(accumulate(len(line) + 1 for line in text.split("\n")))
        found.pop()
        return found
    for match in _BREAK.finditer(text, max(0, lo - 1), min(len(text), end + 1)):
        if lo <= match.end() <= end:
            found.append(match.end())
    return found


class LineIndex:
    r"""Start offsets of every line of a text, for O(log n) position lookups.

    Lines end at ``\n``, ``\r\n`` or ``\r``, as in LSP. The starts are kept in blocks of at
    most ``BLOCK`` offsets, each with a shift that applies to the whole block, so that
    ``edited`` builds the index of an edited text from this one by rescanning only the edited
    span and shifting whole blocks: its cost grows with the edit and with the number of blocks
    (lines / ``BLOCK``), not with the length of the text. An index is never changed once built
    (snapshots keep theirs); ``edited`` shares the untouched blocks with the new index.
    """

    BLOCK = 1024

    __slots__ = ("_bases", "_blocks", "_count", "_firsts", "_rope", "_shifts")

    def __init__(self, text: str | Rope) -> None:
        self._rope = text if isinstance(text, Rope) else Rope(text)
        starts = line_starts(str(self._rope))
        step = self.BLOCK
        self._blocks = [starts[i : i + step] for i in range(0, len(starts), step)]
        self._shifts = [0] * len(self._blocks)
        self._bases = [block[0] for block in self._blocks]
        self._firsts = list(range(0, len(starts), step))
        self._count = len(starts)

    @property
    def text(self) -> str:
        """The whole text (joined once per version of a long, edited document)."""
        return str(self._rope)

    @property
    def rope(self) -> Rope:
        """The indexed text, as ``edited`` takes it."""
        return self._rope

    @property
    def line_count(self) -> int:
        return self._count

    def line_start(self, line: int) -> int:
        k = bisect.bisect_right(self._firsts, line) - 1
        return self._blocks[k][line - self._firsts[k]] + self._shifts[k]

    def line_text(self, line: int) -> str:
        """The line without its line break."""
        start = self.line_start(line)
        if line + 1 >= self._count:
            return self._rope.slice(start, len(self._rope))
        text = self._rope.slice(start, self.line_start(line + 1))
        return text[:-2] if text.endswith("\r\n") else text[:-1]

    def offset(self, line: int, column: int, encoding: Encoding) -> int:
        """Code-point offset of an LSP position; a line past the end is an error.

        A position one line past the last line, column 0, is accepted as the end of the text
        because some clients send it for a trailing insertion.
        """
        if line < 0:
            raise PositionError(f"negative line {line}")
        if line >= self._count:
            if line == self._count and column == 0:
                return len(self._rope)
            raise PositionError(
                f"line {line} is past the end of the document ({self._count} lines)"
            )
        return self.line_start(line) + column_to_index(self.line_text(line), column, encoding)

    def point(self, offset: int) -> Point:
        k = bisect.bisect_right(self._bases, offset) - 1
        block, shift = self._blocks[k], self._shifts[k]
        i = bisect.bisect_right(block, offset - shift) - 1
        return Point(self._firsts[k] + i, offset - block[i] - shift)

    def position(self, offset: int, encoding: Encoding) -> tuple[int, int]:
        """LSP (line, column) of a code-point offset."""
        pt = self.point(offset)
        return pt.line, index_to_column(self.line_text(pt.line), pt.column, encoding)

    def edited(self, start: int, end: int, inserted: str, text: str | Rope) -> LineIndex:
        """The index of ``text``: this index's text with ``[start, end)`` replaced by
        ``inserted``.

        Only starts at offsets ``start..end`` of the old text can change (whether an offset
        starts a line depends on the character before it and its own); they are rescanned in
        the new text, the starts after them move by the change in length.
        """
        rope = text if isinstance(text, Rope) else Rope(text)
        delta = len(inserted) - (end - start)
        k0 = bisect.bisect_right(self._bases, start) - 1
        k1 = bisect.bisect_right(self._bases, end) - 1
        old: list[int] = []
        for k in range(k0, k1 + 1):
            shift = self._shifts[k]
            old.extend(s + shift for s in self._blocks[k])
        removed = len(old)
        merged = old[: bisect.bisect_left(old, start)]
        window_start = max(0, start - 1)
        window = rope.slice(window_start, start + len(inserted) + 1)
        rescanned = line_starts(window, start - window_start, start + len(inserted) - window_start)
        merged += [window_start + p for p in rescanned]
        merged += [s + delta for s in old[bisect.bisect_right(old, end) :]]
        # Keep blocks from dwindling: a small remainder takes in the next block.
        while len(merged) < self.BLOCK // 2 and k1 + 1 < len(self._blocks):
            k1 += 1
            shift = self._shifts[k1] + delta
            merged.extend(s + shift for s in self._blocks[k1])
            removed += len(self._blocks[k1])
        pieces = _split(merged, self.BLOCK)
        firsts: list[int] = []
        line = self._firsts[k0]
        for piece in pieces:
            firsts.append(line)
            line += len(piece)
        lines = len(merged) - removed
        new = LineIndex.__new__(LineIndex)
        new._rope = rope
        new._blocks = [*self._blocks[:k0], *pieces, *self._blocks[k1 + 1 :]]
        new._shifts = [
            *self._shifts[:k0],
            *([0] * len(pieces)),
            *(s + delta for s in self._shifts[k1 + 1 :]),
        ]
        new._bases = [
            *self._bases[:k0],
            *(piece[0] for piece in pieces),
            *(b + delta for b in self._bases[k1 + 1 :]),
        ]
        new._firsts = [*self._firsts[:k0], *firsts, *(f + lines for f in self._firsts[k1 + 1 :])]
        new._count = self._count + lines
        return new


def _split(starts: list[int], size: int) -> list[list[int]]:
    """``starts`` in nearly equal pieces of at most ``size`` (none when it is empty)."""
    if not starts:
        return []
    pieces = -(-len(starts) // size)
    step = -(-len(starts) // pieces)
    return [starts[i : i + step] for i in range(0, len(starts), step)]


def utf8_length(text: str) -> int:
    return len(text) if text.isascii() else len(text.encode("utf-8"))
