"""`dls fmt`'s layout of long flows and of comments inside statements."""

from __future__ import annotations

from dlspec.parser import parse
from dlspec.printer import WIDTH, format_spec

LONG = "model M {\n  input x: [3, 32, 32]\n  x" + " -> conv2d(16, 3, padding=same, bias=false) -> batchnorm(eps=0.001)" * 4 + "\n}\n"


def test_a_long_flow_is_broken_before_arrows_within_the_width():
    text = format_spec(parse(LONG), LONG)
    rows = text.split("\n")[2:-2]
    assert len(rows) > 1 and all(len(r) <= WIDTH for r in rows)
    assert all(r.startswith("    -> ") for r in rows[1:])
    assert parse(text) == parse(LONG) and format_spec(parse(text), text) == text


def test_comments_inside_a_statement_move_above_it_one_per_line():
    source = "model M {\n  input x: [4]\n  x -> dense(\n    4,  # four\n    activation=relu,  # why\n  ) -> h  # end\n  dense(2)  # fine\n}\n"
    text = format_spec(parse(source), source)
    assert text == ("model M {\n  input x: [4]\n  # four\n  # why\n  # end\n  x -> dense(4, activation=relu) -> h\n"
                    "  dense(2)  # fine\n}\n")
    assert format_spec(parse(text), text) == text
