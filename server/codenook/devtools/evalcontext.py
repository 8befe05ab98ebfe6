"""``codenook eval-context``: how often the prompt holds what the missing code needs.

The harness indexes a repository, cuts holes in its code and builds, for each hole, the
context a completion at that spot would get (``context.build_completion_context`` for the
current file, ``crossfile.build_crossfile_context`` for the rest of the workspace), at each
token budget. A hole is a line that uses a name defined in exactly one *other* file of the
repository (in the same language family); the line's text after its indentation is removed
and the cursor put there. The hole is *recalled* when the cross-file chunks contain the
defining line of that name (its signature). Recall is reported per language and per budget,
with the time each context took.

A second part types on a 10,000-line file made of the repository's own code (warm index,
realistic keystrokes) and reports the per-keystroke cost of the incremental tree update,
``context.build_completion_context`` and the cross-file assembly, and how many keystrokes
changed the chunk list.

Token counts come from the default model's tokenizer (SmolLM2, loaded vocabulary and weights
in a few hundred milliseconds) unless ``--tokenizer approx`` is given (3 characters a token).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from tree_sitter import QueryCursor, Tree

from codenook.text import languages
from codenook.completion.context import Budget, build_completion_context
from codenook.workspace.crossfile import (
    Activity,
    ActivitySnapshot,
    CachedCounter,
    ContextMemo,
    TokenCounter,
    build_crossfile_context,
    family,
    rendered_tokens,
)
from codenook.text.documents import Document
from codenook.workspace.index import Definition, WorkspaceIndex, decode_source, iter_identifiers
from codenook.text.positions import Encoding

# Editors close brackets and quotes as they are typed; typing the closer then steps over it.
_PAIRS = {"(": ")", "[": "]", "{": "}", '"': '"', "'": "'", "`": "`"}
POSITIONS = (0.1, 0.25, 0.4, 0.55, 0.7, 0.85)  # where in the big file to type (share of lines)
MIN_HOLES_PER_FILE = 4  # holes per file: at most this, or twice the even share if more


@dataclass
class Hole:
    path: str
    line: int
    name: str
    language: str
    signature: str
    defined_in: str


@dataclass
class HoleResult:
    hole: Hole
    recalled: dict[int, bool] = field(default_factory=dict)  # budget -> recalled
    tokens: dict[int, int] = field(default_factory=dict)
    crossfile_ms: dict[int, float] = field(default_factory=dict)
    total_ms: dict[int, float] = field(default_factory=dict)


def percentile(values: Sequence[float], share: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(share * (len(ordered) - 1))))
    return ordered[index]


def _read(root: str, path: str) -> str | None:
    try:
        return decode_source(Path(root, path).read_bytes(), path)
    except Exception:
        return None


def _excluded_rows(tree: Tree, language: str) -> set[int]:
    """Rows of import statements: a hole there would only test the import block."""
    rows: set[int] = set()
    query = languages.load(language).queries.get("imports")
    if query is None:
        return rows
    for capture, nodes in QueryCursor(query).captures(tree.root_node).items():
        if not capture.startswith("import"):
            continue
        for node in nodes:
            statement = node
            while statement.parent is not None and statement.parent.parent is not None:
                if "import" in statement.type or "include" in statement.type:
                    break
                statement = statement.parent
            rows.update(range(statement.start_point.row, statement.end_point.row + 1))
    return rows


def _is_code(tree: Tree, line: str, row: int, name: str) -> bool:
    """Does ``name`` occur on ``row`` as an identifier (not in a comment or a string)?"""
    encoded = name.encode("utf-8")
    column = 0
    while True:
        column = line.find(name, column)
        if column < 0:
            return False
        byte_column = len(line[:column].encode("utf-8"))
        node = tree.root_node.named_descendant_for_point_range(
            (row, byte_column), (row, byte_column + len(encoded))
        )
        if node is not None and "identifier" in node.type and node.text == encoded:
            return True
        column += len(name)


def find_holes(index: WorkspaceIndex, count: int, seed: int) -> list[Hole]:
    """Up to ``count`` holes, sampled with ``seed``: lines using a name that exactly one
    definition in another file of the repository defines."""
    candidates: list[tuple[str, int, str, Definition]] = []
    for path in index.paths():
        entry = index.get(path)
        if entry is None:
            continue
        text = _read(index.root, path)
        if text is None:
            continue
        local = {d.name for d in entry.definitions}
        own = family(path)
        for row, line in enumerate(text.split("\n")):
            if not line.strip():
                continue
            for name in dict.fromkeys(iter_identifiers(line)):
                if name in local or len(name) < 3:
                    continue
                defs = index.definitions(name)
                if len(defs) == 1 and defs[0].path != path and family(defs[0].path) == own:
                    candidates.append((path, row, name, defs[0]))
                    break
    random.Random(seed).shuffle(candidates)
    files = len({path for path, _, _, _ in candidates}) or 1
    per_file_limit = max(MIN_HOLES_PER_FILE, -(-2 * count // files))
    holes: list[Hole] = []
    per_file: dict[str, int] = {}
    parsed: dict[str, tuple[list[str], Tree, set[int]]] = {}
    for path, row, name, definition in candidates:
        if len(holes) >= count:
            break
        if per_file.get(path, 0) >= per_file_limit:
            continue
        entry = index.get(path)
        if entry is None:
            continue
        if path not in parsed:
            text = _read(index.root, path) or ""
            tree = languages.load(entry.language).parser().parse(text.encode("utf-8"))
            parsed[path] = (text.split("\n"), tree, _excluded_rows(tree, entry.language))
        lines, tree, excluded = parsed[path]
        if row in excluded or row >= len(lines) or not _is_code(tree, lines[row], row, name):
            continue
        per_file[path] = per_file.get(path, 0) + 1
        holes.append(Hole(path, row, name, entry.language, definition.signature, definition.path))
    return holes


def _cut(text: str, row: int) -> tuple[str, int]:
    """The text with the hole's line emptied after its indentation, and the cursor offset."""
    lines = text.split("\n")
    line = lines[row]
    indent = line[: len(line) - len(line.lstrip())]
    lines[row] = indent
    offset = sum(len(x) + 1 for x in lines[:row]) + len(indent)
    return "\n".join(lines), offset


def evaluate_hole(
    index: WorkspaceIndex, hole: Hole, budgets: Sequence[int], count: TokenCounter
) -> HoleResult:
    result = HoleResult(hole)
    text = _read(index.root, hole.path)
    if text is None:
        return result
    holed, offset = _cut(text, hole.line)
    document = Document(f"file://{index.root}/{hole.path}", holed, 1)
    snapshot = document.snapshot()
    for budget in budgets:
        started = time.perf_counter()
        ctx = build_completion_context(snapshot, offset, Budget(), count, hole.path)
        middle = time.perf_counter()
        window = (ctx.window_start_line, ctx.cursor_line + ctx.suffix.count("\n"))
        cross = build_crossfile_context(
            snapshot, offset, hole.path, index, ActivitySnapshot(), budget, count, window=window
        )
        ended = time.perf_counter()
        shown = {line.strip() for chunk in cross.chunks for line in chunk.text.split("\n")}
        result.recalled[budget] = hole.signature in shown
        result.tokens[budget] = rendered_tokens(cross.chunks, count)
        result.crossfile_ms[budget] = (ended - middle) * 1000
        result.total_ms[budget] = (ended - started) * 1000
    return result


# -- keystrokes on a big file --------------------------------------------------------------------


@dataclass
class KeystrokeReport:
    path: str
    lines: int
    keystrokes: int
    edit_ms: list[float] = field(default_factory=list)  # Document.apply_edit
    lines_ms: list[float] = field(default_factory=list)  # the LineIndex rebuilt after an edit
    activity_ms: list[float] = field(default_factory=list)  # Activity.record_edit
    context_ms: list[float] = field(default_factory=list)  # build_completion_context
    crossfile_ms: list[float] = field(default_factory=list)  # build_crossfile_context
    recomputed_ms: list[float] = field(default_factory=list)  # ... when the memo missed
    changed: int = 0  # keystrokes whose chunk list differed from the previous keystroke's
    line_changes: int = 0  # ... of which right after Enter (a new line)
    memo_hits: int = 0  # keystrokes answered from the memo (nothing relevant changed)

    def summary(self) -> dict[str, float | int | str]:
        out: dict[str, float | int | str] = {
            "path": self.path,
            "lines": self.lines,
            "keystrokes": self.keystrokes,
            "chunk_list_changes": self.changed,
            "chunk_list_changes_after_enter": self.line_changes,
            "memo_hits": self.memo_hits,
            "edits_over_5ms": sum(1 for value in self.edit_ms if value > 5),
            "edit_max_ms": round(max(self.edit_ms, default=0.0), 1),
        }
        for name in (
            "edit_ms",
            "lines_ms",
            "activity_ms",
            "context_ms",
            "crossfile_ms",
            "recomputed_ms",
        ):
            values: list[float] = getattr(self, name)
            out[name.replace("_ms", "_p50_ms")] = round(percentile(values, 0.5), 3)
            out[name.replace("_ms", "_p95_ms")] = round(percentile(values, 0.95), 3)
        return out


def big_file(index: WorkspaceIndex, language: str, lines: int) -> tuple[str, str] | None:
    """A file of at least ``lines`` lines made of the repository's own files, and its path."""
    paths = [p for p in index.paths() if (e := index.get(p)) and e.language == language]
    if not paths:
        return None
    paths.sort(key=lambda p: -(index.get(p).size if index.get(p) else 0))  # type: ignore[union-attr]
    parts: list[str] = []
    total = 0
    while total < lines:
        for path in paths:
            text = _read(index.root, path)
            if text:
                parts.append(text.rstrip("\n") + "\n\n")
                total += text.count("\n") + 2
            if total >= lines:
                break
    spec = languages.spec_for(paths[0])
    extension = spec.extensions[0] if spec else ".txt"
    directory = paths[0].rsplit("/", 1)[0] + "/" if "/" in paths[0] else ""
    return "".join(parts), f"{directory}codenook_keystrokes{extension}"


def type_on_big_file(
    index: WorkspaceIndex, language: str, lines: int, budget: int, count: TokenCounter
) -> KeystrokeReport | None:
    """At several places of a big file, press Enter below a line of code and type that line
    again, keystroke by keystroke, with brackets and quotes auto-closed as editors do."""
    made = big_file(index, language, lines)
    if made is None:
        return None
    text, path = made
    index.update_file(path, text)  # the warm index knows the file, as the server's would
    document = Document(f"file://{index.root}/{path}", text, 1)
    activity = Activity()
    memo = ContextMemo()
    line_count = text.count("\n") + 1
    report = KeystrokeReport(path, line_count, 0)
    previous: tuple[object, ...] | None = None
    version = 1
    hits = 0
    try:
        for fraction in POSITIONS:
            document = Document(f"file://{index.root}/{path}", text, 1)  # each place afresh
            row = _code_row(document.text, int(line_count * fraction))
            if row is None:
                continue
            source_line = document.lines.line_text(row).strip()[:60]
            indent = document.lines.line_text(row)
            indent = indent[: len(indent) - len(indent.lstrip())]
            column = len(document.lines.line_text(row))
            line = row
            closers: list[str] = []  # what the editor's auto-pairing put after the cursor
            for piece in ["\n" + indent, *source_line]:
                version += 1
                started = time.perf_counter()
                if closers and piece == closers[-1]:
                    closers.pop()  # typing over the auto-inserted closer: only the cursor moves
                else:
                    inserted = piece + _PAIRS.get(piece, "")
                    document.apply_edit(
                        (line, column), (line, column), inserted, Encoding.UTF32, version
                    )
                    if piece in _PAIRS:
                        closers.append(_PAIRS[piece])
                edited = time.perf_counter()
                document.lines  # noqa: B018 - the line index, rebuilt lazily after each edit
                indexed = time.perf_counter()
                if piece.startswith("\n"):
                    first, new_last = line, line + 1
                    line, column = line + 1, len(indent)
                else:
                    first, new_last = line, line
                    column += len(piece)
                snapshot = document.snapshot()
                activity.record_edit(path, snapshot.lines, first, first, new_last)
                recorded = time.perf_counter()
                offset = snapshot.lines.line_start(line) + column
                ctx = build_completion_context(snapshot, offset, Budget(), count, path)
                contexted = time.perf_counter()
                window = (ctx.window_start_line, ctx.cursor_line + ctx.suffix.count("\n"))
                entry = index.get(path)  # the server passes the open file's indexed imports
                cross = build_crossfile_context(
                    snapshot,
                    offset,
                    path,
                    index,
                    activity.snapshot(),
                    budget,
                    count,
                    window=window,
                    imports=entry.imports if entry else None,
                    memo=memo,
                )
                ended = time.perf_counter()
                report.keystrokes += 1
                report.edit_ms.append((edited - started) * 1000)
                report.lines_ms.append((indexed - edited) * 1000)
                report.activity_ms.append((recorded - indexed) * 1000)
                report.context_ms.append((contexted - recorded) * 1000)
                report.crossfile_ms.append((ended - contexted) * 1000)
                if memo.hits == hits:
                    report.recomputed_ms.append((ended - contexted) * 1000)
                hits = memo.hits
                key = tuple((c.path, c.text) for c in cross.chunks)
                if previous is not None and key != previous:
                    report.changed += 1
                    if piece.startswith("\n"):
                        report.line_changes += 1
                previous = key
            previous = None  # moving elsewhere is allowed to change the chunks
    finally:
        index.remove_file(path)
    report.memo_hits = memo.hits
    return report


def _code_row(text: str, near: int) -> int | None:
    """A line at or after ``near`` holding an indented statement, to type again below it."""
    lines = text.split("\n")
    for row in range(near, min(len(lines) - 1, near + 2000)):
        line = lines[row]
        if line.startswith((" ", "\t")) and line.strip() and lines[row + 1].strip():
            stripped = line.strip()
            if (
                not stripped.startswith(("#", "//", "/*", "*", "@", "--", '"', "'"))
                and not stripped.endswith(("(", "[", "{", ",", "\\", ":"))
                and '"""' not in stripped
                and "'''" not in stripped
            ):
                return row
    return None


# -- the command ---------------------------------------------------------------------------------


def model_counter(model: str | None) -> tuple[TokenCounter, str]:
    """The default model's tokenizer (or ``model``'s), and its name."""
    from codenook.engine.llama import LlamaEngine
    from codenook.engine.models import embedded_default

    path = model or embedded_default()
    if path is None:
        raise SystemExit("no default model installed: pass --model or --tokenizer approx")
    engine = LlamaEngine(path, n_ctx=256, n_batch=64)

    def count(text: str) -> int:
        return len(engine.tokenize(text))

    return count, Path(path).name


def approx_counter(text: str) -> int:
    return max(1, len(text) // 3)


def run(
    repo: str,
    budgets: Sequence[int],
    holes: int,
    seed: int,
    count: TokenCounter,
    *,
    workers: int | None = None,
    perf_lines: int = 10_000,
    show_misses: int = 0,
    log: Callable[[str], None] = print,
) -> dict[str, object]:
    index = WorkspaceIndex(repo)
    stats = index.build(workers=workers)
    log(f"== {repo}\nindex: {stats.summary()}")
    picked = find_holes(index, holes, seed)
    results = [evaluate_hole(index, hole, budgets, count) for hole in picked]
    by_language: dict[str, list[HoleResult]] = {}
    for result in results:
        by_language.setdefault(result.hole.language, []).append(result)
    table: dict[str, dict[str, object]] = {}
    for language, group in [*sorted(by_language.items()), ("all", results)]:
        row: dict[str, object] = {"holes": len(group)}
        for budget in budgets:
            hits = sum(1 for r in group if r.recalled.get(budget))
            row[f"recall@{budget}"] = round(100 * hits / len(group), 1) if group else 0.0
        table[language] = row
    timing: dict[str, dict[str, float]] = {}
    for budget in budgets:
        cross = [r.crossfile_ms[budget] for r in results if budget in r.crossfile_ms]
        total = [r.total_ms[budget] for r in results if budget in r.total_ms]
        tokens = [r.tokens[budget] for r in results if budget in r.tokens]
        timing[str(budget)] = {
            "crossfile_p50_ms": round(percentile(cross, 0.5), 2),
            "crossfile_p95_ms": round(percentile(cross, 0.95), 2),
            "context_total_p50_ms": round(percentile(total, 0.5), 2),
            "context_total_p95_ms": round(percentile(total, 0.95), 2),
            "tokens_mean": round(statistics.fmean(tokens), 1) if tokens else 0.0,
        }
    header = "| language | holes | " + " | ".join(f"recall @{b}" for b in budgets) + " |"
    log(header)
    log("|---|---|" + "---|" * len(budgets))
    for language, row in table.items():
        cells = " | ".join(f"{row[f'recall@{b}']}%" for b in budgets)
        log(f"| {language} | {row['holes']} | {cells} |")
    for label, values in timing.items():
        log(
            f"budget {label}: cross-file p50 {values['crossfile_p50_ms']} ms,"
            f" p95 {values['crossfile_p95_ms']} ms; with context.py p50"
            f" {values['context_total_p50_ms']} ms, p95 {values['context_total_p95_ms']} ms;"
            f" {values['tokens_mean']} tokens on average"
        )
    misses = [r for r in results if not r.recalled.get(max(budgets), True)]
    for missed in misses[:show_misses]:
        hole = missed.hole
        log(
            f"missed: {hole.path}:{hole.line + 1} uses {hole.name}"
            f" from {hole.defined_in}: {hole.signature}"
        )
    keystrokes: dict[str, float | int | str] | None = None
    if perf_lines > 0 and results:
        main_language = max(by_language, key=lambda lang: len(by_language[lang]))
        report = type_on_big_file(index, main_language, perf_lines, max(budgets), count)
        if report is not None:
            keystrokes = report.summary()
            log(
                f"keystrokes on a {report.lines}-line {main_language} file"
                f" ({report.keystrokes} keystrokes, budget {max(budgets)}):"
                f" tree update p50 {keystrokes['edit_p50_ms']} / p95 {keystrokes['edit_p95_ms']}"
                f" ms ({keystrokes['edits_over_5ms']} over 5 ms, max"
                f" {keystrokes['edit_max_ms']} ms); line index p50 {keystrokes['lines_p50_ms']} /"
                f" p95 {keystrokes['lines_p95_ms']} ms; context.py p50"
                f" {keystrokes['context_p50_ms']} / p95 {keystrokes['context_p95_ms']} ms;"
                f" cross-file p50 {keystrokes['crossfile_p50_ms']} / p95"
                f" {keystrokes['crossfile_p95_ms']} ms (recomputed: p50"
                f" {keystrokes['recomputed_p50_ms']} / p95 {keystrokes['recomputed_p95_ms']} ms);"
                f" activity p95 {keystrokes['activity_p95_ms']} ms; chunk list changed on"
                f" {report.changed} keystrokes ({report.line_changes} after Enter);"
                f" {report.memo_hits} answered from the memo"
            )
    return {
        "repo": repo,
        "index": {
            "files": stats.files,
            "definitions": stats.definitions,
            "seconds": round(stats.seconds, 2),
            "skipped": stats.skipped,
            "listing": stats.listing,
            "workers": stats.workers,
        },
        "recall": table,
        "timing": timing,
        "keystrokes": keystrokes,
        "holes": [
            {**asdict(r.hole), "recalled": {str(b): v for b, v in r.recalled.items()}}
            for r in results
        ],
    }


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
    """``codenook eval-context``."""
    budgets = [int(b) for b in args.budgets.split(",") if b.strip()]
    if args.tokenizer == "model":
        raw, tokenizer = model_counter(args.model)
    else:
        raw, tokenizer = approx_counter, "approx (3 characters a token)"
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
    parser = argparse.ArgumentParser(
        prog="codenook eval-context",
        description="Recall of the cross-file context on holes cut in real code.",
    )
    add_arguments(parser)
    return command(parser.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
