"""``codenook eval-agent``: the checks can both pass and fail, the directory port keeps the
editor's rules, and the command reports per-step usage, with a scripted engine and once with
the real embedded model.

The scripted engine replays replies that do each task right, or that only call finish: a
check that passed both would measure nothing.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import Callable
from pathlib import Path

import pytest

from codenook.agent.changes import FileChange
from codenook.agent.loop import APPLY, APPLY_ALL, DENY, RUN, SKIP, Limits
from codenook.cli import build_parser
from codenook.devtools import evalagent
from codenook.devtools.evalagent import cli as evalagent_cli
from codenook.devtools.evalagent.port import DirectoryPort, command_in, runs_python
from codenook.devtools.evalagent.run import evaluate
from codenook.devtools.evalagent.tasks import BY_NAME, TASKS, copy_fixture, mend_discount
from codenook.engine.protocol import (
    Engine,
    EngineCounters,
    EngineError,
    GenerationRequest,
    GenerationResult,
    Step,
    run_to_end,
    tokenize_parts,
)
from codenook.settings import Settings
from fake_engine import INFO


def call(tool: str, **params: str) -> str:
    body = "".join(f"<parameter={k}>\n{v}\n</parameter>\n" for k, v in params.items())
    return f"<tool_call>\n<function={tool}>\n{body}</function>\n</tool_call>"


def edit(path: str, old: str, new: str) -> str:
    return call("edit_file", path=path, old_text=old, new_text=new)


TESTS = "python -m unittest"
FINISH = call("finish", summary="done")
IMPORT = "from shop.pricing import apply_discount, "

RIGHT: dict[str, list[str]] = {
    "rename": [
        call("read_file", path="shop/pricing.py"),
        "\n".join(
            [
                edit("shop/pricing.py", "def compute_total(", "def total_price("),
                edit("shop/cart.py", IMPORT + "compute_total", IMPORT + "total_price"),
                edit("shop/cart.py", "= compute_total(self", "= total_price(self"),
                edit(
                    "shop/receipt.py",
                    "from shop.pricing import compute_total",
                    "from shop.pricing import total_price",
                ),
                edit("shop/receipt.py", "format_price(compute_total(", "format_price(total_price("),
                edit("tests/test_shop.py", IMPORT + "compute_total", IMPORT + "total_price"),
                edit(
                    "tests/test_shop.py", "assertEqual(compute_total(", "assertEqual(total_price("
                ),
            ]
        ),
        call("run_command", command=TESTS),
        FINISH,
    ],
    "add-parameter": [
        call("find_definition", name="format_price"),
        edit(
            "shop/receipt.py",
            "def format_price(cents: int) -> str:\n"
            '    return f"{cents // 100}.{cents % 100:02d} EUR',
            'def format_price(cents: int, currency: str = "EUR") -> str:\n'
            '    return f"{cents // 100}.{cents % 100:02d} {currency}',
        ),
        edit("shop/receipt.py", "format_price(unit)", 'format_price(unit, currency="EUR")')
        + "\n"
        + edit(
            "shop/receipt.py",
            "format_price(compute_total(cart.lines))",
            'format_price(compute_total(cart.lines), currency="EUR")',
        ),
        call("run_command", command=TESTS),
        FINISH,
    ],
    "fix-test": [
        call("run_command", command=TESTS),
        edit(
            "shop/pricing.py",
            "return cents * percent // 100",
            "return cents * (100 - percent) // 100",
        ),
        call("run_command", command=TESTS) + "\n" + FINISH,
    ],
}


class ScriptedEngine:
    """Answers the n-th generation with the n-th reply (then with nothing, which ends a task),
    counting prompt, cached and prefilled tokens (bytes) as a prefix cache would."""

    def __init__(self, replies: list[str]) -> None:
        self.info = dataclasses.replace(INFO, n_ctx=1_000_000)
        self.counters = EngineCounters()
        self.replies = list(replies)
        self.prompts: list[str] = []
        self._cached: list[int] = []

    def tokenize(self, text: str, special: bool = False) -> list[int]:
        return list(text.encode("utf-8"))

    def generate(
        self, request: GenerationRequest, cancelled: Callable[[], bool], lane: int = 0
    ) -> GenerationResult:
        return run_to_end(self.start(request, cancelled, lane))

    def start(
        self, request: GenerationRequest, cancelled: Callable[[], bool], lane: int = 0
    ) -> Step:
        tokens = tokenize_parts(self.tokenize, request.prompt)
        self.prompts.append(bytes(tokens).decode("utf-8"))
        cached = 0
        while cached < min(len(tokens), len(self._cached)) and (
            tokens[cached] == self._cached[cached]
        ):
            cached += 1
        reply = self.replies.pop(0) if self.replies else ""
        yield
        if request.on_text is not None and reply:
            request.on_text(reply)
        self._cached = tokens + self.tokenize(reply)
        return GenerationResult(
            reply,
            "eos",
            prompt_tokens=len(tokens),
            cached_tokens=cached,
            prefilled_tokens=len(tokens) - cached,
            generated_tokens=len(reply.encode("utf-8")),
        )

    def close(self) -> None:
        pass


def scripted(replies: list[str]) -> Callable[[Settings], Callable[[], Engine]]:
    def factory(settings: Settings) -> Callable[[], Engine]:
        return lambda: ScriptedEngine(replies)

    return factory


def run_one(name: str, replies: list[str], tmp_path: Path) -> evalagent.run.TaskReport:
    _, reports = evaluate(
        [BY_NAME[name]], scripted(replies)(Settings()), Limits(max_steps=10), keep=tmp_path
    )
    return reports[0]


# -- the checks --------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(RIGHT))
def test_the_right_edits_pass_the_check(name: str, tmp_path: Path) -> None:
    report = run_one(name, RIGHT[name], tmp_path)
    assert (report.status, report.passed, report.reason) == ("done", True, "")
    assert report.steps == len(RIGHT[name])
    assert report.tool_errors == 0
    assert {"command": TESTS, "answer": RUN} in report.commands


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("rename", "compute_total still appears in shop/cart.py:3"),
        ("add-parameter", "format_price has no parameter currency"),
        ("fix-test", "the unittest suite fails (failures=2), first test_total_with_discount"),
    ],
)
def test_finishing_without_work_fails_the_check_with_a_reason(
    name: str, reason: str, tmp_path: Path
) -> None:
    report = run_one(name, [FINISH], tmp_path)
    assert (report.status, report.steps) == ("done", 1)
    assert (report.passed, report.reason) == (False, reason)


def _project(tmp_path: Path, mended: bool = True) -> Path:
    root = tmp_path / "p"
    copy_fixture(root)
    if mended:
        mend_discount(root)
    return root


def _replace(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new))


def test_the_fixture_starts_broken_and_the_other_tasks_start_green(tmp_path: Path) -> None:
    broken = _project(tmp_path / "a", mended=False)
    assert not BY_NAME["fix-test"].check(broken).passed
    mended = _project(tmp_path / "b")
    assert BY_NAME["fix-test"].check(mended).passed
    assert BY_NAME["rename"].check(mended).reason.startswith("compute_total still appears")


def test_fixing_the_bug_by_editing_the_test_fails(tmp_path: Path) -> None:
    root = _project(tmp_path, mended=False)
    _replace(root / "tests" / "test_shop.py", "1000, 10), 900", "1000, 10), 100")
    verdict = BY_NAME["fix-test"].check(root)
    assert verdict.reason == "tests/test_shop.py was changed (the task forbids changing the tests)"


def test_a_rename_that_breaks_the_suite_or_misses_a_user_fails(tmp_path: Path) -> None:
    root = _project(tmp_path)
    for path in (root / "shop").glob("*.py"):
        path.write_text(path.read_text().replace("compute_total", "total_price"))
    _replace(root / "tests" / "test_shop.py", "compute_total", "sum_lines")
    verdict = BY_NAME["rename"].check(root)
    assert verdict.reason == "tests/test_shop.py used compute_total and does not use total_price"
    _replace(root / "tests" / "test_shop.py", "sum_lines", "total_price")
    assert BY_NAME["rename"].check(root).passed
    _replace(root / "shop" / "pricing.py", "def total_price", "def total_prices")
    assert BY_NAME["rename"].check(root).reason == "no function named total_price is defined"


def test_a_parameter_must_have_its_default_be_used_and_be_passed(tmp_path: Path) -> None:
    root = _project(tmp_path)
    receipt = root / "shop" / "receipt.py"
    check = BY_NAME["add-parameter"].check
    _replace(receipt, "(cents: int)", "(cents: int, currency: str)")
    assert check(root).reason == "format_price's parameter currency has no default"
    _replace(receipt, "currency: str)", "currency: str = 'USD')")
    assert check(root).reason == "currency defaults to 'USD', not 'EUR'"
    _replace(receipt, "'USD'", "'EUR'")
    assert check(root).reason == "format_price never uses currency"
    _replace(receipt, ':02d} EUR"', ':02d} {currency}"')
    assert check(root).reason == "the call of format_price on shop/receipt.py:14 omits currency"
    _replace(receipt, "format_price(unit)", "format_price(unit, 'EUR')")
    _replace(receipt, "(cart.lines))", "(cart.lines), currency='EUR')")
    assert check(root).passed
    _replace(receipt, "'EUR')\n", "'EUR'\n")
    assert check(root).reason.startswith("shop/receipt.py no longer parses")


def test_tasks_have_distinct_names_the_cli_offers() -> None:
    assert evalagent_cli.TASK_NAMES == tuple(t.name for t in TASKS) == tuple(RIGHT)


# -- the port ----------------------------------------------------------------------------------


def test_the_port_applies_only_over_the_text_it_was_computed_on(tmp_path: Path) -> None:
    port = DirectoryPort(tmp_path)
    target = tmp_path / "a.py"
    target.write_bytes(b"x = 1\r\n")

    def apply(before: str | None, after: str, path: Path = target) -> str | None:
        return asyncio.run(port.apply(FileChange(path, path.name, before, after)))

    assert apply("x = 2\n", "x = 3\n") == "it changed on disk since it was read"
    assert apply("x = 1\r\n", "x = 3\r\n") is None
    assert target.read_bytes() == b"x = 3\r\n"  # line endings written as given
    assert apply(None, "new") == "the file exists already"
    new = tmp_path / "pkg" / "sub" / "b.py"
    assert apply("old", "new", new) == "it is missing"
    assert apply(None, "y = 1\n", new) is None
    assert new.read_text() == "y = 1\n"
    assert port.text_of(target) is None


def test_the_port_runs_python_and_denies_the_rest() -> None:
    port = DirectoryPort(Path("."))
    asked = "codenook agent wants to run `{}` in /tmp/x. It runs with your rights."
    choices = (RUN, "Always for this task", DENY)
    for command, answer in [
        ("python -m unittest", RUN),
        ("python3.11 -m unittest tests.test_shop", RUN),
        (".venv/bin/python -c 'print(1)'", RUN),
        ("pythonic", DENY),
        ("rm -rf shop", DENY),
        ("echo `python`", DENY),
    ]:
        assert asyncio.run(port.ask(asked.format(command), choices)) == answer, command
    assert asyncio.run(port.ask("edit?", (APPLY, APPLY_ALL, SKIP))) == APPLY
    assert command_in("nothing asked") is None and not runs_python("")


def test_a_denied_command_reaches_the_model_as_a_tool_error(tmp_path: Path) -> None:
    replies = [call("run_command", command="ls shop"), FINISH]
    report = run_one("fix-test", replies, tmp_path)
    assert report.tool_errors == 1
    assert report.commands == [{"command": "ls shop", "answer": DENY}]


# -- the command -------------------------------------------------------------------------------


def test_the_command_reports_every_task_and_its_steps_as_json(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    replies = [reply for name in RIGHT for reply in RIGHT[name]]
    code = evalagent.main(["--json", "--keep", str(tmp_path)], loader=scripted(replies))
    assert code == 0
    report = json.loads(capsys.readouterr().out)
    assert report["model"]["name"] == "fake.gguf"
    assert [t["name"] for t in report["tasks"]] == list(RIGHT)
    for task in report["tasks"]:
        assert task["passed"] is True and task["status"] == "done"
        steps = task["steps"]
        assert steps == len(RIGHT[task["name"]])
        for key in ("prompt_tokens", "new_tokens", "cached_tokens", "prefilled_tokens"):
            assert len(task[key]) == steps
        assert task["last_prompt_tokens"] == task["prompt_tokens"][-1]
        assert task["new_tokens"][0] == task["prompt_tokens"][0]
        assert all(
            p <= n for p, n in zip(task["prefilled_tokens"], task["new_tokens"], strict=True)
        )
        assert task["generated_tokens"] == sum(task["generated_per_step"]) > 0
        assert task["wall_s"] >= 0
    totals = report["totals"]
    assert (totals["tasks"], totals["passed"], totals["pass_rate"]) == (3, 3, 1.0)
    assert 0 < totals["prefill_ratio_mean"] <= 1
    assert totals["prefill_ratio_steps"] == sum(len(r) - 1 for r in RIGHT.values())
    assert (tmp_path / "rename" / "shop" / "pricing.py").read_text().count("def total_price(") == 1


def test_the_command_prints_a_table_and_exits_0_when_tasks_fail(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code = evalagent.main(["--task", "fix-test", "--task", "rename"], loader=scripted([FINISH]))
    assert code == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    header = next(line for line in lines if line.startswith("| task"))
    assert [c.strip() for c in header.strip("|").split("|")] == [
        "task",
        "result",
        "agent",
        "steps",
        "generated",
        "last prompt",
        "prefilled per step",
        "new per step",
        "wall",
    ]
    rows = [line for line in lines if line.startswith(("| fix-test", "| rename"))]
    assert "FAIL: the unittest suite fails" in rows[0]
    # The second task's engine has no reply left: the model stops without a call.
    assert "FAIL: compute_total still appears" in rows[1]
    assert "passed 0/2 (0%)" in out
    assert "n/a (no task took a second step)" in out


def test_usage_errors_and_a_model_that_cannot_load(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert evalagent.main(["--max-steps", "0"], loader=scripted([])) == 2
    assert "--max-steps must be at least 1" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exited:
        evalagent.main(["--task", "nonsense"], loader=scripted([]))
    assert exited.value.code == 2
    (tmp_path / "rename").mkdir()
    (tmp_path / "rename" / "left.txt").write_text("x")
    assert evalagent.main(["--keep", str(tmp_path)], loader=scripted([])) == 2
    assert "exists and is not empty" in capsys.readouterr().err

    def broken(settings: Settings) -> Callable[[], Engine]:
        def load() -> Engine:
            raise EngineError("model file not found: /nowhere.gguf")

        return load

    assert evalagent.main(["--task", "rename"], loader=broken) == 1
    err = capsys.readouterr().err
    assert "the model could not load: model file not found: /nowhere.gguf" in err


def test_the_main_cli_dispatches_eval_agent() -> None:
    args = build_parser().parse_args(["eval-agent", "--task", "rename", "--max-steps", "3"])
    assert args.func is evalagent_cli.command
    assert (args.task, args.max_steps, args.json) == (["rename"], 3, False)


def test_the_embedded_model_ends_a_task_cleanly(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["--task", "fix-test", "--max-steps", "2", "--step-tokens", "24", "--json"]
    assert evalagent.main([*argv, "--context-size", "4096"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["model"]["name"] == "SmolLM2-135M-Instruct.Q4_1.gguf"
    (task,) = report["tasks"]
    assert task["status"] in ("done", "budget", "failed")
    assert 1 <= task["steps"] <= 2
    assert len(task["prefilled_tokens"]) == len(task["new_tokens"]) == task["steps"]
    assert task["prefilled_tokens"][0] > 0 and task["generated_tokens"] > 0
    assert isinstance(task["passed"], bool)
