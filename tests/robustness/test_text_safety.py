"""Text safety: codenook's copy of a document is exactly the editor's, whatever the text holds.

LSP breaks lines at ``\\n``, ``\\r\\n`` and ``\\r`` only. Python's ``str.splitlines`` (which
pygls uses for its own copy) also breaks at ``\\v``, ``\\f``, ``\\x1c``-``\\x1e``, ``\\x85``,
U+2028 and U+2029, so pygls's copy goes wrong as soon as a document holds one of them. These
tests type around those characters over stdio and check that what a code action writes back
lands exactly where the editor expects, and that the document model agrees with an
independent implementation of LSP positions (``lsp_reference``, which the test editor uses too).
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import sys
from pathlib import Path
from typing import Any

import pytest
import pytest_lsp
from lsp_editor import Editor
from lsp_reference import lsp_line_starts, lsp_position, random_edit, random_offset
from lsprotocol import types
from pygls.exceptions import JsonRpcException
from pytest_lsp import ClientServerConfig, LanguageClient, client_capabilities

from codenook.text.documents import Document
from codenook.text.positions import Encoding
from test_documents import _assert_same_tree

TESTS = Path(__file__).resolve().parent.parent
ROOT = TESTS / "workspace"
SERVE_FAKE = [sys.executable, str(TESTS / "serve_fake.py")]

# Every character str.splitlines splits on that LSP does not treat as a line break.
NOT_BREAKS = "\v\f\x1c\x1d\x1e\x85\u2028\u2029"


# -- typing around the characters, then a code action over stdio --------------------------------

BEFORE = (
    "import math\n"
    "\n"
    "\n"
    "def scale(value):\n"
    "    \f# factor\u2028 and\u2029 more\x85 here\x1c\x1d\x1e\v end\n"
    "    return value * 2 + 1\n"
    "\n"
    "\n"
    "x = scale(2)\n"
)
# What the typing below leaves of the function, and the scripted model's docstring version.
TYPED = (
    "def scale(value):\n"
    "    \f# factor\u2028 😀and\u2029 more\x85 here\x1c\x1d\x1e\v end!\n"
    "    y = '\f\u2028'\n"
    "    return value * 3 + 1"
)
DOCUMENTED = (
    "def scale(value):\n"
    '    """Scale\u2028 a value\f."""\n'
    "    \f# factor\u2028 😀and\u2029 more\x85 here\x1c\x1d\x1e\v end!\n"
    "    y = '\f\u2028'\n"
    "    return value * 3 + 1"
)
REPLY = f"```python\n{DOCUMENTED}\n```\n"


@pytest_lsp.fixture(
    config=ClientServerConfig(
        server_command=SERVE_FAKE,
        server_env={**os.environ, "CODENOOK_FAKE": json.dumps({"reply": REPLY, "step_s": 0.001})},
    ),
    scope="module",
)
async def client(lsp_client: LanguageClient):
    editor = Editor(lsp_client, ROOT)
    lsp_client.editor = editor  # type: ignore[attr-defined]

    @lsp_client.feature(types.WORKSPACE_APPLY_EDIT)
    def apply_edit(ls: LanguageClient, params: types.ApplyWorkspaceEditParams) -> Any:
        return editor.apply(params)

    await lsp_client.initialize_session(
        types.InitializeParams(
            capabilities=client_capabilities("visual-studio-code"),
            root_uri=ROOT.as_uri(),
            initialization_options={
                "completion": {"speculative": False},
                "index": {"enabled": False},
            },
        )
    )
    for _ in range(200):
        stats = await lsp_client.protocol.send_request_async("codenook/stats", {})
        if stats.state == "idle":
            break
        await asyncio.sleep(0.05)
    yield lsp_client
    await lsp_client.shutdown_session()


def _type(editor: Editor, uri: str, at: int, text: str, delete: int = 0) -> None:
    editor.change(uri, at, at + delete, text)


@pytest.mark.asyncio(loop_scope="module")
async def test_code_action_after_typing_around_non_lsp_line_breaks(client: LanguageClient) -> None:
    editor: Editor = client.editor  # type: ignore[attr-defined]
    uri = editor.open("text_safety.py", BEFORE)

    def text() -> str:
        return str(editor.docs[uri][1])

    # Typed one keystroke at a time, each change in UTF-16 positions of the editor's text.
    _type(editor, uri, text().index(" and\u2029") + 1, "😀")
    for at in (text().index("\f#"), text().index("\f#") + 1, text().index("\u2028 ")):
        _type(editor, uri, at, "z")  # right before and after the \f, before the U+2028
        _type(editor, uri, at, "", delete=1)  # and gone again
    _type(editor, uri, text().index("2 + 1"), "3", delete=1)
    # A column past the end of a line means its end (pygls clamped it, in place, to before
    # the U+2028 it took for a line end).
    line_end = text().index(" end\n") + len(" end")
    at_999 = types.Range(types.Position(4, 999), types.Position(4, 999))
    editor.send(uri, types.TextDocumentContentChangePartial(range=at_999, text="!"))
    editor.docs[uri][1] = text()[:line_end] + "!" + text()[line_end:]
    line_end += 1
    for ch in "\n    y = '\f\u2028'":
        _type(editor, uri, line_end, ch)
        line_end += 1
    before = text()
    assert TYPED in before
    region = before.index(TYPED)

    result = await _docstring(client, uri)
    assert result["status"] == "applied", result
    expected = before[:region] + DOCUMENTED + before[region + len(TYPED) :]
    assert text() == expected


async def _docstring(client: LanguageClient, uri: str) -> Any:
    """Run the docstring action with the cursor in ``def scale``."""
    editor: Editor = client.editor  # type: ignore[attr-defined]
    line, _ = lsp_position(editor.docs[uri][1], editor.docs[uri][1].index("def scale"))
    args = {
        "uri": uri,
        "version": editor.docs[uri][0],
        "range": {"start": {"line": line, "character": 4}, "end": {"line": line, "character": 4}},
        "action": "docstring",
    }
    return await client.workspace_execute_command_async(
        types.ExecuteCommandParams(command="codenook.runAction", arguments=[args])
    )


@pytest.mark.asyncio(loop_scope="module")
async def test_a_change_that_does_not_fit_silences_the_document_until_a_full_sync(
    client: LanguageClient,
) -> None:
    """No copy is taken from pygls: the document answers nothing until the editor resends it."""
    editor: Editor = client.editor  # type: ignore[attr-defined]
    text = BEFORE.replace(BEFORE[BEFORE.index("def ") : BEFORE.index("\n\n\nx")], TYPED)
    uri = editor.open("out_of_sync.py", text)
    past_the_end = types.Range(types.Position(99, 0), types.Position(99, 0))
    editor.send(uri, types.TextDocumentContentChangePartial(range=past_the_end, text="x"))
    with pytest.raises(JsonRpcException) as failed:
        await _docstring(client, uri)
    assert failed.value.code == -32803 and "out of sync" in str(failed.value)
    completion = await client.text_document_inline_completion_async(
        types.InlineCompletionParams(
            text_document=types.TextDocumentIdentifier(uri),
            position=types.Position(4, 4),
            context=types.InlineCompletionContext(
                trigger_kind=types.InlineCompletionTriggerKind.Invoked
            ),
        )
    )
    assert list(completion.items) == []
    # A ranged change on top of a text codenook does not have is not applied either.
    editor.change(uri, 0, 0, "# more\n")
    with pytest.raises(JsonRpcException):
        await _docstring(client, uri)
    # The editor sends its whole text: everything works again, on the editor's text.
    editor.send(uri, types.TextDocumentContentChangeWholeDocument(text=str(editor.docs[uri][1])))
    before = str(editor.docs[uri][1])
    result = await _docstring(client, uri)
    assert result["status"] == "applied", result
    assert editor.docs[uri][1] == before.replace(TYPED, DOCUMENTED)


# -- the document model against the reference, over random edits ------------------------------

SNIPPETS = ["x", "é", "😀", " ", "\n", "\r\n", "\r", "ab\ncd", "q\rr", *NOT_BREAKS]
SNIPPETS += [f"a{c}b" for c in NOT_BREAKS] + [f"{c}\n{c}" for c in NOT_BREAKS]


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("name", ["notes.txt", "a.py"])
def test_apply_edit_matches_lsp_reference_with_every_line_break(seed: int, name: str) -> None:
    rng = random.Random(f"text-safety-{seed}")
    source = "def f(x):\n    \f# a\u2028b\r\n    return x\x85 + 1\rz = '\u2029'\v\x1c\x1d\x1e\n"
    doc = Document(f"file:///w/{name}", source, 1)
    expected = source
    for step in range(300):
        a, b, new = random_edit(expected, rng, SNIPPETS, reach=12, cap=600)
        encoding = rng.choice(tuple(Encoding))
        start = lsp_position(expected, a, encoding)
        end = lsp_position(expected, b, encoding)
        doc.apply_edit(start, end, new, encoding, version=step + 2)
        expected = expected[:a] + new + expected[b:]
        assert doc.text == expected, f"step {step}: {encoding.value} {start}-{end} {new!r}"
        lines = doc.lines
        starts = lsp_line_starts(expected)
        assert lines.line_count == len(starts)
        for _ in range(5):
            offset = random_offset(expected, rng)
            assert lines.position(offset, encoding) == lsp_position(expected, offset, encoding)
            line, column = lsp_position(expected, offset, encoding)
            assert lines.offset(line, column, encoding) == offset
        if doc.tree is not None and step % 20 == 19:
            _assert_same_tree(doc, "python")  # tree-sitter's rows end at \n only
    assert (doc.tree is not None) == name.endswith(".py")
