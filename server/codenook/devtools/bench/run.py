"""Running a trace: one fresh server per mode, the same keystrokes, one report per mode.

Each mode gets its own server process so that the modes share nothing but the trace: a warm
cache or a loaded model left over from the previous mode would flatter the next one.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import sys
import tempfile
import urllib.parse
from pathlib import Path
from typing import Any

from codenook.devtools.bench.errors import BenchError
from codenook.devtools.bench.replay import replay
from codenook.devtools.bench.report import add_engine_stats, add_peer_stats, format_table, summarize
from codenook.devtools.bench.targets import CodenookTarget, LlamaVimTarget, find_llama_server
from codenook.devtools.bench.trace import Trace, default_trace
from codenook.settings import Settings, parse_settings

LLAMA_VIM = "llama.vim"
# The mode before llama.vim: the whole buffer as input_prefix, no ring, no time limits.
OLD_LLAMA_SERVER = "llama-server"
REMOTE = "remote"
# Settings that make a mode; they are applied over --settings/--set, so a mode always wins.
# Each mode's server loads its own model (the environment says so too, see rpc.server_env):
# attached to a shared engine host it would measure that host's settings, not the mode's.
# Mode remote is `codenook serve` with engine.backend openai (engine.url from --engine-url):
# the same server, scheduler and prompts, with the model behind HTTP.
MODE_SETTINGS: dict[str, dict[str, Any]] = {
    "off": {"engine.prefixCache": False, "engine.mode": "inprocess", "engine.backend": "llama"},
    "on": {"engine.prefixCache": True, "engine.mode": "inprocess", "engine.backend": "llama"},
    REMOTE: {"engine.backend": "openai", "engine.mode": "inprocess"},
}
MODES = (*MODE_SETTINGS, LLAMA_VIM)


def remote_settings(args: argparse.Namespace) -> dict[str, Any]:
    """Mode remote's own settings: the backend, and the server given on the command line."""
    url = (args.engine_url or "").strip()
    if not url:
        raise BenchError(
            "mode remote needs --engine-url URL: the base URL of an OpenAI-compatible server"
            " (llama-server, vLLM, ...), e.g. --engine-url http://127.0.0.1:8080/v1"
        )
    parsed = urllib.parse.urlsplit(url)
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise BenchError(f"--engine-url {url!r} is not an http:// or https:// URL with a host")
    settings = {**MODE_SETTINGS[REMOTE], "engine.url": url}
    if args.engine_model:
        settings["engine.model"] = args.engine_model
    return settings


async def run_codenook_mode(
    name: str,
    trace: Trace,
    settings: dict[str, Any],
    speed: float,
    workspace: Path | None = None,
) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="codenook-bench-") as scratch:
        root = workspace.resolve() if workspace is not None else Path(scratch)
        target = CodenookTarget(settings, trace, root, wait_for_index=workspace is not None)
        try:
            first = await target.start()
            records, elapsed = await replay(trace, target, speed)
            stats = await target.stats()
        except BenchError as exc:
            tail = target.log_tail()
            raise BenchError(f"mode {name}: {exc}\n--- server log (tail) ---\n{tail}") from exc
        finally:
            await target.stop()
            target.log.close()
    report = summarize(name, trace, records, elapsed)
    report["settings"] = settings
    report["model"] = first.get("model")
    report["architecture"] = first.get("architecture")
    report["load_ms"] = round(target.load_ms, 1)
    report["messages"] = list(target.rpc.messages) if target.rpc else []
    add_engine_stats(report, records, stats)
    if settings.get("engine.backend") == "openai":
        # The server keeps no recurrent-state checkpoints of ours: n/a, not a zero.
        report["checkpoint_hits"] = report["checkpoint_saves"] = None
        report["engine_url"] = settings.get("engine.url")
    return report


async def run_llama_vim_mode(
    binary: str, trace: Trace, settings: Settings, speed: float
) -> dict[str, Any]:
    from codenook.engine.models import NoModel, resolve_model_path

    try:
        model = resolve_model_path(settings.model.path)
    except NoModel as exc:
        raise BenchError(str(exc)) from exc
    target = LlamaVimTarget(binary, model, settings, trace.uri_path)
    try:
        await target.start(trace)
        records, elapsed = await replay(trace, target, speed)
        await target.finish()
    except BenchError as exc:
        raise BenchError(f"mode {LLAMA_VIM}: {exc}\n--- log ---\n{target.log_tail()}") from exc
    finally:
        target.stop()
        target.log.close()
    report = summarize(LLAMA_VIM, trace, records, elapsed)
    report["settings"] = {
        "binary": binary,
        "command": target.command()[1:],
        "n_predict": target.n_predict,
        "ring_chunks_at_end": len(target.client.ring),
        "ring_evictions": target.client.evictions,
    }
    report["model"] = str(model)
    report["load_ms"] = round(target.load_ms, 1)
    report["messages"] = target.errors[:1]
    add_peer_stats(report, records, target.work)
    kinds = report.get("engine_requests_by_kind") or {}
    report["messages"].append(
        "/infill requests: "
        + ", ".join(f"{n} {k}" for k, n in sorted(kinds.items()))
        + f"; ring chunks at the end {len(target.client.ring)},"
        f" evicted {target.client.evictions}"
    )
    return report


def bench_settings(args: argparse.Namespace) -> tuple[Settings, dict[str, Any]]:
    """Settings shared by every mode: resolved, and as the flat dotted keys that differ from
    the defaults (what each server is sent, and what the report lists); problems are
    reported, not fatal, as the server itself would treat them."""
    raw: dict[str, Any] = {"completion.maxTokens": args.max_tokens}
    if args.settings:
        try:
            loaded = json.loads(Path(args.settings).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise BenchError(f"cannot read settings file {args.settings}: {exc}") from exc
        if not isinstance(loaded, dict):
            raise BenchError(f"settings file {args.settings} must hold a JSON object")
        raw.update(loaded.get("codenook", loaded))
    for item in args.set or []:
        key, _, value = item.partition("=")
        try:
            raw[key] = json.loads(value)
        except ValueError:
            raw[key] = value
    if args.model:
        raw["model.path"] = args.model
    settings, problems = parse_settings(raw)
    for problem in problems:
        print(f"codenook bench: {problem}", file=sys.stderr)
    defaults = Settings()
    changed = {k: v for k, v in settings.values.items() if v != defaults[k]}
    return settings, changed


async def run_modes(
    modes: list[str],
    trace: Trace,
    settings: Settings,
    changed: dict[str, Any],
    args: argparse.Namespace,
) -> list[dict[str, Any]]:
    reports = []
    for mode in modes:
        print(f"codenook bench: running mode {mode} ...", file=sys.stderr)
        if mode == LLAMA_VIM:
            binary = find_llama_server(args.llama_server) if args.llama_server else None
            if binary is None:
                where = args.llama_server or "(no --llama-server given)"
                print(
                    f"codenook bench: skipping {LLAMA_VIM}: no llama-server binary at {where}",
                    file=sys.stderr,
                )
                continue
            reports.append(await run_llama_vim_mode(binary, trace, settings, args.speed))
        else:
            own = remote_settings(args) if mode == REMOTE else MODE_SETTINGS[mode]
            mode_settings = {**changed, **own}
            reports.append(
                await run_codenook_mode(mode, trace, mode_settings, args.speed, args.workspace)
            )
    return reports


def _load_average() -> float | None:
    try:
        return float(Path("/proc/loadavg").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def cmd_run(args: argparse.Namespace) -> int:
    trace_path = args.trace or default_trace()
    trace = Trace.load(trace_path)
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    if args.engine_url and REMOTE not in modes:
        modes.append(REMOTE)
    if OLD_LLAMA_SERVER in modes:
        raise BenchError(
            f"mode {OLD_LLAMA_SERVER} was replaced by {LLAMA_VIM}: llama-server driven as the"
            " llama.vim plugin drives it (see docs/bench.md)"
        )
    if args.llama_server and LLAMA_VIM not in modes:
        modes.append(LLAMA_VIM)
    unknown = [m for m in modes if m not in MODES]
    if unknown or not modes:
        raise BenchError(f"unknown mode {unknown}: choose from {', '.join(MODES)}")
    if args.speed <= 0:
        raise BenchError("--speed must be positive")
    workspace = args.workspace
    if workspace is not None and not workspace.is_dir():
        raise BenchError(f"--workspace {workspace} is not a folder")
    if REMOTE in modes:
        remote_settings(args)  # a missing or malformed --engine-url fails before any mode runs
    settings, changed = bench_settings(args)
    load = _load_average()
    if load is not None and load > 0.5 * (os.cpu_count() or 1):
        print(
            f"codenook bench: the machine is busy (load average {load:.1f}); timings will be"
            " noisy, token counts less so",
            file=sys.stderr,
        )
    reports = asyncio.run(run_modes(modes, trace, settings, changed, args))
    if not reports:
        raise BenchError("no mode ran")
    header = (
        f"trace {trace_path.name}: {len(trace.events)} keystrokes,"
        f" {sum(e.delay_ms for e in trace.events) / args.speed / 1000:.1f} s of typing,"
        f" debounce {trace.debounce_ms:g} ms, speed {args.speed:g};"
        f" completion.maxTokens {settings.completion.maxTokens}"
    )
    models = {Path(r["model"]).name for r in reports if r.get("model")}
    print(header)
    if workspace is not None:
        print(f"workspace {workspace.resolve()} (indexed before the replay)")
    print(f"model {', '.join(sorted(models)) or 'n/a'}; {os.cpu_count()} CPUs\n")
    print(format_table(reports))
    for report in reports:
        for message in report.get("messages") or []:
            print(f"[{report['mode']}] {message}", file=sys.stderr)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        document = {
            "trace": {
                "path": str(trace_path),
                "keystrokes": len(trace.events),
                "debounce_ms": trace.debounce_ms,
                "recorded": trace.recorded,
            },
            "speed": args.speed,
            "settings": changed,
            "machine": {
                "cpus": os.cpu_count(),
                "platform": platform.platform(),
                "load_average_before": load,
                "load_average_after": _load_average(),
            },
            "modes": {r["mode"]: r for r in reports},
        }
        args.json.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    return 0
