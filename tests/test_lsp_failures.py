"""A server without a usable model keeps serving: one clear message, empty answers."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest
import pytest_lsp
from lsprotocol import types
from pytest_lsp import ClientServerConfig, LanguageClient, client_capabilities

SERVER = [sys.executable, "-m", "codenook", "serve"]
ROOT = Path(__file__).parent / "workspace"
MISSING = "/nonexistent/models/qwen3-coder-next.gguf"

pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest_lsp.fixture(config=ClientServerConfig(server_command=SERVER), scope="module")
async def client(lsp_client: LanguageClient):
    await lsp_client.initialize_session(
        types.InitializeParams(
            capabilities=client_capabilities("neovim"),
            root_uri=ROOT.as_uri(),
            initialization_options={"model": {"path": MISSING}},
        )
    )
    yield
    await lsp_client.shutdown_session()


async def _messages(client: LanguageClient, count: int) -> list[str]:
    for _ in range(200):
        if len(client.messages) >= count:
            break
        await asyncio.sleep(0.02)
    return [m.message for m in client.messages]


async def test_missing_model_is_one_clear_error_and_completions_are_empty(
    client: LanguageClient,
) -> None:
    messages = await _messages(client, 1)
    errors = [m for m in client.messages if m.type == types.MessageType.Error]
    assert len(errors) == 1, messages
    assert MISSING in errors[0].message and "model.path" in errors[0].message
    uri = (ROOT / "a.py").as_uri()
    client.text_document_did_open(
        types.DidOpenTextDocumentParams(
            types.TextDocumentItem(uri=uri, language_id="python", version=1, text="x = ")
        )
    )
    for _ in range(2):
        result = await client.text_document_inline_completion_async(
            types.InlineCompletionParams(
                text_document=types.TextDocumentIdentifier(uri),
                position=types.Position(0, 4),
                context=types.InlineCompletionContext(
                    trigger_kind=types.InlineCompletionTriggerKind.Invoked
                ),
            )
        )
        assert result is not None and list(result.items) == []
    # Still exactly one error: the user is told once, not on every keystroke.
    assert len([m for m in client.messages if m.type == types.MessageType.Error]) == 1


async def test_fixing_the_setting_loads_the_model(client: LanguageClient, smollm_path: Path):
    client.workspace_did_change_configuration(
        types.DidChangeConfigurationParams(
            settings={"codenook": {"model": {"path": str(smollm_path)}}}
        )
    )
    for _ in range(200):
        stats = await client.protocol.send_request_async("codenook/stats", {})
        if stats.state == "idle":
            break
        await asyncio.sleep(0.05)
    assert stats.state == "idle" and stats.model == str(smollm_path)


async def test_utf8_positions_after_the_model_loads(client: LanguageClient) -> None:
    """Neovim negotiates UTF-8: columns count bytes, so 'é' is 2 and '😀' is 4."""
    client.workspace_did_change_configuration(
        types.DidChangeConfigurationParams(settings={"codenook": {"trace": {"prompts": True}}})
    )
    uri = (ROOT / "utf8.py").as_uri()
    text = 'name = "héllo 😀"\nprint(name'
    client.text_document_did_open(
        types.DidOpenTextDocumentParams(
            types.TextDocumentItem(uri=uri, language_id="python", version=1, text=text)
        )
    )
    line0 = 'name = "héllo 😀'
    col8 = len(line0.encode("utf-8"))
    client.text_document_did_change(
        types.DidChangeTextDocumentParams(
            text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=2),
            content_changes=[
                types.TextDocumentContentChangePartial(
                    range=types.Range(types.Position(0, col8), types.Position(0, col8)),
                    text="!",
                )
            ],
        )
    )
    end = types.Position(1, len("print(name"))
    result = await client.text_document_inline_completion_async(
        types.InlineCompletionParams(
            text_document=types.TextDocumentIdentifier(uri),
            position=end,
            context=types.InlineCompletionContext(
                trigger_kind=types.InlineCompletionTriggerKind.Invoked
            ),
        )
    )
    assert result is not None
    stats = await client.protocol.send_request_async("codenook/stats", {})
    assert stats.lastCompletion.version == 2
    # The edit landed after the emoji, not inside it: the traced prompt shows the server's
    # copy of the document.
    traces = [m.message for m in client.log_messages if "--- prompt ---" in m.message]
    assert traces and 'name = "héllo 😀!"\nprint(name' in traces[-1]
