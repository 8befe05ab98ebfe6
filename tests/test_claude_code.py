"""Claude Code itself, headless, against the engine host's Anthropic Messages API.

The client nobody here wrote: ``claude -p`` sends its real first request (its system prompt,
a ``system``-role message, 24 tool definitions: about 76 KB), streams the answer and prints
the model's text. A second run continuing the conversation must read only the new tokens:
the turn-1 prompt comes back as ``cache_read_input_tokens``.

The model is the hybrid fixture built to end its chat replies after a few tokens (Claude Code
treats a reply cut at ``max_tokens`` as an error); with Qwen's vocabulary the first request is
about 18k tokens, and the host gets a 64k context as the README advises. Claude Code comes from npm
(``make claude-code``, into .venv/claude-code); without it this test skips loudly.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tiny_qwen3next import write_tiny_qwen3next

from test_shared_host import reap

CLAUDE = Path(__file__).parents[1] / ".venv" / "claude-code" / "node_modules" / ".bin" / "claude"
CONTEXT = 65536


def claude_binary() -> Path:
    chosen = Path(os.environ.get("CODENOOK_CLAUDE", CLAUDE))
    if not chosen.exists() or shutil.which("node") is None:
        message = (
            f"SKIPPED LOUDLY: Claude Code is not installed ({chosen}); `make claude-code`"
            " installs it from npm"
        )
        if os.environ.get("CODENOOK_CLAUDE_REQUIRE") == "1":
            pytest.fail(message)
        print(message, file=sys.stderr)
        pytest.skip(message)
    return chosen


@pytest.fixture
def api_host(tmp_path: Path) -> Iterator[tuple[str, dict[str, str]]]:
    """``codenook engine --api 127.0.0.1:0`` on the short-reply fixture; its base URL."""
    model = write_tiny_qwen3next(tmp_path / "tiny-ending.gguf", end_bias=4.0)
    root = tempfile.mkdtemp(prefix="cn-", dir="/tmp")
    env = {**os.environ, "CODENOOK_RUNTIME_DIR": root}
    host = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "codenook",
            "engine",
            "--model",
            str(model),
            "--set",
            f"model.contextSize={CONTEXT}",
            "--api",
            "127.0.0.1:0",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            done = subprocess.run(
                [sys.executable, "-m", "codenook", "engine", "status", "--json"],
                env=env,
                capture_output=True,
                text=True,
                timeout=30,
            )
            if done.returncode == 0 and json.loads(done.stdout)["state"] == "idle":
                url = json.loads(done.stdout)["api"]
                break
            assert host.poll() is None, host.stderr.read() if host.stderr else ""
            assert time.monotonic() < deadline, "the host did not start"
            time.sleep(0.3)
        yield url, env
    finally:
        host.terminate()
        host.wait(30)
        reap(root)
        shutil.rmtree(root, ignore_errors=True)


def run_claude(
    binary: Path, url: str, home: Path, project: Path, prompt: str, *more: str
) -> dict[str, Any]:
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(home),
        "ANTHROPIC_BASE_URL": url,
        "ANTHROPIC_AUTH_TOKEN": "dummy",
        "ANTHROPIC_MODEL": "qwen3-coder-next",
        "ANTHROPIC_SMALL_FAST_MODEL": "qwen3-coder-next",
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
        "DISABLE_TELEMETRY": "1",
        "CLAUDE_CODE_MAX_OUTPUT_TOKENS": "256",
        "CLAUDE_CODE_MAX_RETRIES": "0",
    }
    done = subprocess.run(
        [str(binary), "-p", prompt, "--output-format", "json", *more],
        env=env,
        cwd=project,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, (done.stdout[-2000:], done.stderr[-2000:])
    return json.loads(done.stdout)


def test_claude_code_runs_against_the_host_and_its_second_turn_reads_only_new_tokens(
    api_host: tuple[str, dict[str, str]], tmp_path: Path
) -> None:
    binary = claude_binary()
    url, _env = api_host
    home, project = tmp_path / "home", tmp_path / "project"
    home.mkdir()
    project.mkdir()
    (project / "README.md").write_text("A project for Claude Code.\n", encoding="utf-8")

    first = run_claude(binary, url, home, project, "say hello")
    assert first["is_error"] is False and first["stop_reason"] == "end_turn", first
    assert isinstance(first["result"], str) and first["result"].strip()
    usage = first["usage"]
    # Claude Code's real first request: about 17k Qwen tokens, all read this time.
    assert usage["input_tokens"] > 10_000 and usage["cache_read_input_tokens"] == 0, usage

    second = run_claude(binary, url, home, project, "and now say goodbye", "--continue")
    assert second["is_error"] is False and second["session_id"] == first["session_id"]
    again = second["usage"]
    # The whole first prompt is reused; only the reply and the new message are read.
    assert again["cache_read_input_tokens"] >= usage["input_tokens"], again
    assert again["input_tokens"] < 500, again
    print(
        f"claude -p: turn 1 read {usage['input_tokens']} tokens;"
        f" turn 2 reused {again['cache_read_input_tokens']} and read {again['input_tokens']}",
        file=sys.stderr,
    )
