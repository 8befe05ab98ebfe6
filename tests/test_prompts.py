"""Prompt layouts: Qwen repository-level FIM, plain FIM, prefix-only; markers vs user text."""

from __future__ import annotations

import pathlib
from collections.abc import Iterator
from typing import Any

import pytest
from tiny_qwen3next import CONTROL_TOKENS

from codenook.completion.context import CompletionContext
from codenook.completion.prompts import completion_prompt, fim_prompt, prefix_prompt
from codenook.engine.protocol import FimTokens, tokenize_parts

QWEN = FimTokens(
    prefix="<|fim_prefix|>",
    suffix="<|fim_suffix|>",
    middle="<|fim_middle|>",
    pad="<|fim_pad|>",
    repo_name="<|repo_name|>",
    file_sep="<|file_sep|>",
)
PLAIN_FIM = FimTokens(prefix="<PRE>", suffix="<SUF>", middle="<MID>")
NO_FIM = FimTokens()


def ctx(
    header: str = "import os\n",
    prefix: str = "def f(x):\n    return ",
    suffix: str = "\n\nprint(f(1))",
    path: str = "pkg/mod.py",
) -> CompletionContext:
    return CompletionContext(
        path=path,
        language="python",
        header=header,
        prefix=prefix,
        suffix=suffix,
        line_prefix=prefix.rsplit("\n", 1)[-1],
        line_suffix=suffix.split("\n", 1)[0],
        window_start_line=0,
        cursor_line=prefix.count("\n"),
    )


def test_qwen_repo_level_layout_exactly() -> None:
    prompt = completion_prompt(ctx(), QWEN, "myrepo", "#")
    assert prompt.mode == "fim"
    assert prompt.text == (
        "<|repo_name|>myrepo\n"
        "<|file_sep|>pkg/mod.py\n"
        "<|fim_prefix|>import os\ndef f(x):\n"
        "<|fim_suffix|>\n\nprint(f(1))"
        "<|fim_middle|>    return "
    )
    assert set(prompt.stop) == {
        "<|fim_prefix|>",
        "<|fim_suffix|>",
        "<|fim_middle|>",
        "<|fim_pad|>",
        "<|repo_name|>",
        "<|file_sep|>",
    }


def test_layout_with_empty_header_and_suffix() -> None:
    prompt = fim_prompt(ctx(header="", suffix=""), QWEN, "r")
    assert prompt.text == (
        "<|repo_name|>r\n<|file_sep|>pkg/mod.py\n"
        "<|fim_prefix|>def f(x):\n<|fim_suffix|><|fim_middle|>    return "
    )


def test_typing_changes_only_the_end_of_the_prompt() -> None:
    """The cursor line's typed part comes last: a keystroke only extends the prompt."""
    a = completion_prompt(ctx(prefix="def f(x):\n    ret"), QWEN, "r", "#").text
    b = completion_prompt(ctx(prefix="def f(x):\n    retu"), QWEN, "r", "#").text
    assert b == a + "u"


def test_plain_fim_without_repo_markers() -> None:
    prompt = completion_prompt(ctx(), PLAIN_FIM, "myrepo", "#")
    assert prompt.mode == "fim"
    assert prompt.text == "<PRE>import os\ndef f(x):\n<SUF>\n\nprint(f(1))<MID>    return "
    assert set(prompt.stop) == {"<PRE>", "<SUF>", "<MID>"}


def test_repo_markers_without_fim_markers_give_a_prefix_prompt() -> None:
    only_repo = FimTokens(repo_name="<|repo_name|>", file_sep="<|file_sep|>")
    assert not only_repo.has_fim and not only_repo.has_repo_level
    prompt = completion_prompt(ctx(), only_repo, "r", "#")
    assert prompt.mode == "prefix"


def test_prefix_only_prompt_without_fim_tokens() -> None:
    prompt = completion_prompt(ctx(), NO_FIM, "myrepo", "#")
    assert prompt.mode == "prefix"
    assert prompt.text == "# pkg/mod.py\nimport os\ndef f(x):\n    return "
    assert prompt.stop == ()
    assert "print(f(1))" not in prompt.text  # no suffix without FIM
    js = prefix_prompt(ctx(header="", prefix="const a = ", path="src/a.js"), "//")
    assert js.text == "// src/a.js\nconst a = "


def test_markers_in_user_code_stay_text() -> None:
    sneaky = ctx(
        header="# <|fim_middle|> header\n",
        prefix='TOK = "<|fim_prefix|>"\nEND = "<|file_sep|>',
        suffix='"\nX = "<|fim_suffix|><|fim_pad|>"',
        path="a<|repo_name|>.py",
    )
    prompt = completion_prompt(sneaky, QWEN, "re<|fim_middle|>po", "#")
    # The user's text is kept verbatim, but only the layout's own markers are markers.
    markers = [text for text, special in prompt.parts if special]
    assert markers == [
        "<|repo_name|>",
        "<|file_sep|>",
        "<|fim_prefix|>",
        "<|fim_suffix|>",
        "<|fim_middle|>",
    ]
    texts = "".join(text for text, special in prompt.parts if not special)
    assert '<|fim_prefix|>"' in texts and "<|fim_pad|>" in texts and "re<|fim_middle|>po" in texts


# --- with a real vocabulary --------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_gguf(hybrid_path: pathlib.Path) -> pathlib.Path:
    return hybrid_path


@pytest.fixture(scope="module")
def vocab_llm(tiny_gguf: pathlib.Path) -> Iterator[Any]:
    llama_cpp = pytest.importorskip("llama_cpp")
    llm = llama_cpp.Llama(model_path=str(tiny_gguf), vocab_only=True, verbose=False)
    yield llm
    llm.close()


def _tokens(llm: Any, prompt: Any) -> list[int]:
    """Tokenize a prompt the way the engine does: markers special, user text plain."""
    return tokenize_parts(
        lambda text, special: llm.tokenize(text.encode(), add_bos=False, special=special),
        prompt.parts,
    )


def _special_ids(llm: Any, fim: FimTokens) -> dict[str, int]:
    ids = {}
    for marker in fim.markers():
        tokens = llm.tokenize(marker.encode(), add_bos=False, special=True)
        assert len(tokens) == 1, marker
        ids[marker] = tokens[0]
    return ids


def test_real_vocabulary_markers_and_prompt_tokens(tiny_gguf: pathlib.Path, vocab_llm: Any) -> None:
    from codenook.engine.llama import inspect_model

    info = inspect_model(tiny_gguf)
    assert info.fim == QWEN
    assert info.fim.has_fim and info.fim.has_repo_level
    assert len(info.fim.markers()) == 6

    prompt = completion_prompt(ctx(), info.fim, "myrepo", "#")
    ids = _tokens(vocab_llm, prompt)
    special = _special_ids(vocab_llm, info.fim)
    rep, sep = special["<|repo_name|>"], special["<|file_sep|>"]
    pre, suf, mid = (special[m] for m in ("<|fim_prefix|>", "<|fim_suffix|>", "<|fim_middle|>"))
    assert ids[0] == rep
    # The cursor line's typed part follows the middle marker as plain text.
    assert vocab_llm.detokenize(ids[ids.index(mid) + 1 :]).decode() == "    return "
    for token in (rep, sep, pre, suf, mid):
        assert ids.count(token) == 1
    assert ids.index(rep) < ids.index(sep) < ids.index(pre) < ids.index(suf) < ids.index(mid)
    assert special["<|fim_pad|>"] not in ids
    # Every other token is ordinary text that decodes back to the user's code.
    between = ids[ids.index(pre) + 1 : ids.index(suf)]
    assert vocab_llm.detokenize(between).decode() == "import os\ndef f(x):\n"
    assert vocab_llm.detokenize(ids, special=True).decode() == prompt.text


def test_other_special_tokens_in_user_code_stay_text(
    tiny_gguf: pathlib.Path, vocab_llm: Any
) -> None:
    from codenook.engine.llama import inspect_model

    fim = inspect_model(tiny_gguf).fim
    code = ctx(prefix='EOS = "<|endoftext|>"\nSTART = "<|im_start|>"\nx = ')
    prompt = completion_prompt(code, fim, "r", "#")
    ids = _tokens(vocab_llm, prompt)
    special = _special_ids(vocab_llm, fim)
    control = {
        vocab_llm.tokenize(t.encode(), add_bos=False, special=True)[0] for t in CONTROL_TOKENS
    }
    layout = [special[m] for m in (fim.repo_name, fim.file_sep, fim.prefix, fim.suffix, fim.middle)]
    assert [t for t in ids if t in control] == layout
