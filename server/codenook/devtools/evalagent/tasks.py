"""The evaluation's tasks and the checks that judge them, over the fixture project.

A check looks only at the directory the task left behind, never at the transcript: what
counts is the code, not what the model said it did. Each check names the first thing wrong,
so that a failing row in the report says where the model went astray. The unittest suite
runs in a subprocess with the interpreter running the evaluation (the fixture needs nothing
beyond the standard library), so a model that breaks the project cannot break the harness.

The fixture is the project as the fix-the-test task finds it: ``apply_discount`` is wrong
on purpose. The other tasks start from it with that bug mended, so that their suite starts
green and any failure in it is theirs.
"""

from __future__ import annotations

import ast
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

FIXTURE = Path(__file__).parent / "fixture"
SUITE_TIMEOUT_S = 60.0
IGNORED = ("__pycache__", "*.pyc")

BROKEN = "    return cents * percent // 100\n"
MENDED = "    return cents * (100 - percent) // 100\n"
OLD_NAME, NEW_NAME = "compute_total", "total_price"
FORMAT, PARAM, DEFAULT = "format_price", "currency", "EUR"


@dataclass(frozen=True)
class Verdict:
    passed: bool
    reason: str = ""  # why not, when it did not pass


PASS = Verdict(True)


@dataclass(frozen=True)
class EvalTask:
    name: str
    text: str
    check: Callable[[Path], Verdict]
    prepare: Callable[[Path], None] | None = None


def copy_fixture(dest: Path) -> None:
    shutil.copytree(FIXTURE, dest, ignore=shutil.ignore_patterns(*IGNORED), dirs_exist_ok=True)


def mend_discount(root: Path) -> None:
    pricing = root / "shop" / "pricing.py"
    text = pricing.read_text(encoding="utf-8")
    if BROKEN not in text:
        raise RuntimeError(f"the fixture's {pricing} no longer holds its known bug")
    pricing.write_text(text.replace(BROKEN, MENDED), encoding="utf-8")


# -- reading the result ----------------------------------------------------------------------


def _files(root: Path, suffix: str = "") -> Iterator[Path]:
    for folder, dirs, names in os.walk(root):
        dirs[:] = sorted(d for d in dirs if d != "__pycache__")
        for name in sorted(names):
            if name.endswith(suffix) and not name.endswith(".pyc"):
                yield Path(folder, name)


def _rel(root: Path, path: Path) -> str:
    return path.relative_to(root).as_posix()


def _parse_all(root: Path) -> dict[str, ast.Module] | Verdict:
    """Every Python file's tree by relative path, or the first file that does not parse."""
    trees: dict[str, ast.Module] = {}
    for path in _files(root, ".py"):
        rel = _rel(root, path)
        try:
            trees[rel] = ast.parse(path.read_bytes(), filename=rel)
        except (SyntaxError, ValueError) as exc:
            return Verdict(False, f"{rel} no longer parses: {exc}")
    return trees


def _references(tree: ast.AST, name: str) -> int:
    """Uses of ``name`` other than its own ``def``: loads, attributes and imports."""
    count = 0
    for node in ast.walk(tree):
        if (
            (isinstance(node, ast.Name) and node.id == name)
            or (isinstance(node, ast.Attribute) and node.attr == name)
            or (isinstance(node, ast.alias) and node.name.split(".")[-1] == name)
        ):
            count += 1
    return count


def _functions(trees: dict[str, ast.Module], name: str) -> list[tuple[str, ast.FunctionDef]]:
    return [
        (rel, node)
        for rel, tree in trees.items()
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef) and node.name == name
    ]


def run_suite(root: Path) -> Verdict:
    """Whether ``python -m unittest`` passes in ``root`` with at least one test run (a suite
    emptied by the model must not count as green)."""
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    env.pop("PYTHONPATH", None)
    try:
        done = subprocess.run(
            [sys.executable, "-m", "unittest"],
            cwd=root,
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            errors="replace",
            timeout=SUITE_TIMEOUT_S,
        )
    except subprocess.TimeoutExpired:
        return Verdict(False, f"the unittest suite did not finish within {SUITE_TIMEOUT_S:g} s")
    output = done.stdout + done.stderr
    ran = re.search(r"^Ran (\d+) tests?", output, re.M)
    if done.returncode == 0 and ran is not None and int(ran.group(1)) > 0:
        return PASS
    if ran is None or int(ran.group(1)) == 0:
        return Verdict(False, "the unittest suite ran no tests")
    first = re.search(r"^(?:FAIL|ERROR): (\S+)", output, re.M)
    summary = re.search(r"^FAILED \(([^)]*)\)", output, re.M)
    what = f" ({summary.group(1)})" if summary else ""
    where = f", first {first.group(1)}" if first else ""
    return Verdict(False, f"the unittest suite fails{what}{where}")


# -- the checks ------------------------------------------------------------------------------


def check_rename(root: Path) -> Verdict:
    """The old name is gone from every file, the new one is defined, every file that used
    the old name uses the new one, and the suite passes."""
    word = re.compile(rf"\b{OLD_NAME}\b")
    for path in _files(root):
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            continue
        match = word.search(text)
        if match:
            line = text.count("\n", 0, match.start()) + 1
            return Verdict(False, f"{OLD_NAME} still appears in {_rel(root, path)}:{line}")
    trees = _parse_all(root)
    if isinstance(trees, Verdict):
        return trees
    defined = _functions(trees, NEW_NAME)
    if not defined:
        return Verdict(False, f"no function named {NEW_NAME} is defined")
    original = _parse_all(FIXTURE)
    assert not isinstance(original, Verdict)
    for rel, tree in original.items():
        if _references(tree, OLD_NAME) and rel in trees and not _references(trees[rel], NEW_NAME):
            return Verdict(False, f"{rel} used {OLD_NAME} and does not use {NEW_NAME}")
    return run_suite(root)


def _passes(call: ast.Call, position: int) -> bool:
    """Whether a call gives the parameter at ``position`` (by keyword or by position)."""
    if any(k.arg == PARAM or k.arg is None for k in call.keywords):
        return True  # a ``**kwargs`` may carry it: give the model the benefit of the doubt
    return any(isinstance(a, ast.Starred) for a in call.args) or len(call.args) > position


def check_parameter(root: Path) -> Verdict:
    """``format_price`` takes ``currency`` with the default ``"EUR"`` and uses it, every call
    outside the tests passes it, and the suite (which calls it without) still passes."""
    trees = _parse_all(root)
    if isinstance(trees, Verdict):
        return trees
    found = _functions(trees, FORMAT)
    if not found:
        return Verdict(False, f"no function named {FORMAT} is defined")
    _, func = found[0]
    args = func.args
    positional = [*args.posonlyargs, *args.args]
    with_default = positional[len(positional) - len(args.defaults) :]
    defaults = {a.arg: d for a, d in zip(with_default, args.defaults, strict=True)}
    keyword = zip(args.kwonlyargs, args.kw_defaults, strict=True)
    defaults.update({a.arg: d for a, d in keyword if d is not None})
    names = [a.arg for a in positional] + [a.arg for a in args.kwonlyargs]
    if PARAM not in names:
        return Verdict(False, f"{FORMAT} has no parameter {PARAM}")
    if PARAM not in defaults:
        return Verdict(False, f"{FORMAT}'s parameter {PARAM} has no default")
    try:
        default = ast.literal_eval(defaults[PARAM])
    except (ValueError, TypeError):
        default = ast.unparse(defaults[PARAM])
    if default != DEFAULT:
        return Verdict(False, f"{PARAM} defaults to {default!r}, not {DEFAULT!r}")
    body = ast.Module(body=func.body, type_ignores=[])
    if not any(isinstance(n, ast.Name) and n.id == PARAM for n in ast.walk(body)):
        return Verdict(False, f"{FORMAT} never uses {PARAM}")
    position = next(
        (i for i, a in enumerate(positional) if a.arg == PARAM), len(positional) + len(names)
    )
    calls = 0
    for rel, tree in trees.items():
        if rel.startswith("tests/"):
            continue
        nodes = sorted(
            (n for n in ast.walk(tree) if isinstance(n, ast.Call)),
            key=lambda n: (n.lineno, n.col_offset),
        )
        for node in nodes:
            callee = node.func
            name = callee.id if isinstance(callee, ast.Name) else getattr(callee, "attr", "")
            if name != FORMAT:
                continue
            calls += 1
            if not _passes(node, position):
                return Verdict(False, f"the call of {FORMAT} on {rel}:{node.lineno} omits {PARAM}")
    if not calls:
        return Verdict(False, f"{FORMAT} is no longer called outside the tests")
    return run_suite(root)


def check_fixed(root: Path) -> Verdict:
    """The suite passes and every test file is as the fixture has it: a test edited into
    agreement with the bug is not a fix."""
    for original in _files(FIXTURE / "tests"):
        rel = _rel(FIXTURE, original)
        copy = root / rel
        if not copy.is_file():
            return Verdict(False, f"{rel} was removed")
        if copy.read_bytes() != original.read_bytes():
            return Verdict(False, f"{rel} was changed (the task forbids changing the tests)")
    return run_suite(root)


TASKS: tuple[EvalTask, ...] = (
    EvalTask(
        "rename",
        f"Rename the function {OLD_NAME} to {NEW_NAME} everywhere in this project: its"
        " definition, every import and every call, the tests included. Then run the tests"
        " with `python -m unittest` and call finish.",
        check_rename,
        mend_discount,
    ),
    EvalTask(
        "add-parameter",
        f'Add a parameter {PARAM} with the default value "{DEFAULT}" to the function'
        f' {FORMAT} in shop/receipt.py, and use it instead of the fixed "{DEFAULT}" in the'
        f" text it returns. Then change every call of {FORMAT} in shop/ to pass"
        f' {PARAM}="{DEFAULT}" explicitly (leave the tests as they are). Run the tests with'
        " `python -m unittest` and call finish.",
        check_parameter,
        mend_discount,
    ),
    EvalTask(
        "fix-test",
        "The project's tests fail: run `python -m unittest` to see how. Find the bug in the"
        " project's code and fix it without changing anything under tests/. Run the tests"
        " again to confirm, then call finish.",
        check_fixed,
    ),
)
BY_NAME: dict[str, EvalTask] = {task.name: task for task in TASKS}
