"""Turning raw model output into a suggestion worth showing: pure functions.

Rules, in order: one line when code sits right of the cursor; otherwise stop where the
enclosing block ends (a line indented less than the cursor's block) or at a run of blank lines,
and at ``max_lines``; drop text the document already has right after the cursor; show nothing
that is only whitespace or repeats the line above or the lines below.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Shape:
    """What post-processing needs to know about the cursor's surroundings."""

    line_prefix: str
    line_suffix: str
    following: str  # text after the cursor line (may be empty)
    previous_line: str = ""
    max_lines: int = 8

    @property
    def single_line(self) -> bool:
        return bool(self.line_suffix.strip())

    @property
    def base_indent(self) -> int:
        """Indentation a continuation line must keep to stay in the cursor's block."""
        return len(self.line_prefix) - len(self.line_prefix.lstrip(" \t"))


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" \t"))


def _cut_lines(text: str, shape: Shape) -> str:
    """Keep the lines that belong to the cursor's block."""
    if shape.single_line:
        return text.split("\n", 1)[0]
    lines = text.split("\n")
    kept = [lines[0]]
    base = shape.base_indent
    blank_run = 0
    for line in lines[1:]:
        if not line.strip():
            blank_run += 1
            if blank_run >= 2:
                break
            kept.append(line)
            continue
        dedent = _indent(line) < base
        # After a blank line, code at the cursor's own level starts a new block (the next
        # function, the next statement group): the suggestion has said its piece.
        new_block = blank_run > 0 and _indent(line) <= base
        if dedent or new_block:
            break
        blank_run = 0
        kept.append(line)
        if sum(1 for k in kept if k.strip()) >= shape.max_lines:
            break
    while kept and not kept[-1].strip():
        kept.pop()
    return "\n".join(kept)


def is_done(text: str, shape: Shape) -> bool:
    """True once more tokens cannot change the post-processed result (ends generation early)."""
    if "\n" not in text:
        return False
    if shape.single_line:
        return True
    complete = (
        text[: text.rfind("\n")].lstrip("\n")
        if not shape.line_prefix.strip()
        else (text[: text.rfind("\n")])
    )
    cut = _cut_lines(complete, shape)
    return cut != complete.rstrip() or sum(1 for ln in cut.split("\n") if ln.strip()) >= (
        shape.max_lines
    )


def _strip_overlap(text: str, shape: Shape) -> str:
    """Drop the tail of ``text`` that the document already has after the cursor."""
    suffix = shape.line_suffix
    if shape.single_line:
        stripped_suffix = suffix.rstrip()
        # The model often re-types the closing characters that are already there.
        for size in range(min(len(text), len(stripped_suffix)), 0, -1):
            head = stripped_suffix[:size]
            if text.endswith(head) and head.strip() and text[: len(text) - size].strip():
                return text[: len(text) - size]
        return text
    following = shape.following.split("\n")
    lines = text.split("\n")
    # Remove trailing generated lines that equal the next lines of the document.
    for size in range(min(len(lines) - 1, len(following)), 0, -1):
        tail = [ln.rstrip() for ln in lines[-size:]]
        upcoming = [ln.rstrip() for ln in following[:size]]
        if tail == upcoming and any(t.strip() for t in tail):
            return "\n".join(lines[:-size])
    return text


def postprocess(raw: str, shape: Shape) -> str:
    """The suggestion to insert at the cursor, or '' when there is nothing worth showing."""
    text = raw.replace("\r\n", "\n")
    if not shape.line_prefix.strip() and not shape.single_line and text.startswith("\n"):
        # On a blank line the model may first end that line and continue on the next. Its
        # first real line then says where the code goes: deeper or at the cursor's level is
        # the cursor line's content (minus the indentation already typed); shallower means
        # the block is over and there is nothing to add here.
        rest = text.lstrip("\n")
        first = rest.split("\n", 1)[0]
        if _indent(first) < shape.base_indent:
            return ""
        text = rest[shape.base_indent :]
    text = _cut_lines(text, shape)
    text = _strip_overlap(text, shape)
    text = text.rstrip()
    if not text.strip():
        return ""
    first_line = (shape.line_prefix + text).split("\n", 1)[0].strip()
    if first_line and first_line == shape.previous_line.strip() and "\n" not in text:
        return ""
    following_text = shape.following.lstrip("\n")
    if "\n" in text and following_text.startswith(text.strip()):
        return ""
    return text
