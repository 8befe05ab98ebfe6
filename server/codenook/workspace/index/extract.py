"""From a parsed file to its index entry: the definitions and imports tree-sitter finds.

What a definition keeps is what a prompt can use of it from another file: its signature,
the first lines of its documentation and a class's fields, never a body. The patterns come
from each language's ``tags.scm`` (definitions) and ``imports.scm`` (``@import.module`` and
``@import.name`` captures), so that adding a language is a matter of queries, not code here.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from tree_sitter import Node, Query, QueryCursor, Range, Tree

from codenook.text import languages
from codenook.workspace.index.files import read_source
from codenook.workspace.index.model import Definition, FileEntry, Import, Skipped

MAX_SIGNATURE_LINES = 6  # signature lines kept per definition
MAX_DOC_LINES = 4  # documentation lines kept per definition (plus its closing line)
MAX_DATA_LINES = 8  # first lines kept of a definition without a body (constants, aliases)
MAX_FIELD_LINES = 16  # field lines kept per class-like definition
IMPORT_DEPTH = 3  # imports deeper than this (from the root) are not read per keystroke

FUNCTION_KINDS = frozenset({"function", "method", "macro"})
CONTAINER_KINDS = frozenset({"class", "interface", "impl", "module", "enum"})
METHOD_PARENT_KINDS = frozenset({"class", "interface", "impl", "enum"})
# When patterns capture one node with several kinds, the first kind here wins.
KIND_ORDER = (
    "method",
    "function",
    "class",
    "interface",
    "impl",
    "enum",
    "type",
    "module",
    "macro",
    "constant",
    "variable",
    "field",
)
MAX_DECORATOR_LINES = 3


def _text(source: bytes, node: Node) -> str:
    return source[node.start_byte : node.end_byte].decode("utf-8", "replace")


def _body_of(node: Node) -> Node | None:
    """The node holding a definition's body: its ``body`` field, or one a child holds."""
    body = node.child_by_field_name("body")
    if body is not None:
        return body
    for child in node.named_children:  # `const f = () => {}`, `type T struct {}`
        body = child.child_by_field_name("body")
        if body is not None:
            return body
        if child.type in ("struct_type", "interface_type"):
            for grandchild in child.named_children:
                if grandchild.type.endswith("_list"):
                    return grandchild
    return None


_BODY_TYPES = frozenset(
    {
        "block",
        "class_body",
        "declaration_list",
        "statement_block",
        "field_declaration_list",
        "compound_statement",
        "interface_body",
        "enum_body",
        "object_type",
        "object",
        "table_constructor",
    }
)


def _is_body(node: Node) -> bool:
    if node.type in _BODY_TYPES or node.parent is None:
        return True
    body = node.parent.child_by_field_name("body")
    return body is not None and body.id == node.id


def _doc_anchor(node: Node) -> Node:
    """The outermost node that starts on ``node``'s line (``export``, ``pub``, ``type``...)
    without being a body, or the decorated definition: doc comments precede that one."""
    anchor = node
    row = node.start_point.row
    while (
        anchor.parent is not None
        and anchor.parent.start_point.row == row
        and not _is_body(anchor.parent)
    ):
        anchor = anchor.parent
    if anchor.parent is not None and "decorated" in anchor.parent.type:
        anchor = anchor.parent
    return anchor


# First characters of column-0 lines that continue a statement rather than start one.
_CONTINUATION = ("}", ")", "]", ">", ".", ",", "|", "&", "?", ":", "+", "*", "=")
_LEADERS = ("//", "/*", "#", "--", "@", "*")  # comments and decorators: start what follows


def _is_top_level(node: Node) -> bool:
    """An ERROR node whose ancestors are ERROR nodes or the root: where the parser lost its
    way in top-level code, so statements under it are the file's own."""
    while node.parent is not None:
        if node.type != "ERROR":
            return False
        node = node.parent
    return True


def _error_regions(root: Node) -> list[tuple[int, int]]:
    """Row ranges of top-level code the parser did not understand: the whole file when the
    root itself is an error, else each top-level statement holding an error (a Python
    ``def`` with an unclosed bracket can swallow the rest of the file)."""
    if not root.has_error:
        return []
    if root.type == "ERROR":
        return [(root.start_point.row, root.end_point.row)]
    return [(c.start_point.row, c.end_point.row) for c in root.children if c.has_error]


def count_parse_errors(root: Node) -> int:
    """ERROR and MISSING nodes in a tree, visiting only subtrees that hold one."""
    if not root.has_error:
        return 0
    count = 0
    stack = [root]
    while stack:
        node = stack.pop()
        if node.is_error or node.is_missing:
            count += 1
        stack.extend(child for child in node.children if child.has_error or child.is_missing)
    return count


def _last_row(node: Node) -> int:
    """The last line holding text of ``node`` (some nodes end with their line's newline)."""
    end = node.end_point
    return end.row - 1 if end.column == 0 and end.row > node.start_point.row else end.row


def _cap(rows: list[int], limit: int) -> list[int]:
    """At most ``limit`` rows, plus the last one (a comment's or docstring's closing line)."""
    if len(rows) <= limit:
        return rows
    return [*rows[:limit], rows[-1]]


# TypeScript that tree-sitter-typescript 0.23.2 does not parse, and which, in code written
# without semicolons, makes it lose its way for the rest of a file (185 of the 570 files of
# effect 4.1: `interface Effect<out A, in E>`, and a newline-separated overload list whose
# members start with `<A>(` or `(x: T):`, which it reads as a comparison continuing the
# previous member). ``parsable_source`` rewrites them in place, byte for byte, for the
# index's parse only: the variance modifiers become spaces, and such a member line gets a
# `;` in its last column of indentation.
_VARIANCE = re.compile(
    r"([<,]\s*)((?:in\s+out|in|out)\s+)(?=(?:const\s+)?[A-Za-z_$][\w$]*\s*(?:extends\b|=|,|>))"
)
_MEMBER_START = re.compile(
    r"(?m)(?<=[\w$>)\]}/])(?<!=>)([ \t]*\n(?:[ \t]*\n)*[ \t]*)[ \t]"
    r"(?=<[A-Za-z_$][\w$]*(?:\s+extends\b|\s*[,=>])|<\s*$|\((?:[^()\n]|\([^()\n]*\))*\)\s*:(?!=))"
)
_TS_LANGUAGES = frozenset({"typescript", "tsx"})


def parsable_source(language: str, text: str) -> str:
    """``text`` with the TypeScript constructs its grammar misreads rewritten (see above),
    every byte at its place; ``text`` itself for other languages."""
    if language not in _TS_LANGUAGES:
        return text
    text = _VARIANCE.sub(lambda m: m.group(1) + " " * len(m.group(2)), text)
    return _MEMBER_START.sub(lambda m: m.group(1) + ";", text)


class _Extractor:
    """One parsed file, read by several steps: each needs its bytes (node text), its lines
    (the kept lines) and its tree. ``shown`` is the file's own text when ``text`` is the
    rewritten one that was parsed (``parsable_source``): the lines kept come from it."""

    def __init__(
        self,
        loaded: languages.LoadedLanguage,
        path: str,
        text: str,
        tree: Tree,
        shown: str | None = None,
    ):
        self.loaded = loaded
        self.path = path
        self.source = text.encode("utf-8")
        self.lines = (text if shown is None else shown).split("\n")
        self.tree = tree

    def line(self, row: int) -> tuple[int, str]:
        return (row, self.lines[row] if row < len(self.lines) else "")

    def definitions(self) -> tuple[Definition, ...]:
        """The file's definitions. Where the parser gave up on top-level code (an ERROR root
        or top-level ERROR nodes), each top-level statement there is parsed again alone, and
        what those parses find replaces what the whole tree made of those lines."""
        query = self.loaded.queries.get("tags")
        if query is None:
            return ()
        result = self._definitions_in(query, self.tree.root_node)
        regions = _error_regions(self.tree.root_node)
        if regions:
            again = [
                d for root in self._reparse(regions) for d in self._definitions_in(query, root)
            ]
            kept = [d for d in result if not any(a <= d.line <= b for a, b in regions)]
            result = sorted([*kept, *again], key=lambda d: (d.line, d.end_line))
        return tuple(result)

    def _reparse(self, regions: list[tuple[int, int]]) -> list[Node]:
        """Roots of parses of each top-level statement in the rows ``regions`` cover, cut at
        lines starting in column 0 (comments and decorators stay with what follows), each
        parsed alone in place (``included_ranges``), so positions stay the file's."""
        segments: list[tuple[int, int]] = []  # first row, row after the last
        for first, last in regions:
            last = min(last, len(self.lines) - 1)
            starts = [first]
            # The statement so far is only comments and decorators.
            lead = self.lines[first].startswith(_LEADERS)
            for row in range(first + 1, last + 1):
                line = self.lines[row]
                if not line[:1] or line[:1].isspace() or line.startswith(_CONTINUATION):
                    continue
                if not lead:
                    starts.append(row)
                lead = line.startswith(_LEADERS)
            segments.extend(zip(starts, [*starts[1:], last + 1], strict=True))
        offsets = [0]
        for line in self.lines:
            offsets.append(offsets[-1] + len(line.encode("utf-8")) + 1)
        roots: list[Node] = []
        parser = self.loaded.parser()
        for start, end in segments:
            start_byte, end_byte = offsets[start], min(offsets[end], len(self.source))
            if end_byte <= start_byte:
                continue
            parser.included_ranges = [Range((start, 0), (end, 0), start_byte, end_byte)]
            roots.append(parser.parse(self.source).root_node)
        return roots

    def _definitions_in(self, query: Query, root: Node) -> list[Definition]:
        found: dict[tuple[int, int], tuple[Node, Node, str, Node | None, Node | None]] = {}
        for _, match in QueryCursor(query).matches(root):
            names = match.get("name")
            if not names:
                continue
            toplevel = match.get("toplevel")
            if toplevel and not _is_top_level(toplevel[0]):
                continue  # an ERROR inside a function or class: its names are not top-level
            for capture, nodes in match.items():
                if not capture.startswith("definition."):
                    continue
                node = nodes[0]
                key = (node.start_byte, node.end_byte)
                kind = capture.removeprefix("definition.")
                parent = match.get("parent", [None])[0]
                body = match.get("body", [None])[0]
                # A node matched by several patterns keeps its most specific kind.
                if key not in found or _kind_rank(kind) < _kind_rank(found[key][2]):
                    found[key] = (node, names[0], kind, parent, body)
        by_node = {node.id: (name, kind) for node, name, kind, _, _ in found.values()}
        result: list[Definition] = []
        for node, name_node, kind, parent_node, body in sorted(
            found.values(), key=lambda item: item[0].start_byte
        ):
            parent_name, parent_kind = self._enclosing(node, by_node)
            if parent_kind in FUNCTION_KINDS:
                continue  # local to a function: not visible from other files
            if parent_node is not None:
                parent_name = _text(self.source, parent_node).split("::")[-1].split(".")[-1]
            if kind == "function" and parent_kind in METHOD_PARENT_KINDS:
                kind = "method"
            name = _text(self.source, name_node)
            result.append(self._definition(node, name, kind, parent_name, body))
        return result

    def _enclosing(self, node: Node, by_node: dict[int, tuple[Node, str]]) -> tuple[str, str]:
        """Name and kind of the nearest definition around ``node``."""
        ancestor = node.parent
        while ancestor is not None:
            hit = by_node.get(ancestor.id)
            if hit is not None:
                name_node, kind = hit
                return _text(self.source, name_node), kind
            ancestor = ancestor.parent
        return "", ""

    def _definition(
        self, node: Node, name: str, kind: str, parent: str, body: Node | None
    ) -> Definition:
        anchor = _doc_anchor(node)
        row = node.start_point.row
        first = max(anchor.start_point.row, row - MAX_DECORATOR_LINES)
        body = body if body is not None else _body_of(node)
        if body is not None:
            body_row = body.start_point.row
            before = self.lines[body_row].encode("utf-8")[: body.start_point.column]
            last = body_row if before.strip() or body_row == row else body_row - 1
            last = min(last, row + MAX_SIGNATURE_LINES - 1)
        else:
            last = min(_last_row(node), row + MAX_DATA_LINES - 1)
        last = max(row, min(last, len(self.lines) - 1))
        head = tuple(self.line(r) for r in range(first, last + 1))
        doc = self._comments_before(anchor) + self._docstring(body)
        fields: tuple[tuple[int, str], ...] = ()
        if kind in CONTAINER_KINDS and body is not None:
            fields = self._fields(body)
        return Definition(
            name=name,
            kind=kind,
            path=self.path,
            line=row,
            end_line=_last_row(node),
            parent=parent,
            head=head,
            doc=doc,
            fields=fields,
        )

    def _comments_before(self, anchor: Node) -> tuple[tuple[int, str], ...]:
        rows: list[int] = []
        expected = anchor.start_point.row - 1
        sibling = anchor.prev_named_sibling
        while (
            sibling is not None
            and any(word in sibling.type for word in ("comment", "attribute", "annotation"))
            and sibling.end_point.row == expected
        ):
            rows[:0] = range(sibling.start_point.row, sibling.end_point.row + 1)
            expected = sibling.start_point.row - 1
            sibling = sibling.prev_named_sibling
        return tuple(self.line(r) for r in _cap(rows, MAX_DOC_LINES))

    def _docstring(self, body: Node | None) -> tuple[tuple[int, str], ...]:
        if body is None or body.named_child_count == 0:
            return ()
        first = body.named_children[0]
        if first.type != "expression_statement" or first.named_child_count != 1:
            return ()
        if first.named_children[0].type not in ("string", "concatenated_string"):
            return ()
        rows = list(range(first.start_point.row, first.end_point.row + 1))
        return tuple(self.line(r) for r in _cap(rows, MAX_DOC_LINES))

    def _fields(self, body: Node) -> tuple[tuple[int, str], ...]:
        """First lines of a class body's members that are not definitions themselves."""
        rows: list[int] = []
        for child in body.named_children:
            if "comment" in child.type or child.type in ("decorated_definition",):
                continue
            if child.child_by_field_name("body") is not None or _body_of(child) is not None:
                continue  # a method or a nested class: indexed on its own
            if (
                child.type == "expression_statement"
                and child.named_child_count == 1
                and child.named_children[0].type == "string"
            ):
                continue  # the docstring
            rows.append(child.start_point.row)
            if len(rows) >= MAX_FIELD_LINES:
                break
        return tuple(self.line(r) for r in sorted(set(rows)))

    def imports(self, max_depth: int | None = None) -> tuple[Import, ...]:
        return imports_of(self.loaded, self.tree, self.source, max_depth)


def imports_of(
    loaded: languages.LoadedLanguage, tree: Tree, source: bytes, max_depth: int | None = None
) -> tuple[Import, ...]:
    """A file's imports in file order, one per module, with the names taken from each.

    ``max_depth`` limits how deep below the root an import statement may start, which keeps
    the query to a fraction of a millisecond on a 10,000-line file (imports sit near the
    root); None reads them at any depth.
    """
    query = loaded.queries.get("imports")
    if query is None:
        return ()
    cursor = QueryCursor(query)
    if max_depth is not None:
        cursor.set_max_start_depth(max_depth)
    order: list[str] = []
    names: dict[str, list[str]] = {}
    aliases: dict[str, list[tuple[str, str]]] = {}
    exported: dict[str, list[str]] = {}
    for _, match in cursor.matches(tree.root_node):
        modules = match.get("import.module")
        if not modules:
            continue
        module = _module_text(source[modules[0].start_byte : modules[0].end_byte])
        if module not in names:
            order.append(module)
            names[module] = []
            aliases[module] = []
            exported[module] = []
        alias_nodes = match.get("import.alias", [])
        for node in match.get("import.name", []):
            name = source[node.start_byte : node.end_byte].decode("utf-8", "replace")
            name = name.rsplit(".", 1)[-1]
            if name not in names[module]:
                names[module].append(name)
            if alias_nodes:  # one name per match where an alias is captured
                alias = source[alias_nodes[0].start_byte : alias_nodes[0].end_byte]
                pair = (name, alias.decode("utf-8", "replace"))
                if pair not in aliases[module]:
                    aliases[module].append(pair)
            if "import.export" in match and name not in exported[module]:
                exported[module].append(name)
    return tuple(
        Import(module, tuple(names[module]), tuple(aliases[module]), tuple(exported[module]))
        for module in order
    )


_CPP_HEADER = re.compile(r"^\s*(class\s+\w+[^;]*$|namespace\s+\w*\s*\{|template\s*<)", re.M)


def _kind_rank(kind: str) -> int:
    return KIND_ORDER.index(kind) if kind in KIND_ORDER else len(KIND_ORDER)


def _module_text(raw: bytes) -> str:
    text = raw.decode("utf-8", "replace").strip()
    if len(text) >= 2 and text[0] in "<\"'`" and text[-1] in ">\"'`":
        text = text[1:-1]
    return text


def extract(
    path: str, text: str, tree: Tree | None = None, language: str | None = None
) -> FileEntry | None:
    """The index entry of one file, or None for a language without a grammar.

    ``tree`` is the editor's current tree when the caller has one: parsing again on every
    pause in typing would cost more than everything else the update does.
    """
    if language is None and path.endswith(".h") and _CPP_HEADER.search(text):
        language = "cpp"  # a C++ header: `.h` alone says C
    spec = languages.spec_for(path, language)
    if spec is None:
        return None
    loaded = languages.load(spec.name)
    if tree is None:
        tree = loaded.parser().parse(text.encode("utf-8"))
    extractor = _Extractor(loaded, path, text, tree)
    if tree.root_node.has_error and spec.name in _TS_LANGUAGES:
        # Only a file that does not parse pays for the rewrite and a second parse; the
        # rewritten parse is kept when it has fewer errors (the editor's tree is not).
        fixed = parsable_source(spec.name, text)
        if fixed != text:
            again = loaded.parser().parse(fixed.encode("utf-8"))
            if count_parse_errors(again.root_node) < count_parse_errors(tree.root_node):
                tree = again
                extractor = _Extractor(loaded, path, fixed, again, shown=text)
    return FileEntry(
        path=path,
        language=spec.name,
        definitions=extractor.definitions(),
        imports=extractor.imports(),
        size=len(extractor.source),
        parse_errors=count_parse_errors(tree.root_node),
    )


def index_file(root: str, path: str, max_bytes: int) -> FileEntry:
    """The entry of a file on disk, with the size and time that tell a later scan whether
    it changed; Skipped when the index leaves it out."""
    text, stat = read_source(root, path, max_bytes)
    entry = extract(path, text)
    if entry is None:
        raise Skipped("no grammar")
    return FileEntry(
        entry.path,
        entry.language,
        entry.definitions,
        entry.imports,
        stat.st_size,
        stat.st_mtime_ns,
        parse_errors=entry.parse_errors,
    )


def index_files(root: str, paths: list[str], max_bytes: int) -> list[FileEntry | str]:
    """Entries for ``paths`` (a skip reason in place of each file left out).

    Module-level so that worker processes can run it.
    """
    results: list[FileEntry | str] = []
    for path in paths:
        try:
            results.append(index_file(root, path, max_bytes))
        except Skipped as skip:
            results.append(skip.reason)
        except Exception as exc:  # a grammar or file problem must not stop the build
            results.append(f"error: {type(exc).__name__}")
    return results


def iter_identifiers(text: str) -> Iterable[str]:
    """Names in a text without parsing it: cheap enough to scan a whole repository for the
    names the index should know (``$`` included, for JavaScript)."""
    return _IDENTIFIER.findall(text)


_IDENTIFIER = re.compile(r"[A-Za-z_$][A-Za-z0-9_$]*")
