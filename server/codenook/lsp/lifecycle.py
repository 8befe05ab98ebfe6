"""Start, configuration, workspace folders, file events, shutdown, and ``codenook/stats``."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Generator
from typing import TYPE_CHECKING, Any

from lsprotocol import types
from pygls.protocol.language_server import lsp_method

from codenook.lsp.agent import COMMANDS as AGENT_COMMANDS
from codenook.lsp.dispatch import notification, request
from codenook.lsp.rpc import RpcProtocol
from codenook.text import languages

if TYPE_CHECKING:
    from codenook.lsp.server import CodenookServer

STATS_REQUEST = "codenook/stats"
START_CONFIG_TIMEOUT_S = 5.0


class CodenookProtocol(RpcProtocol):
    """pygls's protocol held to JSON-RPC and the LSP lifecycle (``lsp/rpc``), plus what
    codenook advertises beyond the standard capabilities."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Requests that stop at a safe point of their own and answer what they did when the
        # client cancels them (agent tasks: the edits made so far, for undo), by request id.
        self.soft_cancels: dict[Any, Callable[[], None]] = {}

    def _handle_cancel_notification(self, msg_id: Any) -> None:
        soft = self.soft_cancels.get(msg_id)
        if soft is None:
            super()._handle_cancel_notification(msg_id)
        else:
            soft()

    @lsp_method(types.INITIALIZE)
    def lsp_initialize(
        self, params: types.InitializeParams
    ) -> Generator[Any, Any, types.InitializeResult]:
        result = yield from super().lsp_initialize(params)
        # The clients take the language list from here instead of keeping a copy of it.
        result.capabilities.experimental = {
            "codenook": {"languages": languages.advertised(), "problems": True}
        }
        commands = result.capabilities.execute_command_provider
        if commands is not None and not _agent_enabled(self._server):
            # Offered only when on, so clients can tell the user why the palette has none.
            commands.commands = [c for c in commands.commands if c not in AGENT_COMMANDS]
        return result


async def _pull_configuration(ls: CodenookServer, timeout: float | None) -> Any:
    """The ``codenook`` section from the client's own settings store (VS Code keeps the model
    path there rather than in initializationOptions); None when the client has none."""
    caps = ls.client_capabilities.workspace
    if caps is None or not caps.configuration:
        return None
    params = types.ConfigurationParams(items=[types.ConfigurationItem(section="codenook")])
    try:
        items = await asyncio.wait_for(ls.workspace_configuration_async(params), timeout)
    except Exception as exc:
        ls.log(f"workspace/configuration failed: {exc}")
        return None
    return items[0] if items else None


async def _watch_files(ls: CodenookServer) -> None:
    """Ask the client for file events on source files (when it can register watchers)."""
    caps = ls.client_capabilities.workspace
    watched = caps.did_change_watched_files if caps is not None else None
    if watched is None or not watched.dynamic_registration:
        return
    pattern = "**/*.{" + ",".join(languages.extensions()) + "}"
    options = types.DidChangeWatchedFilesRegistrationOptions(
        watchers=[types.FileSystemWatcher(glob_pattern=pattern)]
    )
    registration = types.Registration(
        id=f"codenook-files-{uuid.uuid4()}",
        method=types.WORKSPACE_DID_CHANGE_WATCHED_FILES,
        register_options=options,
    )
    try:
        await ls.client_register_capability_async(
            types.RegistrationParams(registrations=[registration])
        )
    except Exception as exc:
        ls.log(f"could not watch files: {exc}")


_FILE_CHANGES = {
    types.FileChangeType.Created: "created",
    types.FileChangeType.Changed: "changed",
    types.FileChangeType.Deleted: "deleted",
}


def register(server: CodenookServer) -> None:
    @server.feature(types.INITIALIZE)
    @notification("initialize")
    def initialize(ls: CodenookServer, params: types.InitializeParams) -> None:
        ls._loop = asyncio.get_running_loop()
        options = params.initialization_options
        if isinstance(options, dict) and "token" in options:  # TCP's token is no setting
            options = {key: value for key, value in options.items() if key != "token"}
        ls.apply_settings(options)

    @server.feature(types.INITIALIZED)
    @notification("initialized")
    async def initialized(ls: CodenookServer, params: types.InitializedParams) -> None:
        raw = await _pull_configuration(ls, START_CONFIG_TIMEOUT_S)
        if isinstance(raw, dict) and raw:
            ls.apply_settings(raw)
        ls.app.start()
        await _watch_files(ls)

    @server.feature(types.SHUTDOWN)
    @notification("shutdown")
    def shutdown(ls: CodenookServer, params: None) -> None:
        # Every engine job ends now (the running one at its next token); nobody waits for
        # the engine thread here: the event loop still has every request to answer.
        ls.app.stop(timeout=0)

    @server.feature(types.WORKSPACE_DID_CHANGE_WORKSPACE_FOLDERS)
    @notification("didChangeWorkspaceFolders")
    def folders(ls: CodenookServer, params: types.DidChangeWorkspaceFoldersParams) -> None:
        ls.app.workspace.set_folders(ls.roots())  # pygls has updated its folders already

    @server.feature(types.WORKSPACE_DID_CHANGE_WATCHED_FILES)
    @notification("didChangeWatchedFiles")
    def files(ls: CodenookServer, params: types.DidChangeWatchedFilesParams) -> None:
        changes = [(change.uri, _FILE_CHANGES[change.type]) for change in params.changes]
        ls.app.workspace.files_changed(changes, lambda uri: uri in ls.app.documents)

    @server.feature(types.WORKSPACE_DID_CHANGE_CONFIGURATION)
    @notification("didChangeConfiguration")
    async def configuration(ls: CodenookServer, params: types.DidChangeConfigurationParams) -> None:
        raw = params.settings
        if raw is None or raw == {} or raw == []:  # pull model: only "something changed"
            raw = await _pull_configuration(ls, None)
            if raw is None:
                return
        ls.apply_settings(raw)

    @server.feature(STATS_REQUEST)
    @request("stats", empty=dict)
    def stats(ls: CodenookServer, params: Any) -> dict[str, Any]:
        """Engine state and lifetime counters, for status displays, tests and benchmarks."""
        return _stats(ls)


def _stats(ls: CodenookServer) -> dict[str, Any]:
    app = ls.app
    status = app.host.status()
    engine = app.host.engine
    counters = app.completions.counters
    return {
        "state": status.state,
        "queueLength": status.queue_length,
        "tokensPerSecond": round(status.last_tokens_per_s, 1),
        "error": status.error,
        "model": engine.info.path if engine else None,
        "architecture": engine.info.architecture if engine else None,
        "counters": vars(engine.counters) if engine else None,
        "completionCounters": {
            "requests": counters.requests,
            "typedThrough": counters.typed_through,
            "speculativeHits": counters.speculative_hits,
            "speculated": counters.speculated,
            "empty": counters.empty,
        },
        "lastCompletion": ls.last_completion,
        "lastHover": ls.last_hover,
        "hoverCacheHits": app.assist.hover_cache.hits,
        "modelReloads": app.host.reloads,
        "preemptions": app.host.preemptions,
        "index": app.workspace.status(),
    }


def _agent_enabled(server: Any) -> bool:
    settings = getattr(server, "settings", None)
    return bool(settings is None or settings.agent.enabled)
