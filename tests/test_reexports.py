"""Re-exports followed to the defining file: Python `__init__.py`, TypeScript/JavaScript
barrels, Rust `pub use`; aliases on the way, cycles and depth bounded."""

from __future__ import annotations

from pathlib import Path

from codenook.workspace.crossfile import Chunk
from codenook.workspace.index import WorkspaceIndex
from codenook.workspace.references import import_targets
from index_project import chunks_at, project


def chunks_after(index: WorkspaceIndex, path: str, marker: str, budget: int = 400) -> list[Chunk]:
    return chunks_at(index, path, marker, budget)


def lines_of(chunks: list[Chunk], path: str) -> list[str]:
    return [line for c in chunks if c.path == path for line in c.text.split("\n")]


# Many same-named definitions elsewhere: without following the import, a name defined in
# more than 3 files is not shown at all (see references.MAX_DEFINITIONS_PER_NAME).
DECOYS = {f"decoy{i}.py": "def helper(y):\n    return y\n" for i in range(4)}


def test_python_wildcard_reexport_reaches_the_defining_file(tmp_path: Path) -> None:
    index = project(
        tmp_path,
        {
            "pkg/__init__.py": "from ._impl import *\n",
            "pkg/_impl.py": "def helper(x):\n    return x\n",
            "main.py": "from pkg import helper\n\nvalue = helper(1)\nhelper(",
            **DECOYS,
        },
    )
    chunks = chunks_after(index, "main.py", "helper(1)\nhelper(")
    assert "def helper(x):" in lines_of(chunks, "pkg/_impl.py"), [c.render() for c in chunks]
    assert not any(c.path.startswith("decoy") for c in chunks)
    assert index.follow(("pkg/__init__.py",), "helper", "python") == (("pkg/_impl.py", "helper"),)


def test_python_wildcard_with_all_and_init_chains(tmp_path: Path) -> None:
    index = project(
        tmp_path,
        {
            "pkg/__init__.py": "from .sub import *\n",
            "pkg/sub/__init__.py": '__all__ = ["helper"]\nfrom .inner import helper\n',
            "pkg/sub/inner/__init__.py": "from ._deep import helper\n",
            "pkg/sub/inner/_deep.py": "def helper(x, y):\n    return x\n",
            "main.py": "from pkg import helper\n\nhelper(1, 2)\n",
            **DECOYS,
        },
    )
    assert index.follow(("pkg/__init__.py",), "helper", "python") == (
        ("pkg/sub/inner/_deep.py", "helper"),
    )
    chunks = chunks_after(index, "main.py", "helper(1, 2)\n")
    assert "def helper(x, y):" in lines_of(chunks, "pkg/sub/inner/_deep.py")


def test_python_explicit_and_aliased_reexports(tmp_path: Path) -> None:
    index = project(
        tmp_path,
        {
            "pkg/__init__.py": "from .mod import make as build, Other\n",
            "pkg/mod.py": "def make(size):\n    pass\n\nclass Other:\n    pass\n",
            "main.py": "from pkg import build, Other\n\nbuild(3)\nOther()\n",
        },
    )
    assert index.follow(("pkg/__init__.py",), "build", "python") == (("pkg/mod.py", "make"),)
    assert index.follow(("pkg/__init__.py",), "Other", "python") == (("pkg/mod.py", "Other"),)
    # `make` is not what the package exports under that name: only `build` is bound.
    chunks = chunks_after(index, "main.py", "Other()\n")
    shown = lines_of(chunks, "pkg/mod.py")
    assert "def make(size):" in shown and "class Other:" in shown
    assert all(c.group == "imports" for c in chunks if c.path == "pkg/mod.py")


def test_importing_the_package_whole_outlines_what_it_passes_on(tmp_path: Path) -> None:
    index = project(
        tmp_path,
        {
            "pkg/__init__.py": "from ._impl import *\n",
            "pkg/_impl.py": "def helper(x):\n    return x\n",
            "main.py": "import pkg\n\npkg.",
        },
    )
    chunks = chunks_after(index, "main.py", "pkg.")
    assert "def helper(x):" in lines_of(chunks, "pkg/_impl.py")


def test_cycles_terminate_and_depth_is_bounded(tmp_path: Path) -> None:
    index = project(
        tmp_path,
        {
            "a/__init__.py": "from b import *\n",
            "b/__init__.py": "from a import *\n",
            "c1/__init__.py": "from c2 import *\n",
            "c2/__init__.py": "from c3 import *\n",
            "c3/__init__.py": "from c4 import *\n",
            "c4/__init__.py": "from c5 import *\n",
            "c5/__init__.py": "def far():\n    pass\n",
            "main.py": "from a import nothing\nfrom c1 import far\n\nnothing()\n",
        },
    )
    assert index.follow(("a/__init__.py",), "nothing", "python") == ()
    assert index.passed_on("a/__init__.py", "python") == (("b/__init__.py",), ())
    # c1 -> c2 -> c3 -> c4 is three steps; c5 would be a fourth.
    assert index.follow(("c2/__init__.py",), "far", "python") == (("c5/__init__.py", "far"),)
    assert index.follow(("c1/__init__.py",), "far", "python") == ()
    chunks_after(index, "main.py", "nothing()\n")  # terminates


def test_typescript_barrels(tmp_path: Path) -> None:
    index = project(
        tmp_path,
        {
            "lib/index.ts": (
                "export * from './shapes';\nexport { area as surface } from './math';\n"
            ),
            "lib/shapes.ts": "export function square(side: number): number {\n  return side;\n}\n",
            "lib/math.ts": "export function area(w: number, h: number): number {\n  return w;\n}\n",
            "lib/other.ts": "import { area } from './math';\nexport const unrelated = area;\n",
            "app.ts": ("import { square, surface } from './lib';\n\nsquare(2);\nsurface(1, 2);\n"),
        },
    )
    assert index.follow(("lib/index.ts",), "square", "js") == (("lib/shapes.ts", "square"),)
    assert index.follow(("lib/index.ts",), "surface", "js") == (("lib/math.ts", "area"),)
    # A plain import in a file is not an export of it.
    assert index.follow(("lib/other.ts",), "area", "js") == ()
    chunks = chunks_after(index, "app.ts", "surface(1, 2);\n")
    assert "export function square(side: number): number {" in lines_of(chunks, "lib/shapes.ts")
    assert "export function area(w: number, h: number): number {" in lines_of(chunks, "lib/math.ts")


def test_javascript_barrel_cycle(tmp_path: Path) -> None:
    index = project(
        tmp_path,
        {
            "x.js": "export * from './y.js';\n",
            "y.js": "export * from './x.js';\nexport { go } from './z.js';\n",
            "z.js": "export function go(speed) {\n  return speed;\n}\n",
            "main.js": "import { go, nope } from './x.js';\n\ngo(1);\n",
        },
    )
    assert index.follow(("x.js",), "go", "js") == (("z.js", "go"),)
    assert index.follow(("x.js",), "nope", "js") == ()
    assert "export function go(speed) {" in lines_of(
        chunks_after(index, "main.js", "go(1);\n"), "z.js"
    )


def test_rust_pub_use(tmp_path: Path) -> None:
    index = project(
        tmp_path,
        {
            "src/geometry/mod.rs": "mod circle;\npub use self::circle::area;\n",
            "src/geometry/circle.rs": "pub fn area(r: f64) -> f64 {\n    r * r\n}\n",
            "src/main.rs": (
                "mod geometry;\nuse crate::geometry::area;\n\nfn main() {\n    area(1.0);\n}\n"
            ),
        },
    )
    entry = index.get("src/main.rs")
    assert entry is not None
    targets = import_targets(entry.imports, index, "src/main.rs", None)
    assert targets.names["area"] == ("src/geometry/circle.rs",)
    chunks = chunks_after(index, "src/main.rs", "area(1.0);\n")
    assert "pub fn area(r: f64) -> f64 {" in lines_of(chunks, "src/geometry/circle.rs")
