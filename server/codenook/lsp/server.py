"""codenook's language server: thin LSP handlers over the documents, completion and engine.

Every handler does three things: translate LSP types into codenook's own (documents,
offsets, settings), call one service, translate the answer back. Failures that the user must
know about (no model, bad settings, a file too large to complete) are shown once with
``window/showMessage``; a request never fails because of them, it answers empty.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import uuid
from typing import Any

from lsprotocol import types
from pygls.exceptions import JsonRpcContentModified, JsonRpcException
from pygls.lsp.server import LanguageServer

from codenook import __version__, languages
from codenook.assist.actions import KINDS, ActionError, reindent, validate
from codenook.app import App
from codenook.completion.service import NotReady, Suggestion, display_path
from codenook.text.documents import DocumentError, DocumentStore
from codenook.engine.protocol import EngineError
from codenook.text.positions import Encoding, PositionError
from codenook.engine.scheduler import Cancelled, Status, Superseded
from codenook.settings import Settings, parse_settings
from codenook.assist.streaming import Edit, EditStream, run_stream
from codenook.workspace.context import WorkspaceContext

log = logging.getLogger(__name__)


class JsonRpcRequestFailed(JsonRpcException):
    """LSP's RequestFailed (-32803): the request was valid but could not be carried out."""

    CODE = -32803
    MESSAGE = "Request Failed"


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
        self.last_hover: dict[str, Any] | None = None
        self._load_token: str | None = None
        self._tasks: set[asyncio.Future[None]] = set()
        self.context = WorkspaceContext(enabled=False)  # replaced once initialized
        self._context_started = False
        self._index_tokens: dict[str, tuple[str, int]] = {}  # root -> (token, last percent)
        self._last_place: tuple[str, int] | None = None  # (uri, line) of the last completion

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
        self.documents.max_file_bytes = settings.documents.maxFileBytes
        self.context.max_file_bytes = settings.index.maxFileBytes
        if self._context_started and self.context.enabled != settings.index.enabled:
            self.context.enabled = settings.index.enabled
            self.context.set_folders(self.roots())
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
        self.app = App(
            self.settings,
            roots=self.roots,
            on_status=self._status_from_thread,
            workspace=self.context,
        )
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
        self._loading_progress(status.state == "loading")

    def _loading_progress(self, loading: bool) -> None:
        """A work-done progress while a model loads (a big GGUF maps in for a while)."""
        window = self.client_capabilities.window
        if window is None or not window.work_done_progress:
            return
        if loading and self._load_token is None:
            token = self._load_token = f"codenook-load-{uuid.uuid4()}"

            async def begin() -> None:
                try:
                    await self.work_done_progress.create_async(token)
                except Exception:
                    return
                if self._load_token == token:
                    self.work_done_progress.begin(
                        token, types.WorkDoneProgressBegin(title="codenook: loading model")
                    )
                else:  # loading already finished
                    self.work_done_progress.end(token, types.WorkDoneProgressEnd())

            self._tasks.add(task := asyncio.ensure_future(begin()))
            task.add_done_callback(self._tasks.discard)
        elif not loading and self._load_token is not None:
            token, self._load_token = self._load_token, None
            if token in self.work_done_progress.tokens:
                self.work_done_progress.end(token, types.WorkDoneProgressEnd(message="ready"))

    # -- workspace index -------------------------------------------------------------------

    def start_context(self) -> None:
        """Index the workspace folders in the background, with work-done progress."""
        loop = self._loop
        assert loop is not None

        def document(uri: str) -> Any:
            doc = self.documents.find(uri)
            return doc.snapshot() if doc is not None else None

        def from_thread(function: Any, *args: Any) -> None:
            if not loop.is_closed():
                loop.call_soon_threadsafe(function, *args)

        self.context.close()
        self.context = WorkspaceContext(
            enabled=self.settings.index.enabled,
            max_file_bytes=self.settings.index.maxFileBytes,
            schedule=loop.call_later,
            document=document,
            on_progress=lambda root, done, total: from_thread(
                self._index_progress, root, done, total
            ),
            on_done=lambda root, stats, error: from_thread(self._index_done, root, stats, error),
        )
        self._context_started = True
        self.context.set_folders(self.roots())

    def _index_progress(self, root: str, done: int, total: int) -> None:
        window = self.client_capabilities.window
        if window is None or not window.work_done_progress or total == 0:
            return
        percent = done * 100 // total
        known = self._index_tokens.get(root)
        if known is None:
            token = f"codenook-index-{uuid.uuid4()}"
            self._index_tokens[root] = (token, percent)

            async def begin() -> None:
                try:
                    await self.work_done_progress.create_async(token)
                except Exception:
                    return
                self.work_done_progress.begin(
                    token,
                    types.WorkDoneProgressBegin(
                        title="codenook: indexing",
                        message=root,
                        percentage=self._index_tokens.get(root, (token, 0))[1],
                    ),
                )
                if self._index_tokens.get(root, (None, 0))[0] != token:
                    # The index finished while the client was creating the token: close it,
                    # or the client shows "indexing" forever.
                    self.work_done_progress.end(token, types.WorkDoneProgressEnd())

            self._tasks.add(task := asyncio.ensure_future(begin()))
            task.add_done_callback(self._tasks.discard)
        elif percent > known[1]:
            token = known[0]
            self._index_tokens[root] = (token, percent)
            if token in self.work_done_progress.tokens:
                self.work_done_progress.report(
                    token,
                    types.WorkDoneProgressReport(
                        message=f"{done}/{total} files", percentage=percent
                    ),
                )

    def _index_done(self, root: str, stats: Any, error: BaseException | None) -> None:
        message = f"index failed: {error}" if stats is None else stats.summary()
        self.log(f"codenook: {root}: {message}")
        token = self._index_tokens.pop(root, (None, 0))[0]
        if token is not None and token in self.work_done_progress.tokens:
            self.work_done_progress.end(token, types.WorkDoneProgressEnd(message=message))


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
    ls.start_context()
    ls.start_engine()
    await _watch_files(ls)


async def _watch_files(ls: CodenookServer) -> None:
    """Ask the client for file events on source files (when it can register watchers)."""
    caps = ls.client_capabilities.workspace
    watched = caps.did_change_watched_files if caps is not None else None
    if watched is None or not watched.dynamic_registration:
        return
    extensions = sorted({e.lstrip(".") for s in languages._SPECS for e in s.extensions})
    pattern = "**/*.{" + ",".join(extensions) + "}"
    try:
        await ls.client_register_capability_async(
            types.RegistrationParams(
                registrations=[
                    types.Registration(
                        id=f"codenook-files-{uuid.uuid4()}",
                        method=types.WORKSPACE_DID_CHANGE_WATCHED_FILES,
                        register_options=types.DidChangeWatchedFilesRegistrationOptions(
                            watchers=[types.FileSystemWatcher(glob_pattern=pattern)]
                        ),
                    )
                ]
            )
        )
    except Exception as exc:
        ls.log(f"could not watch files: {exc}")


@server.feature(types.SHUTDOWN)
def shutdown(ls: CodenookServer, params: None) -> None:
    ls.context.close()
    if ls.app is not None:
        ls.app.stop()


@server.feature(types.WORKSPACE_DID_CHANGE_WORKSPACE_FOLDERS)
def did_change_workspace_folders(
    ls: CodenookServer, params: types.DidChangeWorkspaceFoldersParams
) -> None:
    ls.context.set_folders(ls.roots())  # pygls has updated ls.workspace.folders already


@server.feature(types.WORKSPACE_DID_CHANGE_WATCHED_FILES)
def did_change_watched_files(ls: CodenookServer, params: types.DidChangeWatchedFilesParams) -> None:
    kinds = {
        types.FileChangeType.Created: "created",
        types.FileChangeType.Changed: "changed",
        types.FileChangeType.Deleted: "deleted",
    }
    ls.context.files_changed(
        [(change.uri, kinds[change.type]) for change in params.changes],
        lambda uri: uri in ls.documents,
    )


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
    ls.context.opened(item.uri, doc.snapshot())
    if doc.language is None and not ls.documents.is_editable_text(item.text):
        ls.tell(
            f"{item.uri} is binary or larger than documents.maxFileBytes"
            f" ({ls.settings.documents.maxFileBytes} bytes): no completions there",
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
                start, end = change.range.start, change.range.end
                doc.apply_edit(
                    (start.line, start.character),
                    (end.line, end.character),
                    change.text,
                    ls.encoding,
                    version,
                )
                new_last = start.line + change.text.count("\n")
                ls.context.changed(doc.uri, doc.snapshot(), start.line, end.line, new_last)
            else:
                doc.replace_all(change.text, version)
                ls.context.replaced(doc.uri)
    except (PositionError, DocumentError) as exc:
        # Our copy no longer matches the editor's; resynchronise from pygls's copy.
        ls.log(f"didChange for {doc.uri} did not apply ({exc}); resynchronising")
        doc.replace_all(ls.workspace.get_text_document(doc.uri).source, version)


@server.feature(types.TEXT_DOCUMENT_DID_SAVE)
def did_save(ls: CodenookServer, params: types.DidSaveTextDocumentParams) -> None:
    ls.context.saved(params.text_document.uri)


@server.feature(types.TEXT_DOCUMENT_DID_CLOSE)
def did_close(ls: CodenookServer, params: types.DidCloseTextDocumentParams) -> None:
    ls.documents.close(params.text_document.uri)
    ls.context.closed(params.text_document.uri)
    if ls.app is not None:
        ls.app.completions.forget(params.text_document.uri)


# -- inline completion -------------------------------------------------------------------------


def _left_for(ls: CodenookServer, uri: str, line: int) -> None:
    """Completing in another document than last time: the place left counts as visited."""
    last, ls._last_place = ls._last_place, (uri, line)
    if last is not None and last[0] != uri:
        previous = ls.documents.find(last[0])
        if previous is not None:
            ls.context.visited(last[0], previous.snapshot(), last[1])


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
    if ls.app is None or not ls.settings.completion.enabled:
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
    _left_for(ls, snapshot.uri, params.position.line)
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
    if ls.settings.trace.prompts and suggestion.prompt is not None:
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
        return {"state": "starting"}
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
        "lastHover": ls.last_hover,
        "hoverCacheHits": ls.app.assist.hover_cache.hits,
        "index": ls.context.status(),
    }


# -- code actions ------------------------------------------------------------------------------

RUN_ACTION = "codenook.runAction"


@server.feature(
    types.TEXT_DOCUMENT_CODE_ACTION,
    types.CodeActionOptions(
        code_action_kinds=[
            types.CodeActionKind.QuickFix,
            types.CodeActionKind.RefactorRewrite,
            types.CodeActionKind.RefactorExtract,
        ]
    ),
)
def code_action(ls: CodenookServer, params: types.CodeActionParams) -> list[types.CodeAction]:
    """Offer fixes and refactors at once; the model runs only when one is picked."""
    doc = ls.documents.find(params.text_document.uri)
    if ls.app is None or doc is None or not ls.settings.actions.enabled:
        return []
    base = {
        "uri": doc.uri,
        "version": doc.version,
        "range": _range_json(params.range),
    }
    actions = []
    for diagnostic in params.context.diagnostics:
        title = KINDS["fix"].title.format(message=diagnostic.message.split("\n", 1)[0][:80])
        args = {
            **base,
            "action": "fix",
            "message": diagnostic.message,
            "range": _range_json(diagnostic.range),
        }
        actions.append(
            types.CodeAction(
                title=title,
                kind=types.CodeActionKind.QuickFix,
                diagnostics=[diagnostic],
                command=types.Command(title=title, command=RUN_ACTION, arguments=[args]),
            )
        )
    only = params.context.only
    for key in ("rewrite", "extract", "docstring", "annotate", "instruct"):
        kind = KINDS[key]
        if only and not any(kind.lsp_kind.startswith(str(o)) for o in only):
            continue
        actions.append(
            types.CodeAction(
                title=f"codenook: {kind.title}",
                kind=kind.lsp_kind,
                command=types.Command(
                    title=kind.title, command=RUN_ACTION, arguments=[{**base, "action": key}]
                ),
            )
        )
    return actions


def _range_json(rng: types.Range) -> dict[str, Any]:
    return {
        "start": {"line": rng.start.line, "character": rng.start.character},
        "end": {"line": rng.end.line, "character": rng.end.character},
    }


def _offsets(doc_lines: Any, rng: dict[str, Any], encoding: Encoding) -> tuple[int, int]:
    start = doc_lines.offset(rng["start"]["line"], rng["start"]["character"], encoding)
    end = doc_lines.offset(rng["end"]["line"], rng["end"]["character"], encoding)
    return start, end


async def _wait_for_version(ls: CodenookServer, uri: str, version: int, timeout: float) -> bool:
    """Wait until the client's didChange for our edit has arrived (version moved past)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while asyncio.get_running_loop().time() < deadline:
        doc = ls.documents.find(uri)
        if doc is None:
            return False
        if doc.version != version:
            return True
        await asyncio.sleep(0.005)
    return False


@server.command(RUN_ACTION)
async def run_action(ls: CodenookServer, args: Any) -> dict[str, Any]:
    """Stream the model's replacement into the document; see ``streaming.run_stream``."""
    raw = args[0] if isinstance(args, list | tuple) and args else args
    spec = raw._asdict() if hasattr(raw, "_asdict") else dict(raw or {})
    spec = json.loads(json.dumps(spec, default=lambda o: o._asdict()))
    if ls.app is None:
        raise JsonRpcRequestFailed("codenook: the model is not loaded")
    doc = ls.documents.find(spec.get("uri", ""))
    if doc is None:
        raise JsonRpcRequestFailed("codenook: the document is not open")
    if spec.get("version") is not None and spec["version"] != doc.version:
        raise JsonRpcContentModified("codenook: the document changed; ask for the action again")
    snapshot = doc.snapshot()
    try:
        start, end = _offsets(snapshot.lines, spec["range"], ls.encoding)
        plan = ls.app.assist.plan(
            snapshot,
            start,
            end,
            spec.get("action", ""),
            display_path(doc.uri, ls.roots()),
            message=spec.get("message", ""),
            instruction=spec.get("instruction", ""),
        )
    except (ActionError, PositionError, KeyError, TypeError) as exc:
        raise JsonRpcRequestFailed(f"codenook: {exc}") from exc
    except EngineError as exc:
        raise JsonRpcRequestFailed(f"codenook: {exc}") from exc
    token = f"codenook-{uuid.uuid4()}"
    progress = ls.work_done_progress
    await progress.create_async(token)
    progress.begin(
        token,
        types.WorkDoneProgressBegin(
            title=f"codenook: {plan.kind.title.format(message='problem')}",
            cancellable=True,
            message="generating…",
        ),
    )
    state = {"version": doc.version, "expected": snapshot.text}

    async def apply(edit: Edit) -> bool:
        current = ls.documents.find(doc.uri)
        if current is None or current.version != state["version"]:
            return False
        if current.text != state["expected"]:
            return False
        version = current.version  # the Document object itself moves on with didChange
        lines = current.lines
        rng = _to_range(lines, edit.start, edit.end, ls.encoding)
        text_edit = types.TextEdit(range=rng, new_text=edit.text)
        workspace_edit = types.WorkspaceEdit(
            document_changes=[
                types.TextDocumentEdit(
                    text_document=types.OptionalVersionedTextDocumentIdentifier(
                        uri=doc.uri, version=current.version
                    ),
                    edits=[text_edit],
                )
            ]
        )
        expected = edit.apply(current.text)
        result = await ls.workspace_apply_edit_async(
            types.ApplyWorkspaceEditParams(edit=workspace_edit)
        )
        if not result.applied:
            return False
        if not await _wait_for_version(ls, doc.uri, version, 5.0):
            return False
        after = ls.documents.find(doc.uri)
        if after is None or after.text != expected:
            return False  # the user typed between our edit and its didChange
        state["version"], state["expected"] = after.version, after.text
        progress.report(
            token, types.WorkDoneProgressReport(message=f"{edit.text.count(chr(10)) + 1} line(s)")
        )
        return True

    def cancelled() -> bool:
        future = progress.tokens.get(token)
        return future is not None and future.cancelled()

    stream = EditStream(plan.region.start, plan.original)
    try:
        outcome = await run_stream(
            ls.app.assist.stream(plan),
            stream,
            apply,
            lambda lines: reindent(lines, plan.original),
            lambda text: validate(snapshot, plan.region, text),
            cancelled,
        )
    except EngineError as exc:
        restore = stream.restore()
        if restore is not None:
            await apply(restore)
        progress.end(token, types.WorkDoneProgressEnd(message=f"failed: {exc}"))
        raise JsonRpcRequestFailed(f"codenook: {exc}") from exc
    progress.end(token, types.WorkDoneProgressEnd(message=outcome.status))
    if outcome.status in ("rejected", "stopped"):
        ls.tell(outcome.message, types.MessageType.Warning, once=False)
    return {
        "status": outcome.status,
        "text": outcome.text,
        "message": outcome.message,
        "edits": outcome.edits,
    }


# -- hover ---------------------------------------------------------------------------------------


@server.feature(types.TEXT_DOCUMENT_HOVER)
async def hover(ls: CodenookServer, params: types.HoverParams) -> types.Hover | None:
    doc = ls.documents.find(params.text_document.uri)
    if ls.app is None or doc is None or not ls.settings.hover.enabled:
        return None
    snapshot = doc.snapshot()
    try:
        offset = snapshot.lines.offset(params.position.line, params.position.character, ls.encoding)
    except PositionError:
        return None
    target = ls.app.assist.hover_target(snapshot, offset)
    if target is None:
        return None
    ls.context.visited(snapshot.uri, snapshot, params.position.line)
    markdown, cached = await ls.app.assist.hover(target)
    ls.last_hover = {"name": target.name, "cached": cached}
    return types.Hover(contents=types.MarkupContent(kind=types.MarkupKind.Markdown, value=markdown))


def serve_stdio() -> None:
    server.start_io()


def serve_tcp(host: str, port: int) -> None:
    server.start_tcp(host, port)


def make_server(settings_override: dict[str, Any] | None) -> CodenookServer:
    server._override = settings_override or {}
    return server
