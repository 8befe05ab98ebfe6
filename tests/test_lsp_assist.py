"""Code actions, streamed edits and hover, end to end over stdio with the real SmolLM2.

The test client behaves like an editor (``lsp_editor.Editor``): it applies `workspace/applyEdit`
to its own copy of the document (refusing stale versions) and reports each change back with
`didChange`. A 135M model writes poor code, so assertions hold whatever it says: what reaches
the document is exactly what the server says, streaming happens line by line, cancel and typing
are safe.
"""

from __future__ import annotations

import ast
import asyncio
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import pytest_lsp
from lsp_editor import Editor
from lsprotocol import types
from pytest_lsp import ClientServerConfig, LanguageClient, client_capabilities

SERVER = [sys.executable, "-m", "codenook", "serve"]
ROOT = Path(__file__).parent / "workspace"
SETTINGS = {
    "completion": {"speculative": False},
    "actions": {"maxTokens": 160},
    "hover": {"timeBudgetMs": 60000, "maxTokens": 40},
}
CODE = """import math


def distance(a, b):
    dx = a[0] - b[0]
    dy = a[1] - b[1]
    total = dx * dx + dy * dy
    return math.sqrt(total)


def area(r):
    return math.pi * r * r
"""

pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest_lsp.fixture(config=ClientServerConfig(server_command=SERVER), scope="module")
async def client(lsp_client: LanguageClient):
    editor = Editor(lsp_client, ROOT)
    lsp_client.editor = editor

    @lsp_client.feature(types.WORKSPACE_APPLY_EDIT)
    def apply_edit(ls: LanguageClient, params: types.ApplyWorkspaceEditParams):
        return editor.apply(params)

    await lsp_client.initialize_session(
        types.InitializeParams(
            capabilities=client_capabilities("visual-studio-code"),
            root_uri=ROOT.as_uri(),
            initialization_options=SETTINGS,
        )
    )
    for _ in range(400):
        stats = await lsp_client.protocol.send_request_async("codenook/stats", {})
        if stats.state == "idle":
            break
        await asyncio.sleep(0.05)
    yield
    await lsp_client.shutdown_session()


def _function_range(text: str, name: str) -> types.Range:
    line = text.split("\n").index(next(ln for ln in text.split("\n") if f"def {name}" in ln))
    return types.Range(types.Position(line + 1, 4), types.Position(line + 1, 4))


@dataclass
class Action:
    title: str
    command: str
    arguments: list[dict[str, Any]]


async def _actions(client: LanguageClient, uri: str, rng: types.Range, diagnostics=()):
    result = await client.text_document_code_action_async(
        types.CodeActionParams(
            text_document=types.TextDocumentIdentifier(uri),
            range=rng,
            context=types.CodeActionContext(diagnostics=list(diagnostics)),
        )
    )
    # pygls's client turns `(Command | CodeAction)[]` into Commands whose `command` field holds
    # the CodeAction's command as a Python repr; editors parse the JSON properly.
    actions = []
    for item in result:
        inner = ast.literal_eval(item.command) if isinstance(item, types.Command) else None
        if inner is None:
            inner = {"command": item.command.command, "arguments": item.command.arguments}
        actions.append(Action(item.title, inner["command"], inner["arguments"]))
    return actions


@dataclass
class Result:
    status: str
    text: str
    message: str
    edits: int


async def _run(client: LanguageClient, action: Action, **extra: Any) -> Result:
    args = dict(action.arguments[0])
    args.update(extra)
    raw = await client.workspace_execute_command_async(
        types.ExecuteCommandParams(command=action.command, arguments=[args])
    )
    return Result(**(raw if isinstance(raw, dict) else raw._asdict()))


async def test_actions_are_listed_without_a_model_call(client: LanguageClient):
    uri = client.editor.open("list.py", CODE)
    before = await client.protocol.send_request_async("codenook/stats", {})
    problem = types.Diagnostic(
        range=_function_range(CODE, "distance"),
        message="Function is missing a docstring",
        source="lint",
    )
    actions = await _actions(client, uri, _function_range(CODE, "distance"), [problem])
    titles = [a.title for a in actions]
    assert "Fix: Function is missing a docstring" in titles
    for title in (
        "Rewrite / simplify",
        "Extract function",
        "Add docstring",
        "Add type annotations",
        "Edit with instruction…",
    ):
        assert f"codenook: {title}" in titles
    after = await client.protocol.send_request_async("codenook/stats", {})
    assert after.counters.requests == before.counters.requests
    assert all(a.arguments[0]["version"] == 1 for a in actions)


async def test_streamed_action_lands_exactly_what_the_server_reports(client: LanguageClient):
    uri = client.editor.open("rewrite.py", CODE)
    actions = await _actions(client, uri, _function_range(CODE, "distance"))
    rewrite = next(a for a in actions if a.title == "codenook: Rewrite / simplify")
    client.editor.edits.clear()
    result = await _run(client, rewrite)
    status = result.status
    final_doc = client.editor.docs[uri][1]
    start = CODE.index("def distance")
    end = CODE.index("    return math.sqrt(total)") + len("    return math.sqrt(total)")
    assert status in ("applied", "rejected"), result
    if status == "applied":
        assert final_doc == CODE[:start] + result.text + CODE[end:]
        assert len(client.editor.edits) >= 2, "streamed line by line"
    else:
        assert final_doc == CODE  # the original is back
        assert result.message
    # Every edit named the version it was computed for, in sequence.
    versions = [e.edit.document_changes[0].text_document.version for e in client.editor.edits]
    assert versions == list(range(1, 1 + len(versions)))


async def test_typing_during_streaming_stops_it_and_keeps_the_users_text(
    client: LanguageClient,
):
    uri = client.editor.open("typing.py", CODE)
    actions = await _actions(client, uri, _function_range(CODE, "distance"))
    instruct = next(a for a in actions if a.title == "codenook: Edit with instruction…")
    editor = client.editor

    def user_types(_params: Any) -> None:
        editor.on_edit = None
        editor.change(uri, 0, 0, "# typed by the user\n")

    editor.on_edit = user_types
    editor.edits.clear()
    result = await _run(client, instruct, instruction="Add a comment above every line.")
    editor.on_edit = None
    if not editor.edits:
        pytest.fail(f"the model streamed nothing to interrupt: {result}")
    assert result.status == "stopped"
    text = editor.docs[uri][1]
    assert text.startswith("# typed by the user\n")
    # Nothing after the interruption: exactly one edit from the server.
    assert len(editor.edits) == 1


async def test_cancel_restores_the_original(client: LanguageClient):
    uri = client.editor.open("cancel.py", CODE)
    actions = await _actions(client, uri, _function_range(CODE, "distance"))
    instruct = next(a for a in actions if a.title == "codenook: Edit with instruction…")
    editor = client.editor

    def cancel_progress(_params: Any) -> None:
        editor.on_edit = None
        for token in list(client.progress_reports):
            client.protocol.notify(
                types.WINDOW_WORK_DONE_PROGRESS_CANCEL,
                types.WorkDoneProgressCancelParams(token=token),
            )

    client.progress_reports.clear()
    editor.on_edit = cancel_progress
    editor.edits.clear()
    result = await _run(
        client, instruct, instruction="Rewrite this with a long comment explaining every line."
    )
    editor.on_edit = None
    if not editor.edits:
        pytest.fail(f"the model streamed nothing to cancel: {result}")
    if result.status == "cancelled":
        assert editor.docs[uri][1] == CODE
    else:
        # The reply was complete before the cancel arrived: then it settled normally.
        assert result.status in ("applied", "rejected")


async def test_hover_explains_with_the_signature_and_is_cached(client: LanguageClient):
    uri = client.editor.open("hover.py", CODE)
    use = CODE.split("\n").index("def area(r):")
    params = types.HoverParams(
        text_document=types.TextDocumentIdentifier(uri),
        position=types.Position(use, 5),
    )
    first = await client.text_document_hover_async(params)
    assert first is not None and first.contents.kind == types.MarkupKind.Markdown
    assert first.contents.value.startswith("```python\ndef area(r):\n```")
    stats = await client.protocol.send_request_async("codenook/stats", {})
    assert stats.lastHover.cached is False
    second = await client.text_document_hover_async(params)
    assert second.contents.value == first.contents.value
    stats = await client.protocol.send_request_async("codenook/stats", {})
    if first.contents.value.count("\n") > 2:  # the model explained: the second is cached
        assert stats.lastHover.cached is True
