"""The engine protocol: what the rest of codenook may ask of a model.

Only ``codenook.engine.llama`` imports ``llama_cpp``; everything else sees these plain types,
so scheduling and completion logic can be tested exactly with a scripted fake engine and the
backend can later be swapped (an OpenAI-compatible server for team setups) without touching
them.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

StopReason = Literal["eos", "stop", "until", "length", "time", "cancelled"]

# A prompt piece and whether its special-token spellings are real markers (True) or the
# user's text (False). User code that happens to contain "<|endoftext|>" must stay text.
PromptPart = tuple[str, bool]


def prompt_parts(prompt: str | Sequence[PromptPart]) -> list[PromptPart]:
    return [(prompt, False)] if isinstance(prompt, str) else list(prompt)


def tokenize_parts(
    tokenize: Callable[[str, bool], list[int]], prompt: str | Sequence[PromptPart]
) -> list[int]:
    """Tokens of a prompt whose markers are parsed as specials and everything else as text."""
    tokens: list[int] = []
    for text, special in prompt_parts(prompt):
        if text:
            tokens.extend(tokenize(text, special))
    return tokens


class EngineError(RuntimeError):
    """The model could not be loaded or a generation failed; the message is meant for users."""


class EngineUnreachable(EngineError):
    """The model lives on a server that cannot be reached now; loading is tried again later."""


@dataclass(frozen=True)
class FimTokens:
    """The fill-in-the-middle markers of a vocabulary, as text; None where the model lacks one."""

    prefix: str | None = None
    suffix: str | None = None
    middle: str | None = None
    pad: str | None = None
    repo_name: str | None = None
    file_sep: str | None = None

    @property
    def has_fim(self) -> bool:
        return bool(self.prefix and self.suffix and self.middle)

    @property
    def has_repo_level(self) -> bool:
        return self.has_fim and bool(self.repo_name and self.file_sep)

    def markers(self) -> tuple[str, ...]:
        """Every marker the model has, for stop sequences and for scrubbing user text."""
        values = (self.prefix, self.suffix, self.middle, self.pad, self.repo_name, self.file_sep)
        return tuple(v for v in values if v)


@dataclass(frozen=True)
class ModelInfo:
    path: str
    architecture: str
    description: str
    size_bytes: int
    n_params: int
    n_vocab: int
    n_ctx_train: int
    n_ctx: int
    is_recurrent: bool
    is_hybrid: bool
    fim: FimTokens
    chat_template: str | None
    eos_text: str | None = None

    @property
    def needs_checkpoints(self) -> bool:
        """Recurrent state cannot be rewound, so plain prefix truncation does not apply."""
        return self.is_recurrent or self.is_hybrid


@dataclass
class GenerationRequest:
    prompt: str | Sequence[PromptPart]
    max_tokens: int = 64
    stop: Sequence[str] = ()
    time_budget_s: float | None = None
    # Called with the text generated so far after every token; True ends the generation.
    until: Callable[[str], bool] | None = None
    # Called on the engine thread with each new piece of text (streaming consumers).
    on_text: Callable[[str], None] | None = None
    # Indexes of prompt parts after which a hybrid model's recurrent state is worth keeping
    # (the stable head, the start of the cursor line): where the next keystroke's prompt
    # will still agree with this one.
    checkpoint_after: Sequence[int] = ()
    # Keep a hybrid model's recurrent state at the very end of the prompt: an agent's next
    # step is this prompt plus new parts, and then reads only the new tokens.
    checkpoint_end: bool = False
    # Texts wanted, the greedy one included. The others start with the next most likely
    # first tokens and continue greedily, decoded beside the greedy one in the same batches,
    # so the prompt is read once (engines without branches return the greedy text alone).
    alternatives: int = 1
    # ``until`` for an alternative's text. It stays in the window like ``until``.
    until_alternative: Callable[[str], bool] | None = None
    # The same judge as plain data (``completion.postprocess.Judge``), for an engine in
    # another process: the shared host rebuilds ``until_alternative`` from it, since only the
    # first text is streamed back to the window.
    until_data: dict[str, Any] | None = None


@dataclass
class Alternative:
    """One more text for the same prompt (see ``GenerationRequest.alternatives``)."""

    text: str
    stop_reason: StopReason
    generated_tokens: int = 0


@dataclass
class GenerationResult:
    text: str
    stop_reason: StopReason
    prompt_tokens: int = 0
    cached_tokens: int = 0
    prefilled_tokens: int = 0
    generated_tokens: int = 0
    prefill_s: float = 0.0
    decode_s: float = 0.0
    queued_s: float = 0.0
    # Digest of the logits the first token was sampled from: equal digests mean bit-for-bit
    # equal prompt processing (how tests prove that caching changes nothing).
    prompt_logits_digest: str = ""
    extra: dict[str, float] = field(default_factory=dict)
    # The other texts asked for, most likely first token first; duplicates left out.
    alternatives: list[Alternative] = field(default_factory=list)

    @property
    def tokens_per_s(self) -> float:
        return self.generated_tokens / self.decode_s if self.decode_s > 0 else 0.0


@dataclass
class EngineCounters:
    """Lifetime totals, read by tests and status reports to see what the engine really did."""

    requests: int = 0
    prompt_tokens: int = 0
    cached_tokens: int = 0
    prefilled_tokens: int = 0
    generated_tokens: int = 0
    cancelled: int = 0
    checkpoint_hits: int = 0
    checkpoint_saves: int = 0


# A generation in progress: yields between prefill chunks and tokens, returns its result.
Step = Generator[None, None, "GenerationResult"]


def run_to_end(steps: Step) -> GenerationResult:
    """Drive a step-wise generation to its result without interleaving anything."""
    while True:
        try:
            next(steps)
        except StopIteration as done:
            return done.value


class Engine(Protocol):
    """A loaded model owned by one thread: every call except ``tokenize`` runs on that thread."""

    info: ModelInfo
    counters: EngineCounters

    def tokenize(self, text: str, special: bool = False) -> list[int]:
        """Tokens of ``text`` (markers parsed only when ``special``); safe from any thread."""
        ...

    def generate(
        self, request: GenerationRequest, cancelled: Callable[[], bool], lane: int = 0
    ) -> GenerationResult: ...

    def start(
        self, request: GenerationRequest, cancelled: Callable[[], bool], lane: int = 0
    ) -> Step:
        """The same generation, step by step; a paused one keeps its lane's state intact."""
        ...

    def close(self) -> None: ...
