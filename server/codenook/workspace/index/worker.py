"""Indexing worker processes: parsing a large workspace without stalling the server.

A parse holds the interpreter lock, and the server's event loop would wait behind it on
every keystroke while a 2,000-file workspace is indexed. Workers parse in processes of
their own. ``python -m codenook.workspace.index.worker ROOT MAX_BYTES`` reads batches of
paths from stdin (one line each, NUL-separated) and answers each with a length-prefixed
pickle of ``index_files``' results.

A fresh interpreter rather than ``multiprocessing``: nothing of the server's ``__main__``
is re-imported, and nothing is inherited from a process that runs threads. The index
imports this module only when it starts workers, so that ``-m`` finds it not yet imported.
"""

from __future__ import annotations

import os
import pickle
import subprocess
import sys

import codenook
from codenook.workspace.index.extract import index_files
from codenook.workspace.index.model import FileEntry

MODULE = "codenook.workspace.index.worker"


def _package_parent() -> str:
    """The ``PYTHONPATH`` a worker needs to import ``codenook`` as this process does: the
    directory holding the package (a checkout's ``server/``), ahead of the caller's own."""
    here = os.path.dirname(os.path.dirname(os.path.abspath(codenook.__file__)))
    extra = os.environ.get("PYTHONPATH")
    return here + (os.pathsep + extra if extra else "")


def start_worker(root: str, max_bytes: int) -> subprocess.Popen[bytes] | None:
    """A worker for ``root``, or None when none can start (the build then parses here)."""
    try:
        return subprocess.Popen(
            [sys.executable, "-m", MODULE, root, str(max_bytes)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env={**os.environ, "PYTHONPATH": _package_parent()},
        )
    except OSError:
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


def _worker_main(argv: list[str]) -> int:
    # The entries pickle as codenook.workspace.index.model.FileEntry (imported above, not
    # defined in __main__), which is what the server unpickles.
    root, max_bytes = argv[0], int(argv[1])
    out = sys.stdout.buffer
    for line in sys.stdin.buffer:
        paths = line.rstrip(b"\n").decode("utf-8", "surrogateescape").split("\0")
        data = pickle.dumps(index_files(root, paths, max_bytes), pickle.HIGHEST_PROTOCOL)
        out.write(len(data).to_bytes(8, "little") + data)
        out.flush()
    return 0


if __name__ == "__main__":
    raise SystemExit(_worker_main(sys.argv[1:]))
