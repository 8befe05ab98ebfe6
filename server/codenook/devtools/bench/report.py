"""The report: what the client saw and what the engine did, per mode, and the table.

Client-side numbers (latency from the keystroke, outcomes) come from the replay's records;
engine-side numbers from ``codenook/stats`` or llama-server's timings. Both are kept apart so
that a mode whose engine cannot report (the peer has no checkpoints) shows ``n/a`` rather than
a zero that reads as a result.
"""

from __future__ import annotations

import math
import statistics
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

from codenook.devtools.bench.replay import RequestRecord
from codenook.devtools.bench.trace import Trace


def percentile(values: Sequence[float], share: float) -> float | None:
    """Nearest-rank percentile (``share`` in 0..1); None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(share * len(ordered)) - 1)]


def _ratio(numerator: float, denominator: float) -> float | None:
    return numerator / denominator if denominator else None


def summarize(
    name: str, trace: Trace, records: list[RequestRecord], elapsed: float
) -> dict[str, Any]:
    """What the client saw: requests, outcomes and keystroke→answer latencies."""
    latencies = [r.latency_ms for r in records if r.outcome == "answered"]
    values = [v for v in latencies if v is not None]
    outcomes = {k: sum(r.outcome == k for r in records) for k in _OUTCOMES}
    return {
        "mode": name,
        "keystrokes": len(trace.events),
        "requests_sent": len(records),
        **outcomes,
        "cancel_sent": sum(r.cancel_sent for r in records),
        "stale": sum(r.stale for r in records if r.outcome == "answered"),
        "suggestions": sum(bool(r.suggestion) for r in records if r.outcome == "answered"),
        "latency_ms": {
            "median": statistics.median(values) if values else None,
            "p95": percentile(values, 0.95),
            "mean": statistics.fmean(values) if values else None,
            "max": max(values) if values else None,
        },
        "replay_s": round(elapsed, 2),
        "requests": [r.to_json() for r in records],
    }


_OUTCOMES = ("answered", "cancelled", "skipped", "late", "error", "lost")


def _ran_model(record: RequestRecord) -> bool:
    """An answered request that ran the model (a typed-through answer did not)."""
    engine = record.engine
    return record.outcome == "answered" and engine is not None and engine["prompt_tokens"] > 0


def _hit_rate_and_speed(report: dict[str, Any], records: list[RequestRecord]) -> None:
    """Per-request engine facts of the answered requests: hit rate, decode speed, latency."""
    ran = [r for r in records if _ran_model(r)]
    sampled = [r.engine for r in ran if r.engine is not None]
    report["sampled_requests"] = len(sampled)
    report["prefix_hit_rate"] = _ratio(sum(s["cached_tokens"] > 0 for s in sampled), len(sampled))
    decoded = sum(s["decoded_tokens"] for s in sampled if s["decode_ms"] > 0)
    decode_s = sum(s["decode_ms"] for s in sampled if s["decoded_tokens"] > 0) / 1000
    report["decode_tokens_per_s"] = _ratio(decoded, decode_s)
    for key in ("prompt_tokens", "cached_tokens", "prefilled_tokens"):
        report[f"{key}_per_answer"] = _ratio(sum(s[key] for s in sampled), len(sampled))
    values = [v for v in (r.latency_ms for r in ran) if v is not None]
    report["model_latency_ms"] = {
        "median": statistics.median(values) if values else None,
        "p95": percentile(values, 0.95),
    }


def add_engine_stats(
    report: dict[str, Any], records: list[RequestRecord], stats: dict[str, Any]
) -> None:
    """Engine totals from ``codenook/stats`` (every engine request, cancelled ones too)."""
    counters = stats.get("counters") or {}
    report["counters"] = counters
    engine_requests = int(counters.get("requests", 0))
    report["engine_requests"] = engine_requests
    for key in ("prompt_tokens", "cached_tokens", "prefilled_tokens", "generated_tokens"):
        report[f"{key}_per_request"] = _ratio(counters.get(key, 0), engine_requests)
    report["reuse_ratio"] = _ratio(
        counters.get("cached_tokens", 0), counters.get("prompt_tokens", 0)
    )
    report["engine_cancelled"] = counters.get("cancelled")
    report["checkpoint_hits"] = counters.get("checkpoint_hits")
    report["checkpoint_saves"] = counters.get("checkpoint_saves")
    completion = stats.get("completionCounters")
    if isinstance(completion, dict):
        report["completion_counters"] = completion
        report["typed_through"] = completion.get("typedThrough")
        report["typed_through_share"] = _ratio(
            float(completion.get("typedThrough") or 0), float(completion.get("requests") or 0)
        )
    else:
        report["completion_counters"] = None
        report["typed_through"] = None
        report["typed_through_share"] = None
    _hit_rate_and_speed(report, records)
    if report["decode_tokens_per_s"] is None and stats.get("tokensPerSecond"):
        report["decode_tokens_per_s"] = float(stats["tokensPerSecond"])


def add_peer_stats(
    report: dict[str, Any], records: list[RequestRecord], work: Sequence[dict[str, Any]]
) -> None:
    """llama-server reports only on what it answered: the totals come from ``work``, every
    request the llama.vim peer sent (each answered, since it cancels none)."""
    answered = len(work)
    totals = {
        key: sum(s[key] for s in work)
        for key in ("prompt_tokens", "cached_tokens", "prefilled_tokens", "generated_tokens")
    }
    report["counters"] = totals
    report["engine_requests"] = answered
    for key, total in totals.items():
        report[f"{key}_per_request"] = _ratio(total, answered)
    report["reuse_ratio"] = _ratio(totals["cached_tokens"], totals["prompt_tokens"])
    for key in ("checkpoint_hits", "checkpoint_saves"):
        report[key] = None
    report["completion_counters"] = None
    report["engine_cancelled"] = 0  # llama.vim never stops a request
    shown = sum(r.outcome == "answered" and r.engine is None for r in records)
    report["typed_through"] = shown  # shown from its own cache of answers
    report["typed_through_share"] = _ratio(shown, len(records))
    report["engine_requests_by_kind"] = dict(Counter(str(w.get("kind")) for w in work))
    _hit_rate_and_speed(report, records)


def _number(value: Any, digits: int = 0) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return f"{value:.{digits}f}"


def _percent(value: Any) -> str:
    return "n/a" if value is None else f"{100 * value:.0f} %"


ROWS: tuple[tuple[str, Callable[[dict[str, Any]], str]], ...] = (
    ("completion requests sent", lambda r: _number(r["requests_sent"])),
    ("  answered", lambda r: _number(r["answered"])),
    ("  cancelled", lambda r: _number(r["cancelled"])),
    ("  not sent (the client's rules)", lambda r: _number(r.get("skipped", 0))),
    ("  answered after our cancel", lambda r: _number(r["late"])),
    ("  errors / never answered", lambda r: f"{r['error']} / {r['lost']}"),
    ("  answers after a newer keystroke", lambda r: _number(r["stale"])),
    ("  non-empty suggestions", lambda r: _number(r["suggestions"])),
    ("latency median (ms)", lambda r: _number(r["latency_ms"]["median"])),
    ("latency p95 (ms)", lambda r: _number(r["latency_ms"]["p95"])),
    ("  median / p95 of model answers (ms)", lambda r: _latency_pair(r["model_latency_ms"])),
    ("engine requests", lambda r: _number(r["engine_requests"])),
    ("  cancelled in the engine", lambda r: _number(r["engine_cancelled"])),
    ("prompt tokens / engine request", lambda r: _number(r["prompt_tokens_per_request"], 1)),
    ("  cached", lambda r: _number(r["cached_tokens_per_request"], 1)),
    ("prefilled tokens / engine request", lambda r: _number(r["prefilled_tokens_per_request"], 1)),
    ("prompt tokens / model answer", lambda r: _number(r["prompt_tokens_per_answer"], 1)),
    ("  cached", lambda r: _number(r["cached_tokens_per_answer"], 1)),
    ("  prefilled", lambda r: _number(r["prefilled_tokens_per_answer"], 1)),
    ("reuse ratio (cached / prompt tokens)", lambda r: _percent(r["reuse_ratio"])),
    ("prefix hit rate (answered requests)", lambda r: _percent(r["prefix_hit_rate"])),
    ("checkpoint hits / saves", lambda r: _pair(r["checkpoint_hits"], r["checkpoint_saves"])),
    ("answered without a model call", lambda r: _typed_through(r)),
    ("decode tokens/s", lambda r: _number(r["decode_tokens_per_s"], 1)),
    ("model load (ms)", lambda r: _number(r["load_ms"])),
    ("replay wall time (s)", lambda r: _number(r["replay_s"], 1)),
)


def _latency_pair(latency: dict[str, Any]) -> str:
    return f"{_number(latency['median'])} / {_number(latency['p95'])}"


def _pair(a: Any, b: Any) -> str:
    return "n/a" if a is None else f"{a} / {b}"


def _typed_through(report: dict[str, Any]) -> str:
    share = report["typed_through_share"]
    if share is None:
        return "n/a"
    return f"{report['typed_through']} ({_percent(share)})"


def format_table(reports: Sequence[dict[str, Any]]) -> str:
    """Rows = metrics, one column per mode, then the on/off ratio of prefilled tokens."""
    label_width = max(len(label) for label, _ in ROWS) + 2
    widths = [max(13, len(r["mode"]) + 2) for r in reports]
    lines = [
        "metric".ljust(label_width)
        + "".join(r["mode"].rjust(w) for r, w in zip(reports, widths, strict=True))
    ]
    for label, cell in ROWS:
        cells = "".join(cell(r).rjust(w) for r, w in zip(reports, widths, strict=True))
        lines.append(label.ljust(label_width) + cells)
    by_mode = {r["mode"]: r for r in reports}
    on = (by_mode.get("on") or {}).get("prefilled_tokens_per_request")
    off = (by_mode.get("off") or {}).get("prefilled_tokens_per_request")
    if on is not None and off:
        inverse = f" (1/{off / on:.0f})" if on else ""
        lines.append(f"\nprefilled tokens per request, on/off: {on / off:.3f}{inverse}")
    if "on" in by_mode:
        peers = [m for m in PEER_MODES if m in by_mode]
        lines += ["", *(line for m in peers for line in _versus(by_mode[m], by_mode["on"]))]
    return "\n".join(lines).rstrip("\n")


# Modes whose server is not codenook's own engine, compared with mode ``on`` (the same trace
# through codenook's in-process engine) in ratio lines under the table.
PEER_MODES = ("remote", "llama.vim")


def _times(a: Any, b: Any) -> str:
    return "n/a" if a is None or not b else f"{a / b:.2f}x"


def _versus(peer: dict[str, Any], on: dict[str, Any]) -> list[str]:
    """``peer / on`` ratios: latency (all answers, model answers), answered, prompt work."""
    name = f"{peer['mode']} / on"
    lat, base = peer["latency_ms"], on["latency_ms"]
    model, model_base = peer["model_latency_ms"], on["model_latency_ms"]
    return [
        f"latency {name}: median {_times(lat['median'], base['median'])},"
        f" p95 {_times(lat['p95'], base['p95'])}; model answers median"
        f" {_times(model['median'], model_base['median'])},"
        f" p95 {_times(model['p95'], model_base['p95'])};"
        f" answered {_times(peer['answered'], on['answered'])}",
        f"tokens per model answer {name}: prompt"
        f" {_times(peer['prompt_tokens_per_answer'], on['prompt_tokens_per_answer'])},"
        f" cached {_times(peer['cached_tokens_per_answer'], on['cached_tokens_per_answer'])},"
        " prefilled"
        f" {_times(peer['prefilled_tokens_per_answer'], on['prefilled_tokens_per_answer'])}",
    ]
