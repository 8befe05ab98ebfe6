"""``codenook bench``: the trace format, the recorder, the replay plan, and one real run.

The smoke test replays a short recorded trace through the real server (SmolLM2) in both cache
modes; it checks what the report must always hold, never timings.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import pytest

from codenook.devtools import bench
from codenook.devtools.bench.errors import BenchError
from codenook.devtools.bench.trace import (
    TRACE_VERSION,
    Buffer,
    Event,
    Trace,
    default_trace,
    plan,
    record,
    traces_dir,
)

EXAMPLE = Path(__file__).parents[1] / "examples" / "stats.py"

SOURCE = '''import math


def norm(xs: list[float]) -> float:
    """Euclidean length; "é" and "😀" keep columns honest."""
    total = sum(x * x for x in xs)
    return math.sqrt(total)
'''


def test_recorded_trace_reproduces_its_source_and_round_trips(tmp_path: Path):
    trace = record(SOURCE, 3, 4, cpm=300, seed=7, typo_rate=0.2)
    assert trace.cursor == (3, 0)
    assert trace.initial_text == "import math\n\n\n"
    assert trace.final_text() == SOURCE
    assert any(e.delete for e in trace.events), "typos are corrected with backspaces"
    typed = sum(len(e.insert or "") for e in trace.events) - sum(e.delete for e in trace.events)
    assert typed == len(SOURCE) - len(trace.initial_text)
    path = tmp_path / "t.json"
    trace.save(path)
    loaded = Trace.load(path)
    assert loaded == trace
    assert json.loads(path.read_text(encoding="utf-8"))["version"] == TRACE_VERSION


def test_recorder_is_deterministic_for_a_seed():
    first = record(SOURCE, 3, 4, seed=1)
    again = record(SOURCE, 3, 4, seed=1)
    other = record(SOURCE, 3, 4, seed=2)
    assert first.events == again.events
    assert [e.insert for e in first.events] == [e.insert for e in other.events]
    assert [e.delay_ms for e in first.events] != [e.delay_ms for e in other.events]
    # One keystroke per character, the newlines included.
    assert len(first.events) == len("".join(SOURCE.splitlines(keepends=True)[3:7]))
    assert all(e.delay_ms >= 30 for e in first.events)


def test_auto_indent_puts_the_indentation_on_the_newline():
    trace = record(SOURCE, 3, 4, seed=1, auto_indent=True)
    assert trace.final_text() == SOURCE
    assert Event(trace.events[0].delay_ms, insert="d") == trace.events[0]
    assert [e.insert for e in trace.events if e.insert and e.insert.startswith("\n")] == [
        "\n    ",
        "\n    ",
        "\n    ",
        "\n",
    ]


def test_buffer_sends_utf16_columns():
    buffer = Buffer('s = "😀é"\n', (0, 7))  # after the emoji and the é, in code points
    assert buffer.position() == (0, 8)  # the emoji is two UTF-16 units
    edit = buffer.apply(Event(0, insert="!"))
    assert edit is not None and edit.start == edit.end == (0, 8)
    edit = buffer.apply(Event(0, delete=3))
    assert edit is not None and (edit.start, edit.end, edit.text) == ((0, 5), (0, 9), "")
    assert buffer.text == 's = ""\n'
    assert buffer.apply(Event(0, move=(1, 0))) is None and buffer.offset == len(buffer.text)


def test_plan_debounces_and_asks_after_the_last_keystroke():
    trace = Trace("", (0, 0), [Event(100, insert="a"), Event(50, insert="b"), Event(200, "c")])
    steps = [(s.at_ms, s.kind, s.index) for s in plan(trace)]
    assert steps == [
        (100, "key", 0),
        (150, "key", 1),  # 50 ms after "a": within the debounce, no request for "a"
        (225, "ask", 1),
        (350, "key", 2),
        (425, "ask", 2),
    ]
    fast = [(s.at_ms, s.kind) for s in plan(trace, speed=2.0)]
    assert fast == [(50, "key"), (75, "key"), (150, "ask"), (175, "key"), (250, "ask")]


@pytest.mark.parametrize(
    "change, message",
    [
        ({"version": 2}, "version"),
        ({"events": [{"delay_ms": 1, "delete": 500}]}, "cannot delete"),
        ({"events": [{"delay_ms": 1, "insert": "x", "delete": 1}]}, "exactly one"),
        ({"cursor": {"line": 9, "character": 0}}, "no line 9"),
    ],
)
def test_bad_traces_are_refused_on_load(change: dict, message: str):
    raw = {**record(SOURCE, 3, 1, seed=0).to_json(), **change}
    with pytest.raises(BenchError, match=message):
        Trace.from_json(raw)


def test_the_shipped_trace_loads():
    # From a checkout the traces are at the top of the repository, not beside the package.
    assert traces_dir() == Path(__file__).parents[1] / "benchmarks" / "traces"
    assert default_trace().is_file()
    trace = Trace.load(default_trace())
    assert 150 <= len(trace.events) <= 300
    assert trace.language_id == "python"


def test_the_wheel_finds_its_traces_inside_the_package(tmp_path: Path, monkeypatch):
    from codenook.devtools.bench import trace as trace_module

    # pyproject force-includes benchmarks/traces as codenook/benchmarks/traces.
    packaged = tmp_path / "codenook" / "benchmarks" / "traces"
    packaged.mkdir(parents=True)
    module = tmp_path / "codenook" / "devtools" / "bench" / "trace.py"
    monkeypatch.setattr(trace_module, "__file__", str(module))
    assert traces_dir() == packaged


def test_bench_runs_a_short_trace_in_both_modes(tmp_path: Path, capsys: pytest.CaptureFixture):
    # Type one line (about 15 keystrokes) at the end of the example module.
    source = tmp_path / "stats.py"
    text = (
        EXAMPLE.read_text(encoding="utf-8").rstrip("\n") + "\n\n\ndef half(x):\n    return x / 2\n"
    )
    source.write_text(text, encoding="utf-8")
    trace_path = tmp_path / "short.json"
    line = text.count("\n")  # the last line, 1-based
    record_args = ["record", str(source), "--out", str(trace_path), "--start-line", str(line)]
    record_args += ["--lines", "1", "--cpm", "240", "--auto-indent"]
    assert bench.main(bench.build_parser().parse_args(record_args)) == 0
    trace = Trace.load(trace_path)
    assert 10 <= len(trace.events) <= 20 and trace.final_text() == text
    out = tmp_path / "report.json"
    args = bench.build_parser().parse_args(
        ["--trace", str(trace_path), "--modes", "off,on", "--max-tokens", "8", "--json", str(out)]
    )
    assert bench.main(args) == 0
    table = capsys.readouterr().out
    assert "prefilled tokens per request, on/off" in table
    report = json.loads(out.read_text(encoding="utf-8"))
    modes = report["modes"]
    assert set(modes) == {"off", "on"}
    for mode in modes.values():
        assert mode["keystrokes"] == len(trace.events)
        assert mode["requests_sent"] >= 1
        assert mode["answered"] >= 1, "the request after the last keystroke is always answered"
        assert mode["error"] == 0 and mode["lost"] == 0
        outcomes = mode["answered"] + mode["cancelled"] + mode["late"]
        assert outcomes == mode["requests_sent"]
        assert mode["latency_ms"]["median"] >= trace.debounce_ms
        assert mode["engine_requests"] >= 1
    off, on = modes["off"], modes["on"]
    assert off["cached_tokens_per_request"] == 0
    assert on["prefilled_tokens_per_request"] <= off["prefilled_tokens_per_request"]
    assert on["settings"]["engine.prefixCache"] is True
    assert off["settings"]["engine.prefixCache"] is False


FAKE_LLAMA_SERVER = """#!{python}
import json, os, sys, time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

BODIES = os.path.join(os.path.dirname(os.path.abspath(sys.argv[0])), "bodies.jsonl")
ARGV = os.path.join(os.path.dirname(os.path.abspath(sys.argv[0])), "argv.json")
with open(ARGV, "w") as f:
    json.dump(sys.argv[1:], f)

class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_GET(self):
        self.send_response(200 if self.path == "/health" else 404)
        self.end_headers()

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        with open(BODIES, "a") as f:
            f.write(json.dumps(body) + "\\n")
        time.sleep(0.02)
        n = len(body["input_prefix"]) + len(body["input_suffix"]) + 8
        data = json.dumps({{"content": "1", "tokens_evaluated": n, "timings/prompt_n": 4,
            "timings/cache_n": n - 4, "timings/predicted_n": 2,
            "timings/predicted_ms": 10.0}}).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

port = int(sys.argv[sys.argv.index("--port") + 1])
ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()
"""


def _vim_context(text: str, offset: int) -> dict:
    """What llama.vim sends for the cursor at ``offset`` (its defaults: 256 / 64 lines)."""
    lines = text.split("\n")
    y = text.count("\n", 0, offset)  # from 0
    x = offset - (text.rfind("\n", 0, offset) + 1)
    if lines[-1] == "" and y < len(lines) - 1:
        lines.pop()
    line = lines[y]
    blank = line.strip(" \t") == ""
    return {
        "input_prefix": "\n".join(lines[max(0, y - 256) : y]) + "\n",
        "input_suffix": ("" if blank else line[x:])
        + "\n"
        + "\n".join(lines[y + 1 : y + 65])
        + "\n",
        "prompt": "" if blank else line[:x],
        "n_indent": 0 if blank else len(line) - len(line.lstrip(" \t")),
    }


def test_llama_vim_mode_sends_what_llama_vim_sends(tmp_path: Path, capsys: pytest.CaptureFixture):
    """The peer against a stand-in llama-server: its command line, the ring's first request,
    and every FIM request's body as llama.vim builds it for one of the buffer's states."""
    fake = tmp_path / "llama-server"
    fake.write_text(FAKE_LLAMA_SERVER.format(python=sys.executable), encoding="utf-8")
    fake.chmod(0o755)
    trace_path = tmp_path / "t.json"
    trace = record(SOURCE, 6, 1, cpm=600, seed=0, auto_indent=True)  # the last line
    trace.save(trace_path)
    out = tmp_path / "peer.json"
    argv = ["--trace", str(trace_path), "--modes", "llama.vim", "--speed", "4"]
    argv += ["--llama-server", str(fake), "--json", str(out), "--set", "model.threads=3"]
    assert bench.main(bench.build_parser().parse_args(argv)) == 0
    peer = json.loads(out.read_text(encoding="utf-8"))["modes"]["llama.vim"]
    assert peer["answered"] >= 1 and peer["error"] == 0 and peer["lost"] == 0
    assert peer["requests_sent"] == len(trace.events)  # asked on every keystroke
    assert peer["prefilled_tokens_per_request"] == 4 and peer["engine_cancelled"] == 0
    assert peer["checkpoint_hits"] is None
    assert "llama.vim" in capsys.readouterr().out
    server_argv = json.loads((tmp_path / "argv.json").read_text())
    for flag, value in (("--cache-reuse", "256"), ("-c", "4096"), ("-t", "3"), ("-np", "1")):
        assert server_argv[server_argv.index(flag) + 1] == value
    bodies = [json.loads(line) for line in (tmp_path / "bodies.jsonl").read_text().splitlines()]
    ring = bodies[0]  # opening the file: the chunk around the cursor, read ahead
    assert ring["n_predict"] == 0 and ring["t_max_predict_ms"] == 1 and ring["prompt"] == ""
    # The whole small file, the cursor's empty last line included, each line ending in \n.
    assert ring["input_extra"][0]["text"] == trace.initial_text + "\n"
    assert ring["input_extra"][0]["filename"] == trace.uri_path
    states = []
    buffer = Buffer(trace.initial_text, trace.cursor)
    for event in trace.events:
        buffer.apply(event)
        states.append(_vim_context(buffer.text, buffer.offset))
    fims = [b for b in bodies[1:] if b["t_max_predict_ms"] == 250]
    assert fims, "at least one FIM request"
    for body in bodies[1:]:
        assert body["id_slot"] == 0 and body["cache_prompt"] is True and body["stream"] is False
        assert body["samplers"] == ["top_k", "top_p", "infill"]
        assert (body["top_k"], body["top_p"], body["n_predict"]) == (40, 0.9, 16)
        assert body["t_max_prompt_ms"] == 500 and body["t_max_predict_ms"] in (250, 1000)
        assert "temperature" not in body and body["stop"] == []
        # The ring's chunk is the whole small file, like the text around the cursor: evicted.
        assert body["input_extra"] == []
    for body in fims:
        sent = {k: body[k] for k in ("input_prefix", "input_suffix", "prompt", "n_indent")}
        assert sent in states
    assert fims[-1] == {**fims[-1], **states[-1]}, "the last keystroke's request goes out"


def test_llama_vim_ring_buffer_gathers_and_evicts_like_llama_vim():
    from codenook.devtools.bench.llamavim import LlamaVimClient, chunk_similarity

    assert chunk_similarity(["a b c"], ["a b c"]) == 1.0
    assert chunk_similarity(["a b"], ["c d"]) == 0.0
    assert chunk_similarity([], []) == 1.0
    lines = [f"def f{i}(x): return x + {i}" for i in range(400)]
    client = LlamaVimClient("big.py", seed=1)
    client.gather(lines, 350)  # far from the last pick: lines 1..94 beyond n_prefix
    assert len(client.queued) == 1 and 30 <= len(client.queued[0].data) <= 33
    assert set(client.queued[0].data) <= set(lines[:94])
    client.gather(lines, 360)  # moved 10 lines: nothing new
    assert len(client.queued) == 1
    body = client.ring_update()
    assert body is not None and body["n_predict"] == 0 and len(body["input_extra"]) == 1
    assert client.ring and not client.queued
    ctx = client.local(lines, 4, 350, [])
    assert ctx.middle == lines[349][:4] and ctx.indent == 0
    assert ctx.prefix == "\n".join(lines[93:349]) + "\n"  # 256 lines
    assert ctx.suffix == lines[349][4:] + "\n" + "\n".join(lines[350:400]) + "\n"
    fim = client.fim_body(lines, 350, ctx, [], 128)
    # Every line is alike ("def f..(x): return x + .."): the ring's chunk is evicted.
    assert fim["input_extra"] == [] and client.evictions == 1
    assert (fim["n_predict"], fim["t_max_predict_ms"], fim["n_indent"]) == (128, 250, 0)
    spec = client.local(lines, 4, 350, ["    y = 1", "    return y"])
    assert spec.middle == "    return y" and spec.prefix.endswith(lines[349] + "    y = 1\n")
    assert client.fim_body(lines, 350, spec, ["a", "b"], 128)["t_max_predict_ms"] == 1000
    blank = client.local(["x = 1", "    ", "y"], 2, 2, [])
    assert (blank.middle, blank.indent, blank.suffix) == ("", 0, "\ny\n")


def test_the_old_llama_server_mode_names_its_replacement(tmp_path: Path, capsys):
    trace_path = tmp_path / "t.json"
    record(SOURCE, 5, 1, seed=0).save(trace_path)
    argv = ["--trace", str(trace_path), "--modes", "llama-server"]
    assert bench.main(bench.build_parser().parse_args(argv)) == 1
    assert "replaced by llama.vim" in capsys.readouterr().err


def test_llama_vim_mode_is_skipped_without_the_binary(tmp_path: Path, capsys):
    trace_path = tmp_path / "t.json"
    record(SOURCE, 5, 1, seed=0).save(trace_path)
    argv = ["--trace", str(trace_path), "--modes", "llama.vim"]
    argv += ["--llama-server", str(tmp_path / "missing")]
    assert bench.main(bench.build_parser().parse_args(argv)) == 1  # nothing else to run
    assert "skipping llama.vim" in capsys.readouterr().err


class FakeOpenAI(BaseHTTPRequestHandler):
    """An OpenAI-compatible server in a few lines: one model, no /props, no /tokenize; each
    streamed completion reports usage with all but 3 prompt tokens cached."""

    bodies: ClassVar[list[dict]] = []

    def log_message(self, *args):
        pass

    def _send(self, status: int, data: bytes, kind: str = "application/json") -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        if self.path == "/v1/models":
            self._send(200, json.dumps({"data": [{"id": "fake-coder"}]}).encode())
        else:
            self._send(404, b'{"error": {"message": "not found"}}')

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        if self.path != "/v1/completions":
            self._send(404, b'{"error": {"message": "not found"}}')
            return
        FakeOpenAI.bodies.append(body)
        prompt = len(body["prompt"]) // 4
        usage = {"prompt_tokens": prompt, "completion_tokens": 2, "total_tokens": prompt + 2}
        usage["prompt_tokens_details"] = {"cached_tokens": prompt - 3}
        chunks = [
            {"choices": [{"index": 0, "text": "x", "finish_reason": None}]},
            {"choices": [{"index": 0, "text": "y", "finish_reason": "length"}]},
            {"choices": [], "usage": usage},
        ]
        time.sleep(0.02)
        events = "".join(f"data: {json.dumps(c)}\n\n" for c in chunks) + "data: [DONE]\n\n"
        self._send(200, events.encode(), "text/event-stream")


@pytest.fixture
def fake_openai() -> Iterator[str]:
    FakeOpenAI.bodies = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeOpenAI)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()
    server.server_close()


def test_remote_mode_runs_codenook_serve_against_an_openai_server(
    tmp_path: Path, fake_openai: str, capsys: pytest.CaptureFixture
):
    """Mode remote: `codenook serve` with engine.backend openai at --engine-url, next to mode
    on in one run; its prompt figures are the server's reported usage."""
    trace_path = tmp_path / "t.json"
    record(SOURCE, 5, 1, cpm=600, seed=0, auto_indent=True).save(trace_path)
    out = tmp_path / "remote.json"
    argv = ["--trace", str(trace_path), "--modes", "on,remote", "--speed", "4"]
    argv += ["--max-tokens", "8", "--engine-url", fake_openai, "--engine-model", "fake-coder"]
    argv += ["--json", str(out)]
    assert bench.main(bench.build_parser().parse_args(argv)) == 0
    table = capsys.readouterr().out
    assert re.search(r"latency remote / on: median \d+\.\d\dx, p95 \d+\.\d\dx", table), table
    assert "tokens per model answer remote / on: prompt " in table
    modes = json.loads(out.read_text(encoding="utf-8"))["modes"]
    assert list(modes) == ["on", "remote"]
    remote = modes["remote"]
    assert remote["answered"] >= 1 and remote["error"] == 0 and remote["lost"] == 0
    assert remote["latency_ms"]["median"] >= 75 and remote["latency_ms"]["p95"] is not None
    assert remote["model"] == "fake-coder" and remote["architecture"] == "remote"
    assert remote["settings"]["engine.backend"] == "openai"
    assert remote["settings"]["engine.url"] == fake_openai
    assert remote["engine_requests"] >= 1 and remote["checkpoint_hits"] is None
    # The server's usage, through codenook/stats: 3 prompt tokens read per answer.
    assert remote["prefilled_tokens_per_answer"] == 3
    assert remote["prompt_tokens_per_answer"] > 20
    assert remote["cached_tokens_per_answer"] == remote["prompt_tokens_per_answer"] - 3
    sent = FakeOpenAI.bodies
    assert sent and all(b["model"] == "fake-coder" and b["stream"] for b in sent)
    assert modes["on"]["settings"]["engine.backend"] == "llama"


def test_remote_mode_needs_an_engine_url(tmp_path: Path, capsys: pytest.CaptureFixture):
    trace_path = tmp_path / "t.json"
    record(SOURCE, 5, 1, seed=0).save(trace_path)
    argv = ["--trace", str(trace_path), "--modes", "on,remote"]
    assert bench.main(bench.build_parser().parse_args(argv)) == 1
    err = capsys.readouterr().err
    assert "mode remote needs --engine-url URL" in err and "running mode" not in err
    argv += ["--engine-url", "gpu-box:8000"]
    assert bench.main(bench.build_parser().parse_args(argv)) == 1
    assert "is not an http:// or https:// URL" in capsys.readouterr().err


def test_the_parts_of_the_benchmark_import_in_one_direction():
    """Each module imports only those before it, so no two can import each other."""
    order = ["errors", "trace", "rpc", "replay", "llamavim", "targets", "report", "run", "assist"]
    order += ["background", "shared", "engine", "cli"]
    package = Path(bench.__file__).parent
    for position, name in enumerate(order):
        text = (package / f"{name}.py").read_text(encoding="utf-8")
        imported = set(re.findall(r"codenook\.devtools\.bench\.(\w+)", text))
        assert imported <= set(order[:position]), (name, imported - set(order[:position]))


def test_the_command_line_loads_the_dev_tools_only_when_they_run():
    code = (
        "import sys, codenook.cli as c; c.build_parser();"
        " heavy = ('codenook.devtools.bench.run', 'codenook.devtools.bench.targets',"
        " 'codenook.devtools.bench.assist', 'codenook.devtools.bench.shared',"
        " 'codenook.devtools.evalcontext.report',"
        " 'tree_sitter', 'asyncio');"
        " print(sorted(m for m in heavy if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def test_bench_shared_runs_windows_and_an_agent_on_one_host(
    tmp_path: Path, hybrid_path: Path, capsys: pytest.CaptureFixture
):
    """In-process vs two shared windows vs an API conversation, in one run; all stopped."""
    trace_path = tmp_path / "t.json"
    record(SOURCE, 5, 1, cpm=600, seed=0, auto_indent=True).save(trace_path)
    out = tmp_path / "shared.json"
    argv = ["shared", "--model", str(hybrid_path), "--trace", str(trace_path), "--windows", "2"]
    argv += ["--speed", "2", "--max-tokens", "8", "--conversation-tokens", "64"]
    argv += ["--json", str(out)]
    assert bench.main(bench.build_parser().parse_args(argv)) == 0
    table = capsys.readouterr().out
    assert "RSS, 2 windows shared (host + windows) / 1 window in-process" in table
    assert "keystroke latency with an API conversation / idle" in table
    report = json.loads(out.read_text(encoding="utf-8"))
    windows = report["shared"]["windows"]
    assert [w["mode"] for w in windows] == ["w1", "w2"]
    for window in [report["inprocess"], *windows, report["agent"]["idle"]]:
        assert window["answered"] >= 1 and window["error"] == 0 and window["lost"] == 0
        assert window["latency_ms"]["median"] >= 75
        assert window["prefilled_tokens_per_answer"] is not None
    agent = report["agent"]["agent"]
    assert agent["answered"] >= 1 and agent["error"] == 0 and agent["lost"] == 0
    conversation = report["agent"]["conversation"]
    assert conversation["text_events"] >= 1 and conversation["error_count"] == 0
    assert report["inprocess"]["rss"]["peak_total_bytes"] > 0
    rss = report["shared"]["rss"]
    assert set(rss["peak_bytes"]) == {"host", "w1", "w2"}
    assert all(v > 0 for v in rss["peak_bytes"].values())
    assert rss["peak_total_bytes"] >= max(rss["peak_bytes"].values())
    assert report["ratios"]["rss_shared_total_vs_inprocess"] > 0
    assert report["ratios"]["agent_vs_idle"]["latency_ms_median"] > 0
    assert report["settings"]["model.path"] == str(hybrid_path)
    host = report["host"]
    assert host["stopped_by"] == "engine stop" and host["runtime_dir_removed"]
    assert host["api_counters"]["requests"] >= 1
    assert not Path(host["runtime_dir"]).exists()
    pids = [host["pid"], report["inprocess"]["pid"], *(w["pid"] for w in windows), agent["pid"]]
    assert all(isinstance(pid, int) and _gone(pid) for pid in pids), pids


def test_a_replay_inside_a_project_gets_its_cross_file_context(
    tmp_path: Path, hybrid_path: Path, capsys: pytest.CaptureFixture
):
    """--workspace replays in a real folder, indexed first: the prompts carry the imported
    file's definitions, which the same trace replayed in an empty folder does not see."""
    project = tmp_path / "project"
    (project / "geometry").mkdir(parents=True)
    (project / "geometry" / "__init__.py").write_text("", encoding="utf-8")
    (project / "geometry" / "vectors.py").write_text(
        "def scale_vector(vector, factor):\n"
        '    """Every component of vector times factor."""\n'
        "    return [component * factor for component in vector]\n",
        encoding="utf-8",
    )
    main = project / "main.py"
    main.write_text(
        "from geometry.vectors import scale_vector\n\n\ndef double(v):\n"
        "    return scale_vector(v, 2)\n",
        encoding="utf-8",
    )
    trace_path = tmp_path / "t.json"
    record_args = ["record", str(main), "--out", str(trace_path), "--start-line", "5"]
    record_args += ["--lines", "1", "--cpm", "600", "--root", str(project)]
    assert bench.main(bench.build_parser().parse_args(record_args)) == 0
    assert Trace.load(trace_path).uri_path == "main.py"
    outside = ["record", str(tmp_path / "t.json"), "--out", str(tmp_path / "x.json")]
    assert bench.main(bench.build_parser().parse_args([*outside, "--root", str(project)])) == 1

    prompts = {}
    for name, extra in (("project", ["--workspace", str(project)]), ("empty", [])):
        out = tmp_path / f"{name}.json"
        argv = ["--trace", str(trace_path), "--model", str(hybrid_path), "--modes", "on"]
        argv += ["--max-tokens", "4", "--json", str(out), *extra]
        assert bench.main(bench.build_parser().parse_args(argv)) == 0
        mode = json.loads(out.read_text(encoding="utf-8"))["modes"]["on"]
        assert mode["answered"] >= 1 and mode["error"] == 0
        prompts[name] = mode["prompt_tokens_per_answer"]
    assert "indexed before the replay" in capsys.readouterr().out
    assert main.read_text(encoding="utf-8").endswith("scale_vector(v, 2)\n")  # untouched
    # The definition of scale_vector (and the file separator around it) came in.
    assert prompts["project"] > prompts["empty"] + 8, prompts
