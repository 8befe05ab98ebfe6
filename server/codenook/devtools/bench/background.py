"""What runs beside a replay in ``codenook bench shared``: a memory sampler and an agent.

``RssSampler`` reads the resident set size (``VmRSS`` in ``/proc/PID/status``) of a group of
processes at the same instants and keeps the peak of their sum, so "host + three windows" is
one figure measured together, not four peaks taken at different times.

``Conversation`` is an Anthropic Messages API client doing what an agent does to the engine:
streaming ``POST /v1/messages`` turns with a long ``max_tokens``, one after the other, the
conversation growing by each answer (so the host may reuse its prefix) until it is restarted.
It runs on a thread of its own with ``http.client``: the standard library only, as the rest
of the benchmark.
"""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import json
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

SAMPLE_INTERVAL_S = 0.05


def rss_bytes(pid: int) -> int:
    """Resident memory of ``pid`` in bytes; 0 once it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text(encoding="ascii").splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0


class RssSampler:
    """Sums the RSS of ``pids()`` every ``interval`` seconds while running; keeps the peaks."""

    def __init__(
        self, pids: Callable[[], dict[str, int]], interval: float = SAMPLE_INTERVAL_S
    ) -> None:
        self._pids = pids  # name -> pid, asked again at each sample (processes come and go)
        self.interval = interval
        self.peak_total = 0
        self.peak_each: dict[str, int] = {}
        self.samples = 0
        self._task: asyncio.Task[None] | None = None

    def sample(self) -> None:
        sizes = {name: rss_bytes(pid) for name, pid in self._pids().items()}
        self.samples += 1
        self.peak_total = max(self.peak_total, sum(sizes.values()))
        for name, size in sizes.items():
            self.peak_each[name] = max(self.peak_each.get(name, 0), size)

    async def _run(self) -> None:
        while True:
            self.sample()
            await asyncio.sleep(self.interval)

    def __enter__(self) -> RssSampler:
        self._task = asyncio.ensure_future(self._run())
        return self

    def __exit__(self, *exc: object) -> None:
        if self._task is not None:
            self._task.cancel()
        self.sample()

    def to_json(self) -> dict[str, Any]:
        return {
            "peak_total_bytes": self.peak_total,
            "peak_bytes": dict(self.peak_each),
            "samples": self.samples,
        }


PROMPT = (
    "Explain, step by step and at length, how a hash map handles collisions, then write a"
    " small Python implementation with comments."
)
FOLLOW_UP = "Go on: more detail, more code."


@dataclass
class Conversation:
    """A streaming Anthropic-API conversation against ``base_url`` until ``stop()``."""

    base_url: str  # http://host:port
    max_tokens: int = 256
    turns_per_conversation: int = 4  # then it starts over: the context must not overflow
    api_key: str | None = None
    turns: int = 0
    errors: list[str] = field(default_factory=list)
    output_tokens: int = 0
    input_tokens: int = 0
    cache_read_tokens: int = 0
    text_events: int = 0
    first_text_at: float | None = None
    _stop: threading.Event = field(default_factory=threading.Event)
    _connection: http.client.HTTPConnection | None = None
    _thread: threading.Thread | None = None
    _started_at: float = 0.0
    _stopped_at: float = 0.0

    def start(self) -> None:
        self._started_at = time.monotonic()
        self._thread = threading.Thread(target=self._run, name="bench-conversation", daemon=True)
        self._thread.start()

    async def generating(self, timeout: float = 120.0) -> bool:
        """Wait until the first text arrived (the engine is busy with the conversation)."""
        deadline = time.monotonic() + timeout
        while self.first_text_at is None and time.monotonic() < deadline:
            if self._thread is not None and not self._thread.is_alive():
                return False
            await asyncio.sleep(0.02)
        return self.first_text_at is not None

    def stop(self) -> None:
        """End the conversation: the stream in flight is closed (the host frees the engine)."""
        self._stopped_at = time.monotonic()
        self._stop.set()
        connection = self._connection
        if connection is not None and connection.sock is not None:
            with contextlib.suppress(OSError):
                connection.sock.shutdown(socket.SHUT_RDWR)
        if self._thread is not None:
            self._thread.join(30)

    def _run(self) -> None:
        messages: list[dict[str, Any]] = []
        while not self._stop.is_set():
            if not messages or len(messages) >= 2 * self.turns_per_conversation:
                messages = [{"role": "user", "content": PROMPT}]
            try:
                answer = self._turn(messages)
            except (OSError, http.client.HTTPException, ValueError) as exc:
                if self._stop.is_set():
                    return
                self.errors.append(f"{type(exc).__name__}: {exc}"[:300])
                messages = []
                self._stop.wait(0.5)
                continue
            if answer is None:  # an error answer (recorded): start over
                messages = []
                self._stop.wait(0.5)
                continue
            messages += [
                {"role": "assistant", "content": answer or "..."},
                {"role": "user", "content": FOLLOW_UP},
            ]

    def _turn(self, messages: list[dict[str, Any]]) -> str | None:
        url = urlsplit(self.base_url)
        body = json.dumps(
            {
                "model": "codenook-bench",
                "max_tokens": self.max_tokens,
                "stream": True,
                "messages": messages,
            }
        ).encode("utf-8")
        headers = {"Content-Type": "application/json", "anthropic-version": "2023-06-01"}
        if self.api_key:
            headers["x-api-key"] = self.api_key
        connection = http.client.HTTPConnection(url.hostname or "127.0.0.1", url.port, timeout=600)
        self._connection = connection
        try:
            connection.request("POST", "/v1/messages", body, headers)
            response = connection.getresponse()
            if response.status != 200:
                self.errors.append(f"HTTP {response.status}: {response.read()[:300]!r}")
                return None
            return self._read_stream(response)
        finally:
            connection.close()
            self._connection = None

    def _read_stream(self, response: http.client.HTTPResponse) -> str | None:
        text: list[str] = []
        while not self._stop.is_set():
            line = response.readline()
            if not line:
                break
            if not line.startswith(b"data:"):
                continue
            event = json.loads(line[5:])
            kind = event.get("type")
            if kind == "content_block_delta":
                delta = event.get("delta") or {}
                if delta.get("type") == "text_delta":
                    text.append(str(delta.get("text", "")))
                    self.text_events += 1
                    if self.first_text_at is None:
                        self.first_text_at = time.monotonic()
            elif kind == "message_delta":  # the final usage: what the engine really did
                usage = event.get("usage") or {}
                self.output_tokens += int(usage.get("output_tokens") or 0)
                self.input_tokens += int(usage.get("input_tokens") or 0)
                self.cache_read_tokens += int(usage.get("cache_read_input_tokens") or 0)
            elif kind == "error":
                self.errors.append(json.dumps(event.get("error"))[:300])
                return None
            elif kind == "message_stop":
                self.turns += 1
                return "".join(text)
        return "".join(text)

    def to_json(self) -> dict[str, Any]:
        seconds = max(1e-9, (self._stopped_at or time.monotonic()) - self._started_at)
        return {
            "max_tokens": self.max_tokens,
            "turns_completed": self.turns,
            "text_events": self.text_events,
            "output_tokens": self.output_tokens,
            "output_tokens_per_s": round(self.output_tokens / seconds, 2),
            "input_tokens": self.input_tokens,
            "cache_read_input_tokens": self.cache_read_tokens,
            "errors": list(self.errors[:5]),
            "error_count": len(self.errors),
        }
