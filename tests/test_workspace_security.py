"""An untrusted folder opened in the editor: nothing in it runs, nothing in it blocks.

Each test builds a hostile workspace (a git config that runs a command, modules that shadow
the standard library, FIFOs and links to devices) and checks that indexing it runs nothing,
reads nothing but regular files inside the folder, and that worker processes die with the
process that started them. See docs/security.md.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

import codenook
from codenook.workspace.context import WorkspaceContext
from codenook.workspace.index import BuildStats, WorkspaceIndex
from codenook.workspace.index.files import read_source

SERVER_DIR = str(Path(codenook.__file__).resolve().parents[1])
needs_git = pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
needs_fifo = pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux /dev and /proc")


def _git(*args: str | Path) -> None:
    subprocess.run(["git", *map(str, args)], check=True, capture_output=True, timeout=60)


def _release(fifo: Path) -> None:
    """Unblock a reader stuck opening ``fifo`` (a failing test must not leave a thread
    stuck for the rest of the run)."""
    try:
        fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
    except OSError:
        return  # nobody is waiting on it
    os.close(fd)


def _gone(pid: int) -> bool:
    """Whether ``pid`` has exited (a zombie waiting for its new parent counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] in ("Z", "X")
    except FileNotFoundError:
        return True


# -- 1a: git --


@needs_git
def test_indexing_a_git_work_tree_never_runs_its_fsmonitor(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    _git("init", "-q", repo)
    (repo / "a.py").write_text("def a():\n    pass\n")
    _git("-C", repo, "add", "a.py")
    marker = tmp_path / "fsmonitor-ran"
    hook = repo / "monitor.sh"
    hook.write_text(f"#!/bin/sh\necho ran >> '{marker}'\n")
    hook.chmod(0o755)
    # Git runs a hook path relative to the work tree: any git command in it is now armed.
    _git("-C", repo, "config", "core.fsmonitor", "./monitor.sh")
    subprocess.run(["git", "-C", str(repo), "ls-files"], capture_output=True, timeout=60)
    assert marker.exists(), "the hostile repository is not armed: the test shows nothing"
    marker.unlink()

    index = WorkspaceIndex(repo)
    stats = index.build(workers=0)
    assert not marker.exists(), "indexing ran the folder's core.fsmonitor command"
    assert index.paths() == ["a.py"] and stats.files == 1


# -- 1b: worker processes --


HOSTILE_MODULE = "open({marker!r}, 'a').write(__name__ + '\\n')\n"


def _hostile_workspace(root: Path, marker: Path, files: int = 40) -> None:
    for name in ("pickle", "struct", "tree_sitter", "ctypes"):
        (root / f"{name}.py").write_text(HOSTILE_MODULE.format(marker=str(marker)))
    for i in range(files):
        (root / f"m{i}.py").write_text(f"def f{i}():\n    return {i}\n")


def test_worker_processes_import_nothing_from_the_workspace(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "ws"
    root.mkdir()
    marker = tmp_path / "imported"
    _hostile_workspace(root, marker)
    # The server runs with the workspace as its working directory, as editors start it.
    monkeypatch.chdir(root)
    monkeypatch.setenv("PYTHONPATH", str(root))
    index = WorkspaceIndex(root)
    stats = index.build(workers=1)
    assert not marker.exists(), f"a worker imported {marker.read_text().split()}"
    assert stats.workers == 1 and stats.files == 44
    assert [d.path for d in index.definitions("f39")] == ["m39.py"]


def test_a_worker_started_in_the_workspace_answers_without_importing_from_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from codenook.workspace.index import worker

    root = tmp_path / "ws"
    root.mkdir()
    marker = tmp_path / "imported"
    _hostile_workspace(root, marker, files=2)
    monkeypatch.chdir(root)
    process = worker.start_worker(str(root), 100_000)
    assert process is not None and process.stdin is not None
    try:
        answered = worker.ask_worker(process, ["m0.py", "m1.py"])
    finally:
        process.stdin.close()
        process.wait(timeout=30)
    assert not marker.exists(), f"the worker imported {marker.read_text().split()}"
    assert [type(a).__name__ for a in answered] == ["FileEntry", "FileEntry"]
    assert process.returncode == 0


# -- 2: FIFOs, devices, links leaving the folder --


def _special_workspace(root: Path, outside: Path) -> dict[str, Path]:
    """A folder with one good file and every kind of file the index must not read."""
    root.mkdir()
    (root / "good.py").write_text("def good():\n    pass\n")
    os.mkfifo(root / "pipe.py")  # a FIFO named like source
    os.mkfifo(root / "queue.fifo")
    (root / "to_fifo.py").symlink_to("queue.fifo")  # a link to a FIFO
    (root / "stdin.py").symlink_to("/dev/stdin")  # the server's LSP input
    (root / "zero.py").symlink_to("/dev/zero")  # a device that never ends
    (root / "inside.py").symlink_to("good.py")  # fine: a regular file in the folder
    outside.mkdir()
    (outside / "secret.py").write_text("TOKEN = 'do not index me'\n")
    (root / "secret.py").symlink_to(outside / "secret.py")  # a regular file elsewhere
    return {"fifos": root / "pipe.py", "queue": root / "queue.fifo"}


@needs_fifo
@linux_only
@pytest.mark.parametrize("git", [False, True], ids=["plain-folder", "git-work-tree"])
def test_fifos_devices_and_links_out_are_skipped_with_a_reason(tmp_path: Path, git: bool) -> None:
    if git and shutil.which("git") is None:
        pytest.skip("needs git")
    root = tmp_path / "ws"
    fifos = _special_workspace(root, tmp_path / "elsewhere")
    if git:
        _git("init", "-q", root)
    index = WorkspaceIndex(root)
    result: list[BuildStats] = []
    thread = threading.Thread(target=lambda: result.append(index.build(workers=0)), daemon=True)
    thread.start()
    thread.join(20)
    try:
        assert not thread.is_alive(), "indexing blocked on a FIFO or a device"
    finally:
        for fifo in fifos.values():
            _release(fifo)
    (stats,) = result
    assert index.paths() == ["good.py", "inside.py"]
    assert index.get("inside.py") is not None
    # pipe.py, to_fifo.py, zero.py: special; secret.py: outside; stdin.py: special when
    # pytest's stdin is a pipe, a tty or /dev/null, outside when it is a regular file.
    assert stats.skipped.get("special", 0) >= 3 and stats.skipped.get("outside", 0) >= 1
    assert stats.skipped["special"] + stats.skipped["outside"] == 5
    assert "special" in stats.summary() and "outside" in stats.summary()


@needs_fifo
@linux_only
def test_read_source_refuses_anything_but_a_regular_file_inside(tmp_path: Path) -> None:
    root = tmp_path / "ws"
    fifos = _special_workspace(root, tmp_path / "elsewhere")
    reasons: dict[str, str] = {}

    def read_all() -> None:
        for name in ("good.py", "inside.py", "pipe.py", "to_fifo.py", "zero.py", "secret.py"):
            try:
                read_source(str(root), name, 100_000)
                reasons[name] = "read"
            except Exception as exc:  # Skipped
                reasons[name] = getattr(exc, "reason", repr(exc))

    thread = threading.Thread(target=read_all, daemon=True)
    thread.start()
    thread.join(10)
    for fifo in fifos.values():
        _release(fifo)
    assert not thread.is_alive(), f"blocked after {reasons}"
    assert reasons == {
        "good.py": "read",
        "inside.py": "read",
        "pipe.py": "special",
        "to_fifo.py": "special",
        "zero.py": "special",
        "secret.py": "outside",
    }


@needs_fifo
@linux_only
def test_file_events_for_a_fifo_do_not_block(tmp_path: Path) -> None:
    root = tmp_path / "ws"
    fifos = _special_workspace(root, tmp_path / "elsewhere")
    done = threading.Event()
    context = WorkspaceContext(workers=0, on_done=lambda *_: done.set())
    context.set_folders([root.as_uri()])
    assert done.wait(20)
    (index,) = context.indexes.values()
    events = [
        ((root / name).as_uri(), kind)
        for name in ("pipe.py", "to_fifo.py", "zero.py", "stdin.py")
        for kind in ("created", "changed")
    ]
    thread = threading.Thread(
        target=lambda: (
            context.files_changed(events, lambda uri: False),
            context.closed((root / "pipe.py").as_uri()),
            index.update_file("to_fifo.py"),
        ),
        daemon=True,
    )
    thread.start()
    thread.join(10)
    for fifo in fifos.values():
        _release(fifo)
    assert not thread.is_alive(), "a file event for a FIFO blocked the event loop"
    assert index.paths() == ["good.py", "inside.py"]


STDIN_PROBE = textwrap.dedent(
    """
    import json, sys
    sys.path.insert(0, {server!r})
    from codenook.workspace.index import WorkspaceIndex
    index = WorkspaceIndex({root!r})
    stats = index.build(workers={workers})
    print(json.dumps({{"paths": index.paths(), "skipped": stats.skipped,
                      "stdin": sys.stdin.read()}}))
    """
)


@needs_fifo
@linux_only
@pytest.mark.parametrize("workers", [0, 1])
def test_indexing_leaves_the_servers_stdin_alone(tmp_path: Path, workers: int) -> None:
    """The LSP input is the server's stdin: a ``stdin.py -> /dev/stdin`` link, a
    ``.gitignore`` linked there or a git config including it must not read from it."""
    root = tmp_path / "ws"
    fifos = _special_workspace(root, tmp_path / "elsewhere")
    os.unlink(fifos["fifos"])  # a FIFO of its own would block the probe before the fix
    os.unlink(root / "to_fifo.py")
    for i in range(20):  # enough for two batches: a worker runs
        (root / f"m{i}.py").write_text(f"x{i} = {i}\n")
    (root / "sub").mkdir()
    (root / "sub" / ".gitignore").symlink_to("/dev/stdin")
    if shutil.which("git") is not None:
        _git("init", "-q", root)
        _git("-C", root, "config", "include.path", "/dev/stdin")
    message = b'Content-Length: 52\r\n\r\n{"jsonrpc":"2.0","id":1,"method":"initialize"}'
    probe = STDIN_PROBE.format(server=SERVER_DIR, root=str(root), workers=workers)
    ran = subprocess.run(
        [sys.executable, "-c", probe], input=message, capture_output=True, timeout=60, cwd=root
    )
    assert ran.returncode == 0, ran.stderr.decode()
    answer = json.loads(ran.stdout)
    assert answer["stdin"] == message.decode(), "indexing read the server's stdin"
    assert "stdin.py" not in answer["paths"] and "good.py" in answer["paths"]
    assert answer["skipped"] == {"special": 2, "outside": 1}  # stdin.py (a pipe), zero.py


# -- 2: worker processes die with their server --

PARENT = textwrap.dedent(
    """
    import os, subprocess, sys, time
    sys.path.insert(0, {server!r})
    from codenook.workspace.index import worker
    process = worker.start_worker({root!r}, 100_000)
    # Another process holds the worker's stdin open: it never sees the end of its input,
    # as when it is busy or blocked. Only its parent's death can end it.
    holder = subprocess.Popen(["sleep", "120"], pass_fds=[process.stdin.fileno()])
    print(process.pid, holder.pid, flush=True)
    time.sleep(120)
    """
)


@linux_only
def test_a_worker_dies_when_its_server_is_killed(tmp_path: Path) -> None:
    (tmp_path / "a.py").write_text("x = 1\n")
    parent = subprocess.Popen(
        [sys.executable, "-c", PARENT.format(server=SERVER_DIR, root=str(tmp_path))],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert parent.stdout is not None
    worker_pid, holder_pid = map(int, parent.stdout.readline().split())
    try:
        time.sleep(1.0)  # the worker is up and waiting for a batch
        assert not _gone(worker_pid)
        parent.send_signal(signal.SIGKILL)
        parent.wait(10)
        deadline = time.monotonic() + 5
        while not _gone(worker_pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _gone(worker_pid), "the indexing worker outlived its server"
    finally:
        for pid in (worker_pid, holder_pid):
            if not _gone(pid):
                os.kill(pid, signal.SIGKILL)
