"""The two things a trace is replayed into: ``codenook serve`` over LSP, and llama.cpp's
``llama-server`` over HTTP, driven as the llama.vim plugin drives it, as the peer.

Both satisfy ``replay.Target``, so the replay loop and the report cannot tell them apart and
the comparison is of the servers alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import IO, Any

from codenook.devtools.bench.errors import BenchError
from codenook.devtools.bench.llamavim import (
    MAX_LINE_SUFFIX,
    RETRY_S,
    RING_IDLE_S,
    RING_UPDATE_S,
    LlamaVimClient,
    VimJob,
)
from codenook.devtools.bench.replay import DRAIN_TIMEOUT_S, RequestRecord
from codenook.devtools.bench.rpc import REQUEST_CANCELLED, JsonRpcClient, RpcError, start_server
from codenook.devtools.bench.trace import Buffer, Edit, Trace
from codenook.settings import Settings

READY_TIMEOUT_S = 300.0  # a large model on a slow disk takes minutes to load


class CodenookTarget:
    """A ``codenook serve`` subprocess driven like an editor drives it."""

    def __init__(
        self,
        settings: dict[str, Any],
        trace: Trace,
        root: Path,
        env: dict[str, str] | None = None,
        *,
        wait_for_index: bool = False,
    ) -> None:
        self.settings = settings
        self.trace = trace
        self.root = root
        # In a real project the replay starts once the workspace index is built, as a user
        # types after the editor has settled, so every mode sees the same cross-file context.
        self.wait_for_index = wait_for_index
        self.env = env  # None: rpc.server_env(), an in-process model
        self.uri = (root / trace.uri_path).as_uri()
        self.process: asyncio.subprocess.Process | None = None
        self.rpc: JsonRpcClient | None = None
        self.log = tempfile.TemporaryFile()  # noqa: SIM115 - closed by run.py's run_*_mode
        self.load_ms = 0.0
        self._futures: dict[int, tuple[int, asyncio.Future[tuple[float, dict[str, Any]]]]] = {}

    async def start(self) -> dict[str, Any]:
        """Start the server, open the document, wait for the model; the first stats."""
        loop = asyncio.get_running_loop()
        self.rpc = await start_server(self.log, self.env)
        self.process = self.rpc.process
        root_uri = self.root.as_uri()
        await self.rpc.call(
            "initialize",
            {
                "processId": os.getpid(),
                "clientInfo": {"name": "codenook-bench"},
                "rootUri": root_uri,
                "workspaceFolders": [{"uri": root_uri, "name": self.root.name}],
                "initializationOptions": self.settings,
                "capabilities": {
                    "general": {"positionEncodings": ["utf-16"]},
                    "textDocument": {
                        "synchronization": {"dynamicRegistration": False},
                        "inlineCompletion": {"dynamicRegistration": False},
                    },
                    "workspace": {"configuration": True, "workspaceFolders": True},
                    "window": {"workDoneProgress": True, "showMessage": {}},
                },
            },
            timeout=60,
        )
        started = loop.time()
        await self.rpc.notify("initialized", {})
        await self._open()
        deadline = started + READY_TIMEOUT_S
        while True:
            stats = await self.stats()
            if stats.get("state") == "idle" and self._indexed(stats):
                self.load_ms = (loop.time() - started) * 1000
                return stats
            if stats.get("state") == "failed":
                raise BenchError(f"the model did not load: {stats.get('error')}")
            if loop.time() > deadline:
                raise BenchError(f"the engine was not ready after {READY_TIMEOUT_S:.0f} s: {stats}")
            await asyncio.sleep(0.05)

    def _indexed(self, stats: dict[str, Any]) -> bool:
        if not self.wait_for_index:
            return True
        folders = stats.get("index")
        if not isinstance(folders, dict) or not folders:
            return True  # no index to wait for (cross-file context off)
        return all(isinstance(f, dict) and f.get("state") == "ready" for f in folders.values())

    async def open_in(self, other: CodenookTarget) -> None:
        """Replay into ``other``'s running server (the same window) with this target's own
        document: only ``didOpen`` is sent; ``other`` stops the server."""
        self.rpc, self.process = other.rpc, other.process
        await self._open()

    async def _open(self) -> None:
        assert self.rpc is not None
        await self.rpc.notify(
            "textDocument/didOpen",
            {
                "textDocument": {
                    "uri": self.uri,
                    "languageId": self.trace.language_id,
                    "version": 1,
                    "text": self.trace.initial_text,
                }
            },
        )

    async def stats(self) -> dict[str, Any]:
        assert self.rpc is not None
        result = await self.rpc.call("codenook/stats", {})
        return result if isinstance(result, dict) else {}

    async def change(self, version: int, edit: Edit) -> None:
        assert self.rpc is not None
        await self.rpc.notify(
            "textDocument/didChange",
            {
                "textDocument": {"uri": self.uri, "version": version},
                "contentChanges": [
                    {
                        "range": {
                            "start": {"line": edit.start[0], "character": edit.start[1]},
                            "end": {"line": edit.end[0], "character": edit.end[1]},
                        },
                        "text": edit.text,
                    }
                ],
            },
        )

    async def complete(self, record: RequestRecord, buffer: Buffer) -> None:
        assert self.rpc is not None
        line, character = buffer.position()
        self._futures[id(record)] = await self.rpc.request(
            "textDocument/inlineCompletion",
            {
                "textDocument": {"uri": self.uri},
                "position": {"line": line, "character": character},
                "context": {"triggerKind": 2},  # Automatic: the editor asked, not the user
            },
        )

    async def cancel(self, record: RequestRecord) -> None:
        assert self.rpc is not None
        msg_id, _ = self._futures[id(record)]
        await self.rpc.notify("$/cancelRequest", {"id": msg_id})

    async def wait(self, record: RequestRecord) -> None:
        _, future = self._futures[id(record)]
        try:
            arrived, response = await future
        except BenchError as exc:
            record.outcome, record.error = "error", str(exc)
            return
        if "error" in response:
            code = int(response["error"].get("code", 0))
            record.outcome = "cancelled" if code == REQUEST_CANCELLED else "error"
            record.error = None if code == REQUEST_CANCELLED else str(response["error"])
            return
        record.answered_at = arrived
        record.outcome = "late" if record.cancel_sent else "answered"
        record.suggestion = _first_item(response.get("result"))
        if record.outcome == "answered":
            await self._engine_facts(record)

    async def _engine_facts(self, record: RequestRecord) -> None:
        """What the engine did for this request, when ``lastCompletion`` is still its own."""
        with contextlib.suppress(BenchError, RpcError):
            last = (await self.stats()).get("lastCompletion") or {}
            if last.get("uri") == self.uri and last.get("version") == record.version:
                keys = ("prompt_tokens", "cached_tokens", "prefilled_tokens", "generated_tokens")
                times = ("queued_ms", "prefill_ms", "decode_ms", "total_ms")
                facts = {k: float(last.get(k) or 0) for k in (*keys, *times)}
                # The first token comes out of reading the prompt; each later one is a decode.
                facts["decoded_tokens"] = max(0.0, facts["generated_tokens"] - 1)
                record.engine = facts

    async def stop(self) -> None:
        if self.rpc is not None:
            with contextlib.suppress(BenchError, RpcError):
                await self.rpc.call("shutdown", None, timeout=15)
                await self.rpc.notify("exit", None)
        if self.process is not None:
            try:
                await asyncio.wait_for(self.process.wait(), 15)
            except asyncio.TimeoutError:
                self.process.kill()
                await self.process.wait()
        if self.rpc is not None:
            await self.rpc.close()

    def log_tail(self, lines: int = 15) -> str:
        return log_tail(self.log, lines)


def log_tail(log: IO[bytes], lines: int = 15) -> str:
    """The last lines a server wrote to its log file, for an error message."""
    log.seek(0)
    return "\n".join(log.read().decode("utf-8", "replace").splitlines()[-lines:])


def _first_item(result: Any) -> str | None:
    items = result.get("items") if isinstance(result, dict) else result
    if not isinstance(items, list) or not items:
        return ""
    text = items[0].get("insertText") if isinstance(items[0], dict) else None
    if isinstance(text, dict):  # a StringValue snippet
        text = text.get("value")
    return text if isinstance(text, str) else ""


# -- llama-server driven as llama.vim drives it (the peer) -------------------------------------


class LlamaVimTarget:
    """llama.cpp's ``llama-server`` fed the trace the way llama.vim feeds it.

    llama.vim asks on every cursor move (no debounce), keeps one request in flight (a newer
    one waits on a 100 ms timer that each newer keystroke replaces) and never cancels one;
    it shows cached answers at once, and after showing one it asks speculatively for what
    would follow it. A record is answered when a suggestion is shown for its keystroke.
    """

    debounce_ms = 0.0  # llama.vim's CursorMovedI asks at once

    def __init__(self, binary: str, model: Path, settings: Settings, filename: str) -> None:
        self.binary = binary
        self.model = model
        self.context = settings.model.contextSize
        self.threads = settings.model.threads
        self.batch = settings.model.batchSize
        self.n_predict = settings.completion.maxTokens
        self.port = _free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self.log = tempfile.TemporaryFile()  # noqa: SIM115 - closed by run.py's run_*_mode
        self.load_ms = 0.0
        self.client = LlamaVimClient(filename)
        self.buffer: Buffer | None = None
        self.current: RequestRecord | None = None
        self.job: VimJob | None = None
        self.timer: asyncio.TimerHandle | None = None
        self.hint_shown = False
        self.can_accept = False
        self.last_move = time.monotonic()
        self.posted: list[dict[str, Any]] = []  # every /infill body sent, in order
        self.work: list[dict[str, Any]] = []  # engine facts of every answered request, by kind
        self.errors: list[str] = []
        self._resolved: dict[int, asyncio.Event] = {}
        self._posted_for: set[int] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._ticker: asyncio.Task[None] | None = None

    def command(self) -> list[str]:
        from codenook.engine.llama import default_threads

        threads = self.threads or default_threads()
        command = [self.binary, "-m", str(self.model), "--host", "127.0.0.1"]
        command += ["--port", str(self.port), "--cache-reuse", "256", "-c", str(self.context)]
        command += ["-t", str(threads), "-b", str(self.batch), "-ub", str(self.batch), "-np", "1"]
        return command

    async def start(self, trace: Trace) -> None:
        started = time.monotonic()
        self.process = subprocess.Popen(
            self.command(), stdin=subprocess.DEVNULL, stdout=self.log, stderr=subprocess.STDOUT
        )
        while time.monotonic() - started < READY_TIMEOUT_S:
            if self.process.poll() is not None:
                raise BenchError(f"llama-server exited with {self.process.returncode}")
            if await asyncio.to_thread(self._healthy):
                self.load_ms = (time.monotonic() - started) * 1000
                break
            await asyncio.sleep(0.2)
        else:
            raise BenchError(f"llama-server was not ready after {READY_TIMEOUT_S:.0f} s")
        # Opening the file: BufEnter gathers a chunk around the cursor, and (the editor still
        # in normal mode) the ring's timer moves it in and has the server read it.
        buffer = Buffer(trace.initial_text, trace.cursor)
        _, y = self.client.cursor(buffer)
        self.client.pick_chunk(self.client.around(self.client.lines(buffer), y), True, True)
        body = self.client.ring_update()
        if body is not None:
            await self._post_body(body, "ring")
        self.work.clear()  # opening the file is not part of the replay's numbers
        self._ticker = asyncio.ensure_future(self._ring_ticker())

    def _healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/health", timeout=2) as r:
                return bool(r.status == 200)
        except (urllib.error.URLError, OSError):
            return False

    async def _ring_ticker(self) -> None:
        while True:
            await asyncio.sleep(RING_UPDATE_S)
            if time.monotonic() - self.last_move < RING_IDLE_S:
                continue  # insert mode, cursor moving: the ring waits
            body = self.client.ring_update()
            if body is not None:
                self._spawn(self._post_body(body, "ring"))

    def _spawn(self, coroutine: Any) -> None:
        task = asyncio.ensure_future(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- the replay's side
    async def change(self, version: int, edit: Edit) -> None:
        self.client.modified = True
        self.last_move = time.monotonic()

    async def complete(self, record: RequestRecord, buffer: Buffer) -> None:
        """A cursor move (CursorMovedI): show what the cache has, then ask."""
        self.buffer, self.current = buffer, record
        self._resolved[id(record)] = asyncio.Event()
        self.last_move = time.monotonic()
        self.hint_shown = False  # s:on_move hides the suggestion ...
        self._try_hint(None)  # ... and shows a cached one
        self._fim(None, [])

    async def cancel(self, record: RequestRecord) -> None:
        # llama.vim never stops a request for a newer keystroke; one not yet sent is dropped.
        if id(record) not in self._posted_for:
            self._resolve(record, "cancelled")

    async def wait(self, record: RequestRecord) -> None:
        await self._resolved[id(record)].wait()

    def _resolve(self, record: RequestRecord, outcome: str) -> None:
        if record.outcome == "pending":
            record.outcome = outcome
            if outcome in ("answered", "late"):
                record.answered_at = asyncio.get_running_loop().time()
            self._resolved[id(record)].set()

    # -- llama.vim's FIM lane
    def _fim(self, pos: tuple[int, int] | None, prev: list[str]) -> None:
        """llama#fim: one request in flight, else a 100 ms timer (one, the newest call's)
        tries again. ``pos`` None: the cursor's, for the keystroke being typed."""
        if self.job is not None:
            if self.timer is not None:
                self.timer.cancel()
            loop = asyncio.get_running_loop()
            self.timer = loop.call_later(RETRY_S, self._fim, pos, prev)
            return
        # Sending now leaves self.timer as it is, as llama.vim leaves s:timer_fim: a retry
        # still waiting (a speculative one) is stopped by the next call that defers, instead
        # of firing later and replacing that call's timer (the keystroke's request was lost).
        assert self.buffer is not None
        record = self.current if pos is None and self.current is not None else None
        if record is not None and record.outcome != "pending":
            record = None  # already shown from the cache: the request still goes out
        lines = self.client.lines(self.buffer)
        x, y = pos if pos is not None else self.client.cursor(self.buffer)
        ctx = self.client.local(lines, x, y, prev) if y <= len(lines) else None
        keys = self.client.keys(ctx) if ctx is not None else []
        if (
            ctx is None
            or len(ctx.line_cur_suffix) > MAX_LINE_SUFFIX
            or any(self.client.cache_get(k) is not None for k in keys)
        ):
            if record is not None:  # nothing is sent and nothing shown for this keystroke
                self._resolve(record, "skipped")
            return
        _, cursor_y = self.client.cursor(self.buffer)
        body = self.client.fim_body(lines, cursor_y, ctx, prev, self.n_predict)
        self.job = VimJob(keys, record, "speculative" if prev else "fim")
        if record is not None:
            self._posted_for.add(id(record))
        self._spawn(self._run_job(self.job, body))
        self.client.gather(lines, y)

    async def _run_job(self, job: VimJob, body: dict[str, Any]) -> None:
        try:
            await self._finish_job(job, body)
        except Exception as exc:  # a defect of the emulation: reported, never a hung replay
            self.errors.append(f"llama.vim emulation: {type(exc).__name__}: {exc}")
            if job.record is not None:
                job.record.error = self.errors[-1][:300]
                self._resolve(job.record, "error")
            raise
        finally:
            if self.job is job:
                self.job = None

    async def _finish_job(self, job: VimJob, body: dict[str, Any]) -> None:
        status, payload, facts = await self._post_body(body, job.kind)
        record = job.record
        if status == 200 and isinstance(payload, dict) and "content" in payload:
            for key in job.keys:
                self.client.cache_insert(key, payload)
            if not self.hint_shown or not self.can_accept:
                # Still "in flight" here (the output callback runs before the exit
                # callback), so a speculative request this shows goes on the timer.
                self._try_hint(facts if job.record is self.current else None)
        elif record is not None and record.outcome == "pending":
            record.error = f"HTTP {status}: {payload}"[:300]
            self._resolve(record, "error")
        self.job = None
        if record is not None and record.outcome == "pending":
            self._resolve(record, "late")  # answered, but a newer keystroke came first

    def _try_hint(self, facts: dict[str, Any] | None) -> None:
        """s:fim_try_hint at the cursor: show a cached answer, then ask what follows it."""
        assert self.buffer is not None
        lines = self.client.lines(self.buffer)
        x, y = self.client.cursor(self.buffer)
        if y > len(lines):
            return
        text = self.client.find_answer(self.client.local(lines, x, y, []))
        if text is None:
            return
        content, self.can_accept = self.client.render(lines, x, y, text)
        self.hint_shown = True
        record = self.current
        if record is not None and record.outcome == "pending":
            record.suggestion = text
            record.engine = facts  # None: shown from the client's cache, no model call
            self._resolve(record, "answered")
        self._fim((x, y), content)  # the speculative request

    async def _post_body(
        self, body: dict[str, Any], kind: str
    ) -> tuple[int, Any, dict[str, Any] | None]:
        self.posted.append(body)
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=DRAIN_TIMEOUT_S)
        data = json.dumps(body).encode("utf-8")
        try:
            status, payload = await asyncio.to_thread(_post, connection, "/infill", data)
        except (OSError, http.client.HTTPException, ValueError) as exc:
            self.errors.append(f"{type(exc).__name__}: {exc}")
            return 0, str(exc), None
        finally:
            connection.close()
        if status != 200 or not isinstance(payload, dict):
            self.errors.append(f"HTTP {status}: {payload}"[:300])
            return status, payload, None
        prompt = float(payload.get("tokens_evaluated") or 0)
        prefilled = float(payload.get("timings/prompt_n") or 0)
        cached = payload.get("timings/cache_n")
        generated = float(payload.get("timings/predicted_n") or 0)
        facts = {
            "prompt_tokens": prompt,
            "cached_tokens": float(cached if cached is not None else max(0.0, prompt - prefilled)),
            "prefilled_tokens": prefilled,
            "generated_tokens": generated,
            # The first token comes out of reading the prompt, as in codenook's rows (a
            # one-token answer, an end of generation at once, has no decode speed).
            "decoded_tokens": max(0.0, generated - 1),
            "decode_ms": float(payload.get("timings/predicted_ms") or 0),
            "prefill_ms": float(payload.get("timings/prompt_ms") or 0),
        }
        self.work.append({"kind": kind, **facts})
        return status, payload, facts

    async def finish(self) -> None:
        """After the replay: stop the timers, let requests still running end."""
        if self._ticker is not None:
            self._ticker.cancel()
        if self.timer is not None:
            self.timer.cancel()
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=DRAIN_TIMEOUT_S)

    def stop(self) -> None:
        if self._ticker is not None:
            self._ticker.cancel()
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def log_tail(self, lines: int = 15) -> str:
        return log_tail(self.log, lines)


def _post(connection: http.client.HTTPConnection, path: str, body: bytes) -> tuple[int, Any]:
    connection.request("POST", path, body, {"Content-Type": "application/json"})
    response = connection.getresponse()
    data = response.read()
    try:
        return response.status, json.loads(data)
    except ValueError:
        return response.status, data.decode("utf-8", "replace")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def find_llama_server(given: str) -> str | None:
    """The executable at ``given`` (a path or a name on PATH), or None."""
    if os.sep in given or Path(given).exists():
        return given if os.access(given, os.X_OK) and Path(given).is_file() else None
    return shutil.which(given)
