"""Optimizers. PyTorch's update formulas are the meaning; the PyTorch output uses torch.optim and
the Keras output a small subclass of keras.optimizers.Optimizer computing the same update
(backends/templates/keras_optimizers/), since Keras's built-ins differ in epsilon placement and
initial accumulators (EQUIVALENCE.md trap 4)."""

from __future__ import annotations

from typing import Annotated, ClassVar

from pydantic import Field

from .registry import Code, Entry, Float, PositiveFloat, Rate, fn, registry_of

OPTIMIZERS, optimizer = registry_of("optimizer")
Beta = Rate  # in [0, 1)
NonNegFloat = Annotated[Float, Field(ge=0.0)]


class Optimizer(Entry):
    kind: ClassVar[str] = "optimizer"
    positional = ("lr",)
    torch_class: ClassVar[str]
    keras_class: ClassVar[str]  # a class defined by backends/templates/keras_optimizers/<name>.py.j2

    def torch_args(self) -> dict:
        raise NotImplementedError

    def keras_args(self) -> dict:
        raise NotImplementedError

    def torch(self, params: str) -> str:
        return fn(f"torch.optim.{self.torch_class}", Code(params), lr=self.lr, **self.torch_args())

    def keras(self, lr: str, **extra) -> str:
        return fn(self.keras_class, learning_rate=Code(lr), **self.keras_args(), **extra)

    @property
    def template(self) -> str:
        return f"keras_optimizers/{self.keras_class.lower()}.py.j2"




@optimizer
class SGD(Optimizer):
    """Stochastic gradient descent, with optional (Nesterov) momentum: buf = momentum * buf + grad,
    w -= lr * buf (Nesterov: w -= lr * (grad + momentum * buf))."""

    name = "sgd"
    torch_class = keras_class = "SGD"
    lr: PositiveFloat = 0.01
    momentum: Beta = 0.0
    nesterov: bool = False

    def problem(self):
        return "nesterov needs momentum above 0" if self.nesterov and not self.momentum else None

    def torch_args(self):
        return {"momentum": self.momentum, "nesterov": self.nesterov}

    def keras_args(self):
        return self.torch_args()


@optimizer
class Adam(Optimizer):
    """Adam (Kingma & Ba) with bias correction; eps is added outside the square root."""

    name = "adam"
    torch_class = keras_class = "Adam"
    lr: PositiveFloat = 1e-3
    beta1: Beta = 0.9
    beta2: Beta = 0.999
    eps: PositiveFloat = 1e-8

    def torch_args(self):
        return {"betas": (self.beta1, self.beta2), "eps": self.eps}

    def keras_args(self):
        return {"beta_1": self.beta1, "beta_2": self.beta2, "epsilon": self.eps}


@optimizer
class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov & Hutter): w -= lr * weight_decay * w, then the
    Adam step. Not an L2 penalty on the loss (that is `l2`)."""

    name = "adamw"
    torch_class = "AdamW"
    keras_class = "Adam"
    weight_decay: NonNegFloat = 0.01

    def torch_args(self):
        return super().torch_args() | {"weight_decay": self.weight_decay}

    def keras_args(self):
        return super().keras_args() | {"decoupled_decay": self.weight_decay}


@optimizer
class Adagrad(Optimizer):
    """Adagrad (Duchi et al.): sum += grad², w -= lr * grad / (sqrt(sum) + eps); the sum starts
    at `initial_accumulator` (0, PyTorch's value; Keras's built-in starts at 0.1)."""

    name = "adagrad"
    torch_class = keras_class = "Adagrad"
    lr: PositiveFloat = 0.01
    eps: PositiveFloat = 1e-10
    initial_accumulator: NonNegFloat = 0.0

    def torch_args(self):
        return {"eps": self.eps, "initial_accumulator_value": self.initial_accumulator}

    def keras_args(self):
        return {"epsilon": self.eps, "initial_accumulator": self.initial_accumulator}


@optimizer
class RMSprop(Optimizer):
    """RMSprop (Hinton): v = alpha * v + (1 - alpha) * grad², w -= lr * grad / (sqrt(v) + eps);
    `centered` subtracts the squared mean gradient; `momentum` accumulates the steps."""

    name = "rmsprop"
    torch_class = keras_class = "RMSprop"
    lr: PositiveFloat = 0.01
    alpha: Beta = 0.99
    eps: PositiveFloat = 1e-8
    momentum: Beta = 0.0
    centered: bool = False

    def torch_args(self):
        return {"alpha": self.alpha, "eps": self.eps, "momentum": self.momentum, "centered": self.centered}

    def keras_args(self):
        return {"alpha": self.alpha, "epsilon": self.eps, "momentum": self.momentum, "centered": self.centered}


@optimizer
class Adamax(Adam):
    """Adamax (Kingma & Ba): Adam with the infinity norm, u = max(beta2 * u, |grad| + eps)."""

    name = "adamax"
    torch_class = keras_class = "Adamax"
    lr: PositiveFloat = 2e-3


@optimizer
class NAdam(Adam):
    """NAdam (Dozat): Adam with Nesterov momentum, mu_t = beta1 * (1 - 0.5 * 0.96^(t * momentum_decay))."""

    name = "nadam"
    torch_class = keras_class = "NAdam"
    lr: PositiveFloat = 2e-3
    momentum_decay: NonNegFloat = 4e-3

    def torch_args(self):
        return super().torch_args() | {"momentum_decay": self.momentum_decay}

    def keras_args(self):
        return super().keras_args() | {"momentum_decay": self.momentum_decay}


