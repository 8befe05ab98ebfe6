"""``codenook serve`` with a scripted engine: the real LSP layer over stdio, no model.

The tests drive every handler's failure paths through the real transport with this. The
engine's behaviour comes from the ``CODENOOK_FAKE`` environment variable (JSON):
``reply`` (text generated one character per step), ``step_s`` (seconds per character),
``load_s`` (seconds the load takes), ``fail`` ("load": the model cannot load; "generate":
every generation raises), ``template`` (the model's chat template).
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from codenook.engine.protocol import Engine, EngineError, GenerationRequest, Step
from codenook.lsp.server import make_server
from codenook.settings import Settings
from fake_engine import INFO, FakeEngine


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


if __name__ == "__main__":
    make_server(loader=loader).start_io()
