"""Pooling over [channels, *spatial]. Windows never pad (padding `valid`), so max and average
pooling agree between the backends without the −∞ / count_include_pad traps (EQUIVALENCE.md 12)."""

from __future__ import annotations

from typing import ClassVar

from ..registry import ShapeError, fmt_shape, fn, lit
from .base import CHANNELS_LAST, Layer, layer, want_rank
from .conv import _ints, out_size


class _Pool(Layer):
    dims: ClassVar[int]
    op: ClassVar[str]  # "max" or "avg"
    positional = ("kernel", "stride")
    keras_layout = CHANNELS_LAST

    def _stride(self):
        return self.stride if self.stride is not None else self.kernel

    def infer(self, shapes):
        s = want_rank(shapes, (self.dims + 1,), self.name)
        out = tuple(out_size(s[1 + i], (0, 0), self.kernel[i], self._stride()[i], 1) for i in range(self.dims))
        if min(out) < 1:
            raise ShapeError(f"{self.name} window {self.kernel} is larger than the input {fmt_shape(s)}")
        return (s[0], *out)

    def torch_module(self, node):
        cls = f"nn.{'Max' if self.op == 'max' else 'Avg'}Pool{self.dims}d"
        return fn(cls, kernel_size=self.kernel, stride=self._stride())

    def keras_layer(self, node, layout):
        cls = f"layers.{'Max' if self.op == 'max' else 'Average'}Pooling{self.dims}D"
        return fn(cls, pool_size=self.kernel, strides=self._stride(), padding="valid", name=node.name)


def _pool(name: str, dims: int, op: str, doc: str):
    ints = _ints(dims, 1)
    cls = type(name.title(), (_Pool,), {
        "__doc__": doc, "__module__": __name__, "name": name, "dims": dims, "op": op,
        "example": f"{name}(2)",
        "__annotations__": {"kernel": ints, "stride": ints | None},
        "stride": None,
    })
    return layer(cls)


MaxPool1d = _pool("maxpool1d", 1, "max", "Max over windows of [channels, length]; stride defaults to the kernel.")
MaxPool2d = _pool("maxpool2d", 2, "max", "Max over windows of [channels, height, width]; stride defaults to the kernel.")
AvgPool1d = _pool("avgpool1d", 1, "avg", "Mean over windows of [channels, length]; stride defaults to the kernel.")
AvgPool2d = _pool("avgpool2d", 2, "avg", "Mean over windows of [channels, height, width]; stride defaults to the kernel.")


class _GlobalPool(Layer):
    op: ClassVar[str]
    keras_layout = CHANNELS_LAST

    def infer(self, shapes):
        s = want_rank(shapes, (2, 3), self.name)
        return (s[0],)

    def torch_forward(self, node, mod, xs):
        axes = tuple(range(2, len(node.in_shapes[0]) + 1))
        return f"torch.{'mean' if self.op == 'avg' else 'amax'}({xs[0]}, dim={lit(axes)})"

    def keras_layer(self, node, layout):
        d = len(node.in_shapes[0]) - 1
        cls = f"layers.Global{'Average' if self.op == 'avg' else 'Max'}Pooling{d}D"
        return fn(cls, name=node.name)


@layer
class GlobalAvgPool(_GlobalPool):
    """Mean over every spatial position: [channels, *spatial] → [channels]."""

    name = "global_avgpool"
    op = "avg"


@layer
class GlobalMaxPool(_GlobalPool):
    """Max over every spatial position: [channels, *spatial] → [channels]."""

    name = "global_maxpool"
    op = "max"
