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
from .registry import (
    CallValue,
    Code,
    Entry,
    Float,
    NonNegInt,
    PositiveFloat,
    PositiveInt,
    Rate,
    bind,
    describe,
    fmt_shape,
    fn,
    lit,
    registry_of,
)

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


# --- optimizers: PyTorch's formulas are the meaning; the Keras output gets a small subclass of
# keras.optimizers.Optimizer computing the same update (EQUIVALENCE.md trap 4). ----------------------

class Optimizer(Entry):
    kind: ClassVar[str] = "optimizer"
    positional = ("lr",)
    torch_class: ClassVar[str]
    keras_class: ClassVar[str]  # a class defined by backends/templates/keras_optimizers/<name>.py.j2

    def torch_args(self) -> dict:
        raise NotImplementedError

    def keras_args(self) -> dict:
        raise NotImplementedError

    def torch(self, params: str) -> str:
        return fn(f"torch.optim.{self.torch_class}", Code(params), lr=self.lr, **self.torch_args())

    def keras(self, lr: str) -> str:
        return fn(self.keras_class, learning_rate=Code(lr), **self.keras_args())

    @property
    def template(self) -> str:
        return f"keras_optimizers/{self.keras_class.lower()}.py.j2"


Beta = Rate  # in [0, 1)
NonNegFloat = Annotated[Float, Field(ge=0.0)]


@optimizer
class SGD(Optimizer):
    """Stochastic gradient descent, with optional (Nesterov) momentum: buf = momentum * buf + grad,
    w -= lr * buf (Nesterov: w -= lr * (grad + momentum * buf))."""

    name = "sgd"
    torch_class = keras_class = "SGD"
    lr: PositiveFloat = 0.01
    momentum: Beta = 0.0
    nesterov: bool = False

    def problem(self):
        return "nesterov needs momentum above 0" if self.nesterov and not self.momentum else None

    def torch_args(self):
        return {"momentum": self.momentum, "nesterov": self.nesterov}

    def keras_args(self):
        return self.torch_args()


@optimizer
class Adam(Optimizer):
    """Adam (Kingma & Ba) with bias correction; eps is added outside the square root."""

    name = "adam"
    torch_class = keras_class = "Adam"
    lr: PositiveFloat = 1e-3
    beta1: Beta = 0.9
    beta2: Beta = 0.999
    eps: PositiveFloat = 1e-8

    def torch_args(self):
        return {"betas": (self.beta1, self.beta2), "eps": self.eps}

    def keras_args(self):
        return {"beta_1": self.beta1, "beta_2": self.beta2, "epsilon": self.eps}


@optimizer
class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov & Hutter): w -= lr * weight_decay * w, then the
    Adam step. Not an L2 penalty on the loss (that is `l2`)."""

    name = "adamw"
    torch_class = "AdamW"
    keras_class = "Adam"
    weight_decay: NonNegFloat = 0.01

    def torch_args(self):
        return super().torch_args() | {"weight_decay": self.weight_decay}

    def keras_args(self):
        return super().keras_args() | {"decoupled_decay": self.weight_decay}


@optimizer
class Adagrad(Optimizer):
    """Adagrad (Duchi et al.): sum += grad², w -= lr * grad / (sqrt(sum) + eps); the sum starts
    at `initial_accumulator` (0, PyTorch's value; Keras's built-in starts at 0.1)."""

    name = "adagrad"
    torch_class = keras_class = "Adagrad"
    lr: PositiveFloat = 0.01
    eps: PositiveFloat = 1e-10
    initial_accumulator: NonNegFloat = 0.0

    def torch_args(self):
        return {"eps": self.eps, "initial_accumulator_value": self.initial_accumulator}

    def keras_args(self):
        return {"epsilon": self.eps, "initial_accumulator": self.initial_accumulator}


@optimizer
class RMSprop(Optimizer):
    """RMSprop (Hinton): v = alpha * v + (1 - alpha) * grad², w -= lr * grad / (sqrt(v) + eps);
    `centered` subtracts the squared mean gradient; `momentum` accumulates the steps."""

    name = "rmsprop"
    torch_class = keras_class = "RMSprop"
    lr: PositiveFloat = 0.01
    alpha: Beta = 0.99
    eps: PositiveFloat = 1e-8
    momentum: Beta = 0.0
    centered: bool = False

    def torch_args(self):
        return {"alpha": self.alpha, "eps": self.eps, "momentum": self.momentum, "centered": self.centered}

    def keras_args(self):
        return {"alpha": self.alpha, "epsilon": self.eps, "momentum": self.momentum, "centered": self.centered}


@optimizer
class Adamax(Adam):
    """Adamax (Kingma & Ba): Adam with the infinity norm, u = max(beta2 * u, |grad| + eps)."""

    name = "adamax"
    torch_class = keras_class = "Adamax"
    lr: PositiveFloat = 2e-3


@optimizer
class NAdam(Adam):
    """NAdam (Dozat): Adam with Nesterov momentum, mu_t = beta1 * (1 - 0.5 * 0.96^(t * momentum_decay))."""

    name = "nadam"
    torch_class = keras_class = "NAdam"
    lr: PositiveFloat = 2e-3
    momentum_decay: NonNegFloat = 4e-3

    def torch_args(self):
        return super().torch_args() | {"momentum_decay": self.momentum_decay}

    def keras_args(self):
        return super().keras_args() | {"momentum_decay": self.momentum_decay}


# --- schedules: lr(step) = lr * factor(step), a function of the optimizer step (from 0), written
# once here and rendered into both outputs (EQUIVALENCE.md trap 11). ------------------------------

@dataclass(frozen=True)
class Expr:
    """How a schedule formula names things in one backend's generated code."""

    step: str = "step"
    total: str = "total_steps"
    per_epoch: str = "steps_per_epoch"
    lib: str = "math"  # "math" in PyTorch's output, "ops" in Keras's (where step is a tensor)

    def f(self, name: str) -> str:
        return f"{self.lib}.{name}"

    def where(self, cond: str, a: str, b: str) -> str:
        return f"({a} if {cond} else {b})" if self.lib == "math" else f"ops.where({cond}, {a}, {b})"

    def count(self, cond: str) -> str:
        return f"({cond})" if self.lib == "math" else f"ops.cast({cond}, {self.step}.dtype)"

    def shifted(self, by: int) -> Expr:
        return Expr(f"({self.step} - {by})", f"({self.total} - {by})", self.per_epoch, self.lib)


TORCH_EXPR, KERAS_EXPR = Expr(lib="math"), Expr(lib="ops")
Unit = Literal["epoch", "step"]
Ratio = Annotated[Float, Field(ge=0.0, le=1.0)]


class Schedule(Entry):
    kind: ClassVar[str] = "schedule"
    warmup: NonNegInt = 0  # optimizer steps of linear warm-up before the schedule starts

    def factor(self, e: Expr) -> str:
        """The factor at step `e.step` of a schedule `e.total` steps long, as an expression."""
        raise NotImplementedError

    def formula(self, e: Expr) -> str:
        if not self.warmup:
            return self.factor(e)
        # Warm-up: factor (step + 1) / warmup, then the schedule, started afresh after it.
        return e.where(f"{e.step} < {self.warmup}", f"({e.step} + 1) / {self.warmup}", self.factor(e.shifted(self.warmup)))

    def unit(self, e: Expr) -> str:
        return e.per_epoch if getattr(self, "per", "epoch") == "epoch" else "1"


@schedule
class Constant(Schedule):
    """The optimizer's learning rate at every step (after the warm-up, if any)."""

    name = "constant"

    def factor(self, e):
        return "1.0"


@schedule
class Step(Schedule):
    """Multiply by `gamma` every `every` epochs (or steps, with per=step): gamma^floor(t / every)."""

    name = "step"
    positional = ("every",)
    example = "step(10, gamma=0.5)"
    every: PositiveInt
    gamma: PositiveFloat = 0.1
    per: Unit = "epoch"

    def factor(self, e):
        return f"{lit(self.gamma)} ** {e.f('floor')}({e.step} / ({self.every} * {self.unit(e)}))"


@schedule
class MultiStep(Schedule):
    """Multiply by `gamma` at each milestone (epochs, or steps with per=step)."""

    name = "multistep"
    positional = ("milestones",)
    example = "multistep([30, 60], gamma=0.1)"
    milestones: list[PositiveInt]
    gamma: PositiveFloat = 0.1
    per: Unit = "epoch"

    def problem(self):
        ok = self.milestones and all(a < b for a, b in zip(self.milestones, self.milestones[1:]))
        return None if ok else "milestones must be a non-empty, increasing list such as [30, 60]"

    def factor(self, e):
        passed = " + ".join(e.count(f"{e.step} >= {m} * {self.unit(e)}") for m in self.milestones)
        return f"{lit(self.gamma)} ** ({passed})"


@schedule
class Exponential(Schedule):
    """Multiply by `gamma` per epoch (or step): gamma^t, or gamma^floor(t) with staircase=true."""

    name = "exponential"
    positional = ("gamma",)
    example = "exponential(0.95)"
    gamma: PositiveFloat
    staircase: bool = False
    per: Unit = "epoch"

    def factor(self, e):
        t = f"{e.step} / {self.unit(e)}"
        return f"{lit(self.gamma)} ** {e.f('floor')}({t})" if self.staircase else f"{lit(self.gamma)} ** ({t})"


@schedule
class Cosine(Schedule):
    """Cosine annealing from lr to min_ratio * lr over the whole run, per optimizer step:
    min_ratio + (1 - min_ratio) * (1 + cos(pi * step / total_steps)) / 2."""

    name = "cosine"
    min_ratio: Ratio = 0.0

    def factor(self, e):
        return f"{lit(self.min_ratio)} + {lit(1.0 - self.min_ratio)} * 0.5 * (1.0 + {e.f('cos')}(math.pi * {e.step} / {e.total}))"


@schedule
class CosineRestarts(Schedule):
    """Cosine annealing with warm restarts (SGDR): cycles of `period` epochs (or steps), each
    `mult` times longer than the one before, each annealing from lr to min_ratio * lr."""

    name = "cosine_restarts"
    positional = ("period",)
    example = "cosine_restarts(10, mult=2)"
    period: PositiveInt
    mult: Annotated[Float, Field(ge=1.0)] = 1.0
    min_ratio: Ratio = 0.0
    per: Unit = "epoch"

    def factor(self, e):
        t = f"({e.step} / {self.unit(e)})"
        if self.mult == 1.0:
            start, length = f"{self.period} * {e.f('floor')}({t} / {self.period})", str(self.period)
        else:  # cycle i starts at period * (mult^i - 1) / (mult - 1); 1e-9 keeps exact starts in their cycle
            m = lit(self.mult)
            i = f"{e.f('floor')}({e.f('log')}(1.0 + {t} * ({m} - 1.0) / {self.period}) / {lit(math.log(self.mult))} + 1e-9)"
            start, length = f"{self.period} * ({m} ** {i} - 1.0) / ({m} - 1.0)", f"{self.period} * {m} ** {i}"
        return (f"{lit(self.min_ratio)} + {lit(1.0 - self.min_ratio)} * 0.5 * "
                f"(1.0 + {e.f('cos')}(math.pi * ({t} - {start}) / ({length})))")


@schedule
class OneCycle(Schedule):
    """The one-cycle policy (Smith): over the first pct_start of the run, rise from lr / div to lr
    along a cosine; then fall to lr / (div * final_div) along a cosine."""

    name = "one_cycle"
    pct_start: Annotated[Float, Field(gt=0.0, lt=1.0)] = 0.3
    div: Annotated[Float, Field(ge=1.0)] = 25.0
    final_div: Annotated[Float, Field(ge=1.0)] = 1e4

    def factor(self, e):
        lo, end, cos = lit(1.0 / self.div), lit(1.0 / (self.div * self.final_div)), e.f("cos")
        up = f"({lit(self.pct_start)} * {e.total})"
        rise = f"{lo} + (1.0 - {lo}) * 0.5 * (1.0 - {cos}(math.pi * {e.step} / {up}))"
        fall = f"{end} + (1.0 - {end}) * 0.5 * (1.0 + {cos}(math.pi * ({e.step} - {up}) / ({e.total} - {up})))"
        return e.where(f"{e.step} < {up}", rise, fall)


# --- the plan -------------------------------------------------------------------------------------

SETTINGS = {
    "model": "which model to train (when the spec has several)",
    "data": "where samples come from: digits(...) or synthetic(...)",
    "loss": "cross_entropy(...) or mse()",
    "optimizer": "sgd, adam, adamw, adagrad, rmsprop, adamax or nadam, e.g. adam(lr=1e-3)",
    "schedule": "constant, step, multistep, exponential, cosine, cosine_restarts or one_cycle; each takes warmup=N",
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

