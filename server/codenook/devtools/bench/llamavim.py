"""llama.vim's client logic, without the network: what it sends to llama-server and when.

Every constant and rule here is llama.vim's (ggml-org/llama.vim, ``autoload/llama.vim``); the
list with what each one follows is in docs/bench.md ("The llama.vim peer"). ``targets``
drives llama-server with it.
"""

from __future__ import annotations

import random
import re
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from codenook.devtools.bench.replay import RequestRecord
from codenook.devtools.bench.trace import Buffer

N_PREFIX = 256  # lines before the cursor line in input_prefix
N_SUFFIX = 64  # lines after it in input_suffix
T_MAX_PROMPT_MS = 500
T_MAX_PREDICT_MS = 1000  # a speculative request's limit; a first request gets FIRST_PREDICT_MS
FIRST_PREDICT_MS = 250
MAX_LINE_SUFFIX = 8  # no automatic request with more characters right of the cursor
MAX_CACHE_KEYS = 250  # answers kept by the client (LRU)
RING_N_CHUNKS = 16
RING_CHUNK_SIZE = 64
RING_SCOPE = 1024
RING_UPDATE_S = 1.0
RING_QUEUE = 16
RING_IDLE_S = 3.0  # in insert mode the ring moves only after the cursor rested this long
RETRY_S = 0.1  # a request while one is in flight is retried after this (one timer)
PICK_DISTANCE = 32  # lines the cursor must move before chunks are gathered again
LOOKBACK = 128  # characters looked back for an answer the typist is typing through
FIM_SAMPLERS = ["top_k", "top_p", "infill"]
# llama.vim's response_fields, plus the three the benchmark needs for its token rows (they
# only select what the reply carries, not what the server does).
RESPONSE_FIELDS = [
    "content",
    "timings/prompt_n",
    "timings/prompt_ms",
    "timings/prompt_per_token_ms",
    "timings/prompt_per_second",
    "timings/predicted_n",
    "timings/predicted_ms",
    "timings/predicted_per_token_ms",
    "timings/predicted_per_second",
    "truncated",
    "tokens_cached",
]
MEASURED_FIELDS = ["tokens_evaluated", "timings/cache_n"]
_BLANK = re.compile(r"[ \t]*")  # Vim's ^\s*$ (\s is a space or a tab)
_NON_WORD = re.compile(r"[^0-9A-Za-z_]+")  # Vim's \W


def _is_blank(line: str) -> bool:
    return _BLANK.fullmatch(line) is not None


def _leading_blank(line: str) -> int:
    match = _BLANK.match(line)
    return match.end() if match else 0


def chunk_similarity(c0: list[str], c1: list[str]) -> float:
    """llama.vim's s:chunk_sim: 2 × (words of c1 found in c0) / (words of both)."""
    words0 = [w for w in _NON_WORD.split("\n".join(c0)) if w]
    words1 = [w for w in _NON_WORD.split("\n".join(c1)) if w]
    if not words0 and not words1:
        return 1.0
    seen = set(words0)
    return 2.0 * sum(w in seen for w in words1) / (len(words0) + len(words1))


@dataclass
class Chunk:
    data: list[str]
    filename: str
    time: tuple[int, int]

    def extra(self) -> dict[str, Any]:
        return {
            "text": "\n".join(self.data) + "\n",
            "time": list(self.time),
            "filename": self.filename,
        }


@dataclass
class LocalContext:
    prefix: str
    middle: str
    suffix: str
    indent: int
    line_cur_suffix: str

    def key(self) -> str:  # what llama.vim hashes (sha256 of this; the text itself serves here)
        return self.prefix + self.middle + "Î" + self.suffix


@dataclass
class VimJob:
    """One /infill request of the FIM lane (llama.vim's s:current_job_fim)."""

    keys: list[str]
    record: RequestRecord | None  # the keystroke it serves; None: speculative or background
    kind: str  # fim | speculative


class LlamaVimClient:
    """llama.vim's client-side logic on a benchmark buffer: what it sends and when.

    Pure bookkeeping (no I/O): local context, the ring buffer of chunks, the answer cache and
    the display rules. ``LlamaVimTarget`` posts what it produces. Lines count from 1, as Vim's.
    """

    def __init__(self, filename: str, seed: int = 0) -> None:
        self.filename = filename
        self.rng = random.Random(seed)  # llama.vim uses Vim's rand(): any seed is as faithful
        self.ring: list[Chunk] = []
        self.queued: list[Chunk] = []
        self.evictions = 0
        self.pos_y_pick = -9999
        self.indent_last = -1
        self.cache: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self.modified = False
        self.started = time.time()

    # -- the buffer as Vim sees it
    @staticmethod
    def lines(buffer: Buffer) -> list[str]:
        lines = buffer.text.split("\n")
        line, _ = buffer.position()
        if len(lines) > 1 and lines[-1] == "" and line < len(lines) - 1:
            lines.pop()  # a final newline ends the last line; it does not start one
        return lines

    @staticmethod
    def cursor(buffer: Buffer) -> tuple[int, int]:
        """(column from 0, line from 1) in code points; Vim counts bytes, which splits a line
        at the same place."""
        offset = buffer.offset
        start = buffer.text.rfind("\n", 0, offset) + 1
        return offset - start, buffer.text.count("\n", 0, offset) + 1

    def local(self, lines: list[str], x: int, y: int, prev: list[str]) -> LocalContext:
        """s:fim_ctx_local: lines around the cursor; with ``prev`` as if it were accepted."""
        max_y = len(lines)
        lines_suffix = lines[y : min(max_y, y + N_SUFFIX)]
        if not prev:
            line_cur = lines[y - 1]
            cur_prefix, cur_suffix = line_cur[:x], line_cur[x:]
            lines_prefix = lines[max(1, y - N_PREFIX) - 1 : y - 1]
            if _is_blank(line_cur):
                indent, cur_prefix, cur_suffix = 0, "", ""
            else:
                indent = _leading_blank(line_cur)
        else:
            line_cur = lines[y - 1] + prev[0] if len(prev) == 1 else prev[-1]
            cur_prefix, cur_suffix = line_cur, ""
            lines_prefix = lines[max(1, y - N_PREFIX + len(prev) - 1) - 1 : y - 1]
            if len(prev) > 1:
                lines_prefix += [lines[y - 1] + prev[0], *prev[1:-1]]
            indent = self.indent_last
        return LocalContext(
            prefix="\n".join(lines_prefix) + "\n",
            middle=cur_prefix,
            suffix=cur_suffix + "\n" + "\n".join(lines_suffix) + "\n",
            indent=indent,
            line_cur_suffix=cur_suffix,
        )

    @staticmethod
    def keys(ctx: LocalContext) -> list[str]:
        """The context's key and those with up to 3 first lines of the prefix dropped."""
        keys = [ctx.key()]
        trimmed = ctx.prefix
        for _ in range(3):
            trimmed = trimmed.split("\n", 1)[1] if "\n" in trimmed else ""
            if not trimmed:
                break
            keys.append(trimmed + ctx.middle + "Î" + ctx.suffix)
        return keys

    # -- the answer cache (s:cache_insert / s:cache_get)
    def cache_get(self, key: str) -> dict[str, Any] | None:
        value = self.cache.get(key)
        if value is not None:
            self.cache.move_to_end(key)
        return value

    def cache_insert(self, key: str, value: dict[str, Any]) -> None:
        if key not in self.cache and len(self.cache) > MAX_CACHE_KEYS - 1:
            self.cache.popitem(last=False)
        self.cache[key] = value
        self.cache.move_to_end(key)

    # -- the ring buffer
    @staticmethod
    def around(lines: list[str], y: int) -> list[str]:
        """Half a chunk of lines either side of line ``y`` (what buffer events gather)."""
        half = RING_CHUNK_SIZE // 2
        return lines[max(1, y - half) - 1 : min(y + half, len(lines))]

    def _slice(self, text: list[str]) -> list[str]:
        half = RING_CHUNK_SIZE // 2
        l0 = self.rng.randint(0, max(0, len(text) - half))
        l1 = min(l0 + half, len(text))
        return text[l0 : l1 + 1]  # Vim's slices include their end

    def pick_chunk(self, text: list[str], no_mod: bool, do_evict: bool) -> None:
        """s:pick_chunk: queue a random part of ``text`` unless the ring has it or one like it."""
        if (no_mod and self.modified) or len(text) < 3:
            return
        chunk = text if len(text) + 1 < RING_CHUNK_SIZE else self._slice(text)
        if any(c.data == chunk for c in (*self.ring, *self.queued)):
            return
        for pool in (self.queued, self.ring):
            for i in range(len(pool) - 1, -1, -1):
                if chunk_similarity(pool[i].data, chunk) > 0.9:
                    if not do_evict:
                        return
                    del pool[i]
                    self.evictions += 1
        if len(self.queued) == RING_QUEUE:
            self.queued.pop(0)
        now = time.time()
        self.queued.append(Chunk(chunk, self.filename, (int(now), int(now % 1 * 1e6))))

    def ring_update(self) -> dict[str, Any] | None:
        """s:ring_update's work once it runs: one queued chunk into the ring, and the request
        that has the server read the new extra context (None: nothing queued)."""
        if not self.queued:
            return None
        if len(self.ring) == RING_N_CHUNKS:
            self.ring.pop(0)
        self.ring.append(self.queued.pop(0))
        return {
            "id_slot": 0,
            "input_prefix": "",
            "input_suffix": "",
            "input_extra": [c.extra() for c in self.ring],
            "prompt": "",
            "n_predict": 0,
            "temperature": 0.0,
            "samplers": [],
            "stream": False,
            "cache_prompt": True,
            "t_max_prompt_ms": 1,
            "t_max_predict_ms": 1,
            "response_fields": ["", *MEASURED_FIELDS, "timings/prompt_n"],
        }

    def fim_body(
        self, lines: list[str], cursor_y: int, ctx: LocalContext, prev: list[str], n_predict: int
    ) -> dict[str, Any]:
        """The /infill request of llama#fim, after it evicts ring chunks like the cursor's."""
        self.indent_last = ctx.indent
        here = self._slice(self.around(lines, cursor_y))
        for i in range(len(self.ring) - 1, -1, -1):
            if chunk_similarity(self.ring[i].data, here) > 0.5:
                del self.ring[i]
                self.evictions += 1
        return {
            "id_slot": 0,
            "input_prefix": ctx.prefix,
            "input_suffix": ctx.suffix,
            "input_extra": [c.extra() for c in self.ring],
            "prompt": ctx.middle,
            "n_predict": n_predict,
            "stop": [],
            "n_indent": ctx.indent,
            "top_k": 40,
            "top_p": 0.90,
            "samplers": FIM_SAMPLERS,
            "stream": False,
            "cache_prompt": True,
            "t_max_prompt_ms": T_MAX_PROMPT_MS,
            "t_max_predict_ms": T_MAX_PREDICT_MS if prev else FIRST_PREDICT_MS,
            "response_fields": [*RESPONSE_FIELDS, *MEASURED_FIELDS],
        }

    def gather(self, lines: list[str], y: int) -> None:
        """After a request: chunks beyond the local context, when the cursor moved far."""
        if abs(y - self.pos_y_pick) <= PICK_DISTANCE:
            return
        max_y = len(lines)
        self.pick_chunk(lines[max(1, y - RING_SCOPE) - 1 : max(1, y - N_PREFIX)], False, False)
        start = min(max_y, y + N_SUFFIX)
        self.pick_chunk(lines[start - 1 : min(max_y, y + N_SUFFIX + RING_CHUNK_SIZE)], False, False)
        self.pos_y_pick = y

    # -- what is shown (s:fim_try_hint, s:fim_render)
    def find_answer(self, ctx: LocalContext) -> str | None:
        """The cached answer for ``ctx``, or one from up to 128 characters back whose start
        the typist has typed since (its rest)."""
        cached = self.cache_get(ctx.key())
        if cached is not None:
            return str(cached.get("content", ""))
        typed = ctx.prefix + ctx.middle
        found: str | None = None
        best = 0
        for i in range(LOOKBACK):
            removed = typed[-(1 + i) :] if i + 1 <= len(typed) else ""
            earlier = self.cache_get(typed[: max(0, len(typed) - 1 - i)] + "Î" + ctx.suffix)
            if earlier is None:
                continue
            content = str(earlier.get("content", ""))
            if content[: i + 1] != removed:
                continue
            rest = content[i + 1 :]
            if rest:
                if found is None:
                    found = rest  # (llama.vim does not raise `best` for the first one)
                elif len(rest) > best:
                    best, found = len(rest), rest
        return found

    @staticmethod
    def render(lines: list[str], x: int, y: int, content_text: str) -> tuple[list[str], bool]:
        """s:fim_render's treatment of an answer: the lines shown and whether they count."""
        content = content_text.split("\n")
        while content and content[-1] == "":
            content.pop()
        can_accept = bool(content)
        content = content or [""]
        line_cur = lines[y - 1]
        if _is_blank(line_cur):
            lead = min(_leading_blank(content[0]), len(line_cur))
            line_cur, content[0] = content[0][:lead], content[0][lead:]
        cur_prefix, cur_suffix = line_cur[:x], line_cur[x:]

        def line(n: int) -> str:
            return lines[n - 1] if 1 <= n <= len(lines) else ""

        if len(content) > 1 and content[0] == "" and content[1:] == lines[y : y + len(content) - 1]:
            content = [""]
        if len(content) == 1 and content[0] == cur_suffix:
            content = [""]
        cmp_y = y + 1
        while cmp_y < len(lines) and _is_blank(line(cmp_y)):
            cmp_y += 1
        if cur_prefix + content[0] == line(cmp_y):
            last = content[-1]
            head = line(cmp_y + 1)[: len(last)] if last else line(cmp_y + 1)
            following = "\n".join(lines[cmp_y : cmp_y + len(content) - 1])
            if (
                len(content) == 1
                or (len(content) == 2 and last == head)
                or (len(content) > 2 and "\n".join(content[1:]) == following)
            ):
                content = [""]
        content[-1] += cur_suffix
        if _is_blank("\n".join(content)):
            can_accept = False
        return content, can_accept
