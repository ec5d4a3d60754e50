"""Data sources: where samples come from, each a registry entry checked against the model it
feeds (shapes, label ranges, files), rendered by its template in backends/templates/data/. Every
source splits off a seeded validation fraction, then a test fraction, and can make the targets the
inputs themselves (reconstruct=true, for autoencoders)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated, ClassVar, Literal

from pydantic import Field

from .diagnostics import Span, error
from .graph import Graph
from .losses import CLASSES, VALUES
from .registry import Entry, PositiveInt, fmt_shape, registry_of

DATA, data = registry_of("data source")
TARGET_WORDS = {"classes": "class labels", "values": "real-valued targets", "binary": "0/1 targets",
                "distribution": "probability distributions"}


# --- data -------------------------------------------------------------------------------------

Task = Literal["classification", "regression", "binary", "distribution"]
TASK_TARGETS = {"classification": "classes", "regression": "values", "binary": "binary", "distribution": "distribution"}


Fraction = Annotated[float, Field(ge=0.0, lt=1.0)]


class Data(Entry):
    kind: ClassVar[str] = "data"
    validation: Fraction = 0.2
    # Held out after the validation samples; `dls run` reports the final model on it.
    test: Fraction = 0.0
    # The targets are the inputs themselves (the first input's clean values, before augmentation).
    reconstruct: bool = False

    def problem(self):
        if self.validation + self.test >= 1:
            return f"validation ({self.validation:g}) and test ({self.test:g}) leave no training samples"
        return None

    @property
    def labels(self) -> str:
        """What the source's own targets are: one of the kinds in losses.py."""
        return CLASSES

    @property
    def targets(self) -> str:
        """What the targets the losses read are: the inputs' values with reconstruct=true."""
        return VALUES if self.reconstruct else self.labels

    def check(self, graph: Graph, span: Span, base: Path, output: str | None = None) -> Data:
        """Checks the data against the model, whose output `output` (default: the first) reads the
        targets; returns the entry to generate from."""
        return self

    def one_input(self, graph: Graph, span: Span) -> None:
        """Sources that give one array per sample feed models with one input."""
        if len(graph.inputs) != 1:
            names = ", ".join(f"`{t.name}`" for t in graph.inputs)
            raise error(f"{self.name} gives one input per sample, but the model has {len(graph.inputs)} inputs ({names})", span,
                        hint="use synthetic(...) or npz(...), which give every input (npz: one array named after each)")

    @property
    def template(self) -> str:
        return f"data/{self.name}.py.j2"


@data
class Digits(Data):
    """scikit-learn's bundled 8×8 handwritten digits: 1,797 images, 10 classes, pixels scaled to
    [0, 1]. Shaped to the model's input: [1, 8, 8], [8, 8] (rows as steps) or [64]."""

    name = "digits"
    validation: Annotated[float, Field(ge=0.0, lt=1.0)] = 0.2

    def check(self, graph, span, base, output=None):
        self.one_input(graph, span)
        x = graph.inputs[0]
        if math.prod(x.shape) != 64 or x.dtype != "float":
            raise error(f"digits gives 64 pixels per image (8×8), but input `{x.name}` is {x.dtype} {fmt_shape(x.shape)}",
                        span, hint="declare `input image: [1, 8, 8]` (or [8, 8], or [64])", related=(x.span, "the input"))
        return self


@data
class Synthetic(Data):
    """Random inputs of the model's input shapes (every input: floats from N(0, 1), token ids from
    [0, vocab), for an input read as graph_conv's adjacency a random symmetric 0/1 matrix with
    an empty diagonal, and for an attention mask 0/1 values, 1 (attend) with probability 0.8), with targets from a fixed random linear map of the first input, so they can
    be learnt: class labels (task=classification), values of the output's shape (regression), 0/1
    values (binary) or probability distributions (distribution). For an output [positions, classes]
    whose first input is [positions, ...], position i's label is read from position i of the input
    (a tag per token, a class per graph node), and on a graph from the node and its neighbours."""

    name = "synthetic"
    task: Task = "classification"
    samples: Annotated[int, Field(ge=8)] = 512
    vocab: PositiveInt | None = None  # token ids drawn from [0, vocab); default: the embedding's size

    @property
    def labels(self):
        return TASK_TARGETS[self.task]

    def check(self, graph, span, base, output=None):
        limits = [vocab_limit(graph, x.name) for x in graph.inputs if x.dtype == "int"]
        if not limits:
            return self
        for x in graph.inputs:
            limit = vocab_limit(graph, x.name)
            if x.dtype == "int" and self.vocab is not None and self.vocab > limit:
                raise error(f"synthetic token ids go up to {self.vocab - 1}, but the embedding reading `{x.name}` has {limit} "
                            "entries", span, hint=f"use vocab={limit} or less")
        return self.model_copy(update={"vocab": self.vocab or min(limits)})


def vocab_limit(graph: Graph, name: str) -> int:
    """How many token ids the layers reading input `name` take (100 when none says)."""
    return min((n.layer.vocab for n in graph.nodes if name in n.inputs and hasattr(n.layer, "vocab")), default=100)


def adjacency_inputs(graph: Graph) -> set[str]:
    """The inputs read as an adjacency matrix: graph_conv's second argument."""
    return {n.inputs[1] for n in graph.nodes if n.op == "graph_conv" and len(n.inputs) == 2}


def mask_inputs(graph: Graph) -> set[str]:
    """The inputs read as an attention key mask: the last argument of a `masked=true` attention."""
    return {n.inputs[-1] for n in graph.nodes if getattr(n.layer, "masked", False)}




class _File(Data):
    positional = ("path",)
    path: str
    task: Task = "classification"
    normalize: bool = False

    @property
    def labels(self):
        return TASK_TARGETS[self.task]

    def resolve(self, span: Span, base: Path) -> Path:
        path = (base / self.path).resolve()
        if not path.is_file():
            raise error(f"no such data file: {path}", span, hint="paths are relative to the spec's folder")
        return path

    def check_arrays(self, graph: Graph, span: Span, x_shape: tuple, y, what: str, output: str | None = None,
                     t=None, key: str | None = None) -> None:
        """Shapes and labels against the model: x_shape is the shape of input `t`'s array (default:
        the first input), y the targets (None with reconstruct), read by output `output`."""
        import numpy as np

        t, out = t or graph.inputs[0], graph.shape_of(output or graph.outputs[0])
        if math.prod(x_shape[1:]) != math.prod(t.shape):
            raise error(f"{what}{f' `{key}`' if key else ''} has inputs of shape {fmt_shape(x_shape[1:])} per sample, but input "
                        f"`{t.name}` is {fmt_shape(t.shape)}", span, related=(t.span, "the input"))
        if y is None:
            return
        if len(y) != x_shape[0]:
            raise error(f"{what} has {x_shape[0]} input samples but {len(y)} targets", span)
        if self.task == "classification":
            labels = np.asarray(y)
            if math.prod(labels.shape[1:]) != math.prod(out[:-1]):
                want = "one label per sample" if len(out) == 1 else f"labels of shape {fmt_shape(out[:-1])} per sample"
                raise error(f"{what} has labels of shape {fmt_shape(labels.shape[1:])} per sample, but the model's output "
                            f"{fmt_shape(out)} takes {want}", span)
            if labels.size and (np.any(labels != np.round(labels)) or labels.min() < 0 or labels.max() >= out[-1]):
                raise error(f"{what}'s labels must be whole numbers from 0 to {out[-1] - 1} (the model has {out[-1]} "
                            f"classes), but they range from {labels.min():g} to {labels.max():g}", span)
        elif math.prod(np.shape(y)[1:]) != math.prod(out):
            raise error(f"{what} has targets of shape {fmt_shape(np.shape(y)[1:])} per sample, but the model's output is "
                        f"{fmt_shape(out)}", span)


@data
class Npz(_File):
    """Arrays from a NumPy .npz file: inputs under the key `x`, targets under `y` (both can be
    renamed; no `y` with reconstruct=true). A model with several inputs reads one array per input,
    each under the input's name. The path is relative to the spec's folder; generated code names
    it relative to its own."""

    name = "npz"
    example = 'npz("data/train.npz", task=regression)'
    x: str = "x"
    y: str = "y"

    def keys(self, graph: Graph) -> list[str]:
        """The arrays of the inputs, in the model's input order."""
        return [self.x] if len(graph.inputs) == 1 else [t.name for t in graph.inputs]

    def check(self, graph, span, base, output=None):
        import numpy as np

        several = len(graph.inputs) > 1
        if several and self.x != "x":
            raise error(f"x={self.x!r} names the inputs' array, but the model has {len(graph.inputs)} inputs: npz reads "
                        "each from the array named after it", span, hint="leave out x=...")
        if several and self.normalize:
            raise error("normalize works on a model with one input", span, hint="standardize the arrays before saving them")
        path = self.resolve(span, base)
        try:
            with np.load(path) as arrays:
                keys = self.keys(graph) + ([] if self.reconstruct else [self.y])
                missing = [k for k in keys if k not in arrays.files]
                if missing:
                    raise error(f"{path.name} has no array `{missing[0]}` (it has: {', '.join(arrays.files)})", span,
                                hint="save one array per input, named after it" if several else "name the arrays with x=... and y=...")
                y = None if self.reconstruct else arrays[self.y]
                for t, key in zip(graph.inputs, self.keys(graph)):
                    x = arrays[key]
                    if np.issubdtype(x.dtype, np.floating) and not np.isfinite(x).all():
                        raise error(f"{path.name}'s `{key}` holds NaN or infinite values", span,
                                    hint="clean the data first; training on them gives a NaN loss at once")
                    self.check_arrays(graph, span, x.shape, y, path.name, output, t, key if several else None)
                sizes = {len(arrays[k]) for k in self.keys(graph)}
                if len(sizes) > 1:
                    raise error(f"{path.name}'s input arrays hold different numbers of samples ({', '.join(map(str, sorted(sizes)))})", span)
        except (OSError, ValueError) as exc:
            raise error(f"cannot read {path.name} as a .npz file: {exc}", span) from None
        return self.model_copy(update={"path": str(path)})


@data
class Csv(_File):
    """Rows of a CSV file with a header line: the column named `target` holds the targets, every
    other column an input feature (every column, with reconstruct=true). The path is relative to the spec's folder; generated code names it relative to its own."""

    name = "csv"
    example = 'csv("data/train.csv", target="label")'
    target: str = "label"
    delimiter: str = ","

    def check(self, graph, span, base, output=None):
        import csv

        import numpy as np

        self.one_input(graph, span)
        path = self.resolve(span, base)
        with path.open(newline="") as f:
            header, *rows = list(csv.reader(f, delimiter=self.delimiter)) or [[]]
        if self.reconstruct:  # every column is an input feature
            try:
                values = np.array(rows, dtype=np.float64).reshape(len(rows), len(header))
            except ValueError:
                raise error(f"{path.name} must hold numbers only, one value per column in every row", span) from None
            self.check_arrays(graph, span, values.shape, None, path.name, output)
            return self.model_copy(update={"path": str(path)})
        if self.target not in header:
            raise error(f"{path.name} has no column `{self.target}` (its columns: {', '.join(header)})", span,
                        hint="name the target column with target=...")
        try:
            values = np.array(rows, dtype=np.float64).reshape(len(rows), len(header))
        except ValueError:
            raise error(f"{path.name} must hold numbers only, one value per column in every row", span) from None
        i = header.index(self.target)
        self.check_arrays(graph, span, (len(rows), len(header) - 1), values[:, i], path.name, output)
        return self.model_copy(update={"path": str(path)})


IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp")


@data
class ImageFolder(Data):
    """Images in one subfolder per class (classes in alphabetical order of the folder names),
    converted to grey (1 channel) or RGB (3 channels) as the input says, resized to its height and
    width, and scaled to [0, 1]. The path is relative to the spec's folder; generated code names it relative to its own."""

    name = "image_folder"
    positional = ("path",)
    example = 'image_folder("data/flowers")'
    path: str

    def check(self, graph, span, base, output=None):
        self.one_input(graph, span)
        folder = (base / self.path).resolve()
        if not folder.is_dir():
            raise error(f"no such folder: {folder}", span, hint="paths are relative to the spec's folder")
        classes = sorted(p.name for p in folder.iterdir() if p.is_dir())
        x, out = graph.inputs[0], graph.shape_of(output or graph.outputs[0])
        if not classes:
            raise error(f"{folder} has no subfolders: it needs one per class", span)
        empty = [c for c in classes if not any(f.suffix.lower() in IMAGE_SUFFIXES for f in (folder / c).iterdir())]
        if empty:
            raise error(f"the class folder `{empty[0]}` holds no images ({', '.join(IMAGE_SUFFIXES)})", span)
        if len(x.shape) != 3 or x.shape[0] not in (1, 3):
            raise error(f"image_folder gives images [1 or 3 channels, height, width], but input `{x.name}` is "
                        f"{fmt_shape(x.shape)}", span, related=(x.span, "the input"))
        if out != (len(classes),) and not self.reconstruct:
            raise error(f"{folder.name} has {len(classes)} classes ({', '.join(classes[:5])}{', ...' if len(classes) > 5 else ''}), "
                        f"but the model's output is {fmt_shape(out)}", span, hint=f"end the model with `dense({len(classes)})`")
        return self.model_copy(update={"path": str(folder)})
