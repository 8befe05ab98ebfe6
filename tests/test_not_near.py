""" "Not near" candidates: what the name being typed needs when nothing near the cursor uses it
yet (workspace/nearby.py): the outline of what is before the dot, imported names not used yet,
`mod.name`s used elsewhere in the file, the package's other files; and the chunk list staying
identical while a name is typed after the dot."""

from __future__ import annotations

from pathlib import Path

from codenook.text.documents import Document
from codenook.text.positions import Encoding
from codenook.workspace.activity import ActivitySnapshot
from codenook.workspace.crossfile import Chunk, ContextMemo, build_crossfile_context
from codenook.workspace.index import WorkspaceIndex
from codenook.workspace.nearby import dot_target
from index_project import chunks_at, project, words


def lines_of(chunks: list[Chunk], path: str) -> list[str]:
    return [line for c in chunks if c.path == path for line in c.text.split("\n")]


def functions(prefix: str, count: int) -> str:
    return "".join(f"def {prefix}_{i}(value, size):\n    return value\n\n" for i in range(count))


# `big` comes first in import order: its outline fills a small budget before `pkg`'s.
PACKAGE = {
    "big.py": functions("big", 30),
    "pkg/__init__.py": "from ._impl import *\n",
    "pkg/_impl.py": "def alpha(x):\n    return x\n\n\ndef beta(y):\n    return y\n",
    "main.py": "import big\nimport pkg\n\n\nvalue = pkg.\n",
}


def test_the_module_before_the_dot_is_outlined_first(tmp_path: Path) -> None:
    index = project(tmp_path, PACKAGE)
    with_dot = chunks_at(index, "main.py", "value = pkg.", budget=60)
    assert lines_of(with_dot, "pkg/_impl.py") == ["def alpha(x):", "# ...", "def beta(y):"]
    # The same place before the dot is typed: the imported modules in import order.
    without = chunks_at(index, "main.py", "value = ", budget=60)
    assert lines_of(without, "pkg/_impl.py") == []
    assert "def big_0(value, size):" in lines_of(without, "big.py")


def typed_chunks(
    index: WorkspaceIndex, path: str, marker: str, typed: str, budget: int
) -> list[tuple[Chunk, ...]]:
    """Type ``typed`` just after ``marker``, one character at a time: the chunk list after
    each keystroke (checked against a fresh computation when the memo answers)."""
    text = (Path(index.root) / path).read_text()
    document = Document(f"file://{index.root}/{path}", text, 1)
    offset = text.index(marker) + len(marker)
    point = document.snapshot().lines.point(offset)
    line, column = point.line, point.column
    memo = ContextMemo()
    results = []
    for version, char in enumerate(typed, start=2):
        document.apply_edit((line, column), (line, column), char, Encoding.UTF32, version)
        column += 1
        snapshot = document.snapshot()
        cursor = snapshot.lines.line_start(line) + column
        args = (snapshot, cursor, path, index, ActivitySnapshot(), budget, words)
        fresh = build_crossfile_context(*args)
        assert build_crossfile_context(*args, memo=memo) == fresh
        results.append(fresh.chunks)
    assert memo.hits == len(typed) - 1  # one assembly, at the first keystroke
    return results


def test_chunks_stay_identical_while_typing_after_the_dot(tmp_path: Path) -> None:
    index = project(tmp_path, PACKAGE)
    before = tuple(chunks_at(index, "main.py", "value = pkg.", budget=60))
    steps = typed_chunks(index, "main.py", "value = pkg.", "alpha(beta(2), 3", budget=60)
    assert [[(c.path, c.text) for c in chunks] for chunks in steps] == [
        [(c.path, c.text) for c in before]
    ] * len(steps)
    assert any(c.path == "pkg/_impl.py" for c in before)


def test_the_dot_target_is_read_before_the_last_dot() -> None:
    def target(line: str) -> tuple[str, ...]:
        lines = Document("file:///p/a.py", "x = 1\n" + line, 1).snapshot().lines
        return dot_target(lines, len("x = 1\n" + line), 1)

    assert target("value = pkg.") == ("pkg",)
    assert target("value = pkg.al") == ("pkg",)
    assert target("value = pkg.sub.alpha(1, ") == ("pkg", "sub")
    assert target("self.items.append(node.") == ("node",)
    assert target("total = 3.5 + count") == ()
    assert target("return value") == ()


HIERARCHY = {
    "grand.py": "class GrandBase:\n    def grand_method(self, n):\n        return n\n",
    "base.py": (
        "from grand import GrandBase\n\n\nclass Base(GrandBase):\n"
        "    def base_method(self):\n        pass\n"
    ),
    "main.py": (
        "from base import Base\n\n\nclass Child(Base):\n    def run(self):\n"
        "        self.\n        return 1\n"
    ),
}


def test_self_brings_the_members_of_bases_in_other_files(tmp_path: Path) -> None:
    index = project(tmp_path, HIERARCHY)
    with_dot = chunks_at(index, "main.py", "        self.")
    assert lines_of(with_dot, "grand.py") == ["class GrandBase:", "    def grand_method(self, n):"]
    assert "    def base_method(self):" in lines_of(with_dot, "base.py")
    # Nothing near the cursor names GrandBase: without the dot it is not there.
    without = chunks_at(index, "main.py", "        self.", after=False)
    assert lines_of(without, "grand.py") == []


TYPED = {
    "net/__init__.py": "",
    "net/conn.py": (
        "class Connection:\n    timeout: float\n\n    def send(self, data):\n        pass\n\n"
        "    def close(self):\n        pass\n"
    ),
    "net/make.py": "from .conn import Connection\n\n\ndef connect(host) -> Connection:\n    pass\n",
    "app.py": (
        "from net import conn, make\n\n\ndef handle(link: conn.Connection):\n    link.\n\n\n"
        "def other():\n    c = conn.Connection()\n    c.\n\n\n"
        + "y = 0\n" * 100
        + "def third():\n    made = make.connect('h')\n    made.\n"
    ),
}


def test_an_annotated_or_constructed_receiver_brings_its_class_members(tmp_path: Path) -> None:
    index = project(tmp_path, TYPED)
    expected = ["class Connection:", "    timeout: float", "# ...", "    def send(self, data):"]
    expected += ["# ...", "    def close(self):"]
    for marker in ("    link.", "    c.", "    made."):
        assert lines_of(chunks_at(index, "app.py", marker), "net/conn.py") == expected, marker
    # Far from any use of Connection, before the dot: the imported module's outline (class
    # and method signatures, budget permitting), never the fields the dot target brings.
    without = chunks_at(index, "app.py", "    made.", after=False)
    assert "class Connection:" in lines_of(without, "net/conn.py")
    assert "    timeout: float" not in lines_of(without, "net/conn.py")


def test_names_used_elsewhere_in_the_file_through_a_module(tmp_path: Path) -> None:
    # `nodes.Last` is used 80 lines away, far from the cursor; nodes.py's outline, in file
    # order, would not reach it within the budget.
    filler = "".join(f"x{i} = {i}\n" for i in range(80))
    index = project(
        tmp_path,
        {
            "tpl/__init__.py": "",
            "tpl/nodes.py": functions("node", 30) + "class Last:\n    pass\n",
            "tpl/compiler.py": f"from . import nodes\n\nnodes.Last()\n{filler}\nresult = 1\n",
        },
    )
    chunks = chunks_at(index, "tpl/compiler.py", "result = ", budget=30)
    node = [f"def node_{i}(value, size):" for i in range(3)]
    gaps = [node[0], "# ...", node[1], "# ...", node[2], "# ...", "class Last:"]
    assert lines_of(chunks, "tpl/nodes.py") == gaps


def test_imported_names_not_used_yet_come_with_their_members(tmp_path: Path) -> None:
    classes = {
        name: f"class {name}:\n    def {name.lower()}_one(self):\n        pass\n"
        for name in ("Used", "Fresh")
    }
    index = project(
        tmp_path,
        {
            "used.py": classes["Used"],
            "fresh.py": classes["Fresh"],
            "main.py": (
                "from used import Used\nfrom fresh import Fresh\n\nUsed()\n"
                + "y = 0\n" * 80
                + "z = 1\n"
            ),
        },
    )
    chunks = chunks_at(index, "main.py", "z = ", budget=22)
    assert lines_of(chunks, "fresh.py") == ["class Fresh:", "    def fresh_one(self):"]
    assert lines_of(chunks, "used.py") == ["class Used:"]


def test_siblings_in_the_package_come_last(tmp_path: Path) -> None:
    index = project(
        tmp_path,
        {
            "pkg/__init__.py": "",
            "pkg/a.py": "x = 1\n",
            "pkg/b.py": "def beta(y):\n    return y\n",
            "top.py": "z = 2\n",
            "other.py": "def gamma():\n    pass\n",
        },
    )
    chunks = chunks_at(index, "pkg/a.py", "x = ")
    assert [(c.path, c.text) for c in chunks] == [("pkg/b.py", "def beta(y):")]
    # Not in the workspace's top folder (scripts, setup files).
    assert chunks_at(index, "top.py", "z = ") == []


def test_names_the_file_uses_further_away_are_found_nearest_first(tmp_path: Path) -> None:
    """A helper the file calls 100 lines below the cursor, with no import to follow (Go's
    package, Rust's `use super::*`, here a name defined once elsewhere)."""
    filler = "".join(f"    step_{i} = {i}\n" for i in range(100))
    files = {
        "helpers.py": "def far_helper(value, size):\n    return value\n\n\n"
        "def farther_helper(value):\n    return value\n",
        "main.py": "def first():\n    result = 0\n    return result\n\n\n"
        f"def later():\n{filler}    far_helper(1, 2)\n{filler}    farther_helper(3)\n",
    }
    index = project(tmp_path, files)
    chunks = chunks_at(index, "main.py", "    result = 0\n", budget=400)
    assert lines_of(chunks, "helpers.py") == [
        "def far_helper(value, size):",
        "# ...",
        "def farther_helper(value):",
    ]
    # Nearest first: a budget that holds one signature holds the nearer name's.
    small = chunks_at(index, "main.py", "    result = 0\n", budget=12)
    assert lines_of(small, "helpers.py") == ["def far_helper(value, size):"]


def test_modules_bound_by_aliasing_imports_are_outlined_after_the_dot(tmp_path: Path) -> None:
    """`import * as remote from`, `const t = require(...)`, Lua's `local u = require`,
    Python's `import x as h`: the alias before the dot names the module (a module imported
    first, whose outline would fill the budget otherwise, stays out)."""
    many = "".join(f"export function big_{i}(value: number) {{}}\n" for i in range(30))
    lua_many = "".join(f"function B.big_{i}(v) end\n" for i in range(30))
    files = {
        "lib/big.ts": many,
        "lib/bigjs.js": many.replace(": number", "").replace("export ", ""),
        "lib/api.ts": "export function fetchAll(url: string) {}\n",
        "web/main.ts": 'import * as big from "../lib/big"\n'
        'import * as remote from "../lib/api"\n\nconst x = remote.\n',
        "lib/tool.js": "function runTool(name) {}\nmodule.exports = { runTool }\n",
        "web/old.js": 'const big = require("../lib/bigjs")\n'
        'const t = require("../lib/tool")\n\nt.\n',
        "lua/big.lua": f"local B = {{}}\n{lua_many}return B\n",
        "lua/util.lua": "local M = {}\nfunction M.split_words(s) end\nreturn M\n",
        "lua/main.lua": 'local big = require("big")\nlocal u = require("util")\n\nlocal x = u.\n',
        "big.py": functions("big", 30),
        "pkg/__init__.py": "",
        "pkg/helpers.py": "def make_widget(size):\n    return size\n",
        "app.py": "import big\nimport pkg.helpers as h\n\nvalue = h.\n",
    }
    index = project(tmp_path, files)
    cases = [
        ("web/main.ts", "x = remote.", "lib/api.ts", "export function fetchAll(url: string) {}"),
        ("web/old.js", "t.", "lib/tool.js", "function runTool(name) {}"),
        ("lua/main.lua", "local x = u.", "lua/util.lua", "function M.split_words(s) end"),
        ("app.py", "value = h.", "pkg/helpers.py", "def make_widget(size):"),
    ]
    for path, marker, defined_in, signature in cases:
        chunks = chunks_at(index, path, marker, budget=40)
        assert signature in lines_of(chunks, defined_in), (path, chunks)


def test_typing_a_dot_recomputes_only_the_dot_target(tmp_path: Path) -> None:
    """`x = pkg` then `.`: the dot changes the memo's key, but the other candidates (whose
    cost grows with the file) come from the memo; the result is a fresh computation's."""
    files = {**PACKAGE, "main.py": "import big\nimport pkg\n\n\nvalue = \n"}
    index = project(tmp_path, files)
    text = (tmp_path / "main.py").read_text()
    document = Document(f"file://{index.root}/main.py", text, 1)
    line, column = 4, len("value = ")
    memo = ContextMemo()
    for version, char in enumerate("pkg.", start=2):
        document.apply_edit((line, column), (line, column), char, Encoding.UTF32, version)
        column += 1
        snapshot = document.snapshot()
        cursor = snapshot.lines.line_start(line) + column
        args = (snapshot, cursor, "main.py", index, ActivitySnapshot(), 60, words)
        assert build_crossfile_context(*args, memo=memo) == build_crossfile_context(*args)
    assert memo.hits == 2  # `k` and `g`; the dot was assembled again
    assert memo.candidates.hits == 1  # ... from the candidates the first keystroke found
    assert "def alpha(x):" in lines_of(
        list(build_crossfile_context(*args, memo=memo).chunks), "pkg/_impl.py"
    )
