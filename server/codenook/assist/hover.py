"""Hover explanations: what to explain, how to ask, and a cache keyed by content.

Pure functions pick the definition under the cursor (in this file) and its signature, or,
for a name another file defines, add that definition as the workspace index has it (the
caller looks it up: ``with_definitions``). The explanation is cached by a hash of the model
and the code, so hovering the same unchanged function again is instant, and an edit to it
naturally invalidates the entry.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, replace

from tree_sitter import Node, QueryCursor

from codenook.assist.chat import Message
from codenook.lru import LRU
from codenook.text.documents import Snapshot
from codenook.text.positions import utf8_length
from codenook.workspace.index.model import Definition

MAX_LINES = 60
MAX_ELSEWHERE = 2  # definitions in other files shown for one name (an overload, a stub)
SYSTEM = (
    "You explain code to a programmer. Answer in one to three plain sentences of Markdown:"
    " what the code does and anything surprising. No heading, no code block."
)


@dataclass(frozen=True)
class Target:
    name: str
    code: str  # the definition (or statement) to explain
    signature: str  # header lines shown above the explanation
    language: str
    # False when the name is not defined in this file: ``code`` is then the statement using
    # it, and ``with_definitions`` can add what another file says about it.
    in_file: bool = True
    defined_in: str = ""  # the other file's path, when ``definition`` comes from there
    definition: str = ""  # its signature, docs and fields (the index keeps no bodies)


def _text(snapshot: Snapshot, node: Node) -> str:
    source = snapshot.text.encode("utf-8")
    return source[node.start_byte : node.end_byte].decode("utf-8", "replace")


def _scope_nodes(snapshot: Snapshot) -> list[tuple[Node, Node]]:
    if snapshot.language is None or snapshot.tree is None:
        return []
    query = snapshot.language.queries.get("scopes")
    if query is None:
        return []
    pairs = []
    for _, match in QueryCursor(query).matches(snapshot.tree.root_node):
        scope, body = match.get("scope", []), match.get("body", [])
        if scope and body:
            pairs.append((scope[0], body[0]))
    return pairs


def _name_of(scope: Node) -> Node | None:
    name = scope.child_by_field_name("name")
    if name is None:
        for child in scope.named_children:  # e.g. a variable_declarator holding an arrow fn
            name = child.child_by_field_name("name")
            if name is not None:
                break
    return name


def _signature(snapshot: Snapshot, scope: Node, body: Node) -> str:
    source = snapshot.text.encode("utf-8")
    head = source[scope.start_byte : body.start_byte].decode("utf-8", "replace").rstrip()
    lines = head.split("\n")[:6]
    return "\n".join(lines).rstrip("{ \t")


def hover_target(snapshot: Snapshot, offset: int) -> Target | None:
    """The definition to explain for a hover at ``offset``, or None when there is nothing."""
    if snapshot.tree is None or snapshot.language is None:
        return None
    byte = utf8_length(snapshot.text[:offset])
    node = snapshot.tree.root_node.named_descendant_for_byte_range(byte, byte)
    if node is None or "identifier" not in node.type:
        return None
    name = _text(snapshot, node)
    scopes = _scope_nodes(snapshot)
    chosen: tuple[Node, Node] | None = None
    for scope, body in scopes:
        name_node = _name_of(scope)
        if name_node is not None and name_node.id == node.id:
            chosen = (scope, body)  # hovering the definition itself
            break
    if chosen is None:
        for scope, body in scopes:
            name_node = _name_of(scope)
            if name_node is not None and _text(snapshot, name_node) == name:
                chosen = (scope, body)  # a use of something defined in this file
                break
    language = snapshot.language.name
    if chosen is None:
        statement = node
        while statement.parent is not None and statement.parent.type not in (
            "module",
            "program",
            "source_file",
            "block",
            "statement_block",
            "declaration_list",
        ):
            statement = statement.parent
        code = _text(snapshot, statement)
        first_line = code.split("\n", 1)[0]
        return Target(name, code, first_line, language, in_file=False)
    scope, body = chosen
    code = "\n".join(_text(snapshot, scope).split("\n")[:MAX_LINES])
    return Target(name, code, _signature(snapshot, scope, body), language)


def with_definitions(target: Target, found: Sequence[Definition]) -> Target:
    """``target`` (a name this file does not define) with what other files define under
    that name (``found``, best first, from the workspace index): the model explains the
    name from its definition rather than guessing from one use, and the hover shows the
    definition's signature."""
    if target.in_file or not found:
        return target
    shown = found[:MAX_ELSEWHERE]
    blocks = []
    for definition in shown:
        lines = dict(definition.doc + definition.head + definition.fields)
        blocks.append("\n".join(lines[n] for n in sorted(lines)))
    first = shown[0]
    signature = "\n".join(t for n, t in first.head if n >= first.line) or first.signature
    return replace(
        target,
        signature=signature.rstrip("{ \t"),
        defined_in=", ".join(dict.fromkeys(d.path for d in shown)),
        definition="\n\n".join(blocks),
    )


def hover_messages(target: Target) -> list[Message]:
    fence = f"```{target.language}\n"
    question = f"Explain what `{target.name}` does.\n\n{fence}{target.code}\n```"
    if target.definition:
        question = (
            f"Explain what `{target.name}` does, used here:\n\n{fence}{target.code}\n```\n\n"
            f"It is defined in `{target.defined_in}` (signature and docs):\n\n"
            f"{fence}{target.definition}\n```"
        )
    return [Message("system", SYSTEM), Message("user", question)]


def render_hover(target: Target, explanation: str | None) -> str:
    """Markdown: the signature as code, then the explanation when there is one."""
    text = f"```{target.language}\n{target.signature}\n```"
    if explanation and explanation.strip():
        text += "\n\n" + explanation.strip()
    return text


def clean_explanation(reply: str) -> str:
    """Keep the prose: drop code blocks and trim to three sentences."""
    prose = reply.split("```", 1)[0].strip()
    sentences = prose.replace("\n", " ").split(". ")
    short = ". ".join(sentences[:3]).strip()
    return (
        short if short.endswith(".") or not short else short + ("" if len(sentences) <= 3 else ".")
    )


class HoverCache(LRU[str, str]):
    """Explanations by content hash: hovering the same unchanged code again is instant, and
    an edit to it makes a new key rather than needing an invalidation."""

    def __init__(self, capacity: int = 512) -> None:
        super().__init__(capacity)

    @staticmethod
    def key(model: str, target: Target) -> str:
        digest = hashlib.sha256()
        for part in (model, target.language, target.name, target.code, target.definition):
            digest.update(part.encode("utf-8") + b"\0")
        return digest.hexdigest()
