"""The `train` section as a plan: its settings bound to the registries of data sources
(`data.py`), losses, optimizers, schedules, metrics and augmentations, and checked together
against the model they train."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, ClassVar

from pydantic import Field

from . import ir
from .adversarial import gan_plan, is_adversarial
from .augment import AUGMENTATIONS, COLOUR, IMAGE, TOKENS, Augmentation
from .data import DATA, TARGET_WORDS, Data, Digits
from .diagnostics import NOWHERE, Span, did_you_mean, error
from .graph import Graph
from .losses import CLASSES, LOSSES, NONE, Loss
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
)
from .schedules import SCHEDULES, Mode, Monitor, Schedule, higher_is_better

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
    monitor: Monitor = "val_loss"
    min_delta: Annotated[Float, Field(ge=0.0)] = 0.0
    mode: Mode = "auto"
    restore_best: bool = True

    @property
    def higher_is_better(self) -> bool:
        return higher_is_better(self.monitor, self.mode)


EARLY_STOPPING = {"patience": Patience}


# --- the plan -------------------------------------------------------------------------------------

SETTINGS = {
    "model": "which model to train (when the spec has several)",
    "data": "where samples come from: digits(...) or synthetic(...)",
    "loss": "mse, mae, huber, smooth_l1, cross_entropy, binary_cross_entropy, nll, kl_divergence, cosine_similarity or mean; "
            "for several outputs a list of losses, each with out=NAME and weight=W: [mse(out=recon), mean(out=kl, weight=0.001)]",
    "optimizer": "sgd, adam, adamw, adagrad, rmsprop, adamax or nadam, e.g. adam(lr=1e-3)",
    "schedule": "constant, step, multistep, exponential, cosine, cosine_restarts or one_cycle; each takes warmup=N",
    "epochs": "passes over the training data",
    "batch_size": "samples per optimizer step",
    "metrics": "a list such as [accuracy, top_k(3), f1(macro)]",
    "seed": "the seed for weights, shuffling and data",
    "augment": "a list of augmentations of the training batches, e.g. [flip(), rotation(10), noise(0.05)]; "
               "with several inputs, of the first one only",
    "early_stopping": "stop when a metric stops improving: patience(5, monitor=val_loss, min_delta=0, restore_best=true)",
    "l1": "add l1 · Σ|w| over every kernel (dense, conv, embedding, recurrent weights; not biases) to the loss; a layer's own l1= replaces it",
    "l2": "add l2 · Σw² over every kernel to the loss (a penalty, not optimizer weight decay: see adamw); a layer's own l2= replaces it",
    "clip_norm": "clip the gradients' global norm to this value (PyTorch's clip_grad_norm_)",
    "clip_value": "clip every gradient element to [-value, value] (before clip_norm)",
    # Adversarial training (adversarial.py): `model` is the generator.
    "discriminator": "a GAN's discriminator, trained against the generator named by `model` (with loss: adversarial())",
    "d_optimizer": "the discriminator's optimizer, when it differs from `optimizer`",
}


@dataclass(frozen=True)
class Term:
    """One term of the loss, weight · loss(output): a model with several outputs sums them."""

    loss: Loss
    output: str
    weight: float = 1.0

    @property
    def reads_targets(self) -> bool:
        return self.loss.target != NONE


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
    # The loss's terms, one per model output (`loss` is the term that reads the targets, or the first).
    terms: tuple[Term, ...] = ()
    target_output: str | None = None  # the output the data's targets (and the metrics) are for
    seed: int = 0
    clip_norm: float | None = None
    clip_value: float | None = None
    l1: float | None = None
    l2: float | None = None
    early_stopping: Patience | None = None
    augment: tuple[Augmentation, ...] = ()
    span: Span = NOWHERE
    discriminator: str | None = None  # adversarial training: `model` is the generator
    d_optimizer: Optimizer | None = None  # the discriminator's, when not a copy of `optimizer`


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
    if is_adversarial(got):
        return gan_plan(got, train.span, by_name, graph, base)

    terms = _loss_terms(*get("loss", "cross_entropy"), graph)
    target = next((t for t in terms if t.reads_targets), None)
    loss_entry, s = (target or terms[0]).loss, got.get("loss", (None, train.span))[1]
    out_name = target.output if target else graph.outputs[0]
    out = graph.shape_of(out_name)
    x = graph.inputs[0]
    v, s_data = get("data", "digits" if len(graph.inputs) == 1 and x.dtype == "float" and math.prod(x.shape) == 64 else "synthetic")
    data_entry = bind(DATA, _call(v, "data", s_data), "data source")
    data_entry = data_entry.check(graph, s_data, base, out_name)
    data_span = s_data
    if data_entry.reconstruct and target is not None:
        if x.dtype != "float":
            raise error(f"reconstruct=true makes the input the target, but input `{x.name}` holds integer token ids", data_span,
                        related=(x.span, "the input"), hint="reconstruct float inputs (images, features)")
        if out != x.shape:
            raise error(f"reconstruct=true makes input `{x.name}` {fmt_shape(x.shape)} the target, but output `{out_name}` is "
                        f"{fmt_shape(out)}: they must have one shape", data_span, related=(_span_of(graph, out_name), "the output"),
                        hint=f"end the decoder with the input's shape {fmt_shape(x.shape)}")
    if target is not None and not loss_entry.accepts(data_entry.targets):
        given = "the inputs' values (reconstruct=true)" if data_entry.reconstruct else TARGET_WORDS[data_entry.targets]
        raise error(f"{loss_entry.name} needs {TARGET_WORDS[loss_entry.target]}, but {data_entry.name} gives {given}", s,
                    hint="reconstruct with an element-wise loss such as mse() or mae()" if data_entry.reconstruct else
                    "digits has class labels: use cross_entropy()" if isinstance(data_entry, Digits) else
                    "choose the synthetic task: synthetic(task=classification|regression|binary|distribution)")
    if loss_entry.target == CLASSES:
        if len(out) not in (1, 2):
            raise error(f"{loss_entry.name} needs an output of shape [classes], or [positions, classes] for a label per position, "
                        f"but output `{out_name}` is {fmt_shape(out)}", s,
                        hint="end the model with `flatten()` or `global_avgpool()` and `dense(classes)`")
        if isinstance(data_entry, Digits) and out != (10,):
            raise error(f"digits has 10 classes, but the model's output is {fmt_shape(out)}", data_span,
                        hint="end the model with `dense(10)`", related=(_span_of(graph, out_name), "the output"))
        weights = getattr(loss_entry, "class_weights", None)
        if weights is not None and len(weights) != out[-1]:
            raise error(f"class_weights has {len(weights)} values, but the model has {out[-1]} classes", s)
    v, s = get("optimizer", "adam")
    opt = bind(OPTIMIZERS, _call(v, "optimizer", s), "optimizer")
    v, s = get("schedule", "constant")
    sched = bind(SCHEDULES, _call(v, "schedule", s), "schedule")
    v, s = get("metrics", [])
    if not isinstance(v, list):
        raise error("`metrics` takes a list such as [accuracy, top_k(3)]", s)
    metrics = []
    if v and target is None:
        raise error("metrics compare an output with the data's targets, but no loss term reads targets", s,
                    hint="leave out `metrics`, or give one output a loss that reads targets, such as mse()")
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
        _check_monitor(sched.monitor, data_entry, metrics, got["schedule"][1])
    stopping = None
    if "early_stopping" in got:
        v, s = got["early_stopping"]
        stopping = bind(EARLY_STOPPING, _call(v, "patience", s), "early stopping rule")
        _check_monitor(stopping.monitor, data_entry, metrics, s)
    augment = _augmentations(*got.get("augment", ([], train.span)), graph)
    return Plan(model=name, data=data_entry, loss=loss_entry, optimizer=opt, schedule=sched, epochs=epochs,
                batch_size=batch, metrics=tuple(metrics), terms=terms, target_output=target.output if target else None,
                seed=seed, span=train.span, early_stopping=stopping,
                augment=augment, **clips)


def _span_of(graph: Graph, name: str) -> Span:
    return next((n.span for n in graph.nodes if n.name == name), next((t.span for t in graph.inputs if t.name == name), NOWHERE))


def _loss_terms(v: Any, span: Span, graph: Graph) -> tuple[Term, ...]:
    """`loss: mse()`, or a list of per-output losses `[mse(out=recon), mean(out=kl, weight=0.001)]`:
    every output has one term, and at most one term reads the data's targets."""
    items = v if isinstance(v, list) else [v]
    outputs = graph.outputs
    example = f"[mse(out={outputs[0]}), mean(out={outputs[-1]}, weight=0.001)]" if len(outputs) > 1 else "mse()"
    if not items:
        raise error("`loss` takes a loss, or a list of losses one per output", span, hint=f"e.g. `loss: {example}`")
    terms: list[Term] = []
    spans: dict[str, Span] = {}
    for item in items:
        call = _call(item, "loss", span)
        here = call.span if call.span.known else span
        output, weight, kwargs, kwarg_spans = None, 1.0, [], []
        for i, (k, a) in enumerate(call.kwargs):
            at = call.kwarg_spans[i] if i < len(call.kwarg_spans) else here
            if k == "out":
                if not isinstance(a, str) or a not in outputs:
                    raise error(f"{call.name}: out={describe(a)} is not an output of model `{graph.name}`", at,
                                hint=did_you_mean(str(a), outputs) or f"its outputs: {', '.join(outputs)}")
                output = str(a)
            elif k == "weight":
                if isinstance(a, bool) or not isinstance(a, int | float) or not math.isfinite(a) or a <= 0:
                    raise error(f"{call.name}: weight must be a positive number, got {describe(a)}", at)
                weight = float(a)
            else:
                kwargs.append((k, a))
                kwarg_spans.append(at)
        entry = bind(LOSSES, call.model_copy(update={"kwargs": tuple(kwargs), "kwarg_spans": tuple(kwarg_spans)}), "loss")
        if output is None:
            if len(outputs) > 1:
                raise error(f"model `{graph.name}` has {len(outputs)} outputs ({', '.join(outputs)}): say which one {call.name} reads",
                            here, hint=f"give one loss per output, e.g. `loss: {example}`")
            output = outputs[0]
        if output in spans:
            raise error(f"output `{output}` has two losses", here, related=(spans[output], "the first"),
                        hint="one loss per output; weight it with weight=...")
        spans[output] = here
        terms.append(Term(loss=entry, output=output, weight=weight))
    missing = [o for o in outputs if o not in spans]
    if missing:
        raise error(f"output `{missing[0]}` has no loss", span,
                    hint=f"every output needs a loss term; for a value the model computes itself, add `mean(out={missing[0]})`")
    reading = [t for t in terms if t.reads_targets]
    if len(reading) > 1:
        raise error(f"outputs `{reading[0].output}` and `{reading[1].output}` both read the data's targets; the data gives "
                    "targets for one output", spans[reading[1].output],
                    hint="the other outputs take target-free losses, such as mean() of a term the model computes")
    order = {o: i for i, o in enumerate(outputs)}
    return tuple(sorted(terms, key=lambda t: order[t.output]))


def _check_monitor(monitor: str, data_entry: Data, metrics: list[Metric], span: Span) -> None:
    """Only the training loss and the validation figures are computed after every epoch."""
    if monitor.startswith("val_") and not data_entry.validation:
        raise error(f"`{monitor}` needs validation data, but the validation fraction is 0", span,
                    hint="monitor `loss`, or give the data a validation fraction")
    if monitor == "accuracy":
        raise error("the training accuracy is not computed after each epoch", span,
                    hint="monitor `val_accuracy` (with accuracy in `metrics`), `val_loss` or `loss`")
    if monitor == "val_accuracy" and not any(m.name == "accuracy" for m in metrics):
        raise error("`val_accuracy` is monitored, but accuracy is not among the metrics", span,
                    hint="add it: `metrics: [accuracy]`")


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

