""" "Not near" candidates for the cross-file context: what the name being typed may need when
nothing near the cursor uses it yet (it is, by definition, not on the screen).

Pure selection, ranked below everything ``crossfile`` picks for a real use near the cursor:

- the outline of what stands before the dot at the cursor (``TIER_DOT``): an imported module
  (``pkg.``, ``pkg.sub.``: its top-level signatures, and those of the files its wildcards pass
  on), ``self.``/``this.`` (the members of the enclosing class's bases defined in other files),
  ``obj.`` whose type is cheap to read (``obj: Class``, ``obj = Class(...)``, ``Class obj``,
  Go's ``obj *Class``; in this file), ``self.attr.`` typed the same way, ``Class.``;
- the docs, fields and member signatures of names the file imports and does not use anywhere
  else yet (``TIER_UNUSED_IMPORT``): the file imported them to use them;
- the signatures of the ``mod.name``s the file uses elsewhere, ``mod`` an imported module,
  nearest first (``TIER_FILE_USES``);
- the outlines of the other files of the same package (a directory other than the top one;
  in Python, with an ``__init__.py``), in path order (``TIER_SIBLINGS``).

**Stable while typing.** The dot target is read from the cursor line's text *before* the
last dot (``dot_target``), never from the partial word after it, and it stays until another
dot is typed; everything else reads the lines other than the cursor line, which typing on it
does not change (``fingerprint``, for the memo's key). Candidates come in file order, or
nearest first, ties by line: the same inputs give the same chunks.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from codenook.text import languages
from codenook.text.positions import LineIndex
from codenook.workspace.index import Definition, Import, WorkspaceIndex

if TYPE_CHECKING:
    from codenook.workspace.references import ImportTargets

TIER_DOT = 6.5  # after the members of the classes used near the cursor, before visits
TIER_UNUSED_IMPORT = 6.6
TIER_FILE_USES = 6.7
TIER_FILE_NAMES = 6.8
TIER_SIBLINGS = 12.0  # last of all

CLASS_KINDS = frozenset({"class", "interface", "type", "enum", "impl", "module"})
SELF_NAMES = frozenset({"self", "cls", "this"})
MAX_CHAIN = 4  # receiver parts read (`a.b.c.d.`)
MAX_BASES = 6  # classes visited up an inheritance chain
MAX_DOT_FILES = 6  # module files outlined for one dot target
MAX_HINT_LINES = 400  # lines scanned above the cursor for a receiver's type
MAX_FILE_USES = 64
USES_LINES = 1000  # lines above and below the cursor read for `mod.name` uses
FILE_NAMES_LINES = 400  # lines above and below the near window read for names it uses
MAX_FILE_NAMES = 96  # names resolved from them, nearest first
MAX_SIBLING_FILES = 12
OUTLINE_LINES = 3  # lines of a multi-line signature kept in an outline

Lines = tuple[tuple[int, str], ...]
Candidate = tuple[float, Definition, Lines]

# The last `a.b.` before the cursor: a chain of identifiers ending in a dot.
_CHAIN = re.compile(r"(?<![\w$.])([A-Za-z_$][\w$]*(?:\s*\.\s*[A-Za-z_$][\w$]*)*)\s*\.")
_IDENT = re.compile(r"[A-Za-z_$][\w$]*(?:\.[A-Za-z_$][\w$]*)*")
_RETURNS = re.compile(r"->\s*['\"]?([A-Za-z_$][\w$.]*)")
_HEAD_KEYWORDS = frozenset(
    {"class", "struct", "interface", "extends", "implements", "public", "private", "protected",
     "abstract", "final", "export", "default", "declare", "metaclass", "object", "type", "enum",
     "static", "sealed", "open", "data", "def", "const", "readonly", "new", "pub"}
)  # fmt: skip


@dataclass(frozen=True)
class Resolved:
    """What a receiver names: module files, or classes (whose members follow the dot)."""

    files: tuple[str, ...] = ()
    classes: tuple[Definition, ...] = ()


def dot_target(lines: LineIndex, offset: int, cursor_line: int) -> tuple[str, ...]:
    """The receiver of the last dot on the cursor line before the cursor (``("pkg", "sub")``
    for ``x = pkg.sub.na|``), or ``()``. Only the text before that dot counts: typing the
    name after it, its arguments, its brackets leaves the target as it was."""
    start = lines.line_start(cursor_line)
    prefix = lines.text[start:offset]
    found = _CHAIN.findall(prefix)
    if not found:
        return ()
    return tuple(part.strip() for part in found[-1].split("."))[-MAX_CHAIN:]


def fingerprint(lines: LineIndex, cursor_line: int) -> tuple[int, int]:
    """The text above and below the cursor line, hashed: what the candidates below read,
    for the memo's key (typing on the cursor line does not change it)."""
    text = lines.text
    start = lines.line_start(cursor_line)
    end = text.find("\n", start)
    return hash(text[:start]), hash(text[end:] if end >= 0 else "")


def candidates(
    found: Finder, language: str | None, dot: tuple[str, ...], near: tuple[int, int]
) -> list[Candidate]:
    """The not-near candidates, each ``(tier, definition, lines)``, in a fixed order, read
    through the context's ``Finder``. ``near`` is the first and last line whose names the
    caller already resolved."""
    path, index, targets = found.path, found.index, found.targets
    spec = languages.spec_for(path, language)
    out = dot_candidates(found, dot)
    out += found.unused_imports()
    out += found.file_uses()
    out += found.file_names(near)
    directory = path.rsplit("/", 1)[0] if "/" in path else ""
    if _is_package(index, directory, found.style) and spec and not spec.directory_is_package:
        siblings = [
            p
            for p in index.directory_files(directory)
            if p != path and p not in targets.files and languages.spec_for(p) == spec
        ]
        for file in siblings[:MAX_SIBLING_FILES]:
            out += _outline(index, file, TIER_SIBLINGS)
    return out


def dot_candidates(found: Finder, dot: tuple[str, ...]) -> list[Candidate]:
    """The outline of what the dot target names (``TIER_DOT``): the one part of the
    candidates that typing on a line changes (when a `.` is typed)."""
    out: list[Candidate] = []
    if dot:
        target = found.chain(dot)
        for file in target.files[:MAX_DOT_FILES]:
            out += _outline(found.index, file, TIER_DOT, tables=found.style == "lua")
        for definition in target.classes:
            out += _members(found.index, definition, TIER_DOT)
    return out


def finder(
    lines: LineIndex,
    cursor_line: int,
    path: str,
    language: str | None,
    index: WorkspaceIndex,
    imports: Sequence[Import],
    targets: ImportTargets,
    resolve: Callable[[str], list[Definition]],
) -> Finder:
    """What reads receivers for one context: ``crossfile`` asks it which module a ``pkg.``
    near the cursor names, then hands it to ``candidates`` (its answers are kept)."""
    spec = languages.spec_for(path, language)
    style = spec.import_style if spec else ""
    return Finder(lines, cursor_line, path, style, index, imports, targets, resolve)


def _is_package(index: WorkspaceIndex, directory: str, style: str) -> bool:
    """Siblings count in a package: not the workspace's top folder (scripts, setup files),
    and in Python a directory with an ``__init__.py``."""
    if not directory:
        return False
    return style != "python" or index.get(directory + "/__init__.py") is not None


def _signature(definition: Definition) -> Lines:
    return tuple((n, t) for n, t in definition.head if n >= definition.line)[:OUTLINE_LINES]


def _outline(
    index: WorkspaceIndex, file: str, tier: float, tables: bool = False
) -> Iterator[Candidate]:
    """A file's top-level signatures; with ``tables``, the functions of its tables too (a
    Lua module is the table it returns: `u.` after `local u = require("util")` wants
    `function M.split(s)`, not `local M = {}`)."""
    entry = index.get(file)
    for definition in entry.definitions if entry is not None else ():
        if not definition.parent:
            yield tier, definition, _signature(definition)
            for member in index.members(file, definition.name) if tables else ():
                yield tier, member, _signature(member)


def _members(index: WorkspaceIndex, cls: Definition, tier: float) -> Iterator[Candidate]:
    """A class's line, fields and member signatures (one item each, in file order)."""
    line = tuple((n, t) for n, t in cls.head if n == cls.line)
    if cls.fields:
        yield tier, cls, line + cls.fields
    for member in index.members(cls.path, cls.name):
        yield tier, member, line + _signature(member)


class Finder:
    """Reading receivers and the file's own text for one call of ``candidates``."""

    def __init__(
        self,
        lines: LineIndex,
        cursor_line: int,
        path: str,
        style: str,
        index: WorkspaceIndex,
        imports: Sequence[Import],
        targets: ImportTargets,
        resolve: Callable[[str], list[Definition]],
    ) -> None:
        self.lines, self.cursor_line, self.path, self.style = lines, cursor_line, path, style
        self.index, self.imports, self.targets, self.resolve = index, imports, targets, resolve
        entry = index.get(path)
        self.local = entry.definitions if entry is not None else ()
        self._text: str | None = None
        self._modules: dict[str, tuple[str, ...]] = {}
        self._external: set[str] = set()  # bound by a module import, not in the workspace
        self._aliases: dict[str, str] | None = None
        self._around: tuple[str, int] | None = None
        # Each name an import can bind, to the imports that may bind it, in import order.
        self._binding: dict[str, list[Import]] = {}
        for item in imports:
            keys = {_bound_name(item.module)}
            parts = item.module.split(".")
            keys.update(".".join(parts[:n]) for n in range(1, len(parts) + 1))
            keys.update(dict(item.aliases).get(name, name) for name in item.names)
            for key in keys:
                self._binding.setdefault(key, []).append(item)

    @property
    def around(self) -> tuple[str, int]:
        """The lines at most ``USES_LINES`` away from the cursor line, without it, and the
        offset in that text where the cursor line was: what ``file_uses`` reads (nearest
        first, at most ``MAX_FILE_USES``: farther lines would only cost time)."""
        if self._around is None:
            lines = self.lines
            text = lines.text
            start = lines.line_start(max(0, self.cursor_line - USES_LINES))
            cursor = lines.line_start(self.cursor_line)
            end = text.find("\n", cursor)
            after = self.cursor_line + 1 + USES_LINES
            stop = lines.line_start(after) if after < lines.line_count else len(text)
            tail = text[end:stop] if end >= 0 else ""
            self._around = (text[start:cursor] + tail, cursor - start)
        return self._around

    @property
    def text(self) -> str:
        """The document without the cursor line (see the module doc)."""
        if self._text is None:
            lines = self.lines
            start = lines.line_start(self.cursor_line)
            end = lines.text.find("\n", start)
            self._text = lines.text[:start] + (lines.text[end:] if end >= 0 else "")
        return self._text

    # -- what a receiver names --

    def module(self, chain: str) -> tuple[str, ...]:
        """The files of the imported module bound to ``chain`` (``pkg``, ``pkg.sub``,
        ``alias``), with what their wildcards pass on; () when it is not one."""
        if chain not in self._modules:
            self._modules[chain] = self._module(chain)
        return self._modules[chain]

    def module_of(self, chain: str) -> tuple[str, ...] | None:
        """The files of the module ``chain`` names, () for a module import outside the
        workspace (`fmt`, `os`), None when no module import binds it."""
        files = self.module(chain)
        return files if files or chain in self._external else None

    def _module(self, chain: str) -> tuple[str, ...]:
        named = False  # a name a `from` import takes: a module only as a Python submodule
        moduled = False  # bound by a module import or an alias: outside if not found
        for item in self._binding.get(chain, ()):
            module = item.module
            bound = _bound_name(module)
            if not item.names and (
                module == chain or module.startswith(chain + ".") or bound == chain
            ):
                named = moduled = True  # bound by name: outside the workspace if not found
                name = chain if module.startswith(chain) else module
                files = self.index.resolve(self.path, name, self.style)
                if files:
                    return self._passing_on(files)
            for name in item.names:
                if dict(item.aliases).get(name, name) != chain:
                    continue
                named = True
                if self.style != "python":
                    continue
                joined = module + name if module.endswith(".") else module + "." + name
                files = self.index.resolve(self.path, joined, self.style)
                if files:
                    return self._passing_on(files)
        alias = "" if named or "." in chain else self._alias(chain)
        if alias:
            files = self._passing_on(self.index.resolve(self.path, alias, self.style))
            moduled = True
        else:
            files = ()
        if not files and moduled:
            self._external.add(chain)
        return files

    def _passing_on(self, files: tuple[str, ...]) -> tuple[str, ...]:
        out = list(files)
        for file in files:
            out += self.index.passed_on(file, self.style)[0]
        return tuple(dict.fromkeys(out))

    def _alias(self, name: str) -> str:
        """The module a name is bound to by an aliasing import in the text (``import x.y as
        name``, ``import * as name from "m"``, ``name = require("m")``, Go's ``name "m"``)."""
        if self._aliases is None:
            # Every alias of the text at once: asked per receiver, a search each read the
            # whole file again (a third of a context's time on a 2,000-line file).
            aliases: dict[str, str] = {}
            for found in _ALIASES.get(self.style, ()):
                for bound, module in found(self.text):
                    aliases.setdefault(bound, module)
            self._aliases = aliases
        return self._aliases.get(name, "")

    def classes(self, name: str) -> tuple[Definition, ...]:
        """Class-like definitions a type name means (``Name``, ``mod.Name``)."""
        head, _, last = name.rpartition(".")
        if head:
            files = self.module(head)
            if files:
                found = self.index.follow(files, last, self.style)
                defs = [d for p, n in found for d in self.index.definitions(n) if d.path == p]
                return tuple(d for d in defs if d.kind in CLASS_KINDS and not d.parent)
        own = tuple(d for d in self.local if d.name == last and d.kind in CLASS_KINDS)
        return own or tuple(d for d in self.resolve(last) if d.kind in CLASS_KINDS)

    def enclosing(self) -> Definition | None:
        inside = [
            d
            for d in self.local
            if d.kind in CLASS_KINDS and d.line <= self.cursor_line <= d.end_line
        ]
        return max(inside, key=lambda d: d.line) if inside else None

    def chain(self, chain: tuple[str, ...]) -> Resolved:
        """What ``a.b.c`` before the dot names: the longest prefix that is an imported module,
        then names in it; or a class, then the types of its attributes."""
        first = chain[0]
        classes: tuple[Definition, ...] = ()
        rest = chain[1:]
        files: tuple[str, ...] = ()
        for cut in range(len(chain), 0, -1):
            files = self.module(".".join(chain[:cut]))
            if files:
                rest = chain[cut:]
                break
        if not files:
            if first in SELF_NAMES:
                own = self.enclosing()
                classes = (own,) if own is not None else ()
            else:
                classes = self.typed(first) or self.classes(first)
        for position, part in enumerate(rest, start=len(chain) - len(rest)):
            if files:
                found = self.index.follow(files, part, self.style)
                defs = [d for p, n in found for d in self.index.definitions(n) if d.path == p]
                classes = tuple(d for d in defs if d.kind in CLASS_KINDS and not d.parent)
                files = self.module(".".join(chain[: position + 1]))
            else:
                classes = self.attribute(classes, part, first in SELF_NAMES)
            if not files and not classes:
                return Resolved()
        if classes:
            classes = self.with_bases(classes)
        return Resolved(files, tuple(c for c in classes if c.path != self.path))

    def with_bases(self, classes: tuple[Definition, ...]) -> tuple[Definition, ...]:
        """The classes and their bases, breadth first, at most ``MAX_BASES``."""
        out: list[Definition] = []
        queue = list(classes)
        while queue and len(out) < MAX_BASES:
            cls = queue.pop(0)
            if any(c.path == cls.path and c.line == cls.line for c in out):
                continue
            out.append(cls)
            head = " ".join(t for n, t in cls.head if n >= cls.line)
            after = head.split(cls.name, 1)[1] if cls.name in head else ""
            after = after.split(":", 1)[0] if self.style == "python" else after.split("{")[0]
            for name in _IDENT.findall(after):
                if name not in _HEAD_KEYWORDS and name != cls.name:
                    queue += self.classes(name)[:2]
        return tuple(out)

    def attribute(
        self, classes: tuple[Definition, ...], name: str, own: bool
    ) -> tuple[Definition, ...]:
        """The class of attribute ``name`` of ``classes``: from their fields (``name: T``),
        or, on ``self``, from this file's ``self.name = T(...)`` / ``self.name: T``."""
        for cls in self.with_bases(classes):
            for _, text in cls.fields:
                for hint in _hints(name, text, self.style):
                    if found := self.classes(hint):
                        return found
        return self.typed("self." + name, everywhere=True) if own else ()

    def typed(self, name: str, everywhere: bool = False) -> tuple[Definition, ...]:
        """The class a variable's annotation or assignment above the cursor gives it."""
        lines = self.lines
        last = min(self.cursor_line, lines.line_count) - 1
        first = 0 if everywhere else max(0, last - MAX_HINT_LINES)
        for number in range(last, first - 1, -1):
            text = lines.line_text(number)
            if name not in text:
                continue
            for hint in _hints(name, text, self.style):
                found = self.classes(hint)
                if not found:  # a factory function: its return annotation
                    for d in self.resolve(hint.rsplit(".", 1)[-1]):
                        returns = _RETURNS.search(" ".join(t for _, t in d.head))
                        found = self.classes(returns.group(1)) if returns else ()
                        if found:
                            break
                if found:
                    return found
        return ()

    # -- the file's own text --

    def unused_imports(self) -> Iterator[Candidate]:
        """Imported names that occur once in the file (the import itself): their signatures
        are in ``crossfile``'s imported tier already, their docs, fields and members come
        here, ahead of those of the imported names the file uses already."""
        text = self.text
        for name, files in self.targets.names.items():
            first = text.find(name)
            if len(name) < 2 or (first >= 0 and text.find(name, first + len(name)) >= 0):
                continue  # used: a second occurrence is enough to know (no full count)
            defined = self.targets.renamed.get(name, name)
            for d in self.index.definitions(defined):
                if d.path in files and not d.parent:
                    yield TIER_UNUSED_IMPORT, d, d.head + d.doc
                    yield from _members(self.index, d, TIER_UNUSED_IMPORT)

    def file_uses(self) -> list[Candidate]:
        """``mod.name`` used elsewhere in the file, ``mod`` an imported module: nearest
        first, ties by line."""
        text, cursor = self.around
        bound = {r: files for r in self._receivers(text) if (files := self.module(r))}
        uses: dict[tuple[str, str], int] = {}  # (module, name) -> distance
        # One pass for every receiver: the lookbehind stops the regex engine from skipping
        # ahead to a literal, so a pass per receiver read the whole file again each time.
        alternatives = "|".join(re.escape(r) for r in bound)
        pattern = re.compile(rf"(?<![\w$.])({alternatives})\.([A-Za-z_$][\w$]*)")
        for match in pattern.finditer(text) if bound else ():
            key = (match.group(1), match.group(2))
            distance = abs(match.start() - cursor)
            if distance < uses.get(key, len(text) + 1):
                uses[key] = distance
        out: list[Candidate] = []
        ranked = sorted(uses.items(), key=lambda item: (item[1], item[0]))
        for (receiver, name), _ in ranked[:MAX_FILE_USES]:
            for p, n in self.index.follow(bound[receiver], name, self.style):
                for d in self.index.definitions(n):
                    if d.path == p and not d.parent:
                        out.append((TIER_FILE_USES, d, d.head))
        return out

    def file_names(self, near: tuple[int, int]) -> list[Candidate]:
        """Signatures of names the file uses outside the near window (at most
        ``FILE_NAMES_LINES`` lines away), nearest line first: code that calls a helper
        here calls it again further down, and a Go or Rust file reaches its package's names
        with no import to follow."""
        lines = self.lines
        first, last = max(0, near[0]), min(near[1], lines.line_count - 1)
        top = max(0, first - FILE_NAMES_LINES)
        bottom = min(lines.line_count, last + 1 + FILE_NAMES_LINES)
        # Two slices of the text split once: a line at a time cost more than the names.
        text = lines.text
        above = text[lines.line_start(top) : lines.line_start(first)].split("\n")[:-1]
        end = lines.line_start(bottom) if bottom < lines.line_count else len(text) + 1
        below = text[lines.line_start(last + 1) : end].split("\n") if last + 1 < bottom else []
        local = {d.name for d in self.local}
        seen: set[str] = set()
        out: list[Candidate] = []
        resolved = 0
        for line in _interleave(above[::-1], below):
            for name in _WORD.findall(line):
                if name in seen or name in local or len(name) < 3:
                    continue
                seen.add(name)
                found = self.resolve(name)
                if not found:
                    continue
                for d in found:
                    out.append((TIER_FILE_NAMES, d, _signature(d)))
                resolved += 1
                if resolved >= MAX_FILE_NAMES:
                    return out
        return out

    def _receivers(self, text: str) -> list[str]:
        """Names the file's imports bind to modules, cheaply: the last part of a module
        import (``import pkg`` binds ``pkg``, Go's ``"a/b/store"`` ``store``) and the names
        a Python ``from`` import takes when they are submodules."""
        names: list[str] = []
        for item in self.imports:
            module = item.module
            if not item.names:
                parts = module.replace("::", ".").replace("/", ".").strip(".").split(".")
                names.append(parts[0] if self.style == "python" else parts[-1])
            elif self.style == "python":
                names += [dict(item.aliases).get(n, n) for n in item.names]
        return [n for n in dict.fromkeys(names) if n.isidentifier() and n + "." in text]


_NAME = r"[A-Za-z_$][\w$]*"
# Aliasing imports of each import style, in the order they are tried. Each pattern starts
# with a literal, which the regex engine skips to (a pattern starting with a name tried
# every position of a 12,000-line file).
_ES_ALIAS = re.compile(rf"import\s+(?:[\w$]+\s*,\s*)?\*\s*as\s+({_NAME})\s+from\s+['\"]([^'\"\n]+)")
_REQUIRE = re.compile(r"require\s*\(?\s*['\"]([^'\"\n]+)")
_ASSIGNED = re.compile(rf"(?<![\w$.])({_NAME})\s*=\s*$")
_GO_ALIAS = re.compile(rf"(?m)^[ \t]*({_NAME})[ \t]+\"([^\"\n]+)\"")
_PY_ALIAS = re.compile(rf"import\s+([\w.]+)\s+as\s+({_NAME})\b")


def _es_aliases(text: str) -> Iterator[tuple[str, str]]:
    for match in _ES_ALIAS.finditer(text):
        yield match.group(1), match.group(2)


def _required(text: str) -> Iterator[tuple[str, str]]:
    """``name = require("m")`` (CommonJS, Lua): the name from the text before on its line."""
    for match in _REQUIRE.finditer(text):
        start = text.rfind("\n", 0, match.start()) + 1
        assigned = _ASSIGNED.search(text, start, match.start())
        if assigned is not None:
            yield assigned.group(1), match.group(1)


def _go_aliases(text: str) -> Iterator[tuple[str, str]]:
    for match in _GO_ALIAS.finditer(text):
        yield match.group(1), match.group(2)


def _python_aliases(text: str) -> Iterator[tuple[str, str]]:
    for match in _PY_ALIAS.finditer(text):
        yield match.group(2), match.group(1)


_ALIASES: dict[str, tuple[Callable[[str], Iterator[tuple[str, str]]], ...]] = {
    "js": (_es_aliases, _required),
    "lua": (_required,),
    "go": (_go_aliases,),
    "python": (_python_aliases,),
}
_WORD = re.compile(r"(?<![\w$])[A-Za-z_$][\w$]*")


def _interleave(above: Sequence[str], below: Sequence[str]) -> Iterator[str]:
    """Lines by distance from the window: one above, one below, and so on."""
    ups, downs = iter(above), iter(below)
    for up in ups:
        yield up
        down = next(downs, None)
        if down is not None:
            yield down
    yield from downs


_SCRIPT_EXTENSION = re.compile(r"\.[cm]?[jt]sx?$")


def _bound_name(module: str) -> str:
    """The last part of a module path, the name a plain import of it binds (`a.b` and
    `a/b` and `a::b` give `b`; `./Effect.ts`, with TypeScript's explicit extension, gives
    `Effect`)."""
    module = _SCRIPT_EXTENSION.sub("", module)
    return module.replace("::", ".").replace("/", ".").rsplit(".", 1)[-1]


def _hints(name: str, text: str, style: str) -> list[str]:
    """Type names a line gives ``name``: ``name: T``, ``name = T(``/``new T(``, and in Go,
    Java, C and C++ ``name T``/``name *T``/``T name``."""
    n = re.escape(name)
    found = re.findall(rf"(?<![\w$.]){n}\s*\??\s*:(?!=)\s*([^=\n,)]+)", text)
    hints = [h for a in found for h in _IDENT.findall(a)]
    hints += re.findall(
        rf"(?<![\w$.]){n}\s*:?=\s*(?:new\s+|await\s+|&)?([A-Za-z_$][\w$.]*)\s*[({{]", text
    )
    if style in ("go", "java", "include"):
        hints += re.findall(rf"(?<![\w$.]){n}\s+\*?([A-Za-z_][\w.]*)", text)
        hints += re.findall(rf"([A-Za-z_][\w.]*)\s*(?:<[^>\n]*>)?\s*[*&]?\s+{n}\b", text)
    return hints
