"""``codenook bench``'s command line: the options, ``record``, and dispatch to the runners.

``codenook.cli`` builds this parser for every command it runs, ``serve`` included, so this
module imports only what the options need (the trace format); the runners, their asyncio and
HTTP clients are imported when a benchmark really runs.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from codenook.devtools.bench.engine import add_parser as add_engine_parser
from codenook.devtools.bench.errors import BenchError
from codenook.devtools.bench.trace import DEFAULT_DEBOUNCE_MS, DEFAULT_TRACE_NAME, record

DEFAULT_MAX_TOKENS = 16  # short suggestions: the benchmark is about prompt work, not decoding


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``codenook bench [options]`` runs a trace; ``codenook bench record SOURCE`` makes one."""
    parser.add_argument(
        "--trace", type=Path, help=f"trace file (default: the shipped {DEFAULT_TRACE_NAME})"
    )
    parser.add_argument(
        "--modes",
        default="off,on",
        help="comma-separated: off, on, remote, llama.vim (default: off,on, plus remote when"
        " --engine-url is given and llama.vim when --llama-server is given)",
    )
    parser.add_argument("--model", help="GGUF model file (sets model.path)")
    parser.add_argument("--settings", help="JSON file with settings for every mode")
    parser.add_argument(
        "--set", action="append", metavar="KEY=VALUE", help="one setting, JSON value (repeatable)"
    )
    parser.add_argument(
        "--max-tokens",
        type=int,
        default=DEFAULT_MAX_TOKENS,
        help=f"completion.maxTokens (default {DEFAULT_MAX_TOKENS})",
    )
    parser.add_argument(
        "--speed", type=float, default=1.0, help="typing speed factor (2 = twice as fast)"
    )
    parser.add_argument("--json", type=Path, metavar="FILE", help="write every number here")
    parser.add_argument(
        "--llama-server",
        metavar="PATH",
        help="llama.cpp's llama-server binary: adds mode llama.vim (llama-server driven as"
        " the llama.vim plugin drives it)",
    )
    parser.add_argument(
        "--engine-url",
        metavar="URL",
        help="an OpenAI-compatible server's base URL (e.g. http://127.0.0.1:8080/v1): mode"
        " remote runs `codenook serve` with engine.backend openai against it (adds that mode)",
    )
    parser.add_argument(
        "--engine-model",
        metavar="NAME",
        help="engine.model for mode remote (default: the first model the server lists)",
    )
    parser.add_argument(
        "--workspace",
        type=Path,
        metavar="DIR",
        help="replay inside this project folder (its index gives cross-file context; the trace's"
        " file path is relative to it; nothing is written there); default: an empty folder",
    )
    parser.description = (
        "Replay a recorded typing session through `codenook serve` the way an editor does, once"
        " per mode (prefix cache off / on, optionally a remote server or llama.vim), and"
        " compare latency and prompt work. Without a subcommand the trace is run; `record`"
        " makes a trace."
    )
    sub = parser.add_subparsers(
        dest="bench_command",
        title="subcommand (optional)",
        metavar="record SOURCE --out FILE | assist | shared | engine",
    )
    assist = sub.add_parser(
        "assist", help="time hover (cold / cached) and a streamed code action instead"
    )
    assist.add_argument("--model", dest="assist_model", help="GGUF model file (model.path)")
    assist.add_argument("--json", dest="assist_json", type=Path, metavar="FILE")
    shared = sub.add_parser(
        "shared",
        help="one shared engine host for N windows and an API conversation, against one"
        " window with its own model (RSS, latency, prefix reuse; one run)",
    )
    shared.add_argument(
        "--model", dest="shared_model", metavar="PATH", help="GGUF model file (model.path)"
    )
    shared.add_argument(
        "--trace", dest="shared_trace", metavar="FILE", type=Path, help="trace file"
    )
    shared.add_argument(
        "--windows",
        dest="shared_windows",
        metavar="N",
        type=int,
        default=3,
        help="shared windows (default 3)",
    )
    shared.add_argument("--json", dest="shared_json", type=Path, metavar="FILE")
    shared.add_argument(
        "--set", dest="shared_set", action="append", metavar="KEY=VALUE", help="one setting"
    )
    shared.add_argument(
        "--speed",
        dest="shared_speed",
        metavar="X",
        type=float,
        default=1.0,
        help="typing speed factor",
    )
    shared.add_argument(
        "--max-tokens",
        dest="shared_max_tokens",
        metavar="N",
        type=int,
        default=DEFAULT_MAX_TOKENS,
        help=f"completion.maxTokens (default {DEFAULT_MAX_TOKENS})",
    )
    shared.add_argument(
        "--conversation-tokens",
        dest="shared_conversation_tokens",
        metavar="N",
        type=int,
        default=256,
        help="max_tokens of each API turn of the agent scenario (default 256)",
    )
    add_engine_parser(sub)
    rec = sub.add_parser("record", help="make a trace by typing lines of an existing file")
    rec.add_argument("source", type=Path, help="the file whose lines are typed")
    rec.add_argument("--out", type=Path, required=True, help="trace file to write")
    rec.add_argument("--start-line", type=int, default=1, help="first typed line, 1-based")
    rec.add_argument("--lines", type=int, default=10, help="how many lines to type")
    rec.add_argument("--cpm", type=float, default=300.0, help="characters per minute")
    rec.add_argument("--seed", type=int, default=0, help="seed of the typing rhythm")
    rec.add_argument(
        "--auto-indent",
        action="store_true",
        help="a newline also inserts the next line's indentation (as editors do)",
    )
    rec.add_argument(
        "--typo-rate", type=float, default=0.0, help="chance a letter is mistyped and backspaced"
    )
    rec.add_argument(
        "--root",
        type=Path,
        help="the project folder SOURCE belongs to: the trace names SOURCE relative to it"
        " (replay with --workspace ROOT for cross-file context)",
    )
    rec.add_argument("--language-id", help="LSP language id (default: from the extension)")
    rec.add_argument(
        "--debounce-ms", type=float, default=DEFAULT_DEBOUNCE_MS, help="the editor's debounce"
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="codenook bench", description="Replay a typing session through the server."
    )
    add_arguments(parser)
    return parser


_LANGUAGE_IDS = {
    ".py": "python",
    ".js": "javascript",
    ".ts": "typescript",
    ".tsx": "typescriptreact",
    ".jsx": "javascriptreact",
    ".go": "go",
    ".rs": "rust",
}


def _relative_path(source: Path, root: Path | None) -> str:
    if root is None:
        return source.name
    try:
        return source.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        raise BenchError(f"{source} is not inside --root {root}") from None


def cmd_record(args: argparse.Namespace) -> int:
    try:
        source = args.source.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise BenchError(f"cannot read {args.source}: {exc}") from exc
    trace = record(
        source,
        args.start_line - 1,
        args.lines,
        cpm=args.cpm,
        seed=args.seed,
        auto_indent=args.auto_indent,
        typo_rate=args.typo_rate,
        uri_path=_relative_path(args.source, args.root),
        language_id=args.language_id or _LANGUAGE_IDS.get(args.source.suffix, "plaintext"),
        debounce_ms=args.debounce_ms,
    )
    trace.recorded = {
        "source": args.source.name,
        "start_line": args.start_line,
        "lines": args.lines,
        "cpm": args.cpm,
        "seed": args.seed,
        "auto_indent": args.auto_indent,
        "typo_rate": args.typo_rate,
    }
    trace.save(args.out)
    seconds = sum(e.delay_ms for e in trace.events) / 1000
    print(f"wrote {args.out}: {len(trace.events)} keystrokes, {seconds:.1f} s of typing")
    return 0


def main(args: argparse.Namespace) -> int:
    """Entry point for ``codenook bench``: ``record`` makes a trace, otherwise run one."""
    try:
        if args.bench_command == "record":
            return cmd_record(args)
        if args.bench_command == "assist":
            from codenook.devtools.bench.assist import run_assist

            return run_assist(args.assist_model or args.model, args.assist_json or args.json)
        if args.bench_command == "shared":
            from codenook.devtools.bench.shared import cmd_shared

            return cmd_shared(args)
        if args.bench_command == "engine":
            from codenook.devtools.bench.engine import cmd_engine

            return cmd_engine(args)
        from codenook.devtools.bench.run import cmd_run

        return cmd_run(args)
    except BenchError as exc:
        print(f"codenook bench: {exc}", file=sys.stderr)
        return 1
