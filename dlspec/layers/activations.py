"""Activations, as layers (`relu()`) and as the `activation=` argument of dense and conv layers.
Every constant is explicit in both outputs (EQUIVALENCE.md trap 6)."""

from __future__ import annotations

from ..registry import Float, PositiveFloat, ShapeError, fmt_shape, fn, lit
from .base import LOGICAL, Layer, derive, layer


class Activation(Layer):

    def torch_forward(self, node, mod, xs):
        return self.torch_expr(xs[0])

    def torch_expr(self, x: str) -> str:
        raise NotImplementedError

    def keras_layer(self, node, layout):
        return self.keras_act(node.name)

    def keras_act(self, name: str) -> str:
        raise NotImplementedError


def _simple(op: str, torch_fmt: str, keras_name: str, doc: str) -> None:
    derive(Activation, op.title().replace("_", ""), name=op, doc=doc,
           torch_expr=lambda self, x: torch_fmt.format(x=x),
           keras_act=lambda self, name: fn("layers.Activation", keras_name, name=name))


_simple("relu", "torch.relu({x})", "relu", "max(x, 0).")
_simple("sigmoid", "torch.sigmoid({x})", "sigmoid", "1 / (1 + exp(-x)).")
_simple("tanh", "torch.tanh({x})", "tanh", "The hyperbolic tangent.")
_simple("silu", "F.silu({x})", "silu", "x · sigmoid(x) (also called swish).")
_simple("relu6", "F.relu6({x})", "relu6", "min(max(x, 0), 6) (MobileNet's).")
# Keras 3's hard_sigmoid is PyTorch's, relu6(x + 3) / 6 (Keras 2's was 0.2·x + 0.5).
_simple("hard_sigmoid", "F.hardsigmoid({x})", "hard_sigmoid", "relu6(x + 3) / 6, a piecewise-linear sigmoid.")
_simple("hard_swish", "F.hardswish({x})", "hard_silu", "x · relu6(x + 3) / 6 (MobileNetV3's; Keras calls it hard_silu).")
_simple("mish", "F.mish({x})", "mish", "x · tanh(softplus(x)).")


@layer
class LeakyRelu(Activation):
    """x if x > 0 else slope · x. The slope is 0.01 unless given (PyTorch's value; Keras's is 0.3)."""

    name = "leaky_relu"
    positional = ("slope",)
    slope: Float = 0.01

    def torch_expr(self, x):
        return f"F.leaky_relu({x}, negative_slope={lit(self.slope)})"

    def keras_act(self, name):
        return fn("layers.LeakyReLU", negative_slope=self.slope, name=name)


@layer
class Elu(Activation):
    """x if x > 0 else alpha · (exp(x) - 1)."""

    name = "elu"
    positional = ("alpha",)
    alpha: PositiveFloat = 1.0

    def torch_expr(self, x):
        return f"F.elu({x}, alpha={lit(self.alpha)})"

    def keras_act(self, name):
        return fn("layers.ELU", alpha=self.alpha, name=name)


@layer
class Gelu(Activation):
    """x · Φ(x), exact unless `approximate=true` (the tanh form). Keras's `ops.gelu` defaults to the
    approximation; we always say which."""

    name = "gelu"
    approximate: bool = False

    def torch_expr(self, x):
        return f"F.gelu({x}, approximate={lit('tanh' if self.approximate else 'none')})"

    def keras_act(self, name):
        if not self.approximate:  # keras.activations.gelu is exact by default; a named activation saves and loads
            return fn("layers.Activation", "gelu", name=name)
        return f"layers.Lambda(lambda t: ops.gelu(t, approximate=True), name={lit(name)})"


@layer
class Softmax(Activation):
    """exp(x) / Σ exp(x) along `axis` (the last axis unless given; axes count from 0, batch excluded)."""

    name = "softmax"
    keras_layout = LOGICAL
    axis: int = -1

    def infer(self, shapes):
        if not -len(shapes[0]) <= self.axis < len(shapes[0]):
            raise ShapeError(f"softmax axis {self.axis} is out of range for shape {fmt_shape(shapes[0])}")
        return shapes[0]

    def torch_forward(self, node, mod, xs):
        return f"torch.softmax({xs[0]}, dim={self.axis % len(node.shape) + 1})"

    def keras_layer(self, node, layout):
        return fn("layers.Softmax", axis=self.axis % len(node.shape) + 1, name=node.name)


@layer
class LogSoftmax(Activation):
    """log(softmax(x)) over the last axis, computed stably: the log-probabilities `nll()` reads."""

    name = "log_softmax"
    keras_layout = LOGICAL

    def torch_forward(self, node, mod, xs):
        return f"F.log_softmax({xs[0]}, dim=-1)"

    def keras_layer(self, node, layout):
        return fn("layers.Activation", "log_softmax", name=node.name)


ACTIVATIONS = ("relu", "leaky_relu", "elu", "gelu", "sigmoid", "tanh", "softmax", "log_softmax", "silu", "relu6", "hard_sigmoid",
               "hard_swish", "mish")
