"""Normalization and dropout. Epsilon and momentum are fixed by dlspec and printed in both outputs
(EQUIVALENCE.md trap 5): `momentum` is PyTorch's, the weight of the new batch statistic; Keras
receives 1 − momentum. Every normalization here divides by sqrt(variance + eps), with the biased
variance of what it normalizes, in both frameworks."""

from __future__ import annotations

import math
from typing import Annotated, ClassVar

from pydantic import BeforeValidator, Field

from ..registry import PositiveFloat, PositiveInt, Rate, ShapeError, fmt_shape, fn
from .base import CHANNELS_LAST, LOGICAL, Layer, keras_axis, layer

_CHANNEL_SHAPES = {1: "[C]", 2: "[C, L]", 3: "[C, H, W]", 4: "[C, D, H, W]"}


def _channels_first(shapes, ranks: tuple[int, ...], what: str, hint: str | None = None):
    s = shapes[0]
    if len(s) not in ranks:
        wanted = ", ".join(_CHANNEL_SHAPES[r] for r in ranks[:-1]) + f" or {_CHANNEL_SHAPES[ranks[-1]]}"
        raise ShapeError(f"{what} expects an input of shape {wanted} (channels first), got {fmt_shape(s)}", hint)
    return s


def _affine(shapes):
    c = shapes[0][0]
    return {"weight": (c,), "bias": (c,)}


class _Norm(Layer):
    """Keras's gamma and beta (and moving statistics) are PyTorch's weight and bias (and running
    ones): the same arrays, in the order of `keras_weights`."""

    keras_weights: ClassVar[tuple[str, ...]] = ("weight", "bias")

    def to_keras(self, node, w):
        return [w[k] for k in self.keras_weights if k in w]  # none without an affine transform

    def from_keras(self, node, ws):
        return dict(zip(self.keras_weights, ws))


@layer
class BatchNorm(_Norm):
    """Normalizes each channel over the batch (and spatial positions): [C], [C, L], [C, H, W] or
    [C, D, H, W]. In training, the batch's own statistics normalize it (biased variance) and update
    the running ones with PyTorch's rule: running = (1 − momentum)·running + momentum·batch, with
    the unbiased variance (n/(n − 1)); Keras's output carries a small subclass doing the same."""

    name = "batchnorm"
    keras_layout = CHANNELS_LAST
    eps: PositiveFloat = 1e-5
    momentum: Rate = 0.1

    def problem(self):
        return None if self.momentum > 0 else "momentum must be above 0"

    def infer(self, shapes):
        return _channels_first(shapes, (1, 2, 3, 4), "batchnorm")

    def weights(self, shapes):
        return _affine(shapes)

    def buffers(self, shapes):
        c = shapes[0][0]
        return {"running_mean": (c,), "running_var": (c,)}

    def torch_module(self, node):
        kind = {1: "1d", 2: "1d", 3: "2d", 4: "3d"}[len(node.in_shapes[0])]
        return fn(f"nn.BatchNorm{kind}", node.in_shapes[0][0], eps=self.eps, momentum=self.momentum)

    keras_classes = ("norm_batchnorm",)  # PyTorch's unbiased running variance (EQUIVALENCE.md trap 5)
    keras_weights = ("weight", "bias", "running_mean", "running_var")

    def keras_layer(self, node, layout):
        return fn("BatchNorm", axis=-1, epsilon=self.eps, momentum=round(1.0 - self.momentum, 12), name=node.name)


def _axes(v):
    return (v,) if isinstance(v, int) and not isinstance(v, bool) else v


@layer
class LayerNorm(_Norm):
    """Normalizes each example over `axes` (its last axis unless given), with a learned scale and
    shift of the normalized axes' shape. The axes must be the trailing ones (PyTorch's LayerNorm
    normalizes the last dimensions): `axes=(-2, -1)`, or `axes=(0, 1, 2)` for all of a [C, H, W]."""

    name = "layernorm"
    keras_layout = LOGICAL  # Keras normalizes the same (channels-first) axes, so its gamma has torch's shape
    axes: Annotated[tuple[int, ...], BeforeValidator(_axes), Field(min_length=1)] = (-1,)
    eps: PositiveFloat = 1e-5

    def normalized(self, shape) -> tuple[int, ...]:
        """The normalized axes, counted from 0, ascending."""
        rank = len(shape)
        for a in self.axes:
            if not -rank <= a < rank:
                raise ShapeError(f"layernorm axis {a} is out of range for an input of shape {fmt_shape(shape)}",
                                 hint=f"axes count from 0 (or from -1 at the end) without the batch; this input has {rank}")
        axes = sorted({a % rank for a in self.axes})
        if len(axes) != len(self.axes):
            raise ShapeError(f"layernorm axes {self.axes} name the same axis twice for an input of shape {fmt_shape(shape)}")
        if axes != list(range(rank - len(axes), rank)):
            want = tuple(range(-len(axes), 0))
            perm = tuple([a for a in range(rank) if a not in axes] + axes)
            raise ShapeError(f"layernorm normalizes trailing axes only; axes {self.axes} of {fmt_shape(shape)} are not the last {len(axes)}",
                             hint=f"PyTorch's LayerNorm normalizes the last dimensions: move these axes to the end first, "
                                  f"`permute({perm}) -> layernorm(axes={want})`")
        return tuple(axes)

    def infer(self, shapes):
        self.normalized(shapes[0])
        return shapes[0]

    def weights(self, shapes):
        d = tuple(shapes[0][a] for a in self.normalized(shapes[0]))
        return {"weight": d, "bias": d}

    def torch_module(self, node):
        d = self.weights(node.in_shapes)["weight"]
        return fn("nn.LayerNorm", d[0] if len(d) == 1 else d, eps=self.eps)

    def keras_layer(self, node, layout):
        s = node.in_shapes[0]
        axes = self.normalized(s)
        axis = -1 if len(axes) == 1 else tuple(keras_axis(a, len(s), LOGICAL) for a in axes)
        return fn("layers.LayerNormalization", axis=axis, epsilon=self.eps, name=node.name)


@layer
class GroupNorm(_Norm):
    """Splits the C channels into `groups` groups of C/groups consecutive channels and normalizes
    each group of each example over its channels and positions, then scales and shifts each
    channel (learned, per channel): [C] or [C, *spatial]."""

    name = "groupnorm"
    positional = ("groups",)
    example = "groupnorm(4)"
    keras_layout = CHANNELS_LAST
    groups: PositiveInt
    eps: PositiveFloat = 1e-5

    def infer(self, shapes):
        s = _channels_first(shapes, (1, 2, 3, 4), "groupnorm")
        if s[0] % self.groups:
            fits = [g for g in range(1, s[0] + 1) if s[0] % g == 0]
            raise ShapeError(f"groupnorm({self.groups}) needs a channel count divisible by {self.groups}, but the input "
                             f"{fmt_shape(s)} has {s[0]} channels",
                             hint=f"groups must divide the channels: {s[0]} channels allow groups {', '.join(map(str, fits))}")
        return s

    def weights(self, shapes):
        return _affine(shapes)

    def torch_module(self, node):
        return fn("nn.GroupNorm", self.groups, node.in_shapes[0][0], eps=self.eps, affine=True)

    def keras_layer(self, node, layout):
        return fn("layers.GroupNormalization", groups=self.groups, axis=-1, epsilon=self.eps, center=True, scale=True,
                  name=node.name)


@layer
class InstanceNorm(_Norm):
    """Normalizes each channel of each example over its positions ([C, L], [C, H, W] or
    [C, D, H, W]), then, with `affine`, scales and shifts each channel (learned). It keeps no
    running statistics: inference normalizes exactly as training does. Group norm with one
    channel per group."""

    name = "instancenorm"
    keras_layout = CHANNELS_LAST
    eps: PositiveFloat = 1e-5
    affine: bool = True

    def infer(self, shapes):
        s = _channels_first(shapes, (2, 3, 4), "instancenorm",
                            hint="instancenorm normalizes each channel over its positions; a [C] input has one per channel")
        if math.prod(s[1:]) == 1:  # PyTorch refuses it in training; the output would be the shift alone
            raise ShapeError(f"instancenorm needs more than one position per channel, but the input {fmt_shape(s)} has one",
                             hint="normalize over channels instead, e.g. layernorm(axes=(0, 1)) or groupnorm(1)")
        return s

    def weights(self, shapes):
        return _affine(shapes) if self.affine else {}

    def torch_module(self, node):
        s = node.in_shapes[0]
        return fn(f"nn.InstanceNorm{len(s) - 1}d", s[0], eps=self.eps, affine=self.affine, track_running_stats=False)

    def keras_layer(self, node, layout):
        return fn("layers.GroupNormalization", groups=node.in_shapes[0][0], axis=-1, epsilon=self.eps,
                  center=self.affine, scale=self.affine, name=node.name)


@layer
class Dropout(Layer):
    """Zeroes each element with probability `rate` in training (scaling the rest by 1/(1−rate));
    the identity in inference."""

    name = "dropout"
    positional = ("rate",)
    example = "dropout(0.5)"
    rate: Rate

    def torch_module(self, node):
        return fn("nn.Dropout", p=self.rate)

    def keras_layer(self, node, layout):
        return fn("layers.Dropout", self.rate, name=node.name)
