"""Post-processing raw model output into the suggestion shown at the cursor."""

from __future__ import annotations

import random

import pytest

from codenook.completion.postprocess import Shape, is_done, postprocess


def shape(
    line_prefix: str,
    line_suffix: str = "",
    following: str = "",
    previous_line: str = "",
    max_lines: int = 8,
) -> Shape:
    return Shape(line_prefix, line_suffix, following, previous_line, max_lines)


# --- single line -------------------------------------------------------------------------------


def test_code_right_of_the_cursor_means_a_single_line() -> None:
    s = shape("    total = compute(", ")", "    return total\n")
    assert s.single_line
    assert postprocess("a, b)\n    print(total)\n", s) == "a, b"


def test_whitespace_right_of_the_cursor_allows_multiple_lines() -> None:
    s = shape("def f():", "   ")
    assert not s.single_line
    assert postprocess("\n    a = 1\n    return a", s) == "\n    a = 1\n    return a"


@pytest.mark.parametrize(
    ("line_prefix", "line_suffix", "raw", "expected"),
    [
        ("print(", ")", "x)", "x"),
        ("print(", ")", "x", "x"),
        ("f(", "):", "a, b):", "a, b"),
        ("f(", ")  ", "a)", "a"),  # trailing whitespace of the suffix does not matter
        ("if (", ") {", "ok) {", "ok"),
        ('say("', '")', 'hello")', "hello"),
        ("x = ", "value", "compute_value", "compute_"),
        ("a[", "]", "i + 1]", "i + 1"),
        ("g(h(", "))", "x))", "x"),
        ("g(h(", "))", "x)", "x"),
    ],
)
def test_single_line_drops_what_the_document_already_has(
    line_prefix: str, line_suffix: str, raw: str, expected: str
) -> None:
    assert postprocess(raw, shape(line_prefix, line_suffix)) == expected


def test_single_line_output_that_is_only_the_suffix_is_kept() -> None:
    # `g(h(x|)` may well need its second ')': with nothing else generated, the text is kept.
    assert postprocess(")", shape("g(h(x", ")")) == ")"


def test_single_line_output_starting_with_a_newline_is_nothing() -> None:
    assert postprocess("\n    more()", shape("f(", ")")) == ""


# --- multi-line cuts ---------------------------------------------------------------------------


def test_stops_at_a_dedent_below_the_cursors_block() -> None:
    s = shape("    if ready:")
    raw = "\n        start()\n        wait()\n    done()\nprint('next')\n"
    assert postprocess(raw, s) == "\n        start()\n        wait()\n    done()"


def test_stops_at_a_closing_brace_below_the_block() -> None:
    s = shape("    let x = 1;")
    assert postprocess("\n    let y = x + 1;\n}\n\nfn other() {", s) == "\n    let y = x + 1;"


def test_stops_at_two_blank_lines() -> None:
    s = shape("def f():")
    raw = "\n    a = 1\n\n\n    b = 2\n"
    assert postprocess(raw, s) == "\n    a = 1"


def test_one_blank_line_then_deeper_code_continues() -> None:
    s = shape("def f():")
    raw = "\n    a = 1\n\n    return a\n"
    assert postprocess(raw, s) == "\n    a = 1\n\n    return a"


def test_stops_after_a_blank_line_followed_by_code_at_the_cursors_level() -> None:
    s = shape("    x = 1")
    assert postprocess("\n    y = 2\n\n    z = 3\n", s) == "\n    y = 2"
    top = shape("def f():")
    assert postprocess("\n    return 1\n\ndef g():\n    pass", top) == "\n    return 1"


def test_stops_at_max_lines() -> None:
    s = shape("def f():", max_lines=3)
    raw = "\n    a = 1\n    b = 2\n    c = 3\n    d = 4\n    e = 5"
    assert postprocess(raw, s) == "\n    a = 1\n    b = 2\n    c = 3"
    # Blank lines inside do not count towards the limit.
    s2 = shape("x = 0", max_lines=2)
    assert postprocess("\ny = 1\n\nz = 2\nw = 3", s2) == "\ny = 1"
    one = shape("def f():", max_lines=1)
    assert postprocess("\n    a = 1\n    b = 2", one) == "\n    a = 1"


def test_max_lines_one_gives_one_line() -> None:
    assert postprocess("a = 1\n    b = 2", shape("    ", max_lines=1)) == "a = 1"
    assert postprocess("x = 1\ny = 2\nz = 3", shape("", max_lines=1)) == "x = 1"


def test_trailing_blank_lines_and_whitespace_are_removed() -> None:
    assert postprocess("x = 1   \n\n", shape("")) == "x = 1"
    assert postprocess("\n    a()\n    \n", shape("def f():")) == "\n    a()"


def test_crlf_output_is_normalised() -> None:
    assert postprocess("\r\n    a()\r\n    b()", shape("def f():")) == "\n    a()\n    b()"


# --- nothing worth showing ---------------------------------------------------------------------


@pytest.mark.parametrize("raw", ["", " ", "\n", "   \n\t\n", "\n\n\n"])
@pytest.mark.parametrize("line_prefix", ["", "    ", "x = 1", "    y = "])
def test_whitespace_only_is_nothing(raw: str, line_prefix: str) -> None:
    assert postprocess(raw, shape(line_prefix)) == ""
    assert postprocess(raw, shape(line_prefix, ")")) == ""


def test_suggestion_identical_to_the_following_lines_is_nothing() -> None:
    s = shape("", following="a = 1\nb = 2\n")
    assert postprocess("a = 1\nb = 2", s) == ""
    s2 = shape("x = 0", following="a = 1\nb = 2\n")
    assert postprocess("\na = 1\nb = 2", s2) == ""


def test_trailing_lines_that_the_document_already_has_are_dropped() -> None:
    s = shape("    ", following="    return y\n", previous_line="def f(x):")
    assert postprocess("y = x * 2\n    return y", s) == "y = x * 2"
    s2 = shape("def f(x):", following="    return y\n")
    assert postprocess("\n    y = x * 2\n    return y\n", s2) == "\n    y = x * 2"


def test_suggestion_identical_to_the_following_indented_lines_is_nothing() -> None:
    s = shape("    ", following="    a = 1\n    b = 2\n", previous_line="def f():")
    assert postprocess("a = 1\n    b = 2", s) == ""


def test_single_line_suggestion_identical_to_the_next_line_is_nothing() -> None:
    s = shape("    ", following="    return total\n", previous_line="    total = 0")
    assert postprocess("return total", s) == ""


def test_repeating_the_previous_line_is_nothing() -> None:
    s = shape("    ", previous_line="    x = 1")
    assert postprocess("x = 1", s) == ""
    assert postprocess("x = 2", s) == "x = 2"


# --- cursor on a blank indented line -----------------------------------------------------------


def test_leading_newline_on_a_blank_indented_line() -> None:
    s = shape("    ", previous_line="def f(x):")
    # The model ends the (blank) cursor line and writes on the next one: its first line's
    # indentation is already typed.
    assert postprocess("\n    return x", s) == "return x"
    assert postprocess("\n\n    a = x\n    return a", s) == "a = x\n    return a"
    # Deeper than the cursor: the extra indentation is kept.
    assert postprocess("\n        x += 1", s) == "    x += 1"


def test_leading_newline_then_a_dedent_means_the_block_is_over() -> None:
    s = shape("    ", previous_line="    return x")
    assert postprocess("\ndef g():\n    pass", s) == ""


def test_leading_newline_at_column_zero() -> None:
    assert postprocess("\nx = 1\ny = 2", shape("")) == "x = 1\ny = 2"


# --- is_done -----------------------------------------------------------------------------------


def test_is_done_never_before_a_line_is_complete() -> None:
    assert not is_done("", shape("f(", ")"))
    assert not is_done("a, b)", shape("f(", ")"))
    assert not is_done("    a = 1", shape("def f():"))


def test_is_done_single_line_after_the_first_newline() -> None:
    s = shape("f(", ")")
    assert is_done("a)\n", s)
    assert is_done("\n", s)


def test_is_done_after_a_dedent_line() -> None:
    s = shape("    if ready:")
    assert not is_done("\n        start()\n", s)
    assert not is_done("\n        start()\npri", s)  # the dedent line is not complete yet
    assert is_done("\n        start()\nprint()\n", s)


def test_is_done_after_a_blank_line_and_code_at_the_cursors_level() -> None:
    s = shape("    x = 1")
    assert not is_done("\n    y = 2\n\n", s)
    assert is_done("\n    y = 2\n\n    z = 3\n", s)


def test_is_done_at_max_lines() -> None:
    s = shape("def f():", max_lines=2)
    assert not is_done("\n    a = 1\n", s)
    assert is_done("\n    a = 1\n    b = 2\n", s)


LINES = [
    "",
    "",
    "a = 1",
    "    b = 2",
    "        c()",
    "\tt = 3",
    "  z",
    "}",
    "    }",
    "return q",
    "    if x:",
    "def g():",
]

SHAPES = [
    shape(""),
    shape("    "),
    shape("        "),
    shape("def f():"),
    shape("    x = 1"),
    shape("    if y:", max_lines=2),
    shape("    ", following="    b = 2\n        c()\n"),
    shape("f(", ")"),
    shape("x = 0", max_lines=3),
]  # max_lines=1 is left out: see test_max_lines_one_gives_one_line


def _random_raw(rng: random.Random) -> str:
    lines = [rng.choice(LINES) for _ in range(rng.randint(1, 8))]
    raw = "\n".join(lines)
    if rng.random() < 0.4:
        raw = "\n" + raw
    if rng.random() < 0.5:
        raw += "\n"
    return raw


def test_is_done_is_sound_more_tokens_never_change_the_result() -> None:
    """Once is_done says so, no continuation changes the post-processed suggestion."""
    rng = random.Random(7)
    fired = 0
    for _ in range(1500):
        s = rng.choice(SHAPES)
        raw = _random_raw(rng)
        final = postprocess(raw, s)
        for end in range(len(raw) + 1):
            if is_done(raw[:end], s):
                fired += 1
                assert postprocess(raw[:end], s) == final, (raw[:end], raw, s)
                assert is_done(raw, s)
                break
    assert fired > 300  # the property was really exercised


@pytest.mark.parametrize("eol", ["\r\n", "  \n"], ids=["crlf", "trailing-space"])
def test_is_done_is_sound_with_whitespace_at_line_ends(eol: str) -> None:
    s = shape("def f():")
    head = f"{eol}    a = 1{eol}"
    full = head + f"    b = 2{eol}"
    assert postprocess(full, s).count("b = 2") == 1
    assert not is_done(head, s)


def test_is_done_after_two_blank_lines() -> None:
    s = shape("def f():")
    text = "\n    a = 1\n\n\n"
    assert postprocess(text + "    anything()\n", s) == postprocess(text, s)
    assert is_done(text, s)


def test_is_done_when_the_first_line_dedents_on_a_blank_line() -> None:
    s = shape("    ")
    assert postprocess("\ndef g():\n    pass\n", s) == ""
    assert is_done("\ndef g():\n", s)


def test_no_double_space_after_a_typed_space() -> None:
    assert postprocess(" a + b", shape("    return ")) == "a + b"
    # On a blank line, leading whitespace is indentation and stays.
    assert postprocess("    x", shape("    ")) == "    x"
