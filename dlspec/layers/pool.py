"""Pooling over [channels, *spatial]. Max pools never pad: PyTorch pads them with −∞, which no
Keras padding layer can write, and TensorFlow's `same` pads only where it chooses. Average pools
may pad, counting the zeros in the mean (PyTorch's count_include_pad=True), which Keras computes
as ZeroPadding then a valid pool (EQUIVALENCE.md trap 12)."""

from __future__ import annotations

from typing import ClassVar

from ..registry import Code, ShapeError, fmt_shape, fn, lit
from .base import CHANNELS_LAST, Layer, derive, layer
from .conv import AXES, _ints, _show, keras_zero_padding, out_size, torch_pad, want_map


def _keras_pool(op: str, dims: int, kind: str = "") -> str:
    return f"layers.{kind}{'Max' if op == 'max' else 'Average'}Pooling{dims}D"


class _Pool(Layer):
    dims: ClassVar[int]
    op: ClassVar[str]  # "max" or "avg"
    positional = ("kernel", "stride")
    keras_layout = CHANNELS_LAST

    def _stride(self):
        return self.stride if self.stride is not None else self.kernel

    def _padding(self) -> tuple[int, ...]:
        return getattr(self, "padding", (0,) * self.dims)

    def problem(self):
        if any(2 * p > k for p, k in zip(self._padding(), self.kernel)):
            return f"padding {_show(self._padding())} must be at most half the kernel {_show(self.kernel)} on each axis"
        return None

    def infer(self, shapes):
        s = want_map(shapes, self.dims, self.name)
        pad = self._padding()
        out = tuple(out_size(s[1 + i], (pad[i], pad[i]), self.kernel[i], self._stride()[i], 1) for i in range(self.dims))
        if min(out) < 1:
            raise ShapeError(f"{self.name} window {_show(self.kernel)} is larger than the input {fmt_shape(s)}",
                             hint="use a smaller window, or pool earlier, where the input is larger")
        return (s[0], *out)

    def _pads_first(self) -> bool:
        # PyTorch's AvgPool3d refuses a window larger than the unpadded input (1-D and 2-D accept
        # it): pad with zeros first, which is the same mean, since padded zeros count in it.
        return self.dims == 3 and any(self._padding())

    def torch_module(self, node):
        if self.op == "max":
            return fn(f"nn.MaxPool{self.dims}d", kernel_size=self.kernel, stride=self._stride())
        padding = (0,) * self.dims if self._pads_first() else self._padding()
        return fn(f"nn.AvgPool{self.dims}d", kernel_size=self.kernel, stride=self._stride(), padding=padding,
                  count_include_pad=True)

    def torch_forward(self, node, mod, xs):
        if self._pads_first():
            return f"{mod}({torch_pad(xs[0], [(p, p) for p in self._padding()])})"
        return f"{mod}({xs[0]})"

    def keras_prelude(self, node, fresh):
        steps = [keras_zero_padding(node, fresh, self._padding())] if any(self._padding()) else []
        if self.dims == 3:
            # TensorFlow's 3-D pools have no float64 kernel: pool height and width for each depth
            # slice, then depth; a box's max or mean is the max or mean over one axis after another.
            (k, *k2), (s, *s2) = self.kernel, self._stride()
            c, depth, *hw = node.in_shapes[0][0], node.in_shapes[0][1] + 2 * self._padding()[0], *node.shape[2:]
            names = [fresh(f"{node.name}_{step}") for step in ("hw", "flat", "d")]
            steps += [(names[0], fn("layers.TimeDistributed", Code(fn(_keras_pool(self.op, 2), pool_size=tuple(k2), strides=tuple(s2), padding="valid")), name=names[0])),
                      (names[1], fn("layers.Reshape", (depth, hw[0] * hw[1] * c), name=names[1])),
                      (names[2], fn(_keras_pool(self.op, 1), pool_size=k, strides=s, padding="valid", name=names[2]))]
        return steps

    def keras_layer(self, node, layout):
        if self.dims == 3:
            return fn("layers.Reshape", (*node.shape[1:], node.shape[0]), name=node.name)
        return fn(_keras_pool(self.op, self.dims), pool_size=self.kernel, strides=self._stride(), padding="valid", name=node.name)


def _pool(op: str, d: int):
    ints = _ints(d, 1)
    doc = f"{'Max' if op == 'max' else 'Mean'} over windows of [channels, {', '.join(AXES[d])}]; stride defaults to the kernel."
    fields = {"kernel": ints, "stride": (ints | None, None)}
    if op == "max":
        doc += (" No padding: PyTorch pads a max pool with −∞, which Keras cannot write; pad with `zeropad` first"
                " if zeros are meant.")
    else:
        doc += (" `padding` adds that many zeros on both sides of each axis (at most half the kernel), and they"
                " count in the mean (PyTorch's count_include_pad=True).")
        fields["padding"] = (_ints(d, 0), (0,) * d)
    return derive(_Pool, f"{op.title()}Pool{d}d", fields, name=f"{op}pool{d}d", dims=d, op=op, example=f"{op}pool{d}d(2)", doc=doc)


MaxPool1d = _pool("max", 1)
MaxPool2d = _pool("max", 2)
MaxPool3d = _pool("max", 3)
AvgPool1d = _pool("avg", 1)
AvgPool2d = _pool("avg", 2)
AvgPool3d = _pool("avg", 3)


class _AdaptivePool(Layer):
    dims: ClassVar[int]
    op: ClassVar[str]
    positional = ("output_size",)
    keras_layout = CHANNELS_LAST
    keras_classes = ("pool_adaptive",)

    def infer(self, shapes):
        s = want_map(shapes, self.dims, self.name)
        return (s[0], *self.output_size)

    def _even(self, node) -> bool:
        return all(n % out == 0 for n, out in zip(node.in_shapes[0][1:], self.output_size))

    def torch_module(self, node):
        return fn(f"nn.Adaptive{self.op.title()}Pool{self.dims}d", self.output_size)

    def keras_classes_for(self, node):
        return () if self._even(node) else self.keras_classes

    def keras_layer(self, node, layout):
        if self._even(node):  # equal windows that tile the input: a plain pool
            window = tuple(n // out for n, out in zip(node.in_shapes[0][1:], self.output_size))
            return fn(_keras_pool(self.op, self.dims), pool_size=window, strides=window, padding="valid", name=node.name)
        return fn("AdaptivePool", output_size=self.output_size, op=self.op, name=node.name)


def _adaptive(op: str, d: int):
    doc = (f"{'Max' if op == 'max' else 'Mean'} over `output_size` windows per axis of [channels, {', '.join(AXES[d])}], "
           "PyTorch's adaptive rule: output cell i of an axis of n cells covers input cells floor(i·n/out) to "
           "ceil((i+1)·n/out) − 1, so windows may differ in size by one and overlap. Any input size works.")
    return derive(_AdaptivePool, f"Adaptive{op.title()}Pool{d}d", {"output_size": _ints(d, 1)}, name=f"adaptive_{op}pool{d}d",
                  dims=d, op=op, example=f"adaptive_{op}pool{d}d({1 if d == 1 else (1, 1)})", doc=doc)


AdaptiveAvgPool1d = _adaptive("avg", 1)
AdaptiveAvgPool2d = _adaptive("avg", 2)
AdaptiveMaxPool1d = _adaptive("max", 1)
AdaptiveMaxPool2d = _adaptive("max", 2)


class _GlobalPool(Layer):
    op: ClassVar[str]
    keras_layout = CHANNELS_LAST

    def infer(self, shapes):
        s = want_map(shapes, (1, 2, 3), self.name)
        return (s[0],)

    def torch_forward(self, node, mod, xs):
        axes = tuple(range(2, len(node.in_shapes[0]) + 1))
        return f"torch.{'mean' if self.op == 'avg' else 'amax'}({xs[0]}, dim={lit(axes)})"

    def keras_layer(self, node, layout):
        return fn(_keras_pool(self.op, len(node.in_shapes[0]) - 1, "Global"), name=node.name)


@layer
class GlobalAvgPool(_GlobalPool):
    """Mean over every spatial position: [channels, *spatial] → [channels] (1-D, 2-D or 3-D)."""

    name = "global_avgpool"
    op = "avg"


@layer
class GlobalMaxPool(_GlobalPool):
    """Max over every spatial position: [channels, *spatial] → [channels] (1-D, 2-D or 3-D)."""

    name = "global_maxpool"
    op = "max"
