"""How a prompt is cut into decode chunks and how much of it a lane can keep: plain token
arithmetic, kept apart from the llama.cpp backend that uses it."""

from __future__ import annotations

from collections.abc import Sequence

# llama.cpp computes a one-token batch through different kernels than a batch of two or more:
# every prompt chunk has at least this many tokens (see the exactness rule in engine.llama).
MIN_CHUNK = 2


def common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i


def segment_ends(start: int, end: int, stops: Sequence[int], n_batch: int) -> list[int]:
    """Chunk ends for decoding tokens [start, end): at ``stops`` and at most ``n_batch`` apart,
    every chunk at least MIN_CHUNK tokens long (a stop that would break that is skipped)."""
    ends: list[int] = []
    position = start
    for stop in sorted({s for s in stops if start < s < end} | {end}):
        while stop - position > n_batch:
            step = n_batch
            if stop - (position + step) < MIN_CHUNK:
                step = stop - position - MIN_CHUNK
            position += step
            ends.append(position)
        if stop - position >= MIN_CHUNK and (end - stop >= MIN_CHUNK or stop == end):
            ends.append(stop)
            position = stop
    if not ends or ends[-1] != end:
        ends.append(end)
    return ends
