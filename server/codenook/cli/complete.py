"""``codenook complete FILE:LINE:COL``: one completion from a shell, with the editor's context.

It builds the same ``App`` the language server builds and indexes the file's workspace first
(the git root above the file, or ``--root``), so the prompt printed by ``--show-prompt`` is
the one the editor would send, cross-file sections included.
"""

from __future__ import annotations

import argparse
import functools
import json
import re
import sys
import threading
import time
from pathlib import Path
from typing import Any

from codenook.settings import Settings

_LOCATION = re.compile(r"^(?P<file>.+):(?P<line>\d+):(?P<col>\d+)$")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("location", metavar="FILE:LINE:COL")
    parser.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="run N times to see the warm (cached) timing after the cold one",
    )
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.add_argument("--show-prompt", action="store_true", help="print the prompt too")
    parser.add_argument(
        "--root",
        metavar="DIR",
        help="the workspace to index for cross-file context (default: the git root of FILE,"
        " else its folder)",
    )
    parser.add_argument(
        "--index-wait",
        type=float,
        default=30.0,
        metavar="SECONDS",
        help="longest wait for the workspace index before completing (default 30)",
    )


def workspace_root(path: Path) -> Path:
    """The nearest folder above ``path`` holding ``.git``; else the file's own folder."""
    for folder in path.parents:
        if (folder / ".git").exists():
            return folder
    return path.parent


class _IndexWait:
    """The index's progress as lines on stderr, and the moment it is done."""

    def __init__(self) -> None:
        self.done = threading.Event()
        self._shown = -1

    def progress(self, root: str, done: int, total: int) -> None:
        tenth = done * 10 // max(1, total)
        if tenth > self._shown:
            self._shown = tenth
            print(f"codenook: indexing {root}: {done}/{total} files", file=sys.stderr)

    def finished(self, root: str, stats: Any, error: BaseException | None) -> None:
        summary = f"index failed: {error}" if stats is None else stats.summary()
        print(f"codenook: {root}: {summary}", file=sys.stderr)
        self.done.set()


def run(args: argparse.Namespace, settings: Settings) -> int:
    import anyio

    from codenook.app import App, Hooks
    from codenook.engine.protocol import EngineError
    from codenook.text.positions import Encoding, PositionError

    match = _LOCATION.match(args.location)
    if not match:
        print("codenook: expected FILE:LINE:COL (1-based), e.g. app.py:12:5", file=sys.stderr)
        return 2
    path = Path(match["file"]).resolve()
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        print(f"codenook: cannot read {path}: {exc}", file=sys.stderr)
        return 2
    root = Path(args.root).resolve() if args.root else workspace_root(path)
    if not root.is_dir():
        print(f"codenook: --root {root} is not a folder", file=sys.stderr)
        return 2
    waiting = _IndexWait()
    hooks = Hooks(index_progress=waiting.progress, index_done=waiting.finished)
    app = App(settings, roots=lambda: [root.as_uri()], hooks=hooks, mode="inprocess")
    doc = app.documents.open(path.as_uri(), text, 0, None)
    try:
        offset = doc.lines.offset(int(match["line"]) - 1, int(match["col"]) - 1, Encoding.UTF32)
    except PositionError as exc:
        print(
            f"codenook: {path} has no position {match['line']}:{match['col']}: {exc}",
            file=sys.stderr,
        )
        return 2
    load_started = time.perf_counter()
    app.start()
    app.workspace.opened(doc.uri, doc.snapshot())
    if settings.index.enabled and not waiting.done.wait(max(0.0, args.index_wait)):
        print(
            f"codenook: index not ready after {args.index_wait:g} s; completing without it",
            file=sys.stderr,
        )
    app.host.wait_loaded()
    load_ms = (time.perf_counter() - load_started) * 1000
    if app.host.error or app.host.engine is None:
        print(f"codenook: model unavailable: {app.host.error}", file=sys.stderr)
        app.stop()
        return 1
    info = app.host.engine.info
    complete = functools.partial(
        app.completions.complete, doc.snapshot(), offset, reuse_shown=False
    )
    try:
        runs = [anyio.run(complete) for _ in range(max(1, args.repeat))]
    except EngineError as exc:
        print(f"codenook: completion failed: {exc}", file=sys.stderr)
        return 1
    finally:
        app.stop()
    last = runs[-1]
    prompt = last.prompt.text if args.show_prompt and last.prompt is not None else None
    if args.json:
        report: dict[str, Any] = {
            "suggestion": last.text,
            "model": info.path,
            "root": str(root),
            "load_ms": round(load_ms, 1),
            "runs": [vars(r.timings) for r in runs],
        }
        if args.show_prompt:  # the key is there whenever asked for (null: no prompt was built)
            report["prompt"] = prompt
        print(json.dumps(report, indent=2))
        return 0
    print(last.text if last.text else "(no suggestion)")
    print("---", file=sys.stderr)
    kind = "FIM" if info.fim.has_fim else "prefix-only"
    print(
        f"model {Path(info.path).name} ({info.architecture}, {kind} prompt),"
        f" loaded in {load_ms:.0f} ms",
        file=sys.stderr,
    )
    for number, result in enumerate(runs, 1):
        label = "cold" if number == 1 else "warm"
        print(f"run {number} ({label}): {result.timings.summary()}", file=sys.stderr)
    if prompt is not None:
        print("--- prompt ---", file=sys.stderr)
        print(prompt, file=sys.stderr)
    return 0
