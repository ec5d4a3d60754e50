"""Normalization and dropout. Epsilon and momentum are fixed by dlspec and printed in both outputs
(EQUIVALENCE.md trap 5): `momentum` is PyTorch's, the weight of the new batch statistic; Keras
receives 1 − momentum."""

from __future__ import annotations

from ..registry import PositiveFloat, Rate, fn
from .base import CHANNELS_LAST, LOGICAL, Layer, layer, want_rank


@layer
class BatchNorm(Layer):
    """Normalizes each channel over the batch (and spatial positions): [C], [C, L] or [C, H, W]."""

    name = "batchnorm"
    keras_layout = CHANNELS_LAST
    eps: PositiveFloat = 1e-5
    momentum: Rate = 0.1

    def problem(self):
        return None if self.momentum > 0 else "momentum must be above 0"

    def infer(self, shapes):
        return want_rank(shapes, (1, 2, 3), "batchnorm")

    def weights(self, shapes):
        c = shapes[0][0]
        return {"weight": (c,), "bias": (c,)}

    def buffers(self, shapes):
        c = shapes[0][0]
        return {"running_mean": (c,), "running_var": (c,)}

    def torch_module(self, node):
        kind = "2d" if len(node.in_shapes[0]) == 3 else "1d"
        return fn(f"nn.BatchNorm{kind}", node.in_shapes[0][0], eps=self.eps, momentum=self.momentum)

    def keras_layer(self, node, layout):
        return fn("layers.BatchNormalization", axis=-1, epsilon=self.eps, momentum=round(1.0 - self.momentum, 12), name=node.name)

    def to_keras(self, node, w):
        return [w["weight"], w["bias"], w["running_mean"], w["running_var"]]

    def from_keras(self, node, ws):
        return dict(zip(("weight", "bias", "running_mean", "running_var"), ws))


@layer
class LayerNorm(Layer):
    """Normalizes each position over its last axis (features), with a learned scale and shift."""

    name = "layernorm"
    keras_layout = LOGICAL
    eps: PositiveFloat = 1e-5

    def weights(self, shapes):
        d = shapes[0][-1]
        return {"weight": (d,), "bias": (d,)}

    def torch_module(self, node):
        return fn("nn.LayerNorm", node.in_shapes[0][-1], eps=self.eps)

    def keras_layer(self, node, layout):
        return fn("layers.LayerNormalization", axis=-1, epsilon=self.eps, name=node.name)

    def to_keras(self, node, w):
        return [w["weight"], w["bias"]]

    def from_keras(self, node, ws):
        return {"weight": ws[0], "bias": ws[1]}


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


