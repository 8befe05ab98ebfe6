"""Command line: ``serve`` (LSP), ``engine`` (the shared host), ``complete``, ``doctor``, …"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from codenook import __version__
from codenook.settings import Settings, describe, parse_settings

if TYPE_CHECKING:
    from codenook.app import LoaderFactory

TOKEN_ENV = "CODENOOK_TOKEN"


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


def cmd_serve(args: argparse.Namespace, loader: LoaderFactory | None = None) -> int:
    """``codenook serve``; ``loader`` builds the engine (tests/serve_fake.py scripts one)."""
    from codenook.lsp import transport
    from codenook.lsp.server import make_server

    raw, problems = _raw_settings(args)
    problems += parse_settings(raw)[1]
    for problem in problems:
        print(f"codenook: {problem}", file=sys.stderr)
    # Command-line settings are pinned: they win over what the editor sends.
    server = make_server(raw) if loader is None else make_server(raw, loader)
    # pygls logs every error answer with a traceback (and a cancel that crosses its answer as
    # a warning) on stderr, which editors show as crashes in their LSP log. Error answers are
    # codenook's documented results (lsp/dispatch.py); real failures are logged there.
    logging.getLogger("pygls.protocol.json_rpc").setLevel(logging.CRITICAL)
    if args.tcp:
        host, _, port = args.tcp.rpartition(":")
        host = host.strip("[]") or "127.0.0.1"
        if not port.isdigit():
            print(f"codenook: --tcp wants HOST:PORT, not {args.tcp}", file=sys.stderr)
            return 2
        if host not in ("127.0.0.1", "localhost", "::1") and not args.allow_remote:
            print(
                f"codenook: refusing to listen on {host}: your code would be reachable from"
                " the network. Pass --allow-remote if that is what you want.",
                file=sys.stderr,
            )
            return 2
        try:
            token, announce = transport.tcp_token(args.token_file, os.environ.get(TOKEN_ENV))
        except (OSError, ValueError) as exc:
            print(f"codenook: cannot use the token file: {exc}", file=sys.stderr)
            return 2
        code = server.serve_tcp(host, int(port), token, announce)
    else:
        code = server.serve_io(sys.stdin.buffer, _protocol_stdout())
    return transport.leave(code, server.protocol.ended_at or time.monotonic())


def _protocol_stdout() -> Any:
    """Give the protocol a private copy of stdout and point fd 1 at stderr.

    Native code (llama.cpp, ggml) may print to fd 1; on a stdio language server that would
    corrupt the message stream. After this, only the LSP writer owns the real stdout.
    """
    sys.stdout.flush()
    private = os.dup(1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    return os.fdopen(private, "wb", buffering=0)


def cmd_complete(args: argparse.Namespace) -> int:
    from codenook.cli import complete

    settings, problems = _settings_from_args(args)
    for problem in problems:
        print(f"codenook: {problem}", file=sys.stderr)
    return complete.run(args, settings)


def cmd_doctor(args: argparse.Namespace) -> int:
    from codenook.cli.doctor import run_doctor

    settings, problems = _settings_from_args(args)
    return run_doctor(settings, problems)


def cmd_engine(args: argparse.Namespace) -> int:
    from codenook.cli import engine

    settings, problems = _settings_from_args(args)
    return engine.command(args, settings, problems)


def cmd_settings(args: argparse.Namespace) -> int:
    print(describe())
    return 0


def cmd_languages(args: argparse.Namespace) -> int:
    """The languages the server supports: what editor clients use before the server starts."""
    from codenook.text.languages import advertised

    langs = advertised()
    if args.json:
        print(json.dumps(langs))
        return 0
    rows = [("language", "language ids", "extensions")]
    for lang in langs:
        ids, exts = lang["languageIds"], lang["extensions"]
        assert isinstance(ids, list) and isinstance(exts, list)
        rows.append((str(lang["name"]), ", ".join(ids), " ".join(exts)))
    width0 = max(len(r[0]) for r in rows)
    width1 = max(len(r[1]) for r in rows)
    for name, ids_text, exts_text in rows:
        print(f"{name:<{width0}}  {ids_text:<{width1}}  {exts_text}".rstrip())
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
    serve.add_argument(
        "--token-file",
        metavar="PATH",
        help="with --tcp: the token clients must send as initializationOptions.token (read"
        f" from PATH, or a new one written there 0600); else ${TOKEN_ENV}, else a new one"
        " printed on stderr",
    )
    _add_setting_flags(serve)
    serve.set_defaults(func=cmd_serve)

    complete = sub.add_parser(
        "complete", help="complete at FILE:LINE:COL (1-based) and print the timing breakdown"
    )
    from codenook.cli.complete import add_arguments as complete_arguments

    complete_arguments(complete)
    _add_setting_flags(complete)
    complete.set_defaults(func=cmd_complete)

    engine = sub.add_parser(
        "engine",
        help="run the shared engine host (one model for every window, Claude Code and"
        " OpenAI-API tools), or show / stop it",
    )
    from codenook.cli.engine import add_arguments as engine_arguments

    engine_arguments(engine)
    _add_setting_flags(engine)
    engine.set_defaults(func=cmd_engine)

    doctor = sub.add_parser("doctor", help="check the model, llama.cpp build and machine")
    _add_setting_flags(doctor)
    doctor.set_defaults(func=cmd_doctor)

    # Only the options' modules: the dev tools themselves load when their command runs.
    from codenook.devtools.bench import cli as bench_cli

    bench = sub.add_parser(
        "bench", help="replay a typing session through the server; compare cache off/on"
    )
    bench_cli.add_arguments(bench)
    bench.set_defaults(func=bench_cli.main)

    from codenook.devtools.evalcontext import cli as evalcontext_cli

    eval_context = sub.add_parser(
        "eval-context",
        help="measure how often the cross-file context holds what holes cut in real code need",
    )
    evalcontext_cli.add_arguments(eval_context)
    eval_context.set_defaults(func=evalcontext_cli.command)

    from codenook.devtools.evalagent import cli as evalagent_cli

    eval_agent = sub.add_parser(
        "eval-agent", help="run agent tasks on a fixture project and check what they changed"
    )
    evalagent_cli.add_arguments(eval_agent)
    eval_agent.set_defaults(func=evalagent_cli.command)

    settings = sub.add_parser("settings", help="list every setting with its default")
    settings.set_defaults(func=cmd_settings)

    languages = sub.add_parser(
        "languages", help="list the languages the server supports (editor clients read --json)"
    )
    languages.add_argument("--json", action="store_true", help="machine-readable output")
    languages.set_defaults(func=cmd_languages)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args))
