"""Incremental edits keep the text and the tree-sitter tree exactly right, in every encoding.

The central property: after any sequence of LSP-style ranged changes, the document's text is
what an independent splice of code-point offsets gives, and its incrementally edited tree is
identical (s-expression and every node's byte and point range) to a fresh parse of that text.
"""

from __future__ import annotations

import random

import pytest
from tree_sitter import Node, Parser, Tree

from codenook.text import languages
from codenook.text.documents import Document, DocumentError, DocumentStore
from codenook.text.positions import Encoding, PositionError

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


# --- independent reference arithmetic ----------------------------------------------------------


def _column(line_head: str, encoding: Encoding) -> int:
    if encoding is Encoding.UTF8:
        return len(line_head.encode("utf-8"))
    if encoding is Encoding.UTF16:
        return len(line_head.encode("utf-16-le")) // 2
    return len(line_head)


def _line_bounds(text: str, offset: int) -> tuple[int, int, int]:
    """(line number, line start, line end without its break) of a code-point offset."""
    line = text.count("\n", 0, offset)
    start = text.rfind("\n", 0, offset) + 1
    end = text.find("\n", offset)
    end = len(text) if end == -1 else end
    if end > start and text[end - 1] == "\r":
        end -= 1
    return line, start, end


def _lsp_position(
    text: str, offset: int, encoding: Encoding, rng: random.Random
) -> tuple[int, int]:
    """An LSP position that must resolve to ``offset``, sometimes written in an odd but legal way.

    At a line end the column may overshoot (clamps back); just after a multi-unit character
    begins, the column may point inside it (snaps back to its start); at the very end of a
    text that ends with a newline, the position may be one line past the end, column 0.
    """
    line, start, end = _line_bounds(text, offset)
    column = _column(text[start:offset], encoding)
    roll = rng.random()
    if offset == end and roll < 0.3:
        column += rng.randint(1, 5)
    elif offset < end and roll < 0.3:
        width = _column(text[offset], encoding)
        if width > 1:
            column += rng.randint(1, width - 1)
    elif offset == len(text) and text.endswith("\n") and roll < 0.5:
        return line + 1, 0
    return line, column


def _addressable(text: str, offset: int) -> bool:
    """LSP cannot name the point between the \\r and \\n of a CRLF."""
    return not (0 < offset < len(text) and text[offset - 1] == "\r" and text[offset] == "\n")


def _random_offset(text: str, rng: random.Random) -> int:
    while True:
        offset = rng.randint(0, len(text))
        if _addressable(text, offset):
            return offset


def _random_edit(text: str, rng: random.Random, snippets: list[str]) -> tuple[int, int, str]:
    kind = rng.random()
    a = _random_offset(text, rng)
    if kind < 0.4:  # insertion
        b = a
    else:  # deletion or replacement of up to a few lines
        b = a + rng.randint(0, 40)
        while b > len(text) or not _addressable(text, b):
            b -= 1
    if kind < 0.4 or kind >= 0.7:
        new = rng.choice(snippets)
        if rng.random() < 0.2:
            new += rng.choice(snippets)
    else:
        new = ""
    # Keep the document from shrinking to nothing or growing without bound.
    if len(text) > 3000 and b - a < len(new):
        b = a
        new = ""
    return a, b, new


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
    assert doc.tree is not None
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
        a, b, new = _random_edit(expected, rng, snippets)
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
