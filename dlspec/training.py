"""The `train` section: data, loss, optimizer, schedule and metrics, each a registry entry whose
fields are its arguments, checked against the model it trains. Schedules are functions of the
optimizer step (EQUIVALENCE.md trap 11), rendered as the same formula in both backends."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Annotated, Any, ClassVar, Literal

from pydantic import Field

from . import ir
from .diagnostics import NOWHERE, Span, did_you_mean, error
from .graph import Graph
from .registry import CallValue, Entry, PositiveFloat, PositiveInt, Rate, bind, describe, fmt_shape, lit, registry_of

DATA, data = registry_of("data source")
LOSSES, loss = registry_of("loss")
OPTIMIZERS, optimizer = registry_of("optimizer")
SCHEDULES, schedule = registry_of("schedule")
METRICS = {"accuracy": "the fraction of samples whose highest score is the true class"}


# --- data -------------------------------------------------------------------------------------

class Data(Entry):
    kind: ClassVar[str] = "data"
    labels: ClassVar[str]  # "classes" or "values"
    validation: Annotated[float, Field(ge=0.0, lt=1.0)] = 0.2

    def check(self, graph: Graph, span: Span) -> None:
        pass


@data
class Digits(Data):
    """scikit-learn's bundled 8×8 handwritten digits: 1,797 images, 10 classes, pixels scaled to
    [0, 1]. Shaped to the model's input: [1, 8, 8], [8, 8] (rows as steps) or [64]."""

    name = "digits"
    labels = "classes"
    validation: Annotated[float, Field(ge=0.0, lt=1.0)] = 0.2

    def check(self, graph, span):
        x = graph.inputs[0]
        if math.prod(x.shape) != 64 or x.dtype != "float":
            raise error(f"digits gives 64 pixels per image (8×8), but input `{x.name}` is {x.dtype} {fmt_shape(x.shape)}",
                        span, hint="declare `input image: [1, 8, 8]` (or [8, 8], or [64])", related=(x.span, "the input"))


@data
class Synthetic(Data):
    """Random inputs of the model's input shape, with learnable targets: class labels from a random
    linear map (`task=classification`) or values from one (`task=regression`). For quick trials."""

    name = "synthetic"
    labels = "classes"
    task: Literal["classification", "regression"] = "classification"
    samples: Annotated[int, Field(ge=8)] = 512
    vocab: PositiveInt = 100

    def check(self, graph, span):
        pass


# --- losses -------------------------------------------------------------------------------------

class Loss(Entry):
    kind: ClassVar[str] = "loss"
    target: ClassVar[str]  # "classes" or "values"


@loss
class CrossEntropy(Loss):
    """Categorical cross-entropy against integer class labels, averaged over the batch. The model's
    output is read as logits (`from_logits=true`, the default) or as probabilities."""

    name = "cross_entropy"
    target = "classes"
    from_logits: bool = True

    def torch(self) -> str:
        return "nn.CrossEntropyLoss()" if self.from_logits else "ProbabilityCrossEntropy()"

    def keras(self) -> str:
        return f"keras.losses.SparseCategoricalCrossentropy(from_logits={lit(self.from_logits)})"


@loss
class MSE(Loss):
    """Mean squared error over every output value, averaged over the batch."""

    name = "mse"
    target = "values"

    def torch(self):
        return "nn.MSELoss()"

    def keras(self):
        return "keras.losses.MeanSquaredError()"


# --- optimizers ---------------------------------------------------------------------------------

class Optimizer(Entry):
    kind: ClassVar[str] = "optimizer"
    positional = ("lr",)


@optimizer
class SGD(Optimizer):
    """Stochastic gradient descent, with optional (Nesterov) momentum."""

    name = "sgd"
    lr: PositiveFloat = 0.01
    momentum: Rate = 0.0
    nesterov: bool = False

    def problem(self):
        return "nesterov needs momentum above 0" if self.nesterov and not self.momentum else None

    def torch(self, params: str) -> str:
        return f"torch.optim.SGD({params}, lr={lit(self.lr)}, momentum={lit(self.momentum)}, nesterov={lit(self.nesterov)})"

    def keras(self, lr: str) -> str:
        return f"keras.optimizers.SGD(learning_rate={lr}, momentum={lit(self.momentum)}, nesterov={lit(self.nesterov)})"


@optimizer
class Adam(Optimizer):
    """Adam (Kingma & Ba) with bias correction."""

    name = "adam"
    lr: PositiveFloat = 1e-3
    beta1: Rate = 0.9
    beta2: Rate = 0.999
    eps: PositiveFloat = 1e-8

    def torch(self, params):
        return f"torch.optim.Adam({params}, lr={lit(self.lr)}, betas=({lit(self.beta1)}, {lit(self.beta2)}), eps={lit(self.eps)})"

    def keras(self, lr):
        return f"keras.optimizers.Adam(learning_rate={lr}, beta_1={lit(self.beta1)}, beta_2={lit(self.beta2)}, epsilon={lit(self.eps)})"


# --- schedules: factor(step) multiplies the optimizer's lr ---------------------------------------

class Schedule(Entry):
    kind: ClassVar[str] = "schedule"

    def formula(self, step: str, total: str, cos: str) -> str:
        """The factor at optimizer step `step` (0-based) of `total`, as an expression."""
        raise NotImplementedError


@schedule
class Constant(Schedule):
    """The optimizer's learning rate at every step."""

    name = "constant"

    def formula(self, step, total, cos):
        return "1.0"


@schedule
class Cosine(Schedule):
    """Cosine annealing from lr to min_ratio * lr over the whole run, per optimizer step.

    factor(step) = min_ratio + (1 - min_ratio) * (1 + cos(pi * step / total_steps)) / 2."""

    name = "cosine"
    min_ratio: Annotated[float, Field(ge=0.0, le=1.0)] = 0.0

    def formula(self, step, total, cos):
        return f"{lit(self.min_ratio)} + {lit(1.0 - self.min_ratio)} * 0.5 * (1.0 + {cos}(math.pi * {step} / {total}))"


# --- the plan -------------------------------------------------------------------------------------

SETTINGS = {
    "model": "which model to train (when the spec has several)",
    "data": "where samples come from: digits(...) or synthetic(...)",
    "loss": "cross_entropy(...) or mse()",
    "optimizer": "sgd(...) or adam(...)",
    "schedule": "constant() or cosine(...)",
    "epochs": "passes over the training data",
    "batch_size": "samples per optimizer step",
    "metrics": "a list such as [accuracy]",
    "seed": "the seed for weights, shuffling and data",
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
    metrics: tuple[str, ...] = ("accuracy",)
    seed: int = 0
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


def plan(spec: ir.Spec, graphs: list[Graph], value) -> Plan:
    """The training plan of a spec; `value` resolves IR values (constants) to Python values."""
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
    if len(graph.inputs) != 1 or len(graph.outputs) != 1:
        raise error("training supports models with one input and one output in this version", train.span if train.span.known else graph.span)

    v, s = get("data", "digits" if graph.inputs[0].dtype == "float" and math.prod(graph.inputs[0].shape) == 64 else "synthetic")
    data_entry = bind(DATA, _call(v, "data", s), "data source")
    data_entry.check(graph, s)
    v, s = get("loss", "cross_entropy")
    loss_entry = bind(LOSSES, _call(v, "loss", s), "loss")
    out = graph.shape_of(graph.outputs[0])
    task = getattr(data_entry, "task", "classification")
    if loss_entry.target == "classes":
        if task != "classification":
            raise error(f"{loss_entry.name} needs class labels, but the data is for regression", s, hint="use `mse()`")
        if len(out) != 1:
            raise error(f"{loss_entry.name} needs an output of shape [classes], but the model gives {fmt_shape(out)}", s,
                        hint="end the model with `flatten()` or `global_avgpool()` and `dense(classes)`")
        if isinstance(data_entry, Digits) and out != (10,):
            raise error(f"digits has 10 classes, but the model's output is {fmt_shape(out)}", s, hint="end the model with `dense(10)`")
    elif isinstance(data_entry, Digits) or task == "classification":
        raise error(f"{loss_entry.name} needs regression targets, but `{data_entry.name}` gives class labels", s,
                    hint="use `cross_entropy()`, or `synthetic(task=regression)`")
    v, s = get("optimizer", "adam")
    opt = bind(OPTIMIZERS, _call(v, "optimizer", s), "optimizer")
    v, s = get("schedule", "constant")
    sched = bind(SCHEDULES, _call(v, "schedule", s), "schedule")
    v, s = get("metrics", [])
    if not isinstance(v, list) or not all(isinstance(m, str) for m in v):
        raise error("`metrics` takes a list such as [accuracy]", s)
    for m in v:
        if m not in METRICS:
            raise error(f"unknown metric `{m}`", s, hint=did_you_mean(m, METRICS) or f"metrics: {', '.join(METRICS)}")
        if m == "accuracy" and loss_entry.target != "classes":
            raise error("accuracy needs a classification loss", s)
    seed, s = get("seed", 0)
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise error(f"`seed` must be a whole number ≥ 0, got {describe(seed)}", s)
    epochs = _positive_int(*get("epochs", 10), "epochs")
    batch = _positive_int(*get("batch_size", 32), "batch_size")
    return Plan(model=name, data=data_entry, loss=loss_entry, optimizer=opt, schedule=sched, epochs=epochs,
                batch_size=batch, metrics=tuple(v), seed=seed, span=train.span)

