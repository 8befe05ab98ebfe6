"""``codenook engine``: the one process that holds the model, for every window and API client.

On a 64 GB machine the 48 GB model fits once. Each ``codenook serve`` (one per editor window)
attaches here through a Unix socket instead of loading its own copy; the host's one scheduler
then sees every window's work, so a keystroke in any window pre-empts a long job from any
other, and each window types into a lane of its own so switching windows does not re-read the
whole prompt. Claude Code and OpenAI-API tools reach the same model over HTTP (``--api``).

A host started by a window (``--auto``) exits once no window and no API request has used it
for ``engine.idleExitS``; one started by hand stays until ``codenook engine stop``.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import secrets
import signal
import sys
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from codenook.app import model_loader
from codenook.completion.postprocess import Judge
from codenook.engine.host import EngineHost
from codenook.engine.protocol import EngineError
from codenook.engine.scheduler import Cancelled, Priority, Status, Superseded
from codenook.hosting import wire
from codenook.hosting.paths import HostPaths, new_token
from codenook.hosting.wire import differences, fingerprint
from codenook.settings import Settings

if TYPE_CHECKING:
    from codenook.api.http import ApiServer


@dataclass
class ApiOptions:
    host: str
    port: int
    allow_remote: bool = False
    api_key: str | None = None


class _Client:
    """One attached connection: an editor window, or a one-shot control command."""

    def __init__(self, number: int, writer: asyncio.StreamWriter, hello: dict[str, Any]) -> None:
        self.number = number
        self.writer = writer
        self.kind = str(hello.get("kind", "window"))
        self.name = str(hello.get("name", ""))[:200]
        self.pid = hello.get("pid")
        self.window = 0
        self.tasks: dict[int, asyncio.Task[None]] = {}
        self.stops: dict[int, threading.Event] = {}

    def send(self, message: dict[str, Any]) -> None:
        if not self.writer.is_closing():
            self.writer.write(wire.encode(message))


class EngineDaemon:
    def __init__(
        self,
        settings: Settings,
        paths: HostPaths,
        *,
        idle_exit_s: float | None,
        api: ApiOptions | None = None,
    ) -> None:
        self.settings = settings
        self.paths = paths
        self.idle_exit_s = idle_exit_s
        self.api_options = api
        self.fingerprint = fingerprint(settings, host=True)
        self.windows = settings.engine.windows
        self.host = EngineHost(
            model_loader(settings, windows=self.windows), self._status_from_thread
        )
        self._loop: asyncio.AbstractEventLoop | None = None
        self._clients: dict[int, _Client] = {}
        self._sent_engine: object = None  # the engine whose description windows were sent
        self._numbers = iter(range(1, 1 << 62))
        self._stopping: asyncio.Event | None = None
        self._token = ""
        self._api: ApiServer | None = None
        self._started = time.time()
        self.api_address: str | None = None

    # -- running -----------------------------------------------------------------------------

    def run(self) -> int:
        """Hold the lock, listen, load the model, serve until stopped; the exit status."""
        self.paths.root.mkdir(mode=0o700, parents=True, exist_ok=True)
        lock = os.open(self.paths.lock, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(lock)
            print(
                f"codenook engine: another engine host already runs ({self.paths.socket});"
                " `codenook engine status` shows it, `codenook engine stop` ends it",
                file=sys.stderr,
            )
            return 3
        try:
            return asyncio.run(self._serve())
        finally:
            for stale in (self.paths.socket, self.paths.token):
                with contextlib.suppress(OSError):
                    stale.unlink()
            os.close(lock)

    async def _serve(self) -> int:
        self._loop = asyncio.get_running_loop()
        self._stopping = asyncio.Event()
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                self._loop.add_signal_handler(signum, self._stopping.set)
        self._token = new_token(self.paths.token)
        with contextlib.suppress(FileNotFoundError):
            self.paths.socket.unlink()  # stale: we hold the lock, so nobody listens there
        old_umask = os.umask(0o177)
        try:
            server = await asyncio.start_unix_server(
                self._connected, path=str(self.paths.socket), limit=wire.MAX_LINE
            )
        finally:
            os.umask(old_umask)
        os.chmod(self.paths.socket, 0o600)
        self.host.start()
        code = 0
        try:
            if self.api_options is not None:
                code = await self._start_api(self.api_options)
            if code == 0:
                say(
                    f"listening on {self.paths.socket} (pid {os.getpid()}), model"
                    f" {self.fingerprint['model.path']}"
                    + (f", API on http://{self.api_address}" if self.api_address else "")
                )
                watcher = asyncio.ensure_future(self._idle_watch())
                await self._stopping.wait()
                watcher.cancel()
        finally:
            server.close()
            with contextlib.suppress(OSError):
                self.paths.socket.unlink()
            for client in list(self._clients.values()):
                for task in client.tasks.values():
                    task.cancel()
                client.writer.close()
            if self._api is not None:
                with contextlib.suppress(Exception):
                    await self._api.close()
            await asyncio.to_thread(self.host.stop, 10.0)
            say("stopped")
        return code

    async def _start_api(self, options: ApiOptions) -> int:
        from codenook.api.http import start_api

        try:
            self._api = await start_api(
                self.host,
                options.host,
                options.port,
                api_key=options.api_key,
                allow_remote=options.allow_remote,
            )
        except (OSError, ValueError) as exc:
            say(f"cannot serve the API on {options.host}:{options.port}: {exc}")
            return 2
        host = f"[{options.host}]" if ":" in options.host else options.host
        self.api_address = f"{host}:{self._api.port}"
        return 0

    async def _idle_watch(self) -> None:
        """Exit once nothing has used the host for ``idle_exit_s`` (a host started by a window)."""
        idle_since = time.monotonic()
        while True:
            await asyncio.sleep(0.5)
            api_busy = self._api is not None and self._api.active > 0
            windows = [c for c in self._clients.values() if c.kind == "window"]
            if windows or api_busy or self.host.status().queue_length:
                idle_since = time.monotonic()
            elif self.idle_exit_s is not None and time.monotonic() - idle_since > self.idle_exit_s:
                say(f"no window for {self.idle_exit_s:g} s: exiting")
                assert self._stopping is not None
                self._stopping.set()
                return

    # -- status --------------------------------------------------------------------------

    def _status_from_thread(self, status: Status) -> None:
        loop = self._loop
        if loop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(self._broadcast, status)

    def _broadcast(self, status: Status) -> None:
        # The model's description (its chat template is kilobytes) goes out once per loaded
        # engine: windows keep it, and statuses come several times per keystroke.
        engine = self.host.engine
        message = self._status_message(status, info=engine is not self._sent_engine)
        self._sent_engine = engine
        for client in list(self._clients.values()):
            if client.kind == "window":
                client.send(message)

    def _status_message(self, status: Status, info: bool = True) -> dict[str, Any]:
        engine = self.host.engine
        message: dict[str, Any] = {"op": "status", "status": wire.status_to_wire(status)}
        if engine is not None:
            if info:
                message["info"] = wire.info_to_wire(engine.info)
            message["counters"] = vars(engine.counters)
        message["preemptions"] = self.host.preemptions
        return message

    def describe(self) -> dict[str, Any]:
        """What ``codenook engine status`` prints."""
        status = self.host.status()
        engine = self.host.engine
        return {
            "pid": os.getpid(),
            "socket": str(self.paths.socket),
            "uptimeS": round(time.time() - self._started, 1),
            "state": status.state,
            "error": status.error,
            "queueLength": status.queue_length,
            "model": self.fingerprint["model.path"],
            "settings": {k: v for k, v in self.fingerprint.items() if k != "model.path"},
            "windows": [
                {"number": c.number, "name": c.name, "pid": c.pid, "lane": c.window}
                for c in self._clients.values()
                if c.kind == "window"
            ],
            "windowLanes": self.windows,
            "api": f"http://{self.api_address}" if self.api_address else None,
            "apiCounters": self._api.stats() if self._api is not None else None,
            "idleExitS": self.idle_exit_s,
            "counters": vars(engine.counters) if engine is not None else None,
            "preemptions": self.host.preemptions,
            "rssBytes": _rss_bytes(),
        }

    # -- one connection ------------------------------------------------------------------

    async def _connected(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        client: _Client | None = None
        try:
            hello = wire.decode(await asyncio.wait_for(reader.readline(), 10))
            token = str(hello.get("token", ""))
            if hello.get("op") != "hello" or not secrets.compare_digest(token, self._token):
                writer.write(wire.encode({"op": "refused", "message": "wrong token"}))
                await writer.drain()
                return
            client = _Client(next(self._numbers), writer, hello)
            if client.kind == "window":
                client.window = self._free_window()
            self._clients[client.number] = client
            theirs = hello.get("fingerprint") or {}
            welcome = self._status_message(self.host.status())
            welcome.update(
                op="welcome",
                version=wire.VERSION,
                pid=os.getpid(),
                model=self.fingerprint["model.path"],
                differences=differences(self.fingerprint, theirs) if theirs else [],
                window=client.window,
            )
            client.send(welcome)
            while line := await reader.readline():
                self._handle(client, wire.decode(line))
                await writer.drain()
        except (asyncio.TimeoutError, ValueError, KeyError, TypeError, ConnectionError) as exc:
            # Whoever sent it learns why the connection ends (first message: a hello).
            with contextlib.suppress(Exception):
                writer.write(wire.encode({"op": "protocol-error", "message": str(exc)}))
                await writer.drain()
        finally:
            if client is not None:
                self._clients.pop(client.number, None)
                for task in client.tasks.values():
                    task.cancel()
            writer.close()

    def _free_window(self) -> int:
        """The lowest interactive lane no attached window uses; shared round-robin past the last."""
        taken = {c.window for c in self._clients.values() if c.kind == "window"}
        for number in range(self.windows):
            if number not in taken:
                return number
        return len(self._clients) % self.windows

    def _handle(self, client: _Client, message: dict[str, Any]) -> None:
        op = message.get("op")
        if op == "generate":
            rid = int(message["id"])
            task = asyncio.ensure_future(self._generate(client, rid, message))
            client.tasks[rid] = task
            task.add_done_callback(lambda _t: client.tasks.pop(rid, None))
        elif op == "cancel":
            running = client.tasks.get(int(message["id"]))
            if running is not None:
                running.cancel()
        elif op == "stop":
            stop = client.stops.get(int(message["id"]))
            if stop is not None:
                stop.set()
        elif op == "status":
            client.send({"op": "described", **self.describe()})
        elif op == "shutdown":
            client.send({"op": "stopping", "pid": os.getpid()})
            assert self._stopping is not None
            self._stopping.set()
        else:
            client.send({"op": "protocol-error", "message": f"unknown op {op!r}"})

    async def _generate(self, client: _Client, rid: int, message: dict[str, Any]) -> None:
        loop = asyncio.get_running_loop()
        request, watch = wire.request_from_wire(message["request"])
        stop = client.stops[rid] = threading.Event()
        if watch:

            def on_text(piece: str) -> None:
                with contextlib.suppress(RuntimeError):  # the loop closed: the host is ending
                    loop.call_soon_threadsafe(client.send, {"op": "text", "id": rid, "text": piece})

            request.on_text = on_text
        # The window judges ``until`` on the streamed text and says stop: end at this token.
        request.until = lambda _text: stop.is_set()
        if request.alternatives > 1 and request.until_data is not None:
            # Only the first text streams back: the window's judge of the others, rebuilt.
            with contextlib.suppress(ValueError):
                request.until_alternative = Judge.from_data(request.until_data)
        key = message.get("key")
        try:
            result = await self.host.generate(
                request,
                Priority(int(message.get("priority", Priority.AGENT))),
                key=f"{client.number}:{key}" if key is not None else None,
                window=client.window,
            )
        except Superseded:
            client.send({"op": "failed", "id": rid, "kind": "superseded"})
        except (Cancelled, asyncio.CancelledError):
            client.send({"op": "failed", "id": rid, "kind": "cancelled"})
        except EngineError as exc:
            client.send({"op": "failed", "id": rid, "kind": "engine", "message": str(exc)})
        else:
            engine = self.host.engine
            client.send(
                {
                    "op": "result",
                    "id": rid,
                    "result": wire.result_to_wire(result),
                    "counters": vars(engine.counters) if engine is not None else {},
                    "preemptions": self.host.preemptions,
                }
            )
        finally:
            client.stops.pop(rid, None)


def say(message: str) -> None:
    print(f"codenook engine: {message}", file=sys.stderr, flush=True)


def _rss_bytes() -> int:
    try:
        with open("/proc/self/statm", encoding="ascii") as handle:
            return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0
