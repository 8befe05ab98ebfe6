"""The workspace side of completion context: indexes, activity and memo across requests.

``WorkspaceContext`` is what the LSP layer feeds with workspace and document events and what
the completion pipeline asks for cross-file chunks. It owns one ``WorkspaceIndex`` per
workspace folder (each built on a thread of its own), the ``Activity`` rings and the
``ContextMemo``. Everything but the builds runs on the caller's thread (the event loop); no
LSP types here. What runs there reads files only through ``files.read_source``, which never
blocks (regular files only, opened non-blocking), and a burst of file events (a branch
switch) is indexed on a thread of its own rather than parsed file after file on the loop.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Sequence

from codenook.completion.context import CompletionContext
from codenook.text.documents import Snapshot
from codenook.uris import display_path, fs_path
from codenook.workspace.activity import Activity
from codenook.workspace.crossfile import (
    ContextMemo,
    CrossFileContext,
    TokenCounter,
    build_crossfile_context,
)
from codenook.workspace.index import (
    DEFAULT_MAX_DEFINITIONS,
    DEFAULT_MAX_FILE_BYTES,
    DEFAULT_MAX_FILES,
    BuildStats,
    Definition,
    WorkspaceIndex,
)
from codenook.workspace.index.files import exclude_for, set_exclude
from codenook.workspace.references import definitions_for, snapshot_imports

# (root path, files done, files in all); called from an index-building thread.
BuildProgress = Callable[[str, int, int], None]
# (root path, stats when done or None when it failed, the error); from that thread too.
BuildDone = Callable[[str, BuildStats | None, BaseException | None], None]
# Run a function after a delay on the owner's thread; returns something with cancel().
Scheduler = Callable[[float, Callable[[], None]], object]

FILE_EVENTS_ON_LOOP = 16  # more files changed on disk at once are indexed on a thread


class WorkspaceContext:
    def __init__(
        self,
        *,
        enabled: bool = True,
        max_file_bytes: int = DEFAULT_MAX_FILE_BYTES,
        max_files: int = DEFAULT_MAX_FILES,
        max_definitions: int = DEFAULT_MAX_DEFINITIONS,
        exclude: Sequence[str] = (),
        update_delay_s: float = 1.0,
        workers: int | None = None,
        schedule: Scheduler | None = None,
        document: Callable[[str], Snapshot | None] | None = None,
        on_progress: BuildProgress | None = None,
        on_done: BuildDone | None = None,
    ) -> None:
        self.enabled = enabled
        self.indexes: dict[str, WorkspaceIndex] = {}  # root path -> index
        self.max_file_bytes = max_file_bytes
        self.max_files = max_files
        self.max_definitions = max_definitions
        self._exclude = tuple(exclude)  # index.exclude
        self.update_delay_s = update_delay_s
        self.workers = workers
        self.activity = Activity()
        self.memo = ContextMemo()
        self._schedule = schedule
        self._document = document
        self._on_progress = on_progress
        self._on_done = on_done
        self._cancels: dict[str, threading.Event] = {}
        self._pending: dict[str, object] = {}  # uri -> scheduled index update
        self._updating: list[threading.Thread] = []  # bursts of file events being indexed

    # -- limits: a settings change applies to the indexes already built, for the next
    # update or build (a folder that stopped at index.maxFiles is not rebuilt by itself) --

    @property
    def max_file_bytes(self) -> int:
        return self._max_file_bytes

    @max_file_bytes.setter
    def max_file_bytes(self, value: int) -> None:
        self._max_file_bytes = value
        for index in self.indexes.values():
            index.max_file_bytes = value

    @property
    def max_files(self) -> int:
        return self._max_files

    @max_files.setter
    def max_files(self, value: int) -> None:
        self._max_files = value
        for index in self.indexes.values():
            index.max_files = value

    @property
    def max_definitions(self) -> int:
        return self._max_definitions

    @max_definitions.setter
    def max_definitions(self, value: int) -> None:
        self._max_definitions = value
        for index in self.indexes.values():
            index.max_definitions = value

    @property
    def exclude(self) -> tuple[str, ...]:
        return self._exclude

    @exclude.setter
    def exclude(self, value: Sequence[str]) -> None:
        """index.exclude changed: the folders are indexed again (files it no longer excludes
        are found only by a new listing)."""
        value = tuple(value)
        if value == self._exclude:
            return
        self._exclude = value
        roots = list(self.indexes)
        for root in roots:
            self._cancels.pop(root).set()
            del self.indexes[root]
        self.set_folders(roots)

    def _excluded(self, index: WorkspaceIndex, rel: str) -> bool:
        return exclude_for(index.root).excluded(rel)

    # -- workspace folders --

    def set_folders(self, roots: list[str]) -> None:
        """Index the folders (URIs or paths) not indexed yet; forget the ones gone."""
        paths = (fs_path(root) for root in roots) if self.enabled else ()
        wanted = {path for path in paths if path is not None}
        for root in list(self.indexes):
            if root not in wanted:
                self._cancels.pop(root).set()
                del self.indexes[root]
        for root in sorted(wanted - set(self.indexes)):
            if not os.path.isdir(root):
                continue
            set_exclude(root, self._exclude)
            index = WorkspaceIndex(
                root,
                max_file_bytes=self.max_file_bytes,
                max_files=self.max_files,
                max_definitions=self.max_definitions,
            )
            self.indexes[root] = index
            cancel = self._cancels[root] = threading.Event()
            threading.Thread(
                target=self._build,
                args=(root, index, cancel),
                name="codenook-index-build",
                daemon=True,
            ).start()

    def _build(self, root: str, index: WorkspaceIndex, cancel: threading.Event) -> None:
        def progress(done: int, total: int) -> None:
            if self._on_progress is not None and not cancel.is_set():
                self._on_progress(root, done, total)

        try:
            stats = index.build(workers=self.workers, progress=progress, cancel=cancel)
        except Exception as exc:  # a broken folder must not take the server down
            if self._on_done is not None:
                self._on_done(root, None, exc)
            return
        if self._on_done is not None and not cancel.is_set():
            self._on_done(root, stats, None)

    def close(self) -> None:
        for cancel in self._cancels.values():
            cancel.set()
        for handle in self._pending.values():
            _cancel(handle)
        self._pending.clear()

    def index_for(self, uri: str) -> tuple[WorkspaceIndex, str] | None:
        """The index of the folder holding ``uri`` (the innermost one) and the file's path
        relative to it."""
        best: tuple[WorkspaceIndex, str] | None = None
        for index in self.indexes.values():
            rel = index.relative(uri)
            if rel is not None and (best is None or len(index.root) > len(best[0].root)):
                best = (index, rel)
        return best

    def _relative(self, uri: str) -> str:
        found = self.index_for(uri)
        return found[1] if found else display_path(uri, ())

    # -- document events --

    def opened(self, uri: str, snapshot: Snapshot) -> None:
        """A file was opened: its beginning counts as visited."""
        self.activity.record_visit(self._relative(uri), snapshot.lines, 0)

    def changed(
        self, uri: str, snapshot: Snapshot, first: int, old_last: int, new_last: int
    ) -> None:
        """After one applied change that replaced lines ``first..old_last`` by
        ``first..new_last``: a recent edit, and an index update once the user pauses."""
        self.activity.record_edit(self._relative(uri), snapshot.lines, first, old_last, new_last)
        self._update_later(uri)

    def replaced(self, uri: str) -> None:
        """The whole text was replaced (a full-document change)."""
        self._update_later(uri)

    def visited(self, uri: str, snapshot: Snapshot, line: int) -> None:
        """The user looked at ``line`` (a hover, the last completion place before leaving)."""
        self.activity.record_visit(self._relative(uri), snapshot.lines, line)

    def saved(self, uri: str) -> None:
        self._update_now(uri)

    def closed(self, uri: str) -> None:
        """Unsaved edits are gone with the editor's buffer: index the file from disk."""
        _cancel(self._pending.pop(uri, None))
        found = self.index_for(uri)
        if found is not None:
            index, rel = found
            if os.path.isfile(os.path.join(index.root, rel)) and not self._excluded(index, rel):
                index.update_file(rel)
            else:
                index.remove_file(rel)

    def files_changed(self, events: list[tuple[str, str]], is_open: Callable[[str], bool]) -> None:
        """Files created, changed or deleted on disk (``(uri, "created"|"changed"|"deleted")``);
        open documents are the editor's business and are left alone. Up to
        ``FILE_EVENTS_ON_LOOP`` files are re-read here, more on a thread of their own."""
        updates: list[tuple[WorkspaceIndex, str]] = []
        for uri, kind in events:
            found = self.index_for(uri)
            if found is None or (kind != "deleted" and is_open(uri)):
                continue
            index, rel = found
            if kind == "deleted":
                index.remove_file(rel)
                self.activity.forget(rel)
            elif not self._excluded(index, rel):
                updates.append(found)
        if len(updates) <= FILE_EVENTS_ON_LOOP:
            for index, rel in updates:
                index.update_file(rel)
            return
        self._updating = [thread for thread in self._updating if thread.is_alive()]
        thread = threading.Thread(
            target=self._update_from_disk,
            args=(updates,),
            name="codenook-index-update",
            daemon=True,
        )
        self._updating.append(thread)
        thread.start()

    def _update_from_disk(self, updates: list[tuple[WorkspaceIndex, str]]) -> None:
        for index, rel in updates:
            if any(open_ is index for open_ in self.indexes.values()):  # still open
                index.update_file(rel)

    def wait_updates(self, timeout: float | None = None) -> bool:
        """Wait for the bursts of file events being indexed; whether they are done."""
        for thread in list(self._updating):
            thread.join(timeout)
        return not any(thread.is_alive() for thread in self._updating)

    def _update_later(self, uri: str) -> None:
        if self._schedule is None:
            return
        _cancel(self._pending.pop(uri, None))
        self._pending[uri] = self._schedule(self.update_delay_s, lambda: self._update_now(uri))

    def _update_now(self, uri: str) -> None:
        _cancel(self._pending.pop(uri, None))
        found = self.index_for(uri)
        snapshot = self._document(uri) if self._document is not None else None
        if found is None or snapshot is None:
            return
        index, rel = found
        if self._excluded(index, rel):
            return
        # A stale tree (its re-parse still running off the keystroke path) has the older
        # text's structure: the index parses the text itself instead.
        fresh = snapshot.tree is not None and not snapshot.tree_stale
        tree = snapshot.tree.copy() if fresh and snapshot.tree is not None else None
        index.update_file(rel, snapshot.text, tree)

    # -- completions --

    def crossfile(
        self,
        snapshot: Snapshot,
        offset: int,
        ctx: CompletionContext,
        budget: int,
        count: TokenCounter,
    ) -> CrossFileContext:
        """Chunks from the rest of the workspace for a completion whose own context is ``ctx``
        (``count`` should be a ``CachedCounter``: chunks repeat between keystrokes)."""
        if budget <= 0:
            return CrossFileContext()
        found = self.index_for(snapshot.uri) if self.enabled else None
        index, path = found if found is not None else (None, ctx.path)
        entry = index.get(path) if index is not None else None
        return build_crossfile_context(
            snapshot,
            offset,
            path,
            index,
            self.activity.snapshot(),
            budget,
            count,
            window=(ctx.window_start_line, ctx.cursor_line + ctx.suffix.count("\n")),
            imports=entry.imports if entry is not None else None,
            memo=self.memo,
        )

    def definitions(self, snapshot: Snapshot, name: str) -> list[Definition]:
        """Definitions in other files of a name used in ``snapshot`` (their paths relative
        to the folder), resolved as the cross-file context resolves it: for a hover."""
        found = self.index_for(snapshot.uri) if self.enabled else None
        if found is None:
            return []
        index, path = found
        entry = index.get(path)
        imports = entry.imports if entry is not None else snapshot_imports(snapshot)
        return definitions_for(name, index, path, imports, snapshot.language_name)

    def status(self) -> dict[str, object]:
        """Per folder: state, files and definitions, for ``codenook/stats``."""
        return {
            root: {
                "state": index.state,
                "files": len(index),
                "definitions": index.definition_count,
                "seconds": round(index.stats.seconds, 2),
                **({"stopped": index.stats.stopped} if index.stats.stopped else {}),
            }
            for root, index in self.indexes.items()
        }


def _cancel(handle: object) -> None:
    cancel = getattr(handle, "cancel", None)
    if cancel is not None:
        cancel()
