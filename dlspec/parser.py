"""Text → IR. Lark parses with the grammar shipped in `dlspec.grammar`; syntax errors become
`Diagnostic`s whose message says what is wrong, classified by example mistakes (see `MISTAKES`)."""

from __future__ import annotations

import functools
import hashlib
import json
import math
import os
import re
import sys
import unicodedata
from contextvars import ContextVar
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import lark
from lark import Lark, Token, Transformer, Tree, UnexpectedCharacters, UnexpectedInput, UnexpectedToken, v_args
from lark.exceptions import VisitError

from . import ir
from .diagnostics import Diagnostic, DlsError, Span, error
from .layers import LAYERS

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


def _cache_file(grammar: str) -> str | bool:
    """Where Lark keeps the analysed parser between runs (building it is most of `dls check`'s own
    time): a folder of the user's, not the shared /tmp, since Lark's cache is a pickle (and, as the
    XDG rules say, not a relative $XDG_CACHE_HOME). The name hashes what the parser is built from
    (the grammar, this file's postlexer, Lark and Python), so that versions side by side keep their
    own. False (no cache) when the folder cannot be made."""
    base = os.environ.get("XDG_CACHE_HOME", "")
    try:
        folder = (Path(base) if os.path.isabs(base) else Path.home() / ".cache") / "dlspec"
        folder.mkdir(parents=True, exist_ok=True)
    except (OSError, RuntimeError):  # RuntimeError: no home directory
        return False
    source = grammar + Path(__file__).read_text(encoding="utf-8") + lark.__version__ + sys.version
    return str(folder / f"parser-{hashlib.sha256(source.encode()).hexdigest()[:16]}.pickle")


@functools.cache
def _lark() -> Lark:
    grammar = resources.files("dlspec.grammar").joinpath("dls.lark").read_text(encoding="utf-8")
    options = {"parser": "lalr", "lexer": "basic", "postlex": _JoinLines(), "propagate_positions": True,
               "maybe_placeholders": True}
    # Lark rebuilds and rewrites a cache it cannot read, such as one a parallel run is writing.
    return Lark(grammar, **options, cache=_cache_file(grammar))


_FILE: ContextVar[str] = ContextVar("file", default="")  # the file being parsed, when not the spec


def _span(meta_or_tok) -> Span:
    m = meta_or_tok
    if not isinstance(m, Token) and getattr(m, "empty", True):
        return Span()
    # The newline the postlexer adds at the end of the file has no position.
    return Span(line=m.line, column=m.column, end_line=m.end_line or m.line, end_column=m.end_column or m.column + 1,
                file=_FILE.get())


@v_args(meta=True)
class _ToIR(Transformer):
    # Numbers must fit the frameworks: integers in 64 bits, floats finite.
    def int(self, meta, c):
        v = int(c[0])
        if not -(2**63) <= v < 2**63:
            raise error(f"the integer {c[0]} is too large", _span(c[0]), hint="integers must fit in 64 bits")
        return v

    def float(self, meta, c):
        v = float(c[0])
        if math.isinf(v):
            raise error(f"the number {c[0]} is too large", _span(c[0]), hint="numbers must be below about 1.8e308")
        return v

    def string(self, meta, c):
        # JSON's escapes, the ones the printer writes (`\"`, `\\`, `\n`, `\t`, `\u00e9`, ...).
        try:
            v = json.loads(c[0], strict=False)
            v.encode("utf-8")
        except (ValueError, UnicodeEncodeError):
            raise error("this string has an invalid escape", _span(c[0]),
                        hint='strings take the escapes \\" \\\\ \\n \\t and \\uXXXX (a character, not a surrogate)') from None
        return v

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
        if kwargs and rest.index(kwargs[0]) < len(args):
            raise error(f"{c[0]}: a positional argument follows a keyword argument", kwargs[0].span,
                        hint="write positional arguments first, e.g. `conv2d(16, 3, stride=2)`")
        # The span covers the whole call, so that argument errors underline the arguments too.
        return ir.Call(name=str(c[0]), args=args, kwargs=kwargs, span=_span(meta))

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

    def model_setting(self, meta, c):
        return ir.Setting(key="model", value=c[0], span=Span(line=meta.line, column=meta.column, end_line=meta.line, end_column=meta.column + 5))

    def param(self, meta, c):
        return ir.Param(name=str(c[0]), default=c[1], span=_span(c[0]))

    def use_def(self, meta, c):
        tok = c[0]
        is_file = tok.type == "STRING"
        return ir.Use(name=self.string(meta, [tok]) if is_file else str(tok), is_file=is_file, span=_span(tok))

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


# Example mistakes and what to tell the writer. A failing parse is matched against these by
# parser state and the kind of token found, so the message says what is wrong instead of listing
# expected tokens. Unclosed brackets and braces, reserved words and names split by a space are
# recognised before this table (see `_diagnose`); tests/test_errors.py checks every example.
MISTAKES: dict[tuple[str, str], list[str]] = {
    ("a keyword argument has no value", "write `name=value`, e.g. `kernel=3`"): [
        "model M {\n  input x: [4]\n  dense(4, units=)\n}",
        "model M {\n  input x: [4]\n  dense(units=)\n}",
        "train {\n  optimizer: adam(lr=)\n}",
    ],
    ("arguments must be separated by commas", "write e.g. `conv2d(16, 3, padding=same)`"): [
        "model M {\n  input x: [4]\n  dense(4 bias=false)\n}",
        "model M {\n  input x: [4]\n  dense(4 5)\n}",
        "model M {\n  input x: [4]\n  dense(units=4 bias=false)\n}",
        'model M {\n  input x: [4]\n  dense(4 "a")\n}',
    ],
    ("an arrow points at nothing", "an arrow `->` must be followed by a layer call such as `relu()` or a tensor name"): [
        "model M {\n  input x: [4]\n  x -> \n}",
        "model M {\n  input x: [4]\n  x -> dense(4) ->\n}",
        "model M {\n  input x: [4]\n  x -> -> dense(4)\n}",
        "model M {\n  input x: [4]\n  x -> dense(4) -> -> y\n}",
    ],
    ("a layer is used without parentheses", "call layers with parentheses, e.g. `relu()`"): [
        "model M {\n  input x: [4]\n  x -> relu -> y\n  y -> dense(3)\n}",
        "model M {\n  input x: [4]\n  x -> dense(4) -> relu -> y\n}",
        "model M {\n  input x: [4]\n  x -> relu\n}",
        "model M {\n  input x: [4]\n  relu\n}",
    ],
    ("two steps of a flow are not joined by `->`", "write e.g. `dense(10) -> relu()`"): [
        "model M {\n  input x: [4]\n  dense(4) relu()\n}",
        "model M {\n  input x: [4]\n  x -> dense(4) relu()\n}",
    ],
    ("`repeat` needs a count and a layer", "write e.g. `repeat 3 conv_bn(64)`"): [
        "model M {\n  input x: [4]\n  repeat relu()\n}",
        "model M {\n  input x: [4]\n  repeat 3\n}",
        "model M {\n  input x: [4]\n  x -> repeat 3 -> y\n}",
    ],
    ("a model or block needs a name", "write e.g. `model Net {` or `block conv_bn(filters) {`"): [
        "model {\n}",
        "block (x) {\n}",
        "block {\n}",
    ],
    ("an input statement cannot continue into a flow", "start the flow on its own line with the input's name, e.g. `x -> dense(10)`"): [
        "model M {\n  input x: [4] -> dense(4)\n}",
        "model M {\n  input x: [4] dense(4)\n}",
        "model M {\n  input x: int[4] -> y\n}",
    ],
    ("an input needs a shape", "write the shape without the batch, e.g. `input x: [3, 32, 32]`"): [
        "model M {\n  input x: \n}",
        "model M {\n  input x: 3\n}",
        "model M {\n  input x: (3, 4)\n}",
        "model M {\n  input x: double[3]\n}",
    ],
    ("a setting has no value", "write `key: value`, e.g. `epochs: 10`"): [
        "train {\n  epochs:\n}",
        "model M {\n  init:\n}",
    ],
    ("a line must start with `input`, `output`, a tensor name, a layer call or `key: value`",
     "e.g. `input x: [4]`, `x -> dense(10) -> y`, `relu()`, `output y`, `epochs: 10`"): [
        "model M {\n  input x: [4]\n  3\n}",
        "model M {\n  input x: [4]\n  [4]\n}",
        "model M {\n  = 3\n}",
        'train {\n  "a"\n}',
    ],
    ("the train section holds only `key: value` settings", "e.g. `epochs: 10`; inputs and layers belong in a model"): [
        "train {\n  dense(4)\n}",
        "train {\n  input x: [4]\n}",
        "train {\n  output y\n}",
        "train {\n  x -> dense(4)\n}",
        "train {\n  repeat 2 relu()\n}",
        "train {\n  (a, b) -> add()\n}",
    ],
    ("expected `model`, `block`, `const` or `train` at the top level",
     "a spec is made of `model Name { ... }`, `block name(...) { ... }`, `const NAME = value` and `train { ... }`"): [
        "dense(4)\n",
        "x -> dense(4)\n",
        "modle M {\n}",
        "42",
        "{\n}",
    ],
}

_KEYWORDS = {"TRUE", "FALSE", "CONST", "BLOCK", "MODEL", "TRAIN", "INPUT", "OUTPUT", "REPEAT", "USE"}
_CLOSER = {"LPAR": ")", "LSQB": "]", "LBRACE": "}"}
_TOP_LEVEL = re.compile(r"[ \t]*(model|block|const|train|use)\b(?![ \t]*:)")
_CHAR_HINTS = {
    "'": "strings use double quotes",
    '"': "this string is not closed: a string ends with `\"` on the same line",
    ";": "a statement ends at the end of its line; there is no `;`",
}
_TOKEN_WORDS = {
    "NAME": "a name", "SIGNED_INT": "an integer", "SIGNED_FLOAT": "a number", "STRING": "a string",
    "LPAR": "`(`", "RPAR": "`)`", "LSQB": "`[`", "RSQB": "`]`", "LBRACE": "`{`", "RBRACE": "`}`",
    "COMMA": "`,`", "COLON": "`:`", "EQUAL": "`=`", "_ARROW": "`->`", "_NL": "a new line", "$END": "the end of the file",
    "DTYPE": "`int` or `float`",
}
_VALUE_START = {"SIGNED_INT", "SIGNED_FLOAT", "STRING", "TRUE", "FALSE", "LSQB", "LPAR", "NAME"}


@functools.cache
def _signatures() -> dict[tuple[int, str], tuple[str, str]]:
    """(parser state, token type) of each example mistake → its label."""
    table: dict[tuple[int, str], tuple[str, str]] = {}
    for label, examples in MISTAKES.items():
        for example in examples:
            try:
                _lark().parse(example)
            except UnexpectedToken as err:
                table.setdefault((err.state.position, err.token.type), label)
            except UnexpectedInput:  # a lexer error: not a parser state (the MISTAKES test fails)
                pass
    return table


def _describe(tok: Token | None) -> str:
    if tok is None or tok.type == "$END" or (tok.type == "_NL" and not tok.line):
        return "the end of the file"
    if tok.type == "_NL":
        return "the end of the line"
    return f"`{tok}`"


def _expected(types) -> str:
    types = set(types)
    words = ["a value"] if {"SIGNED_INT", "STRING", "TRUE"} <= types else []
    if words:
        types -= _VALUE_START
    words += sorted(_TOKEN_WORDS.get(t, f"`{t.lower()}`") for t in types)
    return " or ".join(words) if len(words) < 3 else ", ".join(words[:-1]) + " or " + words[-1]


def _tokens_before(text: str, pos: int) -> list[Token]:
    """The tokens before `pos` (the lexer got that far: the error is at or after it)."""
    out = []
    try:
        for tok in _lark().lex(text):
            if tok.start_pos is None or tok.start_pos >= pos:
                break
            if tok.type != "_NL" or tok.value:
                out.append(tok)
    except UnexpectedInput:
        pass
    return out


def _char_error(text: str, err: UnexpectedCharacters) -> Diagnostic:
    ch = text[err.pos_in_stream] if err.pos_in_stream < len(text) else "?"
    what = "" if ch.isascii() and ch.isprintable() else f" ({unicodedata.name(ch, f'U+{ord(ch):04X}')})"
    hint = _CHAR_HINTS.get(ch) or (None if ch.isascii() else "outside strings and comments, a spec is plain ASCII: "
                                   "names use the letters A-Z and a-z, digits and `_`")
    span = Span(line=err.line, column=err.column, end_line=err.line, end_column=err.column + 1)
    return Diagnostic(message=f"unexpected character {ch!r}{what}", span=span, hint=hint)


@dataclass
class _Failure:
    """Where the parser stopped, and what surrounds it: what the rules below look at."""

    text: str
    tok: Token | None
    accepts: set[str]
    state: int | None
    at_end: bool = field(init=False)
    span: Span = field(init=False)
    before: list[Token] = field(init=False)  # the tokens before the failing one
    opened: list[Token] = field(init=False)  # brackets and braces still open there

    def __post_init__(self):
        t = self.tok
        self.at_end = t is None or t.type == "$END" or not t.line
        self.before = _tokens_before(self.text, len(self.text) if self.at_end else t.start_pos)
        last = self.before[-1] if self.before else None
        if (self.at_end or t.type == "_NL") and last is not None:  # just after the last token of the incomplete line
            self.span = Span(line=last.end_line, column=last.end_column, end_line=last.end_line, end_column=last.end_column + 1)
        elif self.at_end:
            self.span = Span(line=1, column=1, end_line=1, end_column=2)
        else:
            self.span = _span(t) if t.type != "_NL" else Span(line=t.line, column=t.column, end_line=t.line, end_column=t.column + 1)
        self.opened = []
        for b in self.before:
            if b.type in _CLOSER:
                self.opened.append(b)
            elif b.type in ("RPAR", "RSQB", "RBRACE") and self.opened:
                self.opened.pop()

    @property
    def found(self) -> str:
        return _describe(self.tok)

    @property
    def here(self) -> tuple[Span, str] | None:
        return None if self.at_end else (self.span, f"found {self.found} here")

    def is_(self, *types: str) -> bool:
        return self.tok is not None and self.tok.type in types


def _unclosed_bracket(f: _Failure) -> Diagnostic | None:
    """`dense(4` then a new line, a `}` or the end: point at the `(`, not where the parser gave up."""
    prev = f.before[-1] if f.before else None
    first_on_line = prev is None or (prev.end_line or prev.line) < f.span.line
    # An arrow never appears inside brackets: meeting one there means the bracket was left open.
    if not f.opened or f.opened[-1].type == "LBRACE" or not (f.at_end or f.is_("RBRACE", "_ARROW") or first_on_line):
        return None
    o = f.opened[-1]
    i = next(k for k, t in enumerate(f.before) if t is o)  # not .index: tokens compare by their text
    head = f.before[i - 1] if o.type == "LPAR" and i and f.before[i - 1].type == "NAME" else o
    what = f"the arguments of `{head}(` are" if head is not o else f"this `{o}` is"
    more = "" if f.at_end or f.is_("RBRACE", "_ARROW") else ", or a `,` if the list goes on"
    return Diagnostic(message=f"{what} never closed", span=Span(line=head.line, column=head.column, end_line=o.end_line, end_column=o.end_column),
                      hint=f"add the missing `{_CLOSER[o.type]}`{more}", related=f.here)


def _stray_closer(f: _Failure) -> Diagnostic | None:
    if not f.is_("RPAR", "RSQB", "RBRACE") or (f.opened and _CLOSER[f.opened[-1].type] == f.tok):
        return None
    if f.opened and f.opened[-1].type != "LBRACE":
        o = f.opened[-1]
        return Diagnostic(message=f"`{o}` is closed by `{f.tok}`", span=f.span, hint=f"close it with `{_CLOSER[o.type]}`",
                          related=(_span(o), f"`{o}` opened here"))
    opener = {")": "(", "]": "[", "}": "{"}[f.tok]
    return Diagnostic(message=f"this `{f.tok}` has no matching `{opener}`", span=f.span, hint=f"remove it, or add the missing `{opener}` before it")


def _unclosed_brace(f: _Failure) -> Diagnostic | None:
    """The end of the file, or a new `model`/`block`/`const`/`train`, inside a body."""
    line = "" if f.at_end else f.text.split("\n")[f.span.line - 1]
    if not f.opened or f.opened[-1].type != "LBRACE" or not (f.at_end or _TOP_LEVEL.match(line)):
        return None
    o = f.opened[-1]
    head = " ".join(f.text[f.text.rfind("\n", 0, o.start_pos) + 1:o.start_pos].split())
    return Diagnostic(message=f"the `{{` of `{head}` is never closed" if head else "this `{` is never closed", span=_span(o),
                      hint="add the missing `}` at the end of the model, block or train section", related=f.here)


def _example_mistake(f: _Failure) -> Diagnostic | None:
    label = _signatures().get((f.state, f.tok.type)) if f.state is not None and f.tok is not None else None
    return None if label is None else Diagnostic(message=f"{label[0]} (found {f.found})", span=f.span, hint=label[1])


def _reserved_word(f: _Failure) -> Diagnostic | None:
    if f.is_(*_KEYWORDS) and "NAME" in f.accepts:
        return Diagnostic(message=f"`{f.tok}` is a reserved word and cannot be used as a name", span=f.span,
                          hint=f"choose another name, e.g. `{f.tok}_`")
    return None


def _two_names(f: _Failure) -> Diagnostic | None:
    """`conv2 d(...)` (a name with a space) or `x dense(...)` (a missing arrow)."""
    prev = f.before[-1] if f.before else None
    if not f.is_("NAME") or prev is None or prev.type != "NAME" or prev.line != f.tok.line:
        return None
    known = {*LAYERS, *re.findall(r"\bblock[ \t]+([A-Za-z_]\w*)", f.text)}
    joined = next((j for j in (f"{prev}{f.tok}", f"{prev}_{f.tok}") if j in known), None)
    if joined is not None:
        return Diagnostic(message=f"`{prev} {f.tok}` is not a name: names cannot contain spaces", hint=f"did you mean `{joined}`?",
                          span=Span(line=prev.line, column=prev.column, end_line=f.tok.end_line, end_column=f.tok.end_column))
    return Diagnostic(message=f"two names in a row: `{prev} {f.tok}`", span=f.span,
                      hint="join the steps of a flow with `->`, e.g. `x -> dense(10)`; one statement per line")


def _diagnose(text: str, err: UnexpectedInput) -> Diagnostic:
    if isinstance(err, UnexpectedCharacters):
        return _char_error(text, err)
    state = err.state.position if getattr(err, "state", None) is not None else None
    f = _Failure(text, getattr(err, "token", None), set(getattr(err, "accepts", None) or getattr(err, "expected", None) or ()), state)
    for rule in (_unclosed_bracket, _stray_closer, _unclosed_brace, _example_mistake, _reserved_word, _two_names):
        if (diag := rule(f)) is not None:
            return diag
    message = "the file ends too early" if f.at_end else "this line is incomplete" if f.is_("_NL") else f"unexpected {f.found}"
    return Diagnostic(message=message, span=f.span, hint=f"expected {_expected(f.accepts)}" if f.accepts else None)


def parse(text: str, file: str = "") -> ir.Spec:
    """Parse spec text into the IR, or raise `DlsError` with one diagnostic. `file` names a file
    other than the spec's (a library), for the spans."""
    token = _FILE.set(file)
    try:
        tree: Tree = _lark().parse(text)
        return _ToIR().transform(tree)
    except UnexpectedInput as err:
        raise DlsError(_diagnose(text, err)) from None
    except VisitError as err:  # a value the grammar accepts but the language does not (see _ToIR)
        if isinstance(err.orig_exc, DlsError):
            raise err.orig_exc from None
        raise
    finally:
        _FILE.reset(token)
