"""End to end over stdio: the workspace index and cross-file chunks in the completion prompt.

The server indexes the workspace folder at start-up (with work-done progress), and the prompt
of a completion in one file holds the definition another file provides, which the
``trace.prompts`` setting makes visible in the log. The tiny random-weight qwen3next model has
Qwen's repository markers, so its prompts use the layout with ``<|file_sep|>`` sections.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest
import pytest_lsp
from lsprotocol import types
from pytest_lsp import ClientServerConfig, LanguageClient, client_capabilities

from codenook.settings import SPECS

if "context.crossFileTokens" not in {spec.key for spec in SPECS}:
    pytest.skip("cross-file context is not wired into the server yet", allow_module_level=True)

SERVER = [sys.executable, "-m", "codenook", "serve"]
SETTINGS = {
    "completion": {"maxTokens": 8, "timeBudgetMs": 20000, "speculative": False},
    "model": {"batchSize": 64},
    "trace": {"prompts": True},
    "context": {"crossFileTokens": 512},
}
MODELS = '''"""Domain objects."""


def parse_price(text: str, currency: str = "EUR") -> float:
    """Read a price such as '12.50 EUR'."""
    return float(text.split()[0])
'''
ORDERS = """from .models import parse_price


def total(prices: list[str]) -> float:
    return sum(parse_price(p) for p in prices)


def cheapest(prices: list[str]) -> float:
    return """

pytestmark = pytest.mark.asyncio(loop_scope="module")


def _plain(value):
    if hasattr(value, "_asdict"):
        return {k: _plain(v) for k, v in value._asdict().items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


async def _stats(client: LanguageClient) -> dict:
    return _plain(await client.protocol.send_request_async("codenook/stats", {}))


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("shop-workspace")
    (folder / "shop").mkdir()
    (folder / "shop" / "__init__.py").write_text("")
    (folder / "shop" / "models.py").write_text(MODELS)
    (folder / "shop" / "orders.py").write_text(ORDERS)
    return folder


@pytest_lsp.fixture(config=ClientServerConfig(server_command=SERVER), scope="module")
async def client(lsp_client: LanguageClient, root: Path, hybrid_path: Path):
    params = types.InitializeParams(
        capabilities=client_capabilities("visual-studio-code"),
        root_uri=root.as_uri(),
        workspace_folders=[types.WorkspaceFolder(uri=root.as_uri(), name="shop")],
        initialization_options={**SETTINGS, "model": {"path": str(hybrid_path), "batchSize": 64}},
    )
    await lsp_client.initialize_session(params)
    for _ in range(400):
        stats = await _stats(lsp_client)
        index = stats.get("index") or {}
        if (
            stats.get("state") in ("idle", "failed")
            and all(i["state"] == "ready" for i in index.values())
            and index
        ):
            break
        await asyncio.sleep(0.05)
    yield
    await lsp_client.shutdown_session()


async def _complete_at_end(client: LanguageClient, uri: str, text: str) -> str:
    lines = text.split("\n")
    await client.text_document_inline_completion_async(
        types.InlineCompletionParams(
            text_document=types.TextDocumentIdentifier(uri),
            position=types.Position(len(lines) - 1, len(lines[-1])),
            context=types.InlineCompletionContext(
                trigger_kind=types.InlineCompletionTriggerKind.Invoked
            ),
        )
    )
    traces = [m.message for m in client.log_messages if "--- prompt ---" in m.message]
    assert traces, "trace.prompts logs the prompt"
    return traces[-1].split("--- prompt ---\n", 1)[1].split("\n--- raw ---", 1)[0]


async def test_the_workspace_is_indexed_with_progress(client: LanguageClient, root: Path):
    stats = await _stats(client)
    (index,) = stats["index"].values()
    assert index["state"] == "ready" and index["files"] == 3
    titles = [
        getattr(report, "title", None)
        for reports in client.progress_reports.values()
        for report in reports
    ]
    assert "codenook: indexing" in titles


async def test_the_prompt_holds_the_imported_definition(client: LanguageClient, root: Path):
    uri = (root / "shop" / "orders.py").as_uri()
    client.text_document_did_open(
        types.DidOpenTextDocumentParams(
            types.TextDocumentItem(uri=uri, language_id="python", version=1, text=ORDERS)
        )
    )
    prompt = await _complete_at_end(client, uri, ORDERS)
    assert prompt.startswith("<|repo_name|>")
    assert "<|file_sep|>shop/models.py\n" in prompt
    assert 'def parse_price(text: str, currency: str = "EUR") -> float:' in prompt
    assert "Read a price such as" in prompt
    assert "return float(" not in prompt  # never a body
    other = prompt.index("<|file_sep|>shop/models.py")
    assert other < prompt.index("<|file_sep|>shop/orders.py") < prompt.index("<|fim_prefix|>")


async def test_a_file_created_on_disk_is_indexed(client: LanguageClient, root: Path):
    (root / "shop" / "taxes.py").write_text(
        "def add_vat(amount: float) -> float:\n    return amount\n"
    )
    client.workspace_did_change_watched_files(
        types.DidChangeWatchedFilesParams(
            changes=[
                types.FileEvent(
                    uri=(root / "shop" / "taxes.py").as_uri(), type=types.FileChangeType.Created
                )
            ]
        )
    )
    text = "from .taxes import add_vat\n\n\ndef gross(net: float) -> float:\n    return "
    uri = (root / "shop" / "invoice.py").as_uri()
    client.text_document_did_open(
        types.DidOpenTextDocumentParams(
            types.TextDocumentItem(uri=uri, language_id="python", version=1, text=text)
        )
    )
    prompt = await _complete_at_end(client, uri, text)
    assert "<|file_sep|>shop/taxes.py\ndef add_vat(amount: float) -> float:" in prompt
