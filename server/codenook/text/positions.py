"""Conversions between LSP positions and offsets into a document's text.

LSP counts columns in the negotiated encoding (UTF-16 code units for VS Code, UTF-8 bytes for
Neovim, code points rarely), Python strings index code points, and tree-sitter wants UTF-8
byte offsets. Every conversion lives here so that exactly one place gets surrogate pairs and
multi-byte characters right.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass
from enum import Enum


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


class LineIndex:
    """Start offsets of every line of a text, for O(log n) position lookups."""

    __slots__ = ("_starts", "text")

    def __init__(self, text: str) -> None:
        self.text = text
        starts = [0]
        find = text.find
        pos = find("\n")
        while pos != -1:
            starts.append(pos + 1)
            pos = find("\n", pos + 1)
        self._starts = starts

    @property
    def line_count(self) -> int:
        return len(self._starts)

    def line_start(self, line: int) -> int:
        return self._starts[line]

    def line_text(self, line: int) -> str:
        """The line without its line break."""
        start = self._starts[line]
        end = self._starts[line + 1] - 1 if line + 1 < len(self._starts) else len(self.text)
        text = self.text[start:end]
        return text[:-1] if text.endswith("\r") else text

    def offset(self, line: int, column: int, encoding: Encoding) -> int:
        """Code-point offset of an LSP position; a line past the end is an error.

        A position one line past the last line, column 0, is accepted as the end of the text
        because some clients send it for a trailing insertion.
        """
        if line < 0:
            raise PositionError(f"negative line {line}")
        if line >= len(self._starts):
            if line == len(self._starts) and column == 0:
                return len(self.text)
            raise PositionError(
                f"line {line} is past the end of the document ({len(self._starts)} lines)"
            )
        return self._starts[line] + column_to_index(self.line_text(line), column, encoding)

    def point(self, offset: int) -> Point:
        line = bisect.bisect_right(self._starts, offset) - 1
        return Point(line, offset - self._starts[line])

    def position(self, offset: int, encoding: Encoding) -> tuple[int, int]:
        """LSP (line, column) of a code-point offset."""
        pt = self.point(offset)
        return pt.line, index_to_column(self.line_text(pt.line), pt.column, encoding)


def utf8_length(text: str) -> int:
    return len(text) if text.isascii() else len(text.encode("utf-8"))
