"""codenook's language server: thin LSP handlers over the documents, completion and engine.

Every handler does three things: translate LSP types into codenook's own (documents,
offsets, settings), call one service, translate the answer back. Failures that the user must
know about (no model, bad settings, a file too large to complete) are shown once with
``window/showMessage``; a request never fails because of them, it answers empty.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from typing import Any

from lsprotocol import types
from pygls.lsp.server import LanguageServer

from codenook import __version__
from codenook.app import App
from codenook.completion import NotReady, Suggestion
from codenook.documents import DocumentError, DocumentStore
from codenook.engine import EngineError
from codenook.positions import Encoding, PositionError
from codenook.scheduler import Cancelled, Status, Superseded
from codenook.settings import Settings, parse_settings

log = logging.getLogger(__name__)

STATUS_NOTIFICATION = "codenook/status"
STATS_REQUEST = "codenook/stats"


class CodenookServer(LanguageServer):
    def __init__(self, settings_override: dict[str, Any] | None = None) -> None:
        super().__init__("codenook", __version__)
        self.settings = Settings()
        self.documents = DocumentStore()
        self.app: App | None = None
        self._override = settings_override or {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._told: set[str] = set()
        self.last_completion: dict[str, Any] | None = None

    # -- plumbing ----------------------------------------------------------------------------

    @property
    def encoding(self) -> Encoding:
        return Encoding.parse(self.workspace.position_encoding)

    def tell(
        self, message: str, kind: types.MessageType = types.MessageType.Error, once: bool = True
    ) -> None:
        """Show a message to the user; ``once`` keeps a repeated problem from nagging."""
        if once and message in self._told:
            return
        self._told.add(message)
        self.window_show_message(types.ShowMessageParams(type=kind, message=f"codenook: {message}"))

    def log(self, message: str) -> None:
        self.window_log_message(types.LogMessageParams(type=types.MessageType.Log, message=message))

    def roots(self) -> list[str]:
        folders = [f.uri for f in self.workspace.folders.values()]
        if not folders and self.workspace.root_uri:
            folders = [self.workspace.root_uri]
        return folders

    def apply_settings(self, raw: Any) -> None:
        settings, problems = parse_settings(raw, self.settings)
        settings, more = parse_settings(self._override, settings)
        for problem in problems + more:
            self.tell(problem, types.MessageType.Warning, once=False)
        self.settings = settings
        self.documents.max_file_bytes = settings["documents.maxFileBytes"]
        if self.app is not None:
            restart = self.app.model_settings_changed(settings)
            self.app.settings = settings
            if restart:
                self.start_engine()

    def start_engine(self) -> None:
        """(Re)load the model. The old engine is fully stopped before the new one loads, in a
        helper thread, so two big models are never in memory at once and the event loop never
        waits; requests made meanwhile queue on the new engine."""
        old = self.app
        self._told = {m for m in self._told if not m.startswith("model")}
        self.app = App(self.settings, roots=self.roots, on_status=self._status_from_thread)
        new = self.app
        if old is None:
            new.start()
            return

        def replace() -> None:
            old.stop(timeout=None)
            new.start()

        threading.Thread(target=replace, name="codenook-reload", daemon=True).start()

    def _status_from_thread(self, status: Status) -> None:
        if self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._status_changed, status)

    def _status_changed(self, status: Status) -> None:
        self.protocol.notify(
            STATUS_NOTIFICATION,
            {
                "state": status.state,
                "queueLength": status.queue_length,
                "tokensPerSecond": round(status.last_tokens_per_s, 1),
                "error": status.error,
            },
        )
        if status.state == "failed" and status.error:
            self.tell(f"model unavailable: {status.error}")


server = CodenookServer()


def _to_range(doc_lines: Any, start: int, end: int, encoding: Encoding) -> types.Range:
    sl, sc = doc_lines.position(start, encoding)
    el, ec = doc_lines.position(end, encoding)
    return types.Range(types.Position(sl, sc), types.Position(el, ec))


# -- lifecycle ---------------------------------------------------------------------------------


@server.feature(types.INITIALIZE)
def initialize(ls: CodenookServer, params: types.InitializeParams) -> None:
    ls._loop = asyncio.get_running_loop() if _has_loop() else None
    ls.apply_settings(params.initialization_options)


def _has_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


@server.feature(types.INITIALIZED)
async def initialized(ls: CodenookServer, params: types.InitializedParams) -> None:
    if ls._loop is None:
        ls._loop = asyncio.get_running_loop()
    workspace_caps = ls.client_capabilities.workspace
    if workspace_caps is not None and workspace_caps.configuration:
        # Clients that keep settings in their own store (VS Code) answer this; the model
        # path may be there rather than in initializationOptions.
        try:
            items = await asyncio.wait_for(
                ls.workspace_configuration_async(
                    types.ConfigurationParams(items=[types.ConfigurationItem(section="codenook")])
                ),
                timeout=5,
            )
            if items and isinstance(items[0], dict) and items[0]:
                ls.apply_settings(items[0])
        except Exception as exc:
            ls.log(f"workspace/configuration at start-up failed: {exc}")
    ls.start_engine()


@server.feature(types.SHUTDOWN)
def shutdown(ls: CodenookServer, params: None) -> None:
    if ls.app is not None:
        ls.app.stop()


@server.feature(types.WORKSPACE_DID_CHANGE_CONFIGURATION)
async def did_change_configuration(
    ls: CodenookServer, params: types.DidChangeConfigurationParams
) -> None:
    raw = params.settings
    if raw is None or raw == {} or raw == []:
        # Pull model: the client only tells us that something changed.
        try:
            items = await ls.workspace_configuration_async(
                types.ConfigurationParams(items=[types.ConfigurationItem(section="codenook")])
            )
            raw = items[0] if items else None
        except Exception as exc:  # a client without workspace/configuration
            ls.log(f"workspace/configuration failed: {exc}")
            return
    ls.apply_settings(raw)


# -- documents ---------------------------------------------------------------------------------


@server.feature(types.TEXT_DOCUMENT_DID_OPEN)
def did_open(ls: CodenookServer, params: types.DidOpenTextDocumentParams) -> None:
    item = params.text_document
    doc = ls.documents.open(item.uri, item.text, item.version, item.language_id)
    if doc.language is None and not ls.documents.is_editable_text(item.text):
        ls.tell(
            f"{item.uri} is binary or larger than documents.maxFileBytes"
            f" ({ls.settings['documents.maxFileBytes']} bytes): no completions there",
            types.MessageType.Info,
        )


@server.feature(types.TEXT_DOCUMENT_DID_CHANGE)
def did_change(ls: CodenookServer, params: types.DidChangeTextDocumentParams) -> None:
    doc = ls.documents.find(params.text_document.uri)
    if doc is None:
        return
    version = params.text_document.version
    try:
        for change in params.content_changes:
            if isinstance(change, types.TextDocumentContentChangePartial):
                doc.apply_edit(
                    (change.range.start.line, change.range.start.character),
                    (change.range.end.line, change.range.end.character),
                    change.text,
                    ls.encoding,
                    version,
                )
            else:
                doc.replace_all(change.text, version)
    except (PositionError, DocumentError) as exc:
        # Our copy no longer matches the editor's; resynchronise from pygls's copy.
        ls.log(f"didChange for {doc.uri} did not apply ({exc}); resynchronising")
        doc.replace_all(ls.workspace.get_text_document(doc.uri).source, version)


@server.feature(types.TEXT_DOCUMENT_DID_CLOSE)
def did_close(ls: CodenookServer, params: types.DidCloseTextDocumentParams) -> None:
    ls.documents.close(params.text_document.uri)
    if ls.app is not None:
        ls.app.completions.forget(params.text_document.uri)


# -- inline completion -------------------------------------------------------------------------


def _inline_items(
    ls: CodenookServer, suggestion: Suggestion, position: types.Position
) -> types.InlineCompletionList:
    if not suggestion.text:
        return types.InlineCompletionList(items=[])
    item = types.InlineCompletionItem(
        insert_text=suggestion.text,
        range=types.Range(position, position),
    )
    return types.InlineCompletionList(items=[item])


@server.feature(types.TEXT_DOCUMENT_INLINE_COMPLETION, types.InlineCompletionOptions())
async def inline_completion(
    ls: CodenookServer, params: types.InlineCompletionParams
) -> types.InlineCompletionList:
    empty = types.InlineCompletionList(items=[])
    if ls.app is None or not ls.settings["completion.enabled"]:
        return empty
    doc = ls.documents.find(params.text_document.uri)
    if doc is None or (doc.language is None and not ls.documents.is_editable_text(doc.text)):
        return empty
    snapshot = doc.snapshot()
    try:
        offset = snapshot.lines.offset(params.position.line, params.position.character, ls.encoding)
    except PositionError as exc:
        ls.log(f"inlineCompletion at an impossible position: {exc}")
        return empty
    try:
        suggestion = await ls.app.completions.complete(snapshot, offset)
    except (Superseded, Cancelled):
        return empty
    except NotReady:
        return empty  # the status notification already says "loading"
    except EngineError as exc:
        if ls.app.worker.error is None:
            ls.tell(f"completion failed: {exc}", types.MessageType.Warning)
        return empty
    ls.last_completion = {
        "uri": snapshot.uri,
        "version": snapshot.version,
        **vars(suggestion.timings),
    }
    if ls.settings["trace.prompts"] and suggestion.prompt is not None:
        ls.log(
            f"completion {snapshot.uri}:{params.position.line + 1}:"
            f"{params.position.character + 1}\n{suggestion.timings.summary()}\n"
            f"--- prompt ---\n{suggestion.prompt.text}\n--- raw ---\n{suggestion.raw}"
        )
    return _inline_items(ls, suggestion, params.position)


@server.feature(STATS_REQUEST)
def stats(ls: CodenookServer, params: Any) -> dict[str, Any]:
    """Engine state and lifetime counters, for status displays, tests and benchmarks."""
    if ls.app is None:
        return {"state": "stopped"}
    status = ls.app.worker.status()
    engine = ls.app.worker.engine
    return {
        "state": status.state,
        "queueLength": status.queue_length,
        "tokensPerSecond": round(status.last_tokens_per_s, 1),
        "error": status.error,
        "model": engine.info.path if engine else None,
        "architecture": engine.info.architecture if engine else None,
        "counters": vars(engine.counters) if engine else None,
        "completionCounters": {
            "requests": ls.app.completions.counters.requests,
            "typedThrough": ls.app.completions.counters.typed_through,
            "speculativeHits": ls.app.completions.counters.speculative_hits,
            "speculated": ls.app.completions.counters.speculated,
            "empty": ls.app.completions.counters.empty,
        },
        "lastCompletion": ls.last_completion,
    }


def serve_stdio() -> None:
    server.start_io()


def serve_tcp(host: str, port: int) -> None:
    server.start_tcp(host, port)


def make_server(settings_override: dict[str, Any] | None) -> CodenookServer:
    server._override = settings_override or {}
    return server
