"""Prompt text for each model family: pure functions of a context and the model's markers.

FIM models get Qwen's repository-level layout, whose stable parts (repository name, file path,
header) come first so that consecutive keystrokes share the longest token prefix. Models
without FIM markers get a plain continuation of the code before the cursor.

A prompt is a sequence of parts flagged as marker or text: the engine parses special tokens
only in marker parts, so user code containing "<|fim_middle|>" or "<|endoftext|>" reaches the
model as the text it is instead of as control tokens.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from codenook.context import CompletionContext
from codenook.engine import FimTokens, PromptPart


@dataclass(frozen=True)
class Prompt:
    parts: tuple[PromptPart, ...]
    mode: Literal["fim", "prefix"]
    stop: tuple[str, ...]
    # Parts after which the next keystroke's prompt will most likely still agree with this
    # one: the end of the stable head and the start of the cursor line (see engine).
    checkpoint_after: tuple[int, ...] = ()

    @property
    def text(self) -> str:
        """The prompt as one string, for logs and traces (markers indistinguishable)."""
        return "".join(text for text, _ in self.parts)


def _marker(text: str) -> PromptPart:
    return (text, True)


def _text(text: str) -> PromptPart:
    return (text, False)


def _split_cursor_line(ctx: CompletionContext) -> tuple[str, str]:
    """Header and prefix up to the cursor line's start, and the cursor line's own prefix."""
    before = ctx.header + ctx.prefix
    cut = len(before) - len(ctx.line_prefix) if before.endswith(ctx.line_prefix) else len(before)
    return before[:cut], before[cut:]


def _build(
    parts: list[tuple[PromptPart, bool]], mode: Literal["fim", "prefix"], stop: tuple[str, ...]
) -> Prompt:
    """Drop empty parts; remember the index of each kept part flagged as a checkpoint."""
    kept: list[PromptPart] = []
    checkpoints: list[int] = []
    for part, checkpoint in parts:
        if part[0]:
            kept.append(part)
        if checkpoint and kept:
            checkpoints.append(len(kept) - 1)
    return Prompt(tuple(kept), mode, stop, tuple(sorted(set(checkpoints))))


def fim_prompt(ctx: CompletionContext, fim: FimTokens, repo_name: str) -> Prompt:
    assert fim.prefix and fim.suffix and fim.middle
    above, cursor_line = _split_cursor_line(ctx)
    parts: list[tuple[PromptPart, bool]] = []
    if fim.repo_name and fim.file_sep:
        parts += [
            (_marker(fim.repo_name), False),
            (_text(f"{repo_name}\n"), False),
            (_marker(fim.file_sep), False),
            (_text(f"{ctx.path}\n"), False),
        ]
    parts += [
        (_marker(fim.prefix), True),
        (_text(above), True),
        (_text(cursor_line), False),
        (_marker(fim.suffix), False),
        (_text(ctx.suffix), False),
        (_marker(fim.middle), False),
    ]
    return _build(parts, "fim", fim.markers())


def prefix_prompt(ctx: CompletionContext, comment: str) -> Prompt:
    """A file-path comment, then the code: gives a small base model a hint of the language."""
    above, cursor_line = _split_cursor_line(ctx)
    parts = [(_text(f"{comment} {ctx.path}\n{above}"), True), (_text(cursor_line), False)]
    return _build(parts, "prefix", ())


def completion_prompt(
    ctx: CompletionContext, fim: FimTokens, repo_name: str, comment: str
) -> Prompt:
    if fim.has_fim:
        return fim_prompt(ctx, fim, repo_name)
    return prefix_prompt(ctx, comment)
