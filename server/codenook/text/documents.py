r"""Open documents: their text, version and an incrementally edited tree-sitter tree.

The LSP layer feeds every didChange here in order. This copy is the only one codenook reads:
pygls's own copy splits lines the way ``str.splitlines`` does (also at ``\f``, U+2028 and the
like, which LSP does not) and would disagree with the editor. Each change is applied in four
steps: convert the LSP range to offsets in the old text (LSP line breaks only: ``\n``,
``\r\n``, ``\r``), compute the byte edit, splice the text and update the line index from the
edit (never rescanning the whole text), then tell tree-sitter about the edit and re-parse
with the old tree.

A change that cannot apply (a range past the end of our copy) means our copy and the editor's
no longer agree. The document is then marked out of sync: it keeps the text it had, later
ranged changes are ignored, ``DocumentStore.get`` refuses it (so requests answer empty), and
the next full-text change brings it back.
"""

from __future__ import annotations

from dataclasses import dataclass

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
    """

    uri: str
    version: int
    language: languages.LoadedLanguage | None
    tree: Tree | None
    lines: LineIndex

    @property
    def text(self) -> str:
        return self.lines.text

    @property
    def language_name(self) -> str | None:
        return self.language.name if self.language else None


def _tree_point(text: str, offset: int) -> Point:
    r"""tree-sitter's point of an offset: its rows end at ``\n`` only (a lone ``\r``, a line
    break for LSP, is not one for tree-sitter), its columns count UTF-8 bytes."""
    row_start = text.rfind("\n", 0, offset) + 1
    return Point(text.count("\n", 0, offset), utf8_length(text[row_start:offset]))


class Document:
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
        self.tree: Tree | None = (
            self._parser.parse(text.encode("utf-8")) if self._parser is not None else None
        )

    @property
    def text(self) -> str:
        return str(self._rope)

    @property
    def lines(self) -> LineIndex:
        """The line index, built from the whole text once, then updated edit by edit."""
        if self._lines is None:
            self._lines = LineIndex(self._rope)
        return self._lines

    def snapshot(self) -> Snapshot:
        return Snapshot(self.uri, self.version, self.language, self.tree, self.lines)

    def replace_all(self, text: str, version: int) -> None:
        """A full-text change; it also ends an out-of-sync state."""
        self._rope = Rope(text)
        self._lines = None
        self.utf8_size = utf8_length(text)
        self.nul_count = text.count("\x00")
        self.version = version
        self.out_of_sync = None
        if self._parser is not None:
            self.tree = self._parser.parse(text.encode("utf-8"))

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
        that does not exist in the text.
        """
        old = self.lines
        # 1. LSP range -> code-point offsets in the old text.
        start_off = old.offset(start[0], start[1], encoding)
        end_off = old.offset(end[0], end[1], encoding)
        if end_off < start_off:
            raise DocumentError(f"change range ends before it starts: {start} > {end}")
        # 2. The byte-level edit tree-sitter needs, measured on the old text.
        removed = self._rope.slice(start_off, end_off)
        if self.tree is not None:
            text = str(self._rope)
            start_point = _tree_point(text, start_off)
            old_end_point = _tree_point(text, end_off)
            start_byte = utf8_length(text[:start_off])
            old_end_byte = start_byte + utf8_length(removed)
        # 3. Splice the text (copying only the chunks the edit touches); the line index
        # follows the edit.
        self._rope = self._rope.edited(start_off, end_off, new_text)
        self._lines = old.edited(start_off, end_off, new_text, self._rope)
        self.utf8_size += utf8_length(new_text) - utf8_length(removed)
        self.nul_count += new_text.count("\x00") - removed.count("\x00")
        self.version = version
        # 4. Edit the tree and re-parse, reusing unchanged subtrees.
        if self.tree is not None and self._parser is not None:
            new_end_byte = start_byte + utf8_length(new_text)
            inserted_rows = new_text.split("\n")
            if len(inserted_rows) == 1:
                new_end_point = Point(start_point.row, start_point.column + utf8_length(new_text))
            else:
                new_end_point = Point(
                    start_point.row + len(inserted_rows) - 1, utf8_length(inserted_rows[-1])
                )
            self.tree.edit(
                start_byte=start_byte,
                old_end_byte=old_end_byte,
                new_end_byte=new_end_byte,
                start_point=start_point,
                old_end_point=old_end_point,
                new_end_point=new_end_point,
            )
            self.tree = self._parser.parse(self.text.encode("utf-8"), self.tree)

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
        self._docs.pop(uri, None)

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
