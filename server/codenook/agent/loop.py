"""One agent task: ask the model, run the tools it calls, feed the results back, repeat.

The loop knows neither LSP nor llama.cpp. It asks the engine through ``generate`` (the LSP
layer passes the shared engine at the agent's priority) and reaches the files through a
``Port``: the editor applies edits through ``workspace/applyEdit`` and asks the user, or a
plain directory does for ``codenook eval-agent``. Everything the model does goes through the
tools' checks, so nothing it writes (however malformed) can end the task with an exception:
a bad call becomes a tool error the model reads on its next step.

Cancellation is cooperative: ``cancelled()`` is polled while the model generates (the engine
job is cancelled within a token) and between tool calls, never in the middle of an edit, so
a cancelled task leaves each file either untouched or fully edited, and recorded for undo.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Protocol

from codenook.agent import commands, workspace
from codenook.agent.changes import FileChange
from codenook.agent.prompts import render, system_message, task_message, tool_result, uses_tools
from codenook.agent.toolcalls import (
    CallDone,
    CallFailed,
    CallStarted,
    MalformedCall,
    Text,
    ToolCall,
    ToolCallParser,
)
from codenook.agent.toolset import TOOLS, check_arguments, describe_call
from codenook.agent.workspace import Access, ToolError
from codenook.assist.chat import Message, TemplateError
from codenook.engine.protocol import EngineError, GenerationRequest, GenerationResult, ModelInfo

Status = Literal["done", "cancelled", "failed", "budget"]
# Transcript entry kinds, shared with both clients (docs/agent.md).
Kind = Literal["task", "model", "call", "result", "error", "status", "summary"]
RUN, ALWAYS, DENY = "Run", "Always for this task", "Deny"
APPLY, APPLY_ALL, SKIP = "Apply", "Apply all for this task", "Skip"
SHOWN_RESULT_CHARS = 600  # of a tool result in the transcript (the model gets it all)
POLL_S = 0.05


class Port(Protocol):
    """Where the task's files live and who the user is."""

    def text_of(self, path: Path) -> str | None:
        """The unsaved text of an open file, None when it is not open (read the disk)."""

    def open_texts(self) -> dict[Path, str]:
        """Every open file's unsaved text by real path: one snapshot for a whole search,
        which runs off the event loop where the buffers live."""

    async def apply(self, change: FileChange) -> str | None:
        """Make the change if the file still holds ``change.before``; None, or why not."""

    async def ask(self, message: str, choices: Sequence[str]) -> str | None:
        """The user's choice, None when they dismissed the question."""

    def transcript(self, kind: Kind, text: str) -> None: ...

    def step(self, text: str) -> None:
        """What the task is doing now, for the progress shown to the user."""


@dataclass(frozen=True)
class Task:
    text: str
    path: str | None = None  # the active file, as the model sees paths
    selection: str | None = None


@dataclass(frozen=True)
class Limits:
    max_steps: int = 25
    max_tokens: int = 16384
    step_tokens: int = 1024
    time_budget_s: float = 900.0
    command_timeout_s: float = 120.0
    edits: str = "apply"  # or "confirm"
    allow_commands: tuple[str, ...] = ()


@dataclass(frozen=True)
class StepUsage:
    """What one model reply cost: ``new_tokens`` is how much the prompt grew since the last
    step (the previous reply, as the template renders it, included: the engine never reuses
    state computed from generated tokens), ``prefilled_tokens`` what the engine actually had
    to read; equal when the cache works."""

    prompt_tokens: int
    new_tokens: int
    cached_tokens: int
    prefilled_tokens: int
    generated_tokens: int
    prefill_s: float
    decode_s: float


@dataclass
class Touched:
    """A file the task changed: its text before the task (None: created) and after."""

    path: Path
    display: str
    original: str | None
    current: str


@dataclass
class Outcome:
    status: Status
    summary: str
    steps: int = 0
    usage: list[StepUsage] = field(default_factory=list)
    touched: dict[Path, Touched] = field(default_factory=dict)
    tool_calls: int = 0
    tool_errors: int = 0

    @property
    def generated_tokens(self) -> int:
        return sum(u.generated_tokens for u in self.usage)


Generate = Callable[[GenerationRequest], Awaitable[GenerationResult]]
Definitions = Callable[[str], Sequence[tuple[Path, int, str]]]


class Agent:
    def __init__(
        self,
        task: Task,
        *,
        info: ModelInfo,
        tokenize: Callable[[str, bool], list[int]],
        generate: Generate,
        port: Port,
        access: Access,
        definitions: Definitions,
        limits: Limits,
        cancelled: Callable[[], bool],
    ) -> None:
        self.task = task
        self._info = info
        self._tokenize = tokenize
        self._generate = generate
        self._port = port
        self._access = access
        self._definitions = definitions
        self._limits = limits
        self._cancelled = cancelled
        self._native = uses_tools(info.chat_template)
        roots = [r.name for r in access.roots]
        system = system_message(roots, TOOLS, self._native)
        self.messages: list[Message] = [
            Message("system", system),
            Message("user", task_message(task.text, task.path, task.selection)),
        ]
        self.outcome = Outcome("done", "")
        self._run_always = False
        self._apply_all = limits.edits != "confirm"
        self._started = 0.0
        self._prompt_tokens: list[int] = []

    # -- the loop ----------------------------------------------------------------------------

    async def run(self) -> Outcome:
        self._started = time.monotonic()
        self._port.transcript("task", self.task.text)
        outcome = self.outcome
        try:
            await self._loop()
        except _Overflow as exc:
            self._end("budget", self._summary_of_changes(str(exc)))
        except EngineError as exc:
            self._end("failed", f"the model failed: {exc}")
        except TemplateError as exc:
            self._end("failed", str(exc))
        if self._cancelled() and outcome.status == "done" and not outcome.summary:
            self._end("cancelled", "cancelled")
        self._port.transcript("summary", outcome.summary)
        return outcome

    def _end(self, status: Status, summary: str) -> None:
        self.outcome.status = status
        self.outcome.summary = summary

    def _over_budget(self) -> str | None:
        limits, outcome = self._limits, self.outcome
        if outcome.steps >= limits.max_steps:
            return f"stopped after agent.maxSteps ({limits.max_steps}) steps"
        if outcome.generated_tokens >= limits.max_tokens:
            return f"stopped after agent.maxTokens ({limits.max_tokens}) generated tokens"
        if time.monotonic() - self._started >= limits.time_budget_s:
            return f"stopped after agent.timeBudgetS ({limits.time_budget_s:g} s)"
        return None

    async def _loop(self) -> None:
        while True:
            if self._cancelled():
                self._end("cancelled", self._summary_of_changes("cancelled"))
                return
            budget = self._over_budget()
            if budget is not None:
                self._end("budget", self._summary_of_changes(budget))
                return
            reply, calls = await self._ask_model()
            if self._cancelled():
                self._end("cancelled", self._summary_of_changes("cancelled"))
                return
            if not calls:
                # A reply without a tool call is the model's last word.
                self._end("done", reply.strip() or self._summary_of_changes("the model stopped"))
                return
            results: list[str] = []
            for call in calls:
                if self._cancelled():
                    break
                result, finished = await self._run_call(call)
                results.append(result)
                if finished is not None:
                    self._end("done", finished)
                    return
            for result in results:
                self.messages.append(tool_result(result, self._native))

    async def _ask_model(self) -> tuple[str, list[ToolCall | MalformedCall]]:
        """One model reply, streamed to the transcript, its calls parsed as they arrive."""
        prompt = render(self._info.chat_template, self.messages, TOOLS, native=self._native)
        tokens = sum(len(self._tokenize(text, special)) for text, special in prompt)
        limits = self._limits
        step_tokens = min(limits.step_tokens, limits.max_tokens - self.outcome.generated_tokens)
        if tokens + step_tokens > self._info.n_ctx:
            raise _Overflow(tokens, self._info.n_ctx)
        parser = ToolCallParser()
        calls: list[ToolCall | MalformedCall] = []
        step = self.outcome.steps + 1

        def on_text(piece: str) -> None:
            for event in parser.feed(piece):
                self._show(event, calls, step)

        self._port.step(f"step {step}: thinking")
        remaining = max(1.0, limits.time_budget_s - (time.monotonic() - self._started))
        request = GenerationRequest(
            prompt,
            max_tokens=max(1, step_tokens),
            time_budget_s=remaining,
            on_text=on_text,
            checkpoint_end=True,
        )
        result = await self._generate_cancellable(request)
        for event in parser.close():
            self._show(event, calls, step)
        previous = self._prompt_tokens[-1] if self._prompt_tokens else 0
        self._prompt_tokens.append(result.prompt_tokens)
        self.outcome.steps += 1
        self.outcome.usage.append(
            StepUsage(
                prompt_tokens=result.prompt_tokens,
                new_tokens=result.prompt_tokens - previous,
                cached_tokens=result.cached_tokens,
                prefilled_tokens=result.prefilled_tokens,
                generated_tokens=result.generated_tokens,
                prefill_s=result.prefill_s,
                decode_s=result.decode_s,
            )
        )
        self.messages.append(Message("assistant", result.text))
        return result.text, calls

    async def _generate_cancellable(self, request: GenerationRequest) -> GenerationResult:
        """The engine's answer; a cancel cancels the engine job (within one token)."""
        job = asyncio.ensure_future(self._generate(request))
        while not job.done():
            if self._cancelled():
                job.cancel()
                break
            await asyncio.wait({job}, timeout=POLL_S)
        try:
            return await job
        except asyncio.CancelledError:
            if not self._cancelled():
                raise
            return GenerationResult("", "cancelled")

    def _show(self, event: object, calls: list[ToolCall | MalformedCall], step: int) -> None:
        if isinstance(event, Text):
            self._port.transcript("model", event.text)
        elif isinstance(event, CallStarted):
            self._port.step(f"step {step}: {event.name}")
        elif isinstance(event, CallDone):
            calls.append(event.call)
        elif isinstance(event, CallFailed):
            calls.append(event.error)

    # -- tools -------------------------------------------------------------------------------

    async def _run_call(self, call: ToolCall | MalformedCall) -> tuple[str, str | None]:
        """The tool's result text for the model, and the summary when the call was finish."""
        self.outcome.tool_calls += 1
        if isinstance(call, MalformedCall):
            return self._error(f"malformed tool call: {call.message}"), None
        try:
            args = check_arguments(call.name, call.arguments)
        except ToolError as exc:
            return self._error(str(exc)), None
        if call.name == "finish":  # its summary is the transcript's last entry
            return "finished", str(args["summary"]).strip() or "finished"
        self._port.transcript("call", describe_call(call.name, args))
        try:
            result = await self._tool(call.name, args)
        except ToolError as exc:
            return self._error(str(exc)), None
        self._port.transcript("result", _shorten(result))
        return result, None

    def _error(self, message: str) -> str:
        self.outcome.tool_errors += 1
        self._port.transcript("error", message)
        return f"error: {message}"

    async def _tool(self, name: str, args: dict[str, str | int | None]) -> str:
        access, port = self._access, self._port
        text = _text(args)
        number = _number(args)
        if name == "list_files":
            port.step(f"listing {text('path') or 'files'}")
            return workspace.list_files(access, text("path") or ".", text("pattern"))
        if name == "read_file":
            port.step(f"reading {text('path')}")
            return workspace.read_file(
                access, port.text_of, text("path") or "", number("start_line"), number("end_line")
            )
        if name == "search":
            port.step(f"searching for {text('pattern')}")
            return await asyncio.to_thread(
                workspace.search,
                access,
                port.open_texts().get,
                text("pattern") or "",
                text("path"),
                text("glob"),
            )
        if name == "find_definition":
            port.step(f"finding {text('name')}")
            return workspace.find_definition(access, self._definitions, text("name") or "")
        if name == "edit_file":
            change = workspace.plan_edit(
                access,
                port.text_of,
                text("path") or "",
                text("old_text") or "",
                text("new_text") or "",
            )
            return await self._apply(change)
        if name == "create_file":
            change = workspace.plan_create(
                access, port.text_of, text("path") or "", text("content") or ""
            )
            return await self._apply(change)
        if name == "run_command":
            return await self._run_command(text("command") or "")
        raise ToolError(f"there is no tool named {name!r}")  # check_arguments knows them all

    async def _apply(self, change: FileChange) -> str:
        verb = "creating" if change.created else "editing"
        self._port.step(f"{verb} {change.display}")
        if not self._apply_all:
            self._port.step(f"waiting for your OK to edit {change.display}")
            answer = await self._port.ask(
                f"codenook agent wants to {'create' if change.created else 'edit'}"
                f" {change.display}.",
                (APPLY, APPLY_ALL, SKIP),
            )
            if answer == APPLY_ALL:
                self._apply_all = True
            elif answer != APPLY:
                raise ToolError(f"the user declined the change to {change.display}")
        problem = await self._port.apply(change)
        if problem is not None:
            raise ToolError(f"the change to {change.display} was not applied: {problem}")
        touched = self.outcome.touched.get(change.path)
        if touched is None:
            self.outcome.touched[change.path] = Touched(
                change.path, change.display, change.before, change.after
            )
        else:
            touched.current = change.after
        files = len(self.outcome.touched)
        self._port.step(f"edited {files} file{'s' if files != 1 else ''}")
        return f"{'created' if change.created else 'edited'} {change.display}"

    async def _run_command(self, command: str) -> str:
        if not command.strip():
            raise ToolError("run_command needs a command")
        allowed = self._run_always or commands.command_allowed(command, self._limits.allow_commands)
        if not allowed:
            self._port.step(f"waiting for your OK to run `{command}`")
            answer = await self._port.ask(
                f"codenook agent wants to run `{command}` in {self._access.roots[0]}."
                " It runs with your rights.",
                (RUN, ALWAYS, DENY),
            )
            if answer == ALWAYS:
                self._run_always = True
            elif answer != RUN:
                raise ToolError(f"the user did not allow running `{command}`")
        self._port.step(f"running `{command}`")
        return await commands.run_command(
            command,
            self._access.roots[0],
            self._limits.command_timeout_s,
            self._access.output_chars,
            self._cancelled,
        )

    def _summary_of_changes(self, why: str) -> str:
        names = [t.display for t in self.outcome.touched.values()]
        changed = f"; changed {', '.join(names)}" if names else "; nothing changed"
        return why + changed


class _Overflow(EngineError):
    def __init__(self, tokens: int, n_ctx: int) -> None:
        super().__init__(
            f"the conversation ({tokens} tokens) no longer fits model.contextSize {n_ctx}"
        )


def _text(args: dict[str, str | int | None]) -> Callable[[str], str | None]:
    def get(key: str) -> str | None:
        value = args.get(key)
        return None if value is None else str(value)

    return get


def _number(args: dict[str, str | int | None]) -> Callable[[str], int | None]:
    def get(key: str) -> int | None:
        value = args.get(key)
        return value if isinstance(value, int) else None

    return get


def _shorten(text: str) -> str:
    if len(text) <= SHOWN_RESULT_CHARS:
        return text
    return text[:SHOWN_RESULT_CHARS] + f"… ({len(text) - SHOWN_RESULT_CHARS} more characters)"
