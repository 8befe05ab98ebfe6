"""The index of one workspace folder: every definition of its source files, kept current.

A completion asks it for definitions by name, a file's members and what an import names,
on the event loop and on every keystroke, while a build may still be filling it on a
background thread (its parsing perhaps fanned out to worker processes, see ``worker``).
Entries are immutable and swapped in under a lock held for microseconds, so readers see each
file either before or after an update, never half of it, and never wait for a parse.
"""

from __future__ import annotations

import contextlib
import os
import posixpath
import re
import subprocess
import threading
import time
from collections.abc import Callable

from tree_sitter import Tree

import codenook.workspace.index.worker as worker_process
from codenook.uris import fs_path, is_uri
from codenook.workspace.index.extract import extract, index_file, index_files
from codenook.workspace.index.files import is_source_name, list_source_files, read_source
from codenook.workspace.index.model import BuildStats, Definition, FileEntry, Import, Skipped
from codenook.workspace.index.resolve import module_candidates

DEFAULT_MAX_FILE_BYTES = 1024 * 1024
# The index's memory is its definitions: about 1 KB each (measured on /usr: 25,091 files,
# 966,188 definitions, 1.1 GB), so these bound it to a few hundred MB.
DEFAULT_MAX_FILES = 20_000
DEFAULT_MAX_DEFINITIONS = 300_000
LISTING_FACTOR = 2  # names listed per file indexed at most: some are skipped when read
BATCH_FILES = 8  # files per request to an indexing worker process
REEXPORT_DEPTH = 3  # re-export steps followed from an imported file at most
MAX_GO_MOD_BYTES = 256 * 1024

_GO_MODULE_LINE = re.compile(r"^\s*module\s+\"?([^\s\"/]+(?:/[^\s\"]*)?)\"?", re.M)

Progress = Callable[[int, int], None]


class WorkspaceIndex:
    """Definitions and imports of one workspace folder, readable from any thread."""

    def __init__(
        self,
        root: str | os.PathLike[str],
        *,
        max_file_bytes: int = DEFAULT_MAX_FILE_BYTES,
        max_files: int = DEFAULT_MAX_FILES,
        max_definitions: int = DEFAULT_MAX_DEFINITIONS,
    ):
        self.root = os.path.abspath(os.fspath(root))
        self.root_name = os.path.basename(self.root.rstrip(os.sep))
        self.max_file_bytes = max_file_bytes
        self.max_files = max_files  # files the index holds at most (index.maxFiles)
        self.max_definitions = max_definitions  # and definitions (index.maxDefinitions)
        self._lock = threading.Lock()
        self._files: dict[str, FileEntry] = {}
        self._definition_count = 0
        self._by_name: dict[str, dict[str, tuple[Definition, ...]]] = {}
        self._by_basename: dict[str, set[str]] = {}
        self._dirs: dict[str, set[str]] = {}
        self._members: dict[str, dict[str, tuple[Definition, ...]]] = {}  # path -> parent -> defs
        self._resolved: dict[tuple[str, str, str], tuple[str, ...]] = {}
        # Re-exports followed, by (files, name, style) and (file, style); cleared on any change.
        self._followed: dict[tuple[tuple[str, ...], str, str], tuple[tuple[str, str], ...]] = {}
        self._passed_on: dict[tuple[str, str], tuple[tuple[str, ...], tuple[str, ...]]] = {}
        self._go_modules: dict[str, tuple[str, str] | None] = {}  # directory -> its go.mod
        self.generation = 0  # bumped by every change
        self.state = "empty"  # "building" while a build runs, then "ready"
        self.stats = BuildStats()

    # -- paths --

    def relative(self, path_or_uri: str) -> str | None:
        """The workspace-relative path of a file path or URI: how the index names files.
        None outside the folder, and for a URI that names no file (``untitled:``)."""
        path = fs_path(path_or_uri)
        if path is None:
            return None
        if path != self.root and not path.startswith(self.root.rstrip(os.sep) + os.sep):
            return None
        return os.path.relpath(path, self.root).replace(os.sep, "/")

    # -- building --

    def build(
        self,
        *,
        workers: int | None = None,
        progress: Progress | None = None,
        cancel: threading.Event | None = None,
    ) -> BuildStats:
        """Index every source file of the workspace; call on a background thread.

        ``workers`` worker processes parse in parallel (None: one per core, at most 4, for
        workspaces of 300 files or more, none for smaller ones; 0: parse on this thread).
        Entries become readable as they arrive; ``progress(done, total)`` is called after
        each batch of ``BATCH_FILES`` files, from this thread or a worker's driving thread.
        The build stops adding files at ``max_files`` files or ``max_definitions``
        definitions, and says so in ``BuildStats.stopped``.
        """
        started = time.perf_counter()
        self.state = "building"
        self._go_modules = {}
        limit = self.max_files * LISTING_FACTOR
        paths, listing = list_source_files(self.root, limit)
        stats = BuildStats(listing=listing)
        if workers is None:
            workers = min(4, os.cpu_count() or 1) if len(paths) >= 300 else 0
        stats.workers = workers
        seen: set[str] = set()
        done = 0

        def take(batch: list[str], results: list[FileEntry | str]) -> None:
            nonlocal done
            for path, result in zip(batch, results, strict=True):
                if isinstance(result, FileEntry):
                    refused = self._put(result)
                    if refused:
                        stats.stopped = stats.stopped or refused
                        continue
                    seen.add(path)
                    stats.files += 1
                    stats.definitions += len(result.definitions)
                else:
                    reason = "error" if result.startswith("error") else result
                    stats.skipped[reason] = stats.skipped.get(reason, 0) + 1
            done += len(batch)
            if progress is not None:
                progress(done, len(paths))

        def stop() -> bool:
            return bool(stats.stopped) or (cancel is not None and cancel.is_set())

        batches = [paths[i : i + BATCH_FILES] for i in range(0, len(paths), BATCH_FILES)]
        if workers > 0 and len(batches) > 1:
            stats.workers = self._build_in_workers(batches, workers, take, stop)
        else:
            stats.workers = 0
            for batch in batches:
                if stop():
                    break
                take(batch, index_files(self.root, batch, self.max_file_bytes))
        if len(paths) >= limit and not stats.stopped:
            stats.stopped = f"index.maxFiles; listing stopped at {limit} names"
        if cancel is None or not cancel.is_set():
            with self._lock:
                stale = [path for path in self._files if path not in seen]
            for path in stale:
                self.remove_file(path)
        stats.seconds = time.perf_counter() - started
        self.stats = stats
        self.state = "ready"
        return stats

    def _build_in_workers(
        self,
        batches: list[list[str]],
        workers: int,
        take: Callable[[list[str], list[FileEntry | str]], None],
        stop: Callable[[], bool],
    ) -> int:
        """Parse the batches in worker processes (see ``worker``).

        Each worker is driven by a thread of its own that sends one batch, waits for its
        entries (without holding the interpreter lock) and hands them to ``take``, until
        ``stop()``. A worker that fails leaves its batches to this process. Returns the
        workers that ran.
        """
        pending = list(reversed(batches))
        lock = threading.Lock()

        def next_batch() -> list[str] | None:
            with lock:
                if not pending or stop():
                    return None
                return pending.pop()

        def drive(worker: subprocess.Popen[bytes] | None) -> None:
            while (batch := next_batch()) is not None:
                results: list[FileEntry | str] | None = None
                if worker is not None:
                    try:
                        results = worker_process.ask_worker(worker, batch)
                    except Exception:  # a broken worker: this process takes over its work
                        worker.kill()
                        worker = None
                if results is None:
                    results = index_files(self.root, batch, self.max_file_bytes)
                with lock:
                    take(batch, results)

        processes = [
            worker_process.start_worker(self.root, self.max_file_bytes) for _ in range(workers)
        ]
        threads = [
            threading.Thread(target=drive, args=(p,), name="codenook-index", daemon=True)
            for p in processes
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        for process in processes:
            if process is not None:
                with contextlib.suppress(OSError):
                    process.stdin.close()  # type: ignore[union-attr]
                try:
                    process.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    process.kill()
        return sum(1 for p in processes if p is not None)

    # -- incremental updates --

    def update_file(
        self, path: str, text: str | None = None, tree: Tree | None = None
    ) -> FileEntry | None:
        """Re-index one file from ``text`` (and its current tree, when the caller has one),
        or from disk when ``text`` is None. A file the index must skip is removed; a new
        file is not added once the index holds ``max_files`` files or ``max_definitions``
        definitions. Reading from disk never blocks (see ``files.read_source``)."""
        rel = self.relative(path) if os.path.isabs(path) or is_uri(path) else path
        if rel is None or not is_source_name(rel):
            return None
        try:
            if text is None:
                entry = index_file(self.root, rel, self.max_file_bytes)
            else:
                data = text.encode("utf-8")
                if len(data) > self.max_file_bytes:
                    raise Skipped("huge")
                if "\x00" in text:
                    raise Skipped("binary")
                found = extract(rel, text, tree)
                if found is None:
                    raise Skipped("no grammar")
                entry = found
        except Skipped:
            self.remove_file(rel)
            return None
        if self._put(entry):
            return None
        return entry

    def remove_file(self, path: str) -> None:
        rel = self.relative(path) if os.path.isabs(path) or is_uri(path) else path
        if rel is None:
            return
        with self._lock:
            old = self._files.pop(rel, None)
            if old is None:
                return
            self._unlink(old)
            self._definition_count -= len(old.definitions)
            self._members.pop(rel, None)
            self._by_basename.get(posixpath.basename(rel), set()).discard(rel)
            self._dirs.get(posixpath.dirname(rel), set()).discard(rel)
            self._resolved.clear()
            self._followed.clear()
            self._passed_on.clear()
            self.generation += 1

    def _put(self, entry: FileEntry) -> str:
        """Store ``entry``; returns "" or, when it is a new file the limits leave out, the
        setting that does."""
        with self._lock:
            old = self._files.get(entry.path)
            if old is None:
                if len(self._files) >= self.max_files:
                    return "index.maxFiles"
                if self._definition_count + len(entry.definitions) > self.max_definitions:
                    return "index.maxDefinitions"
            if old is not None:
                self._unlink(old)
                self._definition_count -= len(old.definitions)
            else:
                self._by_basename.setdefault(posixpath.basename(entry.path), set()).add(entry.path)
                self._dirs.setdefault(posixpath.dirname(entry.path), set()).add(entry.path)
                self._resolved.clear()
            self._files[entry.path] = entry
            self._followed.clear()
            self._passed_on.clear()
            grouped: dict[str, list[Definition]] = {}
            children: dict[str, list[Definition]] = {}
            for definition in entry.definitions:
                grouped.setdefault(definition.name, []).append(definition)
                if definition.parent:
                    children.setdefault(definition.parent, []).append(definition)
            for name, defs in grouped.items():
                self._by_name.setdefault(name, {})[entry.path] = tuple(defs)
            self._members[entry.path] = {k: tuple(v) for k, v in children.items()}
            self._definition_count += len(entry.definitions)
            self.generation += 1
        return ""

    def _unlink(self, old: FileEntry) -> None:
        for name in {d.name for d in old.definitions}:
            paths = self._by_name.get(name)
            if paths is not None:
                paths.pop(old.path, None)
                if not paths:
                    del self._by_name[name]

    # -- reading --

    def __len__(self) -> int:
        return len(self._files)

    @property
    def definition_count(self) -> int:
        """Definitions the index holds (what its memory grows with)."""
        return self._definition_count

    def get(self, path: str) -> FileEntry | None:
        return self._files.get(path)

    def paths(self) -> list[str]:
        with self._lock:
            return sorted(self._files)

    def definitions(self, name: str) -> tuple[Definition, ...]:
        """Every definition named ``name``, ordered by path then line."""
        with self._lock:
            paths = self._by_name.get(name)
            if not paths:
                return ()
            items = sorted(paths.items())
        return tuple(d for _, defs in items for d in defs)

    def count(self, name: str) -> int:
        """How many files define ``name``."""
        paths = self._by_name.get(name)
        return len(paths) if paths else 0

    def members(self, path: str, parent: str) -> tuple[Definition, ...]:
        """The definitions of ``path`` whose parent is ``parent`` (a class's methods)."""
        return self._members.get(path, {}).get(parent, ())

    def directory_files(self, directory: str) -> tuple[str, ...]:
        with self._lock:
            return tuple(sorted(self._dirs.get(directory, ())))

    def resolve(self, importer: str, module: str, style: str) -> tuple[str, ...]:
        """The workspace files an import of ``module`` in file ``importer`` names."""
        if not style or not module:
            return ()
        key = (posixpath.dirname(importer), module, style)
        cached = self._resolved.get(key)
        if cached is not None:
            return cached
        found: list[str] = []
        go_module = self.go_module(posixpath.dirname(importer)) if style == "go" else None
        for candidate in module_candidates(style, module, importer, self.root_name, go_module):
            found = self._match(candidate)
            if found:
                break
        result = tuple(p for p in found if p != importer)
        with self._lock:
            self._resolved[key] = result
        return result

    def _match(self, candidate: str) -> list[str]:
        with self._lock:
            if candidate.startswith("./"):
                path = posixpath.normpath(candidate[2:])
                if path.startswith("../") or path == "..":
                    return []
                if path == ".":
                    path = ""
                if candidate.endswith("/"):
                    return sorted(self._dirs.get(path, ()))
                return [path] if path in self._files else []
            if candidate.endswith("/"):
                suffix = candidate.rstrip("/")
                hits = [
                    d
                    for d in self._dirs
                    if (d == suffix or d.endswith("/" + suffix)) and self._dirs[d]
                ]
                return sorted(p for d in sorted(hits)[:1] for p in self._dirs[d])
            paths = self._by_basename.get(posixpath.basename(candidate), ())
            return sorted(p for p in paths if p == candidate or p.endswith("/" + candidate))

    # -- Go modules --

    def go_module(self, directory: str) -> tuple[str, str] | None:
        """The Go module of a workspace directory: the directory of the nearest ``go.mod``
        at or above it (inside the workspace) and the path on its ``module`` line. Read
        once per directory and build (``read_source``: a FIFO named go.mod never blocks)."""
        known = self._go_modules
        walked: list[str] = []
        current = directory
        while True:
            if current in known:
                found = known[current]
                break
            walked.append(current)
            found = self._read_go_mod(current)
            if found is not None or not current:
                break
            current = posixpath.dirname(current)
        for each in walked:
            known[each] = found
        return found

    def _read_go_mod(self, directory: str) -> tuple[str, str] | None:
        rel = posixpath.join(directory, "go.mod")
        try:
            text, _ = read_source(self.root, rel, MAX_GO_MOD_BYTES)
        except (Skipped, OSError, ValueError):
            return None
        match = _GO_MODULE_LINE.search(text)
        return (directory, match.group(1).rstrip("/")) if match else None

    # -- re-exports --

    def follow(self, files: tuple[str, ...], name: str, style: str) -> tuple[tuple[str, str], ...]:
        """Where ``name``, imported from ``files``, is defined: ``(path, name there)`` pairs,
        following re-exports (Python's imports in a module, ``export ... from`` in a
        TypeScript/JavaScript barrel, Rust's ``pub use``; wildcards and ``X as Y``) at most
        ``REEXPORT_DEPTH`` steps, cycles stopped. The files that define it themselves come
        back as they are; empty when no file is found to define it."""
        key = (files, name, style)
        cached = self._followed.get(key)
        if cached is not None:
            return cached
        seen: set[tuple[str, str]] = set()
        found: list[tuple[str, str]] = []
        for path in files:
            found += self._follow(path, name, style, 0, seen)
        result = tuple(dict.fromkeys(found))
        with self._lock:
            self._followed[key] = result
        return result

    def _defines(self, path: str, name: str) -> bool:
        defs = self._by_name.get(name, {}).get(path, ())
        return any(not d.parent for d in defs)

    def _follow(
        self, path: str, name: str, style: str, depth: int, seen: set[tuple[str, str]]
    ) -> list[tuple[str, str]]:
        if (path, name) in seen:
            return []
        seen.add((path, name))
        if self._defines(path, name):
            return [(path, name)]
        entry = self._files.get(path)
        if entry is None or depth >= REEXPORT_DEPTH:
            return []
        found: list[tuple[str, str]] = []
        for item in entry.imports:
            passed = _passed_names(item, style)
            if not passed:
                continue
            original = next((o for o, alias in item.aliases if alias == name), None)
            if original is None or original not in passed:
                original = name if name in passed or "*" in passed else None
            if original is None:
                continue
            for target in self.resolve(path, item.module, style):
                found += self._follow(target, original, style, depth + 1, seen)
            if found:
                break
        return found

    def passed_on(self, path: str, style: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """The files whose definitions ``path`` passes on, following chains at most
        ``REEXPORT_DEPTH`` steps: (wholesale, by a wildcard; by name)."""
        key = (path, style)
        cached = self._passed_on.get(key)
        if cached is not None:
            return cached
        whole: list[str] = []
        named: list[str] = []
        frontier = [path]
        seen = {path}
        for _ in range(REEXPORT_DEPTH):
            following: list[str] = []
            for current in frontier:
                entry = self._files.get(current)
                if entry is None:
                    continue
                for item in entry.imports:
                    passed = _passed_names(item, style)
                    if not passed:
                        continue
                    if "*" not in passed and style == "python" and not _is_package(current):
                        continue  # a module's own imports are rarely its interface
                    for target in self.resolve(current, item.module, style):
                        if target in seen:
                            continue
                        seen.add(target)
                        (whole if "*" in passed else named).append(target)
                        if "*" in passed:
                            following.append(target)
            frontier = following
        result = (tuple(whole), tuple(named))
        with self._lock:
            self._passed_on[key] = result
        return result


def _passed_names(item: Import, style: str) -> tuple[str, ...]:
    """The names an import passes on to whoever imports the importing file."""
    if style == "python":
        return item.names + tuple(alias for _, alias in item.aliases)
    return item.exported + tuple(alias for name, alias in item.aliases if name in item.exported)


def _is_package(path: str) -> bool:
    return posixpath.basename(path) in ("__init__.py", "__init__.pyi")
