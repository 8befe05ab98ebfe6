"""Hover on a name another file defines: the question to the model carries that file's
definition as the workspace index has it (signature, docstring), found through the file's
imports; end to end over stdio with the real SmolLM2, the prompt read from the trace."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest
import pytest_lsp
from lsprotocol import types
from pytest_lsp import ClientServerConfig, LanguageClient, client_capabilities

from codenook.assist.hover import Target, hover_messages, with_definitions
from codenook.workspace.index import extract

SERVER = [sys.executable, "-m", "codenook", "serve"]
SETTINGS = {
    "completion": {"speculative": False},
    "hover": {"timeBudgetMs": 60000, "maxTokens": 16},
    "trace": {"prompts": True},
}
MODELS = '''"""Domain objects."""


def parse_price(text: str, currency: str = "EUR") -> float:
    """Read a price such as '12.50 EUR'; the currency is checked, not converted."""
    return float(text.split()[0])
'''
OTHER = '''def parse_price(text):
    """A decoy of the same name that orders.py does not import."""
    return 0
'''
ORDERS = """from .models import parse_price


def total(prices):
    return sum(parse_price(p) for p in prices)
"""


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("hover-workspace")
    (folder / "shop").mkdir()
    (folder / "shop" / "__init__.py").write_text("")
    (folder / "shop" / "models.py").write_text(MODELS)
    (folder / "shop" / "orders.py").write_text(ORDERS)
    (folder / "legacy.py").write_text(OTHER)
    return folder


@pytest_lsp.fixture(config=ClientServerConfig(server_command=SERVER), scope="module")
async def client(lsp_client: LanguageClient, root: Path):
    await lsp_client.initialize_session(
        types.InitializeParams(
            capabilities=client_capabilities("visual-studio-code"),
            root_uri=root.as_uri(),
            workspace_folders=[types.WorkspaceFolder(uri=root.as_uri(), name="shop")],
            initialization_options=SETTINGS,
        )
    )
    for _ in range(400):
        stats = await lsp_client.protocol.send_request_async("codenook/stats", {})
        index = getattr(stats, "index", None)
        states = [getattr(i, "state", "") for i in (index._asdict().values() if index else [])]
        if stats.state == "idle" and states and all(s == "ready" for s in states):
            break
        await asyncio.sleep(0.05)
    yield
    await lsp_client.shutdown_session()


@pytest.mark.asyncio(loop_scope="module")
async def test_hover_on_an_imported_name_asks_with_the_other_files_definition(
    client: LanguageClient, root: Path
):
    uri = (root / "shop" / "orders.py").as_uri()
    client.text_document_did_open(
        types.DidOpenTextDocumentParams(types.TextDocumentItem(uri, "python", 1, ORDERS))
    )
    line = ORDERS.split("\n").index("    return sum(parse_price(p) for p in prices)")
    params = types.HoverParams(
        text_document=types.TextDocumentIdentifier(uri),
        position=types.Position(line, len("    return sum(parse_")),
    )
    hover = await client.text_document_hover_async(params)
    assert hover is not None
    signature = 'def parse_price(text: str, currency: str = "EUR") -> float:'
    assert hover.contents.value.startswith(f"```python\n{signature}\n```")
    traces = [m.message for m in client.log_messages if m.message.startswith("hover ")]
    assert traces, "trace.prompts logs the hover question"
    prompt = traces[-1].split("--- prompt ---\n", 1)[1]
    assert "shop/models.py" in prompt
    assert signature in prompt
    assert "the currency is checked, not converted" in prompt  # the docstring came along
    assert "decoy" not in prompt  # the import chose the file
    stats = await client.protocol.send_request_async("codenook/stats", {})
    assert stats.lastHover.definedIn == "shop/models.py"


def test_a_name_defined_in_this_file_is_explained_from_this_file() -> None:
    target = Target("f", "def f(): pass", "def f():", "python")
    definition = extract("m.py", "def f(x):\n    return x\n")
    assert definition is not None
    assert with_definitions(target, definition.definitions) is target


def test_the_question_names_the_file_and_shows_the_definition() -> None:
    entry = extract("shop/models.py", MODELS)
    assert entry is not None
    use = Target("parse_price", "return parse_price(p)", "return parse_price(p)", "python")
    target = with_definitions(Target(**{**vars(use), "in_file": False}), entry.definitions)
    assert target.defined_in == "shop/models.py"
    assert target.signature == 'def parse_price(text: str, currency: str = "EUR") -> float:'
    question = hover_messages(target)[1].content
    assert "return parse_price(p)" in question
    assert "`shop/models.py`" in question and "Read a price such as" in question
