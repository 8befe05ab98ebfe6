"""What loading a local model decides before llama.cpp runs: whether the file is a model at
all (llama.cpp's own failure only says 'failed to load', which tells a user nothing about what
to fix) and how many threads to give it."""

from __future__ import annotations

import os
from pathlib import Path

from codenook.engine.protocol import EngineError

GGUF_MAGIC = b"GGUF"


def check_model_file(path: str | os.PathLike[str]) -> Path:
    """Fail with a message a user can act on before llama.cpp prints a bare 'failed to load'."""
    file = Path(path).expanduser()
    if not file.exists():
        raise EngineError(f"model file not found: {file}. Set model.path to an existing GGUF file.")
    if not file.is_file():
        raise EngineError(f"model path is not a file: {file}. Set model.path to a GGUF file.")
    try:
        with file.open("rb") as fh:
            magic = fh.read(4)
    except OSError as exc:
        raise EngineError(f"cannot read model file {file}: {exc.strerror or exc}.") from exc
    if magic != GGUF_MAGIC:
        raise EngineError(
            f"{file} is not a GGUF model (it starts with {magic!r}, not b'GGUF'). "
            "Download a .gguf file (e.g. a Qwen3-Coder-Next quantization) and set model.path."
        )
    return file


def default_threads() -> int:
    """One core left for the editor and the server's own event loop on small machines (ggml's
    threads spin, and a keystroke must not wait for a core), about half on big ones."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        cores = os.cpu_count() or 1
    return max(1, cores - 1) if cores <= 4 else max(4, cores // 2)
