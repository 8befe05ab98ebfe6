"""codenook's language server: one per process, built by ``make_server``.

The server object is the LSP side of the session: it holds the ``App`` (built once, see
``codenook.app``), the client's capabilities and the channel back to the user. Handlers live
in one module per feature and go through ``dispatch``; this module has no handlers.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any, BinaryIO

from lsprotocol import types
from pygls.exceptions import FeatureNotificationError, FeatureRequestError
from pygls.lsp.server import LanguageServer

from codenook import __version__
from codenook.app import App, Hooks, LoaderFactory, model_loader
from codenook.engine.scheduler import Status
from codenook.lsp import actions, agent, completion, documents, hover, lifecycle, transport
from codenook.lsp.documents import Versions
from codenook.lsp.lifecycle import CodenookProtocol
from codenook.lsp.progress import Progress
from codenook.lsp.rpc import say
from codenook.settings import Settings, parse_settings
from codenook.text.positions import Encoding
from codenook.workspace.index import BuildStats

STATUS_NOTIFICATION = "codenook/status"
PROBLEM_NOTIFICATION = "codenook/problem"


class CodenookServer(LanguageServer):
    protocol: CodenookProtocol

    def __init__(
        self, settings_override: dict[str, Any] | None = None, loader: LoaderFactory = model_loader
    ) -> None:
        super().__init__("codenook", __version__, protocol_cls=CodenookProtocol)
        self.versions = Versions()
        self._override = settings_override or {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._told: set[str] = set()
        self._loading: Progress | None = None
        self._indexing: dict[str, Progress] = {}  # root -> its build's progress
        self.last_completion: dict[str, Any] | None = None
        self.last_hover: dict[str, Any] | None = None
        self.last_place: tuple[str, int] | None = None  # (uri, line) of the last completion
        settings, problems = parse_settings(self._override)
        self._pinned_problems = problems
        self.app = App(
            settings,
            loader=loader,
            roots=self.roots,
            hooks=Hooks(
                status=self._from_thread(self._status_changed),
                index_progress=self._from_thread(self._index_progress),
                index_done=self._from_thread(self._index_done),
                schedule=self._later,
                notice=self._from_thread(self._notice),
            ),
        )

    # -- serving ------------------------------------------------------------------------------

    def serve_io(self, stdin: BinaryIO, stdout: BinaryIO) -> int:
        """Serve one client over stdio until exit or the end of input; the exit status."""
        return self._finish(asyncio.run(transport.serve_io(self, stdin, stdout)))

    def serve_tcp(self, host: str, port: int, token: str, announce: str) -> int:
        """Serve the one client that shows ``token`` on ``host:port``; the exit status."""
        return self._finish(asyncio.run(transport.serve_tcp(self, host, port, token, announce)))

    def _finish(self, code: int) -> int:
        """Give the engine what is left of the exit budget to close the model."""
        since = self.protocol.ended_at or time.monotonic()
        self.app.stop(timeout=max(0.0, since + transport.EXIT_BUDGET_S - 0.3 - time.monotonic()))
        if self._thread_pool is not None:
            self._thread_pool.shutdown(wait=False, cancel_futures=True)
        return code

    def report_server_error(self, error: Exception, source: Any) -> None:
        """pygls's "Error in server" pop-up, replaced: a request was answered with its error
        already; anything else goes to the log, never to a pop-up."""
        if source is FeatureRequestError:
            return
        say(f"internal error: {error}")
        if source is FeatureNotificationError:
            self.log(f"codenook: internal error: {error}")

    # -- the session ---------------------------------------------------------------------------

    @property
    def settings(self) -> Settings:
        return self.app.settings

    @property
    def encoding(self) -> Encoding:
        return Encoding.parse(self.workspace.position_encoding)

    def roots(self) -> list[str]:
        folders = [f.uri for f in self.workspace.folders.values()]
        if not folders and self.workspace.root_uri:
            folders = [self.workspace.root_uri]
        return folders

    def apply_settings(self, raw: Any) -> None:
        """Overlay what the editor sent; command-line settings stay pinned on top."""
        settings, problems = parse_settings(raw, self.settings)
        settings, more = parse_settings(self._override, settings)
        for problem in problems + more:
            key = getattr(problem, "key", None)
            self.problem(problem, "invalid-setting", setting=key, warning=True, once=False)
        reloaded = self.app.update_settings(settings)
        if reloaded and self.app.host.started:
            self._told = {m for m in self._told if not m.startswith("model")}
            self.log(f"codenook: reloading the model ({', '.join(reloaded)} changed)")

    # -- talking to the user -----------------------------------------------------------------

    def wants_problems(self) -> bool:
        """Whether the client shows ``codenook/problem`` (with its setting) itself."""
        experimental = self.client_capabilities.experimental
        ours = experimental.get("codenook") if isinstance(experimental, dict) else None
        return isinstance(ours, dict) and bool(ours.get("problems"))

    def problem(
        self,
        message: str,
        code: str,
        *,
        setting: str | None = None,
        warning: bool = False,
        info: bool = False,
        once: bool = True,
    ) -> None:
        """Tell the user something is wrong; ``once`` keeps a repeated problem from nagging.

        Clients that declare ``experimental.codenook.problems`` get the code and the setting
        to open as data; others get ``window/showMessage``.
        """
        if once and message in self._told:
            return
        self._told.add(message)
        kind = types.MessageType.Error
        if warning:
            kind = types.MessageType.Warning
        if info:
            kind = types.MessageType.Info
        text = f"codenook: {message}"
        if self.wants_problems():
            params = {"type": int(kind), "message": text, "code": code, "setting": setting}
            self.protocol.notify(PROBLEM_NOTIFICATION, params)
        else:
            self.window_show_message(types.ShowMessageParams(type=kind, message=text))

    def log(self, message: str) -> None:
        self.window_log_message(types.LogMessageParams(type=types.MessageType.Log, message=message))

    # -- events from other threads -----------------------------------------------------------

    def _from_thread(self, function: Callable[..., None]) -> Callable[..., None]:
        def call(*args: Any) -> None:
            loop = self._loop
            if loop is not None and not loop.is_closed():
                loop.call_soon_threadsafe(function, *args)

        return call

    def _later(self, delay: float, function: Callable[[], None]) -> object:
        assert self._loop is not None, "scheduled before the event loop was known"
        return self._loop.call_later(delay, function)

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
            remote = self.settings.engine.backend == "openai"
            self.problem(
                f"model unavailable: {status.error}",
                "model-unavailable",
                setting="engine.url" if remote else "model.path",
            )
        if status.state == "loading" and self._loading is None:
            self._loading = Progress(self, "codenook: loading model")
            self._loading.start()
        elif status.state != "loading" and self._loading is not None:
            self._loading.end("ready" if status.state != "failed" else "failed")
            self._loading = None

    def _notice(self, message: str) -> None:
        self.problem(message, "shared-engine-settings", setting="engine.mode", warning=True)

    def _index_progress(self, root: str, done: int, total: int) -> None:
        if total == 0:
            return
        percent = done * 100 // total
        progress = self._indexing.get(root)
        if progress is None:
            progress = self._indexing[root] = Progress(self, "codenook: indexing")
            progress.start(root, percent)
        else:
            progress.report(f"{done}/{total} files", percent)

    def _index_done(self, root: str, stats: BuildStats | None, error: BaseException | None) -> None:
        message = f"index failed: {error}" if stats is None else stats.summary()
        self.log(f"codenook: {root}: {message}")
        progress = self._indexing.pop(root, None)
        if progress is not None:
            progress.end(message)


def make_server(
    settings_override: dict[str, Any] | None = None, loader: LoaderFactory = model_loader
) -> CodenookServer:
    """A new server with every feature registered; ``settings_override`` is pinned over what
    the editor sends, ``loader`` builds the engine (tests pass a fake one)."""
    server = CodenookServer(settings_override, loader)
    for feature in (lifecycle, documents, completion, actions, hover, agent):
        feature.register(server)
    return server
