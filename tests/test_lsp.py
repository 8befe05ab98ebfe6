"""End to end over stdio: the real server process, the real llama.cpp engine, SmolLM2.

These are the tests an editor would run if it could: open files, type, ask for inline
completions, cancel, reconfigure. Settings make generation short so the suite stays fast.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest
import pytest_lsp
from lsprotocol import types
from pygls.exceptions import JsonRpcRequestCancelled
from pytest_lsp import ClientServerConfig, LanguageClient, client_capabilities

SERVER = [sys.executable, "-m", "codenook", "serve"]
ROOT = Path(__file__).parent / "workspace"
# Speculation is off except in its own test: its background engine requests would blur the
# counters the other tests read.
FAST = {
    "completion": {"maxTokens": 24, "timeBudgetMs": 20000, "speculative": False},
    "model": {"batchSize": 64},
}

PY = '''import os


def add(a: int, b: int) -> int:
    """Return the sum of a and b."""
    return '''

TS = """export function greet(name: string): string {
  return "Hello, " + """

pytestmark = pytest.mark.asyncio(loop_scope="module")


async def _open(client: LanguageClient, name: str, text: str, language: str) -> str:
    uri = (ROOT / name).as_uri()
    client.text_document_did_open(
        types.DidOpenTextDocumentParams(
            types.TextDocumentItem(uri=uri, language_id=language, version=1, text=text)
        )
    )
    return uri


def _end(text: str) -> types.Position:
    lines = text.split("\n")
    return types.Position(len(lines) - 1, len(lines[-1]))


async def _complete(client: LanguageClient, uri: str, pos: types.Position) -> list[str]:
    result = await client.text_document_inline_completion_async(
        types.InlineCompletionParams(
            text_document=types.TextDocumentIdentifier(uri),
            position=pos,
            context=types.InlineCompletionContext(
                trigger_kind=types.InlineCompletionTriggerKind.Automatic
            ),
        )
    )
    items = result.items if isinstance(result, types.InlineCompletionList) else result or []
    return [i.insert_text if isinstance(i.insert_text, str) else i.insert_text.value for i in items]


def _plain(value):
    """pygls hands custom results back as namedtuples; tests read them as dicts."""
    if hasattr(value, "_asdict"):
        return {k: _plain(v) for k, v in value._asdict().items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


async def _stats(client: LanguageClient) -> dict:
    return _plain(await client.protocol.send_request_async("codenook/stats", {}))


async def _wait_ready(client: LanguageClient) -> dict:
    for _ in range(200):
        stats = await _stats(client)
        if stats.get("state") in ("idle", "failed"):
            return stats
        await asyncio.sleep(0.05)
    raise AssertionError(f"engine never became ready: {stats}")


@pytest_lsp.fixture(config=ClientServerConfig(server_command=SERVER), scope="module")
async def client(lsp_client: LanguageClient):
    lsp_client.statuses = []

    @lsp_client.feature("codenook/status")
    def on_status(ls: LanguageClient, params: object) -> None:
        ls.statuses.append(_plain(params))

    params = types.InitializeParams(
        capabilities=client_capabilities("visual-studio-code"),
        root_uri=ROOT.as_uri(),
        workspace_folders=[types.WorkspaceFolder(uri=ROOT.as_uri(), name="workspace")],
        initialization_options=FAST,
    )
    lsp_client.init_result = await lsp_client.initialize_session(params)
    await _wait_ready(lsp_client)
    yield
    await lsp_client.shutdown_session()


async def test_advertises_inline_completion_and_incremental_sync(client: LanguageClient):
    caps = client.init_result.capabilities
    assert caps.inline_completion_provider is not None
    sync = caps.text_document_sync
    assert getattr(sync, "change", sync) == types.TextDocumentSyncKind.Incremental
    stats = await _stats(client)
    assert stats["state"] == "idle" and stats["architecture"] == "llama"


async def test_python_file_gets_a_post_processed_suggestion(client: LanguageClient):
    uri = await _open(client, "calc.py", PY, "python")
    items = await _complete(client, uri, _end(PY))
    assert len(items) == 1
    suggestion = items[0]
    assert suggestion.strip(), "a non-empty suggestion"
    # Post-processed: nothing past the enclosing function (its block ends at a dedent).
    assert "\ndef " not in suggestion and "\n\n\n" not in suggestion
    assert suggestion == suggestion.rstrip()


async def test_typescript_file_gets_a_suggestion(client: LanguageClient):
    uri = await _open(client, "greet.ts", TS, "typescript")
    items = await _complete(client, uri, _end(TS))
    assert len(items) == 1 and items[0].strip()


async def test_typing_one_character_reuses_the_cached_prompt(client: LanguageClient):
    text = PY.replace("add", "mul").replace("sum", "product")
    uri = await _open(client, "mul.py", text, "python")
    shown = await _complete(client, uri, _end(text))
    first = (await _stats(client))["lastCompletion"]
    end = _end(text)
    # A character that does not continue the shown suggestion, so the model is asked again.
    typed = "z" if shown and shown[0].startswith("a") else "a"
    client.text_document_did_change(
        types.DidChangeTextDocumentParams(
            text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=2),
            content_changes=[
                types.TextDocumentContentChangePartial(range=types.Range(end, end), text=typed)
            ],
        )
    )
    await _complete(client, uri, types.Position(end.line, end.character + 1))
    second = (await _stats(client))["lastCompletion"]
    assert second["version"] == 2
    assert second["prompt_tokens"] >= first["prompt_tokens"]
    assert second["cached_tokens"] >= first["prompt_tokens"] - 2
    assert second["prefilled_tokens"] <= 3


async def test_cancel_request_answers_32800_and_frees_the_engine(client: LanguageClient):
    big = "\n".join(f"value_{i} = compute({i}, 'item {i}')" for i in range(120)) + "\nresult = "
    uri = await _open(client, "big.py", big, "python")
    before = (await _stats(client))["counters"]["cancelled"]
    msg_id = "cancel-me"
    future = client.protocol.send_request(
        types.TEXT_DOCUMENT_INLINE_COMPLETION,
        types.InlineCompletionParams(
            text_document=types.TextDocumentIdentifier(uri),
            position=_end(big),
            context=types.InlineCompletionContext(
                trigger_kind=types.InlineCompletionTriggerKind.Automatic
            ),
        ),
        msg_id=msg_id,
    )
    await asyncio.sleep(0.3)
    client.protocol.notify(types.CANCEL_REQUEST, types.CancelParams(id=msg_id))
    with pytest.raises(JsonRpcRequestCancelled) as info:
        await asyncio.wrap_future(future)
    assert info.value.code == -32800
    # The next request is served, and the engine says the cancelled one stopped early.
    small_uri = await _open(client, "small.py", PY, "python")
    assert await _complete(client, small_uri, _end(PY)) is not None
    stats = await _stats(client)
    assert stats["counters"]["cancelled"] == before + 1
    assert stats["lastCompletion"]["uri"] == small_uri


async def test_newer_request_for_the_same_document_supersedes_the_older(client: LanguageClient):
    text = PY.replace("add", "sub")
    uri = await _open(client, "sub.py", text, "python")
    params = types.InlineCompletionParams(
        text_document=types.TextDocumentIdentifier(uri),
        position=_end(text),
        context=types.InlineCompletionContext(
            trigger_kind=types.InlineCompletionTriggerKind.Automatic
        ),
    )
    older = asyncio.ensure_future(client.text_document_inline_completion_async(params))
    await asyncio.sleep(0.01)
    newer = asyncio.ensure_future(client.text_document_inline_completion_async(params))
    old_result, new_result = await asyncio.gather(older, newer)
    # The superseded request answers an empty list (not an error a client would show).
    assert old_result is not None and list(old_result.items) == []
    assert len(new_result.items) == 1


async def test_non_ascii_line_in_utf16_positions(client: LanguageClient):
    text = 'def greet() -> str:\n    s = "héllo 😀 wörld"\n    return s.'
    uri = await _open(client, "uni.py", text, "python")
    # An impossible position answers empty instead of failing.
    assert await _complete(client, uri, types.Position(99, 0)) == []
    # Insert after the emoji, counted in UTF-16 units (the emoji is two).
    line = '    s = "héllo 😀'
    col16 = len(line.encode("utf-16-le")) // 2
    client.text_document_did_change(
        types.DidChangeTextDocumentParams(
            text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=2),
            content_changes=[
                types.TextDocumentContentChangePartial(
                    range=types.Range(types.Position(1, col16), types.Position(1, col16)),
                    text="!",
                )
            ],
        )
    )
    await _complete(client, uri, _end(text))
    stats = await _stats(client)
    assert stats["lastCompletion"]["version"] == 2


async def test_bad_setting_gives_a_message_and_the_default(client: LanguageClient):
    client.messages.clear()
    client.workspace_did_change_configuration(
        types.DidChangeConfigurationParams(
            settings={"codenook": {"completion": {"maxTokens": "lots"}, "colour": 3}}
        )
    )
    for _ in range(100):
        if len(client.messages) >= 2:
            break
        await asyncio.sleep(0.02)
    texts = [m.message for m in client.messages]
    assert any("completion.maxTokens" in t and "default (64)" in t for t in texts), texts
    assert any("unknown setting 'colour'" in t for t in texts), texts
    # The server keeps serving with the default.
    uri = await _open(client, "after.py", PY, "python")
    assert await _complete(client, uri, _end(PY)) is not None


async def test_status_notifications_follow_the_engine(client: LanguageClient):
    client.statuses.clear()
    uri = await _open(client, "status.py", PY.replace("add", "div"), "python")
    await _complete(client, uri, _end(PY))
    for _ in range(100):
        if client.statuses and client.statuses[-1]["state"] == "idle":
            break
        await asyncio.sleep(0.02)
    states = [s["state"] for s in client.statuses]
    assert "generating" in states and states[-1] == "idle", states
    assert client.statuses[-1]["tokensPerSecond"] > 0


async def test_typing_what_the_suggestion_shows_needs_no_model_call(client: LanguageClient):
    text = PY.replace("add", "total")
    uri = await _open(client, "typed.py", text, "python")
    end = _end(text)
    (suggestion,) = await _complete(client, uri, end)
    assert len(suggestion) >= 2
    before = await _stats(client)
    for version, char in enumerate(suggestion[:2], start=2):
        client.text_document_did_change(
            types.DidChangeTextDocumentParams(
                text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=version),
                content_changes=[
                    types.TextDocumentContentChangePartial(range=types.Range(end, end), text=char)
                ],
            )
        )
        end = types.Position(end.line, end.character + 1)
        rest = await _complete(client, uri, end)
        assert rest == [suggestion[version - 1 :]]
    after = await _stats(client)
    assert after["counters"]["requests"] == before["counters"]["requests"]
    typed = (
        after["completionCounters"]["typedThrough"] - before["completionCounters"]["typedThrough"]
    )
    assert typed == 2


async def _guess_made(client: LanguageClient, name: str, text: str) -> tuple[str, str, dict]:
    """Open ``text``, take the suggestion at its end and wait for the background guess.

    Returns (uri, suggestion, stats) once a non-empty guess exists, or ("", "", stats) when the
    model had nothing to add after its own suggestion (a 135M model sometimes has not).
    """
    uri = await _open(client, name, text, "python")
    before = await _stats(client)
    items = await _complete(client, uri, _end(text))
    stats = before
    for _ in range(400):
        stats = await _stats(client)
        made = (
            stats["completionCounters"]["speculated"] > before["completionCounters"]["speculated"]
        )
        settled = stats["counters"]["requests"] >= before["counters"]["requests"] + 2
        if made or (settled and stats["state"] == "idle"):
            break
        await asyncio.sleep(0.05)
    if (
        items
        and stats["completionCounters"]["speculated"] > before["completionCounters"]["speculated"]
    ):
        return uri, items[0], stats
    return "", "", stats


async def test_accepting_a_suggestion_is_answered_from_the_speculative_guess(
    client: LanguageClient,
):
    client.workspace_did_change_configuration(
        types.DidChangeConfigurationParams(settings={"codenook": {"completion.speculative": True}})
    )
    candidates = [
        "import os\nimport sys\nimport ",
        "numbers = [1, 2, 3, 4, 5, ",
        "colors = ['red', 'green', 'blue', ",
        "for i in range(10):\n    print(",
    ]
    for number, text in enumerate(candidates):
        uri, suggestion, stats = await _guess_made(client, f"spec{number}.py", text)
        if uri:
            break
    else:
        raise AssertionError("the model never had a guess after its own suggestion")
    engine_requests = stats["counters"]["requests"]
    end = _end(text)
    client.text_document_did_change(
        types.DidChangeTextDocumentParams(
            text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=2),
            content_changes=[
                types.TextDocumentContentChangePartial(range=types.Range(end, end), text=suggestion)
            ],
        )
    )
    lines = (text + suggestion).split("\n")
    items = await _complete(client, uri, types.Position(len(lines) - 1, len(lines[-1])))
    assert len(items) == 1 and items[0]
    after = await _stats(client)
    hits = after["completionCounters"]["speculativeHits"]
    assert hits == stats["completionCounters"]["speculativeHits"] + 1
    # No model call for the accepted-and-continued request (a new guess may have started).
    assert after["counters"]["requests"] <= engine_requests + 1
