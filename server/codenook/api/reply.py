"""The model's reply as API content: text and tool calls, stop sequences, the raw-text memory.

Streaming and non-streaming answers go through the same ``ReplyAssembler``, fed piece by
piece or all at once, so the two forms of one reply always carry the same blocks.
"""

from __future__ import annotations

import hashlib
import secrets
import string
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from codenook.agent.toolcalls import CallDone, CallFailed, Text, ToolCallParser
from codenook.api.convert import ToolDef, coerce_arguments
from codenook.lru import LRU

_ALPHABET = string.ascii_letters + string.digits


def new_id(prefix: str, length: int = 24) -> str:
    return prefix + "".join(secrets.choice(_ALPHABET) for _ in range(length))


# -- stop sequences --------------------------------------------------------------------------


def find_stop(text: str, stops: Sequence[str], start: int = 0) -> tuple[int, str] | None:
    """The earliest stop sequence in ``text`` that ends after ``start``: (index, stop)."""
    best: tuple[int, str] | None = None
    for stop in stops:
        if not stop:
            continue
        at = text.find(stop, max(0, start - len(stop) + 1))
        if at >= 0 and (best is None or at < best[0]):
            best = (at, stop)
    return best


def held_back(text: str, stops: Sequence[str]) -> int:
    """How many trailing characters could still become a stop sequence (not to be shown yet)."""
    keep = 0
    for stop in stops:
        for n in range(min(len(stop) - 1, len(text)), keep, -1):
            if text.endswith(stop[:n]):
                keep = n
                break
    return keep


class StopWatch:
    """Cuts a growing reply at the first stop sequence, releasing only text that is final.

    ``until`` is handed to the engine (it runs on the engine thread and only reads ``stops``
    and the text it is given); ``push`` runs on the event loop with the streamed pieces.
    """

    def __init__(self, stops: Sequence[str]) -> None:
        self.stops = tuple(s for s in stops if s)
        self._text = ""
        self._released = 0
        self._checked = 0  # engine thread only: how much of the text ``until`` has searched
        self.hit: tuple[int, str] | None = None

    def until(self, text: str) -> bool:
        """Called after every token with the whole text: only its new end is searched."""
        start, self._checked = self._checked, len(text)
        return bool(self.stops) and find_stop(text, self.stops, start) is not None

    def push(self, piece: str) -> str:
        """The part of the reply that became final with ``piece``."""
        if self.hit is not None:
            return ""
        start = len(self._text)
        self._text += piece
        self.hit = find_stop(self._text, self.stops, start) if self.stops else None
        end = self.hit[0] if self.hit else len(self._text) - held_back(self._text, self.stops)
        out = self._text[self._released : end]
        self._released = max(self._released, end)
        return out

    def finish(self, full: str) -> str:
        """The rest of the reply once the engine is done; ``full`` is the engine's whole text."""
        if self.hit is None:
            self.hit = find_stop(full, self.stops) if self.stops else None
        end = self.hit[0] if self.hit else len(full)
        out = full[self._released : end] if end > self._released else ""
        self._released = max(self._released, end)
        self._text = full
        return out

    @property
    def text(self) -> str:
        """The reply as the client sees it (cut at the stop sequence)."""
        return self._text[: self.hit[0]] if self.hit else self._text


# -- reply to content blocks -----------------------------------------------------------------


@dataclass
class TextDelta:
    index: int  # the content block's index
    text: str
    first: bool  # this delta opens the block


@dataclass
class ToolUse:
    index: int
    id: str
    name: str
    input: dict[str, Any]
    raw: str


@dataclass
class BlockEnd:
    index: int


Op = TextDelta | ToolUse | BlockEnd


@dataclass
class Content:
    """The finished reply: its blocks in order (``{"type": "text"|"tool_use", ...}``)."""

    blocks: list[dict[str, Any]] = field(default_factory=list)

    @property
    def text(self) -> str:
        return "".join(b["text"] for b in self.blocks if b["type"] == "text")

    @property
    def tool_uses(self) -> list[dict[str, Any]]:
        return [b for b in self.blocks if b["type"] == "tool_use"]


class ReplyAssembler:
    """Visible text and complete tool calls, as content-block operations, as the reply grows.

    Whitespace between blocks (the newlines around a call) opens no block of its own. A call
    that does not parse stays in the text as the model wrote it, so nothing is lost.
    """

    def __init__(self, tools: Sequence[ToolDef], id_prefix: str = "toolu_") -> None:
        self._schemas: Mapping[str, Mapping[str, Any]] = {t.name: t.schema for t in tools}
        self._calls = bool(tools)
        self._parser = ToolCallParser()
        self._prefix = id_prefix
        self._index = -1
        self._open_text = False
        self._space = ""
        self.content = Content()

    def feed(self, piece: str) -> list[Op]:
        if not self._calls:  # no tools offered: a <tool_call> in the text is just text
            return self._text(piece)
        ops: list[Op] = []
        for event in self._parser.feed(piece):
            ops += self._event(event)
        return ops

    def close(self) -> list[Op]:
        ops: list[Op] = []
        if self._calls:
            for event in self._parser.close():
                ops += self._event(event)
        if self._open_text:
            ops.append(BlockEnd(self._index))
            self._open_text = False
        return ops

    def _event(self, event: object) -> list[Op]:
        if isinstance(event, Text):
            return self._text(event.text)
        if isinstance(event, CallFailed):
            return self._text(event.error.raw)
        if isinstance(event, CallDone):
            ops: list[Op] = []
            if self._open_text:
                ops.append(BlockEnd(self._index))
                self._open_text = False
            self._space = ""
            call = event.call
            self._index += 1
            use = ToolUse(
                self._index,
                new_id(self._prefix),
                call.name,
                coerce_arguments(call.arguments, self._schemas.get(call.name)),
                call.raw,
            )
            block = {"type": "tool_use", "id": use.id, "name": use.name, "input": use.input}
            self.content.blocks.append(block)
            return [*ops, use, BlockEnd(self._index)]
        return []  # CallStarted: the block is sent once the call is complete

    def _text(self, text: str) -> list[Op]:
        if not text:
            return []
        if not self._open_text:
            if not (self._space + text).strip():
                self._space += text
                return []
            text, self._space = self._space + text, ""
            self._index += 1
            self._open_text = True
            self.content.blocks.append({"type": "text", "text": text})
            return [TextDelta(self._index, text, True)]
        self.content.blocks[-1]["text"] += text
        return [TextDelta(self._index, text, False)]


def assemble(text: str, tools: Sequence[ToolDef], id_prefix: str = "toolu_") -> Content:
    """A whole reply's content, the same as streaming it."""
    assembler = ReplyAssembler(tools, id_prefix)
    assembler.feed(text)
    assembler.close()
    return assembler.content


# -- what the model really wrote, for the next turn ------------------------------------------


class ReplyMemory:
    """The exact text the model generated for recent replies, keyed by what the client echoes.

    A client sends our reply back as blocks on the next turn; rendering those blocks again
    would almost give the model's text, but "almost" changes tokens. Replies with tool calls
    are found by their first call id (which we minted), text-only replies by a hash of their
    text.
    """

    def __init__(self, capacity: int = 256) -> None:
        self._items: LRU[str, str] = LRU(capacity)

    @staticmethod
    def key(text: str, call_ids: Sequence[str]) -> str:
        if call_ids:
            return "id:" + call_ids[0]
        return "text:" + hashlib.blake2b(text.encode(), digest_size=16).hexdigest()

    def remember(self, content: Content, raw: str) -> None:
        ids = [b["id"] for b in content.tool_uses]
        if ids or content.text:
            self._items.put(self.key(content.text, ids), raw)

    def recall(self, text: str, call_ids: Sequence[str]) -> str | None:
        return self._items.get(self.key(text, call_ids))
