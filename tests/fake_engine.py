"""A scripted engine for exact scheduling tests: no model, full control over timing."""

from __future__ import annotations

import threading
from collections.abc import Callable

from codenook.engine.protocol import (
    Alternative,
    EngineCounters,
    FimTokens,
    GenerationRequest,
    GenerationResult,
    ModelInfo,
    Step,
    run_to_end,
)

INFO = ModelInfo(
    path="fake.gguf",
    architecture="fake",
    description="scripted",
    size_bytes=0,
    n_params=0,
    n_vocab=256,
    n_ctx_train=4096,
    n_ctx=4096,
    is_recurrent=False,
    is_hybrid=False,
    fim=FimTokens(),
    chat_template=None,
)


class FakeEngine:
    """Emits ``reply`` one character per step; each step waits until ``gate`` allows it.

    ``started`` records prompts in the order the engine began them and ``steps`` every
    (prompt, character) emitted, which is what priority, pre-emption and supersession tests
    need to observe. A request for alternatives gets ``others`` after ``reply`` (each cut at
    ``max_tokens``, as many as asked for); ``requests`` keeps every request.
    """

    def __init__(self, reply: str = "abcdef", step_s: float = 0.0) -> None:
        self.info = INFO
        self.counters = EngineCounters()
        self.reply = reply
        self.others: list[str] = []
        self.requests: list[GenerationRequest] = []
        self.step_s = step_s
        self.started: list[str] = []
        self.steps: list[tuple[str, str]] = []
        self.gate = threading.Event()
        self.gate.set()
        self.running = threading.Event()
        self.closed = False

    def tokenize(self, text: str, special: bool = False) -> list[int]:
        return list(text.encode("utf-8"))

    def generate(
        self, request: GenerationRequest, cancelled: Callable[[], bool], lane: int = 0
    ) -> GenerationResult:
        return run_to_end(self.start(request, cancelled, lane))

    def start(
        self, request: GenerationRequest, cancelled: Callable[[], bool], lane: int = 0
    ) -> Step:
        return self._run(request, cancelled)

    def _run(self, request: GenerationRequest, cancelled: Callable[[], bool]) -> Step:
        prompt = request.prompt
        name = prompt if isinstance(prompt, str) else "".join(p for p, _ in prompt)
        self.started.append(name)
        self.requests.append(request)
        self.counters.requests += 1
        text = ""
        for ch in self.reply[: request.max_tokens]:
            self.running.set()
            while not self.gate.wait(0.01):
                if cancelled():
                    break
            if cancelled():
                self.counters.cancelled += 1
                self.running.clear()
                return GenerationResult(text, "cancelled", generated_tokens=len(text))
            if self.step_s:
                threading.Event().wait(self.step_s)
            text += ch
            self.steps.append((name, ch))
            if request.on_text:
                request.on_text(ch)
            self.running.clear()
            yield
        others = self.others[: max(0, request.alternatives - 1)]
        return GenerationResult(
            text,
            "length",
            generated_tokens=len(text),
            alternatives=[Alternative(o[: request.max_tokens], "length", len(o)) for o in others],
        )

    def close(self) -> None:
        self.closed = True
