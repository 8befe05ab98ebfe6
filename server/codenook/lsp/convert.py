"""LSP types <-> codenook's own: positions, ranges, suggestions, action arguments."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from lsprotocol import types

from codenook.assist.actions import ActionError
from codenook.text.positions import Encoding, LineIndex, PositionError


def offset(lines: LineIndex, position: types.Position, encoding: Encoding) -> int:
    """The code-point offset of an LSP position; PositionError when it is not in the text."""
    return lines.offset(position.line, position.character, encoding)


def lsp_range(lines: LineIndex, start: int, end: int, encoding: Encoding) -> types.Range:
    sl, sc = lines.position(start, encoding)
    el, ec = lines.position(end, encoding)
    return types.Range(types.Position(sl, sc), types.Position(el, ec))


def inline_list(text: str, position: types.Position) -> types.InlineCompletionList:
    if not text:
        return types.InlineCompletionList(items=[])
    item = types.InlineCompletionItem(insert_text=text, range=types.Range(position, position))
    return types.InlineCompletionList(items=[item])


def range_json(rng: types.Range) -> dict[str, Any]:
    return {
        "start": {"line": rng.start.line, "character": rng.start.character},
        "end": {"line": rng.end.line, "character": rng.end.character},
    }


@dataclass(frozen=True)
class ActionArgs:
    """The argument of ``codenook.runAction``, as the code action (or a client) built it."""

    uri: str
    action: str
    start: tuple[int, int]
    end: tuple[int, int]
    version: int | None = None
    message: str = ""
    instruction: str = ""

    @staticmethod
    def parse(raw: Any) -> ActionArgs:
        """Validate what a client sent; ActionError/PositionError name the bad member."""
        if not isinstance(raw, dict):
            raise ActionError("codenook.runAction expects one object argument")
        uri, action = raw.get("uri"), raw.get("action")
        if not isinstance(uri, str) or not isinstance(action, str):
            raise ActionError("codenook.runAction needs 'uri' and 'action' strings")
        version = raw.get("version")
        if version is not None and (isinstance(version, bool) or not isinstance(version, int)):
            raise ActionError("'version' must be an integer")
        start, end = range_points(raw.get("range"))
        texts = {k: raw.get(k, "") for k in ("message", "instruction")}
        if not all(isinstance(v, str) for v in texts.values()):
            raise ActionError("'message' and 'instruction' must be strings")
        return ActionArgs(uri, action, start, end, version, texts["message"], texts["instruction"])

    def offsets(self, lines: LineIndex, encoding: Encoding) -> tuple[int, int]:
        return lines.offset(*self.start, encoding), lines.offset(*self.end, encoding)


def range_points(raw: Any) -> tuple[tuple[int, int], tuple[int, int]]:
    """(line, character) pairs of a JSON LSP range; PositionError naming it when it is none."""
    try:
        points = [(int(raw[k]["line"]), int(raw[k]["character"])) for k in ("start", "end")]
    except (KeyError, TypeError, ValueError, OverflowError) as exc:
        raise PositionError(f"'range' is not an LSP range: {raw!r}") from exc
    return points[0], points[1]
