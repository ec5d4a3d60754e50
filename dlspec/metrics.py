"""Metrics. Each is one numpy formula (backends/templates/_metrics.py.j2), the same text in both
outputs, applied to the model's outputs in inference mode: the figures cannot differ by framework."""

from __future__ import annotations

from typing import ClassVar, Literal

from .losses import BINARY, CLASSES, VALUES, reads
from .registry import Entry, PositiveInt, registry_of

METRICS, metric = registry_of("metric")


class Metric(Entry):
    kind: ClassVar[str] = "metric"
    task: ClassVar[str]
    per_epoch: ClassVar[bool] = True  # a number logged every epoch (else only in the final report)

    @property
    def key(self) -> str:
        return self.name


@metric
class Accuracy(Metric):
    """The fraction of samples whose highest output is the true class."""

    name = "accuracy"
    task = CLASSES


@metric
class TopK(Metric):
    """The fraction of samples whose true class is among the k highest outputs."""

    name = "top_k"
    positional = ("k",)
    task = CLASSES
    k: PositiveInt = 5

    @property
    def key(self):
        return f"top{self.k}_accuracy"


class _PerClass(Metric):
    positional = ("average",)
    task = CLASSES
    average: Literal["macro", "micro"] = "macro"

    @property
    def key(self):
        return f"{self.name}_{self.average}"


@metric
class Precision(_PerClass):
    """Of the samples predicted as a class, the fraction that belong to it: per class then averaged
    (macro), or over all predictions (micro, which equals accuracy for single-label data)."""

    name = "precision"


@metric
class Recall(_PerClass):
    """Of the samples of a class, the fraction predicted as it; macro or micro averaged."""

    name = "recall"


@metric
class F1(_PerClass):
    """The harmonic mean of precision and recall, per class then averaged (macro), or micro."""

    name = "f1"


@metric
class ConfusionMatrix(Metric):
    """Counts of (true class, predicted class) pairs; in the final report (metrics.json) only."""

    name = "confusion_matrix"
    task = CLASSES
    per_epoch = False


@metric
class MAE(Metric):
    """Mean absolute error of the outputs."""

    name = "mae"
    task = VALUES


@metric
class MSE(Metric):
    """Mean squared error of the outputs."""

    name = "mse"
    task = VALUES


@metric
class R2(Metric):
    """The coefficient of determination, 1 - SSE / SST, over all output values."""

    name = "r2"
    task = VALUES


@metric
class AUROC(Metric):
    """Area under the ROC curve for 0/1 targets (ties counted half), averaged over output units."""

    name = "auroc"
    task = BINARY


def fits(m: Metric, targets: str) -> bool:
    return reads(m.task, targets)
