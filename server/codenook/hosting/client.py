"""An editor window's side of the shared engine host: ``EngineHost``'s interface over a socket.

The services of a window (completion, assist, agent) see the same host interface whether the
model is in this process or in ``codenook engine``. This side connects (starting the host when
none runs), counts tokens with the model's own vocabulary loaded without its weights, and
keeps serving when the host goes away: requests in flight end as errors at once (the editor
gets empty answers, never a hang), the user is told once, and the host is started again with
backoff.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import anyio

from codenook.engine.protocol import (
    EngineCounters,
    EngineError,
    GenerationRequest,
    GenerationResult,
    ModelInfo,
    Step,
)
from codenook.engine.scheduler import Cancelled, Priority, Status, Superseded
from codenook.hosting import wire
from codenook.hosting.paths import HostPaths, UnsafeDirectory, host_paths, read_token
from codenook.hosting.wire import fingerprint
from codenook.settings import Settings

CONNECT_WAIT_S = 30.0  # a host just started needs its imports before it listens
BACKOFF_S = (0.5, 1.0, 2.0, 4.0, 8.0, 15.0, 30.0)


class RemoteEngine:
    """The model as a window sees it: its description and tokenizer; generation is the host's."""

    def __init__(self, info: ModelInfo, tokenize: Callable[[str, bool], list[int]]) -> None:
        self.info = info
        self.counters = EngineCounters()
        self._tokenize = tokenize

    def tokenize(self, text: str, special: bool = False) -> list[int]:
        return self._tokenize(text, special)

    def generate(
        self, request: GenerationRequest, cancelled: Callable[[], bool], lane: int = 0
    ) -> GenerationResult:
        raise EngineError("generation runs in the shared engine host")

    def start(
        self, request: GenerationRequest, cancelled: Callable[[], bool], lane: int = 0
    ) -> Step:
        raise EngineError("generation runs in the shared engine host")

    def close(self) -> None:
        pass


@dataclass
class _Pending:
    request: GenerationRequest
    done: threading.Event = field(default_factory=threading.Event)
    text: str = ""
    until_at: int | None = None  # where the window's ``until`` said done
    result: GenerationResult | None = None
    error: BaseException | None = None


class SharedHost:
    """Attaches to (or starts) the user's engine host; one per window process."""

    def __init__(
        self,
        settings: Settings,
        on_status: Callable[[Status], None] | None = None,
        on_notice: Callable[[str], None] | None = None,
        *,
        spawn: bool = True,
        name: str = "codenook serve",
    ) -> None:
        self._settings = settings
        self._on_status = on_status
        self._on_notice = on_notice
        self._spawn = spawn
        self._name = name
        self._lock = threading.Lock()
        self._send_lock = threading.Lock()
        self._sock: socket.socket | None = None
        self._pending: dict[int, _Pending] = {}
        self._ids = itertools.count(1)
        self._status = Status("loading", 0, 0.0)
        self._engine: RemoteEngine | None = None
        self._vocab: Any = None
        self._vocab_path: str | None = None
        self._loaded = threading.Event()
        self._stopped = threading.Event()
        self._started = False
        self._thread: threading.Thread | None = None
        self.preemptions = 0
        self.reloads = 0
        self.host_pid: int | None = None
        self.window = 0
        self.restarts = 0
        self._reattach = False  # the socket was closed on purpose, to attach again at once

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> SharedHost:
        with self._lock:
            if self._started or self._stopped.is_set():
                return self
            self._started = True
        self._thread = threading.Thread(target=self._run, name="codenook-shared", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float | None = 5.0) -> None:
        """Detach (the host keeps serving other windows; it exits when idle)."""
        self._stopped.set()
        self._close_socket()
        self._fail_all(Cancelled("codenook is shutting down"))
        if self._thread is not None and timeout != 0:
            self._thread.join(timeout)
        if self._vocab is not None:
            with contextlib.suppress(Exception):
                self._vocab.close()

    def reload(self, settings: Settings) -> None:
        """New load-time settings: reattach, so the host compares them and says what differs."""
        self.reloads += 1
        self._settings = settings
        with self._lock:
            attached = self._sock is not None
        if attached:  # before the first attach there is nothing to redo
            self._reattach = True
            self._close_socket()

    @property
    def started(self) -> bool:
        return self._started

    def wait_loaded(self, timeout: float | None = None) -> bool:
        return self._loaded.wait(timeout)

    @property
    def engine(self) -> RemoteEngine | None:
        return self._engine if self._status.state not in ("loading", "failed") else None

    @property
    def error(self) -> str | None:
        return self._status.error if self._status.state == "failed" else None

    def status(self) -> Status:
        return self._status

    async def generate(
        self,
        request: GenerationRequest,
        priority: Priority,
        key: str | None = None,
        window: int = 0,
    ) -> GenerationResult:
        """Run ``request`` on the host; raises Superseded, Cancelled or EngineError."""
        job = _Pending(request)
        rid = next(self._ids)
        with self._lock:
            self._pending[rid] = job
        message = {
            "op": "generate",
            "id": rid,
            "request": wire.request_to_wire(request),
            "priority": int(priority),
            "key": key,
        }
        try:
            if not self._send(message):
                raise EngineError(self._status.error or "the shared engine host is not connected")
            await anyio.to_thread.run_sync(job.done.wait, abandon_on_cancel=True)
        except BaseException:
            if not job.done.is_set():
                self._send({"op": "cancel", "id": rid})
            raise
        finally:
            with self._lock:
                self._pending.pop(rid, None)
        if job.error is not None:
            raise job.error
        assert job.result is not None
        result = job.result
        if job.until_at is not None:  # what the in-process engine would have returned
            result.text = job.text[: job.until_at]
            result.stop_reason = "until"
        return result

    # -- the connection ----------------------------------------------------------------------

    def _run(self) -> None:
        failures = 0
        while not self._stopped.is_set():
            sock = self._attach()
            if sock is None:
                failures += 1
            else:
                failures = 0
                self._read(sock)
                if self._stopped.is_set():
                    return
                if self._reattach:
                    self._reattach = False
                    continue
                self.restarts += 1
            if self._stopped.is_set():
                return
            self._stopped.wait(BACKOFF_S[min(failures, len(BACKOFF_S) - 1)])

    def _attach(self) -> socket.socket | None:
        try:
            paths = host_paths()
        except UnsafeDirectory as exc:
            self._set_status(Status("failed", 0, 0.0, f"cannot use the engine host: {exc}"))
            return None
        sock = _connect(paths)
        if sock is None and self._spawn:
            spawned = self._spawn_host(paths)
            deadline = time.monotonic() + CONNECT_WAIT_S
            while sock is None and time.monotonic() < deadline and not self._stopped.is_set():
                if spawned.poll() not in (None, 0, 3):  # 3: another host won the race
                    break
                time.sleep(0.1)
                sock = _connect(paths)
        if sock is None:
            self._set_status(
                Status(
                    "failed",
                    0,
                    0.0,
                    f"the shared engine host does not answer on {paths.socket}; see {paths.log}"
                    " (or set engine.mode to inprocess)",
                )
            )
            return None
        try:
            sock.sendall(
                wire.encode(
                    {
                        "op": "hello",
                        "token": read_token(paths.token) or "",
                        "kind": "window",
                        "name": self._name,
                        "pid": os.getpid(),
                        "fingerprint": fingerprint(self._settings),
                    }
                )
            )
        except OSError:
            sock.close()
            return None
        with self._lock:
            self._sock = sock
        return sock

    def _spawn_host(self, paths: HostPaths) -> subprocess.Popen[bytes]:
        """``codenook engine --auto`` with this window's load-time settings, detached."""
        settings = self._settings
        args = [
            sys.executable,
            "-m",
            "codenook",
            "engine",
            "--auto",
            "--idle-exit",
            str(settings.engine.idleExitS),
        ]
        for key, value in fingerprint(settings).items():
            if value is not None:
                args += ["--set", f"{key}={json.dumps(value)}"]
        args += ["--set", f"engine.windows={settings.engine.windows}"]
        log = os.open(paths.log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            return subprocess.Popen(
                args,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                start_new_session=True,  # outlives this window; its own signals
                close_fds=True,
            )
        finally:
            os.close(log)

    def _read(self, sock: socket.socket) -> None:
        reader = sock.makefile("rb")
        try:
            while line := reader.readline(wire.MAX_LINE):
                self._receive(wire.decode(line))
        except (OSError, ValueError):
            pass
        finally:
            with contextlib.suppress(OSError):
                reader.close()
            self._close_socket()
        if self._stopped.is_set():
            return
        if self._reattach:  # new settings: the host compares them when we attach again
            self._fail_all(Cancelled("the window's engine settings changed"))
            return
        was = self.host_pid
        self._fail_all(EngineError("the shared engine host stopped"))
        self._set_status(
            Status(
                "failed",
                0,
                0.0,
                f"the shared engine host{f' (pid {was})' if was else ''} stopped; starting it"
                " again (completions are empty meanwhile)",
            )
        )

    def _receive(self, message: dict[str, Any]) -> None:
        op = message.get("op")
        if op in ("text", "result", "failed"):
            with self._lock:
                job = self._pending.get(int(message["id"]))
            if job is not None:
                self._job_message(int(message["id"]), job, message)
            if op == "result":
                self._update_counters(message)
        elif op == "welcome":
            self.host_pid = message.get("pid")
            self.window = int(message.get("window", 0))
            differs = message.get("differences") or []
            if differs and self._on_notice is not None:
                self._on_notice(
                    f"the shared engine host (pid {self.host_pid}) was started with other"
                    f" settings: {'; '.join(differs)}. This window uses it as it is; run"
                    " `codenook engine stop` to restart it with this window's settings, or"
                    " set engine.mode to inprocess."
                )
            self._status_message(message)
        elif op == "status":
            self._status_message(message)
        elif op == "refused":
            self._set_status(Status("failed", 0, 0.0, f"the engine host refused: {message}"))

    def _job_message(self, rid: int, job: _Pending, message: dict[str, Any]) -> None:
        op = message["op"]
        if op == "text":
            if job.until_at is not None:
                return  # already judged done; the host stops at its next token
            piece = str(message["text"])
            job.text += piece
            request = job.request
            if request.on_text is not None:
                request.on_text(piece)
            if request.until is not None and request.until(job.text):
                job.until_at = len(job.text)
                self._send({"op": "stop", "id": rid})
            return
        if op == "result":
            job.result = wire.result_from_wire(message["result"])
        else:
            kind = message.get("kind")
            if kind == "superseded":
                job.error = Superseded(None)
            elif kind == "cancelled":
                job.error = Cancelled("cancelled in the shared engine host")
            else:
                job.error = EngineError(str(message.get("message") or "the engine failed"))
        job.done.set()

    def _status_message(self, message: dict[str, Any]) -> None:
        status = wire.status_from_wire(message.get("status") or {})
        info = message.get("info")
        if info is not None and (self._engine is None or self._vocab_path != info.get("path")):
            try:
                self._load_vocab(wire.info_from_wire(info))
            except EngineError as exc:
                status = Status("failed", 0, 0.0, str(exc))
        self._update_counters(message)
        self._set_status(status)
        if status.state != "loading":
            self._loaded.set()

    def _load_vocab(self, info: ModelInfo) -> None:
        from codenook.engine.llama import Vocab  # the tokenizer only: no weights

        if self._vocab is not None:
            self._vocab.close()
        self._vocab = Vocab(info.path)
        self._vocab_path = info.path
        self._engine = RemoteEngine(info, self._vocab.tokenize)

    def _update_counters(self, message: dict[str, Any]) -> None:
        if self._engine is not None and isinstance(message.get("counters"), dict):
            wire.counters_from_wire(message["counters"], self._engine.counters)
        if "preemptions" in message:
            self.preemptions = int(message["preemptions"])

    def _set_status(self, status: Status) -> None:
        self._status = status
        if status.state == "failed":
            self._loaded.set()
        if self._on_status is not None:
            with contextlib.suppress(Exception):
                self._on_status(status)

    def _send(self, message: dict[str, Any]) -> bool:
        data = wire.encode(message)
        with self._send_lock:
            sock = self._sock
            if sock is None:
                return False
            try:
                sock.sendall(data)
            except OSError:
                return False
        return True

    def _close_socket(self) -> None:
        with self._lock:
            sock, self._sock = self._sock, None
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def _fail_all(self, error: BaseException) -> None:
        with self._lock:
            jobs = list(self._pending.values())
        for job in jobs:
            if not job.done.is_set():
                job.error = error
                job.done.set()


def _connect(paths: HostPaths) -> socket.socket | None:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(str(paths.socket))
    except OSError:
        sock.close()
        return None
    return sock


def control(message: dict[str, Any], timeout: float = 10.0) -> dict[str, Any] | None:
    """One request to the running host (``codenook engine status|stop``); None when none runs."""
    paths = host_paths(create=False)
    sock = _connect(paths)
    if sock is None:
        return None
    sock.settimeout(timeout)
    with sock, sock.makefile("rb") as reader:
        hello = {"op": "hello", "token": read_token(paths.token) or "", "kind": "control"}
        sock.sendall(wire.encode(hello))
        welcome = wire.decode(reader.readline(wire.MAX_LINE) or b"{}")
        if welcome.get("op") != "welcome":
            return welcome
        sock.sendall(wire.encode(message))
        while line := reader.readline(wire.MAX_LINE):
            answer = wire.decode(line)
            if answer.get("op") not in ("status",):
                return answer
    return None
