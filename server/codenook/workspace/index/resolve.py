"""Which workspace files an import names, by the conventions of each language's imports.

Without a build system's help: the index cannot run ``tsc``, ``cargo`` or ``go list``, so it
lists the paths an import may mean (relative to the importer, to the workspace, to a
package root) and the index keeps the first that exists. Wrong guesses are cheap: they only
cost a prompt some less relevant lines.
"""

from __future__ import annotations

import posixpath
import re

_SOURCE_EXTENSIONS = {
    "python": (".py", ".pyi"),
    "js": (".ts", ".tsx", ".d.ts", ".js", ".jsx", ".mjs", ".cjs", ".mts", ".cts"),
    "rust": (".rs",),
    "java": (".java",),
    "lua": (".lua",),
}


def module_candidates(
    style: str,
    module: str,
    importer: str,
    root_name: str,
    go_module: tuple[str, str] | None = None,
) -> list[str]:
    """Workspace-relative paths (``./``-prefixed when exact, else matched as a suffix) that
    an import of ``module`` may name; a trailing ``/`` names a whole directory.

    ``go_module`` is the Go module the importer belongs to: the directory of the nearest
    ``go.mod`` above it and the path on its ``module`` line (None without one)."""
    here = posixpath.dirname(importer)
    out: list[str] = []
    if style == "python":
        dots = len(module) - len(module.lstrip("."))
        rest = module[dots:].replace(".", "/")
        if dots:
            base = here
            for _ in range(dots - 1):
                base = posixpath.dirname(base)
            stem = posixpath.join(base, rest) if rest else base
            stems = ["./" + stem]
        else:
            stems = _dotted_stems(module, root_name)
        for stem in stems:
            out += [stem + ".py", stem + ".pyi", stem + "/__init__.py", stem + "/__init__.pyi"]
    elif style == "js":
        if module.startswith("."):
            stem = "./" + posixpath.normpath(posixpath.join(here, module))
        else:
            stem = re.sub(r"^(@[^/]*/|~/|@/)", "", module)
        out.append(stem)
        out += [stem + ext for ext in _SOURCE_EXTENSIONS["js"]]
        out += [stem + "/index" + ext for ext in _SOURCE_EXTENSIONS["js"]]
    elif style == "go":
        out += _go_candidates(module, go_module)
    elif style == "rust":
        parts = [p for p in module.split("::") if p]
        base = here
        if parts and parts[0] == "crate":
            parts = parts[1:]
            base = ""
        while parts and parts[0] in ("self", "super"):
            if parts[0] == "super":
                base = posixpath.dirname(base)
            parts = parts[1:]
        for end in range(len(parts), 0, -1):  # `a::b::Item` may name a file a/b.rs
            stem = "/".join(parts[:end])
            prefix = "./" + posixpath.join(base, stem) if base else stem
            out += [prefix + ".rs", prefix + "/mod.rs"]
            if base and posixpath.basename(base) == "src":
                continue
            out += [stem + ".rs", stem + "/mod.rs"]
    elif style == "java":
        for stem in _dotted_stems(module, root_name):
            out += [stem + ".java", stem + "/"]
    elif style == "include":
        out += ["./" + posixpath.normpath(posixpath.join(here, module)), module]
    elif style == "lua":
        for stem in _dotted_stems(module, root_name):
            out += [stem + ".lua", stem + "/init.lua"]
    return out


def _go_candidates(module: str, go_module: tuple[str, str] | None) -> list[str]:
    """A package of the importer's own module is the directory its path names below the
    ``go.mod``; a path whose first element has no dot is the standard library's (``fmt``,
    ``log/syslog``), never a workspace directory; another module's package is found only
    vendored (``vendor/<path>/`` beside the ``go.mod``). Without a ``go.mod`` (a GOPATH
    tree), the longest suffix of the path that is a workspace directory."""
    if go_module is not None:
        directory, path = go_module
        if module == path or module.startswith(path + "/"):
            target = posixpath.join(directory, module[len(path) :].strip("/"))
            return ["./" + (target or ".") + "/"]
    parts = module.split("/")
    if "." not in parts[0]:
        return []
    if go_module is not None:
        return ["./" + posixpath.join(go_module[0], "vendor", module) + "/"]
    return ["/".join(parts[i:]) + "/" for i in range(len(parts))]


def _dotted_stems(module: str, root_name: str) -> list[str]:
    """``a.b.c`` as a path, and without its first part when that names the workspace
    folder itself (a workspace opened at the package: ``pl.utils`` is ``utils.lua``)."""
    stem = module.replace(".", "/")
    first, _, tail = stem.partition("/")
    return [stem, tail] if first == root_name and tail else [stem]
