"""Completion context from real tree-sitter documents: imports, scope headers, the window."""

from __future__ import annotations

import itertools

import pytest

from codenook.completion.context import (
    MAX_HEADER_LINES,
    WINDOW_STRIDE,
    Budget,
    CompletionContext,
    build_completion_context,
    enclosing_headers,
    import_lines,
)
from codenook.text.documents import Document, Snapshot
from codenook.text.positions import Encoding

CURSOR = "█"


def count(text: str) -> int:
    """A simple, additive stand-in for a tokenizer: words plus newlines."""
    return len(text.split()) + text.count("\n")


# Each template: {filler} is replaced by N filler lines (format string with {i}), CURSOR marks
# the cursor. Expected import spans and enclosing header spans are given for the filled file.
TEMPLATES: dict[str, dict[str, object]] = {
    "python": {
        "name": "a.py",
        "text": '''"""Module doc."""
from __future__ import annotations

import os
from collections import (
    OrderedDict,
    defaultdict,
)

X = 1


@decorator
class Outer(Base):
    """Doc."""

    def method(
        self,
        a: int,
    ) -> int:
{filler}
        return █value


def after():
    import json  # not a top-level import
    return json
''',
        "filler": "        v{i} = a + {i}",
        "imports": [(1, 1), (3, 3), (4, 7)],
        "headers": [(13, 13), (16, 19)],
    },
    "typescript": {
        "name": "a.ts",
        "text": """import { a } from "./a";
import * as fs from "fs";

const x = 1;

export class Service {
  private n = 0;

  run(input: string): number {
{filler}
    return █this.n;
  }
}

export const handler = async (e: Event) => {
  return e;
};
""",
        "filler": "    const v{i} = input.length + {i};",
        "imports": [(0, 0), (1, 1)],
        "headers": [(5, 5), (8, 8)],
    },
    "javascript": {
        "name": "a.js",
        "text": """import React from "react";
import { useState } from "react";

function outer(a) {
  const inner = function (b) {
{filler}
    return █a + b;
  };
  return inner;
}

class Widget {
  render() {
    return null;
  }
}
""",
        "filler": "    const v{i} = a + b + {i};",
        "imports": [(0, 0), (1, 1)],
        "headers": [(3, 3), (4, 4)],
    },
    "go": {
        "name": "a.go",
        "text": """package main

import (
\t"fmt"
\t"os"
)

import "strings"

type Server struct {
\tname string
}

func (s *Server) Handle(req string) error {
{filler}
\treturn █fmt.Errorf(strings.ToUpper(req))
}
""",
        "filler": "\tv{i} := len(req) + {i}",
        "imports": [(0, 0), (2, 5), (7, 7)],
        "headers": [(13, 13)],
    },
    "rust": {
        "name": "a.rs",
        "text": """use std::io;
use std::collections::{
    HashMap,
    HashSet,
};
extern crate serde;

mod net {
    pub struct Conn;

    impl Conn {
        pub fn send(&self, data: &[u8]) -> io::Result<()> {
{filler}
            █Ok(())
        }
    }
}
""",
        "filler": "            let v{i} = data.len() + {i};",
        "imports": [(0, 0), (1, 4), (5, 5)],
        "headers": [(7, 7), (10, 10), (11, 11)],
    },
}

LANGUAGES = sorted(TEMPLATES)


def _document(language: str, filler_lines: int) -> tuple[Document, int]:
    """The template filled with ``filler_lines`` lines; returns the document and cursor offset."""
    spec = TEMPLATES[language]
    template = str(spec["text"])
    filler = "\n".join(str(spec["filler"]).format(i=i) for i in range(filler_lines))
    text = (
        template.replace("{filler}", filler) if filler_lines else template.replace("{filler}\n", "")
    )
    offset = text.index(CURSOR)
    text = text.replace(CURSOR, "")
    doc = Document(f"file:///w/{spec['name']}", text, 1)
    assert doc.language is not None and doc.language.name == language
    assert doc.tree is not None and not doc.tree.root_node.has_error, language
    return doc, offset


def _spans(language: str, key: str) -> list[tuple[int, int]]:
    spans = TEMPLATES[language][key]
    assert isinstance(spans, list)
    return [(int(first), int(last)) for first, last in spans]


def _cursor_byte(snapshot: Snapshot, offset: int) -> int:
    return len(snapshot.text[:offset].encode("utf-8"))


def _lines_text(snapshot: Snapshot, spans: list[tuple[int, int]]) -> str:
    rows = sorted({row for first, last in spans for row in range(first, last + 1)})
    return "".join(snapshot.lines.line_text(row) + "\n" for row in rows)


def _context(doc: Document, offset: int, budget: Budget) -> CompletionContext:
    return build_completion_context(doc.snapshot(), offset, budget, count, "src/" + doc.uri[9:])


# --- imports and enclosing headers -------------------------------------------------------------


@pytest.mark.parametrize("language", LANGUAGES)
def test_import_lines(language: str) -> None:
    doc, _ = _document(language, 3)
    assert import_lines(doc.snapshot()) == _spans(language, "imports")


@pytest.mark.parametrize("language", LANGUAGES)
def test_enclosing_headers_at_the_cursor(language: str) -> None:
    doc, offset = _document(language, 3)
    snap = doc.snapshot()
    spans = enclosing_headers(snap, _cursor_byte(snap, offset))
    # The scopes sit above the filler, so their rows do not depend on its length.
    assert spans == _spans(language, "headers")


@pytest.mark.parametrize("language", LANGUAGES)
def test_no_enclosing_headers_at_the_top_of_the_file(language: str) -> None:
    doc, _ = _document(language, 3)
    snap = doc.snapshot()
    assert enclosing_headers(snap, 0) == []


def test_header_spans_stop_at_max_header_lines() -> None:
    params = "\n".join(f"    p{i}: int," for i in range(10))
    doc = Document("file:///w/long.py", f"def f(\n{params}\n) -> int:\n    return 1\n", 1)
    snap = doc.snapshot()
    cursor = _cursor_byte(snap, snap.text.index("return"))
    assert enclosing_headers(snap, cursor) == [(0, MAX_HEADER_LINES - 1)]


def test_python_header_is_the_whole_multi_line_signature() -> None:
    doc, offset = _document("python", 0)
    snap = doc.snapshot()
    spans = enclosing_headers(snap, _cursor_byte(snap, offset))
    assert _lines_text(snap, spans[1:]) == (
        "    def method(\n        self,\n        a: int,\n    ) -> int:\n"
    )


def test_brace_language_header_keeps_the_line_with_the_opening_brace() -> None:
    text = (
        "impl Conn {\n"
        "    pub fn send(\n"
        "        &self,\n"
        "        data: &[u8],\n"
        "    ) -> io::Result<()> {\n"
        "        Ok(())\n"
        "    }\n"
        "}\n"
    )
    doc = Document("file:///w/a.rs", text, 1)
    snap = doc.snapshot()
    spans = enclosing_headers(snap, _cursor_byte(snap, text.index("Ok")))
    assert spans == [(0, 0), (1, 4)]


def test_python_blank_line_at_the_end_of_a_body_is_inside_the_body() -> None:
    text = "class A:\n    def f(self):\n        x = 1\n        \n\n\ndef g():\n    pass\n"
    doc = Document("file:///w/a.py", text, 1)
    snap = doc.snapshot()
    offset = snap.lines.offset(3, 8, Encoding.UTF32)
    assert enclosing_headers(snap, _cursor_byte(snap, offset)) == [(0, 0), (1, 1)]


# --- the window and the header above it --------------------------------------------------------


@pytest.mark.parametrize("language", LANGUAGES)
def test_header_holds_imports_and_enclosing_headers_outside_the_window(language: str) -> None:
    doc, offset = _document(language, 60)
    snap = doc.snapshot()
    budget = Budget(prefix_tokens=60, suffix_tokens=20, header_tokens=400)
    ctx = _context(doc, offset, budget)
    spans = _spans(language, "imports") + _spans(language, "headers")
    last_header_row = max(last for _, last in spans)
    assert ctx.window_start_line > last_header_row + 10
    assert ctx.header == _lines_text(snap, spans)
    assert count(ctx.prefix) <= budget.prefix_tokens
    assert count(ctx.header) <= budget.header_tokens
    assert ctx.prefix == snap.text[snap.lines.line_start(ctx.window_start_line) : offset]
    assert ctx.language == language
    assert ctx.cursor_line == snap.lines.point(offset).line
    assert ctx.prefix.endswith(ctx.line_prefix)
    assert ctx.suffix.startswith(ctx.line_suffix)


@pytest.mark.parametrize("language", LANGUAGES)
def test_no_header_when_the_window_reaches_the_top(language: str) -> None:
    doc, offset = _document(language, 2)
    ctx = _context(doc, offset, Budget(prefix_tokens=4000))
    assert ctx.window_start_line == 0
    assert ctx.header == ""
    assert ctx.prefix == doc.text[:offset]


def test_header_budget_keeps_lines_in_file_order() -> None:
    doc, offset = _document("python", 60)
    full = _context(doc, offset, Budget(60, 20, 400)).header
    lines = full.splitlines(keepends=True)
    for limit in range(0, count(full) + 1):
        header = _context(doc, offset, Budget(60, 20, limit)).header
        assert count(header) <= limit
        kept = header.splitlines(keepends=True)
        assert kept == lines[: len(kept)]
    assert _context(doc, offset, Budget(60, 20, 0)).header == ""


def test_header_does_not_repeat_lines_inside_the_window() -> None:
    # A header span that reaches into the window contributes only its lines above it.
    doc, offset = _document("python", 4)
    snap = doc.snapshot()
    ctx = _context(doc, offset, Budget(prefix_tokens=12, header_tokens=400))
    start = ctx.window_start_line
    assert start > 0
    header_rows = [
        row
        for first, last in _spans("python", "imports") + _spans("python", "headers")
        for row in range(first, last + 1)
        if row < start
    ]
    assert ctx.header == "".join(snap.lines.line_text(r) + "\n" for r in sorted(set(header_rows)))


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("prefix_tokens", [16, 40, 100, 333])
def test_prefix_never_exceeds_its_budget(language: str, prefix_tokens: int) -> None:
    doc, _ = _document(language, 50)
    snap = doc.snapshot()
    budget = Budget(prefix_tokens=prefix_tokens, suffix_tokens=30, header_tokens=50)
    for line in range(snap.lines.line_count):
        line_start = snap.lines.line_start(line)
        width = len(snap.lines.line_text(line))
        for column in sorted({0, width // 2, width}):
            offset = line_start + column
            ctx = build_completion_context(snap, offset, budget, count, "p")
            assert count(ctx.prefix) <= prefix_tokens
            assert count(ctx.header) <= budget.header_tokens
            assert count(ctx.suffix) <= budget.suffix_tokens
            assert ctx.prefix == snap.text[snap.lines.line_start(ctx.window_start_line) : offset]
            start = ctx.window_start_line
            # The start snaps to the stride (or is the top or the cursor line); a budget
            # smaller than a stride keeps the furthest line it reaches instead ...
            unsnapped = _unsnapped_start(snap, line, snap.text[line_start:offset], prefix_tokens)
            assert start in (0, line, unsnapped) or start % WINDOW_STRIDE == 0
            # ... and the window is at most one stride shorter than the budget allows.
            if start > 0:
                longer = snap.text[snap.lines.line_start(max(0, start - WINDOW_STRIDE)) : offset]
                assert count(longer) > prefix_tokens


def test_budget_holds_on_a_very_long_cursor_line() -> None:
    long_line = "var a=[" + ",".join(f"f({i}, {i})" for i in range(2000)) + "];"
    doc = Document("file:///w/min.js", "import x from 'x';\n" + long_line + "\n", 1)
    offset = len("import x from 'x';\n") + len(long_line) // 2
    ctx = build_completion_context(doc.snapshot(), offset, Budget(64, 32, 32), count, "min.js")
    assert count(ctx.prefix) <= 64
    assert count(ctx.suffix) <= 32


def test_suffix_is_whole_lines_within_budget() -> None:
    doc, offset = _document("typescript", 40)
    snap = doc.snapshot()
    ctx = _context(doc, offset, Budget(prefix_tokens=60, suffix_tokens=25))
    assert count(ctx.suffix) <= 25
    rest = snap.text[offset:]
    assert rest.startswith(ctx.suffix)
    after = rest[len(ctx.suffix) :]
    assert after == "" or after.startswith("\n")  # cut at a line end
    assert ctx.suffix.startswith("this.n;\n  }")
    no_suffix = _context(doc, offset, Budget(prefix_tokens=60, suffix_tokens=0))
    assert no_suffix.suffix == ""  # a zero budget means no suffix at all


# --- prefix-cache stability --------------------------------------------------------------------


def _unsnapped_start(snapshot: Snapshot, cursor_line: int, line_prefix: str, budget: int) -> int:
    """Reference: the highest line the budget reaches, before snapping to the stride."""
    used = count(line_prefix)
    line = cursor_line
    while line > 0:
        cost = count(snapshot.lines.line_text(line - 1) + "\n")
        if used + cost > budget:
            break
        used += cost
        line -= 1
    return line


def _bucket(line: int) -> int:
    return -(-line // WINDOW_STRIDE)


TYPED = "total = compute(alpha, beta) + 1"


def _stable_case(language: str, budget: Budget) -> tuple[Document, int]:
    """A file length for which typing TYPED keeps the budget line within one stride bucket."""
    for filler in range(60, 100):
        doc, offset = _document(language, filler)
        snap = doc.snapshot()
        point = snap.lines.point(offset)
        head = snap.lines.line_text(point.line)[: point.column]
        lows = [
            _unsnapped_start(snap, point.line, head + TYPED[:i], budget.prefix_tokens)
            for i in (0, len(TYPED))
        ]
        if _bucket(lows[0]) == _bucket(lows[1]) and _bucket(lows[1]) * WINDOW_STRIDE < point.line:
            return doc, offset
    raise AssertionError("no stable case found")  # pragma: no cover


@pytest.mark.parametrize("language", LANGUAGES)
def test_window_start_is_stable_while_typing_on_the_cursor_line(language: str) -> None:
    budget = Budget(prefix_tokens=90, suffix_tokens=20, header_tokens=400)
    doc, offset = _stable_case(language, budget)
    first = _context(doc, offset, budget)
    assert first.window_start_line > 0
    line, column = doc.lines.position(offset, Encoding.UTF16)
    contexts = [first]
    for i, ch in enumerate(TYPED):
        doc.apply_edit((line, column + i), (line, column + i), ch, Encoding.UTF16, i + 2)
        contexts.append(_context(doc, offset + i + 1, budget))
    assert {c.window_start_line for c in contexts} == {first.window_start_line}
    assert {c.header for c in contexts} == {first.header}
    # Every prompt prefix extends the one before: what was cached stays valid.
    for before, after in itertools.pairwise(contexts):
        assert after.prefix.startswith(before.prefix)
    assert contexts[-1].line_prefix.endswith(TYPED)
    assert all(count(c.prefix) <= budget.prefix_tokens for c in contexts)


def test_window_start_moves_down_monotonically_as_the_cursor_moves_down() -> None:
    doc, _ = _document("go", 120)
    snap = doc.snapshot()
    budget = Budget(prefix_tokens=200)
    starts = []
    for line in range(snap.lines.line_count):
        ctx = build_completion_context(snap, snap.lines.line_start(line), budget, count, "p")
        assert ctx.window_start_line in (0, line) or ctx.window_start_line % WINDOW_STRIDE == 0
        starts.append(ctx.window_start_line)
    assert len(set(starts)) > 3
    assert starts == sorted(starts)  # never moves back up


def test_window_keeps_lines_above_the_cursor_when_the_budget_allows() -> None:
    text = "".join(f"w{i} x y\n" for i in range(100))  # 4 tokens a line
    snap = Document("file:///w/n.txt", text, 1).snapshot()
    budget = Budget(prefix_tokens=20, suffix_tokens=0, header_tokens=0)  # 5 lines fit
    for line in range(20, 100):
        ctx = build_completion_context(snap, snap.lines.line_start(line), budget, count, "n")
        assert ctx.window_start_line < line, line
        assert count(ctx.prefix) <= 20


# --- no grammar --------------------------------------------------------------------------------


def test_unknown_language_gets_plain_text_context() -> None:
    lines = [f"line {i} of some notes" for i in range(80)]
    text = "\n".join(lines) + "\n"
    doc = Document("file:///w/notes.txt", text, 1)
    assert doc.language is None and doc.tree is None
    offset = doc.lines.line_start(70) + 5
    budget = Budget(prefix_tokens=40, suffix_tokens=10, header_tokens=100)
    ctx = build_completion_context(doc.snapshot(), offset, budget, count, "notes.txt")
    assert ctx.language is None
    assert ctx.header == ""
    assert ctx.window_start_line > 0
    assert ctx.prefix == text[doc.lines.line_start(ctx.window_start_line) : offset]
    assert count(ctx.prefix) <= 40
    assert ctx.line_prefix == "line "
    assert ctx.line_suffix == "70 of some notes"
    snap = doc.snapshot()
    assert import_lines(snap) == []
    assert enclosing_headers(snap, 100) == []


# --- the restricted queries give the whole-tree queries' answers -------------------------------


class _Unrestricted:
    """A QueryCursor that ignores the restrictions ``context`` puts on its queries: what the
    answers were before they were restricted (27 ms and 14 ms on a 10,000-line file)."""

    def __init__(self, query: object) -> None:
        from tree_sitter import QueryCursor

        self._cursor = QueryCursor(query)  # type: ignore[arg-type]

    def set_byte_range(self, *_: object) -> _Unrestricted:
        return self

    def set_max_start_depth(self, *_: object) -> _Unrestricted:
        return self

    def captures(self, node: object) -> object:
        return self._cursor.captures(node)  # type: ignore[arg-type]

    def matches(self, node: object) -> object:
        return self._cursor.matches(node)  # type: ignore[arg-type]


def _corpus() -> list[tuple[str, str]]:
    """Source files of every supported language: the test project's and codenook's own."""
    from pathlib import Path

    root = Path(__file__).parent
    files = sorted((root / "fixtures" / "project").rglob("*.*"))
    files += sorted((root.parent / "server" / "codenook" / "completion").glob("*.py"))
    return [
        (p.name, p.read_text(encoding="utf-8")) for p in files if p.suffix not in {".md", ".mod"}
    ]


def test_restricted_queries_answer_as_whole_tree_queries(monkeypatch: pytest.MonkeyPatch) -> None:
    """``import_lines`` (start depth 0) and ``enclosing_headers`` (a byte range from the last
    non-blank line above the cursor) at three places of every line of files in all languages:
    the same spans as the same queries over the whole tree."""
    from codenook.completion import context

    languages_seen = set()
    positions = 0
    for name, text in _corpus():
        doc = Document(f"file:///w/{name}", text, 1)
        if doc.language is None:
            continue
        languages_seen.add(doc.language.name)
        snap = doc.snapshot()
        cursors = set()
        for line in range(snap.lines.line_count):
            start = snap.lines.line_start(line)
            body = snap.lines.line_text(line)
            indent = len(body) - len(body.lstrip())
            cursors.update({start, start + indent, start + len(body)})
        restricted = (
            import_lines(snap),
            [enclosing_headers(snap, len(text[:c].encode("utf-8"))) for c in sorted(cursors)],
        )
        with monkeypatch.context() as patched:
            patched.setattr(context, "QueryCursor", _Unrestricted)
            whole = (
                import_lines(snap),
                [enclosing_headers(snap, len(text[:c].encode("utf-8"))) for c in sorted(cursors)],
            )
        assert restricted == whole, name
        positions += len(cursors)
    assert len(languages_seen) >= 9 and positions > 1000
