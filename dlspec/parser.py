"""Text → IR. Lark parses with the grammar shipped in `dlspec.grammar`; syntax errors become
`Diagnostic`s whose message says what is wrong, classified by example mistakes (see `MISTAKES`)."""

from __future__ import annotations

import ast
import functools
from importlib import resources

from lark import (
    Lark,
    Token,
    Transformer,
    Tree,
    UnexpectedCharacters,
    UnexpectedEOF,
    UnexpectedInput,
    v_args,
)

from . import ir
from .diagnostics import Diagnostic, DlsError, Span

_OPEN, _CLOSE = {"LPAR", "LSQB"}, {"RPAR", "RSQB"}


class _JoinLines:
    """Drops newlines inside brackets and around `->`, so long flows can span lines, and ends
    the last statement of a body (before `}`) and of the file with a newline."""

    always_accept = ("_NL",)

    def process(self, stream):
        depth, pending, prev = 0, None, None
        for tok in stream:
            if tok.type == "_NL":
                if depth == 0 and prev != "_ARROW" and pending is None:
                    pending = tok
                continue
            if pending is not None:
                if tok.type != "_ARROW":
                    yield pending
                    prev = "_NL"
                pending = None
            if tok.type == "RBRACE" and prev not in ("_NL", "LBRACE", None) and depth == 0:
                yield Token.new_borrow_pos("_NL", "", tok)
            if tok.type in _OPEN:
                depth += 1
            elif tok.type in _CLOSE:
                depth = max(0, depth - 1)
            prev = tok.type
            yield tok
        if pending is not None:
            yield pending
        elif prev not in ("_NL", None):
            yield Token("_NL", "", line=0, column=0)


@functools.cache
def _lark() -> Lark:
    grammar = resources.files("dlspec.grammar").joinpath("dls.lark").read_text(encoding="utf-8")
    return Lark(grammar, parser="lalr", lexer="basic", postlex=_JoinLines(), propagate_positions=True, maybe_placeholders=True)


def _span(meta_or_tok) -> Span:
    m = meta_or_tok
    if isinstance(m, Token):
        return Span(line=m.line, column=m.column, end_line=m.end_line or m.line, end_column=m.end_column or m.column + 1)
    if getattr(m, "empty", True):
        return Span()
    return Span(line=m.line, column=m.column, end_line=m.end_line, end_column=m.end_column)


@v_args(meta=True)
class _ToIR(Transformer):
    def int(self, meta, c):
        return int(c[0])

    def float(self, meta, c):
        return float(c[0])

    def string(self, meta, c):
        return ast.literal_eval(c[0])

    def true(self, meta, c):
        return True

    def false(self, meta, c):
        return False

    def ref(self, meta, c):
        return ir.Ref(name=str(c[0]), span=_span(c[0]))

    def tuple(self, meta, c):
        return ir.TupleValue(items=tuple(x for x in c if x is not None or len(c) > 1), span=_span(meta))

    def list(self, meta, c):
        return ir.ListValue(items=tuple(x for x in c if x is not None or len(c) > 1), span=_span(meta))

    def kwarg(self, meta, c):
        return ir.KwArg(name=str(c[0]), value=c[1], span=_span(meta))

    def call(self, meta, c):
        rest = [a for a in c[1:] if a is not None or len(c) > 2]
        if rest == [None]:
            rest = []
        args = tuple(a for a in rest if not isinstance(a, ir.KwArg))
        kwargs = tuple(a for a in rest if isinstance(a, ir.KwArg))
        return ir.Call(name=str(c[0]), args=args, kwargs=kwargs, span=_span(c[0]))

    def step(self, meta, c):
        return ir.Step(call=c[0], span=_span(meta))

    def repeat_step(self, meta, c):
        return ir.Step(call=c[1], repeat=c[0], span=_span(meta))

    def source_one(self, meta, c):
        return (str(c[0]),), _span(meta)

    def source_many(self, meta, c):
        return tuple(str(x) for x in c), _span(meta)

    def flow_stmt(self, meta, c):
        source, *steps, target = c
        sources, source_span = source if source is not None else ((), Span())
        return ir.Flow(
            sources=sources, steps=tuple(steps), target=None if target is None else str(target),
            source_span=source_span, target_span=_span(target) if target is not None else Span(),
            span=_span(meta),
        )

    def tensor_type(self, meta, c):
        return ("float" if c[0] is None else str(c[0])), tuple(c[1:])

    def input_stmt(self, meta, c):
        dtype, shape = c[1] if c[1] is not None else ("float", None)
        return ir.Input(name=str(c[0]), dtype=dtype, shape=shape, span=_span(c[0]))

    def output_stmt(self, meta, c):
        return ir.Output(names=tuple(str(x) for x in c), span=_span(meta))

    def setting(self, meta, c):
        return ir.Setting(key=str(c[0]), value=c[1], span=_span(c[0]))

    def param(self, meta, c):
        return ir.Param(name=str(c[0]), default=c[1], span=_span(c[0]))

    def const_def(self, meta, c):
        return ir.Const(name=str(c[0]), value=c[1], span=_span(c[0]))

    def block_def(self, meta, c):
        name, *rest = c
        params = tuple(x for x in rest if isinstance(x, ir.Param))
        body = tuple(x for x in rest if x is not None and not isinstance(x, ir.Param))
        return ir.Block(name=str(name), params=params, body=body, span=_span(name))

    def model_def(self, meta, c):
        return ir.Model(name=str(c[0]), body=tuple(x for x in c[1:] if x is not None), span=_span(c[0]))

    def train_def(self, meta, c):
        return ir.Train(settings=tuple(x for x in c if x is not None), span=_span(meta))

    def start(self, meta, c):
        return ir.Spec(items=tuple(c), span=_span(meta))


# Example mistakes and what to tell the writer. Lark matches a failing parse against these by
# parser state, so the message says what is wrong instead of listing expected tokens.
MISTAKES: dict[tuple[str, str], list[str]] = {
    ("a layer's arguments are not closed", "add the missing `)`"): [
        "model M {\n  input x: [4]\n  dense(4\n}",
        "model M {\n  input x: [4]\n  dense(4, activation=relu\n}",
        "model M {\n  input x: [4]\n  dense(units=\n}",
    ],
    ("a keyword argument has no value", "write `name=value`, e.g. `kernel=3`"): [
        "model M {\n  input x: [4]\n  dense(4, units=)\n}",
        "model M {\n  input x: [4]\n  dense(units=)\n}",
    ],
    ("an arrow points at nothing", "an arrow `->` must be followed by a layer call such as `relu()` or a tensor name"): [
        "model M {\n  input x: [4]\n  x -> \n}",
        "model M {\n  input x: [4]\n  x -> dense(4) ->\n}",
    ],
    ("a layer is used without parentheses", "call layers with parentheses, e.g. `relu()`"): [
        "model M {\n  input x: [4]\n  x -> relu -> y\n  y -> dense(3)\n}",
        "model M {\n  input x: [4]\n  x -> dense(4) -> relu -> y\n}",
    ],
    ("a `{` is never closed", "add the missing `}` at the end of the model, block or train section"): [
        "model M {\n  input x: [4]\n  dense(4)\n",
        "model M {\n",
        "train {\n  epochs: 3\n",
    ],
    ("an input needs a shape", "write the shape without the batch, e.g. `input x: [3, 32, 32]`"): [
        "model M {\n  input x: \n}",
        "model M {\n  input x: 3\n}",
    ],
    ("a setting has no value", "write `key: value`, e.g. `epochs: 10`"): [
        "train {\n  epochs:\n}",
        "model M {\n  init:\n}",
    ],
    ("expected `model`, `block`, `const` or `train` at the top level", "a spec is made of `model Name { ... }`, `block name(...) { ... }`, `const NAME = value` and `train { ... }`"): [
        "dense(4)\n",
        "x -> dense(4)\n",
        "modle M {\n}",
        "42",
    ],
}


def _describe(tok: Token | None) -> str:
    if tok is None or tok.type == "$END":
        return "the end of the file"
    if tok.type == "_NL":
        return "the end of the line"
    return f"`{tok}`"


def _diagnose(text: str, err: UnexpectedInput) -> Diagnostic:
    line, col = max(err.line, 1), max(err.column, 1)
    if isinstance(err, UnexpectedCharacters):
        ch = text[err.pos_in_stream] if err.pos_in_stream < len(text) else "?"
        hint = "strings use double quotes" if ch == "'" else None
        return Diagnostic(message=f"unexpected character {ch!r}", span=Span(line=line, column=col, end_line=line, end_column=col + 1), hint=hint)
    tok = getattr(err, "token", None)
    if isinstance(err, UnexpectedEOF) or (tok is not None and tok.type == "$END"):
        lines = text.splitlines() or [""]
        line, col = len(lines), len(lines[-1]) + 1
    span = _span(tok) if isinstance(tok, Token) and tok.line else Span(line=line, column=col, end_line=line, end_column=col + 1)
    if isinstance(tok, Token) and tok.type == "_NL":
        span = Span(line=tok.line, column=tok.column, end_line=tok.line, end_column=tok.column + 1)
    label = err.match_examples(_lark().parse, MISTAKES, use_accepts=True)
    found = _describe(tok)
    if label is not None:
        message, hint = label
        return Diagnostic(message=f"{message} (found {found})", span=span, hint=hint)
    expected = sorted(getattr(err, "expected", None) or getattr(err, "accepts", None) or [])
    words = ", ".join(_TOKEN_WORDS.get(e, e.lower()) for e in expected[:6])
    return Diagnostic(message=f"unexpected {found}", span=span, hint=f"expected one of: {words}" if words else None)


_TOKEN_WORDS = {
    "NAME": "a name", "SIGNED_INT": "an integer", "SIGNED_FLOAT": "a number", "STRING": "a string",
    "LPAR": "`(`", "RPAR": "`)`", "LSQB": "`[`", "RSQB": "`]`", "LBRACE": "`{`", "RBRACE": "`}`",
    "COMMA": "`,`", "COLON": "`:`", "EQUAL": "`=`", "_ARROW": "`->`", "_NL": "a new line",
}


def parse(text: str) -> ir.Spec:
    """Parse spec text into the IR, or raise `DlsError` with one diagnostic."""
    try:
        tree: Tree = _lark().parse(text)
    except UnexpectedInput as err:
        raise DlsError(_diagnose(text, err)) from None
    return _ToIR().transform(tree)
