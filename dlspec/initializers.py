"""Weight initializers. Each names one distribution and renders it exactly in both backends
(Keras's GlorotNormal and HeNormal are truncated, PyTorch's are not: we emit the untruncated
`VarianceScaling` so both draw from the distribution the spec names)."""

from __future__ import annotations

from typing import ClassVar

from .registry import Code, Entry, Float, PositiveFloat, fn, registry_of

INITIALIZERS, initializer = registry_of("initializer")


class Initializer(Entry):
    kind: ClassVar[str] = "initializer"

    def torch(self, target: str) -> str:
        """A statement initializing the tensor expression `target` in place."""
        raise NotImplementedError

    def keras(self) -> str:
        """An expression for a Keras initializer."""
        raise NotImplementedError


def _vs(scale: float, mode: str, distribution: str) -> str:
    return fn("initializers.VarianceScaling", scale=scale, mode=mode, distribution=distribution)


@initializer
class XavierUniform(Initializer):
    """U(-a, a) with a = sqrt(6 / (fan_in + fan_out)) (Glorot & Bengio)."""

    name = "xavier_uniform"

    def torch(self, target):
        return f"nn.init.xavier_uniform_({target})"

    def keras(self):
        return _vs(1.0, "fan_avg", "uniform")


@initializer
class XavierNormal(Initializer):
    """N(0, 2 / (fan_in + fan_out)), not truncated."""

    name = "xavier_normal"

    def torch(self, target):
        return f"nn.init.xavier_normal_({target})"

    def keras(self):
        return _vs(1.0, "fan_avg", "untruncated_normal")


@initializer
class HeUniform(Initializer):
    """U(-a, a) with a = sqrt(6 / fan_in) (He et al., for ReLU)."""

    name = "he_uniform"

    def torch(self, target):
        return f'nn.init.kaiming_uniform_({target}, mode="fan_in", nonlinearity="relu")'

    def keras(self):
        return _vs(2.0, "fan_in", "uniform")


@initializer
class HeNormal(Initializer):
    """N(0, 2 / fan_in), not truncated."""

    name = "he_normal"

    def torch(self, target):
        return f'nn.init.kaiming_normal_({target}, mode="fan_in", nonlinearity="relu")'

    def keras(self):
        return _vs(2.0, "fan_in", "untruncated_normal")


@initializer
class Uniform(Initializer):
    """U(low, high)."""

    name = "uniform"
    positional = ("low", "high")
    low: Float = -0.05
    high: Float = 0.05

    def problem(self):
        return None if self.low < self.high else "`low` must be below `high`"

    def torch(self, target):
        return fn("nn.init.uniform_", Code(target), a=self.low, b=self.high)

    def keras(self):
        return fn("initializers.RandomUniform", minval=self.low, maxval=self.high)


@initializer
class Normal(Initializer):
    """N(mean, std²), not truncated."""

    name = "normal"
    positional = ("mean", "std")
    mean: Float = 0.0
    std: PositiveFloat = 0.05

    def torch(self, target):
        return fn("nn.init.normal_", Code(target), mean=self.mean, std=self.std)

    def keras(self):
        return fn("initializers.RandomNormal", mean=self.mean, stddev=self.std)


@initializer
class Orthogonal(Initializer):
    """A (semi-)orthogonal matrix scaled by `gain` (Saxe et al.)."""

    name = "orthogonal"
    gain: PositiveFloat = 1.0

    def torch(self, target):
        return fn("nn.init.orthogonal_", Code(target), gain=self.gain)

    def keras(self):
        return fn("initializers.Orthogonal", gain=self.gain)


@initializer
class Zeros(Initializer):
    name = "zeros"

    def torch(self, target):
        return f"nn.init.zeros_({target})"

    def keras(self):
        return '"zeros"'


@initializer
class Ones(Initializer):
    name = "ones"

    def torch(self, target):
        return f"nn.init.ones_({target})"

    def keras(self):
        return '"ones"'


XAVIER = XavierUniform()
ORTHOGONAL = Orthogonal()
ZEROS = Zeros()
