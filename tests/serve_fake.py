"""``codenook serve`` with a scripted engine: the real LSP layer and transport, no model.

Arguments are ``codenook serve``'s (stdio by default, ``--tcp HOST:PORT``, settings flags);
the exit status is the server's. The tests drive every handler's failure paths and the
protocol's hostile inputs through the real transport with this. The
engine's behaviour comes from the ``CODENOOK_FAKE`` environment variable (JSON):
``reply`` (text generated one character per step), ``step_s`` (seconds per character),
``load_s`` (seconds the load takes), ``fail`` ("load": the model cannot load; "generate":
every generation raises), ``template`` (the model's chat template).

One request exists only here, for tests that compare their model of a document with the
server's copy: ``codenook/test/text`` with ``{"uri": ...}`` answers ``{"text", "version",
"outOfSync"}`` from codenook's own document store (``App.documents``), or null when the
document is not open.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

import codenook.lsp.server
from codenook.cli import build_parser, cmd_serve
from codenook.engine.protocol import Engine, EngineError, GenerationRequest, Step
from codenook.settings import Settings
from fake_engine import INFO, FakeEngine

TEST_TEXT_REQUEST = "codenook/test/text"


class ScriptedEngine(FakeEngine):
    def __init__(self, script: dict[str, object]) -> None:
        super().__init__(str(script.get("reply", "abcdef")), float(str(script.get("step_s", 0))))
        self.fail = script.get("fail")
        template = script.get("template")
        self.info = dataclasses.replace(INFO, chat_template=str(template) if template else None)

    def start(
        self, request: GenerationRequest, cancelled: Callable[[], bool], lane: int = 0
    ) -> Step:
        if self.fail == "generate":
            raise EngineError("the scripted engine failed")
        return super().start(request, cancelled, lane)


def loader(settings: Settings) -> Callable[[], Engine]:
    script = json.loads(os.environ.get("CODENOOK_FAKE", "{}"))

    def load() -> Engine:
        time.sleep(float(script.get("load_s", 0)))
        if script.get("fail") == "load":
            raise EngineError("the scripted model cannot load")
        return ScriptedEngine(script)

    return load


def _make_server(*args: Any, **kwargs: Any) -> codenook.lsp.server.CodenookServer:
    """``make_server`` plus the test-only ``codenook/test/text`` request."""
    server = _real_make_server(*args, **kwargs)

    @server.feature(TEST_TEXT_REQUEST)
    def document_text(ls: codenook.lsp.server.CodenookServer, params: Any) -> Any:
        uri = params.get("uri") if isinstance(params, dict) else getattr(params, "uri", None)
        doc = ls.app.documents.find(uri) if isinstance(uri, str) else None
        if doc is None:
            return None
        return {"text": doc.text, "version": doc.version, "outOfSync": doc.out_of_sync}

    return server


_real_make_server = codenook.lsp.server.make_server
codenook.lsp.server.make_server = _make_server  # cmd_serve imports it when it runs


if __name__ == "__main__":
    sys.exit(cmd_serve(build_parser().parse_args(["serve", *sys.argv[1:]]), loader=loader))
