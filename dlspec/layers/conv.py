"""Convolutions over [channels, *spatial]. Padding is resolved here, per side, so both backends
receive numbers (EQUIVALENCE.md rule 3): `same` means TensorFlow's split (the odd pixel goes to
the bottom/right), written explicitly as `F.pad` in PyTorch and `ZeroPadding` in Keras."""

from __future__ import annotations

import math
from typing import Annotated, ClassVar, Literal

from pydantic import BeforeValidator, Field

from ..registry import CallValue, NonNegInt, PositiveInt, ShapeError, fmt_shape, fn, lit
from .base import CHANNELS_LAST, Layer, init_weight_and_bias, initializer_args, layer, want_rank


def _tuple_of(n: int):
    def widen(v):
        return (v,) * n if isinstance(v, int) and not isinstance(v, bool) else v
    return widen


def _ints(n: int, lo: int):
    return Annotated[tuple[Annotated[int, Field(ge=lo)], ...], BeforeValidator(_tuple_of(n)), Field(min_length=n, max_length=n)]


def resolve_padding(padding, size: int, kernel: int, stride: int, dilation: int) -> tuple[int, int]:
    if padding == "valid":
        return 0, 0
    if padding == "same":
        out = math.ceil(size / stride)
        total = max((out - 1) * stride + (kernel - 1) * dilation + 1 - size, 0)
        return total // 2, total - total // 2
    return padding, padding


def out_size(size: int, pads: tuple[int, int], kernel: int, stride: int, dilation: int) -> int:
    return (size + pads[0] + pads[1] - dilation * (kernel - 1) - 1) // stride + 1


class _Conv(Layer):
    dims: ClassVar[int]
    positional = ("filters", "kernel")
    keras_layout = CHANNELS_LAST

    def problem(self):
        if isinstance(self.padding, tuple) and len(self.padding) != self.dims:
            return f"padding needs {self.dims} value(s), one per spatial axis, got {len(self.padding)}"
        if max(self.stride) > 1 and max(self.dilation) > 1:
            return "stride and dilation cannot both be above 1 (Keras cannot express it)"
        if self.filters % self.groups:
            return f"filters ({self.filters}) must be a multiple of groups ({self.groups})"
        return None

    def pads(self, spatial) -> list[tuple[int, int]]:
        pad = self.padding if isinstance(self.padding, str) else _tuple_of(self.dims)(self.padding)
        return [resolve_padding(pad if isinstance(pad, str) else pad[i], spatial[i], self.kernel[i], self.stride[i], self.dilation[i])
                for i in range(self.dims)]

    def infer(self, shapes):
        s = want_rank(shapes, (self.dims + 1,), f"conv{self.dims}d")
        if s[0] % self.groups:
            raise ShapeError(f"conv{self.dims}d with groups={self.groups} needs input channels divisible by {self.groups}, got {s[0]}")
        pads = self.pads(s[1:])
        out = tuple(out_size(s[1 + i], pads[i], self.kernel[i], self.stride[i], self.dilation[i]) for i in range(self.dims))
        if min(out) < 1:
            raise ShapeError(f"conv{self.dims}d with kernel {self.kernel} leaves no output for the input {fmt_shape(s)}",
                             hint="use a smaller kernel or `padding=same`")
        return (self.filters, *out)

    def weights(self, shapes):
        w = {"weight": (self.filters, shapes[0][0] // self.groups, *self.kernel)}
        return w | {"bias": (self.filters,)} if self.bias else w

    def _symmetric(self, node) -> bool:
        return all(lo == hi for lo, hi in self.pads(node.in_shapes[0][1:]))

    def torch_module(self, node):
        pads = self.pads(node.in_shapes[0][1:])
        padding = tuple(lo for lo, _ in pads) if self._symmetric(node) else 0
        return fn(f"nn.Conv{self.dims}d", node.in_shapes[0][0], self.filters, kernel_size=self.kernel, stride=self.stride,
                  padding=padding, dilation=self.dilation, groups=self.groups, bias=self.bias)

    def torch_forward(self, node, mod, xs):
        if self._symmetric(node):
            return f"{mod}({xs[0]})"
        # F.pad lists the last axis first: (left, right, top, bottom).
        flat = tuple(p for lo_hi in reversed(self.pads(node.in_shapes[0][1:])) for p in lo_hi)
        return f"{mod}(F.pad({xs[0]}, {lit(flat)}))"

    def torch_init(self, node, mod):
        return init_weight_and_bias(node, mod, self.bias)

    def _keras_geometry(self, node) -> tuple[list[tuple[int, int]], list[int], tuple[int, ...]]:
        """(padding per side, cropping at the end, strides) of the Keras rendering. An axis with one
        output position takes its one window at stride 1, trimming the padded input to the window:
        TensorFlow 2.21's float32 CPU Conv2D (oneDNN) returns wrong numbers for one input channel,
        height stride 1 and a width stride above 1 that leaves one output column."""
        size, pads, crops, strides = node.in_shapes[0][1:], self.pads(node.in_shapes[0][1:]), [0] * self.dims, list(self.stride)
        for i, out in enumerate(node.shape[1:]):
            if out == 1 and strides[i] > 1:
                (lo, hi), extra = pads[i], size[i] + sum(pads[i]) - (self.kernel[i] - 1) * self.dilation[i] - 1
                pads[i], crops[i], strides[i] = (lo, hi - min(extra, hi)), extra - min(extra, hi), 1
        return pads, crops, tuple(strides)

    def keras_prelude(self, node, fresh):
        pads, crops, _ = self._keras_geometry(node)
        layers = []
        if any(p for lo_hi in pads for p in lo_hi):
            var = fresh(f"{node.name}_pad")
            layers.append((var, fn(f"layers.ZeroPadding{self.dims}D", padding=pads[0] if self.dims == 1 else tuple(pads), name=var)))
        if any(crops):
            var = fresh(f"{node.name}_crop")
            cropping = (0, crops[0]) if self.dims == 1 else tuple((0, c) for c in crops)
            layers.append((var, fn(f"layers.Cropping{self.dims}D", cropping=cropping, name=var)))
        return layers

    def keras_layer(self, node, layout):
        strides = self._keras_geometry(node)[2]
        return fn(f"layers.Conv{self.dims}D", self.filters, self.kernel, strides=strides, padding="valid",
                   dilation_rate=self.dilation, groups=self.groups, use_bias=self.bias,
                   **initializer_args(node, self.bias), name=node.name)

    # PyTorch (out, in, *k) ↔ Keras (*k, in, out).
    def to_keras(self, node, w):
        perm = (*range(2, 2 + self.dims), 1, 0)
        return [w["weight"].transpose(perm)] + ([w["bias"]] if self.bias else [])

    def from_keras(self, node, ws):
        perm = (self.dims + 1, self.dims, *range(self.dims))
        return {"weight": ws[0].transpose(perm)} | ({"bias": ws[1]} if self.bias else {})


Padding = Literal["same", "valid"] | NonNegInt | tuple[NonNegInt, ...]


@layer
class Conv1d(_Conv):
    """1-D convolution: [channels, length] → [filters, length']."""

    name = "conv1d"
    dims = 1
    example = "conv1d(32, 3, padding=same)"
    filters: PositiveInt
    kernel: _ints(1, 1)
    stride: _ints(1, 1) = (1,)
    padding: Padding = "valid"
    dilation: _ints(1, 1) = (1,)
    groups: PositiveInt = 1
    bias: bool = True
    activation: str | CallValue | None = None
    init: str | CallValue | None = None


@layer
class Conv2d(_Conv):
    """2-D convolution: [channels, height, width] → [filters, height', width']."""

    name = "conv2d"
    dims = 2
    example = "conv2d(32, 3, padding=same)"
    filters: PositiveInt
    kernel: _ints(2, 1)
    stride: _ints(2, 1) = (1, 1)
    padding: Padding = "valid"
    dilation: _ints(2, 1) = (1, 1)
    groups: PositiveInt = 1
    bias: bool = True
    activation: str | CallValue | None = None
    init: str | CallValue | None = None


