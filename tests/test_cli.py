"""The command line as a user runs it: complete, doctor, settings, serve's flags."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

EXAMPLE = Path(__file__).parents[1] / "examples" / "stats.py"


def run(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "codenook", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


def test_complete_prints_a_suggestion_and_the_timing_breakdown() -> None:
    proc = run("complete", f"{EXAMPLE}:24:5", "--repeat", "2", "--set", "completion.maxTokens=16")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip()
    for field in ("context", "prompt", "cached", "prefill", "decode", "total"):
        assert field in proc.stderr
    assert "run 1 (cold)" in proc.stderr and "run 2 (warm)" in proc.stderr


def test_complete_json_shows_the_warm_run_reusing_the_prompt() -> None:
    proc = run(
        "complete", f"{EXAMPLE}:24:5", "--repeat", "2", "--json", "--set", "completion.maxTokens=8"
    )
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    cold, warm = report["runs"]
    assert cold["cached_tokens"] == 0
    assert warm["cached_tokens"] == cold["prompt_tokens"] - 2  # the last two are re-read


def test_complete_json_includes_the_prompt_only_with_show_prompt() -> None:
    options = ["--json", "--set", "completion.maxTokens=4"]
    shown = run("complete", f"{EXAMPLE}:24:5", "--show-prompt", *options)
    assert shown.returncode == 0, shown.stderr
    prompt = json.loads(shown.stdout)["prompt"]
    lines = EXAMPLE.read_text(encoding="utf-8").splitlines()
    assert lines[22] in prompt  # the line above the cursor
    assert "--- prompt ---" not in shown.stderr  # in the JSON, not printed beside it
    plain = run("complete", f"{EXAMPLE}:24:5", *options)
    assert plain.returncode == 0, plain.stderr
    assert "prompt" not in json.loads(plain.stdout)


def test_complete_rejects_bad_locations_and_models(tmp_path: Path) -> None:
    assert run("complete", "no-colons").returncode == 2
    assert run("complete", f"{EXAMPLE}:999:1").returncode == 2
    missing = run("complete", f"{EXAMPLE}:1:1", "--model", str(tmp_path / "none.gguf"))
    assert missing.returncode == 1 and "not found" in missing.stderr


def test_doctor_reports_the_default_model_and_build() -> None:
    proc = run("doctor")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for fact in (
        "SmolLM2-135M-Instruct",
        "llama",
        "plain transformer",
        "FIM tokens",
        "chat template",
        "AVX2 = 1",
        "RAM",
    ):
        assert fact in proc.stdout
    assert "no FIM tokens" in proc.stdout  # the problem, with what to do about it


def test_doctor_explains_a_corrupt_model(tmp_path: Path) -> None:
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"\x00" * 64)
    proc = run("doctor", "--model", str(bad))
    assert proc.returncode == 1
    assert "not a GGUF model" in proc.stdout


def test_settings_lists_every_key() -> None:
    from codenook.settings import SPECS

    proc = run("settings")
    assert all(spec.key in proc.stdout for spec in SPECS)


def test_serve_refuses_a_public_tcp_address_without_consent() -> None:
    proc = run("serve", "--tcp", "0.0.0.0:0", timeout=30)
    assert proc.returncode == 2 and "--allow-remote" in proc.stderr


def test_serve_accepts_stdio_flag_and_exits_on_eof() -> None:
    proc = run("serve", "--stdio", timeout=30)
    assert proc.returncode == 0, proc.stderr


def test_complete_puts_the_imported_definition_in_the_prompt(
    tmp_path: Path, hybrid_path: Path
) -> None:
    """The shell gets the editor's cross-file context: the workspace is the git root above
    the file, indexed before completing (with its progress on stderr)."""
    project = tmp_path / "project"
    shutil.copytree(Path(__file__).parent / "fixtures" / "project" / "shop", project / "shop")
    (project / ".git").mkdir()
    app = project / "app.py"
    app.write_text(
        "from shop.models import Customer\n\n\ndef welcome(name):\n    who = Customer(\n"
    )

    def complete(*settings: str) -> subprocess.CompletedProcess[str]:
        """Complete inside ``Customer(``, showing the prompt, with 4 tokens and ``settings``."""
        sets = [arg for each in ("completion.maxTokens=4", *settings) for arg in ("--set", each)]
        options = ["--json", "--show-prompt", "--model", str(hybrid_path), *sets]
        return run("complete", f"{app}:5:20", *options)

    proc = complete()
    assert proc.returncode == 0, proc.stderr
    assert "indexing" in proc.stderr and "4 files" in proc.stderr
    report = json.loads(proc.stdout)
    assert report["root"] == str(project)
    prompt = report["prompt"]
    assert "<|file_sep|>shop/models.py" in prompt
    assert "class Customer" in prompt and "def greeting(self, formal: bool = False)" in prompt
    assert prompt.index("class Customer") < prompt.index("<|file_sep|>app.py")
    # Without the workspace (index off), the definition is not there: the test can fail.
    alone = complete("index.enabled=false")
    assert alone.returncode == 0, alone.stderr
    assert "class Customer" not in json.loads(alone.stdout)["prompt"]
