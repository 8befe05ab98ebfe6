"""The workspace index on a small project in ten languages: queries, skips, updates, threads."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from codenook.completion.context import enclosing_headers, import_lines
from codenook.text import languages
from codenook.text.documents import Document
from codenook.text.positions import utf8_length
from codenook.workspace.index import (
    DEFAULT_MAX_FILE_BYTES,
    IgnoreRules,
    WorkspaceIndex,
    list_source_files,
    module_candidates,
    parse_gitignore,
    walk_files,
)

PROJECT = Path(__file__).parent / "fixtures" / "project"

# language: (file defining things, {(name, kind)}, importing file, module it imports,
#            a text inside a function of the importing file, that function's header start)
LANGUAGES: dict[str, tuple[str, set[tuple[str, str]], str, str, str, str]] = {
    "python": (
        "shop/models.py",
        {
            ("DEFAULT_CURRENCY", "constant"),
            ("Customer", "class"),
            ("greeting", "method"),
            ("parse_price", "function"),
        },
        "shop/orders.py",
        ".models",
        "self.total",
        "def __init__(",
    ),
    "javascript": (
        "web/util.js",
        {
            ("formatName", "function"),
            ("clamp", "function"),
            ("Counter", "class"),
            ("increment", "method"),
        },
        "web/app.js",
        "./util.js",
        "return clamp",
        "function render(",
    ),
    "typescript": (
        "ts/shapes.ts",
        {
            ("Shape", "interface"),
            ("Unit", "type"),
            ("Circle", "class"),
            ("area", "method"),
            ("totalArea", "function"),
        },
        "ts/main.ts",
        "./shapes",
        "console.log",
        "export function print(",
    ),
    "tsx": (
        "ts/Button.tsx",
        {("ButtonProps", "interface"), ("Button", "function")},
        "ts/page.tsx",
        "./Button",
        "return <div>",
        "export const Page",
    ),
    "go": (
        "go/geom/geom.go",
        {("Point", "class"), ("Distance", "function"), ("Scale", "method")},
        "go/main.go",
        "example.com/proj/geom",
        "fmt.Println",
        "func main(",
    ),
    "rust": (
        "rust/src/shapes.rs",
        {
            ("Square", "class"),
            ("Square", "impl"),
            ("area", "method"),
            ("Named", "interface"),
            ("make_square", "function"),
        },
        "rust/src/main.rs",
        "crate::shapes",
        "println!",
        "fn main(",
    ),
    "java": (
        "java/com/example/util/Strings.java",
        {("Strings", "class"), ("shout", "method")},
        "java/com/example/App.java",
        "com.example.util.Strings",
        "System.out",
        "public static void main(",
    ),
    "c": (
        "c/vec.h",
        {("vec", "type"), ("vec_add", "function")},
        "c/main.c",
        "vec.h",
        "printf",
        "int main(",
    ),
    "cpp": (
        "cpp/matrix.hpp",
        {("la", "module"), ("Matrix", "class"), ("transpose", "method"), ("trace", "function")},
        "cpp/main.cpp",
        "matrix.hpp",
        "std::cout",
        "int main(",
    ),
    "lua": (
        "lua/geom/vector.lua",
        {("length", "function"), ("scaled", "method"), ("square", "function")},
        "lua/main.lua",
        "geom.vector",
        "return string",
        "local function describe(",
    ),
}


@pytest.fixture(scope="module")
def index() -> WorkspaceIndex:
    built = WorkspaceIndex(PROJECT)
    built.build(workers=0)
    return built


def test_every_language_is_covered_and_its_queries_compile() -> None:
    assert set(LANGUAGES) == set(languages.all_names())
    for name in languages.all_names():
        loaded = languages.load(name)
        assert set(loaded.queries) == {"scopes", "imports", "tags"}, name


@pytest.mark.parametrize("language", sorted(LANGUAGES))
def test_definitions(index: WorkspaceIndex, language: str) -> None:
    path, expected, *_ = LANGUAGES[language]
    entry = index.get(path)
    assert entry is not None and entry.language == language
    found = {(d.name, d.kind) for d in entry.definitions}
    assert expected <= found, found
    for definition in entry.definitions:
        source_line = (PROJECT / path).read_text().split("\n")[definition.line]
        assert definition.signature == source_line.strip()
        assert any(number == definition.line for number, _ in definition.head)


@pytest.mark.parametrize("language", sorted(LANGUAGES))
def test_imports_resolve_to_the_defining_file(index: WorkspaceIndex, language: str) -> None:
    defining, _, importer, module, *_ = LANGUAGES[language]
    entry = index.get(importer)
    assert entry is not None
    modules = [item.module for item in entry.imports]
    assert module in modules
    spec = languages.spec_for(importer)
    assert spec is not None
    assert defining in index.resolve(importer, module, spec.import_style)


@pytest.mark.parametrize("language", sorted(LANGUAGES))
def test_enclosing_scope_and_import_block(language: str) -> None:
    *_, importer, _, inside, header = LANGUAGES[language]
    text = (PROJECT / importer).read_text()
    document = Document(f"file:///p/{importer}", text, 1)
    snapshot = document.snapshot()
    assert snapshot.language_name == language
    offset = text.index(inside)
    spans = enclosing_headers(snapshot, utf8_length(text[:offset]))
    lines = text.split("\n")
    assert any(lines[first].lstrip().startswith(header) for first, _ in spans), spans
    assert import_lines(snapshot), "the import block is found"


def test_docs_and_fields_are_kept_but_not_bodies(index: WorkspaceIndex) -> None:
    entry = index.get("shop/models.py")
    assert entry is not None
    customer = next(d for d in entry.definitions if d.name == "Customer")
    assert [t for _, t in customer.head] == ["@dataclass", "class Customer:"]
    assert [t.strip() for _, t in customer.doc] == ['"""Someone who buys things."""']
    assert [t.strip() for _, t in customer.fields] == ["name: str", "email: str"]
    price = next(d for d in entry.definitions if d.name == "parse_price")
    assert len(price.head) == 4  # the whole multi-line signature, no body
    assert "return" not in "".join(t for _, t in price.head + price.doc)
    go = index.get("go/geom/geom.go")
    assert go is not None
    distance = next(d for d in go.definitions if d.name == "Distance")
    assert distance.doc[0][1].startswith("// Distance returns")
    scale = next(d for d in go.definitions if d.name == "Scale")
    assert scale.parent == "Point"
    assert [m.name for m in index.members("go/geom/geom.go", "Point")] == ["Scale"]


def test_local_functions_are_not_indexed(tmp_path: Path) -> None:
    (tmp_path / "a.py").write_text(
        "def outer():\n    def inner():\n        pass\n    return inner\n"
    )
    built = WorkspaceIndex(tmp_path)
    built.build(workers=0)
    assert [d.name for d in built.definitions("outer")] == ["outer"]
    assert built.definitions("inner") == ()


def test_update_and_remove_a_file(index: WorkspaceIndex, tmp_path: Path) -> None:
    shutil.copytree(PROJECT / "shop", tmp_path / "shop")
    local = WorkspaceIndex(tmp_path)
    local.build(workers=0)
    assert local.resolve("shop/orders.py", ".taxes", "python") == ()
    generation = local.generation
    entry = local.update_file(
        "shop/taxes.py", 'def vat(amount: float) -> float:\n    """Add VAT."""\n'
    )
    assert entry is not None and local.generation > generation
    assert [d.signature for d in local.definitions("vat")] == ["def vat(amount: float) -> float:"]
    assert local.resolve("shop/orders.py", ".taxes", "python") == ("shop/taxes.py",)
    local.update_file(str(tmp_path / "shop" / "taxes.py"), "def vat2():\n    pass\n")
    assert local.definitions("vat") == ()
    assert [d.name for d in local.definitions("vat2")] == ["vat2"]
    local.remove_file("shop/taxes.py")
    assert local.definitions("vat2") == ()
    assert local.get("shop/taxes.py") is None
    # A file that must be skipped is removed rather than kept stale.
    assert local.update_file("shop/models.py", "x = 1\x00") is None
    assert local.get("shop/models.py") is None


def test_binary_huge_undecodable_and_generated_files_are_skipped(tmp_path: Path) -> None:
    (tmp_path / "good.py").write_text("def good():\n    pass\n")
    (tmp_path / "binary.py").write_bytes(b"def f():\n\x00\x01\x02 pass\n")
    (tmp_path / "latin1.py").write_bytes("def caf\xe9():\n    pass\n".encode("latin-1"))
    (tmp_path / "huge.py").write_text("def huge():\n    pass\n" + "# filler\n" * 20_000)
    (tmp_path / "gen.go").write_text("// Code generated by x. DO NOT EDIT.\npackage a\n")
    (tmp_path / "app.min.js").write_text("function a(){}\n")
    (tmp_path / "bundle.js").write_text("var a=1;" * 2000)
    (tmp_path / "notes.txt").write_text("def not_code(): pass\n")
    (tmp_path / "node_modules" / "dep").mkdir(parents=True)
    (tmp_path / "node_modules" / "dep" / "index.js").write_text("function dep() {}\n")
    (tmp_path / "__pycache__").mkdir()
    (tmp_path / "__pycache__" / "good.py").write_text("def cached(): pass\n")
    built = WorkspaceIndex(tmp_path, max_file_bytes=100_000)
    stats = built.build(workers=0)
    assert built.paths() == ["good.py"]
    assert stats.skipped == {
        "binary": 1,
        "undecodable": 1,
        "huge": 1,
        "generated": 1,
        "minified": 1,
    }
    assert built.update_file("huge.py", (tmp_path / "huge.py").read_text()) is None


def test_gitignore_rules() -> None:
    rules = IgnoreRules()
    rules._by_dir[""] = parse_gitignore(
        "# comment\n*.log\n!keep.log\n/build/\ndocs/**/tmp\nout/\n\\#hash.py\nsecret?.py\n"
    )
    rules._by_dir["pkg"] = parse_gitignore("local.py\n!*.log\n")
    ignored = [
        ("a.log", False),
        ("deep/er/a.log", False),
        ("build", True),
        ("docs/x/y/tmp", False),
        ("docs/tmp", False),
        ("out", True),
        ("#hash.py", False),
        ("secret1.py", False),
        ("pkg/local.py", False),
    ]
    kept = [
        ("keep.log", False),
        ("src/build", True),  # anchored to the root
        ("out", False),  # `out/` matches directories only
        ("pkg/a.log", False),  # re-included by the nested file
        ("secret12.py", False),
        ("local.py", False),
    ]
    for path, is_dir in ignored:
        assert rules.ignored(path, is_dir), path
    for path, is_dir in kept:
        assert not rules.ignored(path, is_dir), path


def test_walker_honours_nested_gitignore_files(tmp_path: Path) -> None:
    (tmp_path / ".gitignore").write_text("ignored/\n*.gen.py\n")
    for name in ("a.py", "b.gen.py", "ignored/c.py", "sub/d.py", "sub/e.py"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("x = 1\n")
    (tmp_path / "sub" / ".gitignore").write_text("e.py\n")
    assert list(walk_files(str(tmp_path))) == ["a.py", "sub/d.py"]


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_git_work_trees_are_walked_with_their_ignore_rules(tmp_path: Path) -> None:
    """git is not run in the folder (its config can name commands, docs/security.md): the
    walker honours .gitignore files and .git/info/exclude the way git would."""
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    (tmp_path / ".gitignore").write_text("skip.py\n!excluded_but_kept.py\n")
    (tmp_path / ".git" / "info").mkdir(exist_ok=True)
    (tmp_path / ".git" / "info" / "exclude").write_text("local.py\nexcluded_but_kept.py\n")
    for name in ("keep.py", "skip.py", "local.py", "excluded_but_kept.py", "vendor/lib.py"):
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_text("x = 1\n")
    paths, how = list_source_files(str(tmp_path))
    assert how == "walk"
    assert paths == ["excluded_but_kept.py", "keep.py", "vendor/lib.py"]  # vendor/: not ignored
    assert list_source_files(str(tmp_path), 1) == (["excluded_but_kept.py"], "walk")


def test_module_candidates() -> None:
    assert module_candidates("python", "..x.y", "a/b/c.py", "root")[0] == "./a/x/y.py"
    assert "flask/app.py" in module_candidates("python", "flask.app", "z.py", "flask")
    assert "app.py" in module_candidates("python", "flask.app", "z.py", "flask")
    assert module_candidates("js", "../lib/util", "src/app/main.ts", "r")[0] == "./src/lib/util"
    assert module_candidates("go", "fmt", "main.go", "r") == []
    assert module_candidates("lua", "a.b", "main.lua", "r") == ["a/b.lua", "a/b/init.lua"]


def test_reads_while_a_build_runs(tmp_path: Path) -> None:
    for i in range(200):
        (tmp_path / f"m{i}.py").write_text(f"def f{i}():\n    pass\n\nclass C{i}:\n    x = {i}\n")
    built = WorkspaceIndex(tmp_path)
    errors: list[BaseException] = []

    def build() -> None:
        try:
            built.build(workers=0)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    thread = threading.Thread(target=build)
    thread.start()
    seen = 0
    while thread.is_alive():
        seen = max(seen, len(built.definitions("f7")) + len(built.paths()))
        built.resolve("m1.py", "m2", "python")
    thread.join()
    assert not errors
    assert len(built.paths()) == 200 and built.state == "ready"
    assert built.resolve("m1.py", "m2", "python") == ("m2.py",)


def test_worker_processes_index_the_same(index: WorkspaceIndex) -> None:
    other = WorkspaceIndex(PROJECT)
    stats = other.build(workers=1)
    assert stats.workers == 1
    assert other.paths() == index.paths()
    for path in index.paths():
        assert other.get(path) == index.get(path)


def test_a_worker_process_answers_batches(index: WorkspaceIndex) -> None:
    from codenook.workspace.index import worker

    process = worker.start_worker(str(PROJECT), DEFAULT_MAX_FILE_BYTES)
    assert process is not None and process.stdin is not None
    paths = [*index.paths()[:3], "missing.py"]
    try:
        answered = worker.ask_worker(process, paths)
    finally:
        process.stdin.close()
        process.wait(timeout=30)
    assert process.returncode == 0
    assert answered == [index.get(path) for path in paths[:3]] + ["unreadable"]


def test_the_worker_runs_isolated_with_only_the_package_on_its_path(tmp_path: Path) -> None:
    import codenook
    from codenook.workspace.index import worker

    assert worker.worker_path() == [str(Path(codenook.__file__).parents[1])]
    command = worker.worker_command(str(PROJECT), 1000)
    assert command[:2] == [sys.executable, "-I"]
    assert command[-3:] == [str(PROJECT), "1000", str(os.getpid())]
    # Started the way the index starts it (from anywhere, whatever PYTHONPATH says), it must
    # import cleanly and exit at the end of its input.
    ran = subprocess.run(
        command,
        input=b"",
        capture_output=True,
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(tmp_path)},
        timeout=60,
    )
    assert ran.returncode == 0 and ran.stderr == b"" and ran.stdout == b""


def _many_files(root: Path, count: int, defs_each: int = 1) -> None:
    for i in range(count):
        body = "".join(f"def f{i}_{j}():\n    pass\n\n" for j in range(defs_each))
        (root / f"m{i:03}.py").write_text(body)


@pytest.mark.parametrize("workers", [0, 1])
def test_the_index_stops_at_max_files_and_says_so(tmp_path: Path, workers: int) -> None:
    _many_files(tmp_path, 40)
    (tmp_path / "binary.py").write_bytes(b"\x00")  # skipped files do not count
    built = WorkspaceIndex(tmp_path, max_files=10)
    stats = built.build(workers=workers)
    assert len(built) == 10 and stats.files == 10
    assert stats.stopped == "index.maxFiles"
    assert "stopped at 10 files (index.maxFiles)" in stats.summary()
    assert stats.definitions == built.definition_count == 10
    # The index stays within the limit as files are created; known files still update.
    (tmp_path / "new.py").write_text("def new():\n    pass\n")
    assert built.update_file("new.py") is None and built.get("new.py") is None
    first = built.paths()[0]
    assert built.update_file(first, "def changed():\n    pass\n") is not None
    assert [d.path for d in built.definitions("changed")] == [first]
    built.remove_file(first)
    assert built.update_file("new.py") is not None and len(built) == 10


def test_the_index_stops_at_max_definitions(tmp_path: Path) -> None:
    _many_files(tmp_path, 20, defs_each=3)
    built = WorkspaceIndex(tmp_path, max_definitions=10)
    stats = built.build(workers=0)
    assert len(built) == 3 and built.definition_count == 9
    assert stats.stopped == "index.maxDefinitions"
    assert "stopped at 3 files (index.maxDefinitions)" in stats.summary()
    unlimited = WorkspaceIndex(tmp_path).build(workers=0)
    assert unlimited.stopped == "" and "stopped" not in unlimited.summary()


def test_listing_stops_too(tmp_path: Path) -> None:
    """Names beyond twice index.maxFiles are not even listed (opening / as a folder)."""
    for i in range(30):
        (tmp_path / f"b{i:02}.py").write_bytes(b"\x00")  # all skipped when read
    built = WorkspaceIndex(tmp_path, max_files=5)
    stats = built.build(workers=0)
    assert len(built) == 0 and stats.skipped == {"binary": 10}
    assert stats.stopped.startswith("index.maxFiles")


def test_a_cpp_header_with_a_h_extension_is_read_as_cpp(tmp_path: Path) -> None:
    (tmp_path / "m.h").write_text(
        "#pragma once\nnamespace x {\nclass A {\n public:\n  int f();\n};\n}\n"
    )
    (tmp_path / "v.h").write_text("typedef struct v { int x; } v;\nint add(int a);\n")
    built = WorkspaceIndex(tmp_path)
    built.build(workers=0)
    cpp, c = built.get("m.h"), built.get("v.h")
    assert cpp is not None and cpp.language == "cpp"
    assert [(d.name, d.parent) for d in cpp.definitions if d.kind == "method"] == [("f", "A")]
    assert c is not None and c.language == "c"
