"""``codenook bench engine`` on the embedded model with tiny sizes, against a stand-in llama-bench
that prints llama-bench-shaped JSON (speed ratios are only reported, never asserted)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from codenook.devtools import bench
from codenook.devtools.bench.engine import parse_llama_bench
from codenook.devtools.bench.errors import BenchError
from codenook.engine.llama import default_threads
from codenook.settings import Settings

FAKE_LLAMA_BENCH = """#!{python}
import json, sys
if "--version" in sys.argv:
    print("version: 1234 (fake)", file=sys.stderr)
    sys.exit(0)
with open({argv_file!r}, "w") as fh:
    json.dump(sys.argv[1:], fh)
arg = lambda flag: int(sys.argv[sys.argv.index(flag) + 1])
def test(prompt, gen, samples):
    return {{"build_commit": "fake", "build_number": 1, "n_prompt": prompt, "n_gen": gen,
             "n_threads": arg("-t"), "avg_ts": sum(samples) / len(samples),
             "samples_ts": samples}}
print(json.dumps([test(arg("-p"), 0, [1000.0, 3000.0, 2000.0]), test(0, arg("-n"), [100.0])]))
"""

TINY = ["--prompt-tokens", "32", "--decode-tokens", "8", "--repeat", "1"]


def _run(argv: list[str]) -> int:
    return bench.main(bench.build_parser().parse_args(["engine", *argv]))


def test_bench_engine_against_a_stand_in_llama_bench(tmp_path: Path, capsys) -> None:
    fake, argv_file = tmp_path / "llama-bench", tmp_path / "argv.json"
    fake.write_text(
        FAKE_LLAMA_BENCH.format(python=sys.executable, argv_file=str(argv_file)), encoding="utf-8"
    )
    fake.chmod(0o755)
    out = tmp_path / "engine.json"
    assert _run([*TINY, "--llama-bench", str(fake), "--json", str(out)]) == 0
    report = json.loads(out.read_text(encoding="utf-8"))
    threads = Settings().model.threads or default_threads()
    assert report["threads"] == threads
    assert (report["prompt_tokens"], report["decode_tokens"], report["repeat"]) == (32, 8, 1)
    ours, peer = report["codenook"], report["llama_bench"]
    assert ours["version"].startswith("llama-cpp-python ")
    for key in ("prefill_tok_s", "decode_tok_s"):
        assert ours[key] > 0 and len(ours[key.replace("tok_s", "samples")]) == 1
    assert ours["decode_us_outside_llama_decode"] >= 0
    # The same model, sizes and threads went to llama-bench; its medians are read.
    sent = json.loads(argv_file.read_text(encoding="utf-8"))
    for flag, value in (("-m", report["model"]), ("-p", "32"), ("-n", "8"), ("-r", "1")):
        assert sent[sent.index(flag) + 1] == value
    assert sent[sent.index("-t") + 1] == str(threads) and sent[-2:] == ["-o", "json"]
    assert peer["version"] == "version: 1234 (fake)" and "error" not in peer
    assert (peer["prefill_tok_s"], peer["decode_tok_s"]) == (2000.0, 100.0)
    assert report["ratios"]["prefill"] == pytest.approx(ours["prefill_tok_s"] / 2000.0)
    assert report["ratios"]["decode"] == pytest.approx(ours["decode_tok_s"] / 100.0)
    printed = capsys.readouterr().out
    assert "llama-cpp-python" in printed and "version: 1234 (fake)" in printed
    assert "decode tokens/s" in printed and "ratio" in printed


def test_a_missing_llama_bench_is_reported_not_a_crash(tmp_path: Path, capsys) -> None:
    out = tmp_path / "engine.json"
    missing = tmp_path / "no-such-llama-bench"
    assert _run([*TINY, "--llama-bench", str(missing), "--json", str(out)]) == 0
    report = json.loads(out.read_text(encoding="utf-8"))
    assert report["codenook"]["decode_tok_s"] > 0
    assert "not found" in report["llama_bench"]["error"] and report["ratios"] is None
    assert "not found" in capsys.readouterr().out


def test_llama_bench_output_without_both_tests_is_an_error() -> None:
    with pytest.raises(BenchError):
        parse_llama_bench("not json")
    with pytest.raises(BenchError):
        parse_llama_bench(json.dumps([{"n_prompt": 512, "n_gen": 0, "samples_ts": [1.0]}]))


def test_sizes_below_the_minimum_are_refused(capsys) -> None:
    assert _run(["--prompt-tokens", "1"]) == 1
    assert "--prompt-tokens must be at least 2" in capsys.readouterr().err


def test_alternatives_row_times_one_request_for_three_texts_against_one(
    tmp_path: Path, capsys
) -> None:
    out = tmp_path / "engine.json"
    assert _run([*TINY, "--alternatives", "3", "--json", str(out)]) == 0
    listed = json.loads(out.read_text(encoding="utf-8"))["codenook"]["alternatives"]
    assert listed["count"] == 3
    # The prompt is read once whatever the number of texts; more than one text came back.
    assert listed["prompt_tokens_read"] == [32, 32]
    assert listed["texts"][0] == 1 and listed["texts"][1] >= 2
    assert listed["ratio"] > 0 and listed["decode_ratio"] > 0
    assert listed["context"] >= 32 + 3 * 8 + 1
    printed = capsys.readouterr().out
    assert "alternatives: one request for 3 texts against one for 1" in printed
    assert "prompt tokens read" in printed


def test_alternatives_1_leaves_the_row_out(tmp_path: Path, capsys) -> None:
    out = tmp_path / "engine.json"
    assert _run([*TINY, "--alternatives", "1", "--json", str(out)]) == 0
    assert json.loads(out.read_text(encoding="utf-8"))["codenook"]["alternatives"] is None
    assert "alternatives:" not in capsys.readouterr().out
