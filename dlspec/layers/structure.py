"""Layers that rearrange or merge tensors without weights: flatten, reshape, permute, the
element-wise merges (add, subtract, multiply, average, maximum), scale and concat."""

from __future__ import annotations

import math
from typing import Annotated, ClassVar

from pydantic import Field

from ..registry import ShapeError, fmt_shape, fn
from .base import CHANNELS_LAST, LOGICAL, Layer, keras_axis, layer


@layer
class Flatten(Layer):
    """[d1, d2, ...] → [d1·d2·...], in channels-first order in both backends (the Keras output moves
    channels back to the front before flattening)."""

    name = "flatten"
    keras_layout = LOGICAL

    def infer(self, shapes):
        return (math.prod(shapes[0]),)

    def torch_forward(self, node, mod, xs):
        return f"torch.flatten({xs[0]}, 1)"

    def keras_layer(self, node, layout):
        return fn("layers.Flatten", name=node.name)


@layer
class Reshape(Layer):
    """Reshapes to `shape` (batch excluded); one dimension may be -1, inferred from the others."""

    name = "reshape"
    positional = ("shape",)
    example = "reshape((4, 16))"
    keras_layout = LOGICAL
    shape: tuple[Annotated[int, Field(ge=-1)], ...]

    def problem(self):
        if not self.shape or 0 in self.shape or self.shape.count(-1) > 1:
            return "shape needs positive sizes and at most one -1"
        return None

    def infer(self, shapes):
        total, known = math.prod(shapes[0]), math.prod(d for d in self.shape if d != -1)
        out = tuple(total // known if d == -1 else d for d in self.shape)
        if math.prod(out) != total:
            raise ShapeError(f"cannot reshape {fmt_shape(shapes[0])} ({total} values) to {fmt_shape(self.shape)}")
        return out

    def torch_forward(self, node, mod, xs):
        return f"{xs[0]}.reshape(-1, {', '.join(map(str, node.shape))})"

    def keras_layer(self, node, layout):
        return fn("layers.Reshape", tuple(node.shape), name=node.name)


def _same_shapes(op: str, shapes, skip_axis: int | None = None, hint: str | None = None) -> None:
    first = shapes[0]
    for other in shapes[1:]:
        same_rank = len(other) == len(first)
        differs = [i for i in range(len(first)) if same_rank and i != skip_axis and first[i] != other[i]]
        if not same_rank or differs:
            where = "" if skip_axis is None else f" outside axis {skip_axis}"
            raise ShapeError(f"{op} needs inputs of the same shape{where}: {fmt_shape(first)} vs {fmt_shape(other)}", hint)


def _exactly_two(op: str, shapes, what: str) -> None:
    if len(shapes) != 2:
        raise ShapeError(f"{op} takes exactly two inputs ({what}), but {len(shapes)} reach it",
                         hint=f"write `(a, b) -> {op}()`")


@layer
class Add(Layer):
    """Element-wise sum of two or more tensors of the same shape (residual connections)."""

    name = "add"
    arity = None

    def infer(self, shapes):
        _same_shapes("add", shapes)
        return shapes[0]

    def torch_forward(self, node, mod, xs):
        return " + ".join(xs)

    def keras_layer(self, node, layout):
        return fn("layers.Add", name=node.name)


def _concat_hint(shapes) -> str:
    if len({len(s) for s in shapes}) > 1:
        return "the inputs have different ranks: `flatten()` or `reshape(...)` one of them first"
    return ("make the other sizes equal: crop or pad one of them, or pool to the same size "
            "(`padding=same` keeps a convolution's size at stride 1)")


@layer
class Concat(Layer):
    """Joins two or more tensors along `axis` (0, the channels, unless given; batch excluded)."""

    name = "concat"
    arity = None
    positional = ("axis",)
    axis: int = 0

    def infer(self, shapes):
        rank = len(shapes[0])
        if not -rank <= self.axis < rank:
            raise ShapeError(f"concat axis {self.axis} is out of range for {fmt_shape(shapes[0])}")
        axis = self.axis % rank
        _same_shapes("concat", shapes, axis, _concat_hint(shapes))
        return tuple(sum(s[axis] for s in shapes) if i == axis else d for i, d in enumerate(shapes[0]))

    def torch_forward(self, node, mod, xs):
        return f"torch.cat([{', '.join(xs)}], dim={self.axis % len(node.shape) + 1})"

    def keras_layer(self, node, layout):
        return fn("layers.Concatenate", axis=keras_axis(self.axis, len(node.shape), layout), name=node.name)


@layer
class Permute(Layer):
    """Reorders the axes (batch excluded, counted from 0 in channels-first order): `permute((1, 0))`
    turns [C, L] into [L, C]. `dims` lists every axis once."""

    name = "permute"
    positional = ("dims",)
    example = "permute((1, 0))"
    keras_layout = LOGICAL
    dims: tuple[Annotated[int, Field(ge=0)], ...]

    def problem(self):
        if not self.dims:
            return "dims must list the input's axes in their new order, e.g. (1, 0)"
        if sorted(self.dims) != list(range(len(self.dims))):
            return f"dims must list each axis 0 to {len(self.dims) - 1} once, e.g. (1, 0)"
        return None

    def infer(self, shapes):
        if len(self.dims) != len(shapes[0]):
            raise ShapeError(f"permute{self.dims} reorders {len(self.dims)} axes, but the input {fmt_shape(shapes[0])} has {len(shapes[0])}",
                             hint="list every axis of the input once (the batch is not counted)")
        return tuple(shapes[0][d] for d in self.dims)

    def torch_forward(self, node, mod, xs):
        return f"{xs[0]}.permute(0, {', '.join(str(d + 1) for d in self.dims)})"

    def keras_layer(self, node, layout):
        return fn("layers.Permute", tuple(d + 1 for d in self.dims), name=node.name)


class _Merge(Layer):
    """Element-wise merges of two or more tensors of one shape; Keras has a layer for each."""

    arity = None
    keras_cls: ClassVar[str]

    def infer(self, shapes):
        _same_shapes(self.name, shapes, hint=self.shape_hint(shapes))
        return shapes[0]

    def shape_hint(self, shapes) -> str | None:
        return None

    def keras_layer(self, node, layout):
        return fn(f"layers.{self.keras_cls}", name=node.name)


@layer
class Subtract(_Merge):
    """a − b, for two tensors of the same shape: `(a, b) -> subtract()`."""

    name = "subtract"
    keras_cls = "Subtract"

    def infer(self, shapes):
        _exactly_two("subtract", shapes, "a - b")
        return super().infer(shapes)

    def torch_forward(self, node, mod, xs):
        return f"{xs[0]} - {xs[1]}"


@layer
class Multiply(_Merge):
    """Element-wise product of two or more tensors of the same shape (gates). To weight each channel
    of a [C, H, W] map by a [C] vector, use `scale()`."""

    name = "multiply"
    keras_cls = "Multiply"

    def shape_hint(self, shapes):
        if len(shapes) == 2 and len(shapes[1]) == 1 and len(shapes[0]) > 1 and shapes[1][0] == shapes[0][0]:
            return "to weight each channel of a map by a vector, write `(map, weights) -> scale()`"
        return None

    def torch_forward(self, node, mod, xs):
        return " * ".join(xs)


@layer
class Average(_Merge):
    """Element-wise mean of two or more tensors of the same shape: (a + b + ...) / n, summed left to
    right in both outputs."""

    name = "average"
    keras_cls = "Average"

    def torch_forward(self, node, mod, xs):
        return f"({' + '.join(xs)}) / {len(xs)}"


@layer
class Maximum(_Merge):
    """Element-wise maximum of two or more tensors of the same shape."""

    name = "maximum"
    keras_cls = "Maximum"

    def torch_forward(self, node, mod, xs):
        expr = xs[0]
        for x in xs[1:]:
            expr = f"torch.maximum({expr}, {x})"
        return expr


@layer
class Scale(Layer):
    """Multiplies each channel of a [C, *spatial] map by one weight per channel, a [C] vector:
    `(x, s) -> scale()` (squeeze-and-excitation:
    `x -> global_avgpool() -> dense(C // 4) -> relu() -> dense(C) -> sigmoid() -> s`)."""

    name = "scale"
    arity = None
    # Channels last, Keras's Multiply lines the [C] weights up with the last axis: it expands them
    # to [1, ..., 1, C] itself (Merge layers add axes after the batch until the ranks agree).
    keras_layout = CHANNELS_LAST

    def infer(self, shapes):
        _exactly_two("scale", shapes, "a map [C, ...] and its channel weights [C]")
        x, s = shapes
        if len(x) < 2 or len(s) != 1 or s[0] != x[0]:
            raise ShapeError(f"scale needs a map [C, ...] and one weight per channel [C], got {fmt_shape(x)} and {fmt_shape(s)}",
                             hint="write `(map, weights) -> scale()`, the map first; for two tensors of one shape use `multiply()`")
        return x

    def torch_forward(self, node, mod, xs):
        return f"{xs[0]} * {xs[1]}[:, :{', None' * (len(node.shape) - 1)}]"

    def keras_layer(self, node, layout):
        return fn("layers.Multiply", name=node.name)
