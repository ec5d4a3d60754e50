"""Recurrent layers over [steps, features] (batch first). Two conventions differ between the
frameworks (EQUIVALENCE.md trap 9): PyTorch keeps two bias vectors (input and recurrent) where
Keras's SimpleRNN and LSTM keep one; and the GRU gate order is r, z, n in PyTorch but z, r, h in
Keras (with `reset_after=True`, the PyTorch formula). dlspec's RNN and LSTM have one bias: the
PyTorch output keeps the second at zero and frozen, so both train alike; transfer sums them.

A stack (`layers=N`) is one PyTorch module (`num_layers=N`) and, in Keras, one `Sequential` of N
layers named after the node (a `RecurrentStack` when it passes states, which a `Sequential`
cannot), so that each framework holds the node's weights in one place.
PyTorch names them `weight_ih_l{k}` (and `..._reverse` for the backward direction); Keras lists
them layer by layer, forward before backward: the same order, which transfer walks."""

from __future__ import annotations

from typing import ClassVar

from ..registry import CallValue, Code, PositiveInt, Rate, ShapeError, fmt_shape, fn
from .base import LOGICAL, Layer, Penalty, layer, want_rank


class _Recurrent(Layer):
    """Shared fields; the class docstrings of the entries below are the documentation."""

    gates: ClassVar[int]
    torch_cls: ClassVar[str]
    keras_cls: ClassVar[str]
    positional = ("units",)
    keras_layout = LOGICAL
    extra_input = ("initial_state", "state")
    units: PositiveInt
    return_sequences: bool = False
    bidirectional: bool = False
    layers: PositiveInt = 1
    dropout: Rate = 0.0
    return_state: bool = False
    initial_state: bool = False
    init: str | CallValue | None = None
    l1: Penalty = None
    l2: Penalty = None

    def problem(self):
        if self.dropout and self.layers == 1:
            return "dropout applies between stacked layers, so it needs layers=2 or more"
        if self.return_state and self.return_sequences:
            return "return_state=true returns the final state instead of the outputs, so it excludes return_sequences=true"
        return None

    @property
    def arity(self):  # the initial state is a second input
        return None if self.initial_state else 1

    @property
    def directions(self) -> int:
        return 2 if self.bidirectional else 1

    @property
    def state_rows(self) -> int:
        """The rows of the state [rows, units]: per layer, per direction (forward first), h, then c for an LSTM."""
        return self.layers * self.directions * (2 if self.torch_cls == "LSTM" else 1)

    def _state_words(self) -> str:
        each = " and ".join(w for w, n in (("layer", self.layers), ("direction", self.directions)) if n > 1)
        what = "h and c" if self.torch_cls == "LSTM" else "h"
        return f"{what} for each {each}" if each else what

    @property
    def _keras_stack(self) -> bool:
        """A stack that passes states: a RecurrentStack in Keras (a Sequential cannot pass them)."""
        return self.layers > 1 and (self.return_state or self.initial_state)

    def suffixes(self) -> list[str]:
        """PyTorch's weight-name suffixes, in Keras's order: layer by layer, forward then backward."""
        return [f"_l{k}{r}" for k in range(self.layers) for r in ("", "_reverse")[:self.directions]]

    def infer(self, shapes):
        call = f"{self.name}({self.units}, initial_state=true)"
        if self.initial_state and len(shapes) != 2:
            raise ShapeError(f"{self.name} with initial_state=true takes two inputs, the sequence and the initial state, "
                             f"got {len(shapes)}", hint=f"write `(x, state) -> {call}`")
        s = want_rank(shapes[:1], (2,), self.name, hint="recurrent layers read [steps, features]; an embedding gives that")
        state = (self.state_rows, self.units)
        if self.initial_state and tuple(shapes[1]) != state:
            raise ShapeError(f"{self.name}: the initial state must be {fmt_shape(state)} ({self._state_words()}, "
                             f"{self.units} wide), got {fmt_shape(shapes[1])}",
                             hint=f"a `{self.name}({self.units}{', bidirectional=true' * self.bidirectional}"
                                  f"{f', layers={self.layers}' * (self.layers > 1)}, return_state=true)` gives one")
        if self.return_state:
            return state
        width = self.directions * self.units
        return (s[0], width) if self.return_sequences else (width,)

    def weights(self, shapes):
        g, h, out = self.gates, self.units, {}
        for s in self.suffixes():
            f = shapes[0][-1] if s.startswith("_l0") else self.directions * h  # upper layers read both directions
            out |= {f"weight_ih{s}": (g * h, f), f"weight_hh{s}": (g * h, h), f"bias_ih{s}": (g * h,), f"bias_hh{s}": (g * h,)}
        return out

    one_bias: ClassVar[bool] = True  # dlspec's RNN and LSTM have one bias vector, as Keras's

    def param_count(self, shapes, backend="torch"):
        total, _ = super().param_count(shapes, backend)
        trainable = total - self.gates * self.units * len(self.suffixes()) if self.one_bias else total
        # PyTorch still stores its second bias (kept at zero, frozen): counted, not trainable.
        return (total if backend == "torch" else trainable), trainable

    def torch_extra(self) -> dict:
        return {}

    def torch_module(self, node):
        stack = {"num_layers": self.layers, "dropout": self.dropout} if self.layers > 1 else {}
        both = {"bidirectional": True} if self.bidirectional else {}
        return fn(f"nn.{self.torch_cls}", node.in_shapes[0][-1], self.units, **self.torch_extra(), batch_first=True,
                  **stack, **both)

    def torch_forward(self, node, mod, xs):
        lstm = self.torch_cls == "LSTM"
        call = f"{mod}({xs[0]})"
        if self.initial_state:  # [batch, rows, units] to PyTorch's [layers·directions, batch, units], (h, c) for an LSTM
            cells = self.layers * self.directions
            state = (f"tuple({xs[1]}.unflatten(1, ({cells}, 2)).permute(2, 1, 0, 3).contiguous())" if lstm
                     else f"{xs[1]}.transpose(0, 1).contiguous()")
            call = f"{mod}({xs[0]}, {state})"
        if self.return_state:  # h_n (and c_n), [layers·directions, batch, units], to [batch, rows, units]
            return f"torch.stack({call}[1], 2).transpose(0, 1).flatten(1, 2)" if lstm else f"{call}[1].transpose(0, 1)"
        if self.bidirectional and not self.return_sequences:
            # Each direction's final state (the backward one's is at step 0): the top layer's two
            # rows of h_n, side by side, as Keras's Bidirectional returns them.
            h_n = "[1][0]" if lstm else "[1]"
            return f"{call}{h_n}[-2:].transpose(0, 1).flatten(1)"
        # nn.RNN/LSTM/GRU return (sequence, state); take the sequence, or its last step.
        return f"{call}[0]" + ("" if self.return_sequences else "[:, -1]")

    def torch_init(self, node, mod):
        lines = []
        for s in self.suffixes():
            lines += [node.init.torch(f"{mod}.weight_ih{s}"), f"nn.init.orthogonal_({mod}.weight_hh{s})",
                      f"nn.init.zeros_({mod}.bias_ih{s})", f"nn.init.zeros_({mod}.bias_hh{s})"]
            if self.one_bias:  # two trainable biases would learn their sum twice as fast as Keras's one
                lines.append(f"{mod}.bias_hh{s}.requires_grad_(False)  # one bias vector, as in Keras")
        return lines

    def keras_extra(self) -> dict:
        return {}

    def _keras_one(self, node, k: int, name: str) -> str:
        """Layer k of the stack: lower layers pass their whole sequence up."""
        sequences = self.return_sequences or k < self.layers - 1
        state = {"return_state": True} if self.return_state else {}
        rnn = fn(f"layers.{self.keras_cls}", self.units, return_sequences=sequences, **state, **self.keras_extra(),
                 kernel_initializer=Code(node.init.keras()), recurrent_initializer=Code("initializers.Orthogonal()"),
                 bias_initializer=Code('"zeros"'), name=name if not self.bidirectional else f"{node.name}_l{k}")
        if not self.bidirectional:
            return rnn
        # The backward copy reads the sequence reversed and, with return_sequences, flips its
        # output back: each step is [forward ‖ backward], PyTorch's layout (measured).
        return fn("layers.Bidirectional", Code(rnn), merge_mode="concat", name=name)

    def keras_classes_for(self, node):
        return ("recurrent_stack",) if self._keras_stack else ()

    def keras_layer(self, node, layout):
        if self.layers == 1:
            return self._keras_one(node, 0, node.name)
        if self._keras_stack:
            # Its layers are called inside its own call, where TensorFlow wants scope names that do not
            # start with `_` (as a node's name may): they are named `l0`, `l1`... within it.
            stack = [Code(self._keras_one(node, k, f"l{k}")) for k in range(self.layers)]
            return fn("RecurrentStack", stack, dropout=self.dropout, return_state=self.return_state, name=node.name)
        stack = [Code(self._keras_one(node, k, f"{node.name}_l{k}")) for k in range(self.layers)]
        if self.dropout:  # as PyTorch's `dropout`: on each lower layer's output
            drops = [Code(fn("layers.Dropout", self.dropout, name=f"{node.name}_dropout{k}")) for k in range(self.layers - 1)]
            stack = [x for pair in zip(stack, drops) for x in pair] + stack[-1:]
        return fn("keras.Sequential", stack, name=node.name)

    def keras_call(self, node, layer, xs, fresh):
        if self._keras_stack:  # takes and returns the state tensor itself
            return f"{layer}({', '.join(xs)})"
        # Keras takes and returns the state as a list of [batch, units] tensors, in the state's row order.
        call = f"{layer}({xs[0]}, initial_state=ops.unstack({xs[1]}, axis=1))" if self.initial_state else f"{layer}({xs[0]})"
        return f"ops.stack({call}[1:], axis=1)" if self.return_state else call

    def cell_to_keras(self, w: dict, s: str) -> list:
        return [w[f"weight_ih{s}"].T, w[f"weight_hh{s}"].T, w[f"bias_ih{s}"] + w[f"bias_hh{s}"]]

    def cell_from_keras(self, ws: list, s: str) -> dict:
        return {f"weight_ih{s}": ws[0].T, f"weight_hh{s}": ws[1].T, f"bias_ih{s}": ws[2], f"bias_hh{s}": ws[2] * 0}

    def to_keras(self, node, w):
        return [a for s in self.suffixes() for a in self.cell_to_keras(w, s)]

    def from_keras(self, node, ws):
        out = {}
        for i, s in enumerate(self.suffixes()):
            out |= self.cell_from_keras(ws[3 * i:3 * i + 3], s)
        return out


_OPTIONS = """

`bidirectional=true` adds a second layer reading the sequence backwards; each output step is
[forward ‖ backward] (2·units wide), and without `return_sequences` the output is each
direction's final state, [forward after the last step ‖ backward after reading back to the
first]. `layers=N` stacks N layers, each reading the whole output sequence of the one below
(both directions); `dropout` (training only) applies to the outputs between stacked layers, as PyTorch's `dropout`
does.

The state is a tensor [rows, units]: per layer (the lowest first), per direction (forward first),
the hidden state h and, for an LSTM, then the cell state c (so [2, units] for an LSTM, [4, units]
for a bidirectional one or a stack of two, [1, units] for an rnn or gru). `return_state=true` outputs the final
state instead of the outputs; `initial_state=true` starts from a given state, read as a second
input: `(x, state) -> gru(64, initial_state=true)` (zeros otherwise). Together they pass an encoder's state to
a decoder (sequence to sequence)."""


@layer
class SimpleRNN(_Recurrent):
    __doc__ = "h_t = tanh(W x_t + U h_{t-1} + b)." + _OPTIONS

    name = "rnn"
    example = "rnn(32)"
    gates = 1
    torch_cls = "RNN"
    keras_cls = "SimpleRNN"

    def torch_extra(self):
        return {"nonlinearity": "tanh"}

    def keras_extra(self):
        return {"activation": "tanh"}


@layer
class LSTM(_Recurrent):
    __doc__ = "Long short-term memory (gates i, f, g, o in both frameworks); forget bias starts at 0." + _OPTIONS

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


@layer
class GRU(_Recurrent):
    __doc__ = "Gated recurrent unit, PyTorch's formula (reset gate applied after the recurrent product)." + _OPTIONS

    name = "gru"
    example = "gru(64)"
    one_bias = False  # with reset_after, Keras's GRU has both biases too
    gates = 3
    torch_cls = "GRU"
    keras_cls = "GRU"

    def keras_extra(self):
        return {"activation": "tanh", "recurrent_activation": "sigmoid", "reset_after": True}

    def cell_to_keras(self, w, s):
        import numpy as np

        return [_gru_to_keras(w[f"weight_ih{s}"].T, 1), _gru_to_keras(w[f"weight_hh{s}"].T, 1),
                np.stack([_gru_to_keras(w[f"bias_ih{s}"], 0), _gru_to_keras(w[f"bias_hh{s}"], 0)])]

    def cell_from_keras(self, ws, s):
        return {f"weight_ih{s}": _gru_from_keras(ws[0], 1).T, f"weight_hh{s}": _gru_from_keras(ws[1], 1).T,
                f"bias_ih{s}": _gru_from_keras(ws[2][0], 0), f"bias_hh{s}": _gru_from_keras(ws[2][1], 0)}
