"""Layers that rearrange or merge tensors without weights: flatten, reshape, add, concat."""

from __future__ import annotations

import math
from typing import Annotated

from pydantic import Field

from ..registry import ShapeError, fmt_shape, fn
from .base import LOGICAL, Layer, keras_axis, layer


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


def _same_shapes(op: str, shapes, skip_axis: int | None = None) -> None:
    first = shapes[0]
    for other in shapes[1:]:
        same_rank = len(other) == len(first)
        differs = [i for i in range(len(first)) if same_rank and i != skip_axis and first[i] != other[i]]
        if not same_rank or differs:
            where = "" if skip_axis is None else f" outside axis {skip_axis}"
            raise ShapeError(f"{op} needs inputs of the same shape{where}: {fmt_shape(first)} vs {fmt_shape(other)}")


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
        _same_shapes("concat", shapes, axis)
        return tuple(sum(s[axis] for s in shapes) if i == axis else d for i, d in enumerate(shapes[0]))

    def torch_forward(self, node, mod, xs):
        return f"torch.cat([{', '.join(xs)}], dim={self.axis % len(node.shape) + 1})"

    def keras_layer(self, node, layout):
        return fn("layers.Concatenate", axis=keras_axis(self.axis, len(node.shape), layout), name=node.name)
