r"""Open documents: their text, version and an incrementally edited tree-sitter tree.

The LSP layer feeds every didChange here in order. This copy is the only one codenook reads:
pygls's own copy splits lines the way ``str.splitlines`` does (also at ``\f``, U+2028 and the
like, which LSP does not) and would disagree with the editor. Each change is applied in four
steps: convert the LSP range to offsets in the old text (LSP line breaks only: ``\n``,
``\r\n``, ``\r``), compute the byte edit, splice the text and update the line index from the
edit (never rescanning, joining or encoding the whole text), then tell tree-sitter about the
edit and re-parse with the old tree.

The re-parse is time-boxed (``Document.PARSE_BUDGET_S``, 2 ms): almost every keystroke
re-parses in about a millisecond, but some edits make tree-sitter re-parse the rest of the
file (a line typed inside Python's ``if TYPE_CHECKING:``, 20-30 ms on 10,000 lines; an
opening triple quote without its closer, 100-400 ms). Such a parse is stopped at the budget
and redone from the start on the ``codenook-parse`` thread (``_Reparse``), which catches up
with the edits made meanwhile. Until it is done, the document keeps the last complete tree,
edited so that its positions follow the text, and says so (``parse_pending``,
``Snapshot.tree_stale``); the first snapshot after it is done takes its tree. The completion
request comes a debounce after the keystroke, by which time most such parses are done; a
parse that is not (an open docstring) leaves the context the tree from before the quote,
which is the better one for it anyway. Why the stopped parse is redone rather than resumed,
and why on a thread rather than in slices on the event loop: see ``_Reparse``.

Document methods are called from one thread (the event loop); only a ``_Reparse`` job runs
on the parse thread, on copies, and meets the document under ``Document._lock``.

A change that cannot apply (a range past the end of our copy) means our copy and the editor's
no longer agree. The document is then marked out of sync: it keeps the text it had, later
ranged changes are ignored, ``DocumentStore.get`` refuses it (so requests answer empty), and
the next full-text change brings it back.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tree_sitter import Parser, Point, Tree

from codenook.text import languages
from codenook.text.positions import Encoding, LineIndex, utf8_length
from codenook.text.rope import Rope


class DocumentError(ValueError):
    """A change or request that does not fit the document (unknown URI, impossible range)."""


@dataclass(frozen=True)
class Snapshot:
    """What a request sees of a document: consistent text, version and tree at one moment.

    The tree object is shared with the live document and is edited in place by the next
    change, so a snapshot's tree must be read before the handler yields to the event loop.
    The text and the line index never change; the whole text is joined from its chunks when
    first read (taking a snapshot of a long document costs nothing until then).

    ``tree_stale`` means the tree is the last complete parse of an older text, edited to this
    one: every node's position is right for this text except that a node spanning an edit
    covers it whole, and the structure (which nodes exist) is the older text's. Reading this
    text at a node's range is safe; trusting that the range holds what the node's type says
    is only approximately so near an edit (a node that starts where text was inserted now
    starts after it). ``node.text`` of a complete tree reads the text that tree was parsed
    from (through its read callable); an edited tree has none (None), so old text is never
    read at new positions. Read node text from ``text`` at the node's range.
    """

    uri: str
    version: int
    language: languages.LoadedLanguage | None
    tree: Tree | None
    lines: LineIndex
    tree_stale: bool = False

    @property
    def text(self) -> str:
        return self.lines.text

    @property
    def language_name(self) -> str | None:
        return self.language.name if self.language else None


EditArgs = dict[str, Any]  # keyword arguments of ``Tree.edit``


class _Reparse:
    """A re-parse that did not fit the keystroke's budget, finished on the parse thread.

    It parses a copy of the document's tree (trees are not thread-safe; copies are cheap and
    independent) with a parser of its own, then catches up with the edits the document logged
    meanwhile (replays them on its result and parses again) until none are left. Only then is
    it ``done``; the document adopts the result on its own thread.

    Its result is the tree a fresh parse of the text builds. tree-sitter's incremental parse
    is, on code without syntax errors; with errors it sometimes recovers differently (about
    1 edit in 1,200 of random edits in tests/test_parse_budget.py's languages, one edit after
    a fresh parse). So a result with errors is parsed again from scratch, and a tree with
    errors is not used as the old tree at all (its result would be parsed again anyway). That
    costs a full parse (about 120 ms on 10,000 lines) where an incremental one might have
    taken 25 ms, off the keystroke path; after an opening triple quote, which makes the rest
    of the file a string, the incremental parse is the slower one (about 250 ms).

    A stopped tree-sitter parse can be resumed, but the resumed parse does not always build
    the tree an unstopped one builds (measured with py-tree-sitter 0.26.1: up to 3 % of edits
    on code with syntax errors when stopped at every check), so slicing the parse on the event
    loop is out, and this parse is never stopped, only abandoned. py-tree-sitter holds
    Python's lock while it parses: each read and each progress callback is a chance to hand
    it over, so the text is read in ``READ_BYTES`` pieces (lexing the rest of a file after an
    opening triple quote is one token and calls no progress callback) and every ``YIELD_S``
    the thread sleeps ``YIELD_SLEEP_S``, long enough for a waiting thread (the event loop's)
    to take the lock. Measured on the 10,000-line flask file with an open docstring: the
    loop's 1 ms sleeps overran by 0.7-1.9 ms at p95 (6-8 ms at most) while this thread
    parsed, against 4-5 ms at p95 (up to 12 ms) without the short reads.
    """

    YIELD_S = 0.001
    YIELD_SLEEP_S = 0.0001
    READ_BYTES = 4096

    def __init__(self, document: Document, tree: Tree, rope: Rope, seq: int) -> None:
        assert document.language is not None
        self._document = document
        self._language = document.language
        self.tree = tree  # the parse thread's own until ``done``
        self.seq = seq  # the last logged edit ``tree`` includes
        self._rope = rope
        self.done = False  # set under the document's lock, with ``tree`` final
        self.cancelled = False  # abandoned (the document has a new text or closed) or failed
        self.seconds = 0.0  # the parse thread's CPU time (waiting for Python's lock excluded)
        self.finished = threading.Event()
        self._next_yield = 0.0

    def run(self) -> None:
        document = self._document
        started = time.thread_time()
        try:
            parser = self._language.parser()
            while True:
                old: Tree | None = self.tree
                if old is not None and old.root_node.has_error:
                    old = None  # see below: it would be parsed again anyway
                tree = self._parse(parser, old)
                if old is not None and tree.root_node.has_error:
                    # Where there are syntax errors, an incremental parse does not always
                    # recover from them as a fresh parse does: parse afresh.
                    tree = self._parse(parser, None)
                with document._lock:
                    newer = [entry for entry in document._log if entry[0] > self.seq]
                    if not newer or self.cancelled:
                        self.seconds = time.thread_time() - started
                        self.tree, self.done = tree, True
                        break
                for _, edit, _ in newer:
                    tree.edit(**edit)
                self.tree, self.seq, self._rope = tree, newer[-1][0], newer[-1][2]
        except Exception:  # abandoned (ValueError from a stopped parse) or failed
            with document._lock:
                self.cancelled = self.done = True
        self.finished.set()

    def _parse(self, parser: Parser, old: Tree | None) -> Tree:
        read = self._reader(self._rope)
        if old is None:
            return parser.parse(read, progress_callback=self._progress)
        return parser.parse(read, old, progress_callback=self._progress)

    def _reader(self, rope: Rope) -> Callable[[int, object], bytes]:
        """The text in short reads, each a chance to yield: lexing one long token (the rest
        of a file after an opening triple quote) calls no progress callback."""
        read = rope.utf8_reader()

        def short_read(byte: int, point: object) -> bytes:
            self._yield()
            return read(byte, point)[: self.READ_BYTES]

        return short_read

    def _progress(self, _byte: int, _has_error: bool) -> bool:
        if self.cancelled:
            return True
        self._yield()
        return False

    def _yield(self) -> None:
        now = time.perf_counter()
        if now >= self._next_yield:
            time.sleep(self.YIELD_SLEEP_S)
            self._next_yield = time.perf_counter() + self.YIELD_S


_jobs: queue.SimpleQueue[_Reparse] = queue.SimpleQueue()
_worker: threading.Thread | None = None
_worker_lock = threading.Lock()


def _submit(job: _Reparse) -> None:
    """Queue ``job`` for the parse thread (one for all documents, started on first use)."""
    global _worker
    with _worker_lock:
        if _worker is None or not _worker.is_alive():
            _worker = threading.Thread(target=_work, name="codenook-parse", daemon=True)
            _worker.start()
    _jobs.put(job)


def _work() -> None:
    while True:
        _jobs.get().run()


class Document:
    # How long a keystroke may spend re-parsing; a parse that needs longer is finished on
    # another thread (see the module's docstring). 0: every re-parse is done there.
    PARSE_BUDGET_S = 0.002

    def __init__(
        self,
        uri: str,
        text: str,
        version: int,
        language_id: str | None = None,
        *,
        parse: bool = True,
    ) -> None:
        self.uri = uri
        self.version = version
        self._rope = Rope(text)
        self._lines: LineIndex | None = None
        self.out_of_sync: str | None = None  # why our copy stopped following the editor's
        # Kept up to date edit by edit, so that size checks never measure the whole text.
        self.utf8_size = utf8_length(text)
        self.nul_count = text.count("\x00")
        spec = languages.spec_for(uri, language_id)
        self.language = languages.load(spec.name) if spec and parse else None
        self._parser: Parser | None = self.language.parser() if self.language else None
        # The last complete parse; after edits it is edited (positions follow the text) and
        # ``_pending`` says that its structure may be older than the text.
        self.tree: Tree | None = None
        self._pending = False
        # A background re-parse, and the edits made since it started (sequence number, edit,
        # text after the edit), under ``_lock``.
        self._job: _Reparse | None = None
        self._log: list[tuple[int, EditArgs, Rope]] = []
        self._seq = 0
        self._lock = threading.Lock()
        # The last re-parse went past the budget: until one is quick again, edits go straight
        # to the background (a line typed inside an open triple-quoted string re-lexes the
        # rest of the file as one token, which no budget can stop).
        self._slow = False
        self._parse_all()

    @property
    def text(self) -> str:
        return str(self._rope)

    @property
    def lines(self) -> LineIndex:
        """The line index, built from the whole text once, then updated edit by edit."""
        if self._lines is None:
            self._lines = LineIndex(self._rope)
        return self._lines

    @property
    def parse_pending(self) -> bool:
        """Whether the tree is older than the text (a re-parse is still running)."""
        self._adopt()
        return self._pending

    def snapshot(self) -> Snapshot:
        """The document now, with the newest complete tree (a finished background parse is
        taken here: completions read the tree through snapshots)."""
        stale = self.parse_pending
        return Snapshot(self.uri, self.version, self.language, self.tree, self.lines, stale)

    def replace_all(self, text: str, version: int) -> None:
        """A full-text change; it also ends an out-of-sync state."""
        self._rope = Rope(text)
        self._lines = None
        self.utf8_size = utf8_length(text)
        self.nul_count = text.count("\x00")
        self.version = version
        self.out_of_sync = None
        self._parse_all()

    def apply_edit(
        self,
        start: tuple[int, int],
        end: tuple[int, int],
        new_text: str,
        encoding: Encoding,
        version: int,
    ) -> None:
        """Apply one ranged change given in LSP coordinates of ``encoding``.

        Raises PositionError or DocumentError, leaving the document as it was, for a range
        that does not exist in the text. The tree is re-parsed for at most
        ``PARSE_BUDGET_S``; a re-parse that needs longer goes on in the background while
        ``tree`` is the previous one, edited (``parse_pending``).
        """
        old = self.lines
        # 1. LSP range -> code-point offsets in the old text.
        start_off = old.offset(start[0], start[1], encoding)
        end_off = old.offset(end[0], end[1], encoding)
        if end_off < start_off:
            raise DocumentError(f"change range ends before it starts: {start} > {end}")
        # 2. The byte-level edit tree-sitter needs, measured on the old text (chunk by chunk:
        # nothing here reads the whole text).
        removed = self._rope.slice(start_off, end_off)
        if self.tree is not None:
            start_byte = self._rope.utf8_offset(start_off)
            start_point = Point(*self._rope.tree_point(start_off))
            old_end_point = Point(*self._rope.tree_point(end_off))
        # 3. Splice the text (copying only the chunks the edit touches); the line index
        # follows the edit.
        self._rope = self._rope.edited(start_off, end_off, new_text)
        self._lines = old.edited(start_off, end_off, new_text, self._rope)
        self.utf8_size += utf8_length(new_text) - utf8_length(removed)
        self.nul_count += new_text.count("\x00") - removed.count("\x00")
        self.version = version
        if self.tree is None:
            return
        # 4. Edit the tree, then re-parse reusing unchanged subtrees, within the budget.
        inserted_rows = new_text.split("\n")
        if len(inserted_rows) == 1:
            new_end_point = Point(start_point.row, start_point.column + utf8_length(new_text))
        else:
            new_end_point = Point(
                start_point.row + len(inserted_rows) - 1, utf8_length(inserted_rows[-1])
            )
        edit: EditArgs = {
            "start_byte": start_byte,
            "old_end_byte": start_byte + utf8_length(removed),
            "new_end_byte": start_byte + utf8_length(new_text),
            "start_point": start_point,
            "old_end_point": old_end_point,
            "new_end_point": new_end_point,
        }
        self.tree.edit(**edit)
        self._pending = True
        with self._lock:
            if self._job is not None:  # the job (or its adoption) catches up with this edit
                self._seq += 1
                self._log.append((self._seq, edit, self._rope))
                if not self._job.done:
                    return
        self._adopt()
        self._reparse(self.PARSE_BUDGET_S)

    def finish_parse(self, timeout: float | None = None) -> bool:
        """Wait up to ``timeout`` seconds (None: as long as it takes) for the tree to match
        the text; whether it does."""
        deadline = None if timeout is None else time.perf_counter() + timeout
        while True:
            job = self._job
            if job is not None:
                left = None if deadline is None else max(0.0, deadline - time.perf_counter())
                if not job.finished.wait(left):
                    return False
            self._adopt()
            if not self._pending:
                return True
            if self._job is None:
                if deadline is not None:
                    return False  # nothing to wait for: it is parsed at the next edit
                self._reparse(None)

    def close(self) -> None:
        """Abandon a background re-parse (the document closed)."""
        self._cancel_job()

    def _reparse(self, budget_s: float | None) -> None:
        """Re-parse the edited tree here for at most ``budget_s`` seconds (None: until done);
        a parse stopped at the budget is handed to a background job, from the start."""
        if not self._pending or self._job is not None:
            return
        assert self._parser is not None and self.tree is not None
        if budget_s is None:
            self.tree = self._parser.parse(self._rope.utf8_reader(), self.tree)
            self._pending = False
            return
        if budget_s > 0 and not self._slow:
            deadline = time.perf_counter() + budget_s

            def stop(_byte: int, _has_error: bool) -> bool:
                return time.perf_counter() >= deadline

            read = self._rope.utf8_reader()
            try:
                self.tree = self._parser.parse(read, self.tree, progress_callback=stop)
                self._pending = False
                return
            except ValueError:  # stopped: a resumed parse is not always a fresh parse's tree
                self._parser.reset()
                self._slow = True
        with self._lock:
            self._log.clear()
            job = self._job = _Reparse(self, self.tree.copy(), self._rope, self._seq)
        _submit(job)

    def _adopt(self) -> None:
        """Take a finished background parse: its tree, with the edits made since replayed."""
        job = self._job
        if job is None or not job.done:
            return
        with self._lock:
            self._job = None
            newer = [edit for seq, edit, _ in self._log if seq > job.seq]
            self._log.clear()
        if job.cancelled:  # it failed (an abandoned job is no longer ``_job``): parse here
            self._reparse(None)
            return
        tree = job.tree
        for edit in newer:
            tree.edit(**edit)
        self.tree = tree
        self._pending = bool(newer)
        self._slow = job.seconds > self.PARSE_BUDGET_S
        self._reparse(self.PARSE_BUDGET_S)

    def _cancel_job(self) -> None:
        with self._lock:
            if self._job is not None:
                self._job.cancelled = True
            self._job = None
            self._log.clear()

    def _parse_all(self) -> None:
        """A full parse of a new text, then and there: there is no earlier tree to fall back on."""
        self._cancel_job()
        self._pending = False
        if self._parser is None:
            return
        self._parser.reset()
        self.tree = self._parser.parse(self._rope.utf8_reader())

    def mark_out_of_sync(self, reason: str, version: int) -> None:
        """Our copy no longer follows the editor's: keep it, refuse it until a full sync."""
        self.out_of_sync = reason
        self.version = version


class DocumentStore:
    """All open documents by URI; the one place that decides whether a file gets parsed."""

    def __init__(self, max_file_bytes: int = 2 * 1024 * 1024) -> None:
        self.max_file_bytes = max_file_bytes
        self._docs: dict[str, Document] = {}

    def open(self, uri: str, text: str, version: int, language_id: str | None) -> Document:
        doc = Document(uri, text, version, language_id, parse=self.is_editable_text(text))
        self._docs[uri] = doc
        return doc

    def close(self, uri: str) -> None:
        doc = self._docs.pop(uri, None)
        if doc is not None:
            doc.close()

    def get(self, uri: str) -> Document:
        """The open document a request works on; an out-of-sync one is refused."""
        try:
            doc = self._docs[uri]
        except KeyError:
            raise DocumentError(f"document is not open: {uri}") from None
        if doc.out_of_sync is not None:
            raise DocumentError(
                f"{uri} is out of sync with the editor ({doc.out_of_sync}) until the editor"
                " sends its whole text again (reopen the file)"
            )
        return doc

    def find(self, uri: str) -> Document | None:
        """The open document, in sync or not (document sync itself needs both)."""
        return self._docs.get(uri)

    def is_editable_text(self, text: str) -> bool:
        """Huge or binary-looking files are kept as text but never parsed or completed."""
        return "\x00" not in text and utf8_length(text) <= self.max_file_bytes

    def completes(self, doc: Document) -> bool:
        """Whether a document gets model help: a known language, or small plain text (from
        the sizes the document keeps: the keystroke path never measures a whole text)."""
        if doc.language is not None:
            return True
        return doc.nul_count == 0 and doc.utf8_size <= self.max_file_bytes

    def uris(self) -> list[str]:
        return list(self._docs)

    def __contains__(self, uri: str) -> bool:
        return uri in self._docs

    def __len__(self) -> int:
        return len(self._docs)
