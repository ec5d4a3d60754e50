"""Any text, and any mangled version of a valid spec, ends in success or in a `DlsError` whose
diagnostics point inside the text and render; never in another exception. An accepted spec
survives `dls fmt` unchanged in meaning. The CLI exits 0 or 2 on such input, without a traceback."""

from __future__ import annotations

import random
import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from dlspec.check import check_text
from dlspec.cli import app
from dlspec.diagnostics import DlsError, render
from dlspec.parser import parse
from dlspec.printer import format_spec

from .helpers import ROOT, SPECS

DOC = (ROOT / "docs" / "language.md").read_text(encoding="utf-8")
SEEDS = [p.read_text(encoding="utf-8") for p in SPECS] + re.findall(r"^```dls\n(.*?)^```$", DOC, flags=re.DOTALL | re.MULTILINE)
TOKEN = re.compile(r'"(?:[^"\\\n]|\\.)*"|->|\w+|\s+|.', re.DOTALL)
VOCAB = sorted({t for s in SEEDS for t in TOKEN.findall(s) if not t.isspace()} | {"'", "$", ";", "\t", "\x00", "é", "\u0445"})


def outcome(text: str):
    """The checked spec, or None after checking that the error is a proper diagnostic."""
    lines = text.split("\n")
    try:
        checked = check_text(text, "f.dls")
    except DlsError as exc:
        assert exc.diagnostics
        for d in exc.diagnostics:
            for span in [d.span] + ([d.related[0]] if d.related else []):
                where = Path(span.file).read_text().split("\n") if span.file else lines  # a `use`d library's, or the text's
                if span.known:  # inside its file: a real line, at most one column past its end
                    assert 1 <= span.line <= len(where) and 1 <= span.column <= len(where[span.line - 1]) + 1, (d, text)
            assert render(d, "f.dls", text).startswith(d.span.file or "f.dls")
        return None
    for w in checked.warnings:
        render(w, "f.dls", text)
    formatted = format_spec(checked.spec, text)  # `dls fmt` keeps the meaning and is stable
    assert parse(formatted) == checked.spec, formatted
    assert format_spec(parse(formatted), formatted) == formatted
    return checked


def mutate(text: str, rng: random.Random, edits: int) -> str:
    tokens = TOKEN.findall(text)
    for _ in range(edits):
        i = rng.randrange(len(tokens) + 1)
        op = rng.choice(["delete", "duplicate", "swap", "replace", "insert", "char"])
        if op == "insert" or i == len(tokens):
            tokens.insert(i, rng.choice(VOCAB + [" ", "\n"]))
        elif op == "delete":
            del tokens[i]
        elif op == "duplicate":
            tokens.insert(i, tokens[i])
        elif op == "swap" and i + 1 < len(tokens):
            tokens[i], tokens[i + 1] = tokens[i + 1], tokens[i]
        elif op == "replace":
            tokens[i] = rng.choice(VOCAB)
        else:  # a single character deleted, doubled or replaced inside a token
            t, j = tokens[i], rng.randrange(len(tokens[i]))
            tokens[i] = t[:j] + rng.choice(["", t[j] * 2, rng.choice(VOCAB)[:1]]) + t[j + 1:]
        tokens = [t for t in tokens if t] or [" "]
    return "".join(tokens)


@settings(max_examples=1000)
@given(st.sampled_from(SEEDS), st.integers(1, 4), st.randoms(use_true_random=False))
def test_mutated_specs(seed, edits, rng):
    outcome(mutate(seed, rng, edits))


GRAMMAR_BITS = ["model", "block", "const", "train", "input", "output", "repeat", "M", "x", "y", "dense", "relu",
                "conv2d", "add", "(", ")", "[", "]", "{", "}", ",", ":", "=", "->", "#", '"', "\n", " ", "4", "-1", "1e-3",
                "int", "true", "same", "init", "epochs"]


@settings(max_examples=500)
@given(st.one_of(st.text(max_size=200), st.lists(st.sampled_from(GRAMMAR_BITS), max_size=60).map(" ".join)))
def test_random_text(text):
    outcome(text)


@settings(max_examples=100)
@given(st.sampled_from(SEEDS))
def test_every_seed_is_valid_and_formats_stably(seed):
    assert outcome(seed) is not None


def test_fmt_keeps_comments_and_one_blank_line():
    text = "# header\n\n\nconst A = 1\n\nconst B = 2\nmodel M {  # the model\n\n  input x: [4]\n\n\n  # hidden\n  dense(A)\n}\n"
    want = "# header\n\nconst A = 1\n\nconst B = 2\n\nmodel M {  # the model\n  input x: [4]\n\n  # hidden\n  dense(A)\n}\n"
    assert format_spec(parse(text), text) == want


def test_the_cli_on_mangled_specs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    rng, runner, outcomes = random.Random(0), CliRunner(), set()
    for i in range(36):
        text = mutate(rng.choice(SEEDS), rng, rng.randint(1, 3))
        Path(f"m{i}.dls").write_text(text, encoding="utf-8")
        args = ["check", f"m{i}.dls"] if i % 2 else ["compile", f"m{i}.dls", "-t", ("torch", "keras")[i % 4 // 2], "-o", f"m{i}.py"]
        r = runner.invoke(app, args)
        assert r.exception is None or isinstance(r.exception, SystemExit), (text, r.exception)
        assert r.exit_code in (0, 2) and "Traceback" not in r.stdout + r.stderr, (text, r.stderr)
        assert Path(f"m{i}.py").exists() == (args[0] == "compile" and r.exit_code == 0)
        outcomes.add(r.exit_code)
    assert outcomes == {0, 2}, "the mutations should give both valid and invalid specs"


@pytest.mark.parametrize("text", ["", "\n", "model", "model M {", "}", "\x00", "\ufeff", "#", '"', "->", "model M {\n  input x: [4]\n"])
def test_tiny_inputs(text):
    assert outcome(text) is None
