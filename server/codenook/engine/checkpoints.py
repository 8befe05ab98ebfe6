"""Recurrent-state checkpoints: an LRU of state blobs keyed by the exact token prefix.

A hybrid model's recurrent layers fold the whole prompt into one state that cannot be rewound,
so reuse needs a saved copy of that state at a position the next prompt shares. A blob is only
valid for the exact tokens before its position in the sequence (lane) whose attention cache
holds them, hence the key: a hash of those tokens, the position and the sequence id. The
budget is in bytes because one checkpoint of Qwen3-Coder-Next is ~75 MiB while the test
model's is a few KiB.
"""

from __future__ import annotations

import hashlib
from array import array
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass


def prefix_key(tokens: Sequence[int], position: int, seq: int = 0) -> bytes:
    digest = hashlib.blake2b(array("i", tokens[:position]).tobytes(), digest_size=16)
    digest.update(position.to_bytes(8, "little"))
    digest.update(seq.to_bytes(4, "little"))
    return digest.digest()


@dataclass
class Checkpoint:
    position: int
    blob: bytes


class CheckpointCache:
    def __init__(self, budget_bytes: int) -> None:
        self.budget_bytes = budget_bytes
        self._entries: OrderedDict[bytes, Checkpoint] = OrderedDict()
        self.bytes = 0
        self.evictions = 0

    def __len__(self) -> int:
        return len(self._entries)

    def has(self, tokens: Sequence[int], position: int, seq: int = 0) -> bool:
        return prefix_key(tokens, position, seq) in self._entries

    def put(self, tokens: Sequence[int], position: int, blob: bytes, seq: int = 0) -> bool:
        """Store a blob; False when it alone exceeds the budget (nothing is stored then)."""
        if len(blob) > self.budget_bytes:
            return False
        key = prefix_key(tokens, position, seq)
        old = self._entries.pop(key, None)
        if old is not None:
            self.bytes -= len(old.blob)
        self._entries[key] = Checkpoint(position, blob)
        self.bytes += len(blob)
        while self.bytes > self.budget_bytes:
            _, evicted = self._entries.popitem(last=False)
            self.bytes -= len(evicted.blob)
            self.evictions += 1
        return True

    def deepest(self, tokens: Sequence[int], limit: int, seq: int = 0) -> Checkpoint | None:
        """The checkpoint at the largest position <= ``limit`` whose prefix matches ``tokens``.

        Positions are few (a handful per prompt), so we probe each stored position instead of
        keeping a trie.
        """
        positions = sorted(
            {c.position for c in self._entries.values() if c.position <= limit}, reverse=True
        )
        for position in positions:
            key = prefix_key(tokens, position, seq)
            entry = self._entries.get(key)
            if entry is not None:
                self._entries.move_to_end(key)
                return entry
        return None

    def clear(self) -> None:
        self._entries.clear()
        self.bytes = 0
