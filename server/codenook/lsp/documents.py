r"""Document sync: codenook's own copy of every open document, and the event of a new version.

codenook's copy (``text/documents.py``) is the only one: pygls's would split lines the way
``str.splitlines`` does (also at ``\f``, ``\v``, ``\x1c``-``\x1e``, ``\x85``, U+2028,
U+2029, which LSP does not), apply the editor's changes at the wrong places and clamp the
positions of our ``didChange`` params in place before our handler sees them. So pygls's
built-in ``didChange`` is replaced by one that only calls ours, and pygls's copy is dropped
once codenook has its own (``ls.workspace.get_text_document`` is not the editor's buffer:
read ``ls.app.documents``). It also spares every keystroke pygls's whole-text rebuild.

A ranged change that does not fit codenook's copy is logged and the document marked out of
sync (requests on it answer empty) until the next full-text change; nothing is taken from
anywhere else. ``Versions`` lets a request that edited the document (a streamed code action)
wait for the client's ``didChange`` of that edit instead of polling.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from lsprotocol import types

from codenook.lsp.dispatch import notification
from codenook.text.documents import Document, DocumentError
from codenook.text.positions import PositionError, count_line_breaks

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
    _replace_pygls_did_change(server)

    @server.feature(types.TEXT_DOCUMENT_DID_OPEN)
    @notification("didOpen")
    def did_open(ls: CodenookServer, params: types.DidOpenTextDocumentParams) -> None:
        item = params.text_document
        app = ls.app
        ls.workspace.remove_text_document(item.uri)  # pygls's copy; ours is below
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
                    _apply(ls, doc, change, version)
                else:
                    doc.replace_all(change.text, version)  # also ends an out-of-sync state
                    ls.app.workspace.replaced(doc.uri)
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


def _replace_pygls_did_change(server: CodenookServer) -> None:
    """pygls's built-in didChange, less the update of pygls's own copy: it only calls ours."""
    features = server.protocol.fm

    def did_change(params: types.DidChangeTextDocumentParams) -> Any:
        handler = features.features.get(types.TEXT_DOCUMENT_DID_CHANGE)
        if handler is not None:
            yield handler, (params,), None

    features.add_builtin_feature(types.TEXT_DOCUMENT_DID_CHANGE, did_change)


def _apply(
    ls: CodenookServer,
    doc: Document,
    change: types.TextDocumentContentChangePartial,
    version: int,
) -> None:
    """One ranged change; one that does not fit leaves the document out of sync."""
    if doc.out_of_sync is not None:
        doc.version = version  # a range in a text we do not have: nothing to apply it to
        return
    start, end = change.range.start, change.range.end
    try:
        doc.apply_edit(
            (start.line, start.character),
            (end.line, end.character),
            change.text,
            ls.encoding,
            version,
        )
    except (PositionError, DocumentError) as exc:
        doc.mark_out_of_sync(f"version {version}: {exc}", version)
        ls.log(
            f"didChange for {doc.uri} did not apply ({exc}): codenook's copy no longer matches"
            " the editor's; no answers there until the editor sends the whole text again"
            " (reopen the file)"
        )
        return
    new_last = start.line + count_line_breaks(change.text)
    ls.app.workspace.changed(doc.uri, doc.snapshot(), start.line, end.line, new_last)
