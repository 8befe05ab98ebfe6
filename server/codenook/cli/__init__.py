"""Command line: ``serve`` (LSP), ``complete`` (one completion from a shell), ``doctor``."""

from __future__ import annotations

import argparse
import functools
import json
import logging
import re
import sys
import time
from pathlib import Path
from typing import Any

from codenook import __version__
from codenook.settings import Settings, describe, parse_settings


def _raw_settings(args: argparse.Namespace) -> tuple[dict[str, Any], list[str]]:
    """The settings given on the command line, as the editor would send them (unparsed)."""
    raw: dict[str, Any] = {}
    if getattr(args, "settings", None):
        try:
            loaded = json.loads(Path(args.settings).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            return {}, [f"cannot read settings file {args.settings}: {exc}"]
        if not isinstance(loaded, dict):
            return {}, [f"settings file {args.settings} must hold a JSON object"]
        if isinstance(loaded.get("codenook"), dict):
            loaded = loaded["codenook"]
        raw.update(loaded)
    for item in getattr(args, "set", None) or []:
        key, _, value = item.partition("=")
        try:
            raw[key] = json.loads(value)
        except ValueError:
            raw[key] = value
    if getattr(args, "model", None):
        raw["model.path"] = args.model
    return raw, []


def _settings_from_args(args: argparse.Namespace) -> tuple[Settings, list[str]]:
    raw, problems = _raw_settings(args)
    settings, more = parse_settings(raw)
    return settings, problems + more


def _add_setting_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", help="GGUF model file (overrides model.path)")
    parser.add_argument("--settings", help="JSON file with settings (same keys as the editor)")
    parser.add_argument(
        "--set",
        action="append",
        metavar="KEY=VALUE",
        help="one setting, e.g. --set completion.maxTokens=32 (repeatable)",
    )


def cmd_serve(args: argparse.Namespace) -> int:
    from codenook.lsp.server import make_server

    raw, problems = _raw_settings(args)
    problems += parse_settings(raw)[1]
    for problem in problems:
        print(f"codenook: {problem}", file=sys.stderr)
    # Command-line settings are pinned: they win over what the editor sends.
    server = make_server(raw)
    # A cancel that crosses its answer is normal; pygls would log it as a warning on stderr,
    # which editors show as an error in their LSP log.
    logging.getLogger("pygls.protocol.json_rpc").setLevel(logging.ERROR)
    if args.tcp:
        host, _, port = args.tcp.rpartition(":")
        host = host or "127.0.0.1"
        if host not in ("127.0.0.1", "localhost", "::1") and not args.allow_remote:
            print(
                f"codenook: refusing to listen on {host}: your code would be reachable from"
                " the network. Pass --allow-remote if that is what you want.",
                file=sys.stderr,
            )
            return 2
        server.start_tcp(host, int(port))
    else:
        server.start_io(sys.stdin.buffer, _protocol_stdout())
    return 0


def _protocol_stdout() -> Any:
    """Give the protocol a private copy of stdout and point fd 1 at stderr.

    Native code (llama.cpp, ggml) may print to fd 1; on a stdio language server that would
    corrupt the message stream. After this, only the LSP writer owns the real stdout.
    """
    import os

    sys.stdout.flush()
    private = os.dup(1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    return os.fdopen(private, "wb", buffering=0)


_LOCATION = re.compile(r"^(?P<file>.+):(?P<line>\d+):(?P<col>\d+)$")


def cmd_complete(args: argparse.Namespace) -> int:
    import anyio

    from codenook.app import App
    from codenook.text.documents import Document
    from codenook.engine.protocol import EngineError
    from codenook.text.positions import Encoding, PositionError

    match = _LOCATION.match(args.location)
    if not match:
        print("codenook: expected FILE:LINE:COL (1-based), e.g. app.py:12:5", file=sys.stderr)
        return 2
    path = Path(match["file"])
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        print(f"codenook: cannot read {path}: {exc}", file=sys.stderr)
        return 2
    settings, problems = _settings_from_args(args)
    for problem in problems:
        print(f"codenook: {problem}", file=sys.stderr)
    doc = Document(path.resolve().as_uri(), text, 0)
    try:
        offset = doc.lines.offset(int(match["line"]) - 1, int(match["col"]) - 1, Encoding.UTF32)
    except PositionError as exc:
        print(
            f"codenook: {path} has no position {match['line']}:{match['col']}: {exc}",
            file=sys.stderr,
        )
        return 2
    root = Path.cwd().resolve().as_uri()
    app = App(settings, roots=lambda: [root])
    load_started = time.perf_counter()
    app.start()
    app.worker.wait_loaded()
    load_ms = (time.perf_counter() - load_started) * 1000
    if app.worker.error:
        print(f"codenook: model unavailable: {app.worker.error}", file=sys.stderr)
        app.stop()
        return 1
    assert app.worker.engine is not None
    info = app.worker.engine.info
    runs = []
    try:
        for _ in range(max(1, args.repeat)):
            runs.append(
                anyio.run(
                    functools.partial(
                        app.completions.complete, doc.snapshot(), offset, reuse_shown=False
                    )
                )
            )
    except EngineError as exc:
        print(f"codenook: completion failed: {exc}", file=sys.stderr)
        return 1
    finally:
        app.stop()
    last = runs[-1]
    if args.json:
        print(
            json.dumps(
                {
                    "suggestion": last.text,
                    "model": info.path,
                    "load_ms": round(load_ms, 1),
                    "runs": [vars(r.timings) for r in runs],
                },
                indent=2,
            )
        )
        return 0
    print(last.text if last.text else "(no suggestion)")
    print("---", file=sys.stderr)
    print(
        f"model {Path(info.path).name} ({info.architecture}, "
        f"{'FIM' if info.fim.has_fim else 'prefix-only'} prompt), loaded in {load_ms:.0f} ms",
        file=sys.stderr,
    )
    for number, run in enumerate(runs, 1):
        label = "cold" if number == 1 else "warm"
        print(f"run {number} ({label}): {run.timings.summary()}", file=sys.stderr)
    if args.show_prompt and last.prompt is not None:
        print("--- prompt ---", file=sys.stderr)
        print(last.prompt.text, file=sys.stderr)
    return 0


def cmd_doctor(args: argparse.Namespace) -> int:
    from codenook.cli.doctor import run_doctor

    settings, problems = _settings_from_args(args)
    return run_doctor(settings, problems)


def cmd_settings(args: argparse.Namespace) -> int:
    print(describe())
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="codenook", description="AI code completion for any LSP editor, fully local."
    )
    parser.add_argument("--version", action="version", version=f"codenook {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the language server (stdio by default)")
    serve.add_argument(
        "--stdio",
        action="store_true",
        help="use stdio (the default; accepted because editors append it)",
    )
    serve.add_argument("--tcp", metavar="HOST:PORT", help="listen on TCP (loopback by default)")
    serve.add_argument(
        "--allow-remote", action="store_true", help="allow --tcp on a non-loopback address"
    )
    _add_setting_flags(serve)
    serve.set_defaults(func=cmd_serve)

    complete = sub.add_parser(
        "complete", help="complete at FILE:LINE:COL (1-based) and print the timing breakdown"
    )
    complete.add_argument("location", metavar="FILE:LINE:COL")
    complete.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="run N times to see the warm (cached) timing after the cold one",
    )
    complete.add_argument("--json", action="store_true", help="machine-readable output")
    complete.add_argument("--show-prompt", action="store_true", help="print the prompt too")
    _add_setting_flags(complete)
    complete.set_defaults(func=cmd_complete)

    doctor = sub.add_parser("doctor", help="check the model, llama.cpp build and machine")
    _add_setting_flags(doctor)
    doctor.set_defaults(func=cmd_doctor)

    from codenook.devtools import bench as bench_module

    bench = sub.add_parser(
        "bench", help="replay a typing session through the server; compare cache off/on"
    )
    bench_module.add_arguments(bench)
    bench.set_defaults(func=bench_module.main)

    from codenook.devtools import evalcontext

    eval_context = sub.add_parser(
        "eval-context",
        help="measure how often the cross-file context holds what holes cut in real code need",
    )
    evalcontext.add_arguments(eval_context)
    eval_context.set_defaults(func=evalcontext.command)

    settings = sub.add_parser("settings", help="list every setting with its default")
    settings.set_defaults(func=cmd_settings)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args))
