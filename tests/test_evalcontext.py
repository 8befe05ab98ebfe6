"""The recall harness end to end on the fixture project (approximate token counts)."""

from __future__ import annotations

import json
import re
from pathlib import Path

from codenook.devtools import evalcontext
from codenook.devtools.evalcontext.holes import find_holes, hole_kind

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


def _kinds_project(root: Path) -> Path:
    """A package whose app uses names of each hole kind, one per line."""
    files = {
        "pkg/__init__.py": "",
        "pkg/models.py": (
            "class Customer:\n    name: str\n\n\n"
            "def parse_price(text):\n    return float(text)\n\n\n"
            "class Cart:\n    def checkout_total(self):\n        return 0\n"
        ),
        "pkg/util.py": "def slugify_name(text):\n    return text.lower()\n",
        "pkg/helpers.py": "def star_helper(x):\n    return x\n",
        "pkg/app.py": (
            "from pkg.models import Customer, Cart\n"
            "from pkg import util\n"
            "import pkg.models as m\n"
            "from pkg.helpers import *\n\n\n"
            "def main(cart: Cart):\n"
            "    customer = Customer()\n"
            '    slug = util.slugify_name("x")\n'
            '    price = m.parse_price("1")\n'
            "    total = cart.checkout_total()\n"
            "    value = star_helper(total)\n"
            "    return customer, slug, price, value\n"
        ),
    }
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


def test_holes_have_a_kind_from_how_the_line_uses_the_name(tmp_path: Path) -> None:
    from codenook.workspace.index import WorkspaceIndex

    index = WorkspaceIndex(_kinds_project(tmp_path))
    index.build(workers=0)
    kinds = {hole.name: hole.kind for hole in find_holes(index, 100, seed=0)}
    assert kinds["Customer"] == "imported"
    assert kinds["slugify_name"] == "module.attr"  # a submodule taken by a `from` import
    assert kinds["parse_price"] == "module.attr"  # an aliased module
    assert kinds["checkout_total"] == "obj.attr"
    assert kinds["star_helper"] == "bare"  # a wildcard import binds no name of its own


def test_hole_kind_reads_the_receiver_in_each_language() -> None:
    modules = frozenset({"fmt", "store", "utils", "api"})
    imported = frozenset({"Config"})
    cases = [
        ("x = store.Open(path)", "Open", "", "module.attr"),
        ("return api.fetch(url);", "fetch", "", "module.attr"),
        ("this.fetch(url);", "fetch", "", "obj.attr"),
        ("x := s.db.Get(key)", "Get", "", "obj.attr"),
        ("let v = parser::parse(src);", "parse", "", "module.attr"),
        ("let v = Parser::new(src);", "new", "", "obj.attr"),
        ("p->next = node;", "next", "", "obj.attr"),
        ("get().value", "value", "", "obj.attr"),
        ("c = Config(path)", "Config", "", "imported"),
        ("def f(x: Config):", "Config", "", "imported"),  # an annotation, not an access
        ("v := NewThing()", "NewThing", "", "bare"),
        ("local s = utils.split(x)", "split", "lua", "module.attr"),
        ("local n = self:count()", "count", "lua", "obj.attr"),
    ]
    for line, name, language, kind in cases:
        column = re.search(rf"\b{name}\b", line).start()  # type: ignore[union-attr]
        assert hole_kind(line, column, name, modules, imported, language) == kind, line


def test_eval_context_reports_recall_per_hole_kind(tmp_path: Path, capsys) -> None:
    out = tmp_path / "report.json"
    project = _kinds_project(tmp_path / "project")
    args = [str(project), "--tokenizer", "approx", "--budgets", "16,512", "--holes", "20"]
    code = evalcontext.main([*args, "--perf-lines", "0", "--workers", "0", "--json", str(out)])
    assert code == 0
    printed = capsys.readouterr().out
    assert "| language | hole kind | holes | recall @16 | recall @512 |" in printed
    assert "| python | module.attr | 2 |" in printed
    report = json.loads(out.read_text())["repos"][0]
    by_kind = report["recall_by_kind"]
    assert set(by_kind) == {"python", "all"}
    assert set(by_kind["python"]) == {"imported", "module.attr", "obj.attr", "bare"}
    for kind, row in by_kind["python"].items():
        holes = [h for h in report["holes"] if h["kind"] == kind]
        assert row["holes"] == len(holes)
        hits = sum(1 for h in holes if h["recalled"]["512"])
        assert row["recall@512"] == round(100 * hits / len(holes), 1)
    assert by_kind["all"] == by_kind["python"]


def test_model_tokenizer_is_read_vocabulary_only(monkeypatch, capsys) -> None:
    """``--model`` counts with the GGUF's tokenizer without loading its weights (a real
    model's would take seconds and gigabytes); a missing file is a clear error."""
    import pytest

    from codenook.engine import llama
    from codenook.engine.models import embedded_default

    model = embedded_default()
    if model is None:
        pytest.skip("the embedded SmolLM2 is not installed")

    def no_weights(*args, **kwargs):
        raise AssertionError("eval-context loaded the model's weights")

    monkeypatch.setattr(llama.LlamaEngine, "__init__", no_weights)
    args = [str(PROJECT), "--holes", "5", "--perf-lines", "0", "--budgets", "128"]
    assert evalcontext.main([*args, "--workers", "0", "--model", str(model)]) == 0
    assert f"tokenizer: {model.name}" in capsys.readouterr().out
    with pytest.raises(SystemExit, match="model file not found"):
        evalcontext.main([*args, "--model", str(PROJECT / "missing.gguf")])
