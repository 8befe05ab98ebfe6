"""Running the tasks: one fixture copy per task, one engine for all, the loop as the LSP has it.

The engine is reached the way the language server reaches it: an ``EngineHost`` around the
loader, each step generated at ``Priority.AGENT`` (so in the agent's own lane, whose cache a
step's successor extends). Only the ``Port`` differs, and the prefill numbers measured here
are therefore the ones an editor's agent task gets.

Tasks run one after another, each in a fresh copy, so that a task cannot see another's
leftovers; the model stays loaded in between.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from codenook.agent.loop import Agent, Limits, Outcome, Task
from codenook.agent.prompts import uses_tools
from codenook.agent.workspace import Access, index_lookup
from codenook.devtools.evalagent.port import DirectoryPort
from codenook.devtools.evalagent.tasks import EvalTask, Verdict, copy_fixture
from codenook.engine.host import EngineHost, Loader
from codenook.engine.protocol import Engine, GenerationRequest, GenerationResult
from codenook.engine.scheduler import Priority
from codenook.workspace.index import WorkspaceIndex


class ModelUnavailable(Exception):
    """The model did not load; the message says why."""


@dataclass
class TaskReport:
    name: str
    passed: bool
    reason: str
    status: str
    summary: str
    steps: int
    generated_tokens: int
    last_prompt_tokens: int
    prompt_tokens: list[int] = field(default_factory=list)
    new_tokens: list[int] = field(default_factory=list)
    cached_tokens: list[int] = field(default_factory=list)
    prefilled_tokens: list[int] = field(default_factory=list)
    generated_per_step: list[int] = field(default_factory=list)
    prefill_s: float = 0.0  # the engine's time reading prompts, all steps together
    decode_s: float = 0.0
    tool_calls: int = 0
    tool_errors: int = 0
    commands: list[dict[str, str]] = field(default_factory=list)
    wall_s: float = 0.0
    check_s: float = 0.0

    @classmethod
    def of(
        cls, task: EvalTask, outcome: Outcome, verdict: Verdict, port: DirectoryPort
    ) -> TaskReport:
        usage = outcome.usage
        return cls(
            name=task.name,
            passed=verdict.passed,
            reason=verdict.reason,
            status=outcome.status,
            summary=outcome.summary,
            steps=outcome.steps,
            generated_tokens=outcome.generated_tokens,
            last_prompt_tokens=usage[-1].prompt_tokens if usage else 0,
            prompt_tokens=[u.prompt_tokens for u in usage],
            new_tokens=[u.new_tokens for u in usage],
            cached_tokens=[u.cached_tokens for u in usage],
            prefilled_tokens=[u.prefilled_tokens for u in usage],
            generated_per_step=[u.generated_tokens for u in usage],
            prefill_s=sum(u.prefill_s for u in usage),
            decode_s=sum(u.decode_s for u in usage),
            tool_calls=outcome.tool_calls,
            tool_errors=outcome.tool_errors,
            commands=[{"command": c, "answer": a} for c, a in port.commands],
        )

    def as_json(self) -> dict[str, Any]:
        seconds = ("wall_s", "check_s", "prefill_s", "decode_s")
        return {**vars(self), **{key: round(getattr(self, key), 2) for key in seconds}}


async def run_task(
    task: EvalTask,
    folder: Path,
    engine: Engine,
    host: EngineHost,
    limits: Limits,
    log: TextIO | None = None,
) -> TaskReport:
    """Copy the fixture into ``folder`` (empty or new), let the agent work there, judge it."""
    copy_fixture(folder)
    if task.prepare is not None:
        task.prepare(folder)
    root = Path(os.path.realpath(folder))
    index = WorkspaceIndex(root)
    index.build(workers=0)  # a handful of files: milliseconds
    port = DirectoryPort(root, index=index, log=log)
    access = Access.create([root])

    async def generate(request: GenerationRequest) -> GenerationResult:
        return await host.generate(request, Priority.AGENT, key=f"eval-agent:{task.name}")

    agent = Agent(
        Task(task.text),
        info=engine.info,
        tokenize=engine.tokenize,
        generate=generate,
        port=port,
        access=access,
        definitions=index_lookup(lambda: (index,)),
        limits=limits,
        cancelled=lambda: False,
    )
    if log is not None:
        log.write(f"\n=== {task.name} in {root}\n")
    started = time.perf_counter()
    outcome = await agent.run()
    wall = time.perf_counter() - started
    verdict = await asyncio.to_thread(task.check, root)
    report = TaskReport.of(task, outcome, verdict, port)
    report.wall_s = wall
    report.check_s = time.perf_counter() - started - wall
    if log is not None:
        result = "PASS" if verdict.passed else f"FAIL: {verdict.reason}"
        log.write(f"\n=== {task.name}: {outcome.status}; {result}\n")
        log.flush()
    return report


@contextlib.contextmanager
def interpreter_on_path() -> Iterator[None]:
    """Put the running interpreter's folder first on PATH while the tasks run: the tasks tell
    the model to run ``python``, which some systems lack (or point at another Python)."""
    old = os.environ.get("PATH")
    folder = str(Path(sys.executable).parent)
    os.environ["PATH"] = folder + (os.pathsep + old if old else "")
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("PATH", None)
        else:
            os.environ["PATH"] = old


def load(loader: Loader) -> tuple[EngineHost, Engine, float]:
    """A started host with its model loaded, and the seconds the load took."""
    started = time.perf_counter()
    host = EngineHost(loader).start()
    host.wait_loaded()
    engine = host.engine
    if engine is None:
        host.stop()
        raise ModelUnavailable(host.error or "the model did not load")
    return host, engine, time.perf_counter() - started


def evaluate(
    tasks: Sequence[EvalTask],
    loader: Loader,
    limits: Limits,
    *,
    keep: Path | None = None,
    log: TextIO | None = None,
) -> tuple[dict[str, Any], list[TaskReport]]:
    """The model's description and one report per task, in order."""
    host, engine, load_s = load(loader)
    info = engine.info
    model = {
        "path": info.path,
        "name": Path(info.path).name,
        "architecture": info.architecture,
        "context_size": info.n_ctx,
        "native_tools": uses_tools(info.chat_template),
        "load_s": round(load_s, 2),
    }

    async def run_all() -> list[TaskReport]:
        reports = []
        for task in tasks:
            if keep is not None:
                reports.append(await run_task(task, keep / task.name, engine, host, limits, log))
                continue
            with tempfile.TemporaryDirectory(prefix=f"codenook-eval-{task.name}-") as tmp:
                reports.append(await run_task(task, Path(tmp), engine, host, limits, log))
        return reports

    try:
        with interpreter_on_path():
            reports = asyncio.run(run_all())
    finally:
        host.stop()
    return model, reports
