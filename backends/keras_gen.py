"""Keras 3 output: a functional model built in a function. The IR is channels-first; Keras on
TensorFlow wants channels-last, so each tensor's Keras layout is tracked and a `Permute` is
inserted only where a layer needs the other one (EQUIVALENCE.md rule 2)."""

from __future__ import annotations

from dlspec.layers import ANY, CHANNELS_LAST, LOGICAL
from dlspec.registry import fn, ident, lit
from dlspec.schedules import KERAS_EXPR

from .codegen import Generator


def _permutation(rank: int, to: str) -> tuple[int, ...]:
    # Keras counts axes from 1 (after the batch). [C, *S] ↔ [*S, C].
    return (*range(2, rank + 1), 1) if to == CHANNELS_LAST else (rank, *range(1, rank))


class KerasGenerator(Generator):
    target = "keras"
    template = "keras.py.j2"
    expr = KERAS_EXPR

    def model_context(self, g):
        self.lines: list[str] = []
        self.layout: dict[str, str] = {}
        self.converted: dict[tuple[str, str], str] = {}
        # Names the generated code must not reuse for the layers it adds: the spec's tensors, as
        # Keras layer names and as Python variables.
        self.taken = {t.name for t in g.inputs} | {n.name for n in g.nodes}
        self.taken |= {ident(name) for name in self.taken}
        inputs = []
        for t in g.inputs:
            name = ident(t.name)
            dtype = "int64" if t.dtype == "int" else None
            inputs.append(f"{name} = " + fn("keras.Input", shape=tuple(t.shape), name=t.name, **({"dtype": dtype} if dtype else {})))
            self.layout[t.name] = LOGICAL
        for n in g.nodes:
            want = n.layer.keras_layout
            if want == ANY:  # follow the first input; bring the others to it
                want = self.layout[n.inputs[0]]
            xs = [self.as_layout(i, want, g.shape_of(i)) for i in n.inputs]
            for var, ctor in n.layer.keras_prelude(n, self.fresh):
                self.lines.append(f"{ident(var)} = {ctor}({xs[0]})")
                xs = [ident(var)]
            self.lines.append(f"{ident(n.name)} = {n.layer.keras_call(n, n.layer.keras_layer(n, want), xs, self.fresh)}")
            self.layout[n.name] = want if len(n.shape) >= 2 else LOGICAL
        outs = [self.as_layout(o, LOGICAL, g.shape_of(o)) for o in g.outputs]
        return {
            "inputs": inputs,
            "layers": self.lines,
            "model_inputs": _one_or_list([ident(t.name) for t in g.inputs]),
            "model_outputs": _one_or_list(outs),
            "model_name_literal": lit(g.name),
        }

    def as_layout(self, tensor: str, want: str, shape) -> str:
        have = self.layout[tensor]
        if len(shape) < 2 or have == want:
            return ident(tensor)
        key = (tensor, want)
        if key not in self.converted:
            name = self.fresh(f"{tensor}_{'cl' if want == CHANNELS_LAST else 'cf'}")
            var = ident(name)
            comment = "  # channels last for Keras" if want == CHANNELS_LAST else "  # back to channels first"
            self.lines.append(f"{var} = {fn('layers.Permute', _permutation(len(shape), want), name=name)}({ident(tensor)}){comment}")
            self.converted[key] = var
            self.layout[var] = want
        return self.converted[key]

    def fresh(self, base: str) -> str:
        """`base`, or `base_2`, `base_3`, ...: a name for a layer dlspec adds (a layout change, explicit
        padding) that no tensor of the spec, nor another added layer, has."""
        name, n = base, 2
        while name in self.taken or ident(name) in self.taken:
            name, n = f"{base}_{n}", n + 1
        self.taken |= {name, ident(name)}
        return name

    def training_context(self):
        p = self.plan
        used = ["initializers", "layers", "ops"]  # the optimizer classes use initializers and ops
        clips = {k: v for k, v in (("clip_value", p.clip_value), ("clip_norm", p.clip_norm)) if v}
        return {
            "keras_imports": ", ".join(used),
            "optimizer": p.optimizer.keras("learning_rate", **clips),
            "d_optimizer": p.d_optimizer.keras("learning_rate", **clips) if p.d_optimizer else None,  # a GAN's discriminator
        }


def _one_or_list(names: list[str]) -> str:
    return names[0] if len(names) == 1 else "[" + ", ".join(names) + "]"
