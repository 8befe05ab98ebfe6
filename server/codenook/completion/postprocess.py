"""Turning raw model output into a suggestion worth showing: pure functions.

Rules, in order: one line when code sits right of the cursor; otherwise stop where the
enclosing block ends (a line indented less than the cursor's block, or code at the cursor's
level after a blank line) or at a run of blank lines, and at ``max_lines``; drop text the
document already has right after the cursor; show nothing that is only whitespace or repeats
the line above or the lines below.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any


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
        return _indent(self.line_prefix)

    @property
    def on_blank_line(self) -> bool:
        return not self.line_prefix.strip()


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" \t"))


def _normalise(text: str) -> str:
    """Unix line ends, no trailing whitespace on any line, no trailing blank lines."""
    lines = [line.rstrip() for line in text.replace("\r\n", "\n").split("\n")]
    return "\n".join(lines).rstrip("\n")


def _enter_line(text: str, shape: Shape) -> str | None:
    """Where the suggestion starts when the model first ended the (blank) cursor line.

    Its first real line says where the code goes: at or below the cursor's level it becomes
    the cursor line's content (minus the indentation already typed); shallower means the block
    is over and there is nothing to add here (None).
    """
    if not (shape.on_blank_line and not shape.single_line and text.startswith("\n")):
        return text
    rest = text.lstrip("\n")
    first = rest.split("\n", 1)[0]
    if first.strip() and _indent(first) < shape.base_indent:
        return None
    return rest[min(shape.base_indent, _indent(first)) :]


def _cut_lines(text: str, shape: Shape) -> str:
    """Keep the lines that belong to the cursor's block."""
    if shape.single_line:
        return text.split("\n", 1)[0]
    lines = text.split("\n")
    kept = [lines[0]]
    counted = 1 if lines[0].strip() else 0
    base = shape.base_indent
    blank_run = 0
    for line in lines[1:]:
        if not line.strip():
            blank_run += 1
            if blank_run >= 2:
                break
            kept.append(line)
            continue
        # After a blank line, code at the cursor's own level starts a new block (the next
        # function, the next statement group): the suggestion has said its piece.
        if _indent(line) < base or (blank_run > 0 and _indent(line) <= base):
            break
        if counted >= shape.max_lines:
            break
        blank_run = 0
        kept.append(line)
        counted += 1
    return "\n".join(kept)


def _strip_overlap(text: str, shape: Shape) -> str:
    """Drop the tail of ``text`` that the document already has after the cursor."""
    if shape.single_line:
        suffix = shape.line_suffix.rstrip()
        # The model often re-types the closing characters that are already there.
        for size in range(min(len(text), len(suffix)), 0, -1):
            head = suffix[:size]
            if text.endswith(head) and head.strip() and text[: len(text) - size].strip():
                return text[: len(text) - size]
        return text
    following = shape.following.split("\n")
    lines = text.split("\n")
    # Remove trailing generated lines that equal the next lines of the document.
    for size in range(min(len(lines) - 1, len(following)), 0, -1):
        tail = [ln.strip() for ln in lines[-size:]]
        upcoming = [ln.strip() for ln in following[:size]]
        if tail == upcoming and any(tail):
            return "\n".join(lines[:-size])
    return text


def _repeats_neighbours(text: str, shape: Shape) -> bool:
    """True when accepting would only duplicate the line above or the lines below."""
    result = (shape.line_prefix + text + shape.line_suffix).split("\n")
    result = [line.strip() for line in result if line.strip()]
    if not result:
        return True
    if len(result) == 1 and result[0] == shape.previous_line.strip():
        return True
    below = [line.strip() for line in shape.following.split("\n") if line.strip()]
    return below[: len(result)] == result


def postprocess(raw: str, shape: Shape) -> str:
    """The suggestion to insert at the cursor, or '' when there is nothing worth showing."""
    text = _enter_line(raw.replace("\r\n", "\n"), shape)
    if text is None:
        return ""
    if (
        not shape.on_blank_line
        and shape.line_prefix[-1:] in (" ", "\t")
        and text[:1] in (" ", "\t")
    ):
        # "return " + " a + b" would leave two spaces: the cursor already follows one.
        text = text.lstrip(" \t")
    text = _normalise(_cut_lines(text, shape))
    text = _strip_overlap(text, shape).rstrip()
    if not text.strip() or _repeats_neighbours(text, shape):
        return ""
    return text


def is_done(text: str, shape: Shape) -> bool:
    """True once more tokens cannot change the post-processed result (ends generation early)."""
    text = text.replace("\r\n", "\n")
    if "\n" not in text:
        return False
    if shape.single_line:
        return True
    entered = _enter_line(text, shape)
    if entered is None:
        return True
    if "\n" not in entered:
        return False
    complete = entered[: entered.rfind("\n")]
    cut = _cut_lines(complete, shape)
    if _normalise(cut) != _normalise(complete):
        return True
    # Two blank lines in a row end every multi-line suggestion.
    if entered.rstrip(" \t").endswith("\n\n\n") or "\n\n\n" in _strip_spaces(entered):
        return True
    return sum(1 for line in cut.split("\n") if line.strip()) >= shape.max_lines


def _strip_spaces(text: str) -> str:
    return "\n".join(line.strip() for line in text.split("\n"))


def strip_dropped_indent(text: str, indent: str) -> str | None:
    """Model output minus the indentation the prompt left out; None when it dedents instead."""
    if not indent:
        return text
    if text.startswith(indent):
        return text[len(indent) :]
    first = text.split("\n", 1)[0]
    if first.strip() or len(first) >= len(indent):
        return None
    return text  # still typing the indentation: undecided


@dataclass(frozen=True)
class Judge:
    """Whether a completion's model text is finished (the generation's ``until``), as plain
    data: an engine in another process (the shared host) rebuilds it with ``from_data`` and
    judges each alternative exactly as the window would."""

    shape: Shape
    dropped_indent: str = ""

    def __call__(self, text: str) -> bool:
        raw = strip_dropped_indent(text, self.dropped_indent)
        return raw is None or is_done(raw, self.shape)

    def to_data(self) -> dict[str, Any]:
        return {"shape": asdict(self.shape), "dropped_indent": self.dropped_indent}

    @staticmethod
    def from_data(data: Mapping[str, Any]) -> Judge:
        """The judge ``to_data`` described; ValueError for anything else."""
        raw = data.get("shape") if isinstance(data, Mapping) else None
        indent = data.get("dropped_indent", "") if isinstance(data, Mapping) else None
        if not isinstance(raw, Mapping) or not isinstance(indent, str):
            raise ValueError("not a completion judge")
        for f in fields(Shape):
            kind = int if f.name == "max_lines" else str
            if type(raw.get(f.name)) is not kind:
                raise ValueError(f"a completion judge's shape needs {f.name!r}")
        shape = Shape(
            raw["line_prefix"],
            raw["line_suffix"],
            raw["following"],
            raw["previous_line"],
            raw["max_lines"],
        )
        return Judge(shape, indent)
