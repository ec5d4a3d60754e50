"""Learning-rate schedules: lr(step) = lr * factor(step), a function of the optimizer step (from 0),
written once as an expression and rendered into both outputs: a `LambdaLR` in PyTorch, a
`LearningRateSchedule` in Keras (EQUIVALENCE.md trap 11)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Annotated, ClassVar, Literal

from pydantic import Field

from .registry import Entry, Float, NonNegInt, PositiveFloat, PositiveInt, lit, registry_of

SCHEDULES, schedule = registry_of("schedule")


@dataclass(frozen=True)
class Expr:
    """How a schedule formula names things in one backend's generated code."""

    step: str = "step"
    total: str = "total_steps"
    per_epoch: str = "steps_per_epoch"
    lib: str = "math"  # "math" in PyTorch's output, "ops" in Keras's (where step is a tensor)

    def f(self, name: str) -> str:
        return f"{self.lib}.{name}"

    def where(self, cond: str, a: str, b: str) -> str:
        return f"({a} if {cond} else {b})" if self.lib == "math" else f"ops.where({cond}, {a}, {b})"

    def count(self, cond: str) -> str:
        return f"({cond})" if self.lib == "math" else f"ops.cast({cond}, {self.step}.dtype)"

    def shifted(self, by: int) -> Expr:
        return Expr(f"({self.step} - {by})", f"({self.total} - {by})", self.per_epoch, self.lib)


TORCH_EXPR, KERAS_EXPR = Expr(lib="math"), Expr(lib="ops")
Unit = Literal["epoch", "step"]
Ratio = Annotated[Float, Field(ge=0.0, le=1.0)]


class Schedule(Entry):
    kind: ClassVar[str] = "schedule"
    warmup: NonNegInt = 0  # optimizer steps of linear warm-up before the schedule starts

    def factor(self, e: Expr) -> str:
        """The factor at step `e.step` of a schedule `e.total` steps long, as an expression."""
        raise NotImplementedError

    def formula(self, e: Expr) -> str:
        if not self.warmup:
            return self.factor(e)
        # Warm-up: factor (step + 1) / warmup, then the schedule, started afresh after it.
        return e.where(f"{e.step} < {self.warmup}", f"({e.step} + 1) / {self.warmup}", self.factor(e.shifted(self.warmup)))

    def unit(self, e: Expr) -> str:
        return e.per_epoch if getattr(self, "per", "epoch") == "epoch" else "1"


@schedule
class Constant(Schedule):
    """The optimizer's learning rate at every step (after the warm-up, if any)."""

    name = "constant"

    def factor(self, e):
        return "1.0"


@schedule
class Step(Schedule):
    """Multiply by `gamma` every `every` epochs (or steps, with per=step): gamma^floor(t / every)."""

    name = "step"
    positional = ("every",)
    example = "step(10, gamma=0.5)"
    every: PositiveInt
    gamma: PositiveFloat = 0.1
    per: Unit = "epoch"

    def factor(self, e):
        return f"{lit(self.gamma)} ** {e.f('floor')}({e.step} / ({self.every} * {self.unit(e)}))"


@schedule
class MultiStep(Schedule):
    """Multiply by `gamma` at each milestone (epochs, or steps with per=step)."""

    name = "multistep"
    positional = ("milestones",)
    example = "multistep([30, 60], gamma=0.1)"
    milestones: list[PositiveInt]
    gamma: PositiveFloat = 0.1
    per: Unit = "epoch"

    def problem(self):
        ok = self.milestones and all(a < b for a, b in zip(self.milestones, self.milestones[1:]))
        return None if ok else "milestones must be a non-empty, increasing list such as [30, 60]"

    def factor(self, e):
        passed = " + ".join(e.count(f"{e.step} >= {m} * {self.unit(e)}") for m in self.milestones)
        return f"{lit(self.gamma)} ** ({passed})"


@schedule
class Exponential(Schedule):
    """Multiply by `gamma` per epoch (or step): gamma^t, or gamma^floor(t) with staircase=true."""

    name = "exponential"
    positional = ("gamma",)
    example = "exponential(0.95)"
    gamma: PositiveFloat
    staircase: bool = False
    per: Unit = "epoch"

    def factor(self, e):
        t = f"{e.step} / {self.unit(e)}"
        return f"{lit(self.gamma)} ** {e.f('floor')}({t})" if self.staircase else f"{lit(self.gamma)} ** ({t})"


@schedule
class Cosine(Schedule):
    """Cosine annealing from lr to min_ratio * lr over the whole run, per optimizer step:
    min_ratio + (1 - min_ratio) * (1 + cos(pi * step / total_steps)) / 2."""

    name = "cosine"
    min_ratio: Ratio = 0.0

    def factor(self, e):
        return f"{lit(self.min_ratio)} + {lit(1.0 - self.min_ratio)} * 0.5 * (1.0 + {e.f('cos')}(math.pi * {e.step} / {e.total}))"


@schedule
class CosineRestarts(Schedule):
    """Cosine annealing with warm restarts (SGDR): cycles of `period` epochs (or steps), each
    `mult` times longer than the one before, each annealing from lr to min_ratio * lr."""

    name = "cosine_restarts"
    positional = ("period",)
    example = "cosine_restarts(10, mult=2)"
    period: PositiveInt
    mult: Annotated[Float, Field(ge=1.0)] = 1.0
    min_ratio: Ratio = 0.0
    per: Unit = "epoch"

    def factor(self, e):
        t = f"({e.step} / {self.unit(e)})"
        if self.mult == 1.0:
            start, length = f"{self.period} * {e.f('floor')}({t} / {self.period})", str(self.period)
        else:  # cycle i starts at period * (mult^i - 1) / (mult - 1); 1e-9 keeps exact starts in their cycle
            m = lit(self.mult)
            i = f"{e.f('floor')}({e.f('log')}(1.0 + {t} * ({m} - 1.0) / {self.period}) / {lit(math.log(self.mult))} + 1e-9)"
            start, length = f"{self.period} * ({m} ** {i} - 1.0) / ({m} - 1.0)", f"{self.period} * {m} ** {i}"
        return (f"{lit(self.min_ratio)} + {lit(1.0 - self.min_ratio)} * 0.5 * "
                f"(1.0 + {e.f('cos')}(math.pi * ({t} - {start}) / ({length})))")


@schedule
class OneCycle(Schedule):
    """The one-cycle policy (Smith): over the first pct_start of the run, rise from lr / div to lr
    along a cosine; then fall to lr / (div * final_div) along a cosine."""

    name = "one_cycle"
    pct_start: Annotated[Float, Field(gt=0.0, lt=1.0)] = 0.3
    div: Annotated[Float, Field(ge=1.0)] = 25.0
    final_div: Annotated[Float, Field(ge=1.0)] = 1e4

    def factor(self, e):
        lo, end, cos = lit(1.0 / self.div), lit(1.0 / (self.div * self.final_div)), e.f("cos")
        up = f"({lit(self.pct_start)} * {e.total})"
        rise = f"{lo} + (1.0 - {lo}) * 0.5 * (1.0 - {cos}(math.pi * {e.step} / {up}))"
        fall = f"{end} + (1.0 - {end}) * 0.5 * (1.0 + {cos}(math.pi * ({e.step} - {up}) / ({e.total} - {up})))"
        return e.where(f"{e.step} < {up}", rise, fall)


