"""Layers that change the spatial size of [channels, *spatial] without weights: upsampling,
zero padding and cropping. Upsampling's `bilinear` is PyTorch's `align_corners=False` (half-pixel
centres, edges clamped); TensorFlow's resize computes it in float32 even for float64 input (1e-6
apart, measured), so the Keras output computes it with a small exact layer (EQUIVALENCE.md trap 16)."""

from __future__ import annotations

from typing import ClassVar, Literal

from ..registry import ShapeError, describe, fmt_shape, fn
from .base import CHANNELS_LAST, Layer, derive
from .conv import AXES, _ints, per_axis, torch_pad, want_map


class _Upsample(Layer):
    dims: ClassVar[int]
    positional = ("scale",)
    keras_layout = CHANNELS_LAST
    keras_classes = ("resize_linear",)

    def infer(self, shapes):
        s = want_map(shapes, self.dims, self.name)
        return (s[0], *(n * k for n, k in zip(s[1:], self.scale)))

    def torch_module(self, node):
        mode = self.mode if self.mode == "nearest" else "linear" if self.dims == 1 else "bilinear"
        extra = {} if mode == "nearest" else {"align_corners": False}
        return fn("nn.Upsample", scale_factor=tuple(float(k) for k in self.scale), mode=mode, **extra)

    def keras_classes_for(self, node):
        return () if self.mode == "nearest" else self.keras_classes

    def keras_layer(self, node, layout):
        if self.mode != "nearest":
            return fn("ResizeLinear", scale=self.scale, name=node.name)
        if self.dims == 1:
            return fn("layers.UpSampling1D", size=self.scale[0], name=node.name)
        return fn("layers.UpSampling2D", size=self.scale, interpolation="nearest", name=node.name)


Upsample1d = derive(
    _Upsample, "Upsample1d", {"scale": _ints(1, 1), "mode": (Literal["nearest", "linear"], "nearest")},
    name="upsample1d", dims=1, example="upsample1d(2)",
    doc="""Upsampling [channels, length] → [channels, length · scale] by an integer factor.
    `nearest` repeats each cell; `linear` interpolates with half-pixel centres (PyTorch's
    `align_corners=False`): output cell i reads input position (i + 0.5) / scale − 0.5, clamped
    to the first and last cells.""")

Upsample2d = derive(
    _Upsample, "Upsample2d", {"scale": _ints(2, 1), "mode": (Literal["nearest", "bilinear"], "nearest")},
    name="upsample2d", dims=2, example="upsample2d(2, mode=bilinear)",
    doc="""Upsampling [channels, height, width] by integer factors (one, or one per axis). `nearest`
    repeats each cell; `bilinear` interpolates with half-pixel centres (PyTorch's
    `align_corners=False`): output cell i of an axis reads input position (i + 0.5) / scale − 0.5,
    clamped to the first and last cells, the two axes one after the other.""")


# Any nesting of whole numbers here; `problem` says which forms and values are meant.
Sides = int | tuple[int | tuple[int, ...], ...]


def _flat(v) -> list[int]:
    return [v] if isinstance(v, int) else [y for x in v for y in _flat(x)]


class _Sides(Layer):
    """Shared by zeropad and crop: an amount per side of each spatial axis."""

    dims: ClassVar[int]
    arg: ClassVar[str]
    keras_layout = CHANNELS_LAST

    def sides(self) -> tuple[tuple[int, int], ...]:
        v = getattr(self, self.arg)
        if isinstance(v, int):
            return ((v, v),) * self.dims
        if self.dims == 1:
            return (v,)
        return tuple(x if isinstance(x, tuple) else (x, x) for x in v)

    def problem(self):
        v = getattr(self, self.arg)
        if any(x < 0 for x in _flat(v)):
            return f"`{self.arg}` must be at least 0 on every side, got {describe(v)}"
        if isinstance(v, int):
            return None
        pair = lambda x: isinstance(x, tuple) and len(x) == 2 and all(isinstance(y, int) for y in x)
        if pair(v) if self.dims == 1 else len(v) == 2 and (all(isinstance(x, int) for x in v) or all(pair(x) for x in v)):
            return None
        forms = "a number, or (left, right)" if self.dims == 1 else "a number, (height, width), or ((top, bottom), (left, right))"
        return f"`{self.arg}` must be {forms}, got {describe(v)}"

    def _keras_value(self):
        return per_axis(self.sides())


class _ZeroPad(_Sides):
    arg = "padding"
    positional = ("padding",)
    padding: Sides

    def infer(self, shapes):
        s = want_map(shapes, self.dims, self.name)
        return (s[0], *(n + lo + hi for n, (lo, hi) in zip(s[1:], self.sides())))

    def torch_forward(self, node, mod, xs):
        return torch_pad(xs[0], self.sides())

    def keras_layer(self, node, layout):
        return fn(f"layers.ZeroPadding{self.dims}D", padding=self._keras_value(), name=node.name)


class _Crop(_Sides):
    arg = "cropping"
    positional = ("cropping",)
    cropping: Sides

    def infer(self, shapes):
        s = want_map(shapes, self.dims, self.name)
        for axis, n, (lo, hi) in zip(AXES[self.dims], s[1:], self.sides()):
            if lo + hi >= n:
                raise ShapeError(f"{self.name} cuts {lo} + {hi} cells from a {axis} of {n} in {fmt_shape(s)}, leaving nothing",
                                 hint=f"cut fewer than {n} cells in all from the {axis}")
        return (s[0], *(n - lo - hi for n, (lo, hi) in zip(s[1:], self.sides())))

    def torch_forward(self, node, mod, xs):
        cuts = ", ".join(f"{lo}:{n - hi}" for n, (lo, hi) in zip(node.in_shapes[0][1:], self.sides()))
        return f"{xs[0]}[:, :, {cuts}]"

    def keras_layer(self, node, layout):
        return fn(f"layers.Cropping{self.dims}D", cropping=self._keras_value(), name=node.name)


ZeroPad1d = derive(
    _ZeroPad, "ZeroPad1d", name="zeropad1d", dims=1, example="zeropad1d(2)",
    doc="""Adds zeros at both ends of [channels, length]: `padding` is a number for both ends, or
    (left, right).""")

ZeroPad2d = derive(
    _ZeroPad, "ZeroPad2d", name="zeropad2d", dims=2, example="zeropad2d(((1, 0), (1, 0)))",
    doc="""Adds zeros around [channels, height, width]: `padding` is a number for every side,
    (height, width) for both sides of each axis, or ((top, bottom), (left, right)).""")

Crop1d = derive(
    _Crop, "Crop1d", name="crop1d", dims=1, example="crop1d((1, 2))",
    doc="""Removes cells at both ends of [channels, length]: `cropping` is a number for both ends,
    or (left, right).""")

Crop2d = derive(
    _Crop, "Crop2d", name="crop2d", dims=2, example="crop2d(((1, 0), (1, 0)))",
    doc="""Removes cells around [channels, height, width]: `cropping` is a number for every side,
    (height, width) for both sides of each axis, or ((top, bottom), (left, right)).""")
