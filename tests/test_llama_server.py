"""engine.backend openai against llama.cpp's own llama-server: the real server, no stand-in.

``codenook serve`` runs over stdio like an editor drives it, with ``engine.url`` pointing at a
llama-server this module starts on a free port (SmolLM2, the embedded default, and the hybrid
qwen3next fixture), with codenook's own context size and thread count. Checked: an inline
completion comes back with the server's own prompt figures, a streamed code action edits the
document, a hover is explained, a ``$/cancelRequest`` mid-action ends it (and the server's
slot) at once, and ``engine.promptFormat auto`` learns Qwen's FIM markers through the server's
``/tokenize``.

The binary is ``$CODENOOK_LLAMA_SERVER`` or ``make llama-server``'s build in
``.cache/llama-server``; without either every test here SKIPS LOUDLY (``-rs`` lists why), and
``CODENOOK_LLAMA_SERVER_REQUIRE=1`` makes that a failure.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from lsp_editor import Editor
from lsprotocol import types
from pygls.exceptions import JsonRpcException
from pytest_lsp import ClientServerConfig, LanguageClient, client_capabilities

from codenook.engine.llama import default_threads
from codenook.engine.remote import QWEN_FIM, RemoteEngine
from codenook.engine.remote_http import RemoteConfig
from codenook.settings import Settings

BUILT = Path(__file__).parents[1] / ".cache" / "llama-server" / "build" / "bin" / "llama-server"
SERVE = [sys.executable, "-m", "codenook", "serve"]
ROOT = Path(__file__).parent / "workspace"
READY_S = 60.0
CONTEXT = Settings().model.contextSize  # codenook's default, given to both sides
THREADS = Settings().model.threads or default_threads()
CODE = """import math


def distance(a, b):
    dx = a[0] - b[0]
    dy = a[1] - b[1]
    return math.sqrt(dx * dx + dy * dy)


def add(a, b):
    return """

pytestmark = pytest.mark.asyncio(loop_scope="module")


def llama_server_binary() -> Path:
    given = os.environ.get("CODENOOK_LLAMA_SERVER")
    chosen = Path(given) if given else BUILT
    if not (chosen.is_file() and os.access(chosen, os.X_OK)):
        message = (
            f"SKIPPED LOUDLY: no llama-server binary at {chosen}: run `make llama-server`"
            " (builds llama.cpp's server into .cache/llama-server, about 15 minutes on 2 cores)"
            " or set CODENOOK_LLAMA_SERVER to one"
        )
        if os.environ.get("CODENOOK_LLAMA_SERVER_REQUIRE") == "1":
            pytest.fail(message)
        print(message, file=sys.stderr)
        pytest.skip(message)
    return chosen


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.loads(response.read())


class LlamaServer:
    """One llama-server process on a free port; ``url`` is its OpenAI base URL."""

    def __init__(self, model: Path, log: Path) -> None:
        self.binary = llama_server_binary()
        self.port = _free_port()
        self.root = f"http://127.0.0.1:{self.port}"
        self.url = f"{self.root}/v1"
        self.log = log
        command = [str(self.binary), "-m", str(model), "--host", "127.0.0.1"]
        command += ["--port", str(self.port), "-c", str(CONTEXT), "-t", str(THREADS)]
        command += ["-np", "1", "--cache-reuse", "256"]
        with log.open("wb") as out:
            self.process = subprocess.Popen(
                command, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + READY_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(f"llama-server exited with {self.process.returncode}:\n{self.tail()}")
            try:
                if _get(f"{self.root}/health").get("status") == "ok":
                    return
            except (urllib.error.URLError, OSError, ValueError):
                pass
            time.sleep(0.1)
        self.stop()
        pytest.fail(f"llama-server was not ready after {READY_S:.0f} s:\n{self.tail()}")

    def slot(self) -> dict[str, Any]:
        slots = _get(f"{self.root}/slots")
        assert isinstance(slots, list) and len(slots) == 1, slots  # -np 1
        return dict(slots[0])

    def tail(self, lines: int = 20) -> str:
        text = self.log.read_text(encoding="utf-8", errors="replace")
        return "\n".join(text.splitlines()[-lines:])

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@pytest.fixture(scope="module")
def smol_server(
    smollm_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LlamaServer]:
    server = LlamaServer(smollm_path, tmp_path_factory.mktemp("llama") / "smollm2.log")
    yield server
    server.stop()


@pytest.fixture(scope="module")
def hybrid_server(
    hybrid_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LlamaServer]:
    server = LlamaServer(hybrid_path, tmp_path_factory.mktemp("llama") / "hybrid.log")
    yield server
    server.stop()


async def _codenook(server: LlamaServer) -> LanguageClient:
    """``codenook serve`` over stdio with engine.backend openai at ``server``, engine idle."""
    client = await ClientServerConfig(server_command=SERVE).start()
    assert isinstance(client, LanguageClient)
    editor = Editor(client, ROOT)
    client.editor = editor  # type: ignore[attr-defined]

    @client.feature(types.WORKSPACE_APPLY_EDIT)
    def apply_edit(ls: LanguageClient, params: types.ApplyWorkspaceEditParams) -> Any:
        return editor.apply(params)

    @client.feature(types.CLIENT_REGISTER_CAPABILITY)
    def register(ls: LanguageClient, params: types.RegistrationParams) -> None:
        return None

    @client.feature("codenook/status")
    def status(ls: LanguageClient, params: Any) -> None:
        return None

    try:
        await _initialize(client, server)
    except BaseException:
        await client.stop()
        raise
    return client


async def _initialize(client: LanguageClient, server: LlamaServer) -> None:
    await client.initialize_session(
        types.InitializeParams(
            capabilities=client_capabilities("visual-studio-code"),
            root_uri=ROOT.as_uri(),
            initialization_options={
                "engine": {"backend": "openai", "url": server.url},
                "model": {"contextSize": CONTEXT},
                "completion": {"speculative": False},
                "actions": {"maxTokens": 48},
                "hover": {"timeBudgetMs": 60000, "maxTokens": 24},
                "index": {"enabled": False},
            },
        )
    )
    stats: dict[str, Any] = {}
    for _ in range(400):
        stats = await _stats(client)
        if stats["state"] == "idle":
            return
        assert stats["state"] != "failed", stats["error"]
        await asyncio.sleep(0.05)
    pytest.fail(f"the remote engine did not come up: {stats}")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def smol(smol_server: LlamaServer) -> AsyncIterator[LanguageClient]:
    client = await _codenook(smol_server)
    yield client
    await client.shutdown_session()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def hybrid(hybrid_server: LlamaServer) -> AsyncIterator[LanguageClient]:
    client = await _codenook(hybrid_server)
    yield client
    await client.shutdown_session()


async def _stats(client: LanguageClient) -> dict[str, Any]:
    return _plain(await client.protocol.send_request_async("codenook/stats", {}))


def _plain(value: Any) -> Any:
    """pygls hands unknown results over as named tuples: back to dicts and lists."""
    if hasattr(value, "_asdict"):
        return {k: _plain(v) for k, v in value._asdict().items()}
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def _end(text: str) -> types.Position:
    lines = text.split("\n")
    return types.Position(len(lines) - 1, len(lines[-1]))


async def _inline(client: LanguageClient, uri: str, position: types.Position) -> list[str]:
    result = await client.text_document_inline_completion_async(
        types.InlineCompletionParams(
            text_document=types.TextDocumentIdentifier(uri),
            position=position,
            context=types.InlineCompletionContext(
                trigger_kind=types.InlineCompletionTriggerKind.Invoked
            ),
        )
    )
    items = result.items if isinstance(result, types.InlineCompletionList) else result or []
    return [str(i.insert_text) for i in items]


def _action(client: LanguageClient, uri: str, action: str, **extra: Any) -> dict[str, Any]:
    line = CODE.split("\n").index("def distance(a, b):")
    at = {"line": line + 1, "character": 4}
    version = client.editor.docs[uri][0]  # type: ignore[attr-defined]
    rng = {"start": at, "end": at}
    return {"uri": uri, "version": version, "range": rng, "action": action, **extra}


async def _eventually(check: Any, seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, f"not within {seconds} s"
        await asyncio.sleep(0.02)


# -- SmolLM2 (the embedded default: no FIM markers, prefix-only prompts) ----------------------


async def test_inline_completion_comes_from_the_server(
    smol: LanguageClient, smol_server: LlamaServer
):
    stats = await _stats(smol)
    assert stats["architecture"] == "remote"
    assert stats["model"] == _get(f"{smol_server.url}/models")["data"][0]["id"]
    task = smol_server.slot().get("id_task", -1)
    uri = smol.editor.open("add.py", CODE)  # type: ignore[attr-defined]
    shown = await _inline(smol, uri, _end(CODE))
    assert shown and shown[0].strip(), f"SmolLM2 suggested nothing after `return `: {shown}"
    assert smol_server.slot().get("id_task", -1) > task, "the request never reached llama-server"
    first = (await _stats(smol))["lastCompletion"]
    assert first["uri"] == uri and first["generated_tokens"] >= 1
    assert first["prompt_tokens"] > 20, first
    counters = (await _stats(smol))["counters"]
    assert counters["requests"] >= 1 and counters["prompt_tokens"] >= first["prompt_tokens"]


async def test_the_servers_prefix_cache_figures_reach_stats(smol: LanguageClient):
    """One more character: llama-server's prefix cache reads only the end of the prompt, and
    its own figures (timings.cache_n / prompt_n) reach codenook/stats, also for a suggestion
    that codenook ended itself at the end of the line (``until``), before the usage chunk."""
    uri = smol.editor.open("cache.py", CODE)  # type: ignore[attr-defined]
    shown = await _inline(smol, uri, _end(CODE))
    first = (await _stats(smol))["lastCompletion"]
    assert first["uri"] == uri and first["prompt_tokens"] > 20, first
    typed = "(" if not (shown and shown[0].startswith("(")) else "["
    smol.editor.change(uri, len(CODE), len(CODE), typed)  # type: ignore[attr-defined]
    await _inline(smol, uri, _end(CODE + typed))
    second = (await _stats(smol))["lastCompletion"]
    assert second["uri"] == uri and second["version"] == 2, second
    facts = json.dumps([first, second])
    assert second["cached_tokens"] >= first["prompt_tokens"] - 4, facts
    assert second["prefilled_tokens"] <= 4, facts
    assert second["prompt_tokens"] == second["cached_tokens"] + second["prefilled_tokens"], facts


async def test_a_streamed_code_action_edits_the_document(smol: LanguageClient):
    uri = smol.editor.open("docstring.py", CODE)  # type: ignore[attr-defined]
    editor: Editor = smol.editor  # type: ignore[attr-defined]
    editor.edits.clear()
    before = (await _stats(smol))["counters"]["requests"]
    raw = await smol.workspace_execute_command_async(
        types.ExecuteCommandParams(
            command="codenook.runAction", arguments=[_action(smol, uri, "docstring")]
        )
    )
    result = _plain(raw)
    assert result["status"] in ("applied", "rejected"), result
    assert editor.edits, f"no workspace/applyEdit streamed: {result}"
    if result["status"] == "applied":
        assert result["text"] in editor.docs[uri][1]
    else:
        assert editor.docs[uri][1] == CODE and result["message"]
    assert (await _stats(smol))["counters"]["requests"] > before


async def test_hover_is_explained_by_the_server(smol: LanguageClient):
    uri = smol.editor.open("hover.py", CODE)  # type: ignore[attr-defined]
    before = (await _stats(smol))["counters"]["requests"]
    line = CODE.split("\n").index("def distance(a, b):")
    hover = await smol.text_document_hover_async(
        types.HoverParams(types.TextDocumentIdentifier(uri), types.Position(line, 5))
    )
    assert hover is not None and isinstance(hover.contents, types.MarkupContent)
    assert hover.contents.value.startswith("```python\ndef distance(a, b):\n```")
    stats = await _stats(smol)
    assert stats["lastHover"]["name"] == "distance" and stats["lastHover"]["cached"] is False
    assert stats["counters"]["requests"] > before, "the hover never asked the model"


async def test_cancel_request_mid_action_ends_it_and_the_servers_work(
    smol: LanguageClient, smol_server: LlamaServer
):
    uri = smol.editor.open("cancel.py", CODE)  # type: ignore[attr-defined]
    editor: Editor = smol.editor  # type: ignore[attr-defined]
    editor.edits.clear()
    cancelled_before = (await _stats(smol))["counters"]["cancelled"]
    args = _action(
        smol, uri, "instruct", instruction="Rewrite it with a long comment above every line."
    )
    msg_id = "cancel-remote-action"
    future = smol.protocol.send_request(
        types.WORKSPACE_EXECUTE_COMMAND,
        types.ExecuteCommandParams(command="codenook.runAction", arguments=[args]),
        msg_id=msg_id,
    )
    await _eventually(lambda: bool(editor.edits), 30)  # streaming has begun
    cancelled_at = time.monotonic()
    smol.protocol.notify(types.CANCEL_REQUEST, types.CancelParams(id=msg_id))
    with pytest.raises(JsonRpcException) as info:
        await asyncio.wait_for(asyncio.wrap_future(future), 5)
    answered_s = time.monotonic() - cancelled_at
    assert info.value.code == -32800
    assert answered_s < 2.0, f"the cancel took {answered_s:.2f} s"
    await _eventually(lambda: editor.docs[uri][1] == CODE, 5)  # the original is back
    # The HTTP stream was closed: llama-server stops the task instead of decoding to the end.
    await _eventually(lambda: not smol_server.slot()["is_processing"], 2)
    stats = await _stats(smol)
    assert stats["counters"]["cancelled"] == cancelled_before + 1
    assert stats["state"] == "idle"


async def test_smollm2_has_no_fim_markers(smol_server: LlamaServer):
    engine = RemoteEngine(RemoteConfig(url=smol_server.url))
    try:
        assert engine.discovery.server == "llama-server" and engine.discovery.tokenizer
        assert not engine.info.fim.has_fim
        assert "no FIM markers" in engine.discovery.fim_source
        assert engine.info.n_ctx == CONTEXT and engine.info.chat_template
    finally:
        engine.close()


# -- the hybrid qwen3next fixture (Qwen's FIM and ChatML tokens) -------------------------------


async def test_prompt_format_auto_learns_qwen_fim_markers_through_tokenize(
    hybrid_server: LlamaServer,
):
    engine = RemoteEngine(RemoteConfig(url=hybrid_server.root, prompt_format="auto"))
    try:
        found = engine.discovery
        assert found.server == "llama-server" and found.tokenizer
        assert found.fim_source.startswith("the server's /tokenize: <|fim_prefix|>"), found
        assert engine.info.fim == QWEN_FIM
        assert engine.info.eos_text == "<|endoftext|>"
        assert engine.info.n_ctx == CONTEXT
    finally:
        engine.close()


async def test_hybrid_completion_goes_through_the_server(
    hybrid: LanguageClient, hybrid_server: LlamaServer
):
    task = hybrid_server.slot().get("id_task", -1)
    uri = hybrid.editor.open("hybrid.py", CODE)  # type: ignore[attr-defined]
    shown = await _inline(hybrid, uri, _end(CODE))
    assert hybrid_server.slot().get("id_task", -1) > task
    last = (await _stats(hybrid))["lastCompletion"]
    assert last["uri"] == uri and last["generated_tokens"] >= 1, last
    # Qwen's vocabulary reads code at about 3.5-4.5 characters a token: the FIM prompt
    # (prefix, suffix, markers) holds the whole file.
    assert last["prompt_tokens"] > len(CODE) / 6, last
    assert all(isinstance(text, str) for text in shown)
