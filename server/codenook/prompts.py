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

    @property
    def text(self) -> str:
        """The prompt as one string, for logs and traces (markers indistinguishable)."""
        return "".join(text for text, _ in self.parts)


def _marker(text: str) -> PromptPart:
    return (text, True)


def _text(text: str) -> PromptPart:
    return (text, False)


def fim_prompt(ctx: CompletionContext, fim: FimTokens, repo_name: str) -> Prompt:
    assert fim.prefix and fim.suffix and fim.middle
    parts: list[PromptPart] = []
    if fim.repo_name and fim.file_sep:
        parts += [
            _marker(fim.repo_name),
            _text(f"{repo_name}\n"),
            _marker(fim.file_sep),
            _text(f"{ctx.path}\n"),
        ]
    parts += [
        _marker(fim.prefix),
        _text(ctx.header + ctx.prefix),
        _marker(fim.suffix),
        _text(ctx.suffix),
        _marker(fim.middle),
    ]
    return Prompt(tuple(p for p in parts if p[0]), "fim", stop=fim.markers())


def prefix_prompt(ctx: CompletionContext, comment: str) -> Prompt:
    """A file-path comment, then the code: gives a small base model a hint of the language."""
    return Prompt((_text(f"{comment} {ctx.path}\n{ctx.header}{ctx.prefix}"),), "prefix", ())


def completion_prompt(
    ctx: CompletionContext, fim: FimTokens, repo_name: str, comment: str
) -> Prompt:
    if fim.has_fim:
        return fim_prompt(ctx, fim, repo_name)
    return prefix_prompt(ctx, comment)
