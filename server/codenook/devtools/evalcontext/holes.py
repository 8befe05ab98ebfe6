"""Holes: lines of real code emptied where they use a name another file defines, and whether
the cross-file context built for the cursor there shows that definition.

A hole stands for "the completion needs something from elsewhere in the repository"; cutting
it from code that really exists keeps the test honest about which names and imports occur.
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from tree_sitter import QueryCursor, Tree

from codenook.completion.context import Budget, build_completion_context
from codenook.text import languages
from codenook.text.documents import Document
from codenook.uris import path_to_uri
from codenook.workspace.activity import ActivitySnapshot
from codenook.workspace.crossfile import (
    TokenCounter,
    build_crossfile_context,
    family,
    rendered_tokens,
)
from codenook.workspace.index import Definition, WorkspaceIndex, decode_source, iter_identifiers

MIN_HOLES_PER_FILE = 4  # holes per file: at most this, or twice the even share if more


@dataclass
class Hole:
    path: str
    line: int
    name: str
    language: str
    signature: str
    defined_in: str


@dataclass
class HoleResult:
    hole: Hole
    recalled: dict[int, bool] = field(default_factory=dict)  # budget -> recalled
    tokens: dict[int, int] = field(default_factory=dict)
    crossfile_ms: dict[int, float] = field(default_factory=dict)
    total_ms: dict[int, float] = field(default_factory=dict)


def read_source(root: str, path: str) -> str | None:
    """The file decoded as the index decodes it, or None: a file that went away or does not
    decode is left out of the evaluation rather than ending it."""
    try:
        return decode_source(Path(root, path).read_bytes(), path)
    except Exception:
        return None


def _excluded_rows(tree: Tree, language: str) -> set[int]:
    """Rows of import statements: a hole there would only test the import block."""
    rows: set[int] = set()
    query = languages.load(language).queries.get("imports")
    if query is None:
        return rows
    for capture, nodes in QueryCursor(query).captures(tree.root_node).items():
        if not capture.startswith("import"):
            continue
        for node in nodes:
            statement = node
            while statement.parent is not None and statement.parent.parent is not None:
                if "import" in statement.type or "include" in statement.type:
                    break
                statement = statement.parent
            rows.update(range(statement.start_point.row, statement.end_point.row + 1))
    return rows


def _is_code(tree: Tree, line: str, row: int, name: str) -> bool:
    """Does ``name`` occur on ``row`` as an identifier (not in a comment or a string)?"""
    encoded = name.encode("utf-8")
    column = 0
    while True:
        column = line.find(name, column)
        if column < 0:
            return False
        byte_column = len(line[:column].encode("utf-8"))
        node = tree.root_node.named_descendant_for_point_range(
            (row, byte_column), (row, byte_column + len(encoded))
        )
        if node is not None and "identifier" in node.type and node.text == encoded:
            return True
        column += len(name)


def find_holes(index: WorkspaceIndex, count: int, seed: int) -> list[Hole]:
    """Up to ``count`` holes, sampled with ``seed``: lines using a name that exactly one
    definition in another file of the repository defines."""
    candidates: list[tuple[str, int, str, Definition]] = []
    for path in index.paths():
        entry = index.get(path)
        if entry is None:
            continue
        text = read_source(index.root, path)
        if text is None:
            continue
        local = {d.name for d in entry.definitions}
        own = family(path)
        for row, line in enumerate(text.split("\n")):
            if not line.strip():
                continue
            for name in dict.fromkeys(iter_identifiers(line)):
                if name in local or len(name) < 3:
                    continue
                defs = index.definitions(name)
                if len(defs) == 1 and defs[0].path != path and family(defs[0].path) == own:
                    candidates.append((path, row, name, defs[0]))
                    break
    random.Random(seed).shuffle(candidates)
    files = len({path for path, _, _, _ in candidates}) or 1
    per_file_limit = max(MIN_HOLES_PER_FILE, -(-2 * count // files))
    holes: list[Hole] = []
    per_file: dict[str, int] = {}
    parsed: dict[str, tuple[list[str], Tree, set[int]]] = {}
    for path, row, name, definition in candidates:
        if len(holes) >= count:
            break
        if per_file.get(path, 0) >= per_file_limit:
            continue
        entry = index.get(path)
        if entry is None:
            continue
        if path not in parsed:
            text = read_source(index.root, path) or ""
            tree = languages.load(entry.language).parser().parse(text.encode("utf-8"))
            parsed[path] = (text.split("\n"), tree, _excluded_rows(tree, entry.language))
        lines, tree, excluded = parsed[path]
        if row in excluded or row >= len(lines) or not _is_code(tree, lines[row], row, name):
            continue
        per_file[path] = per_file.get(path, 0) + 1
        holes.append(Hole(path, row, name, entry.language, definition.signature, definition.path))
    return holes


def _cut(text: str, row: int) -> tuple[str, int]:
    """The text with the hole's line emptied after its indentation, and the cursor offset."""
    lines = text.split("\n")
    line = lines[row]
    indent = line[: len(line) - len(line.lstrip())]
    lines[row] = indent
    offset = sum(len(x) + 1 for x in lines[:row]) + len(indent)
    return "\n".join(lines), offset


def evaluate_hole(
    index: WorkspaceIndex, hole: Hole, budgets: Sequence[int], count: TokenCounter
) -> HoleResult:
    result = HoleResult(hole)
    text = read_source(index.root, hole.path)
    if text is None:
        return result
    holed, offset = _cut(text, hole.line)
    document = Document(path_to_uri(os.path.join(index.root, hole.path)), holed, 1)
    snapshot = document.snapshot()
    for budget in budgets:
        started = time.perf_counter()
        ctx = build_completion_context(snapshot, offset, Budget(), count, hole.path)
        middle = time.perf_counter()
        window = (ctx.window_start_line, ctx.cursor_line + ctx.suffix.count("\n"))
        cross = build_crossfile_context(
            snapshot, offset, hole.path, index, ActivitySnapshot(), budget, count, window=window
        )
        ended = time.perf_counter()
        shown = {line.strip() for chunk in cross.chunks for line in chunk.text.split("\n")}
        result.recalled[budget] = hole.signature in shown
        result.tokens[budget] = rendered_tokens(cross.chunks, count)
        result.crossfile_ms[budget] = (ended - middle) * 1000
        result.total_ms[budget] = (ended - started) * 1000
    return result
