"""The model on another machine: an OpenAI-compatible server (vLLM, SGLang, llama-server, Ollama).

The scheduler, latest-wins, pre-emption and every streaming consumer stay the in-process ones:
this backend runs inside the same engine worker and only turns one ``GenerationRequest`` into
one streamed ``/v1/completions`` call carrying the very prompt text the in-process engine would
read. The server does the prefix caching; chat features send their locally rendered template
through the same endpoint, so a conversation's prompt only grows and the server's cache sees
identical bytes. Serving itself is never done here: the model runs in the server.

Failures become ``EngineError`` messages that name the URL and the fix; the engine thread is
never stuck on a socket: a watchdog closes the stream the moment a job is cancelled or runs
past its time budget, and every read is bounded by ``engine.timeoutS``.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import math
import socket
import threading
import time
from collections.abc import Callable, Generator, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from codenook.engine.protocol import (
    EngineCounters,
    EngineError,
    EngineUnreachable,
    FimTokens,
    GenerationRequest,
    GenerationResult,
    ModelInfo,
    Step,
    StopReason,
    prompt_parts,
    run_to_end,
)
from codenook.engine.remote_http import Http, RemoteConfig, ServerError, error_text
from codenook.lru import CachedCounter

# Spellings of each FIM marker, as the model families that use them write them. A marker is
# the model's when the server's tokenizer reads it as one token.
FIM_SPELLINGS: dict[str, tuple[str, ...]] = {
    "prefix": ("<|fim_prefix|>", "<fim_prefix>", "<fim-prefix>", "<PRE>"),
    "suffix": ("<|fim_suffix|>", "<fim_suffix>", "<fim-suffix>", "<SUF>"),
    "middle": ("<|fim_middle|>", "<fim_middle>", "<fim-middle>", "<MID>"),
    "pad": ("<|fim_pad|>", "<fim_pad>", "<fim-pad>"),
    "repo_name": ("<|repo_name|>", "<repo_name>", "<reponame>"),
    "file_sep": ("<|file_sep|>", "<file_sep>"),
}
QWEN_FIM = FimTokens(
    prefix="<|fim_prefix|>",
    suffix="<|fim_suffix|>",
    middle="<|fim_middle|>",
    pad="<|fim_pad|>",
    repo_name="<|repo_name|>",
    file_sep="<|file_sep|>",
)
END_SPELLINGS = ("<|endoftext|>", "<|im_end|>", "</s>")
# Code-like text whose token count calibrates the estimate used without a tokenize endpoint.
CALIBRATION = (
    "def parse(path: str) -> dict[str, int]:\n"
    '    """Count the words of a file."""\n'
    "    counts: dict[str, int] = {}\n"
    "    with open(path, encoding='utf-8') as handle:\n"
    "        for line in handle:\n"
    "            for word in line.split():\n"
    "                counts[word] = counts.get(word, 0) + 1\n"
    "    return counts\n"
)
DEFAULT_CHARS_PER_TOKEN = 3.5  # Qwen's vocabulary on source code
RETRY_DELAYS_S = (0.25, 0.5, 1.0)  # before any answer arrived only: safe to send again
# After /tokenize failed (silent or gone), counts are estimated for this long: they run on
# the editor's thread, which must not wait engine.timeoutS for every line.
TOKENIZE_PAUSE_S = 30.0
# The slowest /tokenize round trip at which budgets still count every line through it: the
# first completion in a file counts ~150 lines (0.45 s at this figure, then cached).
EXACT_COUNT_TRIP_S = 0.003
# On this machine a slow round trip means a busy CPU, not distance: more slack before counts
# are estimated (a loopback server is what the prompt-identity tests and local setups use).
LOOPBACK_TRIP_S = 0.015
# A count is asked for on the editor's thread: a busy server gets this long, then the count is
# estimated (and /tokenize rests for TOKENIZE_PAUSE_S).
COUNT_TIMEOUT_S = 1.0
WATCH_S = 0.02

# A stream as opened: the connection and its response (None for both when cancelled first).
Opened = tuple[http.client.HTTPConnection, http.client.HTTPResponse] | tuple[None, None]


@dataclass
class Discovery:
    """What the backend learned about the server, for ``codenook doctor`` and status."""

    server: str = "OpenAI-compatible"
    models: list[str] = field(default_factory=list)
    tokenizer: bool = False  # the server answers /tokenize
    # Budgets count with it (one round trip per new line) only when that is cheap; over a
    # slow link they use the calibrated estimate so the editor never waits on the network.
    exact_counts: bool = False
    round_trip_s: float = 0.0
    chars_per_token: float = DEFAULT_CHARS_PER_TOKEN
    fim_source: str = ""
    context_source: str = ""
    template_source: str = ""


class RemoteEngine:
    """The Engine protocol over HTTP; built on the engine thread by the loader."""

    def __init__(self, config: RemoteConfig) -> None:
        self.config = config
        self.http = Http(config)
        self.counters = EngineCounters()
        self.discovery = Discovery()
        self._llama_server = False
        self._counts = CachedCounter(self._count)
        self._count_lock = threading.Lock()  # counts come from any thread
        self._active: list[tuple[http.client.HTTPConnection, Callable[[], bool], float]] = []
        self._lock = threading.Condition()  # guards _active; wakes the watchdog
        self._closed = threading.Event()
        self._tokenize_paused_until = 0.0
        self.info = self._describe()
        # Every Qwen-style spelling, known to be a marker here or not (promptFormat none on a
        # Qwen server would otherwise let user text through as markers), and this model's own.
        qwen_style = {m for spellings in FIM_SPELLINGS.values() for m in spellings if "<|" in m}
        self._markers = {*qwen_style, *self.info.fim.markers(), *END_SPELLINGS, "<|im_start|>"}
        self._watchdog = threading.Thread(target=self._watch, name="codenook-remote", daemon=True)
        self._watchdog.start()

    # -- learning about the server -----------------------------------------------------------

    def _describe(self) -> ModelInfo:
        config, found = self.config, self.discovery
        try:
            listing = self.http.json("GET", "/v1/models")
        except ServerError as exc:
            if exc.status in (502, 503):  # still loading its model, or a proxy before it
                raise EngineUnreachable(str(exc)) from exc
            raise
        entries = listing.get("data") if isinstance(listing, dict) else None
        entries = [e for e in entries or [] if isinstance(e, dict) and e.get("id")]
        found.models = [str(e["id"]) for e in entries]
        if config.model is None and not found.models:
            raise EngineError(
                f"the model server at {self.http.url} lists no models: set engine.model"
            )
        model = config.model or found.models[0]
        if config.model is not None and found.models and config.model not in found.models:
            raise EngineError(
                f"the model server at {self.http.url} does not serve {config.model!r} (it"
                f" serves {', '.join(found.models)}): set engine.model to one of them"
            )
        self.model = model
        entry: dict[str, Any] = next((e for e in entries if e.get("id") == model), {})
        props = self._props()
        n_ctx = 0
        if props:
            self._llama_server = True
            found.server = "llama-server"
            settings = props.get("default_generation_settings")
            n_ctx = int(props.get("n_ctx") or (settings or {}).get("n_ctx") or 0)
            found.context_source = "the server's /props"
        if not n_ctx and isinstance(entry.get("max_model_len"), int):
            n_ctx = int(entry["max_model_len"])
            found.server = "vLLM" if entry.get("owned_by") == "vllm" else found.server
            found.context_source = "the server's max_model_len"
        if not n_ctx:
            n_ctx = config.context_size
            found.context_source = "model.contextSize (the server does not say its own)"
        template = props.get("chat_template") if props else None
        template = template if isinstance(template, str) and template.strip() else None
        found.template_source = (
            "the server's /props"
            if template
            else "ChatML (Qwen's format; the server does not publish its own)"
        )
        found.tokenizer = self._token_count("a") is not None
        if found.tokenizer:
            trips = []
            for _ in range(3):
                began = time.perf_counter()
                counted = self._token_count(CALIBRATION) or 1
                trips.append(time.perf_counter() - began)
            found.chars_per_token = len(CALIBRATION) / counted
            found.round_trip_s = min(trips)
            limit = LOOPBACK_TRIP_S if self.http.loopback else EXACT_COUNT_TRIP_S
            found.exact_counts = found.round_trip_s <= limit
        fim, eos = self._fim()
        return ModelInfo(
            path=model,
            architecture="remote",
            description=f"{found.server} at {self.http.url}",
            size_bytes=0,
            n_params=0,
            n_vocab=0,
            n_ctx_train=n_ctx,
            n_ctx=n_ctx,
            is_recurrent=False,
            is_hybrid=False,
            fim=fim,
            chat_template=template,
            eos_text=eos,
        )

    def _props(self) -> dict[str, Any]:
        try:
            props = self.http.json("GET", "/props")
        except ServerError:
            return {}
        return props if isinstance(props, dict) and "default_generation_settings" in props else {}

    def _fim(self) -> tuple[FimTokens, str | None]:
        found, fmt = self.discovery, self.config.prompt_format
        if fmt == "qwen":
            found.fim_source = "engine.promptFormat qwen"
            return QWEN_FIM, "<|endoftext|>"
        if fmt == "none":
            found.fim_source = "engine.promptFormat none: prefix-only prompts"
            return FimTokens(), None
        if not found.tokenizer:
            found.fim_source = (
                "unknown: the server has no /tokenize endpoint, so completions use a prefix-only"
                " prompt; set engine.promptFormat to qwen for Qwen3-Coder's FIM prompt"
            )
            return FimTokens(), None
        markers = {
            name: next((s for s in spellings if self._token_count(s) == 1), None)
            for name, spellings in FIM_SPELLINGS.items()
        }
        eos = next((s for s in END_SPELLINGS if self._token_count(s) == 1), None)
        fim = FimTokens(**markers)
        found.fim_source = (
            "the server's /tokenize: " + " ".join(fim.markers())
            if fim.has_fim
            else "the server's /tokenize: the model has no FIM markers (prefix-only prompts)"
        )
        return fim, eos

    def _token_count(self, text: str) -> int | None:
        """Tokens of ``text`` by the server's own tokenizer; None without the endpoint."""
        body = {
            "content": text,
            "prompt": text,
            "model": getattr(self, "model", None),
            "add_special": False,
            "add_special_tokens": False,
            "parse_special": True,
        }
        try:
            wait = min(self.config.timeout_s, COUNT_TIMEOUT_S)
            answer = self.http.json("POST", "/tokenize", body, wait)
        except ServerError:
            return None
        tokens = answer.get("tokens") if isinstance(answer, dict) else None
        return len(tokens) if isinstance(tokens, list) else None

    # -- the Engine protocol -----------------------------------------------------------------

    def tokenize(self, text: str, special: bool = False) -> list[int]:
        """Placeholder ids, as many as the server's tokenizer makes (or an estimate without
        its tokenize endpoint): callers only count them, and ids never cross the wire."""
        with self._count_lock:
            return [0] * self._counts(text)

    def _count(self, text: str) -> int:
        if not text:
            return 0
        usable = time.monotonic() >= self._tokenize_paused_until
        if self.discovery.exact_counts and usable and not self._closed.is_set():
            try:
                counted = self._token_count(text)
            except EngineError:
                # Server gone or silent meanwhile: estimate rather than fail a budget, and
                # do not wait for it again on every line.
                self._tokenize_paused_until = time.monotonic() + TOKENIZE_PAUSE_S
                counted = None
            if counted is not None:
                return counted
        return max(1, math.ceil(len(text) / self.discovery.chars_per_token))

    def _defuse(self, text: str) -> str:
        """User text that spells a marker stays text: the server parses markers anywhere in a
        string prompt (in-process, text parts are never parsed), so one invisible character
        (U+2060) goes after the marker's first character."""
        for marker in self._markers:
            if marker in text:
                text = text.replace(marker, f"{marker[0]}\u2060{marker[1:]}")
        return text

    def generate(
        self, request: GenerationRequest, cancelled: Callable[[], bool], lane: int = 0
    ) -> GenerationResult:
        return run_to_end(self.start(request, cancelled, lane))

    def start(
        self, request: GenerationRequest, cancelled: Callable[[], bool], lane: int = 0
    ) -> Step:
        """One streamed completion; yields after every piece so the scheduler can pre-empt.
        The server keeps no lane of ours: ``lane`` only matters in-process."""
        started = time.perf_counter()
        prompt = "".join(
            text if special else self._defuse(text)
            for text, special in prompt_parts(request.prompt)
        )
        body: dict[str, Any] = {
            "model": self.model,
            "prompt": prompt,
            "max_tokens": max(1, request.max_tokens),
            "temperature": 0,
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        stops = [s for s in request.stop if s]
        if stops:
            body["stop"] = stops
        if self._llama_server:
            body["cache_prompt"] = True
            # Timings in every chunk (cache_n, prompt_n): a suggestion codenook ends itself
            # (until, a stop string, a cancel) still has the server's own prompt figures.
            body["timings_per_token"] = True
        self.counters.requests += 1
        result = GenerationResult("", "eos")
        conn, response = yield from self._send(body, cancelled)
        if conn is None or response is None:
            self.counters.cancelled += 1
            result.stop_reason = "cancelled"
            return result
        deadline = started + request.time_budget_s if request.time_budget_s else math.inf
        with self._lock:
            self._active.append((conn, cancelled, deadline))
            self._lock.notify()
        first: float | None = None
        try:
            for chunk in self._chunks(response, cancelled, deadline):
                # Pieces a fast server already buffered must not outlive a cancel or the
                # budget: the in-process engine checks both before every token.
                if cancelled():
                    result.stop_reason = "cancelled"
                    break
                if time.perf_counter() >= deadline:
                    result.stop_reason = "time"
                    break
                if "usage" in chunk or "timings" in chunk:
                    self._account(chunk, result)
                piece, finish = _choice(chunk)
                if piece:
                    first = first or time.perf_counter()
                    result.generated_tokens += 1
                    reason = self._take(request, result, piece)
                    if reason is not None:
                        result.stop_reason = reason
                        break
                if finish == "length":
                    result.stop_reason = "length"
                yield
            else:
                if cancelled():
                    result.stop_reason = "cancelled"
                elif time.perf_counter() >= deadline:
                    result.stop_reason = "time"
        finally:
            with self._lock:
                self._active = [a for a in self._active if a[0] is not conn]
            conn.close()  # ends the server's work on this request at once
        done = time.perf_counter()
        result.prefill_s = (first or done) - started
        result.decode_s = done - (first or done)
        if not result.prompt_tokens:
            result.prompt_tokens = self._count(prompt)  # not remembered: prompts rarely repeat
            result.prefilled_tokens = result.prompt_tokens
        if result.stop_reason == "cancelled":
            self.counters.cancelled += 1
        counters = self.counters
        counters.prompt_tokens += result.prompt_tokens
        counters.cached_tokens += result.cached_tokens
        counters.prefilled_tokens += result.prefilled_tokens
        counters.generated_tokens += result.generated_tokens
        return result

    def _send(
        self, body: Mapping[str, Any], cancelled: Callable[[], bool]
    ) -> Generator[None, None, Opened]:
        """Open the stream; a refused connection or a 503 (still loading) is sent again with
        backoff, since nothing was generated yet. Anything after the first byte is not."""
        attempt = 0
        while True:
            if cancelled():
                return None, None
            try:
                conn, response = self.http.open("POST", "/v1/completions", body)
            except EngineError as exc:
                retry = isinstance(exc.__cause__, ConnectionError)
                if not retry or attempt >= len(RETRY_DELAYS_S):
                    raise
            else:
                if response.status == 200:
                    return conn, response
                raw = response.read()
                conn.close()
                error = self.http.status_error(response.status, raw, "/v1/completions")
                if response.status not in (502, 503) or attempt >= len(RETRY_DELAYS_S):
                    raise error
            wait_until = time.perf_counter() + RETRY_DELAYS_S[attempt]
            attempt += 1
            while time.perf_counter() < wait_until:
                if cancelled():
                    return None, None
                time.sleep(WATCH_S)
                yield

    def _chunks(
        self, response: http.client.HTTPResponse, cancelled: Callable[[], bool], deadline: float
    ) -> Iterator[dict[str, Any]]:
        """The JSON objects of a server-sent event stream, up to ``[DONE]``."""
        url = self.http.url
        while True:
            try:
                line = response.readline()
            except (OSError, http.client.HTTPException, ValueError) as exc:
                if cancelled() or time.perf_counter() >= deadline:
                    return
                raise self.http.failure(exc) from exc
            if not line:
                if cancelled() or time.perf_counter() >= deadline:
                    return
                raise EngineError(
                    f"the model server at {url} closed the stream before the answer ended"
                )
            text = line.decode("utf-8", "replace").strip()
            if not text.startswith("data:"):
                continue  # blank separators, comments, event: lines
            data = text[len("data:") :].strip()
            if data == "[DONE]":
                return
            try:
                chunk = json.loads(data)
            except ValueError:
                chunk = None
            if not isinstance(chunk, dict):
                raise EngineError(
                    f"the model server at {url} sent a malformed stream chunk: {data[:80]!r}"
                )
            if "error" in chunk:
                raise EngineError(
                    f"the model server at {url} failed mid-answer: {error_text(line[5:])}"
                )
            yield chunk

    def _take(
        self, request: GenerationRequest, result: GenerationResult, piece: str
    ) -> StopReason | None:
        """Add a piece the way the in-process sampler adds a token; the reason to end, if any."""
        result.text += piece
        for stop in request.stop:
            if not stop:
                continue
            at = result.text.find(stop, max(0, len(result.text) - len(piece) - len(stop)))
            if at != -1:
                result.text = result.text[:at]
                return "stop"
        if request.on_text is not None:
            request.on_text(piece)
        if request.until is not None and request.until(result.text):
            return "until"
        return None

    def _account(self, chunk: Mapping[str, Any], result: GenerationResult) -> None:
        """Prompt figures as the server reports them: llama-server's timings say what it
        reused; OpenAI usage says the prompt's size (vLLM adds the cached part)."""
        usage = chunk.get("usage")
        if isinstance(usage, dict):
            prompt = int(usage.get("prompt_tokens") or 0)
            details = usage.get("prompt_tokens_details")
            cached = int(details.get("cached_tokens") or 0) if isinstance(details, dict) else 0
            if prompt:
                result.prompt_tokens = prompt
                result.cached_tokens = cached
                result.prefilled_tokens = prompt - cached
            completion = int(usage.get("completion_tokens") or 0)
            if completion:
                result.generated_tokens = completion
        timings = chunk.get("timings")
        if isinstance(timings, dict) and "prompt_n" in timings:
            prefilled = int(timings.get("prompt_n") or 0)
            cached = int(timings.get("cache_n") or 0)
            result.prefilled_tokens = prefilled
            result.cached_tokens = cached
            result.prompt_tokens = max(result.prompt_tokens, prefilled + cached)

    def _watch(self) -> None:
        """Close a stream the moment its job is cancelled or out of time: a blocking read on
        the engine thread must not delay a keystroke by a whole server round trip."""
        while True:
            with self._lock:  # asleep while no stream is open
                self._lock.wait_for(lambda: self._active or self._closed.is_set())
            if self._closed.wait(WATCH_S):
                return
            now = time.perf_counter()
            with self._lock:
                ended = [
                    c for c, cancelled, deadline in self._active if cancelled() or now >= deadline
                ]
            for conn in ended:
                sock = conn.sock
                if sock is not None:
                    with contextlib.suppress(OSError):
                        sock.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        self._closed.set()
        with self._lock:
            self._lock.notify_all()
            active, self._active = self._active, []
        for conn, _, _ in active:
            conn.close()


def _choice(chunk: Mapping[str, Any]) -> tuple[str, str | None]:
    """The text and finish reason of a completions chunk (a chat delta is read too)."""
    choices = chunk.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        return "", None
    choice = choices[0]
    text = choice.get("text")
    if text is None and isinstance(choice.get("delta"), dict):
        text = choice["delta"].get("content")
    return (text if isinstance(text, str) else ""), choice.get("finish_reason")
