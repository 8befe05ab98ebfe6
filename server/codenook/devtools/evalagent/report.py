"""The evaluation's numbers as a table for people and as JSON for scripts: the same numbers.

Two questions matter: did the task get done (the check's verdict, with its reason, since a
failure is only useful when it says where), and what did each step cost the engine. An
agent's step re-sends the whole conversation, so a working cache shows as steps that read
no more than what was added since the last one: ``prefilled / new`` at 1.00 or below (below
when the engine still holds the model's own last reply, which the loop counts as new), and a
number above 1.00 says the step read old tokens again.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from typing import Any

from codenook.devtools.evalagent.run import TaskReport

REASON_CHARS = 90  # of a failure's reason in the table (JSON has it whole)


def prefill_ratios(reports: Sequence[TaskReport]) -> list[float]:
    """``prefilled / new`` of every step after a task's first: the first step has nothing
    to reuse (but the engine's cache of an earlier task's system prompt)."""
    ratios: list[float] = []
    for report in reports:
        for prefilled, new in zip(report.prefilled_tokens[1:], report.new_tokens[1:], strict=True):
            if new > 0:
                ratios.append(prefilled / new)
    return ratios


def totals(reports: Sequence[TaskReport]) -> dict[str, Any]:
    passed = sum(1 for r in reports if r.passed)
    ratios = prefill_ratios(reports)
    return {
        "tasks": len(reports),
        "passed": passed,
        "pass_rate": round(passed / len(reports), 3) if reports else 0.0,
        "prefill_ratio_mean": round(statistics.fmean(ratios), 3) if ratios else None,
        "prefill_ratio_steps": len(ratios),
        "steps": sum(r.steps for r in reports),
        "generated_tokens": sum(r.generated_tokens for r in reports),
        "wall_s": round(sum(r.wall_s for r in reports), 2),
    }


def as_json(model: dict[str, Any], reports: Sequence[TaskReport]) -> dict[str, Any]:
    return {
        "model": model,
        "tasks": [r.as_json() for r in reports],
        "totals": totals(reports),
    }


def _numbers(values: Sequence[int]) -> str:
    return ", ".join(str(v) for v in values) or "-"


def _result(report: TaskReport) -> str:
    if report.passed:
        return "PASS"
    reason = " ".join(report.reason.split())
    if len(reason) > REASON_CHARS:
        reason = reason[: REASON_CHARS - 1] + "…"
    return f"FAIL: {reason}"


def table(model: dict[str, Any], reports: Sequence[TaskReport]) -> str:
    header = (
        "task",
        "result",
        "agent",
        "steps",
        "generated",
        "last prompt",
        "prefilled per step",
        "new per step",
        "wall",
    )
    rows = [
        (
            r.name,
            _result(r),
            r.status,
            str(r.steps),
            str(r.generated_tokens),
            str(r.last_prompt_tokens),
            _numbers(r.prefilled_tokens),
            _numbers(r.new_tokens),
            f"{r.wall_s:.1f} s",
        )
        for r in reports
    ]
    widths = [max(len(row[i]) for row in (header, *rows)) for i in range(len(header))]

    def line(cells: Sequence[str]) -> str:
        return "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)) + " |"

    out = [
        f"model {model['name']} ({model['architecture']}, context {model['context_size']},"
        f" {'native' if model['native_tools'] else 'fallback'} tool format),"
        f" loaded in {model['load_s']:.1f} s",
        "",
        line(header),
        "|" + "|".join("-" * (w + 2) for w in widths) + "|",
        *(line(row) for row in rows),
        "",
    ]
    sums = totals(reports)
    ratio = sums["prefill_ratio_mean"]
    shown = "n/a (no task took a second step)" if ratio is None else f"{ratio:.2f}"
    out.append(
        f"passed {sums['passed']}/{sums['tasks']} ({100 * sums['pass_rate']:.0f}%);"
        f" mean prefilled/new over steps >= 2: {shown}"
        + (f" ({sums['prefill_ratio_steps']} steps)" if ratio is not None else "")
        + f"; {sums['steps']} steps, {sums['generated_tokens']} tokens generated"
        f" in {sums['wall_s']:.1f} s"
    )
    return "\n".join(out)
