"""Prompt text for each model family: pure functions of a context and the model's markers.

FIM models get Qwen's repository-level layout, whose stable parts (repository name, file path,
header) come first so that consecutive keystrokes share the longest token prefix. Models
without FIM markers get a plain continuation of the code before the cursor.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from codenook.context import CompletionContext
from codenook.engine import FimTokens


@dataclass(frozen=True)
class Prompt:
    text: str
    mode: Literal["fim", "prefix"]
    stop: tuple[str, ...]


def scrub(text: str, fim: FimTokens) -> str:
    """Remove marker strings that happen to be in user code; they would be parsed as specials."""
    for marker in fim.markers():
        if marker in text:
            text = text.replace(marker, "")
    return text


def fim_prompt(ctx: CompletionContext, fim: FimTokens, repo_name: str) -> Prompt:
    assert fim.prefix and fim.suffix and fim.middle
    head = ""
    if fim.has_repo_level:
        head = f"{fim.repo_name}{scrub(repo_name, fim)}\n{fim.file_sep}{scrub(ctx.path, fim)}\n"
    text = (
        f"{head}{fim.prefix}{scrub(ctx.header, fim)}{scrub(ctx.prefix, fim)}"
        f"{fim.suffix}{scrub(ctx.suffix, fim)}{fim.middle}"
    )
    return Prompt(text, "fim", stop=fim.markers())


def prefix_prompt(ctx: CompletionContext, comment: str) -> Prompt:
    """A file-path comment, then the code: gives a small base model a hint of the language."""
    text = f"{comment} {ctx.path}\n{ctx.header}{ctx.prefix}"
    return Prompt(text, "prefix", stop=())


def completion_prompt(
    ctx: CompletionContext, fim: FimTokens, repo_name: str, comment: str
) -> Prompt:
    if fim.has_fim:
        return fim_prompt(ctx, fim, repo_name)
    return prefix_prompt(ctx, comment)
