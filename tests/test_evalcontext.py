"""The recall harness end to end on the fixture project (approximate token counts)."""

from __future__ import annotations

import json
from pathlib import Path

from codenook.devtools import evalcontext
from codenook.devtools.evalcontext.holes import find_holes

PROJECT = Path(__file__).parent / "fixtures" / "project"


def test_eval_context_reports_recall_timings_and_keystrokes(tmp_path: Path, capsys) -> None:
    out = tmp_path / "report.json"
    code = evalcontext.main(
        [
            str(PROJECT),
            "--tokenizer",
            "approx",
            "--budgets",
            "64,256",
            "--holes",
            "40",
            "--perf-lines",
            "300",
            "--workers",
            "0",
            "--json",
            str(out),
        ]
    )
    assert code == 0
    printed = capsys.readouterr().out
    assert "| language | holes | recall @64 | recall @256 |" in printed
    report = json.loads(out.read_text())["repos"][0]
    table = report["recall"]
    assert table["all"]["holes"] == len(report["holes"]) > 5
    assert len(table) > 4  # several languages of the project have holes
    assert table["all"]["recall@256"] >= table["all"]["recall@64"]
    assert table["all"]["recall@256"] >= 80
    for hole in report["holes"]:
        assert hole["defined_in"] != hole["path"]
    keystrokes = report["keystrokes"]
    assert keystrokes["keystrokes"] > 10
    assert keystrokes["chunk_list_changes"] == 0


def test_holes_are_lines_using_a_name_defined_once_elsewhere() -> None:
    from codenook.workspace.index import WorkspaceIndex

    index = WorkspaceIndex(PROJECT)
    index.build(workers=0)
    holes = find_holes(index, 100, seed=1)
    assert holes
    for hole in holes:
        line = (PROJECT / hole.path).read_text().split("\n")[hole.line]
        assert hole.name in line
        assert [d.path for d in index.definitions(hole.name)] == [hole.defined_in]
        assert not line.lstrip().startswith(("import ", "from ", "#include", "use "))
