"""Holes: lines of real code emptied where they use a name another file defines, and whether
the cross-file context built for the cursor there shows that definition.

A hole stands for "the completion needs something from elsewhere in the repository"; cutting
it from code that really exists keeps the test honest about which names and imports occur.
"""

from __future__ import annotations

import os
import random
import re
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
    rendered_tokens,
)
from codenook.workspace.index import (
    Definition,
    FileEntry,
    WorkspaceIndex,
    decode_source,
    iter_identifiers,
)
from codenook.workspace.references import family

MIN_HOLES_PER_FILE = 4  # holes per file: at most this, or twice the even share if more

# What the hole's line did with the name, since each kind reaches its definition by a
# different road (the import's target, the outline of the module before the dot, the type
# of the object before the dot, or only the name itself).
KIND_IMPORTED = "imported"  # a name the file imports, used bare (`Flask(...)`)
KIND_MODULE_ATTR = "module.attr"  # after a module the file imports (`pkg.name`, `fmt.X`)
KIND_OBJ_ATTR = "obj.attr"  # after anything else (`self.x.name`, `obj.name`, `Type::new`)
KIND_BARE = "bare"  # neither imported nor after a dot (Go's package, Rust's `use super::*`)
KINDS = (KIND_IMPORTED, KIND_MODULE_ATTR, KIND_OBJ_ATTR, KIND_BARE)

# The receiver before an access to the name: `recv.`, `recv->`, `recv::` (and Lua's
# `recv:`, only in Lua: elsewhere `x: T` is an annotation).
_RECEIVER = re.compile(r"([A-Za-z_$][\w$]*)\s*(?:\.|->|::)\s*$")
_ACCESS = re.compile(r"(?:\.|->|::)\s*$")
_LUA_RECEIVER = re.compile(r"([A-Za-z_$][\w$]*)\s*(?:\.|:)\s*$")
_LUA_ACCESS = re.compile(r"[.:]\s*$")
# Names the text binds to a module by an aliasing import; the import model keeps only the
# module string of these, so they are read from the text (each pattern names the binding).
_MODULE_ALIASES = (
    re.compile(r"import\s+[\w.]+\s+as\s+([A-Za-z_]\w*)"),  # Python
    re.compile(r"import\s+\*\s+as\s+([A-Za-z_$][\w$]*)\s+from"),  # JS/TS namespace
    re.compile(r"import\s+([A-Za-z_$][\w$]*)\s*(?:,\s*\{[^}]*\})?\s+from"),  # JS/TS default
    re.compile(r"([A-Za-z_$][\w$]*)\s*=\s*require\s*\(?\s*['\"]"),  # CommonJS, Lua
    re.compile(r"(?m)^\s*([A-Za-z_]\w*)\s+\"[^\"\n]+\"\s*$"),  # Go's `name "path"`
)


@dataclass
class Hole:
    path: str
    line: int
    name: str
    language: str
    signature: str
    defined_in: str
    kind: str = KIND_BARE


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


def _code_column(tree: Tree, line: str, row: int, name: str) -> int:
    """The code-point column where ``name`` first occurs on ``row`` as an identifier (not
    in a comment or a string), or -1."""
    encoded = name.encode("utf-8")
    column = 0
    while True:
        column = line.find(name, column)
        if column < 0:
            return -1
        byte_column = len(line[:column].encode("utf-8"))
        node = tree.root_node.named_descendant_for_point_range(
            (row, byte_column), (row, byte_column + len(encoded))
        )
        if node is not None and "identifier" in node.type and node.text == encoded:
            return column
        column += len(name)


def module_names(entry: FileEntry, text: str, index: WorkspaceIndex) -> frozenset[str]:
    """Names the file binds to modules: a module import's bound name (Python's first part,
    elsewhere the last), an aliasing import's alias, and a Python ``from`` import's name
    that is a module of the workspace (``from . import mod``)."""
    spec = languages.spec_for(entry.path, entry.language)
    style = spec.import_style if spec else ""
    names: set[str] = set()
    for item in entry.imports:
        module = item.module
        if not item.names:
            parts = [p for p in re.split(r"::|[./]", module) if p]
            if parts:
                names.add(parts[0] if style == "python" else parts[-1])
                if style == "go" and len(parts) > 1 and re.fullmatch(r"v\d+", parts[-1]):
                    names.add(parts[-2])  # `.../hcl/v2` is package hcl
        elif style == "python":
            for name in item.names:
                joined = module + name if module.endswith(".") else f"{module}.{name}"
                if name != "*" and index.resolve(entry.path, joined, style):
                    names.add(dict(item.aliases).get(name, name))
    for pattern in _MODULE_ALIASES:
        names.update(pattern.findall(text))
    return frozenset(names)


def imported_names(entry: FileEntry) -> frozenset[str]:
    """Names the file's ``from``/named imports bind (as bound, ``X as Y`` gives ``Y``)."""
    names: set[str] = set()
    for item in entry.imports:
        bound = dict(item.aliases)
        names.update(bound.get(n, n) for n in item.names if n != "*")
    return frozenset(names)


def hole_kind(
    line: str,
    column: int,
    name: str,
    modules: frozenset[str],
    imported: frozenset[str],
    language: str = "",
) -> str:
    """The kind of a use of ``name`` at code-point ``column`` of ``line``: after a module
    (``modules``) or another receiver, an imported name (``imported``), or bare. In Rust a
    ``Type::name`` is an object access, a lower-case ``module::name`` a module's."""
    before = line[:column]
    lua = language == "lua"
    receiver = (_LUA_RECEIVER if lua else _RECEIVER).search(before)
    if receiver is not None:
        word = receiver.group(1)
        rust_module = before.rstrip().endswith("::") and word[:1].islower()
        return KIND_MODULE_ATTR if word in modules or rust_module else KIND_OBJ_ATTR
    if (_LUA_ACCESS if lua else _ACCESS).search(before):  # `f().name`: an expression's
        return KIND_OBJ_ATTR
    return KIND_IMPORTED if name in imported else KIND_BARE


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
    parsed: dict[str, tuple[list[str], Tree, set[int], frozenset[str], frozenset[str]]] = {}
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
            parsed[path] = (
                text.split("\n"),
                tree,
                _excluded_rows(tree, entry.language),
                module_names(entry, text, index),
                imported_names(entry),
            )
        lines, tree, excluded, modules, imported = parsed[path]
        if row in excluded or row >= len(lines):
            continue
        column = _code_column(tree, lines[row], row, name)
        if column < 0:
            continue
        per_file[path] = per_file.get(path, 0) + 1
        kind = hole_kind(lines[row], column, name, modules, imported, entry.language)
        holes.append(
            Hole(path, row, name, entry.language, definition.signature, definition.path, kind)
        )
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
