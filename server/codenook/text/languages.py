"""Which tree-sitter grammar and which queries serve a document.

Adding a language means adding its grammar wheel to the dependencies, a row to ``_SPECS`` and
a folder ``grammars/<name>/`` with its queries; nothing else in codenook names a language.
Queries are read from files so that they can be reviewed and tested as what they are
(capture names: ``grammars/README.md``).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path, PurePosixPath

from tree_sitter import Language, Parser, Query

QUERY_NAMES = ("scopes", "imports", "tags")


@dataclass(frozen=True)
class LanguageSpec:
    name: str
    module: str
    function: str = "language"
    extensions: tuple[str, ...] = ()
    language_ids: tuple[str, ...] = ()
    line_comment: str = "//"
    # How an import's module string names files of the workspace (see ``index.resolve``):
    # "python", "js", "go", "rust", "java", "include" or "lua"; "" resolves nothing.
    import_style: str = ""
    # Files of the same directory see each other's definitions without an import (Go, Java).
    directory_is_package: bool = False
    # The folder under grammars/ holding the queries, when another language's serve as they
    # are (TSX's node types are TypeScript's); defaults to ``name``.
    queries_from: str = ""


_SPECS: tuple[LanguageSpec, ...] = (
    LanguageSpec(
        "python",
        "tree_sitter_python",
        extensions=(".py", ".pyi"),
        line_comment="#",
        import_style="python",
    ),
    LanguageSpec(
        "javascript",
        "tree_sitter_javascript",
        extensions=(".js", ".mjs", ".cjs", ".jsx"),
        language_ids=("javascript", "javascriptreact"),
        import_style="js",
    ),
    LanguageSpec(
        "typescript",
        "tree_sitter_typescript",
        function="language_typescript",
        extensions=(".ts", ".mts", ".cts"),
        import_style="js",
    ),
    LanguageSpec(
        "tsx",
        "tree_sitter_typescript",
        function="language_tsx",
        extensions=(".tsx",),
        language_ids=("typescriptreact",),
        import_style="js",
        queries_from="typescript",
    ),
    LanguageSpec(
        "go", "tree_sitter_go", extensions=(".go",), import_style="go", directory_is_package=True
    ),
    LanguageSpec("rust", "tree_sitter_rust", extensions=(".rs",), import_style="rust"),
    LanguageSpec(
        "java",
        "tree_sitter_java",
        extensions=(".java",),
        import_style="java",
        directory_is_package=True,
    ),
    LanguageSpec("c", "tree_sitter_c", extensions=(".c", ".h"), import_style="include"),
    LanguageSpec(
        "cpp",
        "tree_sitter_cpp",
        extensions=(".cc", ".cpp", ".cxx", ".c++", ".hh", ".hpp", ".hxx", ".h++", ".ipp"),
        language_ids=("c++", "cuda-cpp"),
        import_style="include",
    ),
    LanguageSpec(
        "lua", "tree_sitter_lua", extensions=(".lua",), line_comment="--", import_style="lua"
    ),
)


@dataclass(frozen=True)
class LoadedLanguage:
    """A grammar with its compiled queries; shared read-only by every document of the language."""

    spec: LanguageSpec
    language: Language
    queries: dict[str, Query] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.spec.name

    def parser(self) -> Parser:
        return Parser(self.language)


def grammars_dir() -> Path:
    """The queries ship inside the wheel; an editable checkout reads the repository's folder."""
    packaged = Path(__file__).resolve().parents[1] / "grammars"
    if packaged.is_dir():
        return packaged
    return Path(__file__).resolve().parents[3] / "grammars"


def spec_for(uri_or_path: str, language_id: str | None = None) -> LanguageSpec | None:
    """The language of a document, from the client's languageId first, then the file name."""
    if language_id:
        for spec in _SPECS:
            if language_id == spec.name or language_id in spec.language_ids:
                return spec
    suffix = PurePosixPath(uri_or_path.split("?", 1)[0]).suffix.lower()
    for spec in _SPECS:
        if suffix in spec.extensions:
            return spec
    return None


def comment_prefix(uri_or_path: str, language_id: str | None = None) -> str:
    spec = spec_for(uri_or_path, language_id)
    return spec.line_comment if spec else "#"


@cache
def load(name: str) -> LoadedLanguage:
    """Compile a grammar and its queries once per process (queries take milliseconds each)."""
    spec = next(s for s in _SPECS if s.name == name)
    module = importlib.import_module(spec.module)
    factory: Callable[[], object] = getattr(module, spec.function)
    language = Language(factory())
    queries: dict[str, Query] = {}
    folder = grammars_dir() / (spec.queries_from or name)
    for query_name in QUERY_NAMES:
        path = folder / f"{query_name}.scm"
        if path.is_file():
            queries[query_name] = Query(language, path.read_text(encoding="utf-8"))
    return LoadedLanguage(spec, language, queries)


def all_names() -> tuple[str, ...]:
    return tuple(spec.name for spec in _SPECS)


def extensions() -> list[str]:
    """Every file extension the server understands, without the dot, for file watchers."""
    return sorted({e.lstrip(".") for spec in _SPECS for e in spec.extensions})


def advertised() -> list[dict[str, object]]:
    """The languages the server supports, for clients (``codenook languages --json`` and the
    initialize result's ``capabilities.experimental.codenook.languages``).

    ``languageIds`` holds every id that ``spec_for`` accepts for the language: its name (also
    Neovim's filetype, e.g. "cpp") and its ``language_ids`` (VS Code's, e.g. "typescriptreact").
    """
    out: list[dict[str, object]] = []
    for spec in _SPECS:
        ids = list(dict.fromkeys((spec.name, *spec.language_ids)))
        out.append({"name": spec.name, "languageIds": ids, "extensions": list(spec.extensions)})
    return out
