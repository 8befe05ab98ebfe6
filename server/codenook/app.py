"""The composition root: the one place that knows the concrete classes and wires them."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from codenook.assist.service import AssistService
from codenook.completion.service import CompletionService
from codenook.engine.protocol import Engine, EngineError
from codenook.engine.models import NoModel, resolve_model_path
from codenook.engine.scheduler import EngineWorker, Status
from codenook.settings import Settings
from codenook.workspace.context import WorkspaceContext


def model_loader(settings: Settings, model_path: Path | None = None) -> Callable[[], Engine]:
    """A function that loads the configured model; runs on the engine thread."""

    def load() -> Engine:
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
        )

    return load


class App:
    """The long-lived services of one codenook process."""

    def __init__(
        self,
        settings: Settings,
        *,
        roots: Callable[[], list[str]] = list,
        on_status: Callable[[Status], None] | None = None,
        loader: Callable[[], Engine] | None = None,
        workspace: WorkspaceContext | None = None,
    ) -> None:
        self.settings = settings
        self.worker = EngineWorker(loader or model_loader(settings), on_status)
        self.completions = CompletionService(self.worker, lambda: self.settings, roots, workspace)
        self.assist = AssistService(self.worker, lambda: self.settings)

    def start(self) -> App:
        self.worker.start()
        return self

    def stop(self, timeout: float | None = 5.0) -> None:
        self.worker.stop(timeout)

    def model_settings_changed(self, new: Settings) -> bool:
        keys = (
            "model.path",
            "model.contextSize",
            "model.threads",
            "model.gpuLayers",
            "model.batchSize",
        )
        return any(self.settings[k] != new[k] for k in keys)
