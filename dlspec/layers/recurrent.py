"""Recurrent layers over [steps, features] (batch first). Two conventions differ between the
frameworks (EQUIVALENCE.md trap 9): PyTorch keeps two bias vectors (input and recurrent) where
Keras's SimpleRNN and LSTM keep one; and the GRU gate order is r, z, n in PyTorch but z, r, h in
Keras (with `reset_after=True`, the PyTorch formula). dlspec's RNN and LSTM have one bias: the
PyTorch output keeps the second at zero and frozen, so both train alike; transfer sums them."""

from __future__ import annotations

from typing import ClassVar

from ..registry import CallValue, Code, PositiveInt, fn
from .base import LOGICAL, Layer, layer, want_rank


class _Recurrent(Layer):
    gates: ClassVar[int]
    torch_cls: ClassVar[str]
    keras_cls: ClassVar[str]
    positional = ("units",)
    keras_layout = LOGICAL
    units: PositiveInt
    return_sequences: bool = False
    init: str | CallValue | None = None

    def infer(self, shapes):
        s = want_rank(shapes, (2,), self.name, hint="recurrent layers read [steps, features]; an embedding gives that")
        return (s[0], self.units) if self.return_sequences else (self.units,)

    def weights(self, shapes):
        g, h, f = self.gates, self.units, shapes[0][-1]
        return {"weight_ih_l0": (g * h, f), "weight_hh_l0": (g * h, h), "bias_ih_l0": (g * h,), "bias_hh_l0": (g * h,)}

    one_bias: ClassVar[bool] = True  # dlspec's RNN and LSTM have one bias vector, as Keras's

    def param_count(self, shapes, backend="torch"):
        total, _ = super().param_count(shapes, backend)
        trainable = total - self.gates * self.units if self.one_bias else total
        # PyTorch still stores its second bias (kept at zero, frozen): counted, not trainable.
        return (total if backend == "torch" else trainable), trainable

    def torch_module(self, node):
        return fn(f"nn.{self.torch_cls}", node.in_shapes[0][-1], self.units, batch_first=True)

    def torch_forward(self, node, mod, xs):
        # nn.RNN/LSTM/GRU return (sequence, state); take the sequence, or its last step.
        return f"{mod}({xs[0]})[0]" + ("" if self.return_sequences else "[:, -1]")

    def torch_init(self, node, mod):
        lines = [node.init.torch(f"{mod}.weight_ih_l0"), f"nn.init.orthogonal_({mod}.weight_hh_l0)",
                 f"nn.init.zeros_({mod}.bias_ih_l0)", f"nn.init.zeros_({mod}.bias_hh_l0)"]
        if self.one_bias:  # two trainable biases would learn their sum twice as fast as Keras's one
            lines.append(f"{mod}.bias_hh_l0.requires_grad_(False)  # one bias vector, as in Keras")
        return lines

    def keras_extra(self) -> dict:
        return {}

    def keras_layer(self, node, layout):
        return fn(f"layers.{self.keras_cls}", self.units, return_sequences=self.return_sequences, **self.keras_extra(),
                   kernel_initializer=Code(node.init.keras()), recurrent_initializer=Code("initializers.Orthogonal()"),
                   bias_initializer=Code('"zeros"'), name=node.name)

    def to_keras(self, node, w):
        return [w["weight_ih_l0"].T, w["weight_hh_l0"].T, w["bias_ih_l0"] + w["bias_hh_l0"]]

    def from_keras(self, node, ws):
        zero = ws[2] * 0
        return {"weight_ih_l0": ws[0].T, "weight_hh_l0": ws[1].T, "bias_ih_l0": ws[2], "bias_hh_l0": zero}


@layer
class SimpleRNN(_Recurrent):
    """h_t = tanh(W x_t + U h_{t-1} + b)."""

    name = "rnn"
    example = "rnn(32)"
    gates = 1
    torch_cls = "RNN"
    keras_cls = "SimpleRNN"

    def torch_module(self, node):
        return fn("nn.RNN", node.in_shapes[0][-1], self.units, nonlinearity="tanh", batch_first=True)

    def keras_extra(self):
        return {"activation": "tanh"}


@layer
class LSTM(_Recurrent):
    """Long short-term memory (gates i, f, g, o in both frameworks); forget bias starts at 0."""

    name = "lstm"
    example = "lstm(64)"
    gates = 4
    torch_cls = "LSTM"
    keras_cls = "LSTM"

    def keras_extra(self):
        return {"activation": "tanh", "recurrent_activation": "sigmoid", "unit_forget_bias": False}


def _swap_first_gates(m, axis: int):
    """PyTorch's GRU gates are r, z, n; Keras's are z, r, h: the first two trade places (both ways)."""
    import numpy as np

    a, b, c = np.split(m, 3, axis=axis)
    return np.concatenate([b, a, c], axis=axis)


_gru_to_keras = _gru_from_keras = _swap_first_gates


def _stack(a, b):
    import numpy as np

    return np.stack([a, b])


@layer
class GRU(_Recurrent):
    """Gated recurrent unit, PyTorch's formula (reset gate applied after the recurrent product)."""

    name = "gru"
    example = "gru(64)"
    one_bias = False  # with reset_after, Keras's GRU has both biases too
    gates = 3
    torch_cls = "GRU"
    keras_cls = "GRU"

    def keras_extra(self):
        return {"activation": "tanh", "recurrent_activation": "sigmoid", "reset_after": True}

    def to_keras(self, node, w):
        return [_gru_to_keras(w["weight_ih_l0"].T, 1), _gru_to_keras(w["weight_hh_l0"].T, 1),
                _stack(_gru_to_keras(w["bias_ih_l0"], 0), _gru_to_keras(w["bias_hh_l0"], 0))]

    def from_keras(self, node, ws):
        return {"weight_ih_l0": _gru_from_keras(ws[0], 1).T, "weight_hh_l0": _gru_from_keras(ws[1], 1).T,
                "bias_ih_l0": _gru_from_keras(ws[2][0], 0), "bias_hh_l0": _gru_from_keras(ws[2][1], 0)}
