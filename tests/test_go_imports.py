"""Go imports by the module path of the nearest go.mod; the standard library never resolves
into the workspace; another module's packages only when vendored."""

from __future__ import annotations

from pathlib import Path

from codenook.workspace.index import WorkspaceIndex, module_candidates
from index_project import chunks_at, project

STORE = (
    "package store\n\n// Open opens the store.\n"
    "func Open(path string) (*DB, error) {\n\treturn nil, nil\n}\n"
)
SYSLOG = "package syslog\n\nfunc Dial(network string) int {\n\treturn 0\n}\n"
MAIN = """package main

import (
\t"log/syslog"
\t"net/http"

\t"github.com/acme/tool/internal/store"
\t"github.com/other/lib/store"
)

func main() {
\tdb, _ := store.Open("x")
\tsyslog.Dial("udp")
\t_ = http.StatusOK
\t_ = db
}
"""


def tool(tmp_path: Path, extra: dict[str, str] | None = None) -> WorkspaceIndex:
    return project(
        tmp_path,
        {
            "go.mod": "module github.com/acme/tool\n\ngo 1.22\n",
            "internal/store/store.go": STORE,
            "syslog/syslog.go": SYSLOG,
            "http/http.go": "package http\n\nconst StatusOK = 200\n",
            "cmd/tool/main.go": MAIN,
            **(extra or {}),
        },
    )


def test_the_module_path_names_a_workspace_directory(tmp_path: Path) -> None:
    index = tool(tmp_path)
    importer = "cmd/tool/main.go"
    assert index.go_module("cmd/tool") == ("", "github.com/acme/tool")
    assert index.resolve(importer, "github.com/acme/tool/internal/store", "go") == (
        "internal/store/store.go",
    )
    assert index.resolve("internal/x.go", "github.com/acme/tool", "go") == ()  # root: no .go


def test_the_standard_library_never_resolves_into_the_workspace(tmp_path: Path) -> None:
    index = tool(tmp_path)
    for path in ("log/syslog", "net/http", "fmt", "syslog"):
        assert index.resolve("cmd/tool/main.go", path, "go") == (), path
    assert module_candidates("go", "log/syslog", "main.go", "r", ("", "example.com/m")) == []
    assert module_candidates("go", "log/syslog", "main.go", "r") == []


def test_other_modules_resolve_only_when_vendored(tmp_path: Path) -> None:
    index = tool(tmp_path)
    assert index.resolve("cmd/tool/main.go", "github.com/other/lib/store", "go") == ()
    assert module_candidates(
        "go", "github.com/other/lib/store", "a/main.go", "r", ("a", "example.com/m")
    ) == ["./a/vendor/github.com/other/lib/store/"]


def test_the_context_shows_the_module_package_not_a_namesake(tmp_path: Path) -> None:
    index = tool(tmp_path)
    chunks = chunks_at(index, "cmd/tool/main.go", "\t_ = db", 400, len, after=False)
    by_path = {c.path: c for c in chunks}
    assert "func Open(path string) (*DB, error) {" in by_path["internal/store/store.go"].text
    assert by_path["internal/store/store.go"].group == "imports"
    assert "syslog/syslog.go" not in by_path or by_path["syslog/syslog.go"].group != "imports"


def test_the_nearest_go_mod_wins(tmp_path: Path) -> None:
    index = tool(
        tmp_path,
        {
            "tools/gen/go.mod": "module example.com/gen\n",
            "tools/gen/util/util.go": "package util\n\nfunc Gen() {}\n",
            "tools/gen/main.go": 'package main\n\nimport "example.com/gen/util"\n',
        },
    )
    assert index.go_module("tools/gen") == ("tools/gen", "example.com/gen")
    assert index.resolve("tools/gen/main.go", "example.com/gen/util", "go") == (
        "tools/gen/util/util.go",
    )
    # The root module does not see into the nested one by its own path.
    assert index.resolve("cmd/tool/main.go", "example.com/gen/util", "go") == ()


def test_without_go_mod_a_path_suffix_still_resolves(tmp_path: Path) -> None:
    index = project(
        tmp_path,
        {
            "geom/geom.go": "package geom\n\nfunc Distance() {}\n",
            "main.go": 'package main\n\nimport "example.com/proj/geom"\n',
            "syslog/syslog.go": SYSLOG,
        },
    )
    assert index.go_module("") is None
    assert index.resolve("main.go", "example.com/proj/geom", "go") == ("geom/geom.go",)
    assert index.resolve("main.go", "log/syslog", "go") == ()


def test_a_dotless_module_path_is_still_the_module(tmp_path: Path) -> None:
    index = project(
        tmp_path,
        {
            "go.mod": "module tool\n",
            "store/store.go": STORE,
            "main.go": 'package main\n\nimport "tool/store"\n',
        },
    )
    assert index.resolve("main.go", "tool/store", "go") == ("store/store.go",)


def test_the_exact_package_directory_not_the_first_namesake(tmp_path: Path) -> None:
    index = tool(tmp_path, {"store/store.go": "package store\n\nfunc Top() {}\n"})
    assert index.resolve("cmd/tool/main.go", "github.com/acme/tool/store", "go") == (
        "store/store.go",
    )
    assert index.resolve("cmd/tool/main.go", "github.com/acme/tool/internal/store", "go") == (
        "internal/store/store.go",
    )
