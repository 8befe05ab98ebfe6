"""Alternatives: several greedy continuations of one prompt, decoded side by side.

Each continuation (a branch) lives in a llama.cpp sequence of its own that starts as a copy of
the prompt's state: the attention cache is shared in the unified cache and a hybrid model's
recurrent state is copied, so the prompt is read once however many branches follow. All live
branches then advance together, one token each per decode: where decoding is bound by reading
the weights, a batch reads them once for every branch. On a small CPU thread it is bound by
arithmetic instead and each branch costs about what the first does (``codenook bench engine``
measures it; docs/bench.md#alternatives). The llama.cpp calls stay in ``engine.llama``; this
module only plans the steps.
"""

from __future__ import annotations

import codecs
import time
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from codenook.engine.protocol import (
    Alternative,
    GenerationRequest,
    GenerationResult,
    StopReason,
)

# How many of the most likely first tokens are looked at to find the branches' first tokens.
CANDIDATES = 32

TokenInfo = Callable[[int], tuple[bool, bytes]]
# Decodes (sequence, position, token) entries in one batch; the next greedy token of each.
Step = Callable[[list[tuple[int, int, int]]], list[int]]


@dataclass(frozen=True)
class Sequences:
    """What the branches need of the llama.cpp context."""

    fork: Callable[[int, int], None]  # (source, destination): a copy of the source's state
    drop: Callable[[int], None]  # empty a sequence
    step: Step


def run(
    request: GenerationRequest,
    cancelled: Callable[[], bool],
    started: float,
    logits: np.ndarray,
    origin: tuple[int, int],
    spare: Sequence[int],
    info: TokenInfo,
    seqs: Sequences,
    intact: Callable[[], bool],
    result: GenerationResult,
) -> Generator[None, None, int]:
    """The greedy text into ``result`` and its alternatives into ``result.alternatives``,
    from the prompt just read into sequence ``origin[0]`` (next position ``origin[1]``, last
    logits ``logits``); the ``spare`` sequences used are emptied again, whatever happens.
    Returns the tokens the alternatives generated."""
    seq, position = origin
    firsts = first_tokens(logits, min(request.alternatives, len(spare) + 1), info)
    used = list(spare[: len(firsts) - 1])
    for other in used:
        seqs.fork(seq, other)
    try:
        outcomes = yield from lockstep(
            request, cancelled, started, firsts, [seq, *used], position, info, seqs.step, intact
        )
    finally:
        for other in used:
            seqs.drop(other)
    greedy = outcomes[0]
    result.text, result.stop_reason = greedy.text, greedy.stop_reason
    result.generated_tokens = greedy.generated_tokens
    result.alternatives = outcomes[1:]
    extra = sum(o.generated_tokens for o in result.alternatives)
    result.extra["alternative_tokens"] = float(extra)
    return extra


def first_tokens(logits: np.ndarray, count: int, info: TokenInfo) -> list[int]:
    """The greedy token, then the next most likely ones whose branch can give another text.

    An end token would give an empty text, and a piece that begins another chosen piece (or
    that another chosen piece begins, unless that one is only white space) is usually
    completed by the greedy continuation into the same text: both are skipped.
    """
    greedy = int(logits.argmax())
    if count <= 1:
        return [greedy]
    top = min(CANDIDATES, logits.shape[0])
    order = np.argpartition(-logits, top - 1)[:top]
    ranked = [int(t) for t in order[np.argsort(-logits[order], kind="stable")]]
    chosen, pieces = [greedy], [info(greedy)[1]]
    for token in ranked:
        if len(chosen) == count:
            break
        end, piece = info(token)
        if token in chosen or end or not piece:
            continue
        if any(p.startswith(piece) or (piece.startswith(p) and p.strip()) for p in pieces):
            continue
        chosen.append(token)
        pieces.append(piece)
    return chosen


@dataclass
class _Branch:
    seq: int
    token: int  # the next token to emit
    until: Callable[[str], bool] | None
    on_text: Callable[[str], None] | None
    decoder: Any = field(default_factory=lambda: codecs.getincrementaldecoder("utf-8")("replace"))
    text: str = ""
    generated: int = 0
    stop: StopReason | None = None
    duplicate: bool = False


def lockstep(
    request: GenerationRequest,
    cancelled: Callable[[], bool],
    started: float,
    firsts: Sequence[int],
    seqs: Sequence[int],
    position: int,
    info: TokenInfo,
    step: Step,
    intact: Callable[[], bool],
) -> Generator[None, None, list[Alternative]]:
    """Run one branch per first token (``seqs[i]`` holds branch ``i``'s prompt state, its
    next position is ``position``) until each stops; branch 0 is the greedy one, streamed
    through ``on_text`` and judged by ``until``. Returns every branch's outcome, in order;
    an alternative that became another branch's text is dropped after index 0 is kept.
    ``intact`` says whether the sequences survived the last yield."""
    branches = [
        _Branch(
            seq,
            token,
            request.until if i == 0 else request.until_alternative,
            request.on_text if i == 0 else None,
        )
        for i, (seq, token) in enumerate(zip(seqs, firsts, strict=True))
    ]
    stops = tuple(s for s in request.stop if s)
    stop_ends = frozenset(s[-1] for s in stops)
    budget = request.time_budget_s
    seen: dict[str, int] = {}  # every text a branch has had -> the first branch that had it
    while True:
        live = [b for b in branches if b.stop is None]
        if not live:
            break
        if cancelled() or not intact():
            for b in live:
                b.stop = "cancelled"
            break
        for b in live:
            b.stop = _emit(b, request.max_tokens, info, stops, stop_ends)
        _drop_duplicates(branches, seen)
        if budget is not None and time.perf_counter() - started > budget:
            for b in branches:
                b.stop = b.stop or "time"
        feed = [b for b in branches if b.stop is None]
        if not feed:
            break
        nexts = step([(b.seq, position + b.generated - 1, b.token) for b in feed])
        for b, token in zip(feed, nexts, strict=True):
            b.token = token
        yield
    return [
        Alternative(b.text, b.stop or "length", b.generated)
        for i, b in enumerate(branches)
        if i == 0 or not b.duplicate
    ]


def _emit(
    b: _Branch, max_tokens: int, info: TokenInfo, stops: tuple[str, ...], ends: frozenset[str]
) -> StopReason | None:
    """Take the branch's next token into its text; why it stops, or None to go on."""
    end, raw = info(b.token)
    if end:
        return "eos"
    b.generated += 1
    piece = b.decoder.decode(raw)
    b.text += piece
    for stop in stops if not ends.isdisjoint(piece) else ():
        at = b.text.find(stop, max(0, len(b.text) - len(piece) - len(stop)))
        if at != -1:
            b.text = b.text[:at]
            return "stop"
    if piece and b.on_text is not None:
        b.on_text(piece)
    if b.until is not None and b.until(b.text):
        return "until"
    return "length" if b.generated >= max_tokens else None


def _drop_duplicates(branches: list[_Branch], seen: dict[str, int]) -> None:
    """Two branches that have had the same text (now or at different steps: "re" + "turn" and
    "return") will most likely go on the same way: the later one in the list (never the
    greedy one) stops here and is left out of the answer."""
    for i, b in enumerate(branches):
        if b.duplicate or not b.text:  # nothing written yet (or half a character)
            continue
        first = seen.setdefault(b.text, i)
        if first != i:
            loser = branches[max(first, i)]
            loser.duplicate = True
            loser.stop = loser.stop or "until"
            seen[b.text] = min(first, i)
