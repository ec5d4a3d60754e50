"""`dls run`: trains the generated module of one backend with rich progress and writes a run folder:
`spec.dls` (as given), `resolved.json` (every layer with shape and parameters, the training plan),
the generated module, a checkpoint after every epoch (`checkpoint.pt`, or `backup/` for Keras),
`history.csv`, `metrics.json` (with the final model's figures on the test split, when the data
holds one out), `curves.png` and the final weights."""

from __future__ import annotations

import csv
import functools
import io
import json
import math
import os
import time
from datetime import datetime
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from .check import Checked
from .diagnostics import DlsError, error
from .runtime import load_generated


class TrainingFailed(DlsError):
    """The spec was fine, but training went wrong (a loss that is not finite)."""


def resolved(checked: Checked) -> dict:
    g, p = checked.graph, checked.plan
    total, trainable = g.params("keras")

    def entry(e):
        return e.model_dump(mode="json") | {"name": e.name}

    return {
        "model": g.name,
        "inputs": [{"name": t.name, "shape": list(t.shape), "dtype": t.dtype} for t in g.inputs],
        "layers": [{"name": n.name, "op": n.op, "inputs": list(n.inputs), "shape": list(n.shape),
                    "params": n.params("keras")[0], "args": n.layer.model_dump(mode="json")} for n in g.nodes],
        "outputs": g.outputs,
        "params": {"total": total, "trainable": trainable},
        "train": {"data": entry(p.data), "loss": entry(p.loss),
                  "loss_terms": [{"output": t.output, "weight": t.weight, "loss": entry(t.loss)} for t in p.terms],
                  "optimizer": entry(p.optimizer), "schedule": entry(p.schedule),
                  "epochs": p.epochs, "batch_size": p.batch_size, "metrics": [entry(m) for m in p.metrics], "seed": p.seed,
                  "clip_norm": p.clip_norm, "clip_value": p.clip_value,
                  "early_stopping": entry(p.early_stopping) if p.early_stopping else None}
                 | ({"discriminator": p.discriminator, "d_optimizer": entry(p.d_optimizer) if p.d_optimizer else None} if p.discriminator else {}),
    }


def _same_run(run_dir: Path, checked: Checked, epochs: int) -> None:
    """A run resumes only with the spec and the length it started with (the schedule depends on both)."""
    before = run_dir / "spec.dls"
    if before.exists() and before.read_text(encoding="utf-8") != checked.source:
        raise error(f"the spec differs from the one this run started with ({before})",
                    hint="resume with the same spec, or start a new run with another --out")
    recorded = json.loads((run_dir / "resolved.json").read_text()).get("run_epochs") if (run_dir / "resolved.json").exists() else None
    if recorded is not None and recorded != epochs:
        raise error(f"this run was started for {recorded} epochs, not {epochs}",
                    hint=f"resume with --epochs {recorded} (the learning-rate schedule spans the whole run)")


def _write(path: Path, text: str) -> None:
    """All of `text` or nothing: a temporary file beside `path`, then a rename."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


class History:
    """Per-epoch figures, kept in `history.csv` after every epoch, so a resumed run continues it."""

    def __init__(self, path: Path, resume: bool):
        self.path, self.rows = path, {}
        if resume and path.exists():
            for row in csv.DictReader(path.open()):
                epoch = int(row.pop("epoch"))
                self.rows[epoch] = {k: float(v) for k, v in row.items() if v != ""}

    def add(self, epoch: int, logs: dict) -> None:
        self.rows = {e: r for e, r in self.rows.items() if e < epoch} | {epoch: dict(logs)}
        keys = list(dict.fromkeys(k for r in self.rows.values() for k in r))
        out = io.StringIO()
        writer = csv.DictWriter(out, ["epoch", *keys])
        writer.writeheader()
        for e, r in sorted(self.rows.items()):
            writer.writerow({"epoch": e, **r})
        _write(self.path, out.getvalue())

    @property
    def epochs(self) -> list[dict]:
        return [r for _, r in sorted(self.rows.items())]


def plot(history: list[dict], path: Path) -> None:
    """Loss, metrics and learning rate per epoch, side by side, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    epochs = range(1, len(history) + 1)
    keys = [k for k in history[-1] if k not in ("time", "lr")]
    panels = [[k for k in keys if "loss" in k], [k for k in keys if "loss" not in k], ["lr"]]
    panels = [p for p in panels if p and all(k in history[-1] for k in p)]
    fig, axes = plt.subplots(1, len(panels), figsize=(4.5 * len(panels), 3.5), squeeze=False)
    for ax, names in zip(axes[0], panels):
        for k in names:
            ax.plot(epochs, [h.get(k, float("nan")) for h in history], marker="o", markersize=3, label=k)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_title("learning rate" if names == ["lr"] else "loss" if "loss" in names[0] else "metrics")
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=100)
    plt.close(fig)
    os.replace(tmp, path)


def _progress(console: Console) -> Progress:
    return Progress(TextColumn("epoch {task.fields[epoch]}"), BarColumn(), MofNCompleteColumn(),
                    TextColumn("loss {task.fields[loss]:.4f}  lr {task.fields[lr]:.2e}"),
                    TimeElapsedColumn(), TimeRemainingColumn(), console=console, transient=True)


def _epoch_line(epoch: int, epochs: int, logs: dict) -> str:
    shown = " ".join(f"{k} {v:.4f}" for k, v in logs.items() if k not in ("time", "lr"))
    return f"epoch {epoch:>3}/{epochs}  {shown}  {logs.get('time', 0.0):.2f}s"


def train(checked: Checked, backend: str, epochs: int | None, out_dir: Path | None, console: Console,
          resume: bool = False) -> dict:
    epochs = epochs or checked.plan.epochs
    if checked.graph.params("torch")[1] == 0:
        raise error(f"model `{checked.graph.name}` has no trainable weights: there is nothing to train",
                    checked.graph.span, hint="add a layer with weights, such as dense(...)")
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    run_dir = Path(out_dir) if out_dir is not None else Path("runs") / f"{checked.graph.name}-{backend}-{stamp}"
    checkpoint = run_dir / ("checkpoint.pt" if backend == "torch" else "backup")
    if resume and not checkpoint.exists():
        raise error(f"there is no checkpoint to resume from in {run_dir}", hint="run without --resume to start afresh")
    if not resume and checkpoint.exists():
        raise error(f"{run_dir} holds the checkpoint of an earlier run", hint="add --resume to continue it, or choose another --out")
    if resume:
        _same_run(run_dir, checked, epochs)
    run_dir.mkdir(parents=True, exist_ok=True)
    _write(run_dir / "spec.dls", checked.source)
    _write(run_dir / "resolved.json", json.dumps(resolved(checked) | {"run_epochs": epochs}, indent=2) + "\n")
    module = load_generated(checked, backend, run_dir)
    *data, x_test, y_test = module.load_splits()
    data = tuple(data)
    n_train = len(data[1])  # y: x is a tuple of arrays for a model with several inputs
    console.print(f"{checked.graph.name} ({backend}): {epochs} epochs on {checked.plan.data.name}, "
                  f"{n_train} train / {len(data[3])} validation" + (f" / {len(y_test)} test" if len(y_test) else "")
                  + " samples" + (", resuming" if resume else ""))
    history = History(run_dir / "history.csv", resume)
    started = time.perf_counter()
    fit = _fit_torch if backend == "torch" else _fit_keras
    if checked.plan.discriminator:  # adversarial training: the generator and the discriminator
        fit = functools.partial(_fit_gan, checked, backend)
    try:
        weights_file, model = fit(module, data, epochs, checkpoint, resume, history, console)
    except FloatingPointError as exc:
        kept = f"the checkpoint of the last complete epoch is kept: {checkpoint}" if checkpoint.exists() else "no epoch completed"
        raise TrainingFailed(error(f"training stopped: {exc}", hint=f"{kept}; try a lower learning rate or clip_norm").diagnostics) from None
    elapsed = time.perf_counter() - started
    rows = history.epochs
    train_time = sum(h.get("time", 0.0) for h in rows[-epochs:])
    if checked.plan.discriminator:
        return _gan_report(checked, backend, module, model, rows, elapsed, n_train * len(rows) / train_time if train_time else None,
                           run_dir, weights_file, console)
    x, y, x_val, y_val = data
    # The final report: the trained model (best epoch, with early stopping) on both sets.
    final = {"train": module.evaluate(model, x, y)} | ({"validation": module.evaluate(model, x_val, y_val)} if len(y_val) else {})
    # The test split, held out from training and validation, scores the final model only.
    test = module.evaluate(model, x_test, y_test) if len(y_test) else None
    if any(m.name == "confusion_matrix" for m in checked.plan.metrics):
        x_cm, y_cm = (x_val, y_val) if len(y_val) else (x, y)
        out = module.predict(model, x_cm)
        if isinstance(out, tuple):  # several outputs: the one the targets are for
            out = out[checked.graph.outputs.index(checked.plan.target_output)]
        final["confusion_matrix"] = module.confusion_matrix(out, y_cm).tolist()
    metrics = {"model": checked.graph.name, "backend": backend, "epochs": len(rows), "history": rows,
               "final": final, **({"test": test} if test is not None else {}), "seconds": elapsed,
               "samples_per_second": n_train * len(rows) / train_time if train_time else None}
    _write(run_dir / "metrics.json", json.dumps(metrics, indent=2) + "\n")
    plot(rows, run_dir / "curves.png")
    console.print(f"done in {elapsed:.1f}s ({metrics['samples_per_second']:,.0f} samples/s in training)")
    table = Table(show_edge=False)
    table.add_column("metric")
    shown = {s: v for s, v in final.items() if s != "confusion_matrix"} | ({"test": test} if test is not None else {})
    for name in shown:
        table.add_column(name, justify="right")
    for k in final["train"]:
        table.add_row(k, *(f"{v[k]:.4f}" for v in shown.values()))
    console.print(table)
    console.print(f"run folder: {run_dir}  ({weights_file}, metrics.json, history.csv, curves.png)")
    return metrics


def _fit_torch(module, data, epochs, checkpoint: Path, resume: bool, history: History, console: Console):
    import torch

    model = module.build_model()
    last_lr = {}
    with _progress(console) as progress:
        task = progress.add_task("train", total=1, epoch=1, loss=0.0, lr=0.0)

        def on_step(epoch, step, steps, loss, lr):
            last_lr[epoch] = lr
            if step == 1 or step == steps or step % 5 == 0:  # throttled: drawing is not free
                progress.update(task, completed=step, total=steps, epoch=f"{epoch}/{epochs}", loss=loss, lr=lr)

        def on_epoch(epoch, logs):
            history.add(epoch, logs | {"lr": last_lr[epoch]})
            progress.console.print(_epoch_line(epoch, epochs, logs))

        module.fit(model, data, epochs=epochs, checkpoint=str(checkpoint), resume=resume, on_step=on_step, on_epoch=on_epoch)
    tmp = checkpoint.with_name(".weights.pt.tmp")
    torch.save(model.state_dict(), tmp)
    os.replace(tmp, checkpoint.with_name("weights.pt"))
    return "weights.pt", model


def _fit_keras(module, data, epochs, checkpoint: Path, resume: bool, history: History, console: Console):
    import keras

    model = module.build_model()

    with _progress(console) as progress:
        task = progress.add_task("train", total=1, epoch=1, loss=0.0, lr=0.0)

        class Report(keras.callbacks.Callback):
            def on_epoch_begin(self, epoch, logs=None):
                self.epoch, self.started = epoch, time.perf_counter()

            def lr(self):
                return float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))

            def on_train_batch_end(self, batch, logs=None):
                steps = self.params.get("steps") or 1
                if batch == 0 or (batch + 1) % 5 == 0 or batch + 1 == steps:
                    progress.update(task, completed=batch + 1, total=steps, epoch=f"{self.epoch + 1}/{epochs}",
                                    loss=float(logs.get("loss", 0.0)), lr=self.lr())

            def on_epoch_end(self, epoch, logs=None):
                entry = {k: float(v) for k, v in (logs or {}).items() if k != "learning_rate"}
                entry |= {"time": time.perf_counter() - self.started, "lr": self.lr()}
                history.add(epoch + 1, entry)
                progress.console.print(_epoch_line(epoch + 1, epochs, entry))

        module.fit(model, data, epochs=epochs, checkpoint=str(checkpoint), callbacks=[Report()], verbose=0)
    tmp = checkpoint.with_name(".tmp.weights.h5")
    model.save_weights(tmp)
    os.replace(tmp, checkpoint.with_name("model.weights.h5"))
    return "model.weights.h5", model


# --- adversarial training -----------------------------------------------------------------------------

def _fit_gan(checked: Checked, backend: str, module, data, epochs, checkpoint: Path, resume: bool, history: History,
             console: Console):
    """Trains the generator (the plan's model) against the discriminator; (weights files, generator).
    The checkpoint (checkpoint.pt, or backup/state.npz for Keras) holds both models and optimizers."""
    from .backends.codegen import builder_name

    disc = next(g for g in checked.graphs if g.name == checked.plan.discriminator)
    generator, discriminator = module.build_model(), getattr(module, builder_name(checked, disc))()
    last_lr = {}
    progress = Progress(TextColumn("epoch {task.fields[epoch]}"), BarColumn(), MofNCompleteColumn(),
                        TextColumn("d_loss {task.fields[d_loss]:.4f}  g_loss {task.fields[g_loss]:.4f}  lr {task.fields[lr]:.2e}"),
                        TimeElapsedColumn(), TimeRemainingColumn(), console=console, transient=True)
    with progress:
        task = progress.add_task("train", total=1, epoch=1, d_loss=0.0, g_loss=0.0, lr=0.0)

        def on_step(epoch, step, steps, d_loss, g_loss, lr):
            last_lr[epoch] = lr
            if step == 1 or step == steps or step % 5 == 0:
                progress.update(task, completed=step, total=steps, epoch=f"{epoch}/{epochs}", d_loss=d_loss, g_loss=g_loss, lr=lr)

        def on_epoch(epoch, logs):
            history.add(epoch, logs | {"lr": last_lr[epoch]})
            progress.console.print(_epoch_line(epoch, epochs, logs))

        module.fit(generator, discriminator, data, epochs=epochs, checkpoint=str(checkpoint), resume=resume, on_step=on_step,
                   on_epoch=on_epoch)
    names = ("generator.pt", "discriminator.pt") if backend == "torch" else ("generator.weights.h5", "discriminator.weights.h5")
    for model, name in zip((generator, discriminator), names):
        tmp = checkpoint.with_name(f".tmp.{name}")
        if backend == "torch":
            import torch

            torch.save(model.state_dict(), tmp)
        else:
            model.save_weights(tmp)
        os.replace(tmp, checkpoint.with_name(name))
    return ", ".join(names), generator


def _gan_report(checked: Checked, backend: str, module, generator, rows: list[dict], elapsed: float, rate: float | None,
                run_dir: Path, weights_files: str, console: Console) -> dict:
    """metrics.json, curves.png and, for images, samples.png: a grid of generated samples."""
    final = {k: v for k, v in rows[-1].items() if k not in ("time", "lr")}
    metrics = {"model": checked.graph.name, "discriminator": checked.plan.discriminator, "backend": backend, "epochs": len(rows),
               "history": rows, "final": final, "seconds": elapsed, "samples_per_second": rate}
    _write(run_dir / "metrics.json", json.dumps(metrics, indent=2) + "\n")
    plot(rows, run_dir / "curves.png")
    files = [weights_files, "metrics.json", "history.csv", "curves.png"]
    samples = module.sample(generator)
    if samples.ndim == 3 or (samples.ndim == 4 and samples.shape[1] in (1, 3)):
        sample_grid(samples, run_dir / "samples.png")
        files.append("samples.png")
    console.print(f"done in {elapsed:.1f}s ({rate or 0:,.0f} samples/s in training)  "
                  + "  ".join(f"{k} {v:.4f}" for k, v in final.items()))
    console.print(f"run folder: {run_dir}  ({', '.join(files)})")
    return metrics


def sample_grid(samples, path: Path) -> None:
    """Generated images ([N, H, W], or [N, C, H, W] with 1 or 3 channels) in a square grid, as a PNG;
    all scaled together from their minimum and maximum to [0, 1]."""
    import matplotlib
    import numpy as np

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    images = np.asarray(samples, dtype=np.float64)
    if images.ndim == 4:
        images = images.transpose(0, 2, 3, 1)
        images = images[..., 0] if images.shape[-1] == 1 else images
    low, high = images.min(), images.max()
    images = (images - low) / (high - low) if high > low else np.zeros_like(images)
    cols = math.ceil(math.sqrt(len(images)))
    rows = math.ceil(len(images) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(cols * 0.6, rows * 0.6), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, image in zip(axes.flat, images):
        ax.imshow(image, cmap="gray" if image.ndim == 2 else None, vmin=0.0, vmax=1.0, interpolation="nearest")
    fig.tight_layout(pad=0.1)
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=100)
    plt.close(fig)
    os.replace(tmp, path)
