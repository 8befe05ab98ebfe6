"""Incremental edits keep the text and the tree-sitter tree exactly right, in every encoding.

The central property: after any sequence of LSP-style ranged changes, the document's text is
what an independent splice of code-point offsets gives, and its incrementally edited tree is
identical (s-expression and every node's byte and point range) to a fresh parse of that text.
"""

from __future__ import annotations

import random

import pytest
from lsp_reference import lsp_line, lsp_position, random_edit, random_splice, random_text, units
from tree_sitter import Node, Parser, Tree

from codenook.text import languages
from codenook.text.documents import Document, DocumentError, DocumentStore
from codenook.text.positions import Encoding, PositionError
from codenook.text.rope import Rope

ENCODINGS = tuple(Encoding)

PYTHON = '''import os
from typing import Any


class Café:
    """Ünïcode 中文 docstring 😀."""

    def __init__(self, name: str) -> None:
        self.name = name  # 名前

    def greet(self) -> str:
        if self.name:
            return f"héllo {self.name} 🎉"
        return "?"


def main(argv: list[str]) -> int:
    for arg in argv:
        print(Café(arg).greet())
    return 0
'''

TYPESCRIPT = """import { readFile } from "fs";

interface Größe {
  width: number;
  height: number; // 高さ
}

export class Box<T> {
  private items: T[] = [];

  add(item: T): void {
    this.items.push(item);
  }

  get label(): string {
    return `box 📦 ${this.items.length}`;
  }
}

const area = (g: Größe): number => {
  return g.width * g.height;
};
"""

RUST = """use std::collections::HashMap;

/// Ünïcode doc 中文 😀
pub struct Counter {
    counts: HashMap<String, usize>,
}

impl Counter {
    pub fn new() -> Self {
        Counter { counts: HashMap::new() }
    }

    pub fn add(&mut self, word: &str) {
        *self.counts.entry(word.to_string()).or_insert(0) += 1; // ✓
    }
}

fn main() {
    let mut c = Counter::new();
    c.add("héllo 🦀");
}
"""

SOURCES = {"python": (PYTHON, "a.py"), "typescript": (TYPESCRIPT, "a.ts"), "rust": (RUST, "a.rs")}

SNIPPETS = {
    "python": [
        "x",
        "é",
        "中",
        "😀",
        "🦀🎉",
        "(",
        ")",
        ":",
        " ",
        "    ",
        "\n",
        "\n    ",
        "def f(a, b):\n    return a + b\n",
        "if x:\n    pass\nelse:\n    y = '😀'\n",
        "class K:\n    z: int = 0\n",
        '"""doc\n中文\n"""',
        "# comment é\n",
        "[1, 2,\n 3]",
        "lambda q: q",
        "\r\n",
    ],
    "typescript": [
        "x",
        "é",
        "中",
        "😀",
        "🦀🎉",
        "{",
        "}",
        ";",
        " ",
        "\n",
        "\n  ",
        "function f(a: number): number {\n  return a;\n}\n",
        "if (x) {\n  y = '😀';\n} else {\n  z();\n}\n",
        "class K { p = 1; }",
        "`tmpl ${中}\n line`",
        "// comment é\n",
        "/* multi\n line 😀 */",
        "const k = <T,>(v: T) => v;",
        "\r\n",
    ],
    "rust": [
        "x",
        "é",
        "中",
        "😀",
        "🦀🎉",
        "{",
        "}",
        ";",
        " ",
        "\n",
        "\n    ",
        "fn f(a: i32) -> i32 {\n    a + 1\n}\n",
        "impl K {\n    fn g(&self) {}\n}\n",
        'let s = "😀\nx";',
        "// comment é\n",
        "/* block\n 中 */",
        "match v { Some(x) => x, None => 0 }",
        "#[derive(Debug)]\n",
        "\r\n",
    ],
}


# --- positions written the odd but legal ways --------------------------------------------------


def _lsp_position(
    text: str, offset: int, encoding: Encoding, rng: random.Random
) -> tuple[int, int]:
    """An LSP position that must resolve to ``offset``, sometimes written in an odd but legal way.

    At a line end the column may overshoot (clamps back); just after a multi-unit character
    begins, the column may point inside it (snaps back to its start); at the very end of a
    text that ends with a newline, the position may be one line past the end, column 0.
    """
    line, column = lsp_position(text, offset, encoding)
    _, end = lsp_line(text, line)
    roll = rng.random()
    if offset == end and roll < 0.3:
        column += rng.randint(1, 5)
    elif offset < end and roll < 0.3:
        width = units(text[offset], encoding)
        if width > 1:
            column += rng.randint(1, width - 1)
    elif offset == len(text) and text.endswith("\n") and roll < 0.5:
        return line + 1, 0
    return line, column


# --- trees -------------------------------------------------------------------------------------


def _nodes(tree: Tree) -> list[tuple[object, ...]]:
    out: list[tuple[object, ...]] = []
    stack: list[Node] = [tree.root_node]
    while stack:
        node = stack.pop()
        out.append(
            (
                node.type,
                node.is_named,
                node.is_missing,
                node.start_byte,
                node.end_byte,
                tuple(node.start_point),
                tuple(node.end_point),
            )
        )
        stack.extend(reversed(node.children))
    return out


def _fresh(language_name: str, text: str) -> Tree:
    parser: Parser = languages.load(language_name).parser()
    return parser.parse(text.encode("utf-8"))


def _assert_same_tree(doc: Document, language_name: str) -> None:
    doc.finish_parse()  # a re-parse past the keystroke's budget goes on in the background
    assert doc.tree is not None and not doc.parse_pending
    fresh = _fresh(language_name, doc.text)
    assert str(doc.tree.root_node) == str(fresh.root_node)
    assert _nodes(doc.tree) == _nodes(fresh)


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
@pytest.mark.parametrize("language_name", sorted(SOURCES))
def test_random_edits_keep_text_and_tree_exact(language_name: str, seed: int) -> None:
    rng = random.Random(f"{language_name}-{seed}")
    source, name = SOURCES[language_name]
    doc = Document(f"file:///w/{name}", source, 1)
    assert doc.language is not None and doc.language.name == language_name
    expected = source
    snippets = SNIPPETS[language_name]
    for step in range(200):
        a, b, new = random_edit(expected, rng, snippets, reach=40, cap=3000)
        encoding = rng.choice(ENCODINGS)
        start = _lsp_position(expected, a, encoding, rng)
        end = _lsp_position(expected, b, encoding, rng)
        doc.apply_edit(start, end, new, encoding, version=step + 2)
        expected = expected[:a] + new + expected[b:]
        assert doc.text == expected, f"step {step}: {encoding.value} {start}-{end} {new!r}"
        assert doc.version == step + 2
        if step % 10 == 9:
            _assert_same_tree(doc, language_name)
        else:
            doc.finish_parse()
            assert doc.tree is not None
            assert str(doc.tree.root_node) == str(_fresh(language_name, expected).root_node)
    _assert_same_tree(doc, language_name)
    # The line index follows the text too.
    assert doc.lines.text == expected
    assert doc.snapshot().text == expected


@pytest.mark.parametrize("encoding", ENCODINGS)
def test_single_edits_after_non_ascii(encoding: Encoding) -> None:
    text = "x = '😀é'\ny = 1\n"
    doc = Document("file:///a.py", text, 1)
    col = {Encoding.UTF8: 11, Encoding.UTF16: 8, Encoding.UTF32: 7}[encoding]
    # Replace the closing quote (after 😀é) with "中'".
    doc.apply_edit((0, col), (0, col + 1), "中'", encoding, 2)
    assert doc.text == "x = '😀é中'\ny = 1\n"
    # Insert a line at the end, addressed as one line past the last line.
    doc.apply_edit((2, 0), (2, 0), "z = 2\n", encoding, 3)
    assert doc.text == "x = '😀é中'\ny = 1\nz = 2\n"
    # Delete across lines.
    doc.apply_edit((0, 0), (1, 0), "", encoding, 4)
    assert doc.text == "y = 1\nz = 2\n"
    _assert_same_tree(doc, "python")
    assert doc.tree is not None and not doc.tree.root_node.has_error


def test_edits_on_crlf_text() -> None:
    doc = Document("file:///a.rs", "fn a() {\r\n    1\r\n}\r\n", 1)
    doc.apply_edit((1, 99), (1, 99), " + 😀.len()", Encoding.UTF16, 2)
    assert doc.text == "fn a() {\r\n    1 + 😀.len()\r\n}\r\n"
    doc.apply_edit((0, 8), (1, 4), "\r\n  ", Encoding.UTF8, 3)
    assert doc.text == "fn a() {\r\n  1 + 😀.len()\r\n}\r\n"
    _assert_same_tree(doc, "rust")


def test_replace_all_reparses() -> None:
    doc = Document("file:///a.py", "x = 1\n", 1)
    doc.replace_all("def f():\n    return 2\n", 5)
    assert doc.version == 5
    assert doc.lines.line_count == 3
    _assert_same_tree(doc, "python")


# --- errors ------------------------------------------------------------------------------------


def test_range_ending_before_it_starts_raises() -> None:
    doc = Document("file:///a.py", "abc\ndef\n", 1)
    with pytest.raises(DocumentError):
        doc.apply_edit((1, 2), (0, 1), "x", Encoding.UTF16, 2)
    with pytest.raises(DocumentError):
        doc.apply_edit((0, 2), (0, 1), "x", Encoding.UTF16, 2)
    assert doc.text == "abc\ndef\n"
    assert doc.version == 1


def test_range_past_the_last_line_raises() -> None:
    doc = Document("file:///a.py", "abc\ndef", 1)
    with pytest.raises(PositionError):
        doc.apply_edit((5, 0), (5, 0), "x", Encoding.UTF16, 2)
    with pytest.raises(PositionError):
        doc.apply_edit((0, 0), (2, 1), "x", Encoding.UTF8, 2)
    with pytest.raises(ValueError):  # both errors are ValueErrors for the LSP layer
        doc.apply_edit((-1, 0), (0, 0), "x", Encoding.UTF32, 2)
    assert doc.text == "abc\ndef"
    assert doc.version == 1
    _assert_same_tree(doc, "python")


# --- DocumentStore -----------------------------------------------------------------------------


def test_store_parses_known_languages() -> None:
    store = DocumentStore()
    doc = store.open("file:///w/a.go", "package main\n", 1, "go")
    assert doc.language is not None and doc.language.name == "go"
    assert doc.tree is not None
    assert "file:///w/a.go" in store and len(store) == 1
    assert store.get("file:///w/a.go") is doc
    store.close("file:///w/a.go")
    assert store.find("file:///w/a.go") is None
    with pytest.raises(DocumentError):
        store.get("file:///w/a.go")


def test_store_skips_parsing_binary_text() -> None:
    store = DocumentStore()
    doc = store.open("file:///w/blob.py", "x = 1\x00\x01\n", 1, "python")
    assert doc.language is None and doc.tree is None
    assert doc.snapshot().language_name is None
    # Edits still keep the text.
    doc.apply_edit((0, 0), (0, 1), "y", Encoding.UTF16, 2)
    assert doc.text == "y = 1\x00\x01\n"
    assert doc.tree is None


def test_store_skips_parsing_huge_files() -> None:
    store = DocumentStore(max_file_bytes=1024)
    small = store.open("file:///w/small.py", "x = 1\n" * 100, 1, "python")
    assert small.tree is not None
    big = store.open("file:///w/big.py", "x = 1\n" * 200, 1, "python")
    assert big.tree is None and big.language is None
    # The limit is in UTF-8 bytes, not code points: 400 code points, 1200 bytes.
    wide = store.open("file:///w/wide.py", "中" * 400, 1, "python")
    assert wide.tree is None
    assert store.is_editable_text("中" * 300)
    assert not store.is_editable_text("中" * 342)


def test_unknown_language_is_kept_as_text() -> None:
    doc = DocumentStore().open("file:///w/notes.txt", "hello\n", 1, "plaintext")
    assert doc.language is None and doc.tree is None
    doc.apply_edit((0, 5), (0, 5), " world 😀", Encoding.UTF16, 2)
    assert doc.text == "hello world 😀\n"


def test_edits_on_lone_cr_text_keep_the_tree_exact() -> None:
    """A lone \\r ends a line for LSP but not a row for tree-sitter: both stay right."""
    doc = Document("file:///a.py", "x = 1\ry = 2\rz = 3\n", 1)
    doc.apply_edit((1, 4), (1, 5), "20", Encoding.UTF16, 2)
    assert doc.text == "x = 1\ry = 20\rz = 3\n"
    doc.apply_edit((2, 0), (2, 0), "w = '\u2028'\r", Encoding.UTF8, 3)
    assert doc.text == "x = 1\ry = 20\rw = '\u2028'\rz = 3\n"
    assert doc.lines.line_count == 5
    _assert_same_tree(doc, "python")


# --- large documents ---------------------------------------------------------------------------


def test_large_document_edits_never_rescan_the_text(monkeypatch: pytest.MonkeyPatch) -> None:
    """Past documents.maxFileBytes a document is text only; a keystroke then touches the line
    index only around the edit, however long the text is."""
    from codenook.text import positions

    full_scans = 0
    real = positions.line_starts

    def counting(text: str, lo: int = 0, hi: int | None = None) -> list[int]:
        nonlocal full_scans
        full_scans += hi is None
        return real(text, lo, hi)

    monkeypatch.setattr(positions, "line_starts", counting)
    text = "value = compute(alpha, beta)  # é\n" * 100_000
    doc = DocumentStore(max_file_bytes=1024).open("file:///w/big.py", text, 1, "python")
    assert doc.tree is None
    rng = random.Random(11)
    expected = text.split("\n")  # the reference: a list of lines, edited line by line
    for step in range(100):
        line = rng.randrange(doc.lines.line_count - 1)
        column = rng.randint(0, 10)
        new = rng.choice(["x", "\n", "😀", ""])
        end = (line, column + (0 if new else 1))
        doc.apply_edit((line, column), end, new, Encoding.UTF16, step + 2)
        body = expected[line]
        a, b = _index_of(body, column), _index_of(body, end[1])
        expected[line : line + 1] = (body[:a] + new + body[b:]).split("\n")
    assert full_scans == 1  # the first position asked for built the index, once
    assert doc.lines.line_count == len(expected)
    for line in range(0, len(expected), 4999):
        assert doc.lines.line_text(line) == expected[line]
    assert doc.text == "\n".join(expected)


def _index_of(line: str, column_utf16: int) -> int:
    used = 0
    for index, ch in enumerate(line):
        width = 2 if ord(ch) > 0xFFFF else 1
        if used + width > column_utf16:
            return index
        used += width
    return len(line)


# --- out of sync -------------------------------------------------------------------------------


def test_out_of_sync_document_is_refused_until_a_full_sync() -> None:
    store = DocumentStore()
    doc = store.open("file:///w/a.py", "x = 1\n", 1, "python")
    with pytest.raises(PositionError):
        doc.apply_edit((7, 0), (7, 0), "y", Encoding.UTF16, 2)
    assert doc.text == "x = 1\n"  # a change that does not fit leaves the text alone
    doc.mark_out_of_sync("line 7 is past the end", 2)
    assert doc.version == 2
    with pytest.raises(DocumentError, match="out of sync"):
        store.get("file:///w/a.py")
    assert store.find("file:///w/a.py") is doc  # document sync still reaches it
    doc.replace_all("x = 2\n", 3)
    assert store.get("file:///w/a.py") is doc
    assert doc.out_of_sync is None
    _assert_same_tree(doc, "python")


# --- the chunked text --------------------------------------------------------------------------


@pytest.mark.parametrize("chunk", [1, 2, 5, 64])
def test_rope_edits_and_slices_match_a_string(chunk: int, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Rope, "CHUNK", chunk)
    rng = random.Random(chunk)
    pieces = ["a", "bcd", "é", "😀", "\n", "\r\n", "\u2028", "", "0123456789" * 3]
    for _ in range(30):
        expected = random_text(rng, pieces, 0, 30)
        rope = Rope(expected)
        for _ in range(40):
            a, b, new = random_splice(expected, rng, pieces, reach=20, most=3)
            before = rope
            rope = rope.edited(a, b, new)
            assert str(before) == expected  # the old rope is untouched
            expected = expected[:a] + new + expected[b:]
            assert len(rope) == len(expected)
            for _ in range(5):
                i = rng.randint(0, len(expected))
                j = rng.randint(i, len(expected) + 3)
                assert rope.slice(i, j) == expected[i:j]
            if rng.random() < 0.3:
                assert str(rope) == expected
        assert str(rope) == expected


def test_document_sizes_follow_the_edits() -> None:
    """The sizes ``DocumentStore.completes`` reads are kept edit by edit, never remeasured."""
    store = DocumentStore(max_file_bytes=8)
    doc = store.open("file:///w/notes.txt", "abc\n", 1, "plaintext")
    assert (doc.utf8_size, doc.nul_count) == (4, 0) and store.completes(doc)
    doc.apply_edit((0, 1), (0, 2), "中\x00", Encoding.UTF16, 2)
    assert doc.text == "a中\x00c\n"
    assert (doc.utf8_size, doc.nul_count) == (7, 1) and not store.completes(doc)
    doc.apply_edit((0, 2), (0, 3), "", Encoding.UTF16, 3)
    assert (doc.utf8_size, doc.nul_count) == (6, 0) and store.completes(doc)
    doc.apply_edit((1, 0), (1, 0), "😀😀", Encoding.UTF16, 4)
    assert doc.utf8_size == len(doc.text.encode("utf-8")) == 14
    assert not store.completes(doc)
    doc.replace_all("x", 5)
    assert (doc.utf8_size, doc.nul_count) == (1, 0) and store.completes(doc)


@pytest.mark.parametrize("chunk", [1, 3, 16, 1 << 15])
def test_rope_answers_in_utf8_bytes_and_tree_sitter_points(
    chunk: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What a keystroke asks the rope instead of encoding the text: byte offsets, points
    (rows end at \\n only), and the bytes tree-sitter reads, against the whole text's."""
    monkeypatch.setattr(Rope, "CHUNK", chunk)
    rng = random.Random(chunk)
    pieces = ["a", "bcd", "é", "😀", "中", "\n", "\r\n", "\r", "\u2028", "", "0123456789"]
    for _ in range(20):
        expected = random_text(rng, pieces, 0, 40)
        rope = Rope(expected)
        for _ in range(10):
            a, b, new = random_splice(expected, rng, pieces, reach=10, most=3)
            rope = rope.edited(a, b, new)
            expected = expected[:a] + new + expected[b:]
            data = expected.encode("utf-8")
            read = rope.utf8_reader()
            for offset in range(len(expected) + 1):
                byte = len(expected[:offset].encode("utf-8"))
                row_start = expected.rfind("\n", 0, offset) + 1
                point = (expected.count("\n", 0, offset), byte - len(expected[:row_start].encode()))
                assert rope.utf8_offset(offset) == byte
                assert rope.utf8_to_offset(byte) == offset
                assert rope.tree_point(offset) == point
                got = b""
                while len(got) < len(data) - byte:
                    piece = read(byte + len(got), None)
                    assert piece
                    got += piece
                assert got == data[byte:] and read(len(data), None) == b""
