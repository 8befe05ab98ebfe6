"""The shared engine host: one ``codenook engine`` process holding the model for several editor
windows, each a real ``codenook serve`` over stdio (or the window side in this process).

Every test runs in a private runtime directory (``CODENOOK_RUNTIME_DIR``), so no test meets a
host that another left running, and stops its host at the end.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest

from codenook.app import model_loader
from codenook.engine.host import EngineHost
from codenook.engine.protocol import GenerationRequest
from codenook.engine.scheduler import Priority, Superseded
from codenook.hosting import wire
from codenook.hosting.client import SharedHost
from codenook.settings import Settings, parse_settings
from robustness.rawclient import RawClient, complete, initialize, open_document, wait_state

LONG = "# A long explanation of binary search trees.\nclass Node:\n    def __init__(self"
SHORT = "def add(a, b):\n    return "


@pytest.fixture
def runtime() -> Iterator[dict[str, str]]:
    """A private runtime directory (short: a Unix socket path is at most 107 bytes)."""
    root = tempfile.mkdtemp(prefix="cn-", dir="/tmp")
    env = {"CODENOOK_RUNTIME_DIR": root, "CODENOOK_ENGINE_MODE": "auto"}
    yield env
    subprocess.run(
        [sys.executable, "-m", "codenook", "engine", "stop"],
        env={**os.environ, **env},
        capture_output=True,
        timeout=30,
    )
    reap(root)
    shutil.rmtree(root, ignore_errors=True)


def reap(root: str) -> None:
    """Kill whatever still runs with this runtime directory (a window a failed test left alive
    would start the host again), so no test leaves a process behind."""
    marker = f"CODENOOK_RUNTIME_DIR={root}".encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            environ = (entry / "environ").read_bytes()
        except OSError:
            continue
        if marker in environ.split(b"\0"):
            with contextlib.suppress(OSError):
                os.kill(int(entry.name), signal.SIGKILL)


def engine(
    env: dict[str, str], *args: str, timeout: float = 30
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "codenook", "engine", *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def host_status(env: dict[str, str]) -> dict[str, Any]:
    done = engine(env, "status", "--json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def window(env: dict[str, str], path: Path, **options: Any) -> RawClient:
    client = RawClient.spawn([sys.executable, "-m", "codenook", "serve"], env=env)
    options = {"model": {"path": str(path)}, **options}
    initialize(client, options=options, ready=False)
    wait_state(client, "idle", timeout=60)
    return client


def told(client: RawClient) -> list[str]:
    return [
        str(m["params"].get("message"))
        for m in list(client.messages)
        if m.get("method") in ("window/showMessage", "codenook/problem")
    ]


def settings_for(model: Path, **raw: Any) -> Settings:
    settings, problems = parse_settings({"model.path": str(model), **raw})
    assert problems == []
    return settings


# -- the wire ------------------------------------------------------------------------------------


def test_a_request_crosses_the_wire_whole_but_its_callbacks_stay_home() -> None:
    request = GenerationRequest(
        [("<|fim_prefix|>", True), ("x = '<|endoftext|>'", False)],
        max_tokens=7,
        stop=["\n\n"],
        time_budget_s=1.5,
        until=lambda text: False,
        checkpoint_after=[1],
        checkpoint_end=True,
    )
    back, watch = wire.request_from_wire(json.loads(wire.encode(wire.request_to_wire(request))))
    assert watch and back.until is None and back.on_text is None
    assert list(back.prompt) == list(request.prompt)
    assert (back.max_tokens, list(back.stop), back.time_budget_s) == (7, ["\n\n"], 1.5)
    assert (list(back.checkpoint_after), back.checkpoint_end) == ([1], True)
    plain = GenerationRequest("text")
    assert wire.request_from_wire(wire.request_to_wire(plain))[1] is False


def test_only_differences_that_change_what_a_window_gets_are_reported(
    hybrid_path: Path, smollm_path: Path
) -> None:
    host = wire.fingerprint(settings_for(hybrid_path), host=True)
    same = wire.fingerprint(settings_for(hybrid_path, **{"model.threads": 3}))
    assert wire.differences(host, same) == []  # the host owner's tuning
    unnamed = wire.fingerprint(parse_settings({})[0])
    assert unnamed["model.path"] is None and wire.differences(host, unnamed) == []
    smaller = wire.fingerprint(settings_for(hybrid_path, **{"model.contextSize": 2048}))
    assert wire.differences(host, smaller) == []  # the host's context is larger: fine
    other = wire.fingerprint(settings_for(smollm_path, **{"model.contextSize": 8192}))
    found = wire.differences(host, other)
    assert [f.split(" ")[0] for f in found] == ["model.path", "model.contextSize"]


# -- the window side in this process, against a real host process --------------------------------


@pytest.fixture
def host_process(runtime: dict[str, str], hybrid_path: Path) -> Iterator[dict[str, str]]:
    """A host started by hand (``codenook engine``) on the hybrid fixture."""
    process = subprocess.Popen(
        [sys.executable, "-m", "codenook", "engine", "--model", str(hybrid_path)],
        env={**os.environ, **runtime},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 30
    while engine(runtime, "status").returncode != 0:
        assert process.poll() is None and time.monotonic() < deadline, "the host did not start"
        time.sleep(0.2)
    yield runtime
    process.terminate()
    process.wait(15)


def attach(env: dict[str, str], model: Path, **raw: Any) -> SharedHost:
    os.environ.update(env)
    host = SharedHost(settings_for(model, **raw), spawn=False).start()
    assert host.wait_loaded(30) and host.engine is not None, host.status()
    return host


@pytest.fixture
def restore_env() -> Iterator[None]:
    saved = dict(os.environ)
    yield
    os.environ.clear()
    os.environ.update(saved)


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_a_completion_is_the_same_text_shared_or_in_process(
    host_process: dict[str, str], hybrid_path: Path, restore_env: None
) -> None:
    """``until`` runs in the window on the streamed text: it must cut exactly where the
    in-process engine cuts, and ``on_text`` must see the same pieces."""
    shared = attach(host_process, hybrid_path)
    local = EngineHost(model_loader(settings_for(hybrid_path))).start()
    try:
        assert local.wait_loaded(30)
        for until_len in (1, 5, 17):
            texts: dict[str, tuple[str, str, list[str]]] = {}
            for name, host in (("shared", shared), ("local", local)):
                pieces: list[str] = []
                request = GenerationRequest(
                    LONG,
                    max_tokens=48,
                    until=lambda text, n=until_len: len(text) >= n,
                    on_text=pieces.append,
                )
                result = await host.generate(request, Priority.COMPLETION, key="doc")
                texts[name] = (result.text, result.stop_reason, pieces)
            assert texts["shared"] == texts["local"]
            assert texts["shared"][1] == "until"
    finally:
        shared.stop()
        local.stop()


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_a_keystroke_in_one_window_preempts_a_long_job_of_another(
    host_process: dict[str, str], hybrid_path: Path, restore_env: None
) -> None:
    first = attach(host_process, hybrid_path)
    second = attach(host_process, hybrid_path)
    try:
        assert {first.window, second.window} == {0, 1}
        alone = await first.generate(GenerationRequest(LONG, max_tokens=300), Priority.AGENT)
        started = threading.Event()
        order: list[str] = []

        async def long_job() -> str:
            request = GenerationRequest(LONG, max_tokens=300, on_text=lambda _piece: started.set())
            result = await first.generate(request, Priority.AGENT)
            order.append("long")
            return result.text

        async def keystroke() -> None:
            await anyio.to_thread.run_sync(started.wait, 30)
            await second.generate(GenerationRequest(SHORT, max_tokens=4), Priority.COMPLETION)
            order.append("keystroke")

        long_text: list[str] = []
        async with anyio.create_task_group() as group:
            group.start_soon(keystroke)
            long_text.append(await long_job())
        assert order == ["keystroke", "long"]
        assert long_text[0] == alone.text  # parked and resumed: the same tokens
        assert second.preemptions >= 1
    finally:
        first.stop()
        second.stop()


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_two_windows_typing_in_turn_each_keep_their_own_prompt_cache(
    host_process: dict[str, str], hybrid_path: Path, restore_env: None
) -> None:
    first = attach(host_process, hybrid_path)
    second = attach(host_process, hybrid_path)
    try:
        other = "import os\nprint(os.getcwd())\n" * 8

        async def ask(host: SharedHost, prompt: str) -> int:
            request = GenerationRequest(prompt, max_tokens=4, checkpoint_end=True)
            return (await host.generate(request, Priority.COMPLETION, "doc")).cached_tokens

        await ask(first, LONG)
        await ask(second, other)  # the other window types in between
        in_own_lane = await ask(first, LONG + "\n")
        assert first.engine is not None
        assert in_own_lane >= len(first.engine.tokenize(LONG)) - 4, in_own_lane
        # The same turns from one window (one lane): the other prompt evicted the first.
        await ask(first, other)
        shared_lane = await ask(first, LONG + "\n\n")
        assert shared_lane < in_own_lane / 2
    finally:
        first.stop()
        second.stop()


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_latest_wins_per_window_and_document(
    host_process: dict[str, str], hybrid_path: Path, restore_env: None
) -> None:
    first = attach(host_process, hybrid_path)
    second = attach(host_process, hybrid_path)
    try:
        outcomes: dict[str, str] = {}

        async def ask(name: str, host: SharedHost, tokens: int) -> None:
            request = GenerationRequest(SHORT, max_tokens=tokens)
            try:
                await host.generate(request, Priority.COMPLETION, "doc")
                outcomes[name] = "done"
            except Superseded:
                outcomes[name] = "superseded"

        # Sent in this order at once: a1 cannot finish 200 tokens before a2 arrives.
        async with anyio.create_task_group() as group:
            group.start_soon(ask, "a1", first, 200)
            group.start_soon(ask, "b1", second, 40)
            group.start_soon(ask, "a2", first, 40)
        # The same document in the same window: the older request gave way; the other
        # window's request for a document of the same name stands.
        assert outcomes == {"a1": "superseded", "b1": "done", "a2": "done"}
    finally:
        first.stop()
        second.stop()


# -- real windows (codenook serve over stdio) ---------------------------------------------


def test_windows_share_one_host_that_they_start_and_that_exits_when_idle(
    runtime: dict[str, str], hybrid_path: Path
) -> None:
    first = window(runtime, hybrid_path, engine={"idleExitS": 2})
    second = window(runtime, hybrid_path)
    try:
        status = host_status(runtime)
        assert status["model"] == str(hybrid_path.resolve())
        assert sorted(w["lane"] for w in status["windows"]) == [0, 1]
        pids = {w["pid"] for w in status["windows"]}
        assert pids == {first.process.pid, second.process.pid}  # type: ignore[union-attr]
        local = RawClient.spawn(
            [sys.executable, "-m", "codenook", "serve"],
            env={**runtime, "CODENOOK_ENGINE_MODE": "inprocess"},
        )
        initialize(local, options={"model": {"path": str(hybrid_path)}}, ready=False)
        wait_state(local, "idle", timeout=60)
        items = []
        for client in (first, second, local):
            uri = open_document(client, "shared.py")
            reply = complete(client, uri)
            assert "result" in reply, reply
            items.append(reply["result"]["items"])
        # The same prompt gives the same suggestion in each window and in-process.
        assert items[0] == items[1] == items[2] and items[0]
        stats = first.request("codenook/stats", {})["result"]
        assert stats["model"] == str(hybrid_path.resolve())
        assert stats["counters"]["requests"] >= 2  # the host's counters: both windows' work
        local.kill()
    finally:
        first.kill()
        second.kill()
    deadline = time.monotonic() + 20
    while engine(runtime, "status").returncode == 0:
        assert time.monotonic() < deadline, "the host did not exit when idle"
        time.sleep(0.3)


def test_killing_the_host_mid_request_is_told_recovered_and_nothing_hangs(
    runtime: dict[str, str], hybrid_path: Path
) -> None:
    options = {"completion": {"speculative": False, "maxTokens": 2000, "timeBudgetMs": 60000}}
    first = window(runtime, hybrid_path, **options)
    second = window(runtime, hybrid_path, **options)
    try:
        pid = host_status(runtime)["pid"]
        uris = [open_document(c, "dying.py", text=LONG) for c in (first, second)]
        ids = [
            c.send_request(
                "textDocument/inlineCompletion",
                {
                    "textDocument": {"uri": uri},
                    "position": {"line": 2, "character": 21},
                    "context": {"triggerKind": 1},
                },
            )
            for c, uri in zip((first, second), uris, strict=True)
        ]
        time.sleep(0.3)
        os.kill(pid, signal.SIGKILL)
        for client, rid in zip((first, second), ids, strict=True):
            reply = client.read_until(rid, timeout=10)  # answered, not hung
            assert "result" in reply or "error" in reply
        for client in (first, second):
            client.wait_for(lambda m: "stopped" in json.dumps(m.get("params", "")), 10, "the news")
            wait_state(client, "idle", timeout=60)  # started again
        assert host_status(runtime)["pid"] != pid
        for client, uri in zip((first, second), uris, strict=True):
            reply = complete(client, uri, line=0, character=5)
            assert "result" in reply, reply
        assert all(sum("stopped" in t for t in told(c)) == 1 for c in (first, second))
    finally:
        first.kill()
        second.kill()


def test_a_host_loaded_with_other_settings_is_reported_not_silently_shared(
    runtime: dict[str, str], hybrid_path: Path, smollm_path: Path
) -> None:
    first = window(runtime, hybrid_path)
    second = window(runtime, smollm_path, model={"path": str(smollm_path), "contextSize": 8192})
    time.sleep(0.5)  # the notice travels from the window's connection thread
    try:
        notes = " ".join(told(second))
        assert "other settings" in notes and "model.path" in notes and "contextSize" in notes
        assert "codenook engine stop" in notes
        assert told(first) == []
    finally:
        first.kill()
        second.kill()


def test_the_socket_is_private_and_a_wrong_token_is_refused(
    host_process: dict[str, str],
) -> None:
    root = Path(host_process["CODENOOK_RUNTIME_DIR"])
    assert stat.S_IMODE(root.stat().st_mode) == 0o700
    assert stat.S_IMODE((root / "engine.sock").stat().st_mode) == 0o600
    assert stat.S_IMODE((root / "engine.token").stat().st_mode) == 0o600
    with contextlib.closing(socket.socket(socket.AF_UNIX)) as sock:
        sock.connect(str(root / "engine.sock"))
        sock.sendall(wire.encode({"op": "hello", "token": "guess", "kind": "window"}))
        answer = wire.decode(sock.makefile("rb").readline())
    assert answer["op"] == "refused"
    done = engine(host_process, "status")
    assert done.returncode == 0 and "windows: 0 attached" in done.stdout
    second = subprocess.run(
        [sys.executable, "-m", "codenook", "engine"],
        env={**os.environ, **host_process},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert second.returncode == 3 and "already runs" in second.stderr


def test_status_and_stop_without_a_host_say_so(runtime: dict[str, str]) -> None:
    for action in ("status", "stop"):
        done = engine(runtime, action)
        assert done.returncode == 1 and "no engine host runs" in done.stderr


def test_doctor_shows_the_running_host_and_what_differs(
    host_process: dict[str, str], smollm_path: Path
) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "codenook", "doctor", "--model", str(smollm_path)],
        env={**os.environ, **host_process},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert "engine host" in done.stdout and "tiny-qwen3next.gguf" in done.stdout, done.stdout
    assert "differs from these settings: model.path" in done.stdout


def test_new_settings_in_a_window_attach_again_and_are_compared_not_reloaded(
    runtime: dict[str, str], hybrid_path: Path
) -> None:
    client = window(runtime, hybrid_path)
    try:
        pid = host_status(runtime)["pid"]
        settings = {"model": {"path": str(hybrid_path), "contextSize": 8192}}
        client.notify("workspace/didChangeConfiguration", {"settings": settings})
        client.wait_for(lambda m: "contextSize" in json.dumps(m.get("params", "")), 20, "notice")
        wait_state(client, "idle", timeout=30)
        assert host_status(runtime)["pid"] == pid  # the host kept its model
        assert not any("stopped" in t for t in told(client))
        reply = complete(client, open_document(client, "again.py"))
        assert reply["result"]["items"], reply
    finally:
        client.kill()


def test_garbage_on_the_socket_is_answered_and_the_host_keeps_serving(
    host_process: dict[str, str],
) -> None:
    path = str(Path(host_process["CODENOOK_RUNTIME_DIR"]) / "engine.sock")
    for garbage in (b"not json\n", b"[1, 2]\n", b"\xff\xfe\n"):
        with contextlib.closing(socket.socket(socket.AF_UNIX)) as sock:
            sock.connect(path)
            sock.sendall(garbage)
            answer = wire.decode(sock.makefile("rb").readline())
        assert answer["op"] == "protocol-error" and answer["message"], garbage
    assert engine(host_process, "status").returncode == 0
