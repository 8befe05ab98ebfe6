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
import io
import os
import sys
import time
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import llama_cpp
import numpy as np
from llama_cpp import _internals

from codenook.engine import branches
from codenook.engine.branches import Sequences
from codenook.engine.checkpoints import Checkpoint, CheckpointCache
from codenook.engine.chunks import MIN_CHUNK, common_prefix, segment_ends
from codenook.engine.loading import check_model_file, default_threads
from codenook.engine.protocol import (
    EngineCounters,
    EngineError,
    FimTokens,
    GenerationRequest,
    GenerationResult,
    ModelInfo,
    Step,
    StopReason,
    prompt_parts,
    run_to_end,
)

MIN_OWN_CTX = 64

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
    if _LOG_ALL or level in (3, 4):  # ggml: 1 debug, 2 info, 3 warn, 4 error
        sys.stderr.write(text.decode("utf-8", "replace"))
        sys.stderr.flush()


llama_cpp.llama_log_set(_log_to_stderr, ctypes.c_void_p(0))


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
    described = ctypes.create_string_buffer(256)
    llama_cpp.llama_model_desc(model, described, 256)
    return ModelInfo(
        path=str(file),
        architecture=meta.get("general.architecture", "unknown"),
        description=described.value.decode("utf-8", "replace"),
        size_bytes=file.stat().st_size,
        n_params=int(llama_cpp.llama_model_n_params(model)),
        n_vocab=int(llama_cpp.llama_vocab_n_tokens(vocab)),
        n_ctx_train=int(llama_cpp.llama_model_n_ctx_train(model))
        or int(meta.get(f"{meta.get('general.architecture', '')}.context_length", 0) or 0),
        n_ctx=n_ctx,
        is_recurrent=bool(llama_cpp.llama_model_is_recurrent(model)),
        is_hybrid=bool(llama_cpp.llama_model_is_hybrid(model)),
        fim=_fim_tokens(vocab),
        chat_template=meta.get("tokenizer.chat_template"),
        eos_text=_token_text(vocab, int(llama_cpp.llama_vocab_eos(vocab))),
    )


class Vocab:
    """A model's tokenizer without its weights: an editor window attached to a shared engine
    host counts prompt tokens exactly as the host will, without a second copy of the model."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        file = check_model_file(path)
        try:
            with contextlib.redirect_stderr(open(os.devnull, "w")):
                self._llm = llama_cpp.Llama(model_path=str(file), vocab_only=True, verbose=False)
        except Exception as exc:
            raise EngineError(f"llama.cpp could not read {file}: {exc}") from exc
        self.file = file

    def tokenize(self, text: str, special: bool = False) -> list[int]:
        return self._llm.tokenize(text.encode("utf-8"), add_bos=False, special=special)

    def close(self) -> None:
        self._llm.close()


def inspect_model(path: str | os.PathLike[str]) -> ModelInfo:
    """Read a model's vocabulary and metadata without loading its weights (for doctor)."""
    vocab = Vocab(path)
    try:
        return _model_info(vocab._llm, vocab.file, 0)
    finally:
        vocab.close()


@dataclass
class _Lane:
    """One llama.cpp sequence: its exactly-computed prompt tokens and recurrent-state status.

    Lane 0 serves interactive requests (completion, hover), lane 1 code actions, lane 2 agent
    steps, so a keystroke can interrupt a long generation without destroying its state, and a
    code action does not evict the prompt an agent's next step extends. Lanes are numbered by
    importance: when the shared cache is full, the highest-numbered lane is given up first.
    """

    seq: int
    resident: list[int] = field(default_factory=list)
    # Whether the recurrent state ends exactly after ``resident`` (no generated tokens since).
    exact: bool = True
    # Position where the next generated token goes (prompt + generated so far).
    position: int = 0
    # Bumped whenever the lane is emptied, so a paused generation notices that its state was
    # given up for another lane meanwhile.
    epoch: int = 0
    # The recurrent state at the end of the lane's last prompt (``checkpoint_end``), valid for
    # ``resident[:end.position]``. Held here, not in the shared LRU, so that keystrokes typed
    # while an agent runs a tool cannot evict the state its next step starts from.
    end: Checkpoint | None = None


class LlamaEngine:
    """One model, one context with three lanes (and one more per further editor window of a
    shared host) and ``alternatives - 1`` branch sequences, used only from the engine thread."""

    LANES = 3

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
        windows: int = 1,
        alternatives: int = 3,
    ) -> None:
        file = check_model_file(path)
        lanes = self.LANES + max(0, windows - 1)
        # Scratch sequences for a completion's alternatives, used within one job and emptied
        # after it (a hybrid model's recurrent memory holds one state per sequence).
        self._branch_seqs = list(range(lanes, lanes + max(0, alternatives - 1)))
        threads = n_threads or default_threads()
        chatter = io.StringIO()  # llama-cpp-python's verbose prints (Python-level only)
        try:
            # Llama loads the weights and the vocabulary; its own context is kept minimal
            # because we decode in a context of our own with several sequences.
            with contextlib.redirect_stderr(chatter):
                self._llm = llama_cpp.Llama(
                    model_path=str(file),
                    n_ctx=MIN_OWN_CTX,
                    n_batch=MIN_OWN_CTX,
                    n_threads=threads,
                    n_threads_batch=threads,
                    n_gpu_layers=n_gpu_layers,
                    verbose=True,
                )
            params = llama_cpp.llama_context_default_params()
            params.n_ctx = n_ctx
            params.n_batch = n_batch
            params.n_ubatch = n_batch
            params.n_threads = threads
            params.n_threads_batch = threads
            params.n_seq_max = lanes + len(self._branch_seqs)
            params.kv_unified = True
            self._ctx = _internals.LlamaContext(model=self._llm._model, params=params)
        except Exception as exc:
            raise EngineError(
                f"llama.cpp could not load {file}: {exc}. The file may be truncated or corrupt,"
                " or its architecture unknown to this llama.cpp build; run `codenook doctor`."
            ) from exc
        self._batch = _internals.LlamaBatch(
            n_tokens=max(n_batch, alternatives), embd=0, n_seq_max=1
        )
        self._vocab = llama_cpp.llama_model_get_vocab(self._llm.model)
        self._n_vocab = int(llama_cpp.llama_vocab_n_tokens(self._vocab))
        self._logits_type = ctypes.c_float * self._n_vocab
        self._view: tuple[int, np.ndarray] = (0, np.empty(0, dtype=np.float32))
        # Whether a token ends a generation, and its text, are fixed: read once per token id.
        self._token_cache: dict[int, tuple[bool, bytes]] = {}
        self._n_batch = n_batch
        self.info = _model_info(self._llm, file, self._ctx.n_ctx())
        self.prefix_cache = prefix_cache
        self.counters = EngineCounters()
        self.checkpoints = CheckpointCache(checkpoint_bytes)
        self._lanes = [_Lane(seq) for seq in range(lanes)]

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

    def _token_info(self, token: int) -> tuple[bool, bytes]:
        info = self._token_cache.get(token)
        if info is None:
            info = self._token_cache[token] = (self._is_end(token), self._piece(token))
        return info

    # -- memory ------------------------------------------------------------------------------
    #
    # Exactness rule: llama.cpp computes a one-token batch through different kernels than a
    # batch of two or more, so the logits differ slightly. Every prompt chunk we decode has at
    # least MIN_CHUNK tokens and reuse never covers state computed from generated tokens
    # (decoded one at a time). With that, a cached run is bit-for-bit the uncached run.

    def _clear(self, lane: _Lane) -> None:
        llama_cpp.llama_memory_seq_rm(self._ctx.memory, lane.seq, -1, -1)
        lane.resident.clear()
        lane.exact = True
        lane.position = 0
        lane.epoch += 1
        lane.end = None

    def _reuse(self, lane: _Lane, tokens: list[int]) -> tuple[int, bool]:
        """Keep what the new prompt can reuse; return (tokens kept, restored a checkpoint)."""
        limit = len(tokens) - MIN_CHUNK
        common = common_prefix(lane.resident, tokens) if self.prefix_cache else 0
        common = min(common, limit)
        if common <= 0:
            self._clear(lane)
            return 0, False
        if not self.info.needs_checkpoints:
            if not self._ctx.kv_cache_seq_rm(lane.seq, common, -1):
                self._clear(lane)
                return 0, False
            del lane.resident[common:]
            lane.position = common
            return common, False
        if lane.exact and common == len(lane.resident):
            return common, False  # the recurrent state ends exactly where we continue
        checkpoint = self.checkpoints.deepest(tokens, common, lane.seq)
        end = lane.end
        if (
            end
            and end.position <= common
            and (not checkpoint or checkpoint.position < end.position)
        ):
            checkpoint = end
        if checkpoint is None:
            self._clear(lane)
            return 0, False
        blob = checkpoint.blob
        buf = (ctypes.c_uint8 * len(blob)).from_buffer_copy(blob)
        restored = llama_cpp.llama_state_seq_set_data_ext(
            self._ctx.ctx, buf, len(blob), lane.seq, llama_cpp.LLAMA_STATE_SEQ_FLAGS_PARTIAL_ONLY
        )
        if not restored or not self._ctx.kv_cache_seq_rm(lane.seq, checkpoint.position, -1):
            self._clear(lane)
            return 0, False
        del lane.resident[checkpoint.position :]
        if end and end.position > checkpoint.position:
            lane.end = None  # the tokens it was computed from are no longer resident
        lane.exact = True
        lane.position = checkpoint.position
        self.counters.checkpoint_hits += 1
        return checkpoint.position, True

    def _save_checkpoint(
        self, lane: _Lane, tokens: Sequence[int], position: int, own: bool = False
    ) -> None:
        """Save the lane's recurrent state at ``position``: in the shared LRU, or as the lane's
        own ``end`` state when ``own``."""
        if not own and self.checkpoints.has(tokens, position, lane.seq):
            return
        flags = llama_cpp.LLAMA_STATE_SEQ_FLAGS_PARTIAL_ONLY
        size = llama_cpp.llama_state_seq_get_size_ext(self._ctx.ctx, lane.seq, flags)
        buf = (ctypes.c_uint8 * size)()
        written = llama_cpp.llama_state_seq_get_data_ext(self._ctx.ctx, buf, size, lane.seq, flags)
        blob = bytes(buf)[:written]
        if own and 0 < written <= self.checkpoints.budget_bytes:
            lane.end = Checkpoint(position, blob)
            self.counters.checkpoint_saves += 1
        elif written and not own and self.checkpoints.put(tokens, position, blob, lane.seq):
            self.counters.checkpoint_saves += 1

    def _decode(self, lane: _Lane, chunk: Sequence[int]) -> None:
        """Decode ``chunk`` at the lane's next positions; logits only for the last token."""
        self._decode_entries(lane, [(lane.seq, lane.position + i, t) for i, t in enumerate(chunk)])
        lane.position += len(chunk)

    def _decode_entries(
        self, lane: _Lane, entries: Sequence[tuple[int, int, int]], every: bool = False
    ) -> None:
        """Decode (sequence, position, token) entries in one batch for ``lane``'s job; logits
        for the last entry, or for ``every`` one."""
        batch = self._batch.batch
        batch.n_tokens = len(entries)
        for i, (seq, pos, token) in enumerate(entries):
            batch.token[i] = token
            batch.pos[i] = pos
            batch.seq_id[i][0] = seq
            batch.n_seq_id[i] = 1
            batch.logits[i] = every or i == len(entries) - 1
        try:
            self._ctx.decode(self._batch)
        except RuntimeError as first:
            # The unified cache may be full of other lanes' tokens: give them up, least
            # important first, until the chunk fits. A generation parked in a lane given up
            # reads its tokens again when it resumes (``_reread``).
            error = first
            for other in reversed(self._lanes):
                if other is lane or (not other.resident and not other.position):
                    continue
                self._clear(other)
                try:
                    self._ctx.decode(self._batch)
                except RuntimeError as exc:
                    error = exc
                else:
                    break
            else:
                self._clear(lane)
                raise EngineError(f"llama.cpp failed to decode: {error}") from error

    def _logits(self) -> np.ndarray:
        """The last decode's logits, not copied: valid only until the next decode."""
        address = ctypes.addressof(llama_cpp.llama_get_logits_ith(self._ctx.ctx, -1).contents)
        if address != self._view[0]:  # a view is made again only when llama.cpp's buffer moved
            self._view = (address, np.ctypeslib.as_array(self._logits_type.from_address(address)))
        return self._view[1]

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
        positions = {w for w in wanted if MIN_CHUNK <= w <= len(tokens) - MIN_CHUNK}
        if request.checkpoint_end and len(tokens) >= MIN_CHUNK:
            # The last chunk ends exactly there, so the state is exact: a next prompt that
            # extends this one reads only its new tokens.
            positions.add(len(tokens))
        return tokens, sorted(positions)

    def generate(
        self, request: GenerationRequest, cancelled: Callable[[], bool], lane: int = 0
    ) -> GenerationResult:
        """Run a generation to its end (no interleaving)."""
        return run_to_end(self.start(request, cancelled, lane))

    def start(
        self, request: GenerationRequest, cancelled: Callable[[], bool], lane: int = 0
    ) -> Step:
        """A generation that yields between prefill chunks and between tokens.

        The scheduler may stop iterating at any yield, run other work in other lanes, and
        resume later: this lane's state stays untouched meanwhile, unless the shared cache
        filled up and it was given up, and then it is read again on resuming.
        """
        # A window beyond this engine's lanes types into the first window's lane.
        return self._run(request, cancelled, self._lanes[lane])

    def _run(self, request: GenerationRequest, cancelled: Callable[[], bool], lane: _Lane) -> Step:
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
        cached, restored = self._reuse(lane, tokens)
        result = GenerationResult(
            text="", stop_reason="length", prompt_tokens=len(tokens), cached_tokens=cached
        )
        result.extra["checkpoint_restored"] = float(restored)
        self.counters.requests += 1
        self.counters.prompt_tokens += len(tokens)
        self.counters.cached_tokens += cached
        hybrid = self.info.needs_checkpoints and self.prefix_cache
        budget = request.time_budget_s
        logits = np.empty(0, dtype=np.float32)
        # The next chunk is planned from what is resident, so a lane given up while parked
        # simply starts over (the plan from any position is the same as the whole plan's).
        while (start := len(lane.resident)) < len(tokens):
            over_time = budget is not None and time.perf_counter() - started > budget
            if cancelled() or over_time:
                # What was read stays resident (and checkpointed): the next request for
                # this prompt continues from here instead of starting over.
                if hybrid and start >= MIN_CHUNK:
                    self._save_checkpoint(lane, tokens, start)
                self.counters.prefilled_tokens += result.prefilled_tokens
                result.prefill_s = time.perf_counter() - started
                result.stop_reason = "time" if over_time and not cancelled() else "cancelled"
                if result.stop_reason == "cancelled":
                    self.counters.cancelled += 1
                return result
            end = segment_ends(start, len(tokens), checkpoints, self._n_batch)[0]
            self._decode(lane, tokens[start:end])
            lane.resident.extend(tokens[start:end])
            result.prefilled_tokens += end - start
            if hybrid and end in checkpoints:
                own = request.checkpoint_end and end == len(tokens)
                self._save_checkpoint(lane, tokens, end, own)
            if end == len(tokens):
                # Taken before yielding: another lane's decode overwrites the context's logits.
                logits = self._logits().copy()
            yield
        self.counters.prefilled_tokens += result.prefilled_tokens
        prefill_done = time.perf_counter()
        result.prefill_s = prefill_done - started
        result.prompt_logits_digest = hashlib.blake2b(logits.tobytes(), digest_size=12).hexdigest()
        if request.alternatives > 1 and self._branch_seqs:
            epoch, seqs = lane.epoch, Sequences(self._fork, self._drop, partial(self._step, lane))
            self.counters.generated_tokens += yield from branches.run(
                request, cancelled, started, logits, (lane.seq, lane.position), self._branch_seqs,
                self._token_info, seqs, lambda: lane.epoch == epoch, result,
            )  # fmt: skip
        else:
            result.stop_reason, result.text, result.generated_tokens = yield from self._sample(
                request, cancelled, started, lane, tokens, logits, result
            )
        if result.stop_reason == "cancelled":
            self.counters.cancelled += 1
        self.counters.generated_tokens += result.generated_tokens
        result.decode_s = time.perf_counter() - prefill_done
        return result

    def _sample(
        self,
        request: GenerationRequest,
        cancelled: Callable[[], bool],
        started: float,
        lane: _Lane,
        prompt: list[int],
        logits: np.ndarray,
        result: GenerationResult,
    ) -> Generator[None, None, tuple[StopReason, str, int]]:
        """Greedy tokens from ``logits`` (this lane's last decode: another lane may decode
        between our steps, so we never read the context's logits after a yield)."""
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        text = ""
        generated = 0
        fed: list[int] = []  # generated tokens decoded into the lane
        epoch = lane.epoch
        stops = tuple(s for s in request.stop if s)
        # A stop not found so far can only end in the newest piece: search only when the
        # piece holds some stop's last character.
        stop_ends = frozenset(s[-1] for s in stops)
        token = int(logits.argmax())
        while generated < request.max_tokens:
            if cancelled():
                return "cancelled", text, generated
            end, raw = self._token_info(token)
            if end:
                return "eos", text, generated
            generated += 1
            piece = decoder.decode(raw)
            text += piece
            for stop in stops if not stop_ends.isdisjoint(piece) else ():
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
                self._decode(lane, [token])
                lane.exact = False
                fed.append(token)
                # Picked before yielding (another lane's decode overwrites the logits), from
                # llama.cpp's buffer itself: no copy of the whole vocabulary's logits.
                token = int(self._logits().argmax())
                yield
                if lane.epoch != epoch:
                    epoch = yield from self._reread(lane, prompt, fed, cancelled, result)
        return "length", text, generated

    def _fork(self, src: int, dst: int) -> None:
        llama_cpp.llama_memory_seq_rm(self._ctx.memory, dst, -1, -1)
        llama_cpp.llama_memory_seq_cp(self._ctx.memory, src, dst, -1, -1)

    def _drop(self, seq: int) -> None:
        llama_cpp.llama_memory_seq_rm(self._ctx.memory, seq, -1, -1)

    def _step(self, lane: _Lane, entries: list[tuple[int, int, int]]) -> list[int]:
        """One token of each live branch in one batch; the next greedy token of each."""
        self._decode_entries(lane, entries, every=True)
        for seq, pos, _ in entries:
            if seq == lane.seq:
                lane.position, lane.exact = pos + 1, False
        rows = (llama_cpp.llama_get_logits_ith(self._ctx.ctx, i) for i in range(len(entries)))
        return [int(np.ctypeslib.as_array(row, (self._n_vocab,)).argmax()) for row in rows]

    def _reread(
        self,
        lane: _Lane,
        prompt: list[int],
        generated: list[int],
        cancelled: Callable[[], bool],
        result: GenerationResult,
    ) -> Generator[None, None, int]:
        """Rebuild a lane that was given up while its generation was parked, the way it was
        first computed (the prompt in chunks, generated tokens one at a time), so the output
        stays that of an uninterrupted run; returns the lane's epoch once it is whole."""
        while True:
            epoch = lane.epoch
            ends = segment_ends(0, len(prompt), (), self._n_batch)
            plan = [prompt[a:b] for a, b in zip([0, *ends[:-1]], ends, strict=True)]
            plan += [[t] for t in generated]
            for chunk in plan:
                if cancelled():
                    return epoch
                self._decode(lane, chunk)
                if len(lane.resident) < len(prompt):
                    lane.resident.extend(chunk)
                    result.prefilled_tokens += len(chunk)
                    self.counters.prefilled_tokens += len(chunk)
                lane.exact = len(lane.resident) == lane.position
                yield
                if lane.epoch != epoch:
                    break
            else:
                return epoch

    def close(self) -> None:
        self._batch.close()
        self._ctx.close()
        self._llm.close()
