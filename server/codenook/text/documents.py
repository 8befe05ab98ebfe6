"""Open documents: their text, version and an incrementally edited tree-sitter tree.

The LSP layer feeds every didChange here in order. We keep our own text (pygls applies a change
to its copy before our handler runs, which loses the old text a tree edit needs) and apply each
change in four steps: convert the LSP range to offsets in the old text, compute the byte edit,
splice the text, then tell tree-sitter about the edit and re-parse with the old tree.
"""

from __future__ import annotations

from dataclasses import dataclass

from tree_sitter import Parser, Point, Tree

from codenook.text import languages
from codenook.text.positions import Encoding, LineIndex, utf8_length


class DocumentError(ValueError):
    """A change or request that does not fit the document (unknown URI, impossible range)."""


@dataclass(frozen=True)
class Snapshot:
    """What a request sees of a document: consistent text, version and tree at one moment.

    The tree object is shared with the live document and is edited in place by the next
    change, so a snapshot's tree must be read before the handler yields to the event loop.
    """

    uri: str
    version: int
    text: str
    language: languages.LoadedLanguage | None
    tree: Tree | None
    lines: LineIndex

    @property
    def language_name(self) -> str | None:
        return self.language.name if self.language else None


def _byte_point(lines: LineIndex, offset: int) -> Point:
    pt = lines.point(offset)
    start = lines.line_start(pt.line)
    return Point(pt.line, utf8_length(lines.text[start : start + pt.column]))


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
        self._text = text
        self._lines: LineIndex | None = None
        spec = languages.spec_for(uri, language_id)
        self.language = languages.load(spec.name) if spec and parse else None
        self._parser: Parser | None = self.language.parser() if self.language else None
        self.tree: Tree | None = (
            self._parser.parse(text.encode("utf-8")) if self._parser is not None else None
        )

    @property
    def text(self) -> str:
        return self._text

    @property
    def lines(self) -> LineIndex:
        if self._lines is None:
            self._lines = LineIndex(self._text)
        return self._lines

    def snapshot(self) -> Snapshot:
        return Snapshot(self.uri, self.version, self._text, self.language, self.tree, self.lines)

    def replace_all(self, text: str, version: int) -> None:
        self._text = text
        self._lines = None
        self.version = version
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
        """Apply one ranged change given in LSP coordinates of ``encoding``."""
        old = self.lines
        # 1. LSP range -> code-point offsets in the old text.
        start_off = old.offset(start[0], start[1], encoding)
        end_off = old.offset(end[0], end[1], encoding)
        if end_off < start_off:
            raise DocumentError(f"change range ends before it starts: {start} > {end}")
        # 2. The byte-level edit tree-sitter needs, measured on the old text.
        start_point = _byte_point(old, start_off)
        old_end_point = _byte_point(old, end_off)
        start_byte = utf8_length(self._text[:start_off]) if self.tree is not None else 0
        old_end_byte = start_byte + utf8_length(self._text[start_off:end_off])
        # 3. Splice the text.
        self._text = self._text[:start_off] + new_text + self._text[end_off:]
        self._lines = None
        self.version = version
        # 4. Edit the tree and re-parse, reusing unchanged subtrees.
        if self.tree is not None and self._parser is not None:
            new_end_byte = start_byte + utf8_length(new_text)
            inserted_lines = new_text.split("\n")
            if len(inserted_lines) == 1:
                new_end_point = Point(start_point.row, start_point.column + utf8_length(new_text))
            else:
                new_end_point = Point(
                    start_point.row + len(inserted_lines) - 1, utf8_length(inserted_lines[-1])
                )
            self.tree.edit(
                start_byte=start_byte,
                old_end_byte=old_end_byte,
                new_end_byte=new_end_byte,
                start_point=start_point,
                old_end_point=old_end_point,
                new_end_point=new_end_point,
            )
            self.tree = self._parser.parse(self._text.encode("utf-8"), self.tree)


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
        try:
            return self._docs[uri]
        except KeyError:
            raise DocumentError(f"document is not open: {uri}") from None

    def find(self, uri: str) -> Document | None:
        return self._docs.get(uri)

    def is_editable_text(self, text: str) -> bool:
        """Huge or binary-looking files are kept as text but never parsed or completed."""
        return "\x00" not in text and utf8_length(text) <= self.max_file_bytes

    def completes(self, doc: Document) -> bool:
        """Whether a document gets model help: a known language, or small plain text."""
        return doc.language is not None or self.is_editable_text(doc.text)

    def __contains__(self, uri: str) -> bool:
        return uri in self._docs

    def __len__(self) -> int:
        return len(self._docs)
