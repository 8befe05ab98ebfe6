"""What the index holds of a file: definitions and imports, never bodies.

Everything here is immutable (but the build's running tally) so that an entry can be swapped
in whole while readers on other threads hold the previous one, and small and picklable so
that worker processes can send entries back cheaply.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Definition:
    """One definition: where it is and the lines a prompt shows for it.

    Lines are kept as ``(0-based line number, text)`` pairs so that lines of several
    definitions of one file can be merged in file order, gaps marked. ``head`` holds the
    signature (decorators included); ``doc`` the doc comments before it or, for a function,
    its docstring; ``fields`` a class-like definition's non-method members. Its methods are
    definitions of their own, with ``parent`` set to the class name.
    """

    name: str
    kind: str
    path: str
    line: int  # the line of the definition's own first token: the "defining signature"
    end_line: int  # last line of the whole definition, body included
    parent: str  # the enclosing or owning definition's name ("" at top level)
    head: tuple[tuple[int, str], ...]  # signature lines
    doc: tuple[tuple[int, str], ...]  # doc comment or docstring lines
    fields: tuple[tuple[int, str], ...] = ()  # class-like: lines of non-method members

    @property
    def signature(self) -> str:
        """The defining line alone, for places with room for one line per definition."""
        for number, text in self.head:
            if number == self.line:
                return text.strip()
        return self.head[0][1].strip() if self.head else self.name


@dataclass(frozen=True)
class Import:
    """One import as written: resolving it to files needs the whole index, so it waits.

    ``names`` are the names taken as the module defines them, ``"*"`` for a wildcard
    (``from m import *``, ``export * from "m"``, ``use m::*``); ``aliases`` pairs a name with
    the one it is bound to (``X as Y``: ``("X", "Y")``); ``exported`` lists the names (``"*"``
    included) that an export statement passes on (``export { X } from``, ``pub use``), which
    is how a TypeScript barrel or a Rust module re-exports. Every name a Python module imports
    is also one of its attributes, so Python needs no ``exported``.
    """

    module: str
    names: tuple[str, ...] = ()
    aliases: tuple[tuple[str, str], ...] = ()
    exported: tuple[str, ...] = ()


@dataclass(frozen=True)
class FileEntry:
    path: str  # workspace-relative, '/'-separated
    language: str
    definitions: tuple[Definition, ...]
    imports: tuple[Import, ...]
    size: int = 0
    mtime_ns: int = 0
    # ERROR and MISSING nodes in the file's tree: its definitions may be incomplete (the
    # index still reads what it can, see ``extract``); 0 for a clean parse.
    parse_errors: int = 0


@dataclass
class BuildStats:
    files: int = 0  # source files indexed
    definitions: int = 0
    skipped: dict[str, int] = field(default_factory=dict)  # reason -> count
    seconds: float = 0.0
    listing: str = ""  # how the files were listed: "walk"
    workers: int = 0
    stopped: str = ""  # the setting that stopped the build before the end ("index.maxFiles")

    def summary(self) -> str:
        skipped = ", ".join(f"{n} {reason}" for reason, n in sorted(self.skipped.items()))
        return (
            f"{self.files} files, {self.definitions} definitions in {self.seconds:.1f} s"
            f" ({self.listing}, {self.workers or 'no'} worker processes)"
            + (f"; skipped: {skipped}" if skipped else "")
            + (
                f"; stopped at {self.files} files ({self.stopped}): the rest of the folder"
                " is not indexed"
                if self.stopped
                else ""
            )
        )


class Skipped(Exception):
    """A file the index leaves out; the reason is counted in ``BuildStats.skipped`` so that
    a user can tell why a file they expected is missing."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason
