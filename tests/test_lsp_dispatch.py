"""Every feature's failure paths, through the real LSP layer over stdio with a scripted engine.

Each request must be answered exactly once with the documented result — an empty answer for
"nothing to offer", an error for a command that did nothing — and every progress the server
begins must end. ``serve_fake.py`` runs the real ``make_server`` with the engine injected.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

import pytest
import pytest_lsp
from lsp_editor import Editor
from lsprotocol import types
from pygls.exceptions import JsonRpcException
from pytest_lsp import ClientServerConfig, LanguageClient, client_capabilities

ROOT = Path(__file__).parent / "workspace"
SERVE_FAKE = [sys.executable, str(Path(__file__).parent / "serve_fake.py")]
CODE = "def area(r):\n    return 3.14 * r * r\n\n\nx = area(2)\n"
REPLY = "```python\ndef area(r):\n    '''Area of a circle.'''\n    return 3.14 * r * r\n```\n"

pytestmark = pytest.mark.asyncio(loop_scope="module")


def _config(**script: Any) -> ClientServerConfig:
    return ClientServerConfig(
        server_command=SERVE_FAKE, server_env={"CODENOOK_FAKE": json.dumps(script)}
    )


async def _start(client: LanguageClient, *, problems: bool = False, ready: bool = True) -> Editor:
    editor = Editor(client, ROOT)
    client.editor = editor  # type: ignore[attr-defined]

    @client.feature(types.WORKSPACE_APPLY_EDIT)
    def apply_edit(ls: LanguageClient, params: types.ApplyWorkspaceEditParams) -> Any:
        return editor.apply(params)

    @client.feature(types.CLIENT_REGISTER_CAPABILITY)
    def register(ls: LanguageClient, params: types.RegistrationParams) -> None:
        return None

    capabilities = client_capabilities("visual-studio-code")
    if problems:
        capabilities.experimental = {"codenook": {"problems": True}}
    client.problems = []  # type: ignore[attr-defined]

    @client.feature("codenook/problem")
    def problem(ls: LanguageClient, params: Any) -> None:
        client.problems.append(params)  # type: ignore[attr-defined]

    await client.initialize_session(
        types.InitializeParams(
            capabilities=capabilities,
            root_uri=ROOT.as_uri(),
            initialization_options={
                "completion": {"speculative": False},
                "index": {"enabled": False},
            },
        )
    )
    for _ in range(200 if ready else 0):
        if (await _stats(client)).state == "idle":
            break
        await asyncio.sleep(0.05)
    return editor


async def _stats(client: LanguageClient) -> Any:
    return await client.protocol.send_request_async("codenook/stats", {})


@pytest_lsp.fixture(config=_config(reply=REPLY, step_s=0.01), scope="module")
async def ok(lsp_client: LanguageClient):
    await _start(lsp_client)
    yield lsp_client
    await lsp_client.shutdown_session()


@pytest_lsp.fixture(config=_config(fail="generate"), scope="module")
async def failing(lsp_client: LanguageClient):
    await _start(lsp_client, problems=True)
    yield lsp_client
    await lsp_client.shutdown_session()


@pytest_lsp.fixture(config=_config(load_s=120), scope="module")
async def loading(lsp_client: LanguageClient):
    await _start(lsp_client, ready=False)
    yield lsp_client
    await lsp_client.shutdown_session()


@pytest_lsp.fixture(config=_config(template="{% if %}broken"), scope="module")
async def broken_template(lsp_client: LanguageClient):
    await _start(lsp_client)
    yield lsp_client
    await lsp_client.shutdown_session()


def _inline(client: LanguageClient, uri: str, line: int, character: int) -> Any:
    return client.text_document_inline_completion_async(
        types.InlineCompletionParams(
            text_document=types.TextDocumentIdentifier(uri),
            position=types.Position(line, character),
            context=types.InlineCompletionContext(
                trigger_kind=types.InlineCompletionTriggerKind.Invoked
            ),
        )
    )


def _hover(client: LanguageClient, uri: str, line: int, character: int) -> Any:
    return client.text_document_hover_async(
        types.HoverParams(types.TextDocumentIdentifier(uri), types.Position(line, character))
    )


def _run_action(client: LanguageClient, args: Any) -> Any:
    return client.workspace_execute_command_async(
        types.ExecuteCommandParams(command="codenook.runAction", arguments=[args])
    )


def _action_args(editor: Editor, uri: str, **extra: Any) -> dict[str, Any]:
    rng = {"start": {"line": 0, "character": 4}, "end": {"line": 0, "character": 4}}
    return {
        "uri": uri,
        "version": editor.docs[uri][0],
        "range": rng,
        "action": "docstring",
        **extra,
    }


def _progress_ended(client: LanguageClient) -> None:
    """Every progress that began has ended, and ended last."""
    for token, reports in client.progress_reports.items():
        kinds = [type(r).__name__ for r in reports]
        if "WorkDoneProgressBegin" in kinds:
            assert kinds[-1] == "WorkDoneProgressEnd", (token, kinds)


async def _eventually(check: Any, seconds: float = 10.0) -> None:
    for _ in range(int(seconds / 0.05)):
        if check():
            return
        await asyncio.sleep(0.05)
    assert check()


# -- a working engine --------------------------------------------------------------------------


async def test_unknown_document_and_impossible_positions_answer_empty(ok: LanguageClient) -> None:
    missing = (ROOT / "never-opened.py").as_uri()
    assert list((await _inline(ok, missing, 0, 0)).items) == []
    assert await _hover(ok, missing, 0, 0) is None
    uri = ok.editor.open("positions.py", CODE)
    assert list((await _inline(ok, uri, 99, 0)).items) == []
    assert await _hover(ok, uri, 42, 1) is None
    with pytest.raises(JsonRpcException) as failed:
        await _run_action(
            ok,
            _action_args(
                ok.editor,
                uri,
                range={"start": {"line": 50, "character": 0}, "end": {"line": 50, "character": 0}},
            ),
        )
    assert failed.value.code == -32803
    with pytest.raises(JsonRpcException) as bad:
        await _run_action(ok, {"uri": uri})
    assert bad.value.code == -32803 and "action" in str(bad.value)
    # The server keeps serving: a real completion still comes back.
    assert (await _inline(ok, uri, 4, 9)).items
    _progress_ended(ok)


async def test_superseded_completion_answers_empty(ok: LanguageClient) -> None:
    uri = ok.editor.open("superseded.py", CODE)
    first = asyncio.ensure_future(_inline(ok, uri, 4, 9))
    await asyncio.sleep(0.05)
    second = await _inline(ok, uri, 4, 9)
    assert list((await first).items) == []
    assert second.items


async def _cancelled(client: LanguageClient, method: str, params: Any, after: Any) -> None:
    """Send a request, then ``$/cancelRequest`` once ``after()`` holds; the server must answer
    RequestCancelled (a pygls client cannot take an answer for a request it cancelled itself,
    so the cancel goes out as a bare notification)."""
    msg_id = f"cancel-{method}-{id(params)}"
    future = client.protocol.send_request(method, params, msg_id=msg_id)
    await _eventually(after)
    client.protocol.notify(types.CANCEL_REQUEST, types.CancelParams(id=msg_id))
    with pytest.raises(JsonRpcException) as cancelled:
        await asyncio.wrap_future(future)
    assert cancelled.value.code == -32800


async def test_cancelled_completion_is_answered_as_cancelled(ok: LanguageClient) -> None:
    uri = ok.editor.open("cancelled.py", CODE)
    params = types.InlineCompletionParams(
        text_document=types.TextDocumentIdentifier(uri),
        position=types.Position(4, 9),
        context=types.InlineCompletionContext(
            trigger_kind=types.InlineCompletionTriggerKind.Invoked
        ),
    )
    started = asyncio.get_running_loop().time()
    await _cancelled(
        ok,
        types.TEXT_DOCUMENT_INLINE_COMPLETION,
        params,
        lambda: asyncio.get_running_loop().time() > started + 0.1,
    )
    assert (await _inline(ok, uri, 4, 9)).items  # the engine is free again


async def test_stale_action_is_content_modified(ok: LanguageClient) -> None:
    uri = ok.editor.open("stale.py", CODE)
    args = _action_args(ok.editor, uri)
    ok.editor.change(uri, 0, 0, "# typed\n")
    with pytest.raises(JsonRpcException) as stale:
        await _run_action(ok, args)
    assert stale.value.code == -32801
    assert ok.editor.docs[uri][1] == "# typed\n" + CODE


async def test_action_streams_and_applies(ok: LanguageClient) -> None:
    uri = ok.editor.open("applied.py", CODE)
    result = await _run_action(ok, _action_args(ok.editor, uri))
    assert result["status"] == "applied"
    assert "'''Area of a circle.'''" in ok.editor.docs[uri][1]
    _progress_ended(ok)


async def test_cancel_request_on_an_action_restores_the_original(ok: LanguageClient) -> None:
    uri = ok.editor.open("cancel-action.py", CODE)
    edits = len(ok.editor.edits)
    params = types.ExecuteCommandParams(
        command="codenook.runAction", arguments=[_action_args(ok.editor, uri)]
    )
    # Cancel once streaming has begun: the buffer already holds part of the reply.
    await _cancelled(
        ok, types.WORKSPACE_EXECUTE_COMMAND, params, lambda: len(ok.editor.edits) > edits
    )
    await _eventually(lambda: ok.editor.docs[uri][1] == CODE)
    settled = len(ok.editor.edits)
    await asyncio.sleep(0.5)
    assert len(ok.editor.edits) == settled, "edits kept streaming after the cancel"
    assert ok.editor.docs[uri][1] == CODE
    await _eventually(lambda: _all_ended(ok))


async def test_a_model_reload_keeps_memories_and_counters(ok: LanguageClient) -> None:
    """A reload swaps the engine inside the host: the session's suggestion memory and
    counters stay, so typing through the shown suggestion needs no model call after it."""
    uri = ok.editor.open("reload.py", CODE)
    shown = (await _inline(ok, uri, 4, 9)).items[0].insert_text
    before = await _stats(ok)
    ok.workspace_did_change_configuration(
        types.DidChangeConfigurationParams(settings={"codenook": {"model": {"batchSize": 256}}})
    )
    for _ in range(200):
        after = await _stats(ok)
        if after.modelReloads == 1 and after.state == "idle":
            break
        await asyncio.sleep(0.05)
    assert after.modelReloads == 1 and after.state == "idle"
    assert after.completionCounters == before.completionCounters
    cursor = CODE.index("area(2)") + len("area(")
    ok.editor.change(uri, cursor, cursor, shown[0])
    rest = (await _inline(ok, uri, 4, 10)).items[0].insert_text
    assert rest == shown[1:]
    stats = await _stats(ok)
    assert stats.completionCounters.typedThrough == before.completionCounters.typedThrough + 1
    assert stats.completionCounters.requests == before.completionCounters.requests + 1


def _all_ended(client: LanguageClient) -> bool:
    try:
        _progress_ended(client)
    except AssertionError:
        return False
    return True


# -- an engine that fails ----------------------------------------------------------------------


async def test_engine_error_is_told_once_as_structured_data(failing: LanguageClient) -> None:
    uri = failing.editor.open("failing.py", CODE)
    for _ in range(3):
        assert list((await _inline(failing, uri, 4, 9)).items) == []
    told = [p for p in failing.problems if p.code == "completion-failed"]
    assert len(told) == 1 and "scripted engine failed" in told[0].message
    assert failing.messages == []  # structured problems replace window/showMessage
    hover = await _hover(failing, uri, 4, 5)
    assert hover is not None and "def area(r)" in hover.contents.value
    with pytest.raises(JsonRpcException) as failed:
        await _run_action(failing, _action_args(failing.editor, uri))
    assert failed.value.code == -32803 and "scripted engine failed" in str(failed.value)
    assert failing.editor.docs[uri][1] == CODE
    await _eventually(lambda: _all_ended(failing))


# -- a model still loading ---------------------------------------------------------------------


async def test_not_ready_answers_empty_and_actions_fail_clearly(loading: LanguageClient) -> None:
    assert (await _stats(loading)).state == "loading"
    uri = loading.editor.open("loading.py", CODE)
    assert list((await _inline(loading, uri, 4, 9)).items) == []
    hover = await _hover(loading, uri, 4, 5)
    assert hover is not None and "def area(r)" in hover.contents.value
    with pytest.raises(JsonRpcException) as failed:
        await _run_action(loading, _action_args(loading.editor, uri))
    assert failed.value.code == -32803 and "loading" in str(failed.value)
    assert [m for m in loading.messages if m.type == types.MessageType.Error] == []


# -- a model whose chat template is broken -----------------------------------------------------


async def test_hover_with_an_action_error_answers(broken_template: LanguageClient) -> None:
    uri = broken_template.editor.open("template.py", CODE)
    hover = await _hover(broken_template, uri, 4, 5)
    assert hover is not None and "def area(r)" in hover.contents.value
    with pytest.raises(JsonRpcException) as failed:
        await _run_action(broken_template, _action_args(broken_template.editor, uri))
    assert failed.value.code == -32803 and "template" in str(failed.value)
