"""LSP column <-> code-point index conversions and the line index, in every encoding."""

from __future__ import annotations

import bisect
import random

import pytest
from lsp_reference import lsp_line_starts, random_splice, random_text, units

from codenook.text.positions import (
    Encoding,
    LineIndex,
    Point,
    PositionError,
    column_to_index,
    count_line_breaks,
    index_to_column,
    line_starts,
    utf8_length,
)

U8, U16, U32 = Encoding.UTF8, Encoding.UTF16, Encoding.UTF32

# a  é  中  😀  b : code points 5; UTF-16 units 1+1+1+2+1 = 6; UTF-8 bytes 1+2+3+4+1 = 11
LINE = "aé中😀b"


@pytest.mark.parametrize(
    ("encoding", "columns"),
    [
        (U8, [0, 1, 3, 6, 10, 11]),
        (U16, [0, 1, 2, 3, 5, 6]),
        (U32, [0, 1, 2, 3, 4, 5]),
    ],
)
def test_index_to_column_and_back(encoding: Encoding, columns: list[int]) -> None:
    for index, column in enumerate(columns):
        assert index_to_column(LINE, index, encoding) == column
        assert column_to_index(LINE, column, encoding) == index
        assert units(LINE[:index], encoding) == column


def test_column_inside_a_character_snaps_to_its_start() -> None:
    # UTF-16: column 4 is between the two surrogates of 😀 (which starts at column 3).
    assert column_to_index(LINE, 4, U16) == 3
    # UTF-8: é occupies bytes 1-2, 中 bytes 3-5, 😀 bytes 6-9.
    assert column_to_index(LINE, 2, U8) == 1
    assert column_to_index(LINE, 4, U8) == 2
    assert column_to_index(LINE, 5, U8) == 2
    for column in (7, 8, 9):
        assert column_to_index(LINE, column, U8) == 3


@pytest.mark.parametrize("encoding", list(Encoding))
def test_columns_past_the_end_clamp_to_the_line_length(encoding: Encoding) -> None:
    end = units(LINE, encoding)
    for column in (end, end + 1, end + 7, 1000):
        assert column_to_index(LINE, column, encoding) == len(LINE)
    assert column_to_index("abc", 99, encoding) == 3
    assert column_to_index("", 5, encoding) == 0


@pytest.mark.parametrize("encoding", list(Encoding))
def test_negative_column_is_an_error(encoding: Encoding) -> None:
    with pytest.raises(PositionError):
        column_to_index(LINE, -1, encoding)


def test_ascii_fast_path_agrees_with_reference() -> None:
    line = "def f(x):  return x"
    for encoding in Encoding:
        for index in range(len(line) + 1):
            assert index_to_column(line, index, encoding) == index
            assert column_to_index(line, index, encoding) == index


def test_every_index_of_a_mixed_line_round_trips() -> None:
    line = "x = '😀é😀' # 中文 🎉 done"
    for encoding in Encoding:
        for index in range(len(line) + 1):
            column = index_to_column(line, index, encoding)
            assert column == units(line[:index], encoding)
            assert column_to_index(line, column, encoding) == index


def test_encoding_parse() -> None:
    assert Encoding.parse("utf-8") is U8
    assert Encoding.parse("UTF-16") is U16
    assert Encoding.parse("utf-32") is U32
    assert Encoding.parse(U8) is U8  # an enum (pygls hands those) is read through .value
    assert Encoding.parse(None) is U16
    assert Encoding.parse("latin-1") is U16


def test_utf8_length() -> None:
    assert utf8_length("") == 0
    assert utf8_length("abc") == 3
    assert utf8_length(LINE) == 11


# --- LineIndex ---------------------------------------------------------------------------------

TEXT = "first\nsé中ond 😀x\n\nlast 😀"


def test_line_index_lines() -> None:
    idx = LineIndex(TEXT)
    assert idx.line_count == 4
    assert [idx.line_text(i) for i in range(4)] == ["first", "sé中ond 😀x", "", "last 😀"]
    assert [idx.line_start(i) for i in range(4)] == [0, 6, 16, 17]


def test_trailing_newline_gives_an_empty_last_line() -> None:
    idx = LineIndex("a\nb\n")
    assert idx.line_count == 3
    assert idx.line_text(2) == ""
    assert idx.offset(2, 0, U16) == 4
    assert LineIndex("").line_count == 1


@pytest.mark.parametrize("encoding", list(Encoding))
def test_offset_position_round_trip_at_every_offset(encoding: Encoding) -> None:
    idx = LineIndex(TEXT)
    for offset in range(len(TEXT) + 1):
        line, column = idx.position(offset, encoding)
        assert idx.offset(line, column, encoding) == offset
        # The line is the number of newlines before the offset; the column the reference one.
        assert line == TEXT.count("\n", 0, offset)
        line_start = TEXT.rfind("\n", 0, offset) + 1
        line_text = TEXT[line_start:].split("\n", 1)[0]
        assert column == units(line_text[: offset - line_start], encoding)
        assert idx.point(offset) == Point(line, offset - line_start)


def test_offset_of_known_positions() -> None:
    idx = LineIndex(TEXT)
    # "sé中ond 😀x": 😀 starts at code point 7; x is at utf-16 column 9 and utf-8 byte 14.
    assert idx.offset(1, 9, U16) == 6 + 8
    assert idx.offset(1, 14, U8) == 6 + 8
    assert idx.offset(1, 8, U32) == 6 + 8
    assert idx.position(6 + 8, U16) == (1, 9)
    assert idx.position(6 + 8, U8) == (1, 14)
    assert idx.position(6 + 8, U32) == (1, 8)


@pytest.mark.parametrize("encoding", list(Encoding))
def test_offset_clamps_past_line_end_to_before_the_newline(encoding: Encoding) -> None:
    idx = LineIndex(TEXT)
    assert idx.offset(0, 99, encoding) == 5
    assert idx.offset(1, 99, encoding) == 6 + len("sé中ond 😀x")
    assert idx.offset(2, 1, encoding) == 16
    assert idx.offset(3, 99, encoding) == len(TEXT)


def test_line_past_the_end_is_an_error() -> None:
    idx = LineIndex("a\nb")
    with pytest.raises(PositionError):
        idx.offset(3, 0, U16)
    with pytest.raises(PositionError):
        idx.offset(2, 1, U16)
    with pytest.raises(PositionError):
        idx.offset(-1, 0, U16)
    with pytest.raises(PositionError):
        idx.offset(0, -1, U16)


def test_one_line_past_the_end_column_zero_is_the_end_of_the_text() -> None:
    assert LineIndex("a\nb").offset(2, 0, U16) == 3
    assert LineIndex("a\nb\n").offset(3, 0, U8) == 4


# --- CRLF --------------------------------------------------------------------------------------

CRLF = "ab\r\n中😀\r\n\r\nz"


def test_crlf_lines_exclude_the_carriage_return() -> None:
    idx = LineIndex(CRLF)
    assert idx.line_count == 4
    assert [idx.line_text(i) for i in range(4)] == ["ab", "中😀", "", "z"]
    assert [idx.line_start(i) for i in range(4)] == [0, 4, 8, 10]


@pytest.mark.parametrize("encoding", list(Encoding))
def test_crlf_columns_clamp_before_the_carriage_return(encoding: Encoding) -> None:
    idx = LineIndex(CRLF)
    assert idx.offset(0, 2, encoding) == 2
    assert idx.offset(0, 3, encoding) == 2
    assert idx.offset(0, 50, encoding) == 2
    assert idx.offset(1, 50, encoding) == 6
    assert idx.offset(2, 1, encoding) == 8
    assert idx.offset(3, 1, encoding) == 11


@pytest.mark.parametrize("encoding", list(Encoding))
def test_crlf_round_trip(encoding: Encoding) -> None:
    idx = LineIndex(CRLF)
    for offset in range(len(CRLF) + 1):
        if CRLF[offset - 1 : offset] == "\r":
            continue  # between \r and \n: not addressable in LSP
        line, column = idx.position(offset, encoding)
        assert idx.offset(line, column, encoding) == offset
    assert idx.position(6, U16) == (1, 3)
    assert idx.position(6, U8) == (1, 7)


def test_lone_carriage_return_is_a_line_ending_per_lsp() -> None:
    idx = LineIndex("a\rb\nc")
    assert idx.line_count == 3
    assert idx.offset(1, 0, U16) == 2
    assert [idx.line_text(i) for i in range(3)] == ["a", "b", "c"]
    assert idx.position(2, U16) == (1, 0)
    # A \r at the very end gives an empty last line; \r\r is two breaks.
    assert LineIndex("a\r").line_count == 2
    assert [LineIndex("x\r\ry").line_text(i) for i in range(3)] == ["x", "", "y"]


# --- what is not a line break ------------------------------------------------------------------

# Every character str.splitlines splits on that LSP does not treat as a line break.
NOT_BREAKS = "\v\f\x1c\x1d\x1e\x85\u2028\u2029"


@pytest.mark.parametrize("char", list(NOT_BREAKS))
def test_only_lf_crlf_and_cr_break_lines(char: str) -> None:
    text = f"a{char}b\nc{char}\r\n{char}"
    assert len(text.splitlines()) > 3  # what pygls's copy would count
    idx = LineIndex(text)
    assert idx.line_count == 3
    assert [idx.line_text(i) for i in range(3)] == [f"a{char}b", f"c{char}", char]
    assert idx.offset(0, 99, U16) == 3
    assert idx.position(len(text), U16) == (2, 1)
    assert line_starts(text) == [0, 4, 8]
    assert count_line_breaks(text) == 2


def test_count_line_breaks() -> None:
    assert count_line_breaks("") == 0
    assert count_line_breaks("a\nb\r\nc\rd\r\r\n\n") == 6
    assert count_line_breaks("\u2028\f\x85") == 0


# --- incremental updates -----------------------------------------------------------------------

PIECES = ["a", "bc", "é", "😀", "\n", "\r", "\r\n", "\u2028", "\f", ""]


@pytest.mark.parametrize("block", [1, 2, 3, 16, LineIndex.BLOCK])
def test_edited_index_equals_a_fresh_one(block: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """Any edit, even one that joins or splits a \r\n, gives the index a full scan gives."""
    monkeypatch.setattr(LineIndex, "BLOCK", block)
    rng = random.Random(block)
    for _ in range(40):
        text = random_text(rng, PIECES, 0, 40)
        idx = LineIndex(text)
        for _ in range(40):
            a, b, inserted = random_splice(text, rng, PIECES, reach=8, most=4)
            new_text = text[:a] + inserted + text[b:]
            old_lines = [idx.line_text(i) for i in range(idx.line_count)]
            new = idx.edited(a, b, inserted, new_text)
            # The old index is untouched (a snapshot may still hold it).
            assert [idx.line_text(i) for i in range(idx.line_count)] == old_lines
            idx, text = new, new_text
            starts = lsp_line_starts(text)
            assert idx.line_count == len(starts)
            assert [idx.line_start(i) for i in range(len(starts))] == starts
            for offset in range(len(text) + 1):
                line = bisect.bisect_right(starts, offset) - 1
                assert idx.point(offset) == Point(line, offset - starts[line])


def test_an_edit_scans_only_around_itself(monkeypatch: pytest.MonkeyPatch) -> None:
    """A keystroke in a large text never rescans the text: only the edited span is read."""
    from codenook.text import positions

    text = "x = compute(alpha)  # 中文 comment\r\n" * 50_000 + "tail\u2028\f"
    idx = LineIndex(text)
    scanned: list[int] = []
    real = positions.line_starts

    def counting(text: str, lo: int = 0, hi: int | None = None) -> list[int]:
        scanned.append((len(text) if hi is None else hi) - lo)
        return real(text, lo, hi)

    monkeypatch.setattr(positions, "line_starts", counting)
    rng = random.Random(7)
    for _ in range(200):
        line = rng.randrange(idx.line_count)
        at = idx.line_start(line) + rng.randint(0, 3)
        inserted = rng.choice(["y", "\r\n", "é😀", ""])
        end = at + (0 if inserted else 1)
        text = text[:at] + inserted + text[end:]
        idx = idx.edited(at, end, inserted, text)
    assert len(scanned) == 200
    assert max(scanned) <= 4
    starts = lsp_line_starts(text)
    assert idx.line_count == len(starts)
    for line in range(0, len(starts), 997):
        assert idx.line_start(line) == starts[line]
