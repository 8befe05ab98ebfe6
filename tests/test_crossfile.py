"""Cross-file context: resolution through imports, the budget, stability, the activity rings."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from codenook.engine.llama import LlamaEngine
from codenook.lru import CachedCounter
from codenook.text.documents import Document
from codenook.text.positions import Encoding
from codenook.workspace.activity import Activity, ActivitySnapshot
from codenook.workspace.crossfile import (
    Chunk,
    ContextMemo,
    build_crossfile_context,
    rendered_tokens,
)
from codenook.workspace.index import WorkspaceIndex
from index_project import chunks_at, project, words

PROJECT = Path(__file__).parent / "fixtures" / "project"

# language: (importing file, the defining line the context must show)
IMPORTED = {
    "python": ("shop/orders.py", "def parse_price("),
    "javascript": ("web/app.js", "export function formatName(first, last) {"),
    "typescript": ("ts/main.ts", "export function totalArea(shapes: Shape[]): number {"),
    "tsx": ("ts/page.tsx", "export function Button(props: ButtonProps) {"),
    "go": ("go/main.go", "func Distance(a, b Point) float64 {"),
    "rust": ("rust/src/main.rs", "pub fn make_square(side: f64) -> Square {"),
    "java": ("java/com/example/App.java", "public static String shout(String text) {"),
    "c": ("c/main.c", "vec vec_add(vec a, vec b);"),
    "cpp": ("cpp/main.cpp", "double trace(const Matrix& m);"),
    "lua": ("lua/main.lua", "function M.length(v)"),
}


@pytest.fixture(scope="module")
def index() -> WorkspaceIndex:
    built = WorkspaceIndex(PROJECT)
    built.build(workers=0)
    return built


def context_at(
    index: WorkspaceIndex,
    path: str,
    text: str,
    offset: int,
    budget: int = 400,
    activity: ActivitySnapshot | None = None,
    count=words,
) -> tuple[Chunk, ...]:
    document = Document(f"file://{index.root}/{path}", text, 1)
    return build_crossfile_context(
        document.snapshot(), offset, path, index, activity or ActivitySnapshot(), budget, count
    ).chunks


def shown_lines(chunks: tuple[Chunk, ...]) -> set[str]:
    return {line.strip() for chunk in chunks for line in chunk.text.split("\n")}


@pytest.mark.parametrize("language", sorted(IMPORTED))
def test_the_definition_of_an_imported_name_is_in_the_context(
    index: WorkspaceIndex, language: str
) -> None:
    path, signature = IMPORTED[language]
    text = (PROJECT / path).read_text()
    chunks = context_at(index, path, text, len(text))  # the cursor at the end of the file
    assert signature in shown_lines(chunks), [c.render() for c in chunks]
    assert all(chunk.path != path for chunk in chunks)


def test_a_name_used_near_the_cursor_comes_with_its_docstring(index: WorkspaceIndex) -> None:
    text = (PROJECT / "shop/orders.py").read_text()
    chunks = context_at(index, "shop/orders.py", text, text.index("    def describe"), budget=150)
    rendered = "".join(chunk.render() for chunk in chunks)
    assert "def greeting(self, formal: bool = False) -> str:" in rendered
    assert '"""How to address the customer."""' in rendered
    assert "class Customer:" in rendered  # the method's class, so it reads in context
    assert "return" not in rendered  # never a body


@pytest.mark.parametrize("count_name", ["words", "characters"])
def test_the_budget_is_never_exceeded(index: WorkspaceIndex, count_name: str) -> None:
    count = words if count_name == "words" else (lambda text: len(text) // 4 + 1)
    rng = random.Random(7)
    activity = Activity()
    for path in ("shop/models.py", "go/geom/geom.go", "c/vec.h"):
        document = Document(f"file:///p/{path}", (PROJECT / path).read_text(), 1)
        activity.record_visit(path, document.lines, 4)
        activity.record_edit(path, document.lines, 2, 2, 3)
    for path, _ in IMPORTED.values():
        text = (PROJECT / path).read_text()
        for budget in (0, 5, 20, 45, 80, 150, 400):
            offset = rng.randrange(len(text) + 1)
            chunks = context_at(index, path, text, offset, budget, activity.snapshot(), count)
            assert rendered_tokens(chunks, count) <= budget


def test_the_budget_holds_in_model_tokens(index: WorkspaceIndex, smollm_path: Path) -> None:
    engine = LlamaEngine(smollm_path, n_ctx=256, n_batch=64)
    try:
        count = CachedCounter(lambda text: len(engine.tokenize(text)))
        for path, _ in IMPORTED.values():
            text = (PROJECT / path).read_text()
            for budget in (30, 100, 300):
                chunks = context_at(index, path, text, len(text), budget, count=count)
                assert 0 < rendered_tokens(chunks, count) <= budget
    finally:
        engine.close()


def type_text(
    index: WorkspaceIndex, path: str, line: int, typed: str, activity: Activity
) -> list[tuple[Chunk, ...]]:
    """Type ``typed`` at the end of ``line``, one keystroke at a time, recording each edit as
    the server would; the chunk list after every keystroke."""
    document = Document(f"file://{index.root}/{path}", (PROJECT / path).read_text(), 1)
    column = len(document.lines.line_text(line))
    memo = ContextMemo()
    results = []
    for version, char in enumerate(typed, start=2):
        document.apply_edit((line, column), (line, column), char, Encoding.UTF32, version)
        snapshot = document.snapshot()
        if char == "\n":
            activity.record_edit(path, snapshot.lines, line, line, line + 1)
            line, column = line + 1, 0
        else:
            activity.record_edit(path, snapshot.lines, line, line, line)
            column += 1
        offset = snapshot.lines.line_start(line) + column
        context = build_crossfile_context(
            snapshot, offset, path, index, activity.snapshot(), 400, words
        )
        remembered = build_crossfile_context(
            snapshot, offset, path, index, activity.snapshot(), 400, words, memo=memo
        )
        assert remembered == context  # the memo never answers with something else
        results.append(context.chunks)
    assert memo.hits >= len(typed) - 3
    return results


def test_chunks_are_identical_while_typing_on_a_line(index: WorkspaceIndex) -> None:
    activity = Activity()
    for path in ("go/geom/geom.go", "c/vec.h"):  # visited and edited elsewhere earlier
        document = Document(f"file:///p/{path}", (PROJECT / path).read_text(), 1)
        activity.record_visit(path, document.lines, 0)
        activity.record_edit(path, document.lines, 5, 5, 5)
    # Typing names that resolve (parse_price, Customer) on the cursor line changes nothing
    # until the line is left: the cursor line never feeds the selection.
    results = type_text(
        index, "shop/orders.py", 13, "\n        total = parse_price(Customer", activity
    )
    assert results[1], "there is cross-file context"
    assert all(chunks == results[1] for chunks in results[1:])
    groups = [chunk.group for chunk in results[-1]]
    assert "edits" in groups and "visited" in groups
    assert groups == sorted(groups, key=["imports", "visited", "references", "edits"].index)


def test_chunk_order_is_by_group_then_path(index: WorkspaceIndex) -> None:
    text = (PROJECT / "cpp/main.cpp").read_text()
    activity = Activity()
    for path in ("shop/models.py", "web/util.js", "ts/shapes.ts"):
        document = Document(f"file:///p/{path}", (PROJECT / path).read_text(), 1)
        activity.record_visit(path, document.lines, 0)
    chunks = context_at(index, "cpp/main.cpp", text, len(text), 2000, activity.snapshot())
    keys = [(["imports", "visited", "references", "edits"].index(c.group), c.path) for c in chunks]
    assert keys == sorted(keys)
    assert [c.path for c in chunks if c.group == "visited"] == [
        "shop/models.py",
        "ts/shapes.ts",
        "web/util.js",
    ]


def test_edits_merge_while_typing_and_move_with_lines_above() -> None:
    lines = Document("file:///p/a.py", "\n".join(f"line {i}" for i in range(100)), 1).lines
    activity = Activity(max_edits=3, edit_context=2)
    activity.record_edit("a.py", lines, 50, 50, 50)
    activity.record_edit("a.py", lines, 50, 50, 50)  # the same line again: one region
    activity.record_edit("a.py", lines, 51, 51, 52)  # Enter just below: still one region
    edits = activity.snapshot().edits
    assert len(edits) == 1
    assert (edits[0].start_line, edits[0].end_line) == (48, 54)
    activity.record_edit("a.py", lines, 10, 10, 13)  # three lines inserted above
    edits = activity.snapshot().edits
    assert [(e.start_line, e.end_line) for e in edits] == [(8, 15), (51, 57)]
    activity.record_edit("b.py", lines, 0, 0, 0)
    activity.record_edit("c.py", lines, 0, 0, 0)
    assert [e.path for e in activity.snapshot().edits] == ["c.py", "b.py", "a.py"]


def test_visits_evict_near_duplicates() -> None:
    text = "\n".join(f"value_{i} = compute({i})" for i in range(200))
    lines = Document("file:///p/a.py", text, 1).lines
    activity = Activity(visit_lines=32)
    activity.record_visit("a.py", lines, 40)
    activity.record_visit("a.py", lines, 42)  # the same aligned chunk
    assert len(activity.snapshot().visits) == 1
    activity.record_visit("copy.py", lines, 40)  # identical text in another file
    visits = activity.snapshot().visits
    assert [v.path for v in visits] == ["copy.py"]
    activity.record_visit("a.py", lines, 150)
    assert len(activity.snapshot().visits) == 2
    activity.forget("a.py")
    assert [v.path for v in activity.snapshot().visits] == ["copy.py"]


def test_chunks_repeating_the_window_are_dropped(index: WorkspaceIndex) -> None:
    text = (PROJECT / "shop/orders.py").read_text()
    document = Document(f"file://{index.root}/shop/orders.py", text, 1)
    activity = Activity()
    activity.record_edit("shop/orders.py", document.lines, 9, 9, 9)  # inside the window
    activity.record_visit("elsewhere/orders_copy.py", document.lines, 0)  # same text
    chunks = build_crossfile_context(
        document.snapshot(),
        len(text),
        "shop/orders.py",
        index,
        activity.snapshot(),
        400,
        words,
        window=(0, 20),
    ).chunks
    assert {c.group for c in chunks} == {"imports"}


def test_without_an_index_only_activity_counts() -> None:
    text = "x = 1\n"
    document = Document("file:///p/a.py", text, 1)
    other = Document("file:///p/b.py", "def helper():\n    return 2\n", 1)
    activity = Activity()
    activity.record_visit("b.py", other.lines, 0)
    context = build_crossfile_context(
        document.snapshot(), len(text), "a.py", None, activity.snapshot(), 100, words
    )
    assert [(c.path, c.group) for c in context.chunks] == [("b.py", "visited")]
    assert context.text == "b.py\ndef helper():\n    return 2\n\n"


def test_signatures_near_the_cursor_come_before_any_docstring(tmp_path: Path) -> None:
    """A long docstring (effect writes 40-line JSDoc) must not keep the other names near the
    cursor out: every near signature first, docs with what budget is left."""
    doc = "".join(f"    line {i} of a long story\n" for i in range(30))
    files = {
        "lib.py": f'def alpha_one(x):\n    """\n{doc}    """\n    return x\n\n\n'
        "def beta_two(y):\n    return y\n",
        "main.py": "from lib import alpha_one, beta_two\n\n\n"
        "def run():\n    a = alpha_one(1)\n    b = beta_two(2)\n    return a + b\n",
    }
    index = project(tmp_path, files)
    chunks = chunks_at(index, "main.py", "    return a + b", budget=30)
    shown = shown_lines(tuple(chunks))
    assert {"def alpha_one(x):", "def beta_two(y):"} <= shown
    assert "line 0 of a long story" not in shown
    roomy = shown_lines(tuple(chunks_at(index, "main.py", "    return a + b", budget=400)))
    assert "line 0 of a long story" in roomy  # the docs follow when there is room


def test_a_name_after_an_imported_module_is_looked_up_in_that_module(tmp_path: Path) -> None:
    """`d.map(...)` near the cursor: `map` of the module `d` names, not the first three of
    the imported modules that define a `map`."""
    files = {f"{m}.ts": f"export function map(f: (x: number) => {m}) {{}}\n" for m in "abcd"}
    files["main.ts"] = (
        'import * as a from "./a"\nimport * as b from "./b"\nimport * as c from "./c"\n'
        'import * as d from "./d"\n\nconst out = d.map((x) => x)\nconst next = 1\n'
    )
    index = project(tmp_path, files)
    chunks = chunks_at(index, "main.ts", "const next = 1", budget=18)
    assert [c.path for c in chunks] == ["d.ts"]
