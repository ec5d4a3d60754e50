"""Every bad input gives one clear diagnostic, at the right place, with a hint where one helps; the
CLI renders it as `file:line:col: error: ...` with a caret, exits 2, shows no traceback and writes
no output file. Spec text that tries to inject Python is refused or lands in generated code inert;
names that collide with Python or generated-code names compile and run."""

from __future__ import annotations

import ast
import io
import json
import os
import re
import tokenize

import pytest
from typer.testing import CliRunner

from dlspec.check import check_file, check_text
from dlspec.cli import app
from dlspec.diagnostics import DlsError, render
from dlspec.parser import MISTAKES, parse
from dlspec.registry import _RESERVED, ident
from dlspec.runtime import load_generated, module_source

from .helpers import dls


def M(body: str, shape: str = "[4]") -> str:
    return f"model M {{\n  input x: {shape}\n{body}\n}}\n"


def C(body: str) -> str:
    return M(body, "[3, 8, 8]")


T = M("  dense(2)")  # a valid model to put a train section after (lines 1-4)

# (id, spec, (line, column), words of the message, words of the hint); where is None for a problem
# with no place in the file, UNCHECKED where this file does not assert the place.
UNCHECKED = "unchecked"
CASES = [
    # syntax
    ("unclosed paren", M("  dense(4"), (3, 3), "the arguments of `dense(` are never closed", "add the missing `)`"),
    ("unclosed paren after others", M("  x -> dense(4) -> relu()\n  dense(4\n  relu()"), (4, 3), "the arguments of `dense(` are", "`)`"),
    ("unclosed paren, next line", M("  x -> dense(4\n  relu()"), (3, 8), "`dense(` are never closed", "or a `,`"),
    ("unclosed bracket", "model M {\n  input x: [4\n  dense(4)\n}\n", (2, 12), "this `[` is never closed", "missing `]`"),
    ("missing brace", "model M {\n  input x: [4]\n  dense(4)\n", (1, 9), "the `{` of `model M` is never closed", "missing `}`"),
    ("missing brace, next model", "model M {\n  input x: [4]\nmodel N {\n}\n", (1, 9), "`{` of `model M` is never closed", "missing `}`"),
    ("extra brace", T + "}\n", (5, 1), "this `}` has no matching `{`", "remove it"),
    ("wrong closer", M("  dense(4]"), (3, 10), "`(` is closed by `]`", "close it with `)`"),
    ("layer without parentheses", M("  x -> relu -> y\n  output y"), (3, 13), "a layer is used without parentheses", "`relu()`"),
    ("arrow to nothing", M("  x -> dense(4) ->"), (3, 19), "an arrow points at nothing", "must be followed by a layer"),
    ("two arrows", M("  x -> -> dense(4)"), (3, 8), "an arrow points at nothing", "must be followed by a layer"),
    ("missing arrow", M("  x -> dense(4) relu()"), (3, 17), "not joined by `->`", "dense(10) -> relu()"),
    ("missing comma", M("  dense(4 bias=false)"), (3, 11), "arguments must be separated by commas", "conv2d(16, 3"),
    ("unexpected character", M("  dense(4) $"), (3, 12), "unexpected character '$'", None),
    ("semicolon", M("  dense(4); relu()"), (3, 11), "unexpected character ';'", "there is no `;`"),
    ("single-quoted string", M("  dense('a')"), (3, 9), "unexpected character \"'\"", "double quotes"),
    ("unclosed string", M('  dense(4, activation="relu)'), (3, 23), "unexpected character '\"'", "string is not closed"),
    ("bad escape", M('  dense(4, activation="\\x41")'), (3, 23), "invalid escape", "\\uXXXX"),
    ("confusable letter", "model M {\n  input \u0445: [4]\n  dense(2)\n}\n", (2, 9), "CYRILLIC SMALL LETTER HA", "plain ASCII"),
    ("reserved word as name", M("  x -> dense(4) -> model"), (3, 20), "`model` is a reserved word", "`model_`"),
    ("name with a space", C("  conv2 d(4, 3)"), (3, 3), "`conv2 d` is not a name", "did you mean `conv2d`?"),
    ("two names", M("  x dense(4)"), (3, 5), "two names in a row: `x dense`", "join the steps of a flow with `->`"),
    ("top-level junk", "dense(4)\n", (1, 1), "expected `model`, `block`, `const` or `train` at the top level", "model Name"),
    ("keyword argument without value", M("  dense(units=)"), (3, 15), "a keyword argument has no value", "name=value"),
    ("setting without value", T + "train {\n  epochs:\n}\n", (6, 10), "a setting has no value", "epochs: 10"),
    ("input without shape", "model M {\n  input x:\n  dense(2)\n}\n", (2, 11), "an input needs a shape", "[3, 32, 32]"),
    ("positional after keyword", M("  dense(units=4, 5)"), (3, 9), "a positional argument follows a keyword argument", "first"),
    ("integer too large", M("  dense(99999999999999999999)"), (3, 9), "is too large", "64 bits"),
    ("number too large", T + "train {\n  optimizer: adam(lr=1e999)\n}\n", (6, 22), "1e999 is too large", None),
    # layers and arguments
    ("unknown layer", M("  dens(4)"), (3, 3), "unknown layer or block `dens`", "did you mean `dense`?"),
    ("unknown layer, other case", C("  Conv2D(4, 3)"), (3, 3), "unknown layer or block `Conv2D`", "did you mean `conv2d`?"),
    ("unknown argument", M("  dense(4, unit=3)"), (3, 12), "dense has no argument `unit`", "did you mean `units`?"),
    ("string for an integer", M('  dense("ten")'), (3, 3), 'argument `units` must be an integer, got "ten"', "dense(units"),
    ("float for an integer", M("  dense(1.5)"), (3, 3), "argument `units` must be an integer, got 1.5", "dense(units"),
    ("rate out of range", M("  dropout(2)"), (3, 3), "argument `rate` must be below 1.0, got 2", "dropout(rate)"),
    ("bool for a number", M("  dropout(true)"), (3, 3), "argument `rate` must be a number, got true", "dropout(rate)"),
    ("undefined constant", M("  dense(N)"), (3, 9), "`units` must be an integer, got N", "define it with `const N = ...`"),
    ("missing required argument", M("  dense()"), (3, 3), "dense needs `units`", "dense(10)"),
    ("too many positional", M("  dense(4, 5)"), (3, 3), "dense takes 1 positional argument(s) (units), got 2", "name the others"),
    ("argument given twice", M("  dense(4, units=5)"), (3, 12), "argument `units` is given twice", None),
    ("tuple of the wrong length", C("  conv2d(4, (3, 3, 3))"), (3, 13), "`kernel` must have 2 values, e.g. (3, 3), got (3, 3, 3)", None),
    ("word not in the choices", C("  conv2d(4, 3, padding=sme)"), (3, 16), "must be `same` or `valid`, got sme", "did you mean `same`?"),
    ("unknown activation", M("  dense(4, activation=rellu)"), (3, 12), "unknown activation `rellu`", "did you mean `relu`?"),
    ("unknown initializer", M("  dense(4, init=he_norml)"), (3, 12), "unknown initializer `he_norml`", "did you mean `he_normal`?"),
    ("init not an initializer", M("  init: 3\n  dense(2)"), (3, 3), "an initializer is a name such as `he_normal`", None),
    ("unknown model setting", M("  inti: he_normal\n  dense(2)"), (3, 3), "unknown model setting `inti`", "did you mean `init`?"),
    # models, inputs and outputs
    ("no input at all", "model M {\n  dense(4)\n}\n", (2, 3), "this line has nothing to read from", "declare an input first"),
    ("no input declared", "model M {\n  x -> dense(4)\n}\n", (2, 3), "unknown tensor `x`", "`input x: [3, 32, 32]`"),
    ("empty model", "model M {\n}\n", (1, 7), "model `M` has no input", "declare one"),
    ("input only", "model M {\n  input x: [4]\n}\n", (1, 7), "model `M` has no layers", None),
    ("no model", "const A = 3\n", None, "the spec defines no model", "model Net {"),
    ("empty file", "", None, "the spec defines no model", "model Net {"),
    ("comments only", "# nothing here\n", None, "the spec defines no model", "model Net {"),
    ("input size zero", "model M {\n  input x: [0]\n  dense(2)\n}\n", (2, 9), "every size must be a positive integer, got 0", None),
    ("constant used before its definition", "const A = B\nconst B = 3\n" + M("  dense(A)"), (1, 11),
     "the constant `B` is used before its definition", "move the `const` line above"),
    ("constant defined after the model", M("  dense(W)") + "\nconst W = 3\n", (3, 9), "`W` is used before its definition", "above its first use"),
    ("attention over a keras bias bug", M("  attention(2)", "[2, 2]"), (3, 3), "computed wrong by Keras", "use fewer heads"),
    ("unknown tensor", M("  x -> dense(4) -> hidden\n  hiden -> dense(2)"), (4, 3), "unknown tensor `hiden`", "did you mean `hidden`?"),
    ("unknown output", M("  dense(2)\n  output y"), (4, 3), "unknown tensor `y`", "the tensors defined so far are `x`"),
    ("duplicate tensor", M("  x -> dense(4) -> a\n  a -> dense(4) -> a"), (4, 20), "the name `a` is already defined", "another name"),
    ("duplicate model", T + T, (5, 7), "the name `M` is defined twice", "different names"),
    ("cycle", M("  x -> dense(4) -> a\n  (a, b) -> add() -> b\n  b -> dense(2)"), (4, 3), "`b` is used before it is defined", "no cycle"),
    ("use before definition", M("  y -> dense(4) -> z\n  x -> dense(4) -> y\n  z -> dense(2)"), (3, 3), "`y` is used before it is defined",
     "defined above it"),
    # shapes and types
    ("dense on a feature map", C("  conv2d(8, 3)\n  dense(10)"), (4, 3), "dense expects [features] or [steps, features], got the feature map [8, 6, 6]",
     "add `flatten()`"),
    ("kernel larger than input", C("  conv2d(4, 9)"), (3, 3), "conv2d with kernel (9, 9) leaves no output for the input [3, 8, 8]", "padding=same"),
    ("add with one input", M("  add()"), (3, 3), "add needs two or more inputs", "(a, b) -> add()"),
    ("dense with two inputs", M("  x -> dense(4) -> a\n  (x, a) -> dense(2)"), (4, 13), "dense takes one input, but 2 reach it", "merge them first"),
    ("embedding on float input", M("  embedding(10, 4)"), (3, 3), "embedding needs integer token ids, but `x` is floating-point", "int[50]"),
    ("conv on int input", "model M {\n  input t: int[3, 8, 8]\n  conv2d(4, 3)\n}\n", (3, 3), "conv2d needs floating-point input", "embedding"),
    ("repeat zero", M("  repeat 0 relu()"), (3, 3), "repeat needs a positive whole number, got 0", None),
    ("repeat too large", M("  repeat 100000 relu()"), (3, 17), "grows past 10,000 layers", "lower the `repeat` counts"),
    # blocks
    ("duplicate block", "block b() {\n  relu()\n}\nblock b() {\n  relu()\n}\n" + M("  b() -> dense(2)"), (4, 7), "`b` is defined twice", None),
    ("block named like a layer", "block dense() {\n  relu()\n}\n" + M("  dense()"), (1, 7), "has the name of a built-in layer", "rename"),
    ("block recursion", "block b() {\n  b()\n}\n" + M("  b()"), (2, 3), "block `b` uses itself (b → b)", "repeat N"),
    ("block mutual recursion", "block a() {\n  c()\n}\nblock c() {\n  a()\n}\n" + M("  a()"), (5, 3), "block `a` uses itself (a → c → a)", "repeat N"),
    ("recursion, digits in name", "block conv3() {\n  conv3()\n}\n" + M("  conv3()"), (2, 3), "block `conv3` uses itself", None),
    ("unknown block parameter", "block b(n) {\n  dense(n)\n}\n" + M("  b(n=3, m=4)"), (6, 10), "block `b` has no parameter `m`", "its parameters: n"),
    ("missing block argument", "block b(n) {\n  dense(n)\n}\n" + M("  b()"), (6, 3), "block `b` needs `n`", None),
    ("setting in a block", "block b() {\n  init: zeros\n  relu()\n}\n" + M("  b() -> dense(2)"), (2, 3), "a block cannot have settings", "init="),
    ("block input with shape", "block b() {\n  input a: [3]\n  relu()\n}\n" + M("  b() -> dense(2)"), (2, 9), "takes its shape from the caller",
     "`input a`"),
    # the train section
    ("unknown train setting", T + "train {\n  epoch: 3\n}\n", (6, 3), "unknown train setting `epoch`", "did you mean `epochs`?"),
    ("train setting twice", T + "train {\n  epochs: 3\n  epochs: 4\n}\n", (7, 3), "`epochs` is set twice", None),
    ("two train sections", T + "train {\n}\ntrain {\n}\n", (7, 1), "at most one train section", None),
    ("digits with the wrong input size", M("  dense(10)") + "train {\n  data: digits()\n}\n", (6, 3), "digits gives 64 pixels per image",
     "[1, 8, 8]"),
    # training.py points these at `train {` (not at the model's output): see the report.
    ("digits with the wrong number of classes", "model M {\n  input x: [64]\n  dense(5)\n}\ntrain {\n  data: digits()\n}\n", UNCHECKED,
     "digits has 10 classes, but the model's output is [5]", "dense(10)"),
    ("mse with digits", "model M {\n  input x: [64]\n  dense(10)\n}\ntrain {\n  loss: mse()\n}\n", (6, 3),
     "mse needs", "cross_entropy()"),
    ("unknown optimizer", T + "train {\n  optimizer: adm(lr=0.1)\n}\n", (6, 14), "unknown optimizer `adm`", "did you mean `adam`?"),
    ("optimizer argument out of range", T + "train {\n  optimizer: sgd(lr=-1)\n}\n", (6, 18), "`lr` must be above 0.0, got -1", None),
    ("unknown model to train", T + "train {\n  model: N\n}\n", (6, 3), "unknown model `N`", "models: M"),
    ("epochs not a number", T + "train {\n  epochs: ten\n}\n", (6, 3), "`epochs` must be a positive whole number, got ten", None),
    ("unknown metric", T + "train {\n  metrics: [acuracy]\n}\n", (6, 3), "unknown metric `acuracy`", "did you mean `accuracy`?"),
]
IDS = [c[0] for c in CASES]


def only_diagnostic(text: str):
    with pytest.raises(DlsError) as exc:
        check_text(text, "s.dls")
    assert len(exc.value.diagnostics) == 1
    return exc.value.diagnostics[0]


@pytest.mark.parametrize("name,text,where,message,hint", CASES, ids=IDS)
def test_diagnostic(name, text, where, message, hint):
    d = only_diagnostic(text)
    assert message in d.message
    if hint is not None:
        assert d.hint is not None and hint in d.hint
    if where == UNCHECKED:
        return
    assert (d.span.line, d.span.column) == where if where else not d.span.known
    rendered = render(d, "s.dls", text)
    assert rendered.startswith(f"s.dls:{where[0]}:{where[1]}: error: " if where else "s.dls: error: ")
    if where is not None:  # the source line, then the caret under the reported column
        source_line, caret = rendered.split("\n")[1:3]
        assert source_line.startswith(f"  {where[0]:>4} | ") and caret.index("^") == 8 + where[1]


def test_shape_mismatches_name_both_shapes_and_point_at_the_other_tensor():
    add = only_diagnostic(M("  x -> dense(3) -> a\n  x -> dense(5) -> b\n  (a, b) -> add() -> dense(2)"))
    assert "[3]" in add.message and "[5]" in add.message and (add.span.line, add.span.column) == (5, 13)
    assert add.related[0].line == 4 and "`b` ([5]) comes from here" in add.related[1]
    cat = only_diagnostic(C("  x -> conv2d(4, 3) -> a\n  x -> conv2d(4, 1) -> b\n  (a, b) -> concat() -> flatten() -> dense(2)"))
    assert "[4, 6, 6]" in cat.message and "[4, 8, 8]" in cat.message and "outside axis 0" in cat.message
    assert cat.related[0].line == 4 and "`b` ([4, 8, 8])" in cat.related[1]


def test_notes_point_at_the_other_place():
    d = only_diagnostic(M("  x -> dense(4) -> a\n  a -> dense(4) -> a"))
    assert (d.related[0].line, d.related[0].column) == (3, 20) and "first defined here" in d.related[1]
    d = only_diagnostic(M("  y -> dense(4) -> z\n  x -> dense(4) -> y"))
    assert (d.related[0].line, d.related[0].column) == (4, 20) and "`y` is defined here" in d.related[1]
    d = only_diagnostic(M("  x -> dense(4\n  relu()"))
    assert (d.related[0].line, d.related[0].column) == (4, 3) and "found `relu` here" in d.related[1]


@pytest.mark.parametrize("label", list(MISTAKES), ids=[m for m, _ in MISTAKES])
def test_every_example_mistake_gets_its_own_message(label):
    for example in MISTAKES[label]:
        with pytest.raises(DlsError) as exc:
            parse(example)
        d = exc.value.diagnostics[0]
        assert d.message.startswith(label[0]) and d.hint == label[1], (example, d.message)


# --- files ---------------------------------------------------------------------------------------

def _files(tmp_path):
    (tmp_path / "binary.dls").write_bytes(b"model M {\x00\x01\x02}")
    (tmp_path / "latin1.dls").write_bytes("model Caf\xe9 {\n}\n".encode("latin-1"))
    (tmp_path / "folder.dls").mkdir()
    return {"binary.dls": "binary file", "latin1.dls": "not UTF-8 text: byte 0xE9", "missing.dls": "no such file",
            "folder.dls": "is a folder, not a spec file"}


def test_unreadable_files(tmp_path):
    for name, message in _files(tmp_path).items():
        with pytest.raises(DlsError) as exc:
            check_file(tmp_path / name)
        assert message in exc.value.diagnostics[0].message and exc.value.diagnostics[0].hint
    with pytest.raises(DlsError) as exc:
        check_file(tmp_path / "latin1.dls")
    assert (exc.value.diagnostics[0].span.line, exc.value.diagnostics[0].span.column) == (1, 10)


def test_a_byte_order_mark_is_not_part_of_the_text(tmp_path):
    (tmp_path / "bom.dls").write_bytes(b"\xef\xbb\xbf" + T.encode())
    assert check_file(tmp_path / "bom.dls").graph.name == "M"


# --- the command line ----------------------------------------------------------------------------

def test_every_error_through_the_cli(tmp_path, monkeypatch):
    # In-process (typer's runner): exit 2, `file:line:col: error:`, a caret, no output file.
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    for i, (name, text, where, message, _) in enumerate(CASES):
        spec = f"c{i}.dls"
        (tmp_path / spec).write_text(text, encoding="utf-8")
        for args in (["check", spec], ["compile", spec, "-t", "torch", "-o", "out.py"]):
            r = runner.invoke(app, args)
            assert r.exit_code == 2 and isinstance(r.exception, SystemExit), (name, args, r.stderr, r.exception)
            assert r.stdout == "" and "Traceback" not in r.stderr, name
            assert r.stderr.startswith(f"{spec}:" if where == UNCHECKED else f"{spec}:{where[0]}:{where[1]}: error: " if where
                                       else f"{spec}: error: "), (name, r.stderr)
            assert ("\n       | " in r.stderr and "^" in r.stderr) == (where is not None), name
            assert not (tmp_path / "out.py").exists()
    for name, message in _files(tmp_path).items():
        r = runner.invoke(app, ["check", name])
        where = ":1:10" if name == "latin1.dls" else ""
        assert r.exit_code == 2 and r.stderr.startswith(f"{name}{where}: error: ") and message in r.stderr


def test_errors_in_real_processes(tmp_path):
    (tmp_path / "syntax.dls").write_text(M("  dense(4"))
    (tmp_path / "shape.dls").write_text(C("  dense(10)"))
    _files(tmp_path)
    runs = [(dls("check", "syntax.dls", cwd=tmp_path), "syntax.dls:3:3: error: "),
            (dls("compile", "shape.dls", "-t", "keras", "-o", "out.py", cwd=tmp_path), "shape.dls:3:3: error: "),
            (dls("check", "binary.dls", cwd=tmp_path), "binary.dls: error: "),
            (dls("compile", "missing.dls", "-t", "torch", "-o", "out.py", cwd=tmp_path), "missing.dls: error: ")]
    for r, start in runs:
        assert r.returncode == 2 and r.stderr.startswith(start), r.stderr
        assert "Traceback" not in r.stderr + r.stdout and r.stdout == ""
    assert "^^^^^^" in runs[0][0].stderr and "hint: add `flatten()`" in runs[1][0].stderr
    assert not (tmp_path / "out.py").exists()


def test_diagnostics_are_not_wrapped(tmp_path):
    text = M("  relu() -> an_unknown_layer_whose_rather_long_name_pushes_the_message_past_eighty_columns()")
    (tmp_path / "long.dls").write_text(text)
    r = dls("check", "long.dls", cwd=tmp_path, env={**os.environ, "COLUMNS": "80"})  # as in CI logs and pipes
    d = only_diagnostic(text)
    assert r.stderr.splitlines()[0] == render(d, "long.dls", text).splitlines()[0]


# --- injection -----------------------------------------------------------------------------------

PAYLOADS = ['"); import os; os.system("x") #', "__import__('os').system('x')", "relu\nimport os", "relu\\", "{{ 7*7 }}",
            "\u202erelu", "r\u0435lu", "\x1b[31mrelu", "x" * 5000]
SLOTS = [M("  dense(4, activation=@)"), M("  dense(4, init=@)"), C("  conv2d(4, 3, padding=@) -> flatten() -> dense(2)"),
         *(T + f"train {{\n  {setting}\n}}\n" for setting in ("data: synthetic(task=@)", "optimizer: @", "schedule: @", "loss: @",
                                                              "metrics: [@]", "model: @"))]


def _code_outside_strings(code: str) -> str:
    return " ".join(t.string for t in tokenize.generate_tokens(io.StringIO(code).readline)
                    if t.type not in (tokenize.STRING, tokenize.COMMENT) and t.type != getattr(tokenize, "FSTRING_MIDDLE", -1))


@pytest.mark.parametrize("payload", PAYLOADS, ids=range(len(PAYLOADS)))
def test_strings_cannot_inject_code(payload):
    for slot in SLOTS:
        text = slot.replace("@", json.dumps(payload))
        try:
            checked = check_text(text, "s.dls")
        except DlsError as exc:  # refused, and the message is safe to print
            rendered = "\n".join(render(d, "s.dls", text) for d in exc.diagnostics)
            assert "\x1b" not in rendered and "\u202e" not in rendered
            continue
        for target in ("torch", "keras"):  # accepted: then only inside string literals
            code = module_source(checked, target)
            ast.parse(code)
            assert payload not in _code_outside_strings(code)


def test_a_strange_file_name_stays_out_of_the_code():
    checked = check_text(T, 'x"""); import os; os.system("x") #.dls')
    for target in ("torch", "keras"):
        code = module_source(checked, target)
        ast.parse(code)
        assert "os.system" not in code


# Tensors named after Python keywords, generated-code names and nn.Module attributes; `torch` and
# `torch_` must stay two different tensors.
NAMES_SPEC = """\
block forward(n) {
  input self
  self -> dense(n) -> _
  _ -> relu() -> eval
  (self, eval) -> add()
}

model class {
  input torch: [3, 8, 8]
  torch -> conv2d(4, 3, padding=same) -> nn
  nn -> batchnorm() -> F
  F -> flatten() -> layers
  layers -> dense(16) -> keras
  keras -> forward(16) -> import
  import -> dense(16) -> torch_
  (import, torch_) -> add() -> self
  self -> dense(16, activation=relu) -> __init__
  __init__ -> dense(16) -> training
  training -> dense(16) -> reset_parameters
  reset_parameters -> dense(16) -> EPOCHS
  EPOCHS -> dense(16) -> build_model
  build_model -> dense(16) -> None
  None -> dense(16) -> LONG
  LONG -> dense(10) -> to
  output to
}
""".replace("LONG", "n" + "_long" * 200)


def test_ident_keeps_names_apart_and_covers_nn_module():
    import torch

    assert {n for n in dir(torch.nn.Module) if not n.startswith("_")} <= _RESERVED
    names = ["torch", "torch_", "torch__", "_", "__", "__init__", "x", "x_", "class", "class_", "forward", "to", "to_"]
    idents = [ident(n) for n in names]
    assert len(set(idents)) == len(names) and all(i.isidentifier() for i in idents)
    assert ident("x") == "x" and ident("class") == "class_" and ident("torch_") == "torch__"


def test_names_that_collide_with_python_compile_and_run(tmp_path):
    import numpy as np
    import torch

    checked = check_text(NAMES_SPEC, "names.dls")
    assert not checked.warnings
    nodes = {n.name for n in checked.graph.nodes}
    assert {"torch_", "self", "forward1__", "forward1_eval", "__init__", "None", "to"} <= nodes
    for target in ("torch", "keras"):
        tree = ast.parse(module_source(checked, target))
        functions = [f for f in ast.walk(tree) if isinstance(f, ast.FunctionDef)]  # not the module's own constants
        targets = [t for f in functions for node in ast.walk(f) if isinstance(node, ast.Assign) for t in node.targets]
        bound = {t.id for t in targets if isinstance(t, ast.Name)} | {t.attr for t in targets if isinstance(t, ast.Attribute)}
        assert {"torch__", "self_", "None_", "v__init__", "forward1__", "to_"} <= bound
        assert not {"torch", "self", "None", "nn", "F", "layers", "keras", "forward", "training", "to", "EPOCHS"} & bound
    model = load_generated(checked, "torch", tmp_path).build_model().eval()
    out = model(torch.randn(2, 3, 8, 8))
    assert tuple(out.shape) == (2, 10)
    assert sum(p.numel() for p in model.parameters()) == checked.graph.params("torch")[1]
    kmodel = load_generated(checked, "keras", tmp_path).build_model()
    assert kmodel(np.random.default_rng(0).standard_normal((2, 3, 8, 8)).astype("float32")).shape == (2, 10)
    assert kmodel.count_params() == checked.graph.params("keras")[0]


def test_keras_helper_names_do_not_collide_with_spec_names(tmp_path):
    checked = check_text(C("  x -> conv2d(4, 3, padding=same) -> x_cl\n  flatten() -> dense(2)"))
    load_generated(checked, "keras", tmp_path).build_model()


def test_an_arrow_inside_open_parentheses_means_they_were_never_closed():
    d = only_diagnostic(M("  dense(10 -> relu()"))
    assert d.message == "the arguments of `dense(` are never closed" and d.hint == "add the missing `)`"
    assert (d.span.line, d.span.column) == (3, 3)


def test_an_error_inside_a_block_also_points_at_the_call():
    text = "block b(w) {\n  dense(w) -> relu()\n}\n\nmodel M {\n  input x: [4]\n  x -> b(8) -> b(relu)\n}\n"
    d = only_diagnostic(text)
    assert d.span.line == 2 and "must be an integer" in d.message
    span, note = d.related
    assert (span.line, span.column) == (7, 16) and note == "in `b2`, this call of `b`"


def test_names_the_layer_templates_define_are_reserved():
    # A spec tensor named like a helper class would shadow it inside build_model.
    from pathlib import Path

    templates = Path(__file__).resolve().parent.parent / "backends" / "templates"
    defined = {m for f in templates.glob("*_layers/*.j2") for m in re.findall(r"^(?:class|def) (\w+)", f.read_text(), re.MULTILINE)}
    assert defined and defined <= _RESERVED, defined - _RESERVED
