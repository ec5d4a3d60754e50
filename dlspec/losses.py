"""Losses. Each declares what its targets are and renders `loss_fn` from a small template per
backend (backends/templates/losses/): the frameworks' built-ins where they agree, and an explicit
function where they do not (class-weight normalization, label smoothing with integer labels,
probability clipping, KL at zero probabilities; EQUIVALENCE.md trap 13). Every loss is averaged
over the batch (and over every output value, for element-wise losses; over every position, for
class labels per position)."""

from __future__ import annotations

from typing import Annotated, ClassVar

from pydantic import Field

from .registry import Entry, Float, PositiveFloat, registry_of

LOSSES, loss = registry_of("loss")

# What the targets of a loss are; synthetic data can make each kind.
CLASSES, VALUES, BINARY, DISTRIBUTION = "classes", "values", "binary", "distribution"
NONE = "none"  # a loss that reads no targets


def reads(kind: str, targets: str) -> bool:
    """Whether a loss or metric that reads `kind` targets can read the data's `targets`: element-wise
    ones (values) read any float targets; the others need their own kind."""
    return targets == kind or (kind == VALUES and targets in (BINARY, DISTRIBUTION))


class Loss(Entry):
    kind: ClassVar[str] = "loss"
    target: ClassVar[str]

    def template(self, backend: str) -> str:
        return f"losses/{backend}/{self.name}.py.j2"

    def accepts(self, data_kind: str) -> bool:
        return reads(self.target, data_kind)


@loss
class MSE(Loss):
    """Mean squared error: mean((prediction - target)²)."""

    name = "mse"
    target = VALUES


@loss
class MAE(Loss):
    """Mean absolute error: mean(|prediction - target|)."""

    name = "mae"
    target = VALUES


@loss
class Huber(Loss):
    """Huber: 0.5·x² where |x| ≤ delta, else delta·(|x| - 0.5·delta), with x = prediction - target."""

    name = "huber"
    positional = ("delta",)
    target = VALUES
    delta: PositiveFloat = 1.0


@loss
class SmoothL1(Loss):
    """Smooth L1: 0.5·x²/beta where |x| < beta, else |x| - 0.5·beta (Huber divided by beta)."""

    name = "smooth_l1"
    positional = ("beta",)
    target = VALUES
    beta: PositiveFloat = 1.0


@loss
class CrossEntropy(Loss):
    """Categorical cross-entropy against integer class labels. The output is read as logits
    (from_logits=true) or as probabilities (renormalized and clipped to [1e-7, 1 - 1e-7]).
    With label_smoothing ε the target puts 1 - ε on the class and ε spread over all classes; with
    class_weights w (PyTorch's definition), sample i's loss is (1 - ε)·w[yᵢ]·(-log pᵢ[yᵢ]) +
    (ε / C)·Σ_c w[c]·(-log pᵢ[c]), and the batch's loss is their sum divided by Σᵢ w[yᵢ]."""

    name = "cross_entropy"
    target = CLASSES
    from_logits: bool = True
    label_smoothing: Annotated[Float, Field(ge=0.0, lt=1.0)] = 0.0
    class_weights: list[PositiveFloat] | None = None

    def problem(self):
        return "class_weights needs at least two classes" if self.class_weights is not None and len(self.class_weights) < 2 else None

    @property
    def plain(self) -> bool:
        return self.from_logits and not self.label_smoothing and self.class_weights is None


@loss
class BinaryCrossEntropy(Loss):
    """Binary cross-entropy against 0/1 targets of the output's shape, per output value; the output
    is read as logits (from_logits=true) or probabilities (clipped to [1e-7, 1 - 1e-7])."""

    name = "binary_cross_entropy"
    target = BINARY
    from_logits: bool = True


@loss
class NLL(Loss):
    """Negative log-likelihood of integer class labels; the output holds log-probabilities (end the
    model with `log_softmax()`)."""

    name = "nll"
    target = CLASSES


@loss
class KLDivergence(Loss):
    """KL(target ‖ prediction) = Σ t·(log t - log p) per sample (0·log 0 = 0), averaged over the batch.
    The output is read as logits (from_logits=true) or probabilities (clipped below at 1e-7)."""

    name = "kl_divergence"
    target = DISTRIBUTION
    from_logits: bool = False


@loss
class CosineSimilarity(Loss):
    """Minus the cosine similarity of prediction and target along the last axis, averaged:
    -mean(p·t / (max(|p|, 1e-12)·max(|t|, 1e-12)))."""

    name = "cosine_similarity"
    target = VALUES


@loss
class Mean(Loss):
    """The mean of the output's values (over the batch and every value of a sample), read without
    targets: a term the model computes itself, such as the KL divergence of `kl_normal()`. One term
    of a list of per-output losses, e.g. `loss: [mse(out=recon), mean(out=kl, weight=0.001)]`."""

    name = "mean"
    example = "mean()"
    target = NONE

    def accepts(self, data_kind: str) -> bool:
        return True
