"""TypeScript that tree-sitter-typescript 0.23.2 misreads: variance modifiers on type
parameters and newline-separated overload lists (effect 4.1 writes both on almost every
page). The index parses a rewritten copy, byte for byte in place, and keeps the file's own
lines."""

from __future__ import annotations

from codenook.text import languages
from codenook.workspace.index.extract import count_parse_errors, extract, parsable_source

TEXT = """\
export interface Box<out A, in out B = never> extends Pipeable {
  readonly value: A
}

/**
 * Overloads, one per line, no semicolons.
 */
export const map: {
  /** data-last */
  <A, B>(f: (a: A) => B): (self: Box<A>) => Box<B>
  /** data-first */
  <A, B>(self: Box<A>, f: (a: A) => B): Box<B>
  (n: number): Box<number>
} = dual(2, (self, f) => make(f(self.value)))

const curried =
  <E>(e: E) =>
  <A>(self: Box<A>): Box<A | E> =>
    self

export function make<A>(value: A): Box<A> {
  return { value }
}

export const last = 1
"""


def _errors(text: str) -> int:
    parser = languages.load("typescript").parser()
    return count_parse_errors(parser.parse(text.encode("utf-8")).root_node)


def test_the_grammar_misreads_this_file_and_the_rewrite_parses() -> None:
    assert _errors(TEXT) > 0  # if a new grammar parses it, the rewrite can go
    fixed = parsable_source("typescript", TEXT)
    assert len(fixed.encode("utf-8")) == len(TEXT.encode("utf-8"))
    assert [len(line) for line in fixed.split("\n")] == [len(x) for x in TEXT.split("\n")]
    assert _errors(fixed) == 0
    assert "<A, B>(f" in fixed and ";<A, B>(self" in fixed
    assert "  <A>(self: Box<A>): Box<A | E> =>" in fixed  # a curried arrow is left alone


def test_definitions_after_the_misread_code_are_indexed_with_their_own_lines() -> None:
    entry = extract("box.ts", TEXT)
    assert entry is not None
    by_name = {d.name: d for d in entry.definitions}
    assert {"Box", "map", "make", "last", "curried"} <= set(by_name)
    assert by_name["Box"].signature == (
        "export interface Box<out A, in out B = never> extends Pipeable {"
    )
    assert entry.parse_errors == 0


def test_other_languages_and_clean_files_are_not_rewritten() -> None:
    assert parsable_source("python", "def f(a, out b):\n") == "def f(a, out b):\n"
    clean = "export const a = (x: number): number => x\n"
    assert parsable_source("typescript", clean) == clean
