"""Indexing worker processes: parsing a large workspace without stalling the server.

A parse holds the interpreter lock, and the server's event loop would wait behind it on
every keystroke while a 2,000-file workspace is indexed. Workers parse in processes of
their own. A worker (``worker_command``) reads batches of paths from stdin (one line each,
NUL-separated) and answers each with a length-prefixed pickle of ``index_files``' results.

A fresh interpreter rather than ``multiprocessing``: nothing of the server's ``__main__``
is re-imported, and nothing is inherited from a process that runs threads.

The workspace is untrusted (docs/security.md), and Python imports from the working
directory and from ``PYTHONPATH`` before the standard library: a ``pickle.py`` in the folder
would run in a worker started there with ``-m``. So a worker runs in isolated mode (``-I``:
neither the working directory nor a script's directory on ``sys.path``, no ``PYTHON*``
variables, no user site-packages), from the package's own directory, with only the
directory holding ``codenook`` put on ``sys.path`` explicitly (a worker that cannot import
its dependencies that way fails, and the build parses in the server instead).

A worker dies with the server that started it: Linux sends it SIGKILL when its parent
exits (``PR_SET_PDEATHSIG``), and everywhere a watchdog thread ends it once its parent
process is gone.
"""

from __future__ import annotations

import os
import pickle
import signal
import subprocess
import sys
import threading
import time

import codenook
from codenook.workspace.index.extract import index_files
from codenook.workspace.index.model import FileEntry

MODULE = "codenook.workspace.index.worker"
PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>
PARENT_CHECK_S = 0.5  # how often the watchdog looks for its parent


def _package_parent() -> str:
    """The directory holding the ``codenook`` package (a checkout's ``server/``)."""
    return os.path.dirname(os.path.dirname(os.path.abspath(codenook.__file__)))


def worker_path() -> list[str]:
    """What a worker puts in front of its ``sys.path``: the package's parent alone. Not the
    server's ``PYTHONPATH``, which an editor may have filled from the workspace's own
    ``.env`` file; the interpreter's site-packages (the server's venv) stay on the path."""
    return [_package_parent()]


def worker_command(root: str, max_bytes: int) -> list[str]:
    """The command line of a worker for ``root``: isolated mode, an explicit ``sys.path``."""
    code = (
        f"import sys; sys.path[:0] = {worker_path()!r}; "
        f"from {MODULE} import _worker_main; raise SystemExit(_worker_main(sys.argv[1:]))"
    )
    return [sys.executable, "-I", "-c", code, root, str(max_bytes), str(os.getpid())]


def start_worker(root: str, max_bytes: int) -> subprocess.Popen[bytes] | None:
    """A worker for ``root``, or None when none can start (the build then parses here).

    Started from the package's directory, never the workspace, with stdin and stdout its
    own pipes (so that it can never read the server's LSP input)."""
    if not sys.executable:
        return None
    try:
        return subprocess.Popen(
            worker_command(root, max_bytes),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            cwd=os.path.dirname(os.path.abspath(codenook.__file__)),
        )
    except (OSError, ValueError):
        return None


def ask_worker(worker: subprocess.Popen[bytes], batch: list[str]) -> list[FileEntry | str]:
    assert worker.stdin is not None and worker.stdout is not None
    line = "\0".join(batch).encode("utf-8", "surrogateescape") + b"\n"
    worker.stdin.write(line)
    worker.stdin.flush()
    size = worker.stdout.read(8)
    if len(size) != 8:
        raise EOFError("indexing worker exited")
    data = worker.stdout.read(int.from_bytes(size, "little"))
    results = pickle.loads(data)
    if not isinstance(results, list) or len(results) != len(batch):
        raise ValueError("indexing worker answered out of step")
    return results


def _die_with_parent(parent: int) -> None:
    """End this process when ``parent`` (the server) is gone, however it ended: a worker
    busy or blocked on a file must not outlive it."""
    if sys.platform.startswith("linux"):
        import ctypes

        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        except (OSError, AttributeError):
            pass

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(PARENT_CHECK_S)
        os._exit(1)

    if os.getppid() != parent:  # it died before prctl took effect
        os._exit(1)
    threading.Thread(target=watch, name="codenook-index-watchdog", daemon=True).start()


def _worker_main(argv: list[str]) -> int:
    # The entries pickle as codenook.workspace.index.model.FileEntry (imported above, not
    # defined in __main__), which is what the server unpickles.
    root, max_bytes = argv[0], int(argv[1])
    if len(argv) > 2:
        _die_with_parent(int(argv[2]))
    out = sys.stdout.buffer
    for line in sys.stdin.buffer:
        paths = line.rstrip(b"\n").decode("utf-8", "surrogateescape").split("\0")
        data = pickle.dumps(index_files(root, paths, max_bytes), pickle.HIGHEST_PROTOCOL)
        out.write(len(data).to_bytes(8, "little") + data)
        out.flush()
    return 0


if __name__ == "__main__":
    raise SystemExit(_worker_main(sys.argv[1:]))
