"""Files the parser half-understands: their definitions are still indexed, and the errors
are recorded (issue 15).

tree-sitter-typescript 0.23.2 does not know `for (using x of y)` (explicit resource
management, TypeScript 5.2): inside a function the parse goes wrong for the rest of the file
and the root of the tree is an ERROR node, so patterns anchored on `(program ...)` match
nothing there.
"""

from __future__ import annotations

from pathlib import Path

from codenook.devtools.evalcontext.report import parse_error_files, parse_error_lines, run
from codenook.text import languages
from codenook.workspace.index import WorkspaceIndex
from codenook.workspace.index.extract import count_parse_errors, extract

USING_TS = """\
export const LIMIT = 10;

export function read(paths: string[]) {
  for (using file of open(paths)) {
    consume(file);
  }
}

export function parse(text: string): number {
  const local = 1;
  return text.length + local;
}

export const DEFAULT_NAME = "x";
"""

# The same with a comment and a class: the root is a program again, but one top-level ERROR
# swallows everything after `read`.
WITH_CLASS = (
    USING_TS.replace("export function parse", "// Parses one text.\nexport function parse")
    + '\nexport class Reader {\n  read(): string {\n    return "";\n  }\n}\n'
)


def _root_type(language: str, text: str) -> str:
    return languages.load(language).parser().parse(text.encode("utf-8")).root_node.type


def _outline(path: str, text: str) -> list[tuple[str, str, int, str]]:
    entry = extract(path, text)
    assert entry is not None
    return [(d.name, d.kind, d.line, d.parent) for d in entry.definitions]


def test_the_sample_really_has_an_error_root() -> None:
    assert _root_type("typescript", USING_TS) == "ERROR"
    assert _root_type("typescript", USING_TS.replace("using file", "const file")) == "program"


def test_an_error_root_still_yields_its_top_level_definitions() -> None:
    # Before, the outline was empty: LIMIT needed the `(program ...)` anchor, `parse` came
    # out of the broken tree as a function expression. `read` itself is lost: its own
    # statement does not parse.
    assert _outline("src/reader.ts", USING_TS) == [
        ("LIMIT", "constant", 0, ""),
        ("parse", "function", 8, ""),
        ("DEFAULT_NAME", "constant", 13, ""),
    ]


def test_a_top_level_error_region_is_parsed_again_statement_by_statement() -> None:
    assert _root_type("typescript", WITH_CLASS) == "program"
    # Before: no Reader, `parse` a method of nothing and `read` a method without a class.
    assert _outline("src/reader.ts", WITH_CLASS) == [
        ("LIMIT", "constant", 0, ""),
        ("parse", "function", 9, ""),
        ("DEFAULT_NAME", "constant", 14, ""),
        ("Reader", "class", 16, ""),
        ("read", "method", 17, "Reader"),
    ]


def test_definitions_recovered_keep_their_doc_and_signature() -> None:
    entry = extract("src/reader.ts", WITH_CLASS)
    assert entry is not None
    parse = next(d for d in entry.definitions if d.name == "parse")
    assert parse.head == ((9, "export function parse(text: string): number {"),)
    assert parse.doc == ((8, "// Parses one text."),)
    assert parse.end_line == 12


def test_an_error_swallowing_the_rest_of_a_program() -> None:
    # The root is a program, but one ERROR child swallows the rest of the file: the class
    # after it was missing and `parse` came out as a method of nothing.
    text = (
        "export const LIMIT = 10;\n\n"
        "export async function readAll(paths: string[]) {\n"
        "  for (await using file of open(paths)) {\n"
        "    consume(file);\n  }\n}\n\n"
        "export function parse(text: string): number {\n  return 1;\n}\n\n"
        "export class Reader {\n  read(): string {\n    return '';\n  }\n}\n"
    )
    assert _root_type("typescript", text) == "program"
    assert _outline("a.ts", text) == [
        ("LIMIT", "constant", 0, ""),
        ("parse", "function", 8, ""),
        ("Reader", "class", 12, ""),
        ("read", "method", 13, "Reader"),
    ]


def test_constants_under_a_top_level_error_node_match_the_relaxed_anchor() -> None:
    # One line: no statement to cut at, so only `(ERROR (export_statement ...)) @toplevel`
    # finds A.
    text = "export const A = 1; export function f() { for (using x of y) {} } export const B = 2;\n"
    assert _root_type("typescript", text) == "ERROR"
    assert ("A", "constant", 0, "") in _outline("a.ts", text)


def test_constants_under_an_error_inside_a_callback_stay_local() -> None:
    text = (
        'describe("x", () => {\n'
        "  for (using x of y) { const local = 1; }\n"
        "});\n"
        "export const B = 2;\n"
    )
    assert _outline("a.test.ts", text) == [("B", "constant", 3, "")]


def test_javascript_and_python_files_with_errors_keep_their_definitions() -> None:
    js = "export const LIMIT = 10;\nexport function parse() {}\nclass Open {\n  m() {\n"
    assert _root_type("javascript", js) == "ERROR"
    names = [name for name, *_ in _outline("a.js", js)]
    assert names[:2] == ["LIMIT", "parse"]
    python = (
        "LIMIT = 10\n\ndef parse(text):\n    return (\n\nNAME = 'x'\n\nclass Reader:\n    pass\n"
    )
    outline = _outline("a.py", python)
    assert ("LIMIT", "constant", 0, "") in outline
    assert ("Reader", "class", 7, "") in outline


def test_parse_errors_are_counted_on_the_entry() -> None:
    entry = extract("src/reader.ts", USING_TS)
    assert entry is not None and entry.parse_errors > 0
    clean = extract("src/ok.ts", "export const LIMIT = 10;\n")
    assert clean is not None and clean.parse_errors == 0
    tree = languages.load("typescript").parser().parse(b"const = ;")
    assert count_parse_errors(tree.root_node) >= 1


def test_the_index_and_eval_context_report_files_with_parse_errors(tmp_path: Path) -> None:
    (tmp_path / "reader.ts").write_text(WITH_CLASS)
    (tmp_path / "ok.ts").write_text("export const OK = 1;\n")
    (tmp_path / "broken.ts").write_text("const s = `abc ${x\n")
    index = WorkspaceIndex(tmp_path)
    index.build(workers=0)
    entry = index.get("reader.ts")
    assert entry is not None and entry.parse_errors > 0
    assert [d.name for d in index.definitions("LIMIT")] == ["LIMIT"]
    broken = parse_error_files(index)
    assert [item["path"] for item in broken] == sorted(
        ["reader.ts", "broken.ts"],
        key=lambda p: -index.get(p).parse_errors,  # type: ignore[union-attr]
    )
    reader = next(item for item in broken if item["path"] == "reader.ts")
    assert reader["definitions"] == 5
    assert reader["kinds"] == {"class": 1, "constant": 2, "function": 1, "method": 1}
    lines = parse_error_lines(broken, 3)
    assert (
        lines[0]
        == "parse errors: 2 of 3 files; 5 definitions still extracted from them; 1 with none"
    )
    assert any(
        line.startswith("  reader.ts: ")
        and line.endswith("error nodes; 1 class, 2 constant, 1 function, 1 method")
        for line in lines
    )
    assert any(
        line.startswith("  broken.ts: ") and line.endswith("no definitions") for line in lines
    )
    printed: list[str] = []
    report = run(str(tmp_path), [64], 5, 0, lambda t: len(t) // 3, perf_lines=0, log=printed.append)
    assert report["parse_errors"] == broken
    assert lines[0] in printed
