"""Refactor and fix actions: which region, which prompt, and whether a reply is acceptable.

Pure functions of a document snapshot. Listing actions costs nothing (no model call); the
model runs only when the user picks one. A reply replaces a known region, is parsed robustly
(fenced or bare code, stray prose around it) and is rejected when it would delete most of the
region or add syntax errors, so a weak model cannot damage the user's code.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from tree_sitter import Node, QueryCursor

from codenook.assist.chat import Message
from codenook.text.documents import Snapshot
from codenook.text.positions import utf8_length


@dataclass(frozen=True)
class ActionKind:
    key: str
    title: str
    instruction: str
    lsp_kind: str  # "quickfix" or "refactor.rewrite"


KINDS: dict[str, ActionKind] = {
    k.key: k
    for k in (
        ActionKind("fix", "Fix: {message}", "Fix this problem: {message}", "quickfix"),
        ActionKind(
            "rewrite",
            "Rewrite / simplify",
            "Rewrite this code to be simpler and clearer without changing what it does.",
            "refactor.rewrite",
        ),
        ActionKind(
            "extract",
            "Extract function",
            "Move the most self-contained part of this code into a new, well-named helper"
            " function defined right before it, and call the helper in its place.",
            "refactor.extract",
        ),
        ActionKind(
            "docstring",
            "Add docstring",
            "Add a concise docstring or doc comment to this code. Change nothing else.",
            "refactor.rewrite",
        ),
        ActionKind(
            "annotate",
            "Add type annotations",
            "Add type annotations to this code. Change nothing else.",
            "refactor.rewrite",
        ),
        ActionKind(
            "instruct",
            "Edit with instruction…",
            "{instruction}",
            "refactor.rewrite",
        ),
    )
}

SYSTEM = (
    "You are a careful programming assistant that edits code. You receive a region of a file"
    " and an instruction. Reply with the complete new text of the region in one fenced code"
    " block and nothing else. Keep the region's indentation and everything the instruction does"
    " not ask you to change."
)

CONTEXT_LINES = 30


class ActionError(ValueError):
    """A reply or request that cannot be applied; the message is for the user."""


@dataclass(frozen=True)
class Region:
    """Whole lines [start, end) of the document, as code-point offsets (end excludes the
    final line break), and what they are."""

    start: int
    end: int
    label: str

    def text(self, snapshot: Snapshot) -> str:
        return snapshot.text[self.start : self.end]


def _line_bounds(snapshot: Snapshot, start: int, end: int) -> tuple[int, int]:
    lines = snapshot.lines
    first = lines.point(start).line
    last_point = lines.point(end)
    last = last_point.line
    if last > first and last_point.column == 0:
        last -= 1  # a selection ending at column 0 does not include that line
    line_end = lines.line_start(last) + len(lines.line_text(last))
    return lines.line_start(first), line_end


def _scopes(snapshot: Snapshot) -> list[Node]:
    if snapshot.language is None or snapshot.tree is None:
        return []
    query = snapshot.language.queries.get("scopes")
    if query is None:
        return []
    return QueryCursor(query).captures(snapshot.tree.root_node).get("scope", [])


def _byte_offset(snapshot: Snapshot, offset: int) -> int:
    return utf8_length(snapshot.text[:offset])


def _char_offset(snapshot: Snapshot, byte: int) -> int:
    return len(snapshot.text.encode("utf-8")[:byte].decode("utf-8", "replace"))


def enclosing_scope(snapshot: Snapshot, offset: int) -> tuple[int, int] | None:
    """Code-point range of the innermost function/class/impl around ``offset``."""
    cursor = _byte_offset(snapshot, offset)
    best: Node | None = None
    for node in _scopes(snapshot):
        if node.start_byte <= cursor <= node.end_byte and (
            best is None or node.end_byte - node.start_byte < best.end_byte - best.start_byte
        ):
            best = node
    if best is None:
        return None
    return _char_offset(snapshot, best.start_byte), _char_offset(snapshot, best.end_byte)


def choose_region(snapshot: Snapshot, start: int, end: int) -> Region:
    """The selection's lines; with no selection, the enclosing definition, else the line."""
    if end > start:
        first, last = _line_bounds(snapshot, start, end)
        return Region(first, last, "selection")
    scope = enclosing_scope(snapshot, start)
    if scope is not None:
        first, last = _line_bounds(snapshot, *scope)
        return Region(first, last, "enclosing definition")
    first, last = _line_bounds(snapshot, start, start)
    return Region(first, last, "line")


def instruction_for(kind: ActionKind, *, message: str = "", instruction: str = "") -> str:
    if kind.key == "instruct" and not instruction.strip():
        raise ActionError("Edit with instruction needs an instruction")
    return kind.instruction.format(message=message, instruction=instruction.strip())


def action_messages(
    snapshot: Snapshot, region: Region, instruction: str, path: str
) -> list[Message]:
    """The chat asking for the region's replacement, with the code around it as context."""
    lines = snapshot.lines
    language = snapshot.language_name or "text"
    first = lines.point(region.start).line
    last = lines.point(region.end).line
    above = "\n".join(lines.line_text(n) for n in range(max(0, first - CONTEXT_LINES), first))
    below = "\n".join(
        lines.line_text(n) for n in range(last + 1, min(lines.line_count, last + 1 + 10))
    )
    parts = [f"File: {path} ({language})"]
    if above.strip():
        parts.append(f"Code before the region:\n```{language}\n{above}\n```")
    parts.append(
        f"Region to replace (lines {first + 1}-{last + 1}):\n```{language}\n"
        f"{region.text(snapshot)}\n```"
    )
    if below.strip():
        parts.append(f"Code after the region:\n```{language}\n{below}\n```")
    parts.append(f"Instruction: {instruction}\nReply with the new region in one code block.")
    return [Message("system", SYSTEM), Message("user", "\n\n".join(parts))]


# -- replies -----------------------------------------------------------------------------------


class ReplyParser:
    """Finds the code in a reply as it streams: the first fenced block, else the bare reply.

    ``lines`` are the code lines known to be complete; ``finished`` turns true at the closing
    fence, where generation can stop.
    """

    def __init__(self) -> None:
        self.text = ""
        self.finished = False

    def feed(self, piece: str) -> None:
        self.text += piece
        if not self.finished:
            body = self._fenced_body()
            self.finished = body is not None and body[1]

    def _fenced_body(self) -> tuple[str, bool] | None:
        """(code so far, closed) of the first fenced block, or None before one opens."""
        at = self.text.find("```")
        if at == -1:
            return None
        newline = self.text.find("\n", at)
        if newline == -1:
            return "", False
        body = self.text[newline + 1 :]
        close = body.find("```")
        if close == -1:
            return body, False
        return body[:close], True

    def code(self, final: bool = False) -> str:
        """All code known so far (for a final reply: the whole block or the bare reply)."""
        body = self._fenced_body()
        if body is None:
            return self.text.strip("\n") if final else ""
        code, closed = body
        if closed or final:
            return code.rstrip("\n")
        return code

    def complete_lines(self) -> list[str]:
        code = self.code()
        if self.finished:
            return code.split("\n") if code else []
        return code.split("\n")[:-1]


def reindent(lines: Sequence[str], original: str) -> list[str]:
    """Give a reply the region's base indentation when the model dropped it."""
    want = _indent(original.split("\n", 1)[0])
    first = next((line for line in lines if line.strip()), None)
    if first is None or _indent(first) >= want or want == 0:
        return list(lines)
    pad = original.split("\n", 1)[0][:want]
    return [pad + line if line.strip() else line for line in lines]


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" \t"))


def _errors(node: Node) -> int:
    count = 1 if node.is_error or node.is_missing else 0
    if node.has_error:
        for child in node.children:
            count += _errors(child)
    return count


def validate(snapshot: Snapshot, region: Region, replacement: str) -> None:
    """Raise ActionError for a reply that must not land in the user's file."""
    original = region.text(snapshot)
    if not replacement.strip():
        raise ActionError("the model's reply contained no code")
    kept = len("".join(replacement.split()))
    had = len("".join(original.split()))
    if had >= 40 and kept < 0.3 * had:
        raise ActionError("the model's reply would delete most of the region; nothing changed")
    language = snapshot.language
    if language is None or snapshot.tree is None:
        return
    new_text = snapshot.text[: region.start] + replacement + snapshot.text[region.end :]
    new_tree = language.parser().parse(new_text.encode("utf-8"))
    old_tree = snapshot.tree
    if snapshot.tree_stale:  # the older text's structure: count this text's errors
        old_tree = language.parser().parse(snapshot.text.encode("utf-8"))
    if _errors(new_tree.root_node) > _errors(old_tree.root_node):
        raise ActionError("the model's reply has syntax errors; nothing changed")
