"""``codenook bench engine``: raw engine speed, codenook's against llama.cpp's own ``llama-bench``.

The rest of the benchmark measures the server process from outside; this measures the engine
alone, in this process: codenook's ``LlamaEngine`` (``start``/``generate`` with a
``GenerationRequest``, the path every completion takes) reads a prompt of exactly N tokens
(prefill) and generates M tokens greedily (decode), each timed ``--repeat`` times; then, when
``--llama-bench PATH`` is given, llama.cpp's ``llama-bench -p N -n M -r REPEAT`` runs on the
same model with the same threads and batch size in the same invocation, and each figure is
reported with its ratio codenook / llama-bench (medians).

``--alternatives N`` (default 3; 1 leaves it out) adds what a list of N suggestions costs
against one: the same request (the prompt read once, each text generated to the full decode
size) asking for 1 and for N texts, alternately, ``--repeat`` times each (medians).

What differs by design: llama-bench decodes random tokens and never reads the logits, while
codenook picks each token (argmax over the logits), turns it into text and checks stop strings;
that per-token work is what the ratio shows, with llama.cpp's version difference (the two
bundle different llama.cpp builds; the header names both). End-of-generation tokens do not end
codenook's decode here (llama-bench has none either), and the prefix cache is off so every
prefill reads the whole prompt.

The option parser is built for every ``codenook`` command: this module imports nothing heavy
at load time; the engine is imported when the benchmark runs.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from codenook.devtools.bench.errors import BenchError

if TYPE_CHECKING:
    from codenook.engine.llama import LlamaEngine
    from codenook.engine.protocol import GenerationRequest

DEFAULT_PROMPT_TOKENS = 512
DEFAULT_DECODE_TOKENS = 128
DEFAULT_REPEAT = 3
DEFAULT_ALTERNATIVES = 3
LLAMA_BENCH_TIMEOUT_S = 3600.0
# Words that are one token each in most vocabularies: a prompt of exactly N tokens.
_FILLERS = (" the", " a", " x", " 1", "a", "x")


def add_parser(sub: Any) -> None:
    """Register ``engine`` on ``codenook bench``'s subcommands (``sub``: argparse's action)."""
    engine = sub.add_parser(
        "engine",
        help="raw engine speed: prefill and decode tokens/s through codenook's engine and"
        " llama.cpp's llama-bench (same model, threads, run)",
    )
    engine.add_argument("--model", dest="speed_model", metavar="PATH", help="GGUF model file")
    engine.add_argument(
        "--llama-bench",
        dest="speed_llama_bench",
        metavar="PATH",
        help="llama.cpp's llama-bench binary (`make llama-server` builds one in"
        " .cache/llama-server/build/bin): adds its column and the ratios",
    )
    engine.add_argument(
        "--threads",
        dest="speed_threads",
        metavar="N",
        type=int,
        default=0,
        help="CPU threads for both (default: codenook's, model.threads or its automatic choice)",
    )
    engine.add_argument(
        "--batch",
        dest="speed_batch",
        metavar="N",
        type=int,
        default=0,
        help="batch size for both (default: model.batchSize)",
    )
    engine.add_argument(
        "--context",
        dest="speed_context",
        metavar="N",
        type=int,
        default=0,
        help="codenook's context size (default: prompt + decode tokens, llama-bench's own;"
        " 4096 = model.contextSize measures what a session gets)",
    )
    engine.add_argument(
        "--prompt-tokens",
        dest="speed_prompt_tokens",
        metavar="N",
        type=int,
        default=DEFAULT_PROMPT_TOKENS,
        help=f"prefill size (default {DEFAULT_PROMPT_TOKENS})",
    )
    engine.add_argument(
        "--decode-tokens",
        dest="speed_decode_tokens",
        metavar="N",
        type=int,
        default=DEFAULT_DECODE_TOKENS,
        help=f"tokens decoded (default {DEFAULT_DECODE_TOKENS})",
    )
    engine.add_argument(
        "--repeat",
        dest="speed_repeat",
        metavar="N",
        type=int,
        default=DEFAULT_REPEAT,
        help=f"repetitions of each test; the median is reported (default {DEFAULT_REPEAT})",
    )
    engine.add_argument(
        "--alternatives",
        dest="speed_alternatives",
        metavar="N",
        type=int,
        default=DEFAULT_ALTERNATIVES,
        help="also time one request for N texts (completion.alternatives) against one for a"
        f" single text (default {DEFAULT_ALTERNATIVES}; 1: not measured)",
    )
    engine.add_argument("--json", dest="speed_json", type=Path, metavar="FILE")


# -- codenook's engine ---------------------------------------------------------------------


def codenook_version() -> str:
    """llama-cpp-python's version and that of the llama.cpp libraries it bundles (read from
    the files, without importing llama_cpp: only the engine module may)."""
    import importlib.metadata
    import importlib.util

    try:
        version = importlib.metadata.version("llama_cpp_python")
    except importlib.metadata.PackageNotFoundError:
        version = "unknown"
    spec = importlib.util.find_spec("llama_cpp")
    libs: list[str] = []
    for folder in spec.submodule_search_locations or [] if spec else []:
        for name in ("libllama", "libggml"):
            found = sorted(Path(folder, "lib").glob(f"{name}.so.*.*.*"))
            if found:
                libs.append(f"{name} {found[-1].name.split('.so.', 1)[1]}")
    return f"llama-cpp-python {version}" + (f" ({', '.join(libs)})" if libs else "")


def exact_prompt(tokenize: Callable[[str], list[int]], count: int) -> str:
    """A text of exactly ``count`` tokens."""
    for filler in _FILLERS:
        text = filler * count
        if len(tokenize(text)) == count:
            return text
    raise BenchError(f"could not build a prompt of exactly {count} tokens for this vocabulary")


def _load(path: str, threads: int, batch: int, context: int, alternatives: int) -> LlamaEngine:
    from codenook.engine.llama import LlamaEngine

    class Engine(LlamaEngine):
        """The real engine, except that end-of-generation tokens do not end a decode (as in
        llama-bench); the check itself still runs."""

        def _is_end(self, token: int) -> bool:
            super()._is_end(token)
            return False

    return Engine(
        path,
        n_ctx=context,
        n_threads=threads,
        n_batch=batch,
        prefix_cache=False,
        alternatives=alternatives,
    )


def measure_codenook(
    path: str,
    context: int,
    threads: int,
    batch: int,
    prompt_tokens: int,
    decode_tokens: int,
    repeat: int,
    alternatives: int = 1,
) -> dict[str, Any]:
    """Medians (and samples) of prefill and decode tokens/s through ``generate``, and of a
    request for ``alternatives`` texts against one for a single text."""
    import dataclasses
    import statistics

    from codenook.engine.protocol import GenerationRequest

    engine = _load(path, threads, batch, context, 1)
    try:
        tokenize = engine.tokenize
        prefill_prompt = exact_prompt(tokenize, prompt_tokens)
        decode_prompt = exact_prompt(tokenize, 2)  # the shortest prompt the engine takes
        # The stop strings a completion carries (the model's markers), and an ``until``.
        stops = [s for s in (*engine.info.fim.markers(), engine.info.eos_text) if s]
        in_decode = [0.0]
        llama_context: Any = engine._ctx  # its decode is wrapped in a timer during decode tests
        decode = llama_context.decode

        def timed_decode(batch_: Any) -> None:
            began = time.perf_counter()
            decode(batch_)
            if batch_.batch.n_tokens == 1:  # generated tokens (prompt chunks have 2 or more)
                in_decode[0] += time.perf_counter() - began

        def never(_text: str) -> bool:
            return False

        def prefill() -> float:
            result = engine.generate(GenerationRequest(prefill_prompt, max_tokens=1), lambda: False)
            if result.prefilled_tokens != prompt_tokens:
                raise BenchError(f"prefilled {result.prefilled_tokens}, not {prompt_tokens}")
            return prompt_tokens / result.prefill_s

        def generate() -> tuple[float, float]:
            # max_tokens counts sampled tokens; the last one is never decoded.
            request = GenerationRequest(
                decode_prompt, max_tokens=decode_tokens + 1, stop=stops, until=never
            )
            llama_context.decode = timed_decode
            in_decode[0] = 0.0
            try:
                result = engine.generate(request, lambda: False)
            finally:
                llama_context.decode = decode
            decoded = result.generated_tokens - 1
            if decoded != decode_tokens:
                raise BenchError(f"decoded {decoded} tokens, not {decode_tokens}")
            # Everything but llama.cpp's decode: sampling, text, stops, the step's yield.
            outside = (result.decode_s - in_decode[0]) / decoded * 1e6
            return decoded / result.decode_s, outside

        # Warm-up, as llama-bench does: one prefill and a short decode, not counted.
        prefill()
        engine.generate(GenerationRequest(decode_prompt, max_tokens=4), lambda: False)
        prefills = [prefill() for _ in range(repeat)]
        decodes = [generate() for _ in range(repeat)]
    finally:
        engine.close()
    listed = None
    if alternatives > 1:
        # Its own engine: the context holds the prompt and every text's tokens.
        room = max(context, prompt_tokens + alternatives * decode_tokens + 1)
        engine = _load(path, threads, batch, room, alternatives)
        try:
            request = GenerationRequest(
                prefill_prompt, max_tokens=decode_tokens, stop=stops, until=never
            )
            engine.generate(dataclasses.replace(request, max_tokens=4), lambda: False)  # warm-up
            listed = measure_alternatives(engine, request, alternatives, repeat)
            listed["context"] = room
        finally:
            engine.close()
    return {
        "version": codenook_version(),
        "prefill_tok_s": statistics.median(prefills),
        "decode_tok_s": statistics.median(d[0] for d in decodes),
        "prefill_samples": prefills,
        "decode_samples": [d[0] for d in decodes],
        "decode_us_outside_llama_decode": statistics.median(d[1] for d in decodes),
        "alternatives": listed,
    }


def measure_alternatives(
    engine: LlamaEngine, request: GenerationRequest, count: int, repeat: int
) -> dict[str, Any]:
    """One request for ``count`` texts against one for a single text, alternately (a change
    of load on the machine hits both), ``repeat`` times each: medians and their ratios."""
    import dataclasses
    import statistics

    samples: dict[int, list[tuple[float, float, int, int]]] = {1: [], count: []}
    for _ in range(repeat):
        for n in (1, count):
            asked = dataclasses.replace(request, alternatives=n, until_alternative=request.until)
            began = time.perf_counter()
            result = engine.generate(asked, lambda: False)
            total = time.perf_counter() - began
            texts = 1 + len(result.alternatives)
            samples[n].append((total, result.decode_s, result.prefilled_tokens, texts))
    one, many = samples[1], samples[count]

    def median(rows: list[tuple[float, float, int, int]], column: int) -> float:
        return float(statistics.median(row[column] for row in rows))

    return {
        "count": count,
        "request_ms": [median(one, 0) * 1000, median(many, 0) * 1000],
        "decode_ms": [median(one, 1) * 1000, median(many, 1) * 1000],
        "prompt_tokens_read": [median(one, 2), median(many, 2)],
        "texts": [min(r[3] for r in one), min(r[3] for r in many)],
        "ratio": median(many, 0) / median(one, 0),
        "decode_ratio": median(many, 1) / median(one, 1),
    }


# -- llama-bench ---------------------------------------------------------------------------


def llama_bench_command(
    binary: str, model: str, threads: int, batch: int, prompt: int, decode: int, repeat: int
) -> list[str]:
    return [
        binary,
        *("-m", model, "-p", str(prompt), "-n", str(decode), "-t", str(threads)),
        *("-b", str(batch), "-ub", str(batch), "-ngl", "0", "-r", str(repeat), "-o", "json"),
    ]


def _version_of(binary: str) -> str:
    import subprocess

    try:
        done = subprocess.run(
            [binary, "--version"], capture_output=True, text=True, timeout=60, check=False
        )
    except (OSError, subprocess.SubprocessError) as exc:
        return f"unknown ({exc})"
    lines = (done.stdout + done.stderr).splitlines()
    found = [line.strip() for line in lines if line.strip().startswith("version:")]
    return found[0] if found else "unknown"


def parse_llama_bench(text: str) -> dict[str, Any]:
    """Prefill and decode medians from ``llama-bench -o json`` (one entry per test)."""
    import statistics

    try:
        entries = json.loads(text)
    except json.JSONDecodeError as exc:
        raise BenchError(f"llama-bench printed no JSON: {exc}") from exc
    found: dict[str, Any] = {}
    for entry in entries if isinstance(entries, list) else []:
        prompt, gen = entry.get("n_prompt") or 0, entry.get("n_gen") or 0
        kind = "prefill" if prompt and not gen else "decode" if gen and not prompt else ""
        samples = entry.get("samples_ts") or ([entry["avg_ts"]] if "avg_ts" in entry else [])
        if kind and samples:
            found[f"{kind}_tok_s"] = statistics.median(float(s) for s in samples)
            found[f"{kind}_samples"] = [float(s) for s in samples]
            found["build"] = f"{entry.get('build_number', '?')} ({entry.get('build_commit', '?')})"
    if "prefill_tok_s" not in found or "decode_tok_s" not in found:
        raise BenchError("llama-bench's JSON has no prefill and decode tests")
    return found


def measure_llama_bench(
    binary: str, model: str, threads: int, batch: int, prompt: int, decode: int, repeat: int
) -> dict[str, Any]:
    """llama-bench's figures, or ``error`` saying why there are none (never an exception)."""
    import subprocess

    command = llama_bench_command(binary, model, threads, batch, prompt, decode, repeat)
    report: dict[str, Any] = {"path": binary, "command": command}
    if not (os.path.isfile(binary) and os.access(binary, os.X_OK)):
        report["error"] = f"llama-bench not found or not executable: {binary}"
        return report
    report["version"] = _version_of(binary)
    try:
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=LLAMA_BENCH_TIMEOUT_S, check=False
        )
    except (OSError, subprocess.SubprocessError) as exc:
        report["error"] = f"llama-bench did not run: {exc}"
        return report
    if done.returncode != 0:
        tail = done.stderr.strip().splitlines()[-3:]
        report["error"] = f"llama-bench exited with {done.returncode}: {' | '.join(tail)}"
        return report
    try:
        report.update(parse_llama_bench(done.stdout))
    except BenchError as exc:
        report["error"] = str(exc)
    return report


# -- the command -----------------------------------------------------------------------------


def _fmt(value: float | None, digits: int = 1) -> str:
    return "n/a" if value is None else f"{value:,.{digits}f}"


def format_report(document: dict[str, Any]) -> str:
    ours, peer = document["codenook"], document.get("llama_bench") or {}
    ratios = document.get("ratios") or {}
    lines = [
        f"codenook bench engine: {Path(document['model']).name}; {document['threads']} thread(s),"
        f" batch {document['batch']}, context {document['context']};"
        f" prefill {document['prompt_tokens']} tokens, decode {document['decode_tokens']} tokens;"
        f" median of {document['repeat']}",
        f"codenook:    {ours['version']}",
    ]
    if peer:
        lines.append(f"llama-bench: {peer['path']} ({peer.get('version', 'version unknown')})")
        lines.append(
            "             (a different llama.cpp build than codenook's: the ratios include"
            " llama.cpp's own changes)"
        )
    machine = document.get("machine") or {}
    before, after = machine.get("load_average_before"), machine.get("load_average_after")
    if before and after:
        lines.append(
            f"machine:     {machine.get('cpus')} CPUs; load average {before[0]:.2f} before,"
            f" {after[0]:.2f} after (other work on the machine skews the ratios)"
        )
    lines.append("")
    rows = [
        ("prefill tokens/s", ours["prefill_tok_s"], peer.get("prefill_tok_s"), "prefill"),
        ("decode tokens/s", ours["decode_tok_s"], peer.get("decode_tok_s"), "decode"),
    ]
    lines.append(f"{'metric':<34}{'codenook':>12}{'llama-bench':>14}{'ratio':>8}")
    for label, a, b, key in rows:
        ratio = ratios.get(key)
        lines.append(
            f"{label:<34}{_fmt(a):>12}{_fmt(b) if peer else '-':>14}"
            f"{_fmt(ratio, 2) if ratio is not None else '-':>8}"
        )
    outside = ours["decode_us_outside_llama_decode"]
    lines.append(f"{'decode: us/token outside decode':<34}{_fmt(outside):>12}")
    if peer.get("error"):
        lines.append(f"\nllama-bench: {peer['error']}")
    listed = ours.get("alternatives")
    if listed:
        lines += _format_alternatives(listed, document["prompt_tokens"], document["decode_tokens"])
    return "\n".join(lines)


def _format_alternatives(listed: dict[str, Any], prompt: int, decode: int) -> list[str]:
    n = listed["count"]
    lines = [
        "",
        f"alternatives: one request for {n} texts against one for 1 ({prompt} prompt tokens,"
        f" up to {decode} generated per text, the texts decoded side by side;"
        f" context {listed.get('context', '?')})",
        f"{'metric':<34}{'1 text':>12}{f'{n} texts':>14}{'ratio':>8}",
    ]
    rows = [
        ("request ms", *listed["request_ms"], listed["ratio"]),
        ("decode ms", *listed["decode_ms"], listed["decode_ratio"]),
    ]
    read = listed["prompt_tokens_read"]
    rows.append(("prompt tokens read", *read, read[1] / read[0] if read[0] else None))
    for label, a, b, ratio in rows:
        lines.append(f"{label:<34}{_fmt(a):>12}{_fmt(b):>14}{_fmt(ratio, 2):>8}")
    lines.append(f"{'texts returned (fewest)':<34}{listed['texts'][0]:>12}{listed['texts'][1]:>14}")
    return lines


def cmd_engine(args: argparse.Namespace) -> int:
    import platform

    from codenook.engine.llama import default_threads
    from codenook.engine.models import NoModel, resolve_model_path
    from codenook.settings import Settings

    settings = Settings()
    sized = ("speed_prompt_tokens", "speed_decode_tokens", "speed_repeat", "speed_alternatives")
    for name in sized:
        if getattr(args, name) < 1:
            raise BenchError(f"--{name[6:].replace('_', '-')} must be at least 1")
    if args.speed_prompt_tokens < 2:
        raise BenchError("--prompt-tokens must be at least 2")
    try:
        model = str(resolve_model_path(args.speed_model or args.model or settings.model.path))
    except NoModel as exc:
        raise BenchError(str(exc)) from exc
    threads = args.speed_threads or settings.model.threads or default_threads()
    batch = args.speed_batch or settings.model.batchSize
    # llama-bench's context is its prompt plus its generated tokens (and at least ours).
    context = args.speed_context or args.speed_prompt_tokens + args.speed_decode_tokens + 1
    if context < args.speed_prompt_tokens + args.speed_decode_tokens + 1:
        raise BenchError("--context must hold the prompt and the decoded tokens")
    sizes = (args.speed_prompt_tokens, args.speed_decode_tokens, args.speed_repeat)
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    document: dict[str, Any] = {
        "model": model,
        "threads": threads,
        "batch": batch,
        "context": context,
        "prompt_tokens": sizes[0],
        "decode_tokens": sizes[1],
        "repeat": sizes[2],
        "codenook": measure_codenook(
            model, context, threads, batch, *sizes, args.speed_alternatives
        ),
        "llama_bench": None,
        "ratios": None,
    }
    if args.speed_llama_bench:
        peer = measure_llama_bench(args.speed_llama_bench, model, threads, batch, *sizes)
        document["llama_bench"] = peer
        if "error" not in peer:
            ours = document["codenook"]
            document["ratios"] = {
                key: ours[f"{key}_tok_s"] / peer[f"{key}_tok_s"] for key in ("prefill", "decode")
            }
    document["machine"] = {
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "load_average_before": load,
        "load_average_after": os.getloadavg() if hasattr(os, "getloadavg") else None,
    }
    print(format_report(document))
    if args.speed_json:
        args.speed_json.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    return 0
