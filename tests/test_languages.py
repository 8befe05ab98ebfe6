"""``codenook languages``: the list editor clients read before the server starts.

The VS Code extension and the Neovim plugin run ``codenook languages --json`` (no model, about
0.1 s) to decide which documents start the server; these tests pin what they rely on.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from typing import Any

from codenook.text.languages import advertised, spec_for

# The ten languages of the server, in its order.
SERVER_LANGUAGES = [
    "python",
    "javascript",
    "typescript",
    "tsx",
    "go",
    "rust",
    "java",
    "c",
    "cpp",
    "lua",
]


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "codenook", "languages", *args],
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )


def languages_json() -> list[dict[str, Any]]:
    proc = run("--json")
    assert proc.returncode == 0, proc.stderr
    decoded = json.loads(proc.stdout)
    assert isinstance(decoded, list)
    return decoded


def test_json_lists_all_ten_languages_in_the_documented_shape() -> None:
    langs = languages_json()
    assert [lang["name"] for lang in langs] == SERVER_LANGUAGES
    for lang in langs:
        assert set(lang) == {"name", "languageIds", "extensions"}, lang
        ids, exts = lang["languageIds"], lang["extensions"]
        assert isinstance(ids, list) and ids and all(isinstance(i, str) and i for i in ids), lang
        assert isinstance(exts, list) and exts, lang
        for ext in exts:
            assert isinstance(ext, str) and ext.startswith(".") and len(ext) > 1, lang
        # The name is also an id: it is Neovim's filetype (cpp, lua, ...).
        assert lang["name"] in ids, lang
    ids = [i for lang in langs for i in lang["languageIds"]]
    assert len(ids) == len(set(ids)), "an id names one language only"
    exts = [e for lang in langs for e in lang["extensions"]]
    assert len(exts) == len(set(exts)), "an extension names one language only"
    # VS Code's own ids for what the server calls otherwise.
    by_name = {lang["name"]: lang for lang in langs}
    assert "typescriptreact" in by_name["tsx"]["languageIds"]
    assert "javascriptreact" in by_name["javascript"]["languageIds"]


def test_every_id_and_extension_maps_back_through_spec_for() -> None:
    for lang in languages_json():
        name = lang["name"]
        for language_id in lang["languageIds"]:
            # By id alone (an untitled document has no file name to go by).
            spec = spec_for("untitled:Untitled-1", language_id)
            assert spec is not None and spec.name == name, (language_id, spec)
        for ext in lang["extensions"]:
            # By file name alone (a language id VS Code does not know, e.g. for `.ipp`).
            for uri in (f"file:///w/src/module{ext}", f"/w/src/module{ext}"):
                spec = spec_for(uri, "plaintext")
                assert spec is not None and spec.name == name, (uri, spec)


def test_json_is_what_the_initialize_result_advertises() -> None:
    # The clients ask the CLI before start and follow the initialize result afterwards.
    assert languages_json() == advertised()


def test_table_prints_a_header_and_a_row_per_language() -> None:
    proc = run()
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].split() == ["language", "language", "ids", "extensions"]
    rows = lines[1:]
    assert [row.split()[0] for row in rows] == SERVER_LANGUAGES
    for lang, row in zip(languages_json(), rows, strict=True):
        for language_id in lang["languageIds"]:
            assert language_id in row, (language_id, row)
        assert row.rstrip().endswith(" ".join(lang["extensions"])), row


def test_it_loads_neither_llama_cpp_nor_a_grammar() -> None:
    # Editors run it whenever a window opens a file: no model, no llama.cpp, no tree-sitter.
    script = (
        "import sys, runpy\n"
        "sys.argv = ['codenook', 'languages', '--json']\n"
        "try:\n"
        "    runpy.run_module('codenook', run_name='__main__', alter_sys=True)\n"
        "except SystemExit as exit:\n"
        "    assert not exit.code, exit.code\n"
        "heavy = ('llama_cpp', 'tree_sitter_python')\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in heavy), file=sys.stderr)\n"
    )
    started = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    elapsed = time.monotonic() - started
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)
    assert proc.stderr.strip().splitlines()[-1] == "[]", proc.stderr
    assert elapsed < 20, f"{elapsed:.1f} s"
