"""Answering from the suggestion already shown: exact rules, no model."""

from __future__ import annotations

from codenook.completion.service import Shown, typed_through

SHOWN = Shown(before="def f(x):\n    return ", after="\n\nprint(f(1))\n", text="x * 2")


def test_typing_the_start_of_the_suggestion_leaves_the_rest() -> None:
    assert typed_through(SHOWN, SHOWN.before + "x", SHOWN.after) == " * 2"
    assert typed_through(SHOWN, SHOWN.before + "x * ", SHOWN.after) == "2"


def test_asking_again_at_the_same_place_gives_the_same_suggestion() -> None:
    assert typed_through(SHOWN, SHOWN.before, SHOWN.after) == "x * 2"


def test_anything_else_needs_the_model() -> None:
    assert typed_through(SHOWN, SHOWN.before + "y", SHOWN.after) is None  # diverged
    assert typed_through(SHOWN, SHOWN.before + "x * 2", SHOWN.after) is None  # all typed
    assert typed_through(SHOWN, SHOWN.before + "x", SHOWN.after + "#") is None  # edit below
    assert typed_through(SHOWN, "def g(x):\n    return x", SHOWN.after) is None  # edit above
    assert typed_through(SHOWN, SHOWN.before[:-1], SHOWN.after) is None  # backspace
