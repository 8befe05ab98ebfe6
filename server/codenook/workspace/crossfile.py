"""Cross-file context: what the rest of the workspace tells the model about the cursor's code.

Pure functions of a document snapshot, a cursor, the workspace index, a snapshot of recent
activity, a token budget and a token counter. The result is a list of chunks, one per file
section, rendered in the model's repository format (``<|file_sep|>path`` + content) before the
current file. Candidates, most relevant first (the ``TIER_*`` constants):

1. definitions of the names used near the cursor that the file's imports lead to (their
   signatures; their docstrings or doc comments and a class's fields only after the
   signatures of the other near names, so that one long doc does not keep them out);
2. the regions edited most recently, across files (a ring, see ``activity.Activity``);
3. what the imports bring in: the signatures of the imported names;
4. definitions of other names used near the cursor: rare names, members used as attributes;
5. the member signatures of the classes above;
6. chunks of recently visited code (llama.vim's ring: near-duplicates evicted, chunks too
   similar to the prompt's own window dropped);
7. the members, docs and fields of the imported names, then outlines of the imported modules.

"Not near" candidates (``nearby``: the outline of what is before the dot at the cursor, imported
names not used yet, ``mod.name``s used elsewhere in the file, the directory's other files) rank
below the near-cursor tiers; the dot target is read from the text before the cursor's last dot.

**Stable between keystrokes.** Prefix caching only helps when consecutive prompts share their
beginning, and these chunks come first. So nothing here depends on the cursor line's text or
column: the names "near the cursor" come from whole 16-line blocks around it minus the cursor
line, recent edits overlapping the prompt's window are left out (they are in the window), and
the chunks are emitted in a fixed order (imports-derived definitions, visited code, other
definitions, recent edits; by path within each group; by line within each file). Typing on a
line therefore yields the identical chunk list, and when relevance does change the chunks
before the change stay in place.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from itertools import pairwise

from codenook.lru import LRU
from codenook.text import languages
from codenook.text.documents import Snapshot
from codenook.workspace import nearby
from codenook.workspace.activity import (
    NEAR_DUPLICATE,
    ActivitySnapshot,
    RecentChunk,
    jaccard_sets,
    line_set,
)
from codenook.workspace.index import Definition, Import, WorkspaceIndex
from codenook.workspace.references import (
    MAX_DEFINITIONS_PER_NAME,
    ImportTargets,
    Reference,
    import_targets,
    reference_window,
    referenced_names,
    snapshot_imports,
)
from codenook.workspace.references import (
    resolve as _resolve,
)

TokenCounter = Callable[[str], int]

MAX_OUTLINE_FILES = 12
MAX_OUTLINE_LINES = 3  # lines of a multi-line signature kept in a module outline
EDIT_SHARE = 0.25  # at most this share of the budget for recent edits
VISIT_SHARE = 0.25  # and for visited chunks
SIMILAR_TO_WINDOW = 0.5  # Jaccard similarity above which a chunk repeats the window
MIN_ITEM_TOKENS = 4  # the budget is full when less than this is left
MAX_MISSES = 40  # ... or when this many candidates in a row did not fit

# Selection tiers, most relevant first (near-cursor tiers add the reference's rank, 0 or 1).
TIER_NEAR = 0  # names near the cursor that the imports lead to
TIER_EDITS = 2  # recently edited regions
TIER_IMPORTED = 3  # signatures of the imported names
TIER_NEAR_OTHER = 4  # names near the cursor defined elsewhere (rare names, used members)
TIER_DOCS_LATER = 4.5  # added to a near name's tier for its docs and fields: after 4, 5
TIER_NEAR_MEMBERS = 6  # member signatures of the classes above
TIER_VISITS = 7  # recently visited chunks
TIER_IMPORTED_MEMBERS = 8  # member signatures of imported classes
TIER_IMPORTED_DOCS = 9  # docs and fields of imported names
TIER_OUTLINE = 10  # top-level signatures of imported modules (and package siblings)
TIER_OUTLINE_MEMBERS = 11

# Emission groups, in prompt order: the least likely to change first.
GROUP_IMPORTS = 0  # definitions in files the current file imports
GROUP_VISITED = 1
GROUP_REFERENCES = 2  # definitions found by name elsewhere in the workspace
GROUP_EDITS = 3
GROUP_NAMES = ("imports", "visited", "references", "edits")


# -- results -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Chunk:
    """One section of the prompt: a file path and lines of that file (gaps marked)."""

    path: str
    text: str
    group: str  # "imports", "visited", "references" or "edits"
    first_line: int
    last_line: int

    def render(self) -> str:
        """The text that follows the ``<|file_sep|>`` marker in the prompt."""
        return f"{self.path}\n{self.text}\n"


@dataclass(frozen=True)
class CrossFileContext:
    chunks: tuple[Chunk, ...] = ()
    tokens: int = 0  # counted as rendered, one token per section for its marker
    candidates: int = 0  # items considered

    @property
    def text(self) -> str:
        return "".join(chunk.render() for chunk in self.chunks)


def rendered_tokens(chunks: Iterable[Chunk], count: TokenCounter) -> int:
    """Tokens the chunks take in the prompt: each rendering plus its ``<|file_sep|>``."""
    return sum(count(chunk.render()) + 1 for chunk in chunks)


class ContextMemo(LRU[tuple[object, ...], CrossFileContext]):
    """The last few cross-file contexts by their inputs: typing on one line asks for the
    same context again and again (see ``build_crossfile_context``)."""

    def __init__(self, capacity: int = 8) -> None:
        super().__init__(capacity)
        # The candidates that do not depend on the dot target, by the same inputs less the
        # dot and the budget: typing a `.` on a line recomputes only the dot's outline (on
        # a 10,000-line file the rest costs tens of milliseconds).
        self.candidates: LRU[tuple[object, ...], tuple[ImportTargets, list[_Item]]] = LRU(4)


# -- assembling --------------------------------------------------------------------------------


@dataclass
class _Item:
    tier: float
    order: int
    group: int
    path: str
    lines: tuple[tuple[int, str], ...]
    share: str = ""  # "edits" / "visits": counted against that share of the budget


@dataclass
class _Selection:
    budget: int
    count: TokenCounter
    sections: dict[tuple[int, str], dict[int, str]] = field(default_factory=dict)
    used: int = 0
    shares: dict[str, int] = field(default_factory=dict)
    chosen: list[tuple[_Item, int]] = field(default_factory=list)  # with estimated costs

    def cost(self, item: _Item) -> int:
        section = self.sections.get((item.group, item.path))
        new = [(n, t) for n, t in item.lines if section is None or n not in section]
        if not new:
            return 0
        cost = sum(self.count(text + "\n") for _, text in new)
        if section is None:
            cost += self.count(item.path + "\n") + 1
        # A gap marker, roughly, for each new run of lines.
        numbers = sorted(n for n, _ in new)
        runs = 1 + sum(1 for a, b in pairwise(numbers) if b != a + 1)
        return cost + 2 * runs

    def add(self, item: _Item, cost: int) -> None:
        section = self.sections.setdefault((item.group, item.path), {})
        for number, text in item.lines:
            section.setdefault(number, text)
        self.used += cost
        if item.share:
            self.shares[item.share] = self.shares.get(item.share, 0) + cost
        self.chosen.append((item, cost))


def _separator(path: str) -> str:
    return f"{languages.comment_prefix(path)} ..."


def _render(sections: dict[tuple[int, str], dict[int, str]]) -> list[Chunk]:
    chunks: list[Chunk] = []
    for (group, path), lines in sorted(sections.items()):
        if not lines:
            continue
        separator = _separator(path)
        out: list[str] = []
        previous: int | None = None
        for number in sorted(lines):
            if previous is not None and number != previous + 1:
                out.append(separator)
            out.append(lines[number])
            previous = number
        numbers = sorted(lines)
        chunks.append(Chunk(path, "\n".join(out), GROUP_NAMES[group], numbers[0], numbers[-1]))
    return chunks


def _parent_line(index: WorkspaceIndex, definition: Definition) -> tuple[tuple[int, str], ...]:
    """The signature line of a method's class, so that the method reads in context."""
    if not definition.parent:
        return ()
    entry = index.get(definition.path)
    if entry is None:
        return ()
    best: Definition | None = None
    for other in entry.definitions:
        if other.name == definition.parent and other.line < definition.line:
            best = other
    if best is None:
        return ()
    return tuple((n, t) for n, t in best.head if n == best.line)


def _signature_lines(definition: Definition, limit: int) -> tuple[tuple[int, str], ...]:
    return tuple((n, t) for n, t in definition.head if n >= definition.line)[:limit]


def build_crossfile_context(
    snapshot: Snapshot,
    offset: int,
    path: str,
    index: WorkspaceIndex | None,
    activity: ActivitySnapshot,
    budget: int,
    count: TokenCounter,
    *,
    window: tuple[int, int] | None = None,
    imports: Sequence[Import] | None = None,
    memo: ContextMemo | None = None,
) -> CrossFileContext:
    """Chunks from other files for a completion at code-point ``offset`` of ``snapshot``.

    ``path`` is the document's workspace-relative path (as the index knows it); ``window``
    the first and last lines of the document already in the prompt (the prefix window and
    the suffix), which chunks of this file must not repeat. ``imports`` are the document's
    imports when the caller has them (the index entry of an open file, refreshed when the
    user pauses); otherwise they are read from the snapshot's tree, at most
    ``index.IMPORT_DEPTH`` levels deep. The chunks' rendered tokens (``rendered_tokens``)
    never exceed ``budget``. With a ``memo``, a call whose inputs match a remembered call's
    (typing on the same line) returns that result without assembling anything.
    """
    if budget <= 0:
        return CrossFileContext()
    lines = snapshot.lines
    cursor_line = lines.point(offset).line
    ref_first, ref_last, _, _ = reference_window(cursor_line, lines.line_count)
    if window is None:
        window = (ref_first, ref_last)
    if index is not None and imports is None:
        imports = snapshot_imports(snapshot)
    first, last = window
    shown = tuple(
        lines.line_text(n)
        for n in range(max(0, first), min(lines.line_count, last + 1))
        if n != cursor_line
    )
    edits = _outside_window(activity.edits, path, window)
    visits = _outside_window(activity.visits, path, window)
    dot = nearby.dot_target(lines, offset, cursor_line) if index is not None else ()
    key: tuple[object, ...] = ()
    if memo is not None:
        # Everything the result depends on; none of it changes while typing on a line.
        near = tuple(lines.line_text(n) for n in range(ref_first, ref_last + 1) if n != cursor_line)
        key = (
            path,
            cursor_line,
            budget,
            window,
            tuple(imports or ()),
            near,
            shown,
            edits,
            visits,
            id(index),
            index.generation if index is not None else -1,
            id(count),
            dot,
            nearby.fingerprint(lines, cursor_line),
        )
        remembered = memo.get(key)
        if remembered is not None:
            return remembered
    items: list[_Item] = []
    if index is not None:
        # path, cursor line, imports, near lines, index, generation, the other lines.
        stable = tuple(key[i] for i in (0, 1, 4, 5, 9, 10, 13)) if memo is not None else ()
        cached = memo.candidates.get(stable) if memo is not None else None
        targets = (
            cached[0]
            if cached is not None
            else import_targets(imports or (), index, path, snapshot.language_name)
        )

        def resolve(name: str) -> list[Definition]:
            return _resolve(name, index, path, targets)[0]

        finder = nearby.finder(
            lines, cursor_line, path, snapshot.language_name, index, imports or (), targets,
            resolve,
        )  # fmt: skip

        def group(found: Definition) -> int:
            return GROUP_IMPORTS if found.path in targets.files else GROUP_REFERENCES

        if cached is None:
            found_items = _definition_items(snapshot, cursor_line, path, index, targets, finder)
            for tier, found, numbered in nearby.candidates(
                finder, snapshot.language_name, (), (ref_first, ref_last)
            ):
                found_items.append(
                    _Item(tier, len(found_items), group(found), found.path, numbered)
                )
            cached = (targets, found_items)
            if memo is not None:
                memo.candidates.put(stable, cached)
        items += cached[1]
        for tier, found, numbered in nearby.dot_candidates(finder, dot):
            items.append(_Item(tier, len(items), group(found), found.path, numbered))
    items += _activity_items(line_set(shown), edits, visits)
    items.sort(key=lambda item: (item.tier, item.order))
    selection = _Selection(budget, count)
    shares = {"edits": int(budget * EDIT_SHARE), "visits": int(budget * VISIT_SHARE)}
    misses = 0
    for item in items:
        if budget - selection.used < MIN_ITEM_TOKENS or misses >= MAX_MISSES:
            break  # full: what is left would not fit, and counting it costs time
        cost = selection.cost(item)
        if cost == 0:
            continue
        if item.share and selection.shares.get(item.share, 0) + cost > shares[item.share]:
            continue
        if selection.used + cost <= budget:
            selection.add(item, cost)
            misses = 0
        else:
            misses += 1
    chunks = _render(selection.sections)
    tokens = rendered_tokens(chunks, count)
    while tokens > budget and selection.chosen:
        # Tokens are not quite additive across lines: drop the least relevant items, about
        # as many tokens as the count is over, and count again.
        removed = 0
        while selection.chosen and removed < tokens - budget:
            removed += max(1, selection.chosen.pop()[1])
        rebuilt = _Selection(budget, count)
        for item, cost in selection.chosen:
            rebuilt.add(item, cost)
        selection.sections = rebuilt.sections
        chunks = _render(selection.sections)
        tokens = rendered_tokens(chunks, count)
    result = CrossFileContext(tuple(chunks), tokens, len(items))
    if memo is not None:
        memo.put(key, result)
    return result


def _outside_window(
    ring: tuple[RecentChunk, ...], path: str, window: tuple[int, int]
) -> tuple[RecentChunk, ...]:
    first, last = window
    return tuple(
        chunk
        for chunk in ring
        if not (chunk.path == path and chunk.start_line <= last and chunk.end_line >= first)
    )


def _definition_items(
    snapshot: Snapshot,
    cursor_line: int,
    path: str,
    index: WorkspaceIndex,
    targets: ImportTargets,
    finder: nearby.Finder | None = None,
) -> list[_Item]:
    entry = index.get(path)
    local = {d.name for d in entry.definitions} if entry is not None else set()
    items: list[_Item] = []
    taken: set[tuple[str, int]] = set()
    order = 0

    def group_of(definition: Definition) -> int:
        return GROUP_IMPORTS if definition.path in targets.files else GROUP_REFERENCES

    def add(tier: float, definition: Definition, lines: tuple[tuple[int, str], ...]) -> None:
        nonlocal order
        order += 1
        items.append(_Item(tier, order, group_of(definition), definition.path, lines))

    def members(tier: int, definition: Definition) -> None:
        for member in index.members(definition.path, definition.name):
            add(tier, member, _signature_lines(member, 1))

    # 1. Names used near the cursor, with their docs and fields: first those the imports
    # lead to, then members used as attributes and names defined once elsewhere.
    for reference in referenced_names(snapshot, cursor_line):
        if reference.name in local or len(reference.name) < 2:
            continue
        in_modules = _in_modules(reference, index, finder) if finder is not None else None
        if in_modules:  # `pkg.name`: in pkg's files
            found, imported = in_modules, True
        else:
            found, imported = _resolve(reference.name, index, path, targets)
            # Only a module outside the workspace was in front (`fmt.`, `os.`, or the
            # package importing itself by name): a match by name is a guess.
            imported = imported and in_modules is None
        for definition in found:
            # A member named without `.` in front (`value`, `next`) is more likely a local
            # of the same name than that field: it waits with the weaker matches.
            strong = imported and (
                reference.attribute or not definition.parent or definition.kind == "module"
            )
            key = (definition.path, definition.line)
            if key in taken:
                continue
            taken.add(key)
            # The signature first, its docs and fields later: one long doc comment (effect
            # writes 40-line JSDoc) must not keep the other names near the cursor out.
            tier = (TIER_NEAR if strong else TIER_NEAR_OTHER) + reference.rank
            add(tier, definition, _parent_line(index, definition) + definition.head)
            if definition.doc or definition.fields:
                add(tier + TIER_DOCS_LATER, definition, definition.doc + definition.fields)
            members(TIER_NEAR_MEMBERS, definition)
    # 2. What the imports bring in: signatures, then member signatures and docs.
    for name, files in targets.names.items():
        if name in local:
            continue
        for definition in index.definitions(targets.renamed.get(name, name)):
            if definition.path not in files or definition.parent:
                continue
            key = (definition.path, definition.line)
            if key in taken:
                continue
            taken.add(key)
            add(TIER_IMPORTED, definition, definition.head)
            members(TIER_IMPORTED_MEMBERS, definition)
            add(TIER_IMPORTED_DOCS, definition, definition.doc + definition.fields)
    # 3. Outlines of imported modules: top-level signatures, then members.
    for file in targets.modules[:MAX_OUTLINE_FILES]:
        found_entry = index.get(file)
        if found_entry is None:
            continue
        for definition in found_entry.definitions:
            if definition.parent or (definition.path, definition.line) in taken:
                continue
            add(TIER_OUTLINE, definition, _signature_lines(definition, MAX_OUTLINE_LINES))
            # A class's methods, a Lua module table's functions.
            members(TIER_OUTLINE_MEMBERS, definition)
    return items


def _in_modules(
    reference: Reference, index: WorkspaceIndex, finder: nearby.Finder
) -> list[Definition] | None:
    """Where a name used only as ``pkg.name`` near the cursor is defined, when every such
    ``pkg`` is a module the file imports: in those modules' files (re-exports followed);
    nothing when they are all outside the workspace (``fmt.Println``, ``os.path``). None
    when a receiver is not a module (an object, a class)."""
    if not reference.receivers:
        return None
    files: list[str] = []
    for receiver in reference.receivers:
        found = finder.module_of(receiver)
        if found is None:
            return None
        files.extend(found)
    if not files:
        return []
    name = reference.name
    defs = [
        d
        for p, n in index.follow(tuple(dict.fromkeys(files)), name, finder.style)
        for d in index.definitions(n)
        if d.path == p
    ]
    return defs[:MAX_DEFINITIONS_PER_NAME]


def _activity_items(
    shown: frozenset[str], edits: tuple[RecentChunk, ...], visits: tuple[RecentChunk, ...]
) -> list[_Item]:
    """Ring chunks not too similar to the window (``shown``) nor to a chunk kept before."""
    items: list[_Item] = []
    kept: list[frozenset[str]] = []
    for tier, group, share, ring in (
        (TIER_EDITS, GROUP_EDITS, "edits", edits),
        (TIER_VISITS, GROUP_VISITED, "visits", visits),
    ):
        for position, chunk in enumerate(ring):
            own = line_set(chunk.lines)
            if jaccard_sets(own, shown) > SIMILAR_TO_WINDOW:
                continue
            if any(jaccard_sets(own, other) > NEAR_DUPLICATE for other in kept):
                continue
            kept.append(own)
            numbered = tuple((chunk.start_line + i, text) for i, text in enumerate(chunk.lines))
            items.append(_Item(tier, position, group, chunk.path, numbered, share))
    return items
