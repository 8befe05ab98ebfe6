"""The in-process llama.cpp backend: the only module that imports ``llama_cpp``.

We use llama-cpp-python for loading, tokenizing and its thin context wrappers, but drive
decoding ourselves: that gives exact counters (cached vs prefilled tokens), cancellation and
time checks between batches and tokens, and a single place where prefix reuse is decided.
``Llama.generate`` is avoided because its reuse silently fails for hybrid models and its
``suffix=`` FIM path has hard-coded token ids in 0.3.36.
"""

from __future__ import annotations

import codecs
import contextlib
import ctypes
import hashlib
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import llama_cpp
import numpy as np

from codenook.engine import (
    EngineCounters,
    EngineError,
    FimTokens,
    GenerationRequest,
    GenerationResult,
    ModelInfo,
    StopReason,
    prompt_parts,
)
from codenook.engine.checkpoints import CheckpointCache

GGUF_MAGIC = b"GGUF"
MIN_CHUNK = 2

# llama.cpp logs every load step. We route its log through our own callback (warnings and
# errors to stderr; everything with CODENOOK_LLAMA_LOG=debug) and always construct Llama with
# verbose=True: verbose=False makes llama-cpp-python dup2 fds 1 and 2 to /dev/null while
# loading, which would swallow LSP messages written to stdout meanwhile.
_LOG_ALL = os.environ.get("CODENOOK_LLAMA_LOG", "").lower() == "debug"
_last_level = 0


@llama_cpp.llama_log_callback
def _log_to_stderr(level: int, text: bytes, user_data: ctypes.c_void_p) -> None:
    global _last_level
    level = _last_level if level == 5 else level  # 5 continues the previous message
    _last_level = level
    if _LOG_ALL or level in (2, 3):
        sys.stderr.write(text.decode("utf-8", "replace"))
        sys.stderr.flush()


llama_cpp.llama_log_set(_log_to_stderr, ctypes.c_void_p(0))


def check_model_file(path: str | os.PathLike[str]) -> Path:
    """Fail with a message a user can act on before llama.cpp prints a bare 'failed to load'."""
    file = Path(path).expanduser()
    if not file.exists():
        raise EngineError(f"model file not found: {file}. Set model.path to an existing GGUF file.")
    if not file.is_file():
        raise EngineError(f"model path is not a file: {file}. Set model.path to a GGUF file.")
    try:
        with file.open("rb") as fh:
            magic = fh.read(4)
    except OSError as exc:
        raise EngineError(f"cannot read model file {file}: {exc.strerror or exc}.") from exc
    if magic != GGUF_MAGIC:
        raise EngineError(
            f"{file} is not a GGUF model (it starts with {magic!r}, not b'GGUF'). "
            "Download a .gguf file (e.g. a Qwen3-Coder-Next quantization) and set model.path."
        )
    return file


def default_threads() -> int:
    """All cores on small machines (decode is latency-bound), about half on big ones."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        cores = os.cpu_count() or 1
    return cores if cores <= 4 else max(4, cores // 2)


def system_info() -> str:
    return llama_cpp.llama_print_system_info().decode("utf-8", "replace").strip()


def llama_cpp_version() -> str:
    return str(getattr(llama_cpp, "__version__", "unknown"))


def _token_text(vocab: object, token: int) -> str | None:
    if token < 0:
        return None
    raw = llama_cpp.llama_vocab_get_text(vocab, token)
    return raw.decode("utf-8", "replace") if raw else None


def _fim_tokens(vocab: object) -> FimTokens:
    return FimTokens(
        prefix=_token_text(vocab, llama_cpp.llama_vocab_fim_pre(vocab)),
        suffix=_token_text(vocab, llama_cpp.llama_vocab_fim_suf(vocab)),
        middle=_token_text(vocab, llama_cpp.llama_vocab_fim_mid(vocab)),
        pad=_token_text(vocab, llama_cpp.llama_vocab_fim_pad(vocab)),
        repo_name=_token_text(vocab, llama_cpp.llama_vocab_fim_rep(vocab)),
        file_sep=_token_text(vocab, llama_cpp.llama_vocab_fim_sep(vocab)),
    )


def _model_info(llm: llama_cpp.Llama, file: Path, n_ctx: int) -> ModelInfo:
    model = llm.model
    vocab = llama_cpp.llama_model_get_vocab(model)
    meta = llm.metadata
    return ModelInfo(
        path=str(file),
        architecture=meta.get("general.architecture", "unknown"),
        description=_describe(model),
        size_bytes=file.stat().st_size,
        n_params=int(llama_cpp.llama_model_n_params(model)),
        n_vocab=int(llama_cpp.llama_vocab_n_tokens(vocab)),
        n_ctx_train=int(llama_cpp.llama_model_n_ctx_train(model)),
        n_ctx=n_ctx,
        is_recurrent=bool(llama_cpp.llama_model_is_recurrent(model)),
        is_hybrid=bool(llama_cpp.llama_model_is_hybrid(model)),
        fim=_fim_tokens(vocab),
        chat_template=meta.get("tokenizer.chat_template"),
        eos_text=_token_text(vocab, int(llama_cpp.llama_vocab_eos(vocab))),
    )


def _describe(model: object) -> str:
    buf = ctypes.create_string_buffer(256)
    llama_cpp.llama_model_desc(model, buf, 256)
    return buf.value.decode("utf-8", "replace")


def inspect_model(path: str | os.PathLike[str]) -> ModelInfo:
    """Read a model's vocabulary and metadata without loading its weights (for doctor)."""
    file = check_model_file(path)
    try:
        with contextlib.redirect_stderr(open(os.devnull, "w")):
            llm = llama_cpp.Llama(model_path=str(file), vocab_only=True, verbose=False)
    except Exception as exc:
        raise EngineError(f"llama.cpp could not read {file}: {exc}") from exc
    try:
        return _model_info(llm, file, 0)
    finally:
        llm.close()


def _common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i


class LlamaEngine:
    """One model and one context, used only from the engine thread (see ``scheduler``)."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        n_ctx: int = 4096,
        n_threads: int = 0,
        n_gpu_layers: int = 0,
        n_batch: int = 512,
        prefix_cache: bool = True,
        checkpoint_bytes: int = 1024 * 1024 * 1024,
    ) -> None:
        file = check_model_file(path)
        threads = n_threads or default_threads()
        try:
            self._llm = llama_cpp.Llama(
                model_path=str(file),
                n_ctx=n_ctx,
                n_batch=n_batch,
                n_ubatch=n_batch,
                n_threads=threads,
                n_threads_batch=threads,
                n_gpu_layers=n_gpu_layers,
                verbose=True,
            )
        except Exception as exc:
            raise EngineError(
                f"llama.cpp could not load {file}: {exc}. The file may be truncated or corrupt,"
                " or its architecture unknown to this llama.cpp build; run `codenook doctor`."
            ) from exc
        self._vocab = llama_cpp.llama_model_get_vocab(self._llm.model)
        self._n_vocab = int(llama_cpp.llama_vocab_n_tokens(self._vocab))
        self._n_batch = n_batch
        self.info = _model_info(self._llm, file, self._llm.n_ctx())
        self.prefix_cache = prefix_cache
        self.counters = EngineCounters()
        self.checkpoints = CheckpointCache(checkpoint_bytes)
        # Prompt tokens whose keys/values (and recurrent state) sit in sequence 0, computed
        # exactly as an uncached run would; generated tokens never join this list.
        self._resident: list[int] = []
        # Whether the recurrent state ends exactly after _resident (no generated tokens since).
        self._state_exact = True

    # -- tokens ------------------------------------------------------------------------------

    def tokenize(self, text: str, special: bool = False) -> list[int]:
        return self._llm.tokenize(text.encode("utf-8"), add_bos=False, special=special)

    def _is_end(self, token: int) -> bool:
        return bool(
            llama_cpp.llama_vocab_is_eog(self._vocab, token)
            or llama_cpp.llama_vocab_is_control(self._vocab, token)
        )

    def _piece(self, token: int) -> bytes:
        return self._llm.detokenize([token], special=False)

    # -- memory ------------------------------------------------------------------------------
    #
    # Exactness rule: llama.cpp computes a one-token batch through different kernels than a
    # batch of two or more, so the logits differ slightly. Every prompt chunk we decode has at
    # least MIN_CHUNK tokens and reuse never covers state computed from generated tokens
    # (decoded one at a time). With that, a cached run is bit-for-bit the uncached run.

    def _clear(self) -> None:
        self._llm._ctx.kv_cache_clear()
        self._resident.clear()
        self._state_exact = True

    def _reuse(self, tokens: list[int]) -> tuple[int, bool]:
        """Keep what the new prompt can reuse; return (tokens kept, restored a checkpoint)."""
        limit = len(tokens) - MIN_CHUNK
        common = _common_prefix(self._resident, tokens) if self.prefix_cache else 0
        common = min(common, limit)
        if common <= 0:
            self._clear()
            return 0, False
        if not self.info.needs_checkpoints:
            if not self._llm._ctx.kv_cache_seq_rm(0, common, -1):
                self._clear()
                return 0, False
            del self._resident[common:]
            return common, False
        if self._state_exact and common == len(self._resident):
            return common, False  # the recurrent state ends exactly where we continue
        checkpoint = self.checkpoints.deepest(tokens, common)
        if checkpoint is None:
            self._clear()
            return 0, False
        blob = checkpoint.blob
        buf = (ctypes.c_uint8 * len(blob)).from_buffer_copy(blob)
        restored = llama_cpp.llama_state_seq_set_data_ext(
            self._llm.ctx, buf, len(blob), 0, llama_cpp.LLAMA_STATE_SEQ_FLAGS_PARTIAL_ONLY
        )
        if not restored or not self._llm._ctx.kv_cache_seq_rm(0, checkpoint.position, -1):
            self._clear()
            return 0, False
        del self._resident[checkpoint.position :]
        self._state_exact = True
        self.counters.checkpoint_hits += 1
        return checkpoint.position, True

    def _save_checkpoint(self, tokens: Sequence[int], position: int) -> None:
        if self.checkpoints.has(tokens, position):
            return
        flags = llama_cpp.LLAMA_STATE_SEQ_FLAGS_PARTIAL_ONLY
        size = llama_cpp.llama_state_seq_get_size_ext(self._llm.ctx, 0, flags)
        buf = (ctypes.c_uint8 * size)()
        written = llama_cpp.llama_state_seq_get_data_ext(self._llm.ctx, buf, size, 0, flags)
        if written and self.checkpoints.put(tokens, position, bytes(buf)[:written]):
            self.counters.checkpoint_saves += 1

    def _segments(self, start: int, end: int, stops: Sequence[int]) -> list[int]:
        """Chunk ends from ``start`` to ``end``: at ``stops`` and every n_batch, each chunk of
        at least MIN_CHUNK tokens (a stop that would break that rule is skipped)."""
        ends: list[int] = []
        position = start
        wanted = sorted({s for s in stops if start < s < end} | {end})
        for stop in wanted:
            while stop - position > self._n_batch:
                step = self._n_batch
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

    def _decode_chunk(self, chunk: Sequence[int]) -> None:
        batch = self._llm._batch
        batch.set_batch(list(chunk), n_past=len(self._resident), logits_all=False)
        try:
            self._llm._ctx.decode(batch)
        except RuntimeError as exc:
            self._clear()
            raise EngineError(f"llama.cpp failed to decode: {exc}") from exc

    def _prefill(
        self,
        tokens: list[int],
        start: int,
        checkpoints: Sequence[int],
        cancelled: Callable[[], bool],
    ) -> bool:
        """Decode ``tokens[start:]``, saving recurrent checkpoints; False when cancelled."""
        hybrid = self.info.needs_checkpoints and self.prefix_cache
        for end in self._segments(start, len(tokens), checkpoints):
            if cancelled():
                if hybrid and len(self._resident) >= MIN_CHUNK:
                    self._save_checkpoint(tokens, len(self._resident))
                return False
            self._decode_chunk(tokens[len(self._resident) : end])
            self._resident.extend(tokens[len(self._resident) : end])
            if hybrid and end in checkpoints:
                self._save_checkpoint(tokens, end)
        return True

    def _logits(self) -> np.ndarray:
        return np.ctypeslib.as_array(
            llama_cpp.llama_get_logits_ith(self._llm.ctx, -1), shape=(self._n_vocab,)
        )

    def _greedy(self) -> int:
        return int(np.argmax(self._logits()))

    # -- generation --------------------------------------------------------------------------

    def _tokenize_prompt(self, request: GenerationRequest) -> tuple[list[int], list[int]]:
        """The prompt's tokens and the token positions where checkpoints belong."""
        tokens: list[int] = []
        boundaries: list[int] = []
        for text, special in prompt_parts(request.prompt):
            if text:
                tokens.extend(self.tokenize(text, special))
            boundaries.append(len(tokens))
        wanted = [boundaries[i] for i in request.checkpoint_after if 0 <= i < len(boundaries)]
        # A few tokens before the end serves a repeated request for the same prompt.
        wanted.append(len(tokens) - MIN_CHUNK)
        return tokens, sorted({w for w in wanted if MIN_CHUNK <= w <= len(tokens) - MIN_CHUNK})

    def generate(
        self, request: GenerationRequest, cancelled: Callable[[], bool]
    ) -> GenerationResult:
        started = time.perf_counter()
        tokens, checkpoints = self._tokenize_prompt(request)
        limit = self.info.n_ctx - request.max_tokens
        if len(tokens) < MIN_CHUNK:
            raise EngineError("the prompt is empty")
        if len(tokens) > limit:
            raise EngineError(
                f"prompt of {len(tokens)} tokens plus {request.max_tokens} to generate does not"
                f" fit model.contextSize {self.info.n_ctx}; lower context.prefixTokens"
            )
        cached, restored = self._reuse(tokens)
        result = GenerationResult(
            text="", stop_reason="length", prompt_tokens=len(tokens), cached_tokens=cached
        )
        result.extra["checkpoint_restored"] = float(restored)
        self.counters.requests += 1
        self.counters.prompt_tokens += len(tokens)
        self.counters.cached_tokens += cached
        done = self._prefill(tokens, cached, checkpoints, cancelled)
        result.prefilled_tokens = len(self._resident) - cached
        self.counters.prefilled_tokens += result.prefilled_tokens
        if not done:
            result.stop_reason = "cancelled"
            self.counters.cancelled += 1
            return result
        prefill_done = time.perf_counter()
        result.prefill_s = prefill_done - started
        result.prompt_logits_digest = hashlib.blake2b(
            self._logits().tobytes(), digest_size=12
        ).hexdigest()
        result.stop_reason, result.text, result.generated_tokens = self._sample_loop(
            request, cancelled, started
        )
        if result.stop_reason == "cancelled":
            self.counters.cancelled += 1
        self.counters.generated_tokens += result.generated_tokens
        result.decode_s = time.perf_counter() - prefill_done
        return result

    def _sample_loop(
        self, request: GenerationRequest, cancelled: Callable[[], bool], started: float
    ) -> tuple[StopReason, str, int]:
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        text = ""
        generated = 0
        position = len(self._resident)
        stops = tuple(s for s in request.stop if s)
        while generated < request.max_tokens:
            if cancelled():
                return "cancelled", text, generated
            token = self._greedy()
            if self._is_end(token):
                return "eos", text, generated
            generated += 1
            piece = decoder.decode(self._piece(token))
            text += piece
            for stop in stops:
                at = text.find(stop, max(0, len(text) - len(piece) - len(stop)))
                if at != -1:
                    return "stop", text[:at], generated
            if piece and request.on_text is not None:
                request.on_text(piece)
            if request.until is not None and request.until(text):
                return "until", text, generated
            if (
                request.time_budget_s is not None
                and time.perf_counter() - started > request.time_budget_s
            ):
                return "time", text, generated
            if generated < request.max_tokens:
                # Generated tokens extend the context but never count as reusable prompt.
                self._llm._batch.set_batch([token], n_past=position, logits_all=False)
                try:
                    self._llm._ctx.decode(self._llm._batch)
                except RuntimeError as exc:
                    self._clear()
                    raise EngineError(f"llama.cpp failed to decode: {exc}") from exc
                position += 1
                self._state_exact = False
        return "length", text, generated

    def close(self) -> None:
        self._llm.close()
