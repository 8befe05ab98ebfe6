"""What the model sees around the cursor: pure functions of a document snapshot.

The prefix window is measured in model tokens and its first line moves only in steps of
``WINDOW_STRIDE`` lines, so consecutive keystrokes produce prompts that share everything up to
the cursor (prefix caching depends on it). What the window cuts off but the model needs to
make sense of the cursor's code — the import block and the headers of the enclosing
functions and classes — is put back above the window.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from tree_sitter import Node, QueryCursor

from codenook.text.documents import Snapshot

TokenCounter = Callable[[str], int]

WINDOW_STRIDE = 16
MAX_HEADER_LINES = 4


@dataclass(frozen=True)
class Budget:
    prefix_tokens: int = 1024
    suffix_tokens: int = 256
    header_tokens: int = 256


@dataclass(frozen=True)
class CompletionContext:
    path: str
    language: str | None
    header: str  # imports and enclosing headers above the window, may be empty
    prefix: str  # window text from its first line up to the cursor
    suffix: str  # text after the cursor, up to the suffix budget (whole lines)
    line_prefix: str  # the cursor line up to the cursor
    line_suffix: str  # the cursor line after the cursor
    window_start_line: int
    cursor_line: int


def _line_tokens(snapshot: Snapshot, line: int, count: TokenCounter) -> int:
    return count(snapshot.lines.line_text(line) + "\n")


def window_start(
    snapshot: Snapshot, cursor_line: int, line_prefix: str, budget: int, count: TokenCounter
) -> int:
    """First line of the prefix window: as far up as the budget allows, snapped to the stride.

    Snapping down to a multiple of the stride would overflow the budget, so we snap up: the
    window may be up to ``WINDOW_STRIDE`` lines shorter than it could be, and in exchange its
    start stays put while the user types within the stride.
    """
    used = count(line_prefix)
    line = cursor_line
    while line > 0:
        cost = _line_tokens(snapshot, line - 1, count)
        if used + cost > budget:
            break
        used += cost
        line -= 1
    if line == 0:
        return 0
    snapped = -(-line // WINDOW_STRIDE) * WINDOW_STRIDE
    # A budget smaller than one stride would snap past the cursor and leave no code above
    # it; then the budget's own line wins over stability.
    return snapped if snapped < cursor_line else line


def import_lines(snapshot: Snapshot) -> list[tuple[int, int]]:
    """Line ranges [start, end] of the file's top-level import statements, in file order."""
    if snapshot.language is None or snapshot.tree is None:
        return []
    query = snapshot.language.queries.get("imports")
    if query is None:
        return []
    # The @import patterns are anchored at the root: looking deeper only costs time
    # (27 ms -> 0.7 ms on a 10,000-line file).
    cursor = QueryCursor(query)
    cursor.set_max_start_depth(0)
    nodes = cursor.captures(snapshot.tree.root_node).get("import", [])
    return sorted({(n.start_point.row, n.end_point.row) for n in nodes})


def enclosing_headers(snapshot: Snapshot, cursor_byte: int) -> list[tuple[int, int]]:
    """Line ranges of the headers of every scope enclosing the cursor, outermost first.

    A header runs from the scope's first line to the line before its body starts (at most
    ``MAX_HEADER_LINES``); when the body starts on the same line (``fn f() {``) it is that line.
    """
    if snapshot.language is None or snapshot.tree is None:
        return []
    query = snapshot.language.queries.get("scopes")
    if query is None:
        return []
    lines = snapshot.lines
    cursor = _byte_position(snapshot, cursor_byte)
    spans: list[tuple[int, int]] = []
    # Only scopes that reach the cursor matter: start the search at the last non-blank line
    # above it (a Python body ends there) instead of walking the whole tree.
    row = cursor[0] - 1
    while row > 0 and not lines.line_text(row).strip():
        row -= 1
    search = QueryCursor(query)
    search.set_byte_range(lines.rope.utf8_offset(lines.line_start(max(row, 0))), cursor_byte + 1)
    for _, match in search.matches(snapshot.tree.root_node):
        scope = match.get("scope", [])
        body = match.get("body", [])
        if not scope or not body:
            continue
        node, body_node = scope[0], body[0]
        if body_node.start_byte > cursor_byte:
            continue
        if cursor_byte > node.end_byte and not _trails_body(snapshot, node, cursor):
            continue
        first = node.start_point.row
        body_row = body_node.start_point.row
        # A body that opens mid-line (`) -> T {`) shares its line with the signature's end;
        # one that starts at its own indentation (a Python block) does not.
        before_body = lines.line_text(body_row).encode("utf-8")[: body_node.start_point.column]
        last = body_row if before_body.strip() else body_row - 1
        spans.append((first, max(first, min(last, first + MAX_HEADER_LINES - 1))))
    return sorted(set(spans))


def _byte_position(snapshot: Snapshot, cursor_byte: int) -> tuple[int, int]:
    """(row, byte column) of a byte offset, the way tree-sitter reports node points (read
    from the text's chunks: a keystroke never encodes the whole text)."""
    rope = snapshot.lines.rope
    return rope.tree_point(rope.utf8_to_offset(cursor_byte))


def _trails_body(snapshot: Snapshot, node: Node, cursor: tuple[int, int]) -> bool:
    """Is a cursor past a scope's last byte still in its body?

    Indentation-scoped languages end a function at its last statement, yet the blank indented
    lines after it are where new code for that function gets typed. The cursor belongs to the
    scope when only blank lines separate them and the cursor is indented deeper than the
    scope's header.
    """
    row, column = cursor
    if row <= node.end_point.row:
        return False
    lines = snapshot.lines
    if any(lines.line_text(r).strip() for r in range(node.end_point.row + 1, row)):
        return False
    typed = lines.line_text(row).encode("utf-8")[:column]
    return not typed.strip() and column > node.start_point.column


def _render_header(
    snapshot: Snapshot,
    spans: list[tuple[int, int]],
    window_start_line: int,
    budget: int,
    count: TokenCounter,
) -> str:
    """Lines of ``spans`` above the window, within budget, in file order."""
    lines: list[int] = []
    for first, last in spans:
        lines.extend(range(first, min(last, window_start_line - 1) + 1))
    texts = (snapshot.lines.line_text(line) + "\n" for line in sorted(set(lines)))
    return "".join(_within(texts, budget, count))


def _within(texts: Iterable[str], budget: int, count: TokenCounter, used: int = 0) -> list[str]:
    """The leading ``texts`` whose tokens, added to ``used``, fit ``budget``: whole lines
    only, since a line cut in the middle would teach the model a line that does not exist."""
    kept: list[str] = []
    for text in texts:
        used += count(text)
        if used > budget:
            break
        kept.append(text)
    return kept


def suffix_text(
    snapshot: Snapshot, offset: int, cursor_line: int, budget: int, count: TokenCounter
) -> str:
    """The rest of the cursor line plus whole following lines within ``budget`` tokens."""
    lines = snapshot.lines
    line_end = lines.line_start(cursor_line) + len(lines.line_text(cursor_line))
    rest = snapshot.text[offset:line_end]
    used = count(rest) if rest else 0
    if used > budget:
        return _fit(rest, budget, count, keep_end=False)
    following = ("\n" + lines.line_text(line) for line in range(cursor_line + 1, lines.line_count))
    return rest + "".join(_within(following, budget, count, used))


def _fit(text: str, budget: int, count: TokenCounter, *, keep_end: bool) -> str:
    """The longest end (or start) of ``text`` within ``budget`` tokens, found by bisection."""
    low, high = 0, len(text)
    while low < high:
        mid = (low + high + 1) // 2
        piece = text[len(text) - mid :] if keep_end else text[:mid]
        if count(piece) <= budget:
            low = mid
        else:
            high = mid - 1
    return text[len(text) - low :] if keep_end else text[:low]


def build_completion_context(
    snapshot: Snapshot, offset: int, budget: Budget, count: TokenCounter, path: str
) -> CompletionContext:
    """Everything the prompt needs for a completion at code-point ``offset``."""
    lines = snapshot.lines
    point = lines.point(offset)
    cursor_line = point.line
    line_text = lines.line_text(cursor_line)
    line_prefix = line_text[: point.column]
    line_suffix = line_text[point.column :]
    if count(line_prefix) > budget.prefix_tokens:
        # A single huge line (minified code): keep its end, within budget.
        start = cursor_line
        prefix = _fit(line_prefix, budget.prefix_tokens, count, keep_end=True)
    else:
        start = window_start(snapshot, cursor_line, line_prefix, budget.prefix_tokens, count)
        prefix = snapshot.text[lines.line_start(start) : offset]
    header = ""
    if start > 0 and budget.header_tokens > 0:
        cursor_byte = lines.rope.utf8_offset(offset)
        spans = import_lines(snapshot) + enclosing_headers(snapshot, cursor_byte)
        header = _render_header(snapshot, spans, start, budget.header_tokens, count)
    suffix = suffix_text(snapshot, offset, cursor_line, budget.suffix_tokens, count)
    return CompletionContext(
        path=path,
        language=snapshot.language_name,
        header=header,
        prefix=prefix,
        suffix=suffix,
        line_prefix=line_prefix,
        line_suffix=line_suffix,
        window_start_line=start,
        cursor_line=cursor_line,
    )
