"""Recent activity across files: what the user edited and looked at lately.

What the user just touched is the best guess at what they will need next, in whatever file
it is (llama.vim's ring of chunks). Two rings, owned by the event loop: the regions edited
most recently (an edit next to an earlier one grows that region rather than filling the
ring with keystrokes) and the chunks of code visited (opened, hovered, left), near-duplicates
evicted. Completions read an immutable ``ActivitySnapshot``, so a snapshot taken for one
request never changes under it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

NEAR_DUPLICATE = 0.9  # Jaccard similarity above which a new chunk evicts an old one (llama.vim)


class Lines(Protocol):
    """What activity needs of a document's text (``positions.LineIndex`` has it)."""

    @property
    def line_count(self) -> int: ...

    def line_text(self, line: int) -> str: ...


@dataclass(frozen=True)
class RecentChunk:
    """Lines as they were when recorded: the file may have changed since, and a prompt
    shows what the user saw."""

    path: str
    start_line: int
    lines: tuple[str, ...]

    @property
    def end_line(self) -> int:
        return self.start_line + len(self.lines) - 1


@dataclass(frozen=True)
class ActivitySnapshot:
    """Recent edits and visited chunks, most recent first; frozen, so that a completion
    reads one state while the event loop goes on recording."""

    edits: tuple[RecentChunk, ...] = ()
    visits: tuple[RecentChunk, ...] = ()


def line_set(lines: Iterable[str]) -> frozenset[str]:
    """A chunk as llama.vim compares chunks: indentation and blank lines say nothing of
    what code a chunk holds, and a line repeated is no more of it."""
    return frozenset(stripped for line in lines if (stripped := line.strip()))


def jaccard(a: Iterable[str], b: Iterable[str]) -> float:
    """Similarity of two chunks as sets of non-blank stripped lines (llama.vim's measure)."""
    return jaccard_sets(line_set(a), line_set(b))


def jaccard_sets(left: frozenset[str], right: frozenset[str]) -> float:
    """``jaccard`` for a caller comparing one chunk with many: its set is built once."""
    if not left or not right:
        return 0.0
    return len(left & right) / len(left | right)


class Activity:
    """Rings of recently edited regions and recently visited chunks across files.

    Owned by the event loop: the server calls ``record_edit`` after each applied change and
    ``record_visit`` when the user looks at code (opening a file, hovering, leaving a file
    it was completing in); completions read ``snapshot()``.
    """

    def __init__(
        self,
        max_edits: int = 16,
        max_visits: int = 16,
        visit_lines: int = 32,
        edit_context: int = 3,
        max_edit_lines: int = 24,
    ) -> None:
        self.max_edits = max_edits
        self.max_visits = max_visits
        self.visit_lines = visit_lines
        self.edit_context = edit_context
        self.max_edit_lines = max_edit_lines
        self._edits: list[RecentChunk] = []
        self._visits: list[RecentChunk] = []
        self._snapshot: ActivitySnapshot | None = None

    def snapshot(self) -> ActivitySnapshot:
        if self._snapshot is None:
            self._snapshot = ActivitySnapshot(tuple(self._edits), tuple(self._visits))
        return self._snapshot

    def record_edit(
        self, path: str, lines: Lines, first_line: int, old_last_line: int, new_last_line: int
    ) -> None:
        """After a change that replaced lines ``first..old_last`` with ``first..new_last``.

        Edits next to an earlier one (typing along a line, pressing Enter) grow that region
        instead of adding a new one; regions further down the file move with the edit.
        """
        context = self.edit_context
        delta = new_last_line - old_last_line
        start, end = first_line, new_last_line
        kept: list[RecentChunk] = []
        for chunk in self._edits:
            if chunk.path != path or chunk.end_line < first_line - context:
                kept.append(chunk)
            elif chunk.start_line > old_last_line + context:
                kept.append(RecentChunk(path, chunk.start_line + delta, chunk.lines))
            else:  # touching the edit: merged into its region
                start = min(start, chunk.start_line + (context if chunk.start_line else 0))
                if chunk.end_line > old_last_line:
                    end = max(end, chunk.end_line - context + delta)
        start = max(0, start - context)
        end = min(lines.line_count - 1, end + context)
        if end - start + 1 > self.max_edit_lines:  # keep the part at and below this edit
            start = max(start, first_line - context)
            end = min(end, start + self.max_edit_lines - 1)
        text = tuple(lines.line_text(n) for n in range(start, end + 1))
        self._edits = [RecentChunk(path, start, text), *kept][: self.max_edits]
        self._snapshot = None

    def record_visit(self, path: str, lines: Lines, line: int) -> None:
        """The chunk of ``visit_lines`` lines around ``line`` was looked at."""
        half = self.visit_lines // 2
        start = max(0, min(line - half, lines.line_count - self.visit_lines))
        start -= start % 8  # aligned, so visiting nearby lines gives the same chunk
        end = min(lines.line_count, start + self.visit_lines)
        text = tuple(lines.line_text(n) for n in range(start, end))
        if not any(t.strip() for t in text):
            return
        kept = [
            chunk
            for chunk in self._visits
            if not (
                (chunk.path == path and chunk.start_line == start)
                or jaccard(chunk.lines, text) > NEAR_DUPLICATE
            )
        ]
        self._visits = [RecentChunk(path, start, text), *kept][: self.max_visits]
        self._snapshot = None

    def forget(self, path: str) -> None:
        """Drop what was recorded of a deleted file."""
        self._edits = [c for c in self._edits if c.path != path]
        self._visits = [c for c in self._visits if c.path != path]
        self._snapshot = None
