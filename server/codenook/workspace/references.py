"""Which names near the cursor matter and where the file's imports say they are defined.

Split from ``crossfile`` (which ranks and renders the chunks): these functions read the
document and the index only, and hover uses them too (``definitions_for``). The reference
window moves in whole blocks so that typing on a line never changes what counts as near.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache

from codenook.text import languages
from codenook.text.documents import Snapshot
from codenook.workspace.index import IMPORT_DEPTH, Definition, Import, WorkspaceIndex, imports_of

STRIDE = 16  # the reference window moves in whole blocks of this many lines
BLOCKS_BEFORE = 3  # blocks above the cursor's block whose names count as "near"
BLOCKS_AFTER = 1
MAX_DEFINITIONS_PER_NAME = 3  # a name with more definitions than this, unresolved, is skipped

_REFERENCE = re.compile(r"(\.|->|::|:(?=[A-Za-z_]))?\s*([A-Za-z_$][A-Za-z0-9_$]*)")


def reference_window(cursor_line: int, line_count: int) -> tuple[int, int, int, int]:
    """Lines whose names count as near the cursor: (first, last) of the whole window and
    (first, last) of the cursor's own block. Both move only in whole blocks."""
    block = cursor_line // STRIDE
    first = max(0, (block - BLOCKS_BEFORE) * STRIDE)
    last = min(line_count - 1, (block + 1 + BLOCKS_AFTER) * STRIDE - 1)
    near_first = block * STRIDE
    near_last = min(line_count - 1, near_first + STRIDE - 1)
    return first, last, near_first, near_last


@dataclass(frozen=True)
class Reference:
    name: str
    rank: int  # 0: used in the cursor's block, 1: in the blocks around it
    attribute: bool  # used after `.`, `->`, `::` or Lua's `:` somewhere in the window
    # The identifiers before its `.`/`::` where every use has one (`pkg.name`): a module
    # receiver says which file defines it. Empty when any use is bare or after an expression.
    receivers: tuple[str, ...] = ()


def referenced_names(snapshot: Snapshot, cursor_line: int) -> list[Reference]:
    """Identifiers near the cursor in order of rank, then first use; the cursor line itself
    is left out (see the module doc)."""
    lines = snapshot.lines
    first, last, near_first, near_last = reference_window(cursor_line, lines.line_count)
    ranks: dict[str, int] = {}
    attributes: set[str] = set()
    receivers: dict[str, set[str]] = {}  # "" for a use without an identifier before it
    for rank, numbers in (
        (0, range(near_first, near_last + 1)),
        (1, range(first, last + 1)),
    ):
        for number in numbers:
            if number == cursor_line:
                continue
            previous, previous_end = "", -1
            for match in _REFERENCE.finditer(lines.line_text(number)):
                access, name = match.group(1), match.group(2)
                if name not in ranks:
                    ranks[name] = rank
                    receivers[name] = set()
                if access:
                    attributes.add(name)
                if rank == 1:  # the whole window, the cursor's block included
                    dotted = access in (".", "::") and previous_end == match.start()
                    receivers[name].add(previous if dotted else "")
                previous, previous_end = name, match.end()
    return [
        Reference(
            name,
            rank,
            name in attributes,
            tuple(sorted(receivers[name])) if "" not in receivers[name] else (),
        )
        for name, rank in ranks.items()
    ]


@dataclass(frozen=True)
class ImportTargets:
    """Where the current file's imports lead, in import order."""

    names: dict[str, tuple[str, ...]]  # imported name -> files that should define it
    modules: tuple[str, ...]  # files imported whole (module imports, submodules)
    files: frozenset[str]  # every file any import leads to, plus package siblings
    # Imported name -> the name of its definition, where they differ (`X as Y`, here or
    # in a re-export on the way).
    renamed: dict[str, str] = field(default_factory=dict)


def import_targets(
    imports: Sequence[Import], index: WorkspaceIndex, path: str, language: str | None
) -> ImportTargets:
    spec = languages.spec_for(path, language)
    style = spec.import_style if spec else ""
    separator = "::" if style == "rust" else "."
    names: dict[str, tuple[str, ...]] = {}
    renamed: dict[str, str] = {}
    modules: list[str] = []
    named_files: list[str] = []
    passed: list[str] = []  # files an imported module passes names on from

    def whole(files: tuple[str, ...]) -> None:
        """Files imported whole, and what they pass on (an ``__init__.py``, a barrel)."""
        for file in files:
            modules.append(file)
            wildcard, by_name = index.passed_on(file, style)
            modules.extend(wildcard)
            passed.extend(by_name)

    for item in imports:
        files = index.resolve(path, item.module, style)
        if not item.names or item.names == ("*",):
            whole(files)
            continue
        named_files.extend(files)
        bound = dict(item.aliases)
        for name in item.names:
            if name == "*":
                whole(files)
                continue
            joined = (
                item.module + name if item.module.endswith(".") else item.module + separator + name
            )
            submodule = index.resolve(path, joined, style) if style in ("python", "rust") else ()
            if submodule:
                modules.extend(submodule)
            # Where the name is really defined: through `__init__.py` and barrel re-exports.
            defined = index.follow(files, name, style) if files else ()
            found = tuple(dict.fromkeys(p for p, _ in defined)) or files
            named_files.extend(found)
            used = bound.get(name, name)
            names.setdefault(used, found)
            as_defined = defined[0][1] if defined else name
            if as_defined != used:
                renamed.setdefault(used, as_defined)
    siblings: list[str] = []
    if spec is not None and spec.directory_is_package:
        directory = path.rsplit("/", 1)[0] if "/" in path else ""
        siblings = [
            p
            for p in index.directory_files(directory)
            if p != path and languages.spec_for(p) == spec
        ]
    ordered = tuple(dict.fromkeys([*modules, *named_files, *siblings, *passed]))
    return ImportTargets(names, ordered, frozenset(ordered), renamed)


# Languages whose files can use each other's definitions.
_FAMILIES = {"typescript": "javascript", "tsx": "javascript", "cpp": "c"}


@lru_cache(maxsize=65536)
def family(path: str) -> str:
    """The language family of a file: JavaScript and TypeScript share one, C and C++ too."""
    spec = languages.spec_for(path)
    name = spec.name if spec else ""
    return _FAMILIES.get(name, name)


def resolve(
    name: str, index: WorkspaceIndex, path: str, targets: ImportTargets
) -> tuple[list[Definition], bool]:
    """The definitions a name used in ``path`` most likely means, and whether the file's
    imports lead to them (rather than the name merely being rare in the workspace)."""
    own = family(path)
    defined_as = targets.renamed.get(name, name)
    defs = [d for d in index.definitions(defined_as) if d.path != path and family(d.path) == own]
    if not defs:
        return [], False
    expected = targets.names.get(name)
    if expected:
        preferred = [d for d in defs if d.path in expected]
        if preferred:
            return preferred[:MAX_DEFINITIONS_PER_NAME], True
    imported = [d for d in defs if d.path in targets.files]
    if imported:
        return imported[:MAX_DEFINITIONS_PER_NAME], True
    if len({d.path for d in defs}) <= MAX_DEFINITIONS_PER_NAME:
        return defs, False
    return [], False


def definitions_for(
    name: str,
    index: WorkspaceIndex,
    path: str,
    imports: Sequence[Import],
    language: str | None = None,
) -> list[Definition]:
    """Where a name used in ``path`` is defined in another file, by the road completion
    takes (the file's imports first, re-exports followed, then a name defined in few files
    of the same language family): for a hover on a name this file does not define."""
    return resolve(name, index, path, import_targets(imports, index, path, language))[0]


def snapshot_imports(snapshot: Snapshot) -> tuple[Import, ...]:
    """The document's imports read from its tree (near the root only, see IMPORT_DEPTH)."""
    if snapshot.language is None or snapshot.tree is None:
        return ()
    source = snapshot.text.encode("utf-8")
    return imports_of(snapshot.language, snapshot.tree, source, max_depth=IMPORT_DEPTH)
