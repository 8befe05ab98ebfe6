"""Document sync: codenook's own copy of every open document, and the event of a new version.

pygls applies a change to its copy before our handler runs; codenook keeps its own copy
because the incremental tree-sitter edit needs the old text. ``Versions`` lets a request
that edited the document (a streamed code action) wait for the client's ``didChange`` of that
edit instead of polling.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from lsprotocol import types

from codenook.lsp.dispatch import notification
from codenook.text.documents import DocumentError
from codenook.text.positions import PositionError

if TYPE_CHECKING:
    from codenook.lsp.server import CodenookServer


class Versions:
    """One event per document, set whenever its version changes (or it closes)."""

    def __init__(self) -> None:
        self._events: dict[str, asyncio.Event] = {}

    def changed(self, uri: str) -> None:
        event = self._events.pop(uri, None)
        if event is not None:
            event.set()

    async def wait_changed(self, uri: str, timeout: float) -> bool:
        """Until the next change of ``uri``; False after ``timeout`` seconds."""
        event = self._events.setdefault(uri, asyncio.Event())
        try:
            await asyncio.wait_for(event.wait(), timeout)
        except (TimeoutError, asyncio.TimeoutError):
            return False
        return True


def register(server: CodenookServer) -> None:
    @server.feature(types.TEXT_DOCUMENT_DID_OPEN)
    @notification("didOpen")
    def did_open(ls: CodenookServer, params: types.DidOpenTextDocumentParams) -> None:
        item = params.text_document
        app = ls.app
        doc = app.documents.open(item.uri, item.text, item.version, item.language_id)
        ls.versions.changed(item.uri)
        app.workspace.opened(item.uri, doc.snapshot())
        if doc.language is None and not app.documents.is_editable_text(item.text):
            limit = ls.settings.documents.maxFileBytes
            ls.problem(
                f"{item.uri} is binary or larger than documents.maxFileBytes ({limit} bytes):"
                " no completions there",
                "file-too-large",
                setting="documents.maxFileBytes",
                info=True,
            )

    @server.feature(types.TEXT_DOCUMENT_DID_CHANGE)
    @notification("didChange")
    def did_change(ls: CodenookServer, params: types.DidChangeTextDocumentParams) -> None:
        doc = ls.app.documents.find(params.text_document.uri)
        if doc is None:
            return
        version = params.text_document.version
        try:
            for change in params.content_changes:
                if isinstance(change, types.TextDocumentContentChangePartial):
                    start, end = change.range.start, change.range.end
                    doc.apply_edit(
                        (start.line, start.character),
                        (end.line, end.character),
                        change.text,
                        ls.encoding,
                        version,
                    )
                    new_last = start.line + change.text.count("\n")
                    ls.app.workspace.changed(
                        doc.uri, doc.snapshot(), start.line, end.line, new_last
                    )
                else:
                    doc.replace_all(change.text, version)
                    ls.app.workspace.replaced(doc.uri)
        except (PositionError, DocumentError) as exc:
            # Our copy no longer matches the editor's; resynchronise from pygls's copy.
            ls.log(f"didChange for {doc.uri} did not apply ({exc}); resynchronising")
            doc.replace_all(ls.workspace.get_text_document(doc.uri).source, version)
        finally:
            ls.versions.changed(doc.uri)

    @server.feature(types.TEXT_DOCUMENT_DID_SAVE)
    @notification("didSave")
    def did_save(ls: CodenookServer, params: types.DidSaveTextDocumentParams) -> None:
        ls.app.workspace.saved(params.text_document.uri)

    @server.feature(types.TEXT_DOCUMENT_DID_CLOSE)
    @notification("didClose")
    def did_close(ls: CodenookServer, params: types.DidCloseTextDocumentParams) -> None:
        uri = params.text_document.uri
        ls.app.documents.close(uri)
        ls.app.workspace.closed(uri)
        ls.app.completions.forget(uri)
        ls.versions.changed(uri)
