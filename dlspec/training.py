"""The `train` section: data, loss, optimizer, schedule and metrics, each a registry entry whose
fields are its arguments, checked against the model it trains. Schedules are functions of the
optimizer step (EQUIVALENCE.md trap 11), rendered as the same formula in both backends."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

from pydantic import Field

from . import ir
from .augment import AUGMENTATIONS, COLOUR, IMAGE, TOKENS, Augmentation
from .diagnostics import NOWHERE, Span, did_you_mean, error
from .graph import Graph
from .losses import CLASSES, LOSSES, Loss
from .metrics import METRICS, Metric, fits
from .optimizers import OPTIMIZERS, Optimizer
from .registry import (
    CallValue,
    Entry,
    Float,
    PositiveInt,
    bind,
    describe,
    fmt_shape,
    registry_of,
)
from .schedules import SCHEDULES, Schedule

DATA, data = registry_of("data source")
TARGET_WORDS = {"classes": "class labels", "values": "real-valued targets", "binary": "0/1 targets",
                "distribution": "probability distributions"}


# --- data -------------------------------------------------------------------------------------

class Data(Entry):
    kind: ClassVar[str] = "data"
    validation: Annotated[float, Field(ge=0.0, lt=1.0)] = 0.2

    @property
    def targets(self) -> str:
        """What the targets are: one of the kinds in losses.py."""
        return CLASSES

    def check(self, graph: Graph, span: Span, base: Path) -> Data:
        """Checks the data against the model; returns the entry to generate from."""
        return self

    @property
    def template(self) -> str:
        return f"data/{self.name}.py.j2"


@data
class Digits(Data):
    """scikit-learn's bundled 8×8 handwritten digits: 1,797 images, 10 classes, pixels scaled to
    [0, 1]. Shaped to the model's input: [1, 8, 8], [8, 8] (rows as steps) or [64]."""

    name = "digits"
    validation: Annotated[float, Field(ge=0.0, lt=1.0)] = 0.2

    def check(self, graph, span, base):
        x = graph.inputs[0]
        if math.prod(x.shape) != 64 or x.dtype != "float":
            raise error(f"digits gives 64 pixels per image (8×8), but input `{x.name}` is {x.dtype} {fmt_shape(x.shape)}",
                        span, hint="declare `input image: [1, 8, 8]` (or [8, 8], or [64])", related=(x.span, "the input"))
        return self


@data
class Synthetic(Data):
    """Random inputs of the model's input shape, with targets from a fixed random linear map of the
    inputs, so they can be learnt: class labels (task=classification), values of the output's
    shape (regression), 0/1 values (binary) or probability distributions (distribution)."""

    name = "synthetic"
    task: Literal["classification", "regression", "binary", "distribution"] = "classification"
    samples: Annotated[int, Field(ge=8)] = 512
    vocab: PositiveInt | None = None  # token ids drawn from [0, vocab); default: the embedding's size

    @property
    def targets(self):
        return {"classification": "classes", "regression": "values"}.get(self.task, self.task)

    def check(self, graph, span, base):
        x = graph.inputs[0]
        if x.dtype != "int":
            return self
        sizes = [n.layer.vocab for n in graph.nodes if x.name in n.inputs and hasattr(n.layer, "vocab")]
        limit = min(sizes, default=100)
        if self.vocab is not None and self.vocab > limit:
            raise error(f"synthetic token ids go up to {self.vocab - 1}, but the embedding reading `{x.name}` has {limit} "
                        "entries", span, hint=f"use vocab={limit} or less")
        return self.model_copy(update={"vocab": self.vocab or limit})


Task = Literal["classification", "regression", "binary", "distribution"]


class _File(Data):
    positional = ("path",)
    path: str
    task: Task = "classification"
    normalize: bool = False

    @property
    def targets(self):
        return {"classification": "classes", "regression": "values"}.get(self.task, self.task)

    def resolve(self, span: Span, base: Path) -> Path:
        path = (base / self.path).resolve()
        if not path.is_file():
            raise error(f"no such data file: {path}", span, hint="paths are relative to the spec's folder")
        return path

    def check_arrays(self, graph: Graph, span: Span, x_shape: tuple, y, what: str) -> None:
        """Shapes and labels against the model: x_shape is the inputs' shape, y the targets."""
        import numpy as np

        t, out = graph.inputs[0], graph.shape_of(graph.outputs[0])
        if math.prod(x_shape[1:]) != math.prod(t.shape):
            raise error(f"{what} has inputs of shape {fmt_shape(x_shape[1:])} per sample, but input `{t.name}` is "
                        f"{fmt_shape(t.shape)}", span, related=(t.span, "the input"))
        if len(y) != x_shape[0]:
            raise error(f"{what} has {x_shape[0]} input samples but {len(y)} targets", span)
        if self.task == "classification":
            labels = np.asarray(y)
            if labels.size and (np.any(labels != np.round(labels)) or labels.min() < 0 or labels.max() >= out[-1]):
                raise error(f"{what}'s labels must be whole numbers from 0 to {out[-1] - 1} (the model has {out[-1]} "
                            f"classes), but they range from {labels.min():g} to {labels.max():g}", span)
        elif math.prod(np.shape(y)[1:]) != math.prod(out):
            raise error(f"{what} has targets of shape {fmt_shape(np.shape(y)[1:])} per sample, but the model's output is "
                        f"{fmt_shape(out)}", span)


@data
class Npz(_File):
    """Arrays from a NumPy .npz file: inputs under the key `x`, targets under `y` (both can be
    renamed). The path is relative to the spec's folder."""

    name = "npz"
    example = 'npz("data/train.npz", task=regression)'
    x: str = "x"
    y: str = "y"

    def check(self, graph, span, base):
        import numpy as np

        path = self.resolve(span, base)
        try:
            with np.load(path) as arrays:
                missing = [k for k in (self.x, self.y) if k not in arrays.files]
                if missing:
                    raise error(f"{path.name} has no array `{missing[0]}` (it has: {', '.join(arrays.files)})", span,
                                hint="name the arrays with x=... and y=...")
                self.check_arrays(graph, span, arrays[self.x].shape, arrays[self.y], path.name)
        except (OSError, ValueError) as exc:
            raise error(f"cannot read {path.name} as a .npz file: {exc}", span) from None
        return self.model_copy(update={"path": str(path)})


@data
class Csv(_File):
    """Rows of a CSV file with a header line: the column named `target` holds the targets, every
    other column an input feature. The path is relative to the spec's folder."""

    name = "csv"
    example = 'csv("data/train.csv", target="label")'
    target: str = "label"
    delimiter: str = ","

    def check(self, graph, span, base):
        import csv

        import numpy as np

        path = self.resolve(span, base)
        with path.open(newline="") as f:
            header, *rows = list(csv.reader(f, delimiter=self.delimiter)) or [[]]
        if self.target not in header:
            raise error(f"{path.name} has no column `{self.target}` (its columns: {', '.join(header)})", span,
                        hint="name the target column with target=...")
        try:
            values = np.array(rows, dtype=np.float64).reshape(len(rows), len(header))
        except ValueError:
            raise error(f"{path.name} must hold numbers only, one value per column in every row", span) from None
        i = header.index(self.target)
        self.check_arrays(graph, span, (len(rows), len(header) - 1), values[:, i], path.name)
        return self.model_copy(update={"path": str(path)})


IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp")


@data
class ImageFolder(Data):
    """Images in one subfolder per class (classes in alphabetical order of the folder names),
    converted to grey (1 channel) or RGB (3 channels) as the input says, resized to its height and
    width, and scaled to [0, 1]. The path is relative to the spec's folder."""

    name = "image_folder"
    positional = ("path",)
    example = 'image_folder("data/flowers")'
    path: str

    def check(self, graph, span, base):
        folder = (base / self.path).resolve()
        if not folder.is_dir():
            raise error(f"no such folder: {folder}", span, hint="paths are relative to the spec's folder")
        classes = sorted(p.name for p in folder.iterdir() if p.is_dir())
        x, out = graph.inputs[0], graph.shape_of(graph.outputs[0])
        if not classes:
            raise error(f"{folder} has no subfolders: it needs one per class", span)
        empty = [c for c in classes if not any(f.suffix.lower() in IMAGE_SUFFIXES for f in (folder / c).iterdir())]
        if empty:
            raise error(f"the class folder `{empty[0]}` holds no images ({', '.join(IMAGE_SUFFIXES)})", span)
        if len(x.shape) != 3 or x.shape[0] not in (1, 3):
            raise error(f"image_folder gives images [1 or 3 channels, height, width], but input `{x.name}` is "
                        f"{fmt_shape(x.shape)}", span, related=(x.span, "the input"))
        if out != (len(classes),):
            raise error(f"{folder.name} has {len(classes)} classes ({', '.join(classes[:5])}{', ...' if len(classes) > 5 else ''}), "
                        f"but the model's output is {fmt_shape(out)}", span, hint=f"end the model with `dense({len(classes)})`")
        return self.model_copy(update={"path": str(folder)})


# --- early stopping ---------------------------------------------------------------------------------

class Patience(Entry):
    """Early stopping, with Keras's rule in both outputs: after each epoch, `monitor` improves when it
    beats the best value so far by more than min_delta (lower is better for losses, higher for
    accuracies, unless mode says); training stops once `patience` epochs pass without improvement.
    With restore_best, the weights of the best epoch are restored when training ends."""

    kind: ClassVar[str] = "early stopping"
    name = "patience"
    positional = ("patience",)
    example = "patience(5, monitor=val_loss)"
    patience: PositiveInt
    monitor: Literal["loss", "val_loss", "accuracy", "val_accuracy"] = "val_loss"
    min_delta: Annotated[Float, Field(ge=0.0)] = 0.0
    mode: Literal["auto", "min", "max"] = "auto"
    restore_best: bool = True

    @property
    def higher_is_better(self) -> bool:
        return self.mode == "max" or (self.mode == "auto" and "accuracy" in self.monitor)


EARLY_STOPPING = {"patience": Patience}


# --- the plan -------------------------------------------------------------------------------------

SETTINGS = {
    "model": "which model to train (when the spec has several)",
    "data": "where samples come from: digits(...) or synthetic(...)",
    "loss": "mse, mae, huber, smooth_l1, cross_entropy, binary_cross_entropy, nll, kl_divergence or cosine_similarity",
    "optimizer": "sgd, adam, adamw, adagrad, rmsprop, adamax or nadam, e.g. adam(lr=1e-3)",
    "schedule": "constant, step, multistep, exponential, cosine, cosine_restarts or one_cycle; each takes warmup=N",
    "epochs": "passes over the training data",
    "batch_size": "samples per optimizer step",
    "metrics": "a list such as [accuracy, top_k(3), f1(macro)]",
    "seed": "the seed for weights, shuffling and data",
    "augment": "a list of augmentations of the training batches, e.g. [flip(), rotation(10), noise(0.05)]",
    "early_stopping": "stop when a metric stops improving: patience(5, monitor=val_loss, min_delta=0, restore_best=true)",
    "l1": "add l1 · Σ|w| over every kernel (dense, conv, embedding, recurrent weights; not biases) to the loss",
    "l2": "add l2 · Σw² over every kernel to the loss (a penalty, not optimizer weight decay: see adamw)",
    "clip_norm": "clip the gradients' global norm to this value (PyTorch's clip_grad_norm_)",
    "clip_value": "clip every gradient element to [-value, value] (before clip_norm)",
}


@dataclass(frozen=True)
class Plan:
    model: str
    data: Data
    loss: Loss
    optimizer: Optimizer
    schedule: Schedule
    epochs: int = 10
    batch_size: int = 32
    metrics: tuple[Metric, ...] = ()
    seed: int = 0
    clip_norm: float | None = None
    clip_value: float | None = None
    l1: float | None = None
    l2: float | None = None
    early_stopping: Patience | None = None
    augment: tuple[Augmentation, ...] = ()
    span: Span = NOWHERE


def _call(v: Any, what: str, span: Span) -> CallValue:
    if isinstance(v, CallValue):
        return v
    if isinstance(v, str):
        return CallValue(name=v, span=span)
    raise error(f"`{what}` takes a call such as `{what}()`, got {describe(v)}", span)


def _positive_int(v: Any, span: Span, key: str) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or v < 1:
        raise error(f"`{key}` must be a positive whole number, got {describe(v)}", span)
    return v


def plan(spec: ir.Spec, graphs: list[Graph], value, base: Path = Path()) -> Plan:
    """The training plan of a spec; `value` resolves IR values (constants) to Python values, and
    data files are found relative to `base`, the spec's folder."""
    trains = spec.of(ir.Train)
    if len(trains) > 1:
        raise error("a spec has at most one train section", trains[1].span)
    train = trains[0] if trains else ir.Train()
    got: dict[str, tuple[Any, Span]] = {}
    for s in train.settings:
        if s.key not in SETTINGS:
            raise error(f"unknown train setting `{s.key}`", s.span, hint=did_you_mean(s.key, SETTINGS) or f"settings: {', '.join(SETTINGS)}")
        if s.key in got:
            raise error(f"`{s.key}` is set twice", s.span, related=(got[s.key][1], "first set here"))
        got[s.key] = (value(s.value), s.span)

    def get(key, default):
        return got.get(key, (default, train.span))

    by_name = {g.name: g for g in graphs}
    name, span = get("model", graphs[0].name)
    if not isinstance(name, str) or name not in by_name:
        raise error(f"unknown model `{describe(name)}`", span, hint=did_you_mean(str(name), by_name) or f"models: {', '.join(by_name)}")
    if len(graphs) > 1 and "model" not in got:
        raise error("this spec has several models: say which one to train", train.span, hint=f"add `model: {graphs[0].name}`")
    graph = by_name[name]
    if not train.span.known:  # no train section: errors about the defaults point at the model
        train = train.model_copy(update={"span": graph.span})
    if len(graph.inputs) != 1 or len(graph.outputs) != 1:
        raise error("training supports models with one input and one output in this version", train.span if train.span.known else graph.span)

    v, s = get("data", "digits" if graph.inputs[0].dtype == "float" and math.prod(graph.inputs[0].shape) == 64 else "synthetic")
    data_entry = bind(DATA, _call(v, "data", s), "data source")
    data_entry = data_entry.check(graph, s, base)
    v, s = get("loss", "cross_entropy")
    loss_entry = bind(LOSSES, _call(v, "loss", s), "loss")
    out = graph.shape_of(graph.outputs[0])
    if not loss_entry.accepts(data_entry.targets):
        raise error(f"{loss_entry.name} needs {TARGET_WORDS[loss_entry.target]}, but {data_entry.name} gives {TARGET_WORDS[data_entry.targets]}", s,
                    hint="digits has class labels: use cross_entropy()" if isinstance(data_entry, Digits) else
                    "choose the synthetic task: synthetic(task=classification|regression|binary|distribution)")
    if loss_entry.target == CLASSES:
        if len(out) != 1:
            raise error(f"{loss_entry.name} needs an output of shape [classes], but the model gives {fmt_shape(out)}", s,
                        hint="end the model with `flatten()` or `global_avgpool()` and `dense(classes)`")
        if isinstance(data_entry, Digits) and out != (10,):
            raise error(f"digits has 10 classes, but the model's output is {fmt_shape(out)}", s, hint="end the model with `dense(10)`")
        weights = getattr(loss_entry, "class_weights", None)
        if weights is not None and len(weights) != out[0]:
            raise error(f"class_weights has {len(weights)} values, but the model has {out[0]} classes", s)
    v, s = get("optimizer", "adam")
    opt = bind(OPTIMIZERS, _call(v, "optimizer", s), "optimizer")
    v, s = get("schedule", "constant")
    sched = bind(SCHEDULES, _call(v, "schedule", s), "schedule")
    v, s = get("metrics", [])
    if not isinstance(v, list):
        raise error("`metrics` takes a list such as [accuracy, top_k(3)]", s)
    metrics = []
    for m in v:
        entry = bind(METRICS, _call(m, "metric", s), "metric")
        if not fits(entry, data_entry.targets):
            raise error(f"the metric {entry.name} needs {TARGET_WORDS[entry.task]}, but the data gives {TARGET_WORDS[data_entry.targets]}", s)
        if any(e.key == entry.key for e in metrics):
            raise error(f"the metric {entry.key} is listed twice", s)
        metrics.append(entry)
    seed, s = get("seed", 0)
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise error(f"`seed` must be a whole number ≥ 0, got {describe(seed)}", s)
    epochs = _positive_int(*get("epochs", 10), "epochs")
    batch = _positive_int(*get("batch_size", 32), "batch_size")
    clips = {}
    for key in ("clip_norm", "clip_value", "l1", "l2"):
        if key in got:
            value_, span_ = got[key]
            if isinstance(value_, bool) or not isinstance(value_, int | float) or value_ <= 0:
                raise error(f"`{key}` must be a positive number, got {describe(value_)}", span_)
            clips[key] = float(value_)
    if getattr(sched, "monitor", None):
        _check_monitor(sched.monitor, data_entry, loss_entry, got["schedule"][1])
    stopping = None
    if "early_stopping" in got:
        v, s = got["early_stopping"]
        stopping = bind(EARLY_STOPPING, _call(v, "patience", s), "early stopping rule")
        _check_monitor(stopping.monitor, data_entry, loss_entry, s)
    augment = _augmentations(*got.get("augment", ([], train.span)), graph)
    return Plan(model=name, data=data_entry, loss=loss_entry, optimizer=opt, schedule=sched, epochs=epochs,
                batch_size=batch, metrics=tuple(metrics), seed=seed, span=train.span, early_stopping=stopping,
                augment=augment, **clips)


def _check_monitor(monitor: str, data_entry: Data, loss_entry: Loss, span: Span) -> None:
    if monitor.startswith("val_") and not data_entry.validation:
        raise error(f"`{monitor}` needs validation data, but the validation fraction is 0", span,
                    hint="monitor `loss`, or give the data a validation fraction")
    if "accuracy" in monitor and loss_entry.target != CLASSES:
        raise error(f"`{monitor}` needs a classification loss", span)


def _augmentations(v: Any, span: Span, graph: Graph) -> tuple[Augmentation, ...]:
    if not isinstance(v, list):
        raise error("`augment` takes a list such as [flip(), rotation(10)]", span)
    x = graph.inputs[0]
    out = []
    for item in v:
        a = bind(AUGMENTATIONS, _call(item, "augmentation", span), "augmentation")
        image = len(x.shape) == 3 and x.dtype == "float"
        if a.needs == TOKENS and x.dtype != "int":
            raise error(f"{a.name} changes token ids, but input `{x.name}` is not integer", span, related=(x.span, "the input"))
        if a.needs in (IMAGE, COLOUR) and not image:
            raise error(f"{a.name} works on images [channels, height, width], but input `{x.name}` is {fmt_shape(x.shape)}",
                        span, related=(x.span, "the input"))
        if a.needs == COLOUR and x.shape[0] != 3:
            raise error(f"{a.name} works on RGB images (3 channels), but input `{x.name}` has {x.shape[0]}", span)
        out.append(a)
    return tuple(out)

