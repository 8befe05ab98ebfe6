"""``codenook eval-context``'s command line: the options, the token counter, the run.

``codenook.cli`` builds this parser for every command it runs, so this module imports only
``argparse`` and the like at the top; the index, tree-sitter and the model come in when the
command runs.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from codenook.workspace.crossfile import TokenCounter

APPROX = "approx (3 characters a token)"


def approx_counter(text: str) -> int:
    return max(1, len(text) // 3)


@contextlib.contextmanager
def token_counter(kind: str, model: str | None) -> Iterator[tuple[TokenCounter, str]]:
    """A token counter and its name; ``model`` (or the embedded default, resolved as the
    server resolves ``model.path``) is read vocabulary only: budgets are in the server's
    tokens, and a large GGUF's weights would cost seconds and gigabytes for nothing."""
    if kind != "model":
        yield approx_counter, APPROX
        return
    from codenook.engine.llama import Vocab
    from codenook.engine.models import NoModel, resolve_model_path
    from codenook.engine.protocol import EngineError

    try:
        vocab = Vocab(resolve_model_path(model))
    except (NoModel, EngineError) as exc:
        message = str(exc).rstrip(".")
        raise SystemExit(f"codenook eval-context: {message}; or pass --tokenizer approx") from exc

    def count(text: str) -> int:
        return len(vocab.tokenize(text))

    try:
        yield count, vocab.file.name
    finally:
        vocab.close()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("repo", nargs="+", help="repository or package folder(s)")
    parser.add_argument("--budgets", default="512,1024,2048", help="token budgets, comma-separated")
    parser.add_argument("--holes", type=int, default=200, help="holes per repository")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", metavar="OUT", help="write every number and hole here")
    parser.add_argument(
        "--tokenizer",
        choices=("model", "approx"),
        default="model",
        help="count tokens with the default model's tokenizer, or 3 characters a token",
    )
    parser.add_argument("--model", help="GGUF file whose tokenizer counts (default: embedded)")
    parser.add_argument(
        "--perf-lines",
        type=int,
        default=10_000,
        help="lines of the file typed on for keystroke timings (0: skip)",
    )
    parser.add_argument("--workers", type=int, help="indexing worker processes")
    parser.add_argument(
        "--show-misses", type=int, default=0, metavar="N", help="print N holes missed"
    )


def command(args: argparse.Namespace) -> int:
    """``codenook eval-context``, after its options are parsed."""
    from codenook.devtools.evalcontext.report import run
    from codenook.lru import CachedCounter

    budgets = [int(b) for b in args.budgets.split(",") if b.strip()]
    with token_counter(args.tokenizer, args.model) as (raw, tokenizer):
        count = CachedCounter(raw)
        print(f"tokenizer: {tokenizer}; budgets {budgets}; {args.holes} holes; seed {args.seed}")
        reports = []
        for repo in args.repo:
            if not os.path.isdir(repo):
                print(f"codenook: not a folder: {repo}", file=sys.stderr)
                return 2
            reports.append(
                run(
                    repo,
                    budgets,
                    args.holes,
                    args.seed,
                    count,
                    workers=args.workers,
                    perf_lines=args.perf_lines,
                    show_misses=args.show_misses,
                )
            )
    if args.json:
        Path(args.json).write_text(
            json.dumps({"tokenizer": tokenizer, "budgets": budgets, "repos": reports}, indent=1),
            encoding="utf-8",
        )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m codenook.devtools.evalcontext`` and the tests: without the rest of the CLI."""
    parser = argparse.ArgumentParser(
        prog="codenook eval-context",
        description="Recall of the cross-file context on holes cut in real code.",
    )
    add_arguments(parser)
    return command(parser.parse_args(argv))
