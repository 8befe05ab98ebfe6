"""Which folders the index skips: what .gitignore and index.exclude say, not folder names.

A project's own ``vendor/`` or ``third_party/`` that its files import is its code and is
indexed; only what is never the user's code (version control, tool caches, installed
dependencies recognised by their content) is skipped whatever .gitignore says.
"""

from __future__ import annotations

import threading
from pathlib import Path

from codenook.settings import parse_settings
from codenook.workspace.context import WorkspaceContext
from codenook.workspace.index import BuildStats, WorkspaceIndex
from codenook.workspace.index.files import ExcludeRules, list_source_files, set_exclude

APP = "from vendor.lib.util import slugify\n\n\ndef title(text):\n    return slugify(text)\n"
UTIL = "def slugify(text):\n    return text.lower()\n"


def write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)


def listed(root: Path, exclude: list[str] | None = None) -> list[str]:
    return list_source_files(str(root), exclude=exclude or [])[0]


def test_a_committed_vendor_folder_that_the_project_imports_is_indexed(tmp_path: Path) -> None:
    (tmp_path / ".git").mkdir()
    write(tmp_path, {"app.py": APP, "vendor/lib/util.py": UTIL, "third_party/x/y.py": UTIL})
    index = WorkspaceIndex(tmp_path)
    index.build(workers=0)
    assert index.paths() == ["app.py", "third_party/x/y.py", "vendor/lib/util.py"]
    assert [d.path for d in index.definitions("slugify")] == [
        "third_party/x/y.py",
        "vendor/lib/util.py",
    ]


def test_the_same_vendor_folder_is_skipped_when_gitignored(tmp_path: Path) -> None:
    (tmp_path / ".git" / "info").mkdir(parents=True)
    (tmp_path / ".git" / "info" / "exclude").write_text("third_party/\n")
    (tmp_path / ".gitignore").write_text("vendor/\n")
    write(tmp_path, {"app.py": APP, "vendor/lib/util.py": UTIL, "third_party/x/y.py": UTIL})
    index = WorkspaceIndex(tmp_path)
    index.build(workers=0)
    assert index.paths() == ["app.py"]
    assert index.definitions("slugify") == ()


def test_build_output_names_are_indexed_unless_ignored(tmp_path: Path) -> None:
    names = ["build/gen.py", "dist/out.js", "lib/dist/keep.py", "target/main.rs"]
    write(tmp_path, dict.fromkeys(names, "x = 1\n"))
    assert listed(tmp_path) == names
    (tmp_path / ".gitignore").write_text("/dist/\nbuild\ntarget/\n")
    assert listed(tmp_path) == ["lib/dist/keep.py"]  # /dist/ is anchored to the top


def test_index_exclude_patterns_skip_files_and_folders(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "app.py": "x = 1\n",
            "generated/api.py": "x = 1\n",
            "generated/deep/models.py": "x = 1\n",
            "generated/keep.py": "x = 1\n",
            "src/schema.gen.ts": "let x = 1\n",
            "src/main.ts": "let x = 1\n",
        },
    )
    everything = listed(tmp_path)
    assert "generated/api.py" in everything and "src/schema.gen.ts" in everything
    assert listed(tmp_path, ["generated/**"]) == ["app.py", "src/main.ts", "src/schema.gen.ts"]
    assert listed(tmp_path, ["generated/**", "!generated/keep.py", "*.gen.ts"]) == [
        "app.py",
        "generated/keep.py",
        "src/main.ts",
    ]
    assert listed(tmp_path, ["generated/"]) == ["app.py", "src/main.ts", "src/schema.gen.ts"]
    # what .gitignore ignores stays ignored: index.exclude only adds to it
    (tmp_path / ".gitignore").write_text("app.py\n")
    assert listed(tmp_path, ["!app.py"]) == [
        "generated/api.py",
        "generated/keep.py",  # a folder's files come before its subfolders'
        "generated/deep/models.py",
        "src/main.ts",
        "src/schema.gen.ts",
    ]


def test_exclude_rules_judge_single_paths() -> None:
    rules = ExcludeRules(["generated/**", "!generated/keep.py", "/out/", "*.gen.ts"])
    assert rules.excluded("generated/api.py")
    assert rules.excluded("generated/a/b.py")
    assert not rules.excluded("generated/keep.py")
    assert rules.excluded("out/a.py")  # below an excluded folder
    assert not rules.excluded("src/out/a.py")  # anchored
    assert rules.excluded("src/x.gen.ts")
    assert not rules.excluded("src/x.ts")
    assert not ExcludeRules()
    assert not ExcludeRules([" "])


def test_the_index_uses_the_patterns_set_for_its_folder(tmp_path: Path) -> None:
    write(tmp_path, {"app.py": "x = 1\n", "generated/api.py": "x = 1\n"})
    set_exclude(str(tmp_path), ["generated/**"])
    try:
        index = WorkspaceIndex(tmp_path)
        index.build(workers=0)
        assert index.paths() == ["app.py"]
    finally:
        set_exclude(str(tmp_path), [])
    index = WorkspaceIndex(tmp_path)
    index.build(workers=0)
    assert index.paths() == ["app.py", "generated/api.py"]


def test_what_is_never_the_users_code_is_skipped_whatever_gitignore_says(tmp_path: Path) -> None:
    (tmp_path / ".gitignore").write_text("!node_modules/\n!__pycache__/\n!.git/\n")
    write(
        tmp_path,
        {
            "app.py": "x = 1\n",
            "node_modules/dep/index.js": "function dep() {}\n",
            "__pycache__/app.py": "x = 1\n",
            ".git/hooks/hook.py": "x = 1\n",
            ".mypy_cache/a.py": "x = 1\n",
            "lib/site-packages/pkg/mod.py": "x = 1\n",
            "pkg.egg-info/setup.py": "x = 1\n",
            # a virtualenv by its pyvenv.cfg, whatever its name
            "env-3.12/pyvenv.cfg": "home = /usr/bin\n",
            "env-3.12/lib/python3.12/os.py": "x = 1\n",
            "env-3.12/bin/activate_this.py": "x = 1\n",
            # a package of the user's that happens to be called venv
            "venv/__init__.py": "x = 1\n",
            # Go's `go mod vendor` copy, by its modules.txt
            "go/vendor/modules.txt": "# github.com/pkg/errors v0.9.1\n",
            "go/vendor/github.com/pkg/errors/errors.go": "package errors\n",
            "go/main.go": "package main\n",
        },
    )
    assert listed(tmp_path) == ["app.py", "go/main.go", "venv/__init__.py"]


def test_a_huge_generated_folder_without_gitignore_is_bounded_by_max_files(
    tmp_path: Path,
) -> None:
    """Nothing names a generated dist/ any more: index.maxFiles is the guard."""
    write(tmp_path, {f"dist/chunk{i:03}.js": f"function f{i}() {{}}\n" for i in range(40)})
    index = WorkspaceIndex(tmp_path, max_files=10)
    stats = index.build(workers=0)
    assert len(index.paths()) == 10
    assert "index.maxFiles" in stats.stopped


def test_index_exclude_setting_reaches_the_index_and_a_change_rebuilds(tmp_path: Path) -> None:
    settings, problems = parse_settings({"index": {"exclude": ["generated/**"]}})
    assert problems == [] and settings.index.exclude == ("generated/**",)
    _, bad = parse_settings({"index.exclude": "generated/**"})
    assert bad and "index.exclude" in bad[0]

    write(tmp_path, {"app.py": "x = 1\n", "generated/api.py": "def api(): pass\n"})
    built: list[BuildStats | None] = []
    done = threading.Event()

    def on_done(root: str, stats: BuildStats | None, error: BaseException | None) -> None:
        built.append(stats)
        done.set()

    context = WorkspaceContext(workers=0, exclude=settings.index.exclude, on_done=on_done)
    try:
        context.set_folders([str(tmp_path)])
        assert done.wait(30)
        index = context.indexes[str(tmp_path)]
        assert index.paths() == ["app.py"]
        # a file event for an excluded file does not add it
        event = ((tmp_path / "generated" / "api.py").as_uri(), "changed")
        context.files_changed([event], lambda uri: False)
        assert index.paths() == ["app.py"]
        context.files_changed([((tmp_path / "app.py").as_uri(), "changed")], lambda uri: False)
        assert index.paths() == ["app.py"]

        done.clear()
        context.exclude = ()
        assert done.wait(30)
        assert context.indexes[str(tmp_path)].paths() == ["app.py", "generated/api.py"]
    finally:
        context.close()
        set_exclude(str(tmp_path), [])
