"""Keystrokes on a big file: the per-keystroke cost of keeping the context up to date.

Recall alone would hide a context that is right but too slow to rebuild on every key; this
types real lines into a file the size of a large module, as an editor with auto-closing
brackets sends them, with the index warm as in a running server. At each place it then types
a line with a string whose quote the editor does not close: until the closing quote, the rest
of the file is a string to tree-sitter, the worst case of an incremental re-parse.

``apply_edit`` is what a keystroke waits for (the text, the line index, the tree's edit and a
re-parse within ``Document.PARSE_BUDGET_S``). A re-parse that needs longer finishes in the
background; as in the server, the context is built once the editor's debounce has passed or
that re-parse has finished, whichever comes first, and then the re-parse is waited for
before the next keystroke. Its time is reported apart, with how many contexts were built on
the previous, edited tree.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from codenook.completion.context import Budget, build_completion_context
from codenook.devtools.evalcontext.holes import read_source
from codenook.text import languages
from codenook.text.documents import Document
from codenook.text.positions import Encoding, LineIndex
from codenook.uris import path_to_uri
from codenook.workspace.activity import Activity
from codenook.workspace.crossfile import ContextMemo, TokenCounter, build_crossfile_context
from codenook.workspace.index import WorkspaceIndex

# Editors close brackets and quotes as they are typed; typing the closer then steps over it.
_PAIRS = {"(": ")", "[": "]", "{": "}", '"': '"', "'": "'", "`": "`"}
DEBOUNCE_S = 0.075  # the editor's debounce (the bench's default): when the context is built
POSITIONS = (0.1, 0.25, 0.4, 0.55, 0.7, 0.85)  # where in the big file to type (share of lines)
UNCLOSED_LINE = '"""A docstring typed with no auto-closing."""'  # the quotes are not auto-closed


def percentile(values: Sequence[float], share: float) -> float:
    """0.0 for no values, so that the JSON report holds numbers only."""
    if not values:
        return 0.0
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(share * (len(ordered) - 1))))
    return ordered[index]


@dataclass
class KeystrokeReport:
    path: str
    lines: int
    keystrokes: int
    edit_ms: list[float] = field(default_factory=list)  # Document.apply_edit
    lines_ms: list[float] = field(default_factory=list)  # its LineIndex.edited, timed again
    deferred_ms: list[float] = field(default_factory=list)  # a re-parse past the budget
    stale: int = 0  # keystrokes whose context read the previous, edited tree
    unclosed_edit_ms: list[float] = field(default_factory=list)  # apply_edit, quote open
    unclosed_deferred_ms: list[float] = field(default_factory=list)
    unclosed_context_ms: list[float] = field(default_factory=list)
    unclosed_stale: int = 0
    activity_ms: list[float] = field(default_factory=list)  # Activity.record_edit
    context_ms: list[float] = field(default_factory=list)  # build_completion_context
    crossfile_ms: list[float] = field(default_factory=list)  # build_crossfile_context
    recomputed_ms: list[float] = field(default_factory=list)  # ... when the memo missed
    changed: int = 0  # keystrokes whose chunk list differed from the previous keystroke's
    line_changes: int = 0  # ... of which right after Enter (a new line)
    memo_hits: int = 0  # keystrokes answered from the memo (nothing relevant changed)

    def summary(self) -> dict[str, float | int | str]:
        out: dict[str, float | int | str] = {
            "path": self.path,
            "lines": self.lines,
            "keystrokes": self.keystrokes,
            "chunk_list_changes": self.changed,
            "chunk_list_changes_after_enter": self.line_changes,
            "memo_hits": self.memo_hits,
            "edits_over_5ms": sum(1 for value in self.edit_ms if value > 5),
            "edit_max_ms": round(max(self.edit_ms, default=0.0), 1),
            "stale_contexts": self.stale,
            "deferred_parses": len(self.deferred_ms),
            "deferred_max_ms": round(max(self.deferred_ms, default=0.0), 1),
            "unclosed_keystrokes": len(self.unclosed_edit_ms),
            "unclosed_edit_max_ms": round(max(self.unclosed_edit_ms, default=0.0), 1),
            "unclosed_stale_contexts": self.unclosed_stale,
            "unclosed_deferred_max_ms": round(max(self.unclosed_deferred_ms, default=0.0), 1),
        }
        for name in (
            "edit_ms",
            "lines_ms",
            "deferred_ms",
            "unclosed_edit_ms",
            "unclosed_deferred_ms",
            "unclosed_context_ms",
            "activity_ms",
            "context_ms",
            "crossfile_ms",
            "recomputed_ms",
        ):
            values: list[float] = getattr(self, name)
            out[name.replace("_ms", "_p50_ms")] = round(percentile(values, 0.5), 3)
            out[name.replace("_ms", "_p95_ms")] = round(percentile(values, 0.95), 3)
        return out


def log_line(summary: dict[str, float | int | str], language: str, budget: int) -> str:
    """The report's one line about keystrokes (``summary`` is ``KeystrokeReport.summary()``)."""
    k = summary
    return (
        f"keystrokes on a {k['lines']}-line {language} file ({k['keystrokes']} keystrokes,"
        f" budget {budget}): tree update (apply_edit) p50 {k['edit_p50_ms']} / p95"
        f" {k['edit_p95_ms']} ms ({k['edits_over_5ms']} over 5 ms, max {k['edit_max_ms']} ms),"
        f" of which line index p50 {k['lines_p50_ms']} / p95 {k['lines_p95_ms']} ms;"
        f" {k['deferred_parses']} re-parses finished in the background (p50"
        f" {k['deferred_p50_ms']} / max {k['deferred_max_ms']} ms), {k['stale_contexts']}"
        f" contexts on the edited previous tree; context.py p50 {k['context_p50_ms']} / p95"
        f" {k['context_p95_ms']} ms; cross-file p50 {k['crossfile_p50_ms']} / p95"
        f" {k['crossfile_p95_ms']} ms (recomputed: p50 {k['recomputed_p50_ms']} / p95"
        f" {k['recomputed_p95_ms']} ms); activity p95 {k['activity_p95_ms']} ms; chunk list"
        f" changed on {k['chunk_list_changes']} keystrokes ({k['chunk_list_changes_after_enter']}"
        f" after Enter); {k['memo_hits']} answered from the memo. Unclosed quote:"
        f" {k['unclosed_keystrokes']} keystrokes, apply_edit p50 {k['unclosed_edit_p50_ms']} /"
        f" p95 {k['unclosed_edit_p95_ms']} / max {k['unclosed_edit_max_ms']} ms, background"
        f" re-parse p50 {k['unclosed_deferred_p50_ms']} / max"
        f" {k['unclosed_deferred_max_ms']} ms, {k['unclosed_stale_contexts']} contexts on the"
        f" edited previous tree, context.py p95 {k['unclosed_context_p95_ms']} ms"
    )


def big_file(index: WorkspaceIndex, language: str, lines: int) -> tuple[str, str] | None:
    """A file of at least ``lines`` lines made of the repository's own files, and its path."""
    paths = [p for p in index.paths() if (e := index.get(p)) and e.language == language]
    if not paths:
        return None
    paths.sort(key=lambda p: -(index.get(p).size if index.get(p) else 0))  # type: ignore[union-attr]
    parts: list[str] = []
    total = 0
    while total < lines:
        for path in paths:
            text = read_source(index.root, path)
            if text:
                parts.append(text.rstrip("\n") + "\n\n")
                total += text.count("\n") + 2
            if total >= lines:
                break
    spec = languages.spec_for(paths[0])
    extension = spec.extensions[0] if spec else ".txt"
    directory = paths[0].rsplit("/", 1)[0] + "/" if "/" in paths[0] else ""
    return "".join(parts), f"{directory}codenook_keystrokes{extension}"


def type_on_big_file(
    index: WorkspaceIndex, language: str, lines: int, budget: int, count: TokenCounter
) -> KeystrokeReport | None:
    """At several places of a big file, press Enter below a line of code and type that line
    again, keystroke by keystroke, with brackets and quotes auto-closed as editors do."""
    made = big_file(index, language, lines)
    if made is None:
        return None
    text, path = made
    index.update_file(path, text)  # the warm index knows the file, as the server's would
    document = Document(path_to_uri(os.path.join(index.root, path)), text, 1)
    activity = Activity()
    memo = ContextMemo()
    line_count = text.count("\n") + 1
    report = KeystrokeReport(path, line_count, 0)
    previous: tuple[object, ...] | None = None
    version = 1
    hits = 0
    try:
        for fraction in POSITIONS:
            document = Document(
                path_to_uri(os.path.join(index.root, path)), text, 1
            )  # each place afresh
            row = _code_row(document.text, int(line_count * fraction))
            if row is None:
                continue
            source_line = document.lines.line_text(row).strip()[:60]
            indent = document.lines.line_text(row)
            indent = indent[: len(indent) - len(indent.lstrip())]
            column = len(document.lines.line_text(row))
            line = row
            closers: list[str] = []  # what the editor's auto-pairing put after the cursor
            for piece in ["\n" + indent, *source_line]:
                version += 1
                started = time.perf_counter()
                if closers and piece == closers[-1]:
                    closers.pop()  # typing over the auto-inserted closer: only the cursor moves
                    edited = time.perf_counter()
                    lines_ms = 0.0
                else:
                    inserted = piece + _PAIRS.get(piece, "")
                    before = document.lines
                    document.apply_edit(
                        (line, column), (line, column), inserted, Encoding.UTF32, version
                    )
                    edited = time.perf_counter()
                    lines_ms = _line_index_ms(before, document.lines, line, column, inserted)
                    if piece in _PAIRS:
                        closers.append(_PAIRS[piece])
                indexed = time.perf_counter()
                if piece.startswith("\n"):
                    first, new_last = line, line + 1
                    line, column = line + 1, len(indent)
                else:
                    first, new_last = line, line
                    column += len(piece)
                snapshot = document.snapshot()
                activity.record_edit(path, snapshot.lines, first, first, new_last)
                recorded = time.perf_counter()
                parsing = _debounce(document)
                snapshot = document.snapshot()
                report.stale += snapshot.tree_stale
                contexted = time.perf_counter()
                offset = snapshot.lines.line_start(line) + column
                ctx = build_completion_context(snapshot, offset, Budget(), count, path)
                context_ms = (time.perf_counter() - contexted) * 1000
                contexted = time.perf_counter()
                window = (ctx.window_start_line, ctx.cursor_line + ctx.suffix.count("\n"))
                entry = index.get(path)  # the server passes the open file's indexed imports
                cross = build_crossfile_context(
                    snapshot,
                    offset,
                    path,
                    index,
                    activity.snapshot(),
                    budget,
                    count,
                    window=window,
                    imports=entry.imports if entry else None,
                    memo=memo,
                )
                ended = time.perf_counter()
                _finish_parse(document, parsing, report.deferred_ms)
                report.keystrokes += 1
                report.edit_ms.append((edited - started) * 1000)
                report.lines_ms.append(lines_ms)
                report.activity_ms.append((recorded - indexed) * 1000)
                report.context_ms.append(context_ms)
                report.crossfile_ms.append((ended - contexted) * 1000)
                if memo.hits == hits:
                    report.recomputed_ms.append((ended - contexted) * 1000)
                hits = memo.hits
                key = tuple((c.path, c.text) for c in cross.chunks)
                if previous is not None and key != previous:
                    report.changed += 1
                    if piece.startswith("\n"):
                        report.line_changes += 1
                previous = key
            previous = None  # moving elsewhere is allowed to change the chunks
            version = _type_unclosed(document, line, indent, version, count, path, report)
    finally:
        index.remove_file(path)
    report.memo_hits = memo.hits
    return report


def _line_index_ms(
    before: LineIndex, after: LineIndex, line: int, column: int, inserted: str
) -> float:
    """The line index's share of an edit, timed by updating the old index again (apply_edit
    does it once, inside its own time)."""
    offset = before.line_start(line) + column
    started = time.perf_counter()
    before.edited(offset, offset, inserted, after.rope)
    return (time.perf_counter() - started) * 1000


def _debounce(document: Document) -> float | None:
    """Wait as the editor's debounce would, but no longer than the background re-parse;
    when that re-parse started (None: there is none)."""
    if not document.parse_pending:
        return None
    started = time.perf_counter()
    document.finish_parse(DEBOUNCE_S)
    return started


def _finish_parse(document: Document, started: float | None, into: list[float]) -> None:
    """Wait for the background re-parse; its time since the keystroke."""
    if started is not None:
        document.finish_parse()
        into.append((time.perf_counter() - started) * 1000)


def _type_unclosed(
    document: Document,
    line: int,
    indent: str,
    version: int,
    count: TokenCounter,
    path: str,
    report: KeystrokeReport,
) -> int:
    """Below ``line``, type ``UNCLOSED_LINE`` with no auto-closing: from its opening quote to
    its closing one, the rest of the file is a string; the last version used."""
    column = len(document.lines.line_text(line))
    for piece in ["\n" + indent, *UNCLOSED_LINE]:
        version += 1
        started = time.perf_counter()
        document.apply_edit((line, column), (line, column), piece, Encoding.UTF32, version)
        edited = time.perf_counter()
        if piece.startswith("\n"):
            line, column = line + 1, len(indent)
        else:
            column += len(piece)
        parsing = _debounce(document)
        snapshot = document.snapshot()
        report.unclosed_stale += snapshot.tree_stale
        offset = snapshot.lines.line_start(line) + column
        contexted = time.perf_counter()
        build_completion_context(snapshot, offset, Budget(), count, path)
        report.unclosed_context_ms.append((time.perf_counter() - contexted) * 1000)
        report.unclosed_edit_ms.append((edited - started) * 1000)
        _finish_parse(document, parsing, report.unclosed_deferred_ms)
    return version


def _code_row(text: str, near: int) -> int | None:
    """A line at or after ``near`` holding an indented statement, to type again below it."""
    lines = text.split("\n")
    for row in range(near, min(len(lines) - 1, near + 2000)):
        line = lines[row]
        if line.startswith((" ", "\t")) and line.strip() and lines[row + 1].strip():
            stripped = line.strip()
            if (
                not stripped.startswith(("#", "//", "/*", "*", "@", "--", '"', "'"))
                and not stripped.endswith(("(", "[", "{", ",", "\\", ":"))
                and '"""' not in stripped
                and "'''" not in stripped
            ):
                return row
    return None
