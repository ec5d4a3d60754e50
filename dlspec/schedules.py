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
    """How schedule code names things in one backend's generated `lr_factor(step, ...)`."""

    lib: str  # "math" in PyTorch's output; "ops" in Keras's, where `step` is a tensor

    def f(self, name: str) -> str:
        return f"{self.lib}.{name}"

    def where(self, cond: str, a: str, b: str) -> str:
        return f"{a} if {cond} else {b}" if self.lib == "math" else f"ops.where({cond}, {a}, {b})"

    def count(self, cond: str) -> str:
        return f"({cond})" if self.lib == "math" else f"ops.cast({cond}, step.dtype)"


TORCH_EXPR, KERAS_EXPR = Expr("math"), Expr("ops")
Monitor = Literal["loss", "val_loss", "accuracy", "val_accuracy"]  # what plateau and early stopping watch
Mode = Literal["auto", "min", "max"]


def higher_is_better(monitor: str, mode: str) -> bool:
    """`auto`: accuracies should rise, losses fall."""
    return mode == "max" or (mode == "auto" and "accuracy" in monitor)
Unit = Literal["epoch", "step"]
Ratio = Annotated[Float, Field(ge=0.0, le=1.0)]
Code = tuple[list[str], str]  # statements, then the factor's expression


def anneal(e: Expr, lo: float, phase: str, rising: bool = False) -> str:
    """A half-cosine from 1 down to `lo` as `phase` goes from 0 to 1 (from `lo` up to 1 if rising)."""
    curve = f"0.5 * (1.0 {'-' if rising else '+'} {e.f('cos')}(math.pi * {phase}))"
    return curve if lo == 0 else f"{lit(lo)} + {lit(1.0 - lo)} * {curve}"


class Schedule(Entry):
    kind: ClassVar[str] = "schedule"
    per_epoch: ClassVar[bool] = False  # driven by a metric at the ends of epochs, not by the step
    warmup: NonNegInt = 0  # optimizer steps of linear warm-up before the schedule starts

    def per_step(self, e: Expr) -> Code:
        """The factor at optimizer step `step` of a schedule `total_steps` long (`steps_per_epoch`
        is known too): statements, then an expression."""
        raise NotImplementedError

    def body(self, e: Expr) -> list[str]:
        """The body of the generated `lr_factor(step, total_steps, steps_per_epoch)`."""
        lines, value = self.per_step(e)
        if not self.warmup:
            return [*lines, f"return {value}"]
        w = self.warmup
        return [f"warm = (step + 1) / {w}  # linear warm-up over the first {w} steps",
                f"step, total_steps = step - {w}, total_steps - {w}  # then the schedule, from its start",
                *lines, f"return {e.where('step < 0', 'warm', value)}"]

    def per(self) -> str:
        return "steps_per_epoch" if getattr(self, "unit", "epoch") == "epoch" else "1"

    def elapsed(self) -> list[str]:
        return [f"t = step / {self.per()}  # in {getattr(self, 'unit', 'epoch')}s"] if self.per() != "1" else ["t = step"]


@schedule
class Constant(Schedule):
    """The optimizer's learning rate at every step (after the warm-up, if any)."""

    name = "constant"

    def per_step(self, e):
        return [], "1.0"


@schedule
class Step(Schedule):
    """Multiply by `gamma` every `every` epochs (or steps, with unit=step): gamma^floor(t / every)."""

    name = "step"
    positional = ("every",)
    example = "step(10, gamma=0.5)"
    every: PositiveInt
    gamma: PositiveFloat = 0.1
    unit: Unit = "epoch"

    def per_step(self, e):
        return self.elapsed(), f"{lit(self.gamma)} ** {e.f('floor')}(t / {self.every})"


@schedule
class MultiStep(Schedule):
    """Multiply by `gamma` at each milestone (epochs, or steps with unit=step)."""

    name = "multistep"
    positional = ("milestones",)
    example = "multistep([30, 60], gamma=0.1)"
    milestones: list[PositiveInt]
    gamma: PositiveFloat = 0.1
    unit: Unit = "epoch"

    def problem(self):
        ok = self.milestones and all(a < b for a, b in zip(self.milestones, self.milestones[1:]))
        return None if ok else "milestones must be a non-empty, increasing list such as [30, 60]"

    def per_step(self, e):
        passed = " + ".join(e.count(f"t >= {m}") for m in self.milestones)
        return [*self.elapsed(), f"passed = {passed}  # milestones reached"], f"{lit(self.gamma)} ** passed"


@schedule
class Exponential(Schedule):
    """Multiply by `gamma` per epoch (or step): gamma^t, or gamma^floor(t) with staircase=true."""

    name = "exponential"
    positional = ("gamma",)
    example = "exponential(0.95)"
    gamma: PositiveFloat
    staircase: bool = False
    unit: Unit = "epoch"

    def per_step(self, e):
        power = f"{e.f('floor')}(t)" if self.staircase else "t"
        return self.elapsed(), f"{lit(self.gamma)} ** {power}"


@schedule
class Cosine(Schedule):
    """Cosine annealing from lr to min_ratio * lr over the whole run, per optimizer step:
    min_ratio + (1 - min_ratio) * (1 + cos(pi * step / total_steps)) / 2."""

    name = "cosine"
    min_ratio: Ratio = 0.0

    def per_step(self, e):
        return [], anneal(e, self.min_ratio, "step / total_steps")


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
    unit: Unit = "epoch"

    def per_step(self, e):
        p = self.period
        if self.mult == 1.0:
            lines = [f"start, length = {p} * {e.f('floor')}(t / {p}), {p}  # the current cycle"]
        else:  # cycle i starts at period * (mult^i - 1) / (mult - 1); 1e-9 keeps exact starts in their cycle
            m = lit(self.mult)
            lines = [f"cycle = {e.f('floor')}({e.f('log')}(1.0 + t * ({m} - 1.0) / {p}) / {lit(math.log(self.mult))} + 1e-9)",
                     f"start, length = {p} * ({m} ** cycle - 1.0) / ({m} - 1.0), {p} * {m} ** cycle"]
        return [*self.elapsed(), *lines], anneal(e, self.min_ratio, "(t - start) / length")


@schedule
class OneCycle(Schedule):
    """The one-cycle policy (Smith): over the first pct_start of the run, rise from lr / div to lr
    along a cosine; then fall to lr / (div * final_div) along a cosine."""

    name = "one_cycle"
    pct_start: Annotated[Float, Field(gt=0.0, lt=1.0)] = 0.3
    div: Annotated[Float, Field(ge=1.0)] = 25.0
    final_div: Annotated[Float, Field(ge=1.0)] = 1e4

    def per_step(self, e):
        lines = [f"peak = {lit(self.pct_start)} * total_steps  # the step where lr is highest",
                 f"rise = {anneal(e, 1.0 / self.div, 'step / peak', rising=True)}",
                 f"fall = {anneal(e, 1.0 / (self.div * self.final_div), '(step - peak) / (total_steps - peak)')}"]
        return lines, e.where("step < peak", "rise", "fall")


@schedule
class Plateau(Schedule):
    """Multiply the learning rate by `factor` when `monitor` has not improved by more than min_delta
    for `patience` epochs (Keras's ReduceLROnPlateau rule, in both outputs), down to min_lr."""

    name = "plateau"
    example = "plateau(factor=0.5, patience=3)"
    per_epoch: ClassVar[bool] = True
    factor: Annotated[Float, Field(gt=0.0, lt=1.0)] = 0.1
    patience: PositiveInt = 5
    monitor: Monitor = "val_loss"
    min_delta: Annotated[Float, Field(ge=0.0)] = 0.0
    mode: Mode = "auto"
    min_lr: Annotated[Float, Field(ge=0.0)] = 0.0

    def problem(self):
        return "plateau cannot follow a warm-up in this version" if self.warmup else None

    @property
    def higher_is_better(self) -> bool:
        return higher_is_better(self.monitor, self.mode)

    def per_step(self, e):
        return [], "1.0"  # no change per step; the changes come at the ends of epochs
