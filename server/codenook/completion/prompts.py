"""Prompt text for each model family: pure functions of a context and the model's markers.

FIM models get Qwen's repository-level layout, whose stable parts (repository name, file path,
header) come first so that consecutive keystrokes share the longest token prefix. Models
without FIM markers get a plain continuation of the code before the cursor.

A prompt is a sequence of parts flagged as marker or text: the engine parses special tokens
only in marker parts, so user code containing "<|fim_middle|>" or "<|endoftext|>" reaches the
model as the text it is instead of as control tokens.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from codenook.completion.context import CompletionContext
from codenook.engine.protocol import FimTokens, PromptPart
from codenook.workspace.crossfile import Chunk


@dataclass(frozen=True)
class Prompt:
    parts: tuple[PromptPart, ...]
    mode: Literal["fim", "prefix"]
    stop: tuple[str, ...]
    # Parts after which the next keystroke's prompt will most likely still agree with this
    # one: the end of the stable head and the start of the cursor line (see engine).
    checkpoint_after: tuple[int, ...] = ()
    # Indentation typed on the cursor line but left out of the prompt; the model writes it
    # again and ``strip_dropped_indent`` takes it back off.
    dropped_indent: str = ""

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


def fim_prompt(
    ctx: CompletionContext, fim: FimTokens, repo_name: str, chunks: Sequence[Chunk] = ()
) -> Prompt:
    """Qwen's repository-level FIM, with the hole starting at the cursor line's start.

    ``chunks`` of other files come first, one ``<|file_sep|>`` section each (a model without
    repository markers gets none of them).

    The cursor line's typed part goes after ``<|fim_middle|>`` as the beginning of the middle
    (the model continues it), so the prompt reads: stable head, code above the cursor line,
    suffix, then the typed part. Typing on a line changes only the prompt's last few tokens,
    which is what lets a hybrid model's checkpoint serve every keystroke (in the textbook
    order the whole suffix follows the edit and is re-read each time). Holes that start at a
    line boundary are also the ones FIM training cuts most.
    """
    assert fim.prefix and fim.suffix and fim.middle
    above, cursor_line = _split_cursor_line(ctx)
    parts: list[tuple[PromptPart, bool]] = []
    if fim.repo_name and fim.file_sep:
        parts += [(_marker(fim.repo_name), False), (_text(f"{repo_name}\n"), False)]
        for chunk in chunks:
            parts += [(_marker(fim.file_sep), False), (_text(chunk.render()), False)]
        parts += [(_marker(fim.file_sep), False), (_text(f"{ctx.path}\n"), False)]
    parts += [
        (_marker(fim.prefix), True),
        (_text(above), True),
        (_marker(fim.suffix), False),
        (_text(ctx.suffix), False),
        (_marker(fim.middle), True),
        (_text(cursor_line), False),
    ]
    return _build(parts, "fim", fim.markers())


def prefix_prompt(ctx: CompletionContext, comment: str) -> Prompt:
    """A file-path comment, then the code: gives a small base model a hint of the language.

    A cursor line holding only indentation is left out: models continue a line that ends in
    spaces badly (the spaces are a rare token), and they write the indentation themselves.
    """
    above, cursor_line = _split_cursor_line(ctx)
    dropped = cursor_line if cursor_line and not cursor_line.strip() else ""
    parts = [(_text(f"{comment} {ctx.path}\n{above}"), True)]
    if not dropped:
        parts.append((_text(cursor_line), False))
    prompt = _build(parts, "prefix", ())
    return Prompt(prompt.parts, prompt.mode, prompt.stop, prompt.checkpoint_after, dropped)


def completion_prompt(
    ctx: CompletionContext,
    fim: FimTokens,
    repo_name: str,
    comment: str,
    chunks: Sequence[Chunk] = (),
) -> Prompt:
    if fim.has_fim:
        return fim_prompt(ctx, fim, repo_name, chunks)
    return prefix_prompt(ctx, comment)


def takes_chunks(fim: FimTokens) -> bool:
    """Only the repository layout has a place for other files (``<|file_sep|>`` sections,
    as such models were trained); a prefix-only model gets its own file alone."""
    return bool(fim.has_fim and fim.repo_name and fim.file_sep)
