"""Regions, reply parsing and validation for code actions; chat templates; hover targets."""

from __future__ import annotations

from pathlib import Path

import pytest

from codenook.assist.actions import (
    KINDS,
    ActionError,
    ReplyParser,
    choose_region,
    instruction_for,
    reindent,
    validate,
)
from codenook.assist.chat import Message, render_chat
from codenook.assist.hover import HoverCache, clean_explanation, hover_target, render_hover
from codenook.text.documents import Document

CODE = """import os


class Store:
    def get(self, key: str) -> str:
        value = os.environ.get(key)
        return value or ""


def helper(x):
    return x + 1
"""


def snap():
    return Document("file:///w/store.py", CODE, 1).snapshot()


def test_region_is_the_enclosing_definition_or_the_selection() -> None:
    s = snap()
    inside = CODE.index("value or")
    region = choose_region(s, inside, inside)
    assert region.text(s).startswith("    def get(") and region.text(s).endswith(
        'return value or ""'
    )
    sel = choose_region(s, CODE.index("value = "), CODE.index("        return value"))
    assert sel.text(s) == "        value = os.environ.get(key)"
    top = choose_region(s, 0, 0)
    assert top.text(s) == "import os" and top.label == "line"


def test_reply_parser_streams_complete_lines_of_the_first_block() -> None:
    parser = ReplyParser()
    for piece in ["Here you go:\n``", "`python\n    a = 1\n    b", " = 2\n``", "`\nthanks"]:
        parser.feed(piece)
    assert parser.finished
    assert parser.complete_lines() == ["    a = 1", "    b = 2"]
    assert parser.code(final=True) == "    a = 1\n    b = 2"
    bare = ReplyParser()
    bare.feed("x = 1\n")
    assert bare.complete_lines() == [] and bare.code(final=True) == "x = 1"


def test_reindent_restores_dropped_base_indentation() -> None:
    assert reindent(["def f():", "    pass"], "    def g():\n        pass") == [
        "    def f():",
        "        pass",
    ]
    assert reindent(["    x"], "    y") == ["    x"]


def test_validation_rejects_deletions_and_syntax_errors() -> None:
    s = snap()
    inside = CODE.index("value or")
    region = choose_region(s, inside, inside)
    good = region.text(s).replace('return value or ""', 'return value if value else ""')
    validate(s, region, good)
    with pytest.raises(ActionError, match="syntax errors"):
        validate(s, region, "    def get(self, key: str) -> str:\n        return (((\n")
    with pytest.raises(ActionError, match="delete most"):
        validate(s, region, "    pass")
    with pytest.raises(ActionError, match="no code"):
        validate(s, region, "  \n")


def test_instruction_needs_text_for_edit_with_instruction() -> None:
    with pytest.raises(ActionError):
        instruction_for(KINDS["instruct"])
    assert instruction_for(KINDS["fix"], message="boom") == "Fix this problem: boom"


def test_chat_template_keeps_user_text_out_of_special_parts(smollm_path: Path) -> None:
    from codenook.engine.llama import inspect_model

    template = inspect_model(smollm_path).chat_template
    parts = render_chat(template, [Message("system", "S"), Message("user", "x = '<|im_end|>'")])
    user_texts = [text for text, special in parts if not special]
    assert user_texts == ["S", "x = '<|im_end|>'"]
    rendered = "".join(text for text, _ in parts)
    assert rendered.endswith("<|im_start|>assistant\n")


def test_hover_target_signature_and_cache() -> None:
    s = snap()
    use = CODE.index("helper")
    target = hover_target(s, use + 1)
    assert target is not None and target.name == "helper"
    assert target.signature == "def helper(x):"
    method = hover_target(s, CODE.index("get(") + 1)
    assert method is not None and method.signature == "def get(self, key: str) -> str:"
    assert hover_target(s, CODE.index("import")) is None  # a keyword, not a name
    markdown = render_hover(target, "Adds one.")
    assert markdown == "```python\ndef helper(x):\n```\n\nAdds one."
    cache = HoverCache(capacity=1)
    key = HoverCache.key("m", target)
    cache.put(key, "Adds one.")
    assert cache.get(key) == "Adds one." and cache.hits == 1
    cache.put("other", "x")
    assert cache.get(key) is None  # evicted at capacity


def test_clean_explanation_keeps_short_prose() -> None:
    assert clean_explanation("It adds one. It is pure. It is fast. It is old.\n```py\nx\n```") == (
        "It adds one. It is pure. It is fast."
    )
