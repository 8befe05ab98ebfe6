"""``codenook eval-agent``'s command line: the options, the model, the report.

``codenook.cli`` builds this parser for every command it runs, so this module imports only
``argparse`` and the like at the top; the agent, the engine and the model come in when the
command runs. The model is loaded by the composition root's ``model_loader``, as ``codenook
complete`` and the language server load it, so ``--model`` and the embedded default resolve
the same way; tests pass a ``loader`` that builds a scripted engine instead.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from codenook.devtools.evalagent.tasks import BY_NAME  # plain data and the standard library

if TYPE_CHECKING:
    from codenook.app import LoaderFactory

TASK_NAMES = tuple(BY_NAME)
DEFAULT_CONTEXT = 8192  # the embedded SmolLM2's training context; a task needs room


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", metavar="PATH", help="GGUF model (default: embedded SmolLM2)")
    parser.add_argument(
        "--task",
        action="append",
        choices=TASK_NAMES,
        metavar="NAME",
        help=f"run only this task (repeatable): {', '.join(TASK_NAMES)}",
    )
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument(
        "--max-steps", type=int, default=25, metavar="N", help="model replies per task (25)"
    )
    parser.add_argument(
        "--step-tokens", type=int, default=1024, metavar="N", help="tokens per reply (1024)"
    )
    parser.add_argument(
        "--context-size",
        type=int,
        default=DEFAULT_CONTEXT,
        metavar="N",
        help=f"the model's context window in tokens ({DEFAULT_CONTEXT})",
    )
    parser.add_argument(
        "--gpu-layers", type=int, default=0, metavar="N", help="layers offloaded (-1: all)"
    )
    parser.add_argument(
        "--time-budget", type=float, default=900.0, metavar="S", help="seconds per task (900)"
    )
    parser.add_argument(
        "--allow-commands",
        action="append",
        default=[],
        metavar="PREFIX",
        help="also run commands starting with PREFIX (python ones always run; repeatable)",
    )
    parser.add_argument(
        "--keep",
        metavar="DIR",
        help="work in DIR/<task> and keep it (default: a temporary folder per task)",
    )
    parser.add_argument(
        "--verbose", action="store_true", help="print each task's transcript on stderr"
    )


def _usage_error(args: argparse.Namespace) -> str | None:
    if args.max_steps < 1:
        return "--max-steps must be at least 1"
    if args.step_tokens < 16:
        return "--step-tokens must be at least 16"
    if not 256 <= args.context_size <= 262144:
        return "--context-size must be between 256 and 262144"
    if args.gpu_layers < -1:
        return "--gpu-layers must be -1 (all) or more"
    if args.time_budget <= 0:
        return "--time-budget must be positive"
    if args.keep:
        keep = Path(args.keep)
        if keep.exists() and not keep.is_dir():
            return f"--keep {keep} is not a folder"
        for name in args.task or TASK_NAMES:
            folder = keep / name
            if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
                return f"--keep: {folder} exists and is not empty; remove it or pick another DIR"
    return None


def command(args: argparse.Namespace, loader: LoaderFactory | None = None) -> int:
    """``codenook eval-agent``, after its options are parsed: 0 whatever the tasks' verdicts
    (it measures, it does not gate), 2 on bad options, 1 when the model does not load."""
    from codenook.agent.loop import Limits
    from codenook.app import model_loader
    from codenook.devtools.evalagent.report import as_json, table
    from codenook.devtools.evalagent.run import ModelUnavailable, evaluate
    from codenook.settings import ModelSettings, Settings

    problem = _usage_error(args)
    if problem is not None:
        print(f"codenook eval-agent: {problem}", file=sys.stderr)
        return 2
    names = list(dict.fromkeys(args.task or TASK_NAMES))
    tasks = [BY_NAME[name] for name in names]
    settings = Settings(
        model=ModelSettings(
            path=args.model, contextSize=args.context_size, gpuLayers=args.gpu_layers
        )
    )
    limits = Limits(
        max_steps=args.max_steps,
        step_tokens=args.step_tokens,
        time_budget_s=args.time_budget,
        command_timeout_s=60.0,
        edits="apply",
        allow_commands=tuple(args.allow_commands),
    )
    keep = Path(args.keep) if args.keep else None
    if keep is not None:
        keep.mkdir(parents=True, exist_ok=True)
    factory = loader or model_loader
    try:
        model, reports = evaluate(
            tasks, factory(settings), limits, keep=keep, log=sys.stderr if args.verbose else None
        )
    except ModelUnavailable as exc:
        print(f"codenook eval-agent: the model could not load: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(as_json(model, reports), indent=1))
    else:
        print(table(model, reports))
    return 0


def main(argv: Sequence[str] | None = None, loader: LoaderFactory | None = None) -> int:
    """``python -m codenook.devtools.evalagent`` and the tests: without the rest of the CLI."""
    parser = argparse.ArgumentParser(
        prog="codenook eval-agent",
        description="Agent tasks on a small fixture project, checked automatically.",
    )
    add_arguments(parser)
    return command(parser.parse_args(argv), loader)
