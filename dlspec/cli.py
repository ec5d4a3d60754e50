"""The `dls` command. Every user error is rendered as `file:line:col: error: ...` with the source
line, a caret and a hint, and exits 2; frameworks are imported only by `run` and `verify`."""

from __future__ import annotations

import os
import sys
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from .diagnostics import Diagnostic, DlsError, render

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Describe a deep-learning experiment once: check it, compile it to PyTorch or Keras, run it.")
out = Console(highlight=False)
err = Console(stderr=True, highlight=False)


SpecArg = Annotated[Path, typer.Argument(help="the .dls file")]


class Target(str, Enum):
    torch = "torch"
    keras = "keras"


class DType(str, Enum):
    float64 = "float64"
    float32 = "float32"


def fail(diagnostics: list[Diagnostic], filename: str, source: str | None, code: int = 2) -> None:
    for d in diagnostics:
        err.print(render(d, filename, source), markup=False, soft_wrap=True)
    raise typer.Exit(code)


def _load(path: Path):
    """The checked spec, or the diagnostics rendered and exit 2."""
    from .check import check_text, read_source

    source = None
    try:
        source = read_source(path)
        checked = check_text(source, str(path))
    except DlsError as exc:
        fail(exc.diagnostics, str(path), source)
    for w in checked.warnings:
        err.print(render(w, str(path), source), markup=False, soft_wrap=True)
    return checked


def _trainable(path: Path):
    """The checked spec, which must have a training plan (compile, run and verify need one)."""
    checked = _load(path)
    try:
        return checked.trainable()
    except DlsError as exc:
        fail(exc.diagnostics, str(path), checked.source)


def write_atomically(path: Path, text: str) -> None:
    """Writes all of `text` or nothing: a temporary file beside `path`, then a rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


@app.command()
def check(spec: SpecArg):
    """Check a spec without running it: names, arguments, shapes; print each model's summary."""
    from .summary import summary_table, totals

    checked = _load(spec)
    for g in checked.graphs:
        out.print(summary_table(g))
        for line in totals(g):
            out.print(line)
        out.print()
    p = checked.plan
    if p is None:
        d = checked.plan_error.diagnostics[0]
        out.print(f"no train section; the default one does not fit: {d.message} (compile and run need a train section)")
        out.print(f"{spec}: ok")
        return
    against = f" against {p.discriminator}" if p.discriminator else ""
    out.print(f"train {p.model}{against}: data {p.data.name}, loss {p.loss.name}, optimizer {p.optimizer.name}, "
              f"schedule {p.schedule.name}, {p.epochs} epochs of batch {p.batch_size}")
    out.print(f"{spec}: ok")


@app.command("compile")
def compile_(spec: SpecArg,
             target: Annotated[Target, typer.Option("--target", "-t", help="torch or keras")],
             output: Annotated[Path | None, typer.Option("--output", "-o", help="file to write (default: print)")] = None):
    """Write a standalone PyTorch or Keras 3 module: model, loss, optimizer, schedule, training loop."""
    from .backends.codegen import generate

    code = generate(_trainable(spec), target.value, output.parent if output is not None else None)
    if output is None:
        sys.stdout.write(code)
    else:
        write_atomically(output, code)
        err.print(f"wrote {output}")


@app.command()
def fmt(spec: SpecArg,
        check_only: Annotated[bool, typer.Option("--check", help="only report whether the file is formatted (exit 1 if not)")] = False):
    """Rewrite a spec in canonical form, keeping its comments."""
    from .check import read_source
    from .parser import parse
    from .printer import format_spec

    source = None
    try:
        source = read_source(spec)
        text = format_spec(parse(source), source)
    except DlsError as exc:
        fail(exc.diagnostics, str(spec), source)
    if check_only:
        if text != source:
            err.print(f"{spec}: would be reformatted")
            raise typer.Exit(1)
        err.print(f"{spec}: already formatted")
    elif text != source:
        write_atomically(spec, text)
        err.print(f"reformatted {spec}")


@app.command()
def graph(spec: SpecArg,
          output: Annotated[Path | None, typer.Option("--output", "-o", help="picture to write: .svg, .png, .pdf, "
                                                      "or .dot/.gv for the DOT text (default: print the DOT text)")] = None,
          model: Annotated[str | None, typer.Option("--model", "-m", help="draw only this model (default: all)")] = None):
    """Draw the model: layers with their shapes, block instances as groups, residual and concat edges."""
    from . import drawing

    checked = _load(spec)
    try:
        fmt = drawing.output_format(output) if output is not None else "dot"
        graphs = drawing.pick(checked.graphs, model)
    except DlsError as exc:
        fail(exc.diagnostics, str(spec), checked.source)
    dot = drawing.to_dot(graphs, title=spec.name)
    try:
        data = drawing.render(dot, fmt)
    except drawing.GraphvizMissing:
        err.print(f"error: drawing {output} needs Graphviz's `dot` program, which is not on PATH\n"
                  f"  hint: {drawing.INSTALL_HINT}", markup=False, soft_wrap=True)
        raise typer.Exit(2) from None
    except drawing.RenderFailed as exc:
        err.print(f"error: Graphviz's `dot` could not draw {output}: {exc}", markup=False, soft_wrap=True)
        raise typer.Exit(1) from None
    if output is None:
        sys.stdout.write(data.decode("utf-8"))
    else:
        drawing.write_bytes_atomically(output, data)
        err.print(f"wrote {output}")


@app.command()
def run(spec: SpecArg,
        backend: Annotated[Target, typer.Option("--backend", "-b", help="torch or keras")] = Target.torch,
        epochs: Annotated[int | None, typer.Option("--epochs", min=1, help="override the spec's epochs")] = None,
        out_dir: Annotated[Path | None, typer.Option("--out", help="run folder (default: runs/<model>-<backend>-<time>)")] = None,
        resume: Annotated[bool, typer.Option("--resume", help="continue the run in --out from its last checkpoint")] = False):
    """Train the spec directly, with progress, and write a run folder (spec, metrics, weights)."""
    from .train_run import TrainingFailed, train

    checked = _trainable(spec)
    _need(backend.value)
    if resume and out_dir is None:
        fail([Diagnostic(message="--resume needs the run folder to continue", hint="add --out DIR")], str(spec), None)
    try:
        train(checked, backend.value, epochs, out_dir, out, resume)
    except TrainingFailed as exc:
        fail(exc.diagnostics, str(spec), checked.source, code=1)
    except DlsError as exc:
        fail(exc.diagnostics, str(spec), checked.source)


@app.command()
def verify(spec: SpecArg,
           dtype: Annotated[DType, typer.Option(help="float64 shows real mismatches; float32 is a smoke check")] = DType.float64,
           batch: Annotated[int, typer.Option(min=1, help="samples in the random batch")] = 4,
           seed: Annotated[int, typer.Option(help="seed for the random weights and batch")] = 0):
    """Build both backends with the same weights, run one batch, and compare the outputs."""
    from rich.table import Table

    checked = _trainable(spec)
    _need("torch")
    _need("keras")
    from .verify import DEFAULT_RTOL
    from .verify import verify as run_verify

    rtol, ok = DEFAULT_RTOL[dtype.value], True
    for g in checked.graphs:  # every model of the spec (a GAN has two)
        report = run_verify(checked, dtype.value, batch, seed, g)
        table = Table(title=f"{report.model}: PyTorch vs Keras, {dtype.value}, batch {batch}", title_justify="left", show_edge=False)
        for col in ("output", "max abs diff", "max rel diff", f"rtol {rtol:g}"):
            table.add_column(col)
        for o in report.outputs:
            table.add_row(o.name, f"{o.max_abs:.3e}", f"{o.max_rel:.3e}", "OK" if o.ok(rtol) else "FAIL")
        out.print(table)
        for k, (total, trainable) in report.params.items():
            out.print(f"params {k}: {total:,} ({trainable:,} trainable)")
        ok = ok and report.ok(rtol)
    out.print("OK" if ok else "FAIL")
    raise typer.Exit(0 if ok else 1)


def _quiet_import(name: str) -> None:
    """Imports `name` with file descriptor 2 pointed at /dev/null: TensorFlow's C++ start-up notices
    (absl, oneDNN, CPU features) bypass Python's logging and TF_CPP_MIN_LOG_LEVEL."""
    sys.stderr.flush()
    saved, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        __import__(name)
        if name == "keras":
            import keras

            keras.ops.add(1.0, 1.0)  # the first op prints the rest of the notices
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def _need(target: str) -> None:
    """Imports the backend's framework now, so a missing install is a clear error, not a traceback."""
    try:
        _quiet_import("torch" if target == "torch" else "keras")
    except ImportError as exc:
        err.print(f"error: the {target} backend is not installed ({exc})\n  hint: pip install 'dlspec[{target}]'", markup=False)
        raise typer.Exit(2) from None


def main() -> None:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # TensorFlow's start-up chatter is not ours to show
    try:
        app()
    except KeyboardInterrupt:
        err.print("interrupted")
        sys.exit(130)
    except Exception as exc:  # a traceback is always a bug; show it only when asked
        if os.environ.get("DLS_DEBUG"):
            raise
        err.print(f"internal error: {type(exc).__name__}: {exc}\n  this is a bug in dlspec; run again with DLS_DEBUG=1 "
                  "to see the traceback, and please report it", markup=False)
        sys.exit(70)
