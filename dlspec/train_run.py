"""`dls run`: trains the generated module of one backend with rich progress and writes a run folder:
`spec.dls` (as given), `resolved.json` (every layer with shape and parameters, the training plan),
`metrics.json` (per-epoch history and the final figures) and the final weights."""

from __future__ import annotations

import json
import os
import time
from datetime import datetime
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from .check import Checked
from .runtime import load_generated


def resolved(checked: Checked) -> dict:
    g, p = checked.graph, checked.plan
    total, trainable = g.params("keras")
    return {
        "model": g.name,
        "inputs": [{"name": t.name, "shape": list(t.shape), "dtype": t.dtype} for t in g.inputs],
        "layers": [{"name": n.name, "op": n.op, "inputs": list(n.inputs), "shape": list(n.shape),
                    "params": n.params("keras")[0], "args": n.layer.model_dump(mode="json")} for n in g.nodes],
        "outputs": g.outputs,
        "params": {"total": total, "trainable": trainable},
        "train": {"data": p.data.model_dump(mode="json") | {"name": p.data.name},
                  "loss": p.loss.model_dump(mode="json") | {"name": p.loss.name},
                  "optimizer": p.optimizer.model_dump(mode="json") | {"name": p.optimizer.name},
                  "schedule": p.schedule.model_dump(mode="json") | {"name": p.schedule.name},
                  "epochs": p.epochs, "batch_size": p.batch_size, "metrics": list(p.metrics), "seed": p.seed},
    }


def _write_json(path: Path, data: dict) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def _progress(console: Console) -> Progress:
    return Progress(TextColumn("epoch {task.fields[epoch]}"), BarColumn(), MofNCompleteColumn(),
                    TextColumn("loss {task.fields[loss]:.4f}  lr {task.fields[lr]:.2e}"),
                    TimeElapsedColumn(), TimeRemainingColumn(), console=console, transient=True)


def _epoch_line(epoch: int, epochs: int, logs: dict) -> str:
    shown = " ".join(f"{k} {v:.4f}" for k, v in logs.items() if k != "time")
    return f"epoch {epoch:>3}/{epochs}  {shown}  {logs.get('time', 0.0):.2f}s"


def train(checked: Checked, backend: str, epochs: int | None, out_dir: Path | None, console: Console) -> dict:
    epochs = epochs or checked.plan.epochs
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    run_dir = Path(out_dir) if out_dir is not None else Path("runs") / f"{checked.graph.name}-{backend}-{stamp}"
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "spec.dls").write_text(checked.source, encoding="utf-8")
    _write_json(run_dir / "resolved.json", resolved(checked))
    module = load_generated(checked, backend, run_dir)
    data = module.load_data()
    n_train = len(data[0])
    console.print(f"{checked.graph.name} ({backend}): {epochs} epochs on {checked.plan.data.name}, "
                  f"{n_train} train / {len(data[2])} validation samples")
    started = time.perf_counter()
    fit = _fit_torch if backend == "torch" else _fit_keras
    history, weights_file = fit(module, data, epochs, run_dir, console)
    elapsed = time.perf_counter() - started
    train_time = sum(h.get("time", 0.0) for h in history)
    metrics = {"model": checked.graph.name, "backend": backend, "epochs": epochs, "history": history,
               "final": history[-1], "seconds": elapsed, "samples_per_second": n_train * epochs / train_time if train_time else None}
    _write_json(run_dir / "metrics.json", metrics)
    console.print(f"done in {elapsed:.1f}s ({metrics['samples_per_second']:,.0f} samples/s in training)")
    table = Table(show_edge=False)
    table.add_column("metric")
    table.add_column("value", justify="right")
    for k, v in history[-1].items():
        if k != "time":
            table.add_row(k, f"{v:.4f}")
    console.print(table)
    console.print(f"run folder: {run_dir}  (metrics.json, {weights_file}, spec.dls, resolved.json)")
    return metrics


def _fit_torch(module, data, epochs, run_dir: Path, console: Console):
    import torch

    model = module.build_model()
    with _progress(console) as progress:
        task = progress.add_task("train", total=1, epoch=1, loss=0.0, lr=0.0)

        def on_step(epoch, step, steps, loss, lr):
            if step == 1 or step == steps or step % 5 == 0:  # throttled: drawing is not free
                progress.update(task, completed=step, total=steps, epoch=f"{epoch}/{epochs}", loss=loss, lr=lr)

        def on_epoch(epoch, logs):
            progress.console.print(_epoch_line(epoch, epochs, logs))

        history = module.fit(model, data, epochs=epochs, on_step=on_step, on_epoch=on_epoch)
    tmp = run_dir / ".weights.pt.tmp"
    torch.save(model.state_dict(), tmp)
    os.replace(tmp, run_dir / "weights.pt")
    return history, "weights.pt"


def _fit_keras(module, data, epochs, run_dir: Path, console: Console):
    import keras

    model = module.build_model()
    history: list[dict] = []

    with _progress(console) as progress:
        task = progress.add_task("train", total=1, epoch=1, loss=0.0, lr=0.0)

        class Report(keras.callbacks.Callback):
            def on_epoch_begin(self, epoch, logs=None):
                self.epoch, self.started = epoch, time.perf_counter()

            def on_train_batch_end(self, batch, logs=None):
                steps = self.params.get("steps") or 1
                if batch == 0 or (batch + 1) % 5 == 0 or batch + 1 == steps:
                    lr = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))
                    progress.update(task, completed=batch + 1, total=steps, epoch=f"{self.epoch + 1}/{epochs}",
                                    loss=float(logs.get("loss", 0.0)), lr=lr)

            def on_epoch_end(self, epoch, logs=None):
                entry = {k: float(v) for k, v in (logs or {}).items() if k != "learning_rate"}
                entry["time"] = time.perf_counter() - self.started
                history.append(entry)
                progress.console.print(_epoch_line(epoch + 1, epochs, entry))

        module.fit(model, data, epochs=epochs, callbacks=[Report()], verbose=0)
    tmp = run_dir / ".tmp.weights.h5"
    model.save_weights(tmp)
    os.replace(tmp, run_dir / "model.weights.h5")
    return history, "model.weights.h5"
