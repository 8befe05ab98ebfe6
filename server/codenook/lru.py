"""Bounded memos: the server remembers recent answers, never everything it has seen.

A language server runs for days, and what it would like to remember (cross-file contexts,
hover explanations, token counts) is keyed by text the user keeps changing. Every such memo
is therefore bounded and drops what was used least recently: typing on one line asks the
same questions again and again, while yesterday's questions are never asked twice.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class LRU(Generic[K, V]):
    """At most ``capacity`` values, the least recently used dropped first.

    ``hits`` counts the lookups that found a value, so that a stats request can tell whether
    a memo earns its keep.
    """

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.hits = 0
        self._items: OrderedDict[K, V] = OrderedDict()

    def __len__(self) -> int:
        return len(self._items)

    def get(self, key: K) -> V | None:
        value = self._items.get(key)
        if value is not None:
            self._items.move_to_end(key)
            self.hits += 1
        return value

    def put(self, key: K, value: V) -> None:
        self._items[key] = value
        self._items.move_to_end(key)
        while len(self._items) > self.capacity:
            self._items.popitem(last=False)


class CachedCounter:
    """A token counter that remembers its answers.

    Cross-file chunks and their lines repeat from keystroke to keystroke, and tokenizing them
    again would cost more than assembling the prompt; a count depends only on the text.
    """

    def __init__(self, count: Callable[[str], int], capacity: int = 50_000) -> None:
        self._count = count
        self._memo: LRU[str, int] = LRU(capacity)

    @property
    def capacity(self) -> int:
        return self._memo.capacity

    def __call__(self, text: str) -> int:
        cached = self._memo.get(text)
        if cached is None:
            cached = self._count(text)
            self._memo.put(text, cached)
        return cached
