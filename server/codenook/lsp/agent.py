"""Agent tasks: ``codenook.agentTask`` runs one, ``codenook.agentUndo`` takes one back.

The task runs as its own asyncio task so a ``$/cancelRequest`` of the command (which cancels
the handler at its next ``await``) cannot interrupt it mid-edit: the cancel is turned into
the loop's cooperative cancel and the handler waits for the loop to stop at a safe point.
The argument contract is docs/agent.md's, shared by both clients.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import OrderedDict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from codenook.agent.changes import FileChange
from codenook.agent.loop import Agent, Limits, Outcome, Task
from codenook.agent.workspace import DEFAULT_SECRET_GLOBS, Access, index_lookup
from codenook.engine.protocol import EngineError, GenerationRequest, GenerationResult
from codenook.engine.scheduler import Priority
from codenook.lsp import convert
from codenook.lsp.agent_port import EditorPort, same_text
from codenook.lsp.dispatch import FAIL, RequestFailed, request
from codenook.lsp.progress import Progress
from codenook.text.positions import PositionError
from codenook.uris import display_path, path_to_uri, uri_to_path

if TYPE_CHECKING:
    from codenook.lsp.server import CodenookServer

AGENT_TASK = "codenook.agentTask"
AGENT_UNDO = "codenook.agentUndo"
COMMANDS = (AGENT_TASK, AGENT_UNDO)
KEPT_TASKS = 20  # tasks whose undo information a session keeps
MAX_TASK_CHARS = 20_000
MAX_SELECTION_CHARS = 8_000
LOAD_WAIT_S = 600.0


class TaskArgs:
    """The argument of ``codenook.agentTask``: ``{task, uri?, version?, range?}``."""

    def __init__(self, raw: Any) -> None:
        if not isinstance(raw, dict):
            raise RequestFailed(f"{AGENT_TASK} expects one object argument {{task, uri?, range?}}")
        task = raw.get("task")
        if not isinstance(task, str) or not task.strip():
            raise RequestFailed(f"{AGENT_TASK} needs a non-empty 'task' string")
        if len(task) > MAX_TASK_CHARS:
            raise RequestFailed(f"the task is longer than {MAX_TASK_CHARS} characters")
        self.task = task.strip()
        uri, version = raw.get("uri"), raw.get("version")
        self.uri = uri if isinstance(uri, str) else None
        self.version = (
            version if isinstance(version, int) and not isinstance(version, bool) else None
        )
        self.range = raw.get("range")


class History:
    """The session's recent tasks, for undo; the oldest are forgotten first."""

    def __init__(self) -> None:
        self.tasks: OrderedDict[str, Outcome] = OrderedDict()
        self.undone: set[str] = set()

    def add(self, task_id: str, outcome: Outcome) -> None:
        self.tasks[task_id] = outcome
        while len(self.tasks) > KEPT_TASKS:
            old, _ = self.tasks.popitem(last=False)
            self.undone.discard(old)


def register(server: CodenookServer) -> None:
    history = History()

    @server.command(AGENT_TASK)
    @request("agent", empty=FAIL)
    async def agent_task(ls, *args: Any) -> dict[str, Any]:
        """Run the task to its end; see ``codenook.agent.loop``. ``ls`` stays unannotated
        (pygls resolves command annotations at run time)."""
        spec = TaskArgs(args[0] if args else None)
        return await _run_task(ls, spec, history)

    @server.command(AGENT_UNDO)
    @request("agent", empty=FAIL)
    async def agent_undo(ls, *args: Any) -> dict[str, Any]:
        """Put every file the task touched back as it was before the task."""
        raw = args[0] if args and isinstance(args[0], dict) else {}
        task_id = raw.get("taskId")
        if task_id is None and history.tasks:
            task_id = next(reversed(history.tasks))
        if not isinstance(task_id, str) or task_id not in history.tasks:
            raise RequestFailed("codenook: no agent task to undo (this session knows none)")
        if task_id in history.undone:
            raise RequestFailed("codenook: that agent task was undone already")
        result = await _undo(ls, task_id, history.tasks[task_id])
        if not result["refused"]:
            history.undone.add(task_id)
        return result


async def _loaded_engine(ls: CodenookServer, progress: Progress, cancelled: Any) -> Any:
    """The engine, once loaded: a task asked for while a big model maps in waits for it."""
    host = ls.app.host
    waited = 0.0
    while host.engine is None:
        if host.error is not None:
            raise EngineError(host.error)
        if cancelled() or waited > LOAD_WAIT_S:
            raise EngineError("the model is still loading; try the task again shortly")
        progress.report("waiting for the model to load")
        await asyncio.sleep(0.1)
        waited += 0.1
    return host.engine


async def _run_task(ls: CodenookServer, spec: TaskArgs, history: History) -> dict[str, Any]:
    settings = ls.settings.agent
    if not settings.enabled:
        raise RequestFailed("codenook: agent tasks are off (setting agent.enabled)")
    roots = [Path(p) for p in (uri_to_path(u) for u in ls.roots()) if p]
    if not roots:
        raise RequestFailed("codenook: agent tasks need a workspace folder")
    access = Access.create(
        roots,
        secret_globs=DEFAULT_SECRET_GLOBS + settings.secretFiles,
        read_secrets=settings.readSecrets,
        max_file_bytes=ls.settings.index.maxFileBytes,
        output_chars=settings.outputChars,
    )
    task_id = uuid.uuid4().hex[:12]
    stop = asyncio.Event()
    async with Progress(ls, "codenook: agent task", cancellable=True) as progress:

        def cancelled() -> bool:
            return stop.is_set() or progress.cancelled

        engine = await _loaded_engine(ls, progress, cancelled)
        port = EditorPort(ls, task_id, progress, cancelled)
        task = _task(ls, spec, port)

        async def generate(request: GenerationRequest) -> GenerationResult:
            return await ls.app.host.generate(request, Priority.AGENT, key=f"agent:{task_id}")

        agent = Agent(
            task,
            info=engine.info,
            tokenize=engine.tokenize,
            generate=generate,
            port=port,
            access=access,
            definitions=index_lookup(lambda: ls.app.workspace.indexes.values()),
            limits=Limits(
                max_steps=settings.maxSteps,
                max_tokens=settings.maxTokens,
                step_tokens=settings.stepTokens,
                time_budget_s=settings.timeBudgetS,
                command_timeout_s=settings.commandTimeoutS,
                edits=settings.edits,
                allow_commands=settings.allowCommands,
            ),
            cancelled=cancelled,
        )
        running = asyncio.ensure_future(agent.run())
        msg_id = ls.protocol.msg_id
        # $/cancelRequest stops the task like the progress's Cancel: at its next safe point,
        # answering with status "cancelled" and the changes made, so the client can undo them.
        ls.protocol.soft_cancels[msg_id] = stop.set
        try:
            outcome = await asyncio.shield(running)
        except asyncio.CancelledError:
            stop.set()  # the server is shutting down: keep what was done
            history.add(task_id, await running)
            raise
        finally:
            ls.protocol.soft_cancels.pop(msg_id, None)
        history.add(task_id, outcome)
        progress.finish_with(outcome.status)
    return _answer(ls, task_id, outcome)


def _task(ls: CodenookServer, spec: TaskArgs, port: EditorPort) -> Task:
    """The task with what the editor showed: the active file and the selection in it."""
    if spec.uri is None:
        return Task(spec.task)
    doc = ls.app.documents.find(spec.uri)
    path = display_path(spec.uri, ls.roots())
    if doc is None or doc.out_of_sync is not None or spec.range is None:
        return Task(spec.task, path)
    if spec.version is not None and spec.version != doc.version:
        return Task(spec.task, path)  # the selection was for another text: leave it out
    try:
        start, end = convert.ActionArgs(spec.uri, "", *convert.range_points(spec.range)).offsets(
            doc.lines, ls.encoding
        )
    except PositionError:
        return Task(spec.task, path)
    selection = doc.text[min(start, end) : max(start, end)][:MAX_SELECTION_CHARS]
    return Task(spec.task, path, selection or None)


def _answer(ls: CodenookServer, task_id: str, outcome: Outcome) -> dict[str, Any]:
    changes = [
        {
            "uri": path_to_uri(t.path),
            "path": t.display,
            "created": t.original is None,
            "original": t.original,
        }
        for t in outcome.touched.values()
    ]
    usage = [
        {
            "promptTokens": u.prompt_tokens,
            "newTokens": u.new_tokens,
            "prefilledTokens": u.prefilled_tokens,
            "generatedTokens": u.generated_tokens,
        }
        for u in outcome.usage
    ]
    files = len(changes)
    steps = f"{outcome.steps} step{'s' if outcome.steps != 1 else ''}"
    message = f"{outcome.summary} ({steps}, {files} file{'s' if files != 1 else ''} changed)"
    return {
        "taskId": task_id,
        "status": outcome.status,
        "summary": outcome.summary,
        "message": message,
        "steps": outcome.steps,
        "changes": changes,
        "usage": usage,
    }


async def _undo(ls: CodenookServer, task_id: str, outcome: Outcome) -> dict[str, Any]:
    progress = Progress(ls, "codenook: undo agent task")
    port = EditorPort(ls, task_id, progress, lambda: False)
    restored: list[str] = []
    refused: list[dict[str, str]] = []
    for touched in outcome.touched.values():
        uri = port.open_uri(touched.path) or path_to_uri(touched.path)
        current = port.current_text(touched.path)
        problem: str | None
        if current is None or not same_text(current, touched.current, touched.original is None):
            problem = "changed since the task" if current is not None else "missing"
        elif touched.original is None:
            problem = await port.delete(touched.path, touched.display)
        else:
            change = FileChange(touched.path, touched.display, current, touched.original)
            problem = await port.apply(change)
        if problem is None:
            restored.append(uri)
        else:
            refused.append({"uri": uri, "path": touched.display, "reason": problem})
    names = ", ".join(f"{r['path']} ({r['reason']})" for r in refused)
    message = f"restored {len(restored)} file(s)" + (f"; refused: {names}" if refused else "")
    return {"restored": restored, "refused": refused, "message": message}
