"""Adversarial training: the plan of a train section that names a `discriminator`. The trained
model (`model:`) is the generator G, fed latent noise z ~ N(0, 1) of its input's shape; the
discriminator D reads samples of the data (real) and of G (fake) and gives one logit per sample.
Each batch takes one step of D, then one step of G, with the non-saturating GAN loss."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated, Any, ClassVar

from pydantic import Field

from .data import DATA
from .diagnostics import Span, did_you_mean, error
from .graph import Graph
from .losses import Loss
from .optimizers import OPTIMIZERS
from .registry import CallValue, Float, bind, describe, fmt_shape
from .schedules import SCHEDULES

ADVERSARIAL = "adversarial"  # what an adversarial loss's "targets" are: none, the labels are real / fake


class Adversarial(Loss):
    """The non-saturating GAN loss (Goodfellow et al., 2014) on the discriminator's logits, for a
    train section with a `discriminator`. The discriminator minimizes BCE(D(x), 1 - label_smoothing)
    + BCE(D(G(z)), 0), the sum of its losses on the real and the fake batch; the generator minimizes
    BCE(D(G(z)), 1). BCE is the binary cross-entropy of logits, averaged over the batch;
    label_smoothing lowers the real samples' target only (one-sided, Salimans et al., 2016)."""

    name = "adversarial"
    example = "adversarial(label_smoothing=0.1)"
    target: ClassVar[str] = ADVERSARIAL
    label_smoothing: Annotated[Float, Field(ge=0.0, lt=1.0)] = 0.0

    @property
    def real_label(self) -> float:
        return round(1.0 - self.label_smoothing, 12)

    def template(self, backend: str) -> str:
        return f"gan/{backend}_loss.py.j2"


GAN_LOSSES = {"adversarial": Adversarial}
# Settings of supervised training that adversarial training does not take (in this version).
UNSUPPORTED = {"metrics": "the losses d_loss and g_loss are reported after every epoch",
               "early_stopping": "GAN losses do not say when the samples stop improving",
               "augment": "", "l1": "", "l2": ""}


def _adversarial_loss(got: dict[str, tuple[Any, Span]]) -> bool:
    loss = got.get("loss", (None, None))[0]
    return (loss.name if isinstance(loss, CallValue) else loss) == "adversarial"


def is_adversarial(got: dict[str, tuple[Any, Span]]) -> bool:
    """Whether the settings ask for adversarial training: a discriminator, its optimizer, or the
    adversarial loss."""
    return "discriminator" in got or "d_optimizer" in got or _adversarial_loss(got)


def _span(g: Graph, tensor: str) -> Span:
    return next((n.span for n in g.nodes if n.name == tensor), g.span)


def _one_in_one_out(g: Graph, role: str, span: Span) -> None:
    if len(g.inputs) != 1 or len(g.outputs) != 1:
        raise error(f"the {role} `{g.name}` must have one input and one output", span, related=(g.span, f"the {role}"))


def gan_plan(got: dict[str, tuple[Any, Span]], train_span: Span, by_name: dict[str, Graph], generator: Graph, base: Path):
    """The plan of adversarial training; `got` holds the train section's settings (value, span)."""
    from .training import Plan, _call, _positive_int  # not at the top: training imports this module

    def get(key, default):
        return got.get(key, (default, train_span))

    if "discriminator" not in got:
        what, where = ("adversarial()", got["loss"][1]) if _adversarial_loss(got) else ("`d_optimizer`", got["d_optimizer"][1])
        raise error(f"{what} is for a generator trained against a discriminator, but the train section names none",
                    where, hint="add `discriminator: <model>`, with the generator as `model:`")
    name, span = got["discriminator"]
    if not isinstance(name, str) or name not in by_name:
        raise error(f"unknown model `{describe(name)}`", span, hint=did_you_mean(str(name), by_name) or f"models: {', '.join(by_name)}")
    if name == generator.name:
        raise error(f"`{name}` is both the generator (`model`) and the discriminator", span,
                    hint="declare the discriminator as a model of its own")
    disc = by_name[name]
    for key, why in UNSUPPORTED.items():
        if key in got:
            raise error(f"`{key}` is not supported in adversarial training in this version", got[key][1], hint=why or None)
    for n in (*generator.nodes, *disc.nodes):
        for key in ("l1", "l2", "max_norm"):
            if getattr(n.layer, key, None) is not None:
                raise error(f"`{key}=` is not supported in adversarial training in this version", n.span,
                            hint=f"remove `{key}=` from this layer")
    _one_in_one_out(generator, "generator", train_span)
    _one_in_one_out(disc, "discriminator", span)
    z, x = generator.inputs[0], disc.inputs[0]
    fake = generator.shape_of(generator.outputs[0])
    if z.dtype != "float":
        raise error(f"the generator's input `{z.name}` receives noise z ~ N(0, 1), so it must be float, not {z.dtype}",
                    z.span, hint=f"declare `input {z.name}: {fmt_shape(z.shape)}`")
    if x.dtype != "float":
        raise error(f"the discriminator's input `{x.name}` reads samples, so it must be float, not {x.dtype}", x.span)
    if fake != x.shape:
        raise error(f"the generator gives samples of shape {fmt_shape(fake)}, but the discriminator's input `{x.name}` is "
                    f"{fmt_shape(x.shape)}", span, related=(_span(generator, generator.outputs[0]), "the generator's output"),
                    hint="the discriminator reads the generator's samples: give both the same shape")
    verdict = disc.shape_of(disc.outputs[0])
    if verdict != (1,):
        raise error(f"the discriminator must give one logit per sample, shape [1], but `{disc.name}` gives {fmt_shape(verdict)}",
                    span, related=(_span(disc, disc.outputs[0]), "the discriminator's output"),
                    hint="end it with `dense(1)` (no sigmoid: the loss reads logits)")

    v, s = get("data", "digits" if math.prod(x.shape) == 64 else "synthetic")
    # The data's samples are the real ones: they feed the discriminator (their labels are not read).
    data = bind(DATA, _call(v, "data", s), "data source").check(disc, s, base)
    v, s = get("loss", "adversarial")
    loss_call = _call(v, "loss", s)
    if loss_call.name not in GAN_LOSSES:
        raise error(f"a generator and a discriminator train with `loss: adversarial()`, not {loss_call.name}", s,
                    hint="adversarial(label_smoothing=0.1) smooths the real samples' labels")
    loss = bind(GAN_LOSSES, loss_call, "loss")
    v, s = get("optimizer", "adam")
    optimizer = bind(OPTIMIZERS, _call(v, "optimizer", s), "optimizer")
    d_optimizer = None
    if "d_optimizer" in got:
        v, s = got["d_optimizer"]
        d_optimizer = bind(OPTIMIZERS, _call(v, "optimizer", s), "optimizer")
    v, s = get("schedule", "constant")
    schedule = bind(SCHEDULES, _call(v, "schedule", s), "schedule")
    if schedule.per_epoch:
        raise error(f"the {schedule.name} schedule watches a validation figure, which adversarial training does not compute", s,
                    hint="use a schedule of the step, such as cosine()")
    seed, s = get("seed", 0)
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise error(f"`seed` must be a whole number ≥ 0, got {describe(seed)}", s)
    clips = {}  # for each model's gradients, in its own step
    for key in ("clip_norm", "clip_value"):
        if key in got:
            value, span_ = got[key]
            if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
                raise error(f"`{key}` must be a positive number, got {describe(value)}", span_)
            clips[key] = float(value)
    return Plan(model=generator.name, data=data, loss=loss, optimizer=optimizer, schedule=schedule,
                epochs=_positive_int(*get("epochs", 10), "epochs"), batch_size=_positive_int(*get("batch_size", 32), "batch_size"),
                seed=seed, span=train_span, discriminator=disc.name, d_optimizer=d_optimizer, **clips)
