"""One repository's report: recall per language and budget, context timings, keystrokes.

Computing and printing are done together because the printed lines are the report people
read during a long run; the returned dictionary is the same numbers for ``--json``.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Sequence
from dataclasses import asdict

from codenook.devtools.evalcontext.holes import KINDS, HoleResult, evaluate_hole, find_holes
from codenook.devtools.evalcontext.keystrokes import log_line, percentile, type_on_big_file
from codenook.workspace.crossfile import TokenCounter
from codenook.workspace.index import WorkspaceIndex

MAX_PARSE_ERROR_LINES = 10  # files with parse errors named one by one; the rest counted


def parse_error_files(index: WorkspaceIndex) -> list[dict[str, object]]:
    """Indexed files whose tree holds ERROR or MISSING nodes, most errors first, with what
    the index still extracted from each (definitions per kind)."""
    found: list[dict[str, object]] = []
    for path in index.paths():
        entry = index.get(path)
        if entry is None or not entry.parse_errors:
            continue
        kinds: dict[str, int] = {}
        for definition in entry.definitions:
            kinds[definition.kind] = kinds.get(definition.kind, 0) + 1
        found.append(
            {
                "path": path,
                "errors": entry.parse_errors,
                "definitions": len(entry.definitions),
                "kinds": dict(sorted(kinds.items())),
            }
        )
    found.sort(key=lambda item: (-int(str(item["errors"])), str(item["path"])))
    return found


def parse_error_lines(broken: list[dict[str, object]], files: int) -> list[str]:
    """The report's lines on files with parse errors: none when every file parsed cleanly."""
    if not broken:
        return []
    total = sum(int(str(item["definitions"])) for item in broken)
    empty = sum(1 for item in broken if not item["definitions"])
    lines = [
        f"parse errors: {len(broken)} of {files} files; {total} definitions still extracted"
        f" from them; {empty} with none"
    ]
    for item in broken[:MAX_PARSE_ERROR_LINES]:
        kinds = item["kinds"]
        assert isinstance(kinds, dict)
        shown = ", ".join(f"{n} {kind}" for kind, n in kinds.items()) or "no definitions"
        lines.append(f"  {item['path']}: {item['errors']} error nodes; {shown}")
    if len(broken) > MAX_PARSE_ERROR_LINES:
        lines.append(f"  ... and {len(broken) - MAX_PARSE_ERROR_LINES} more (--json lists all)")
    return lines


def recall_row(group: Sequence[HoleResult], budgets: Sequence[int]) -> dict[str, object]:
    """Holes and recall (percent, one decimal) at each budget of one group of holes."""
    row: dict[str, object] = {"holes": len(group)}
    for budget in budgets:
        hits = sum(1 for r in group if r.recalled.get(budget))
        row[f"recall@{budget}"] = round(100 * hits / len(group), 1) if group else 0.0
    return row


def recall_by_kind(
    results: Sequence[HoleResult], budgets: Sequence[int]
) -> dict[str, dict[str, dict[str, object]]]:
    """Recall per language and hole kind (``holes.KINDS``), with an ``all`` language: each
    kind reaches its definition by another road, so a cause of misses shows in one row."""
    languages = sorted({r.hole.language for r in results})
    out: dict[str, dict[str, dict[str, object]]] = {}
    for language in [*languages, "all"]:
        rows: dict[str, dict[str, object]] = {}
        for kind in KINDS:
            group = [
                r for r in results if r.hole.kind == kind and language in ("all", r.hole.language)
            ]
            if group:
                rows[kind] = recall_row(group, budgets)
        out[language] = rows
    return out


def kind_lines(
    by_kind: dict[str, dict[str, dict[str, object]]], budgets: Sequence[int]
) -> list[str]:
    """The per-kind table: one row per language and kind (the ``all`` rows only when the
    repository has more than one language)."""
    shown = [lang for lang in by_kind if lang != "all"]
    if len(shown) != 1:
        shown.append("all")
    lines = [
        "| language | hole kind | holes | " + " | ".join(f"recall @{b}" for b in budgets) + " |",
        "|---|---|---|" + "---|" * len(budgets),
    ]
    for language in shown:
        for kind, row in by_kind[language].items():
            cells = " | ".join(f"{row[f'recall@{b}']}%" for b in budgets)
            lines.append(f"| {language} | {kind} | {row['holes']} | {cells} |")
    return lines


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
    """``repo``'s numbers; ``log`` gets the lines as they are known, since the keystroke part
    can take minutes after recall is already clear."""
    index = WorkspaceIndex(repo)
    stats = index.build(workers=workers)
    log(f"== {repo}\nindex: {stats.summary()}")
    broken = parse_error_files(index)
    for line in parse_error_lines(broken, stats.files):
        log(line)
    picked = find_holes(index, holes, seed)
    results = [evaluate_hole(index, hole, budgets, count) for hole in picked]
    by_language: dict[str, list[HoleResult]] = {}
    for result in results:
        by_language.setdefault(result.hole.language, []).append(result)
    table = {
        language: recall_row(group, budgets)
        for language, group in [*sorted(by_language.items()), ("all", results)]
    }
    by_kind = recall_by_kind(results, budgets)
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
    for line in kind_lines(by_kind, budgets):
        log(line)
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
            f"missed ({hole.kind}): {hole.path}:{hole.line + 1} uses {hole.name}"
            f" from {hole.defined_in}: {hole.signature}"
        )
    keystrokes: dict[str, float | int | str] | None = None
    if perf_lines > 0 and results:
        main_language = max(by_language, key=lambda lang: len(by_language[lang]))
        report = type_on_big_file(index, main_language, perf_lines, max(budgets), count)
        if report is not None:
            keystrokes = report.summary()
            log(log_line(keystrokes, main_language, max(budgets)))
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
        "parse_errors": broken,
        "recall": table,
        "recall_by_kind": by_kind,
        "timing": timing,
        "keystrokes": keystrokes,
        "holes": [
            {**asdict(r.hole), "recalled": {str(b): v for b, v in r.recalled.items()}}
            for r in results
        ],
    }
