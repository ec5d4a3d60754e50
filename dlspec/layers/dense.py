"""Dense (fully connected) and embedding layers."""

from __future__ import annotations

from ..registry import CallValue, Code, PositiveInt, ShapeError, fmt_shape, fn
from .base import LOGICAL, Layer, MaxNorm, Penalty, init_weight_and_bias, initializer_args, layer


@layer
class Dense(Layer):
    """y = x Wᵀ + b over the last axis of a [features] or [steps, features] input."""

    name = "dense"
    positional = ("units",)
    example = "dense(10)"
    keras_layout = LOGICAL
    units: PositiveInt
    bias: bool = True
    activation: str | CallValue | None = None
    init: str | CallValue | None = None
    l1: Penalty = None
    l2: Penalty = None
    max_norm: MaxNorm = None

    def infer(self, shapes):
        s = shapes[0]
        if len(s) not in (1, 2):
            # Not per-position: on [C, H, W] PyTorch's Linear would mix the widths, Keras's Dense
            # (channels last) the channels. Neither guess is the spec's, so say what to write.
            per_position = f"; to mix the channels at each position, use `conv{len(s) - 1}d({self.units}, 1)`" if len(s) <= 4 else ""
            raise ShapeError(f"dense expects [features] or [steps, features], got the feature map {fmt_shape(s)}",
                             hint=f"add `flatten()` (or `global_avgpool()`) before `dense`{per_position}")
        return (*s[:-1], self.units)

    def weights(self, shapes):
        w = {"weight": (self.units, shapes[0][-1])}
        return w | {"bias": (self.units,)} if self.bias else w

    def torch_module(self, node):
        return fn("nn.Linear", node.in_shapes[0][-1], self.units, bias=self.bias)

    def torch_init(self, node, mod):
        return init_weight_and_bias(node, mod, self.bias)

    def keras_layer(self, node, layout):
        return fn("layers.Dense", self.units, use_bias=self.bias, **initializer_args(node, self.bias), name=node.name)

    def to_keras(self, node, w):
        return [w["weight"].T] + ([w["bias"]] if self.bias else [])

    def from_keras(self, node, ws):
        return {"weight": ws[0].T} | ({"bias": ws[1]} if self.bias else {})


@layer
class Embedding(Layer):
    """Looks up a `dim`-vector for each integer token id in [0, vocab): [steps] → [steps, dim]."""

    name = "embedding"
    positional = ("vocab", "dim")
    example = "embedding(10000, 64)"
    keras_layout = LOGICAL
    int_input = True
    vocab: PositiveInt
    dim: PositiveInt
    init: str | CallValue | None = None
    l1: Penalty = None
    l2: Penalty = None

    def infer(self, shapes):
        return (*shapes[0], self.dim)

    def weights(self, shapes):
        return {"weight": (self.vocab, self.dim)}

    def torch_module(self, node):
        return fn("nn.Embedding", self.vocab, self.dim)

    def torch_init(self, node, mod):
        return [node.init.torch(f"{mod}.weight")]

    def keras_layer(self, node, layout):
        return fn("layers.Embedding", self.vocab, self.dim, embeddings_initializer=Code(node.init.keras()), name=node.name)

    def to_keras(self, node, w):
        return [w["weight"]]

    def from_keras(self, node, ws):
        return {"weight": ws[0]}

