"""A re-parse past the keystroke's budget: the previous tree stands in, edited, and the tree
finished in the background is exactly the tree a fresh parse of the text builds.

``Document.PARSE_BUDGET_S = 0`` stops every re-parse at tree-sitter's first progress check,
so these tests take the background road on almost every edit whatever the machine's speed
(no timings are asserted). They would fail if the stopped parse were resumed instead of
redone: a resumed tree-sitter parse does not always build a fresh parse's tree.
"""

from __future__ import annotations

import random

import pytest
from lsp_reference import random_edit

from codenook.completion.context import (
    Budget,
    build_completion_context,
    enclosing_headers,
    import_lines,
)
from codenook.text import documents
from codenook.text.documents import Document, DocumentStore
from codenook.text.positions import Encoding
from codenook.text.rope import Rope
from test_documents import SNIPPETS, SOURCES, _assert_same_tree, _lsp_position

# Openings whose closer comes later or never: each can turn the rest of the file into a
# string or a comment, the most expensive re-parse there is.
UNCLOSED = {
    "python": ['"""', "'''", '"', "'", "f'", "(", "["],
    "typescript": ["`", "/*", '"', "'", "{", "("],
    "rust": ['"', "/*", 'r#"', "{", "("],
}


@pytest.fixture
def no_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Document, "PARSE_BUDGET_S", 0.0)


def _utf8(text: str) -> int:
    return len(text.encode("utf-8"))


@pytest.mark.usefixtures("no_budget")
@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("language_name", sorted(SOURCES))
def test_a_tree_finished_in_the_background_is_a_fresh_parse(language_name: str, seed: int) -> None:
    rng = random.Random(f"budget-{language_name}-{seed}")
    source, name = SOURCES[language_name]
    text = source * 6  # long enough that a re-parse reaches a progress check
    doc = Document(f"file:///w/{name}", text, 1)
    snippets = SNIPPETS[language_name] + UNCLOSED[language_name] * 3
    stale = finished = 0
    for step in range(150):
        a, b, new = random_edit(text, rng, snippets, reach=30, cap=6000)
        encoding = rng.choice(list(Encoding))
        start = _lsp_position(text, a, encoding, rng)
        end = _lsp_position(text, b, encoding, rng)
        before = doc.snapshot()
        old_end = before.tree.root_node.end_byte if before.tree is not None else 0
        doc.apply_edit(start, end, new, encoding, version=step + 2)
        shift = _utf8(new) - _utf8(text[a:b])
        text = text[:a] + new + text[b:]
        snapshot = doc.snapshot()
        assert snapshot.text == text and snapshot.tree is not None
        if snapshot.tree_stale:
            stale += 1
            # The previous tree, edited: its extent follows the text.
            assert snapshot.tree.root_node.end_byte == old_end + shift
        if rng.random() < 0.3:  # otherwise keep typing while the background parse runs
            _assert_same_tree(doc, language_name)
            finished += 1
    _assert_same_tree(doc, language_name)
    assert stale > 10 and finished > 10


@pytest.mark.usefixtures("no_budget")
def test_context_reads_the_previous_tree_while_a_docstring_is_open() -> None:
    """Typing an opening triple quote makes the rest of the file a string; until the parse
    of that finishes, the context keeps the imports and headers of the tree before it."""
    body = "".join(
        f"    def method_{i}(self, x: int) -> int:\n        return x + {i}\n\n" for i in range(300)
    )
    text = f"import os\nfrom typing import Any\n\n\nclass Big:\n{body}"
    doc = Document("file:///w/big.py", text, 1)
    line = text[: text.index("return x + 250")].count("\n")
    column = len("        ")
    budget = Budget(prefix_tokens=200, suffix_tokens=50, header_tokens=200)

    def context(typed: str = "") -> tuple[str, list[tuple[int, int]], list[int]]:
        snapshot = doc.snapshot()
        offset = snapshot.lines.line_start(line) + column + len(typed)
        byte = snapshot.lines.rope.utf8_offset(offset)
        ctx = build_completion_context(snapshot, offset, budget, lambda s: len(s) // 3, "big.py")
        # The scopes around the cursor; where a header ends is approximate when the edit
        # touches the body's first line (the body now starts after the inserted quotes).
        scopes = [first for first, _ in enclosing_headers(snapshot, byte)]
        return ctx.header, import_lines(snapshot), scopes

    expected = context()
    assert "class Big:" in expected[0] and "import os" in expected[0]
    doc.apply_edit((line, column), (line, column), '"""', Encoding.UTF16, 2)
    assert doc.snapshot().tree_stale
    assert context('"""') == expected
    doc.finish_parse()
    assert not doc.snapshot().tree_stale
    assert doc.tree is not None and doc.tree.root_node.has_error  # the string runs to the end


@pytest.mark.usefixtures("no_budget")
def test_node_text_is_the_text_the_tree_was_parsed_from_or_none() -> None:
    """``node.text`` of a complete tree reads that tree's own text; an edited (stale) tree
    has none (py-tree-sitter drops the source on ``edit``), so no one can read old text at
    new positions through it."""
    source = SOURCES["python"][0] * 6
    doc = Document("file:///w/a.py", source, 1)
    assert doc.tree is not None and doc.tree.root_node.text == source.encode("utf-8")
    doc.apply_edit((0, 0), (0, 0), '"""', Encoding.UTF16, 2)
    snapshot = doc.snapshot()
    assert snapshot.tree_stale and snapshot.tree is not None
    assert snapshot.tree.root_node.text is None
    doc.finish_parse()
    assert doc.tree is not None and doc.tree.root_node.text == doc.text.encode("utf-8")


@pytest.mark.usefixtures("no_budget")
def test_a_new_text_abandons_the_background_parse() -> None:
    source = SOURCES["python"][0] * 6
    store = DocumentStore()
    doc = store.open("file:///w/a.py", source, 1, "python")
    doc.apply_edit((0, 0), (0, 0), '"""', Encoding.UTF16, 2)
    assert doc.parse_pending
    doc.replace_all("y = 2\n", 3)
    assert not doc.parse_pending and doc.finish_parse(0)
    _assert_same_tree(doc, "python")
    doc.apply_edit((0, 0), (0, 0), '"""', Encoding.UTF16, 4)
    job = doc._job
    store.close(doc.uri)
    assert job is None or job.cancelled


def test_keystrokes_never_join_the_whole_text(monkeypatch: pytest.MonkeyPatch) -> None:
    """The edit, the line index and the re-parse read the text chunk by chunk."""
    joins = 0
    real = Rope.__str__

    def counting(rope: Rope) -> str:
        nonlocal joins
        joins += rope._joined is None
        return real(rope)

    monkeypatch.setattr(Rope, "CHUNK", 256)
    monkeypatch.setattr(Rope, "__str__", counting)
    text = SOURCES["python"][0] * 20
    doc = Document("file:///w/a.py", text, 1)
    line, column = 40, 0
    for version, ch in enumerate("def typed(x):\n    return '😀'\n", start=2):
        doc.apply_edit((line, column), (line, column), ch, Encoding.UTF16, version)
        line, column = (
            (line + 1, 0) if ch == "\n" else (line, column + len(ch.encode("utf-16-le")) // 2)
        )
    assert joins == 0
    _assert_same_tree(doc, "python")


def test_the_parse_thread_yields_between_reads() -> None:
    """The background parse reads in short pieces: each read is a point where it hands
    Python's lock to the event loop's thread."""
    assert documents._Reparse.READ_BYTES <= 8192 and documents._Reparse.YIELD_S <= 0.002


@pytest.mark.usefixtures("no_budget")
@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_edits_made_while_the_background_parse_runs_are_caught_up(
    seed: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The parse thread is played by the test: jobs wait in a list while edits arrive (the
    job replays them before it is done) and finish before other edits (the document replays
    those when it adopts the job's tree)."""
    queued: list[documents._Reparse] = []
    monkeypatch.setattr(documents, "_submit", queued.append)
    rng = random.Random(f"catch-up-{seed}")
    source, name = SOURCES["python"]
    text = source * 6
    doc = Document(f"file:///w/{name}", text, 1)
    snippets = SNIPPETS["python"] + UNCLOSED["python"] * 3
    ran = 0
    for step in range(120):
        a, b, new = random_edit(text, rng, snippets, reach=30, cap=6000)
        start = _lsp_position(text, a, Encoding.UTF16, rng)
        end = _lsp_position(text, b, Encoding.UTF16, rng)
        doc.apply_edit(start, end, new, Encoding.UTF16, version=step + 2)
        text = text[:a] + new + text[b:]
        if queued and rng.random() < 0.3:
            queued.pop(0).run()  # the parse thread's turn
            ran += 1
        if rng.random() < 0.2:
            while queued:
                queued.pop(0).run()
            _assert_same_tree(doc, "python")
    while queued:
        queued.pop(0).run()
    _assert_same_tree(doc, "python")
    assert doc.text == text and ran > 5


@pytest.mark.usefixtures("no_budget")
def test_a_failed_background_parse_is_done_here(monkeypatch: pytest.MonkeyPatch) -> None:
    """A background parse that fails is not retried in the background (that could fail the
    same way forever): the document parses on its own thread instead."""

    def fail(self: documents._Reparse, parser: object, old: object) -> None:
        raise RuntimeError("no parse today")

    monkeypatch.setattr(documents._Reparse, "_parse", fail)
    doc = Document("file:///w/a.py", SOURCES["python"][0] * 6, 1)
    doc.apply_edit((3, 0), (3, 0), "x = [1,\n", Encoding.UTF16, 2)
    assert doc.finish_parse(10)
    _assert_same_tree(doc, "python")
