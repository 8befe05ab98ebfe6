"""``codenook bench shared``: one model for several windows and an agent, measured in one run.

Three scenarios, each replaying the same trace the way ``codenook bench`` does, all in one
invocation so that their ratios compare numbers taken on the same machine minutes apart:

1. **in-process**: one ``codenook serve`` with a model of its own (``engine.mode inprocess``),
   the reference: its peak RSS, latency and prefilled tokens per request.
2. **shared**: a ``codenook engine`` host started by hand, with the API on a free loopback
   port, and N ``codenook serve`` windows (``engine.mode shared``) typing the trace at once,
   each into a document of its own; the peak of host + windows' RSS, sampled together, and
   each window's latency and prefix reuse.
3. **agent running**: one more shared window types the trace twice into two documents: once
   with the host idle, once while an Anthropic Messages API conversation streams long answers
   from the same host.

Everything runs under a private ``CODENOOK_RUNTIME_DIR`` (short, under /tmp: a Unix socket
path must stay under 108 bytes), so the user's own host is never touched; the host is stopped
and the directory removed at the end, whatever happened.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import IO, Any

from codenook.devtools.bench.background import Conversation, RssSampler
from codenook.devtools.bench.errors import BenchError
from codenook.devtools.bench.replay import RequestRecord, replay
from codenook.devtools.bench.report import percentile, summarize
from codenook.devtools.bench.rpc import server_env
from codenook.devtools.bench.run import _load_average, bench_settings
from codenook.devtools.bench.targets import READY_TIMEOUT_S, CodenookTarget, log_tail
from codenook.devtools.bench.trace import Trace, default_trace

ENGINE_COMMAND = [sys.executable, "-m", "codenook", "engine"]
DEFAULT_WINDOWS = 3
DEFAULT_CONVERSATION_TOKENS = 256
MIB = 1024 * 1024


def _window_report(
    name: str, trace: Trace, records: list[RequestRecord], elapsed: float, messages: list[str]
) -> dict[str, Any]:
    """What one window saw, engine facts from each answered request's ``lastCompletion``
    (in a shared window ``codenook/stats`` counters are the host's, for every window)."""
    report = summarize(name, trace, records, elapsed)
    ran = [r for r in records if r.outcome == "answered" and r.engine and r.engine["prompt_tokens"]]
    facts = [r.engine for r in ran if r.engine is not None]
    report["model_answers"] = len(facts)

    def mean(key: str) -> float | None:
        return statistics.fmean(f[key] for f in facts) if facts else None

    report["prompt_tokens_per_answer"] = mean("prompt_tokens")
    report["prefilled_tokens_per_answer"] = mean("prefilled_tokens")
    prompt = sum(f["prompt_tokens"] for f in facts)
    report["reuse_ratio"] = sum(f["cached_tokens"] for f in facts) / prompt if prompt else None
    report["prefix_hit_rate"] = (
        sum(f["cached_tokens"] > 0 for f in facts) / len(facts) if facts else None
    )
    values = [v for v in (r.latency_ms for r in ran) if v is not None]
    report["model_latency_ms"] = {
        "median": statistics.median(values) if values else None,
        "p95": percentile(values, 0.95),
    }
    report["messages"] = messages
    return report


async def _replay_window(
    name: str, target: CodenookTarget, trace: Trace, speed: float
) -> dict[str, Any]:
    records, elapsed = await replay(trace, target, speed)
    messages = list(target.rpc.messages) if target.rpc else []
    return _window_report(name, trace, records, elapsed, messages)


async def _stop_targets(targets: list[CodenookTarget]) -> None:
    await asyncio.gather(*(t.stop() for t in targets if t.rpc), return_exceptions=True)
    for target in targets:
        target.log.close()


def _failure(targets: list[CodenookTarget], exc: BaseException) -> BenchError:
    tails = "\n".join(f"--- {t.root.name} (tail) ---\n{t.log_tail()}" for t in targets if t.rpc)
    return BenchError(f"{exc}\n{tails}")


# -- scenario 1: a window with its own model ------------------------------------------------


async def run_inprocess(
    trace: Trace, settings: dict[str, Any], speed: float, root: Path
) -> dict[str, Any]:
    target = CodenookTarget(
        {**settings, "engine.mode": "inprocess"}, trace, root / "inprocess", server_env()
    )
    target.root.mkdir()
    try:
        await target.start()
        pid = target.process.pid if target.process else 0
        with RssSampler(lambda: {"window": pid}) as sampler:
            report = await _replay_window("in-process", target, trace, speed)
    except BenchError as exc:
        raise _failure([target], exc) from exc
    finally:
        await _stop_targets([target])
    report["load_ms"] = round(target.load_ms, 1)
    report["pid"] = pid
    report["rss"] = sampler.to_json()
    return report


# -- the host ------------------------------------------------------------------------------


class Host:
    """``codenook engine`` with the API on a free loopback port, in a private runtime dir."""

    def __init__(self, settings: dict[str, Any], windows: int) -> None:
        self.runtime = tempfile.mkdtemp(prefix="cn-", dir="/tmp")
        self.env = server_env("shared", self.runtime)
        self.settings = settings
        self.windows = windows
        self.log: IO[bytes] = tempfile.TemporaryFile()  # noqa: SIM115 - closed by stop()
        self.process: subprocess.Popen[bytes] | None = None
        self.api: str | None = None
        self.load_ms = 0.0

    def _engine(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*ENGINE_COMMAND, *args], env=self.env, capture_output=True, text=True, timeout=60
        )

    async def status(self) -> dict[str, Any] | None:
        done = await asyncio.to_thread(self._engine, "status", "--json")
        if done.returncode != 0:
            return None
        answer: dict[str, Any] = json.loads(done.stdout)
        return answer

    @property
    def pid(self) -> int:
        return self.process.pid if self.process else 0

    async def start(self) -> dict[str, Any]:
        command = [*ENGINE_COMMAND, "--api", "127.0.0.1:0", "--idle-exit", "120"]
        for key, value in self.settings.items():
            command += ["--set", f"{key}={json.dumps(value)}"]
        if self.windows > 4:  # engine.windows: lanes with a prompt cache of their own
            command += ["--set", f"engine.windows={min(self.windows, 16)}"]
        started = time.monotonic()
        self.process = subprocess.Popen(
            command, env=self.env, stdin=subprocess.DEVNULL, stdout=self.log, stderr=self.log
        )
        while True:
            if self.process.poll() is not None:
                raise BenchError(f"the engine host exited ({self.process.returncode})")
            status = await self.status()
            if status is not None and status.get("state") == "failed":
                raise BenchError(f"the engine host did not load its model: {status.get('error')}")
            if status is not None and status.get("state") == "idle":
                self.load_ms = (time.monotonic() - started) * 1000
                self.api = status.get("api")
                if not self.api:
                    raise BenchError("the engine host serves no API (started with --api)")
                return status
            if time.monotonic() - started > READY_TIMEOUT_S:
                raise BenchError(f"the engine host was not ready after {READY_TIMEOUT_S:.0f} s")
            await asyncio.sleep(0.2)

    def log_tail(self, lines: int = 15) -> str:
        return log_tail(self.log, lines)

    async def stop(self) -> dict[str, Any]:
        """``codenook engine stop``, then a signal if need be; the runtime dir is removed."""
        stopped_by = "none"
        if self.process is not None and self.process.poll() is None:
            # The host is our child: it must be reaped while ``engine stop`` waits for it to
            # be gone (a zombie still answers kill(pid, 0)).
            stopper = asyncio.create_task(asyncio.to_thread(self._engine, "stop"))
            try:
                await asyncio.to_thread(self.process.wait, 20)
                stopped_by = "engine stop"
            except subprocess.TimeoutExpired:
                stopped_by = "kill"
                self.process.kill()
                await asyncio.to_thread(self.process.wait)
            with contextlib.suppress(subprocess.SubprocessError, OSError):
                if (await stopper).returncode != 0:
                    stopped_by += " (engine stop failed)"
        self.log.close()
        shutil.rmtree(self.runtime, ignore_errors=True)
        return {
            "stopped_by": stopped_by,
            "exit_code": self.process.returncode if self.process else None,
            "runtime_dir": self.runtime,
            "runtime_dir_removed": not Path(self.runtime).exists(),
        }


def _new_window(host: Host, settings: dict[str, Any], trace: Trace, root: Path) -> CodenookTarget:
    root.mkdir()
    return CodenookTarget({**settings, "engine.mode": "shared"}, trace, root, host.env)


# -- scenario 2: N windows typing at once ----------------------------------------------------


async def run_windows(
    host: Host, trace: Trace, settings: dict[str, Any], speed: float, count: int, root: Path
) -> dict[str, Any]:
    targets = [_new_window(host, settings, trace, root / f"w{i + 1}") for i in range(count)]
    try:
        await asyncio.gather(*(t.start() for t in targets))
        status = await host.status() or {}
        attached = len(status.get("windows") or [])
        if attached != count:
            raise BenchError(f"{attached} windows attached to the host, expected {count}")

        def pids() -> dict[str, int]:
            found = {"host": host.pid}
            found.update({f"w{i + 1}": t.process.pid for i, t in enumerate(targets) if t.process})
            return found

        with RssSampler(pids) as sampler:
            reports = await asyncio.gather(
                *(_replay_window(f"w{i + 1}", t, trace, speed) for i, t in enumerate(targets))
            )
    except BenchError as exc:
        raise _failure(targets, exc) from exc
    finally:
        await _stop_targets(targets)
    for target, report in zip(targets, reports, strict=True):
        report["load_ms"] = round(target.load_ms, 1)
        report["pid"] = target.process.pid if target.process else None
    return {"windows": reports, "rss": sampler.to_json(), "lanes": status.get("windowLanes")}


# -- scenario 3: an agent conversation beside the typing -------------------------------------


async def run_agent(
    host: Host,
    trace: Trace,
    settings: dict[str, Any],
    speed: float,
    root: Path,
    conversation_tokens: int,
) -> dict[str, Any]:
    window = _new_window(host, settings, trace, root / "idle")
    busy = CodenookTarget(window.settings, trace, root / "agent", host.env)
    busy.root.mkdir()
    conversation = Conversation(str(host.api), max_tokens=conversation_tokens)
    try:
        await window.start()
        idle = await _replay_window("idle", window, trace, speed)
        await busy.open_in(window)
        before = (await host.status() or {}).get("preemptions", 0)
        conversation.start()
        if not await conversation.generating():
            raise BenchError(f"the API conversation produced no text: {conversation.errors[:2]}")
        with_agent = await _replay_window("agent", busy, trace, speed)
        after = (await host.status() or {}).get("preemptions", 0)
    except BenchError as exc:
        raise _failure([window], exc) from exc
    finally:
        conversation.stop()
        await _stop_targets([window])
        busy.log.close()
    idle["pid"] = with_agent["pid"] = window.process.pid if window.process else None
    return {
        "idle": idle,
        "agent": with_agent,
        "conversation": conversation.to_json(),
        "preemptions": int(after) - int(before),
    }


# -- the report ------------------------------------------------------------------------------


def _div(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def ratios(document: dict[str, Any]) -> dict[str, Any]:
    base = document["inprocess"]
    shared = document["shared"]
    agent = document["agent"]
    base_rss = base["rss"]["peak_total_bytes"]

    def latency(report: dict[str, Any], key: str, which: str) -> float | None:
        value = report[key][which]
        return float(value) if value is not None else None

    per_window = {
        w["mode"]: {
            **{
                f"{key}_{which}": _div(latency(w, key, which), latency(base, key, which))
                for key in ("latency_ms", "model_latency_ms")
                for which in ("median", "p95")
            },
            # Latency is over answered requests: fewer answered (more cancelled because a
            # newer keystroke came first) flatters it, so the count is a ratio too.
            "answered": _div(w["answered"], base["answered"]),
        }
        for w in shared["windows"]
    }
    return {
        "rss_shared_total_vs_inprocess": _div(shared["rss"]["peak_total_bytes"], base_rss),
        "rss_host_vs_inprocess": _div(shared["rss"]["peak_bytes"].get("host"), base_rss),
        "latency_vs_inprocess": per_window,
        "agent_vs_idle": {
            **{
                f"{key}_{which}": _div(
                    latency(agent["agent"], key, which), latency(agent["idle"], key, which)
                )
                for key in ("latency_ms", "model_latency_ms")
                for which in ("median", "p95")
            },
            "answered": _div(agent["agent"]["answered"], agent["idle"]["answered"]),
        },
    }


def _fmt(value: Any, digits: int = 0) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _x(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}x"


def format_report(document: dict[str, Any]) -> str:
    base, shared, agent = document["inprocess"], document["shared"], document["agent"]
    columns = [base, *shared["windows"], agent["idle"], agent["agent"]]
    rss_each = shared["rss"]["peak_bytes"]
    rss = [base["rss"]["peak_total_bytes"], *(rss_each.get(w["mode"]) for w in shared["windows"])]
    names = ["in-process", *(f"shared {w['mode']}" for w in shared["windows"])]
    names += ["agent: idle", "agent: busy"]

    def row(label: str, values: list[str]) -> str:
        return f"{label:<36}" + "".join(f"{v:>13}" for v in values)

    def mib(value: int | None) -> str:
        return "n/a" if not value else f"{value / MIB:.0f}"

    lines = [row("", names)]
    lines.append(
        row("requests sent / answered", [f"{c['requests_sent']}/{c['answered']}" for c in columns])
    )
    for label, key, which in (
        ("latency median (ms)", "latency_ms", "median"),
        ("latency p95 (ms)", "latency_ms", "p95"),
        ("  model answers median (ms)", "model_latency_ms", "median"),
        ("  model answers p95 (ms)", "model_latency_ms", "p95"),
    ):
        lines.append(row(label, [_fmt(c[key][which]) for c in columns]))
    lines.append(
        row(
            "prompt tokens / model answer",
            [_fmt(c["prompt_tokens_per_answer"], 1) for c in columns],
        )
    )
    lines.append(
        row(
            "prefilled tokens / model answer",
            [_fmt(c["prefilled_tokens_per_answer"], 1) for c in columns],
        )
    )
    lines.append(
        row(
            "prefix hit rate",
            [
                _fmt(None if c["prefix_hit_rate"] is None else 100 * c["prefix_hit_rate"]) + " %"
                for c in columns
            ],
        )
    )
    lines.append(row("peak RSS (MiB)", [mib(v) for v in rss] + ["", ""]))
    n = len(shared["windows"])
    host_rss = rss_each.get("host")
    r = document["ratios"]
    lines += [
        "",
        f"peak RSS: in-process window {mib(base['rss']['peak_total_bytes'])} MiB;"
        f" shared host {mib(host_rss)} MiB + {n} windows ="
        f" {mib(shared['rss']['peak_total_bytes'])} MiB (sampled together)",
        f"RSS, {n} windows shared (host + windows) / 1 window in-process:"
        f" {_x(r['rss_shared_total_vs_inprocess'])}  (goal <= 1.1x with a large model)",
        f"RSS, shared host alone / 1 window in-process: {_x(r['rss_host_vs_inprocess'])}",
    ]
    for name, values in r["latency_vs_inprocess"].items():
        lines.append(
            f"latency {name} / in-process: median {_x(values['latency_ms_median'])},"
            f" p95 {_x(values['latency_ms_p95'])}; model answers median"
            f" {_x(values['model_latency_ms_median'])}, p95 {_x(values['model_latency_ms_p95'])};"
            f" answered {_x(values['answered'])}"
        )
    a = r["agent_vs_idle"]
    conv = agent["conversation"]
    lines += [
        f"keystroke latency with an API conversation / idle: median {_x(a['latency_ms_median'])},"
        f" p95 {_x(a['latency_ms_p95'])}; model answers median"
        f" {_x(a['model_latency_ms_median'])}, p95 {_x(a['model_latency_ms_p95'])};"
        f" answered {_x(a['answered'])}  (goal <= 1.2x)",
        f"conversation: {conv['turns_completed']} turns completed, {conv['output_tokens']} tokens"
        f" ({conv['output_tokens_per_s']:.1f}/s), {conv['error_count']} errors;"
        f" {agent['preemptions']} preemptions in the host during that replay",
    ]
    return "\n".join(lines)


# -- the command ----------------------------------------------------------------------------


async def _run_all(
    trace: Trace, settings: dict[str, Any], args: argparse.Namespace, root: Path
) -> dict[str, Any]:
    speed, count = args.shared_speed, args.shared_windows
    print("codenook bench shared: one window, in-process ...", file=sys.stderr)
    document: dict[str, Any] = {"inprocess": await run_inprocess(trace, settings, speed, root)}
    host = Host(settings, count)
    try:
        print("codenook bench shared: starting the engine host ...", file=sys.stderr)
        status = await host.start()
        document["host"] = {"pid": host.pid, "load_ms": round(host.load_ms, 1), "api": host.api}
        document["host"]["model"] = status.get("model")
        print(f"codenook bench shared: {count} shared windows at once ...", file=sys.stderr)
        document["shared"] = await run_windows(host, trace, settings, speed, count, root)
        print("codenook bench shared: agent running vs idle ...", file=sys.stderr)
        document["agent"] = await run_agent(
            host, trace, settings, speed, root, args.shared_conversation_tokens
        )
        final = await host.status() or {}
        document["host"]["counters"] = final.get("counters")
        document["host"]["api_counters"] = final.get("apiCounters")
        document["host"]["preemptions"] = final.get("preemptions")
    except BenchError as exc:
        raise BenchError(f"{exc}\n--- engine host log (tail) ---\n{host.log_tail()}") from exc
    finally:
        stopped = await host.stop()
    document["host"] = {**document.get("host", {}), **stopped}
    return document


def cmd_shared(args: argparse.Namespace) -> int:
    trace_path = args.shared_trace or args.trace or default_trace()
    trace = Trace.load(trace_path)
    if args.shared_windows < 1:
        raise BenchError("--windows must be at least 1")
    if args.shared_speed <= 0:
        raise BenchError("--speed must be positive")
    options = argparse.Namespace(
        max_tokens=args.shared_max_tokens,
        settings=None,
        set=[*(args.set or []), *(args.shared_set or [])],
        model=args.shared_model or args.model,
    )
    _, changed = bench_settings(options)
    changed.pop("engine.mode", None)  # each scenario sets its own
    load = _load_average()
    with tempfile.TemporaryDirectory(prefix="codenook-bench-") as folder:
        document = asyncio.run(_run_all(trace, changed, args, Path(folder)))
    document["ratios"] = ratios(document)
    document["trace"] = {
        "path": str(trace_path),
        "keystrokes": len(trace.events),
        "debounce_ms": trace.debounce_ms,
    }
    document["settings"] = changed
    document["speed"] = args.shared_speed
    document["machine"] = {
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
        "load_average_before": load,
        "load_average_after": _load_average(),
    }
    typing_s = sum(e.delay_ms for e in trace.events) / args.shared_speed / 1000
    print(
        f"trace {trace_path.name}: {len(trace.events)} keystrokes, {typing_s:.1f} s of typing;"
        f" model {Path(str(document['host'].get('model') or 'n/a')).name};"
        f" {os.cpu_count()} CPUs\n"
    )
    print(format_report(document))
    for window in [*document["shared"]["windows"], document["agent"]["agent"]]:
        for message in window.get("messages") or []:
            print(f"[{window['mode']}] {message}", file=sys.stderr)
    print(
        "(one run on this machine; compare only ratios measured in the same run)", file=sys.stderr
    )
    if args.shared_json:
        args.shared_json.parent.mkdir(parents=True, exist_ok=True)
        args.shared_json.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    with contextlib.suppress(Exception):
        sys.stdout.flush()
    return 0
