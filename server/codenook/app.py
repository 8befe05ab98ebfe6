"""The composition root: the one place that knows the concrete classes and wires them.

Everything that serves a user is built here once per process — by the language server, by
``codenook complete``, by the dev tools and by the tests alike — so each runs the same code.
Two halves meet here through one narrow interface (``EngineHost``): the engine host (model,
scheduler) and the session of one editor (settings, documents, workspace, the completion and
assist services with their memories and caches). A settings change that needs the model
loaded again swaps the engine inside the host; the session, its caches and counters stay.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from codenook.assist.service import AssistService
from codenook.completion.service import CompletionService
from codenook.engine.host import EngineHost, Loader
from codenook.engine.models import NoModel, resolve_model_path
from codenook.engine.protocol import Engine, EngineError, GenerationRequest, GenerationResult
from codenook.engine.scheduler import Priority, Status
from codenook.settings import Settings
from codenook.text.documents import DocumentStore, Snapshot
from codenook.workspace.context import BuildDone, BuildProgress, Scheduler, WorkspaceContext

if TYPE_CHECKING:
    from codenook.hosting.client import SharedHost

# What builds the engine for a set of settings; tests inject a fake engine here.
LoaderFactory = Callable[[Settings], Loader]

# Overrides engine.mode for a whole process tree (test suites, scripts).
MODE_ENV = "CODENOOK_ENGINE_MODE"


def engine_mode(settings: Settings) -> str:
    """Where the engine runs. A remote backend has no model memory to share, so each
    window talks to the server itself."""
    if settings.engine.backend == "openai":
        return "inprocess"
    return os.environ.get(MODE_ENV) or settings.engine.mode


def model_loader(
    settings: Settings, model_path: Path | None = None, windows: int = 1
) -> Callable[[], Engine]:
    """A function that loads the configured model; runs on the engine thread. ``windows``:
    the editor windows that get a lane of their own (a shared engine host's)."""

    def load() -> Engine:
        if settings.engine.backend == "openai":
            from codenook.engine.remote import RemoteEngine
            from codenook.engine.remote_http import RemoteConfig

            return RemoteEngine(RemoteConfig.from_settings(settings))
        from codenook.engine.llama import LlamaEngine

        try:
            path = model_path or resolve_model_path(settings.model.path)
        except NoModel as exc:
            raise EngineError(str(exc)) from exc
        return LlamaEngine(
            path,
            n_ctx=settings.model.contextSize,
            n_threads=settings.model.threads,
            n_gpu_layers=settings.model.gpuLayers,
            n_batch=settings.model.batchSize,
            prefix_cache=settings.engine.prefixCache,
            checkpoint_bytes=settings.engine.checkpointMemoryMiB * 1024 * 1024,
            windows=windows,
            alternatives=settings.completion.alternatives,
        )

    return load


@dataclass
class Hooks:
    """How the services reach their front end (the LSP server, the CLI).

    Every hook may be called from any thread (the engine thread, an index build); the front
    end moves the call to its own thread where it must.
    """

    status: Callable[[Status], None] | None = None
    index_progress: BuildProgress | None = None
    index_done: BuildDone | None = None
    # Runs a function later on the front end's thread (index updates after the user pauses).
    schedule: Scheduler | None = None
    # Something the user should know that is not a failure (a shared host's other settings).
    notice: Callable[[str], None] | None = None


class HostSwitch:
    """The engine host the services hold: in this process or the user's shared one.

    Services keep this one object for the life of the session; a change of ``engine.mode``
    swaps what is behind it (before the first load, or as a reload), never the services.
    """

    def __init__(self, current: EngineHost | SharedHost) -> None:
        self.current = current

    @property
    def shared(self) -> bool:
        return not isinstance(self.current, EngineHost)

    def start(self) -> None:
        self.current.start()

    def stop(self, timeout: float | None = 5.0) -> None:
        self.current.stop(timeout)

    @property
    def started(self) -> bool:
        return self.current.started

    def wait_loaded(self, timeout: float | None = None) -> bool:
        return self.current.wait_loaded(timeout)

    @property
    def engine(self) -> Engine | None:
        return self.current.engine

    @property
    def error(self) -> str | None:
        return self.current.error

    @property
    def preemptions(self) -> int:
        return self.current.preemptions

    @property
    def reloads(self) -> int:
        return self.current.reloads

    def status(self) -> Status:
        return self.current.status()

    async def generate(
        self, request: GenerationRequest, priority: Priority, key: str | None = None
    ) -> GenerationResult:
        return await self.current.generate(request, priority, key)


class App:
    """The long-lived services of one codenook process, built once."""

    def __init__(
        self,
        settings: Settings,
        *,
        loader: LoaderFactory = model_loader,
        roots: Callable[[], list[str]] = list,
        hooks: Hooks | None = None,
        mode: str | None = None,
    ) -> None:
        hooks = hooks or Hooks()
        self.settings = settings
        self._loader = loader
        self._hooks = hooks
        # A scripted engine (tests) or a fixed mode (``codenook complete``) stays in-process.
        self._mode = mode or (None if loader is model_loader else "inprocess")
        self.host = HostSwitch(self._new_host(settings))
        self.documents = DocumentStore(settings.documents.maxFileBytes)
        self.workspace = WorkspaceContext(
            enabled=settings.index.enabled,
            max_file_bytes=settings.index.maxFileBytes,
            max_files=settings.index.maxFiles,
            max_definitions=settings.index.maxDefinitions,
            exclude=settings.index.exclude,
            schedule=hooks.schedule,
            document=self._snapshot,
            on_progress=hooks.index_progress,
            on_done=hooks.index_done,
        )
        self.roots = roots
        self.completions = CompletionService(self.host, self._settings, roots, self.workspace)
        self.assist = AssistService(self.host, self._settings)

    def _settings(self) -> Settings:
        return self.settings

    def mode(self, settings: Settings) -> str:
        return self._mode or engine_mode(settings)

    def _new_host(self, settings: Settings) -> EngineHost | SharedHost:
        if self.mode(settings) == "inprocess":
            return EngineHost(self._loader(settings), self._hooks.status)
        from codenook.hosting.client import SharedHost

        return SharedHost(settings, self._hooks.status, self._hooks.notice)

    def _snapshot(self, uri: str) -> Snapshot | None:
        doc = self.documents.find(uri)
        return doc.snapshot() if doc is not None else None

    def start(self) -> App:
        """Load the model (in the background) and index the workspace folders."""
        self.host.start()
        self.workspace.set_folders(self.roots())
        return self

    def stop(self, timeout: float | None = 5.0) -> None:
        self.workspace.close()
        self.host.stop(timeout)

    def update_settings(self, new: Settings) -> list[str]:
        """Apply new settings; returns the changed keys that made the model load again."""
        old, self.settings = self.settings, new
        self.documents.max_file_bytes = new.documents.maxFileBytes
        self.workspace.max_file_bytes = new.index.maxFileBytes
        self.workspace.max_files = new.index.maxFiles
        self.workspace.max_definitions = new.index.maxDefinitions
        self.workspace.exclude = new.index.exclude
        if self.workspace.enabled != new.index.enabled:
            self.workspace.enabled = new.index.enabled
            self.workspace.set_folders(self.roots())
        reload = old.reload_keys(new)
        if not reload:
            return reload
        current = self.host.current
        if self.mode(old) != self.mode(new):
            started = current.started
            current.stop(timeout=0)
            self.host.current = self._new_host(new)
            if started:
                self.host.start()
        elif isinstance(current, EngineHost):
            current.reload(self._loader(new))
        else:
            current.reload(new)
        return reload
