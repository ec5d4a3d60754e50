"""Convolutions over [channels, *spatial]. Padding is resolved here, per side, so both backends
receive numbers (EQUIVALENCE.md rule 3): `same` means TensorFlow's split (the odd pixel goes to
the bottom/right), written explicitly as `F.pad` in PyTorch and `ZeroPadding` in Keras."""

from __future__ import annotations

import math
import re
from typing import Annotated, ClassVar, Literal

from pydantic import BeforeValidator, Field

from ..registry import CallValue, Code, NonNegInt, PositiveInt, ShapeError, fmt_shape, fn, lit
from .base import (
    CHANNELS_LAST,
    LAYERS,
    SHAPE_NAMES,
    Layer,
    MaxNorm,
    Penalty,
    derive,
    init_weight_and_bias,
    initializer_args,
    want_rank,
)


def _tuple_of(n: int):
    def widen(v):
        return (v,) * n if isinstance(v, int) and not isinstance(v, bool) else v
    return widen


def _ints(n: int, lo: int):
    return Annotated[tuple[Annotated[int, Field(ge=lo)], ...], BeforeValidator(_tuple_of(n)), Field(min_length=n, max_length=n)]


AXES = {1: ("length",), 2: ("height", "width"), 3: ("depth", "height", "width")}


def want_map(shapes, dims: int | tuple[int, ...], what: str):
    """The input of a layer over `dims` spatial axes, or a ShapeError saying which shape it takes
    and, where there is one, the layer for the shape it got."""
    s, dims = shapes[0], (dims,) if isinstance(dims, int) else dims
    other, hint = re.sub(r"\dd$", f"{len(s) - 1}d", what), None
    if len(s) == 1:
        hint = f"a [features] vector has no spatial axis; as a sequence of one channel it is `reshape((1, {s[0]}))`"
    elif other != what and other in LAYERS:
        hint = f"for {SHAPE_NAMES.get(len(s), fmt_shape(s))} use `{other}`"
    return want_rank(shapes, tuple(d + 1 for d in dims), what, hint)


def per_axis(values):
    """A padding or cropping as Keras's layers take it: ZeroPadding1D the one axis's value, the
    2-D and 3-D ones a tuple with one per axis."""
    return values[0] if len(values) == 1 else tuple(values)


def torch_pad(x: str, pads) -> str:
    """`x` padded with zeros, `pads` (before, after) per spatial axis; F.pad lists the last axis
    first: (left, right, top, bottom)."""
    return f"F.pad({x}, {lit(tuple(p for lo_hi in reversed(pads) for p in lo_hi))})"


def keras_zero_padding(node, fresh, pads) -> tuple[str, str]:
    """The prelude step that pads the input with zeros, `pads` per spatial axis."""
    var = fresh(f"{node.name}_pad")
    return var, fn(f"layers.ZeroPadding{len(pads)}D", padding=per_axis(pads), name=var)


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

    def out_channels(self, channels: int) -> int:
        return self.filters

    def group_count(self, channels: int) -> int:
        return self.groups

    def problem(self):
        if isinstance(self.padding, tuple) and len(self.padding) != self.dims:
            return f"padding needs {self.dims} value(s), one per spatial axis, got {len(self.padding)}"
        if max(self.stride) > 1 and max(self.dilation) > 1:
            return "stride and dilation cannot both be above 1 (Keras cannot express it)"
        if getattr(self, "groups", 1) > 1 and self.filters % self.groups:
            return f"filters ({self.filters}) must be a multiple of groups ({self.groups})"
        return None

    def pads(self, spatial) -> list[tuple[int, int]]:
        pad = self.padding if isinstance(self.padding, str) else _tuple_of(self.dims)(self.padding)
        return [resolve_padding(pad if isinstance(pad, str) else pad[i], spatial[i], self.kernel[i], self.stride[i], self.dilation[i])
                for i in range(self.dims)]

    def infer(self, shapes):
        s = want_map(shapes, self.dims, self.name)
        groups = self.group_count(s[0])
        if s[0] % groups:
            raise ShapeError(f"{self.name} with groups={groups} needs input channels divisible by {groups}, got {s[0]}",
                             hint=f"give the layer before it a multiple of {groups} channels, or change `groups`")
        pads = self.pads(s[1:])
        out = tuple(out_size(s[1 + i], pads[i], self.kernel[i], self.stride[i], self.dilation[i]) for i in range(self.dims))
        if min(out) < 1:
            span = tuple((k - 1) * d + 1 for k, d in zip(self.kernel, self.dilation))
            raise ShapeError(f"{self.name} with kernel {_show(self.kernel)} leaves no output for the input {fmt_shape(s)}: "
                             f"the kernel spans {_show(span)} with its dilation, more than the padded input",
                             hint="use a smaller kernel or dilation, or `padding=same`")
        return (self.out_channels(s[0]), *out)

    def weights(self, shapes):
        c = shapes[0][0]
        w = {"weight": (self.out_channels(c), c // self.group_count(c), *self.kernel)}
        return w | {"bias": (self.out_channels(c),)} if self.bias else w

    def _symmetric(self, node) -> bool:
        return all(lo == hi for lo, hi in self.pads(node.in_shapes[0][1:]))

    def torch_padding(self, node):
        """The `padding=` of the PyTorch module; an asymmetric padding is done by `F.pad` instead."""
        return tuple(lo for lo, _ in self.pads(node.in_shapes[0][1:])) if self._symmetric(node) else 0

    def torch_module(self, node):
        c = node.in_shapes[0][0]
        return fn(f"nn.Conv{self.dims}d", c, self.out_channels(c), kernel_size=self.kernel, stride=self.stride,
                  padding=self.torch_padding(node), dilation=self.dilation, groups=self.group_count(c), bias=self.bias)

    def torch_forward(self, node, mod, xs):
        x = xs[0] if self._symmetric(node) else torch_pad(xs[0], self.pads(node.in_shapes[0][1:]))
        return f"{mod}({x})"

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
            layers.append(keras_zero_padding(node, fresh, pads))
        if any(crops):
            var = fresh(f"{node.name}_crop")
            layers.append((var, fn(f"layers.Cropping{self.dims}D", cropping=per_axis([(0, c) for c in crops]), name=var)))
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


def _show(v: tuple[int, ...]) -> str:
    return str(v[0]) if len(v) == 1 else str(v)


Padding = Literal["same", "valid"] | NonNegInt | tuple[NonNegInt, ...]
Call = str | CallValue | None  # an activation or initializer: a name, or a call with arguments


def _doc(template: str, d: int) -> str:
    axes = AXES[d]
    return template.format(d=d, axes=", ".join(axes), out=", ".join(f"{a}'" for a in axes))


def _window(d: int) -> dict:
    """The fields of a `d`-D convolution's window, for `derive`."""
    ints, ones = _ints(d, 1), (1,) * d
    return {"kernel": ints, "stride": (ints, ones), "padding": (Padding, "valid"), "dilation": (ints, ones)}


# The arguments every convolution ends with.
_TAIL = {"bias": (bool, True), "activation": (Call, None), "init": (Call, None), "l1": (Penalty, None), "l2": (Penalty, None)}


def _conv(d: int, example: str):
    return derive(_Conv, f"Conv{d}d", {"filters": PositiveInt, **_window(d), "groups": (PositiveInt, 1), **_TAIL, "max_norm": (MaxNorm, None)},
                  name=f"conv{d}d", dims=d, example=example, doc=_doc("{d}-D convolution: [channels, {axes}] → [filters, {out}].", d))


Conv1d = _conv(1, "conv1d(32, 3, padding=same)")
Conv2d = _conv(2, "conv2d(32, 3, padding=same)")
Conv3d = _conv(3, "conv3d(16, 3, padding=same)")


def _init_depthwise(node, target: str, channels: int, multiplier: int, kernel: tuple[int, ...]) -> str:
    """Initializes a PyTorch depthwise weight (C·M, 1, *k) seen as (M, C, *k), whose fans are Keras's
    (fan_in = k·C, fan_out = k·M), so both draw from one distribution. Orthogonal reads the weight
    as PyTorch lays it out."""
    if node.init.name == "orthogonal":
        return node.init.torch(target)
    view = f"{target}.view({channels}, {multiplier}, {', '.join(map(str, kernel))}).transpose(0, 1)"
    return node.init.torch(view) + "  # fans as Keras counts them"


def _depthwise_to_keras(w, channels: int, multiplier: int, dims: int):
    # (C·M, 1, *k) → (C, M, *k) → (*k, C, M): output channel c·M + m in both.
    return w.reshape(channels, multiplier, *w.shape[2:]).transpose(*range(2, 2 + dims), 0, 1)


def _depthwise_from_keras(k, dims: int):
    channels, multiplier = k.shape[-2:]
    return k.transpose(dims, dims + 1, *range(dims)).reshape(channels * multiplier, 1, *k.shape[:dims])


class _DepthwiseKeras:
    """What Keras's DepthwiseConv2D and SeparableConv2D share: TensorFlow's depthwise kernel takes one
    stride for both axes."""

    def problem(self):
        if self.dims == 2 and self.stride[0] != self.stride[1]:
            return f"stride {self.stride} must be the same on both axes (TensorFlow's depthwise convolution takes one)"
        return super().problem()

    def _keras_geometry(self, node):
        # An axis with one output position is trimmed to one window: any stride gives that window.
        pads, crops, _ = super()._keras_geometry(node)
        return pads, crops, (max(self.stride),) * self.dims


class _Depthwise(_DepthwiseKeras, _Conv):
    positional = ("kernel",)

    def out_channels(self, channels):
        return channels * self.multiplier

    def group_count(self, channels):
        return channels

    def torch_init(self, node, mod):
        c = node.in_shapes[0][0]
        lines = [_init_depthwise(node, f"{mod}.weight", c, self.multiplier, self.kernel)]
        return lines + ([f"nn.init.zeros_({mod}.bias)"] if self.bias else [])

    def keras_layer(self, node, layout):
        strides = self._keras_geometry(node)[2]
        return fn(f"layers.DepthwiseConv{self.dims}D", self.kernel, strides=strides, padding="valid",
                  depth_multiplier=self.multiplier, dilation_rate=self.dilation, use_bias=self.bias,
                  **initializer_args(node, self.bias, ("depthwise",)), name=node.name)

    def to_keras(self, node, w):
        return [_depthwise_to_keras(w["weight"], node.in_shapes[0][0], self.multiplier, self.dims)] + ([w["bias"]] if self.bias else [])

    def from_keras(self, node, ws):
        return {"weight": _depthwise_from_keras(ws[0], self.dims)} | ({"bias": ws[1]} if self.bias else {})


_DEPTHWISE_DOC = """Depthwise {d}-D convolution: each input channel is convolved with its own `multiplier`
filters and never mixed with the others: [channels, {axes}] → [channels · multiplier, {out}].
Output channel c · multiplier + m is filter m of channel c (PyTorch's `groups=channels`, Keras's
`DepthwiseConv{d}D`). Initializer fans are Keras's: fan_in = kernel size · channels, fan_out =
kernel size · multiplier. In 2-D the stride is one number for both axes (TensorFlow's depthwise
kernel takes one)."""


def _depthwise(d: int):
    return derive(_Depthwise, f"DepthwiseConv{d}d", {**_window(d), "multiplier": (PositiveInt, 1), **_TAIL},
                  name=f"depthwise_conv{d}d", dims=d, example=f"depthwise_conv{d}d(3, padding=same)", doc=_doc(_DEPTHWISE_DOC, d))


DepthwiseConv1d = _depthwise(1)
DepthwiseConv2d = _depthwise(2)


class _Separable(_DepthwiseKeras, _Conv):
    torch_classes = ("conv_separable",)

    def group_count(self, channels):
        return 1  # the shape rule's: the depthwise step groups by channel, which always divides

    def weights(self, shapes):
        c, k = shapes[0][0], self.kernel
        w = {"depthwise.weight": (c * self.multiplier, 1, *k), "pointwise.weight": (self.filters, c * self.multiplier, *(1,) * self.dims)}
        return w | {"pointwise.bias": (self.filters,)} if self.bias else w

    def torch_module(self, node):
        return fn("SeparableConv", Code(f"nn.Conv{self.dims}d"), node.in_shapes[0][0], self.filters, kernel_size=self.kernel,
                  stride=self.stride, padding=self.torch_padding(node), dilation=self.dilation, multiplier=self.multiplier,
                  bias=self.bias)

    def torch_init(self, node, mod):
        c = node.in_shapes[0][0]
        lines = [_init_depthwise(node, f"{mod}.depthwise.weight", c, self.multiplier, self.kernel), node.init.torch(f"{mod}.pointwise.weight")]
        return lines + ([f"nn.init.zeros_({mod}.pointwise.bias)"] if self.bias else [])

    def keras_layer(self, node, layout):
        strides = self._keras_geometry(node)[2]
        return fn(f"layers.SeparableConv{self.dims}D", self.filters, self.kernel, strides=strides, padding="valid",
                  depth_multiplier=self.multiplier, dilation_rate=self.dilation, use_bias=self.bias,
                  **initializer_args(node, self.bias, ("depthwise", "pointwise")), name=node.name)

    def to_keras(self, node, w):
        c, d = node.in_shapes[0][0], self.dims
        pointwise = w["pointwise.weight"].transpose(*range(2, 2 + d), 1, 0)
        return [_depthwise_to_keras(w["depthwise.weight"], c, self.multiplier, d), pointwise] + ([w["pointwise.bias"]] if self.bias else [])

    def from_keras(self, node, ws):
        d = self.dims
        w = {"depthwise.weight": _depthwise_from_keras(ws[0], d), "pointwise.weight": ws[1].transpose(d + 1, d, *range(d))}
        return w | ({"pointwise.bias": ws[2]} if self.bias else {})


_SEPARABLE_DOC = """Depthwise separable {d}-D convolution: a depthwise convolution (`multiplier` filters per
input channel, no bias) then a pointwise 1×1 convolution to `filters` channels, with the one
bias: [channels, {axes}] → [filters, {out}] (Keras's `SeparableConv{d}D`). Weights
`depthwise.weight` [channels · multiplier, 1, *kernel], `pointwise.weight` and `pointwise.bias`;
`init` initializes both kernels (the depthwise one with Keras's fans, as `depthwise_conv{d}d`). In 2-D
the stride is one number for both axes, as for `depthwise_conv2d`."""


def _separable(d: int):
    return derive(_Separable, f"SeparableConv{d}d", {"filters": PositiveInt, **_window(d), "multiplier": (PositiveInt, 1), **_TAIL},
                  name=f"separable_conv{d}d", dims=d, example=f"separable_conv{d}d(32, 3, padding=same)", doc=_doc(_SEPARABLE_DOC, d))


SeparableConv1d = _separable(1)
SeparableConv2d = _separable(2)


class _ConvTranspose(Layer):
    """Shared by conv_transpose1d/2d. Each axis is described by (lo, hi): how much of the full
    output, (in − 1)·stride + kernel long, is cut at the start and at the end (hi < 0: zeros are
    added at the end, as PyTorch's output_padding does beyond the full output)."""

    dims: ClassVar[int]
    positional = ("filters", "kernel")
    keras_layout = CHANNELS_LAST

    def problem(self):
        for arg in ("padding", "output_size"):
            v = getattr(self, arg)
            if isinstance(v, tuple) and len(v) != self.dims:
                return f"{arg} needs {self.dims} value(s), one per spatial axis, got {len(v)}"
        if any(op >= s for op, s in zip(self.output_padding, self.stride)):
            return f"output_padding {_show(self.output_padding)} must be smaller than the stride {_show(self.stride)} on each axis"
        if self.padding == "same" and any(self.output_padding):
            return "`padding=same` fixes the output size (input · stride); output_padding cannot be added to it"
        if self.output_size is not None and any(self.output_padding):
            return "give `output_size` or `output_padding`, not both (output_size chooses the output_padding)"
        return None

    def _numeric_padding(self, i: int) -> int:
        """The padding of axis i where it is a number (or `valid`, 0)."""
        return 0 if self.padding == "valid" else _tuple_of(self.dims)(self.padding)[i]

    def crops(self, spatial) -> list[tuple[int, int]]:
        out = []
        for i, n in enumerate(spatial):
            k, s = self.kernel[i], self.stride[i]
            if self.padding == "same":  # out = in · stride; TensorFlow's split: the odd cell is cut at the end
                t = k - s
                out.append((t // 2, t - t // 2) if t >= 0 else (0, t))
                continue
            p = self._numeric_padding(i)
            op = self.output_padding[i] if self.output_size is None else self.output_size[i] - ((n - 1) * s - 2 * p + k)
            out.append((p, p - op))
        return out

    def infer(self, shapes):
        s = want_map(shapes, self.dims, self.name)
        out = []
        for i, ((lo, hi), n) in enumerate(zip(self.crops(s[1:]), s[1:])):
            k, st = self.kernel[i], self.stride[i]
            size = (n - 1) * st + k - lo - hi
            if self.output_size is not None and size != self.output_size[i] or not 0 <= lo - hi < st and self.padding != "same":
                self._cannot_produce(s, i)
            if size < 1:
                raise ShapeError(f"{self.name}: padding {lo} on both sides of the {AXES[self.dims][i]} leaves no output "
                                 f"from an input of {n} (the output is (in − 1)·stride − 2·padding + kernel = {size})",
                                 hint="use a smaller padding, or `padding=same` for an output of input · stride")
            out.append(size)
        return (self.filters, *out)

    def _cannot_produce(self, s, i):
        axis, n, k, st, want = AXES[self.dims][i], s[1 + i], self.kernel[i], self.stride[i], self.output_size[i]
        if self.padding == "same":
            raise ShapeError(f"{self.name} with `padding=same` makes the {axis} input · stride = {n} · {st} = {n * st}, "
                             f"not the output_size {want}", hint="leave out output_size, or give a number as padding")
        p = self._numeric_padding(i)
        base = (n - 1) * st - 2 * p + k
        can = str(base) if st == 1 else f"{base} to {base + st - 1}"
        raise ShapeError(f"{self.name} cannot make a {axis} of {want} from {n}: with kernel {k}, stride {st} and padding {p} "
                         f"it makes {can} ((in − 1)·stride − 2·padding + kernel, plus output_padding below the stride)",
                         hint="change padding (each step of 1 removes 2) or the kernel, or crop the result with `crop2d`")

    def weights(self, shapes):
        w = {"weight": (shapes[0][0], self.filters, *self.kernel)}
        return w | {"bias": (self.filters,)} if self.bias else w

    def torch_module(self, node):
        crops = self.crops(node.in_shapes[0][1:])
        return fn(f"nn.ConvTranspose{self.dims}d", node.in_shapes[0][0], self.filters, kernel_size=self.kernel, stride=self.stride,
                  padding=tuple(lo for lo, _ in crops), output_padding=tuple(max(lo - hi, 0) for lo, hi in crops), bias=self.bias)

    def torch_forward(self, node, mod, xs):
        crops = self.crops(node.in_shapes[0][1:])
        if all(hi <= lo for lo, hi in crops):
            return f"{mod}({xs[0]})"
        # PyTorch cuts `padding` on both sides; `same` may cut one more at the end.
        return f"{mod}({xs[0]})[:, :, {', '.join(f':{lo - hi}' if hi > lo else ':' for lo, hi in crops)}]"

    def torch_init(self, node, mod):
        return init_weight_and_bias(node, mod, self.bias)

    def _keras_conv(self, node):
        # `valid` with an explicit output_padding: the full output, and zeros after it where PyTorch adds them.
        extra = tuple(max(-hi, 0) for _, hi in self.crops(node.in_shapes[0][1:]))
        return fn(f"layers.Conv{self.dims}DTranspose", self.filters, self.kernel, strides=self.stride, padding="valid",
                  output_padding=extra, use_bias=self.bias, **initializer_args(node, self.bias), name=node.name)

    def _keras_cropping(self, node):
        cuts = [(lo, max(hi, 0)) for lo, hi in self.crops(node.in_shapes[0][1:])]
        return per_axis(cuts) if any(lo or hi for lo, hi in cuts) else None

    # With a cropping, the convolution (named after the node: it holds the weights) is applied in
    # the prelude, and the cropping, which gives the node's output, in `keras_call`.
    def keras_prelude(self, node, fresh):
        return [] if self._keras_cropping(node) is None else [(fresh(f"{node.name}_full"), self._keras_conv(node))]

    def keras_layer(self, node, layout):
        return self._keras_conv(node)

    def keras_call(self, node, layer, xs, fresh):
        cropping = self._keras_cropping(node)
        if cropping is None:
            return f"{layer}({xs[0]})"
        crop = fresh(f"{node.name}_crop")
        return f"{fn(f'layers.Cropping{self.dims}D', cropping=cropping, name=crop)}({xs[0]})"

    # PyTorch (in, out, *k) ↔ Keras (*k, out, in): the same permutation as a convolution's.
    to_keras = _Conv.to_keras
    from_keras = _Conv.from_keras


_TRANSPOSE_DOC = """Transposed {d}-D convolution (the gradient of a convolution; upsamples by `stride`):
[channels, {axes}] → [filters, {out}], each output size being PyTorch's
(in − 1)·stride − 2·padding + kernel + output_padding, with 0 ≤ output_padding < stride.
`padding=same` means an output of exactly in · stride (kernel − stride cells are cut from the
full output, the odd one at the end, as TensorFlow does). `output_size` names the size you want
and chooses output_padding, or says which sizes the layer can make. Weight [channels, filters,
*kernel], PyTorch's layout. No dilation: TensorFlow's CPU kernels cannot dilate it."""


def _transpose(d: int):
    ints = _ints(d, 1)
    return derive(_ConvTranspose, f"ConvTranspose{d}d",
                  {"filters": PositiveInt, "kernel": ints, "stride": (ints, (1,) * d), "padding": (Padding, "valid"),
                   "output_padding": (_ints(d, 0), (0,) * d), "output_size": (ints | None, None), **_TAIL},
                  name=f"conv_transpose{d}d", dims=d, example=f"conv_transpose{d}d(16, 4, stride=2, padding=1)",
                  doc=_doc(_TRANSPOSE_DOC, d))


ConvTranspose1d = _transpose(1)
ConvTranspose2d = _transpose(2)
