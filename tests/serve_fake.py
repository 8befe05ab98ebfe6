"""``codenook serve`` with a scripted engine: the real LSP layer and transport, no model.

Arguments are ``codenook serve``'s (stdio by default, ``--tcp HOST:PORT``, settings flags);
the exit status is the server's. The tests drive every handler's failure paths and the
protocol's hostile inputs through the real transport with this. The
engine's behaviour comes from the ``CODENOOK_FAKE`` environment variable (JSON):
``reply`` (text generated one character per step), ``replies`` (a list: the agent's
n-th generation answers the n-th reply, the last one repeating; other features keep
``reply``), ``step_s`` (seconds per character), ``load_s`` (seconds the load takes), ``fail``
("load": the model cannot load; "generate": every generation raises), ``template`` (the
model's chat template), ``n_ctx`` (its context size; its tokens are bytes).

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
from codenook.engine.scheduler import Priority, lane_of
from codenook.settings import Settings
from fake_engine import INFO, FakeEngine

TEST_TEXT_REQUEST = "codenook/test/text"
AGENT_LANE = lane_of(Priority.AGENT)


class ScriptedEngine(FakeEngine):
    def __init__(self, script: dict[str, object]) -> None:
        super().__init__(str(script.get("reply", "abcdef")), float(str(script.get("step_s", 0))))
        self.fail = script.get("fail")
        replies = script.get("replies")
        self.replies = [str(r) for r in replies] if isinstance(replies, list) and replies else []
        self.generations = 0
        self.other = self.reply  # what completions and hovers get meanwhile
        template = script.get("template")
        self.info = dataclasses.replace(
            INFO,
            chat_template=str(template) if template else None,
            n_ctx=int(str(script.get("n_ctx", INFO.n_ctx))),
        )

    def start(
        self, request: GenerationRequest, cancelled: Callable[[], bool], lane: int = 0
    ) -> Step:
        if self.fail == "generate":
            raise EngineError("the scripted engine failed")
        if self.replies and lane == AGENT_LANE:
            self.reply = self.replies[min(self.generations, len(self.replies) - 1)]
            self.generations += 1
        elif self.replies:
            self.reply = self.other
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
