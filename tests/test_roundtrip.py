"""The printer and the parser agree: printing a spec and parsing it back gives the same IR, and
printing is idempotent, with and without the comments of the source. Over arbitrary IR-level text
and over valid specs (tests/strategies.py)."""

from __future__ import annotations

import functools
from importlib import resources

from hypothesis import given, settings
from hypothesis import strategies as st
from lark import Lark

from dlspec import ir
from dlspec.parser import parse
from dlspec.printer import format_spec

from .strategies import KINDS, ir_texts, specs

TEXTS = ir_texts() | st.sampled_from(KINDS).flatmap(specs)
# Parsing and printing take milliseconds: many more examples than the equivalence tests.
MANY = settings(max_examples=settings.default.max_examples * 5)


def skeleton(v):
    """The IR without source positions, each value with its type (so 1, 1.0 and true differ)."""
    if isinstance(v, ir.Node):
        return type(v).__name__, {k: skeleton(getattr(v, k)) for k in type(v).model_fields if not k.endswith("span")}
    if isinstance(v, tuple):
        return tuple(skeleton(x) for x in v)
    return type(v).__name__, v


@functools.cache
def _comment_lexer() -> tuple[Lark, list]:
    found: list = []
    grammar = resources.files("dlspec.grammar").joinpath("dls.lark").read_text(encoding="utf-8")
    return Lark(grammar, parser="lalr", lexer="basic", lexer_callbacks={"COMMENT": found.append}), found


def comment_words(text: str) -> list[str]:
    """The words of every comment, in order, as the grammar's lexer finds them (the printer may
    join the comments of one statement into one line)."""
    lexer, found = _comment_lexer()
    found.clear()
    list(lexer.lex(text))
    return " ".join(found).split()


@MANY
@given(text=TEXTS)
def test_printing_keeps_the_meaning(text):
    spec = parse(text)
    canonical = format_spec(spec)
    assert skeleton(parse(canonical)) == skeleton(spec)
    assert format_spec(parse(canonical)) == canonical


@MANY
@given(text=TEXTS)
def test_printing_keeps_the_comments(text):
    spec = parse(text)
    kept = format_spec(spec, text)
    assert skeleton(parse(kept)) == skeleton(spec)
    assert format_spec(parse(kept), kept) == kept
    assert comment_words(kept) == comment_words(text)
