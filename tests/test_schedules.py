"""Every schedule gives the same learning-rate sequence over a whole run in both outputs, and that
sequence is the one the language reference defines (checked against independent formulas)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from dlspec.check import check_text
from dlspec.runtime import load_generated
from dlspec.verify import keras_floatx

SPEC = """
model Net {{
  input x: [4]
  dense(3)
}}

train {{
  data: synthetic(samples=80)
  optimizer: sgd(lr=0.5)
  schedule: {schedule}
  epochs: {epochs}
  batch_size: 16
}}
"""
EPOCHS, PER_EPOCH = 12, 5  # 80 samples in batches of 16
TOTAL = EPOCHS * PER_EPOCH


def cosine(t, length, lo=0.0):
    return lo + (1 - lo) * 0.5 * (1 + math.cos(math.pi * t / length))


# schedule → its factor at step s (from 0), written from the reference's definition.
REFERENCE = {
    "constant()": lambda s: 1.0,
    "constant(warmup=7)": lambda s: (s + 1) / 7 if s < 7 else 1.0,
    "step(3, gamma=0.5)": lambda s: 0.5 ** (s // (3 * PER_EPOCH)),
    "step(7, gamma=0.5, unit=step)": lambda s: 0.5 ** (s // 7),
    "multistep([2, 5, 9], gamma=0.3)": lambda s: 0.3 ** sum(s >= m * PER_EPOCH for m in (2, 5, 9)),
    "exponential(0.9)": lambda s: 0.9 ** (s / PER_EPOCH),
    "exponential(0.9, staircase=true)": lambda s: 0.9 ** (s // PER_EPOCH),
    "cosine()": lambda s: cosine(s, TOTAL),
    "cosine(min_ratio=0.1, warmup=10)": lambda s: (s + 1) / 10 if s < 10 else cosine(s - 10, TOTAL - 10, 0.1),
    "cosine_restarts(3)": lambda s: cosine(s / PER_EPOCH % 3, 3),
    "cosine_restarts(2, mult=2, min_ratio=0.2)": lambda s: _sgdr(s / PER_EPOCH, 2, 2, 0.2),
    "one_cycle(pct_start=0.25)": lambda s: _one_cycle(s, 0.25, 25.0, 1e4),
}


def _sgdr(t, period, mult, lo):
    start, length = 0.0, period
    while t >= start + length:
        start, length = start + length, length * mult
    return cosine(t - start, length, lo)


def _one_cycle(s, pct, div, final_div):
    up = pct * TOTAL
    if s < up:
        return 1 / div + (1 - 1 / div) * 0.5 * (1 - math.cos(math.pi * s / up))
    end = 1 / (div * final_div)
    return end + (1 - end) * 0.5 * (1 + math.cos(math.pi * (s - up) / (TOTAL - up)))


@pytest.mark.parametrize("schedule", list(REFERENCE))
def test_learning_rate_sequences_agree(schedule, tmp_path):
    import torch

    checked = check_text(SPEC.format(schedule=schedule, epochs=EPOCHS))
    with keras_floatx("float64"):
        t_mod, k_mod = load_generated(checked, "torch", tmp_path), load_generated(checked, "keras", tmp_path)
        model = torch.nn.Linear(1, 1)
        optimizer, scheduler = t_mod.build_optimizer(model, TOTAL, PER_EPOCH)
        torch_lrs = []
        for _ in range(TOTAL):
            torch_lrs.append(optimizer.param_groups[0]["lr"])
            optimizer.step()
            if scheduler is not None:
                scheduler.step()
        k_opt = k_mod.build_optimizer(TOTAL, PER_EPOCH)
        keras_lrs = []
        for s in range(TOTAL):  # what the optimizer itself reads at each iteration
            k_opt.iterations.assign(s)
            keras_lrs.append(float(k_opt.learning_rate))
    expected = [0.5 * REFERENCE[schedule](s) for s in range(TOTAL)]
    np.testing.assert_allclose(torch_lrs, expected, rtol=1e-12)
    np.testing.assert_allclose(keras_lrs, expected, rtol=1e-12)


PLATEAU_SPEC = SPEC.replace("epochs: {epochs}", "epochs: {epochs}\n  data: synthetic(samples=80, validation=0.2)").replace(
    "  data: synthetic(samples=80)\n", "")


@pytest.mark.parametrize("schedule", ["plateau(factor=0.5, patience=2)",
                                      "plateau(factor=0.1, patience=1, min_delta=0.05, min_lr=0.004)",
                                      "plateau(factor=0.5, patience=3, monitor=loss, mode=max)"])
def test_plateau_reduces_the_learning_rate_at_the_same_epochs(schedule, tmp_path):
    # PyTorch's ReduceLROnPlateau counts patience one epoch later than Keras's callback: the
    # generated code must compensate, or these sequences would part after the first plateau.
    import keras
    import torch

    checked = check_text(PLATEAU_SPEC.format(schedule=schedule, epochs=EPOCHS))
    monitored = [1.0, 0.9, 0.92, 0.91, 0.95, 0.5, 0.49, 0.48, 0.6, 0.6, 0.6, 0.6, 0.1, 0.3, 0.3, 0.3]
    t_mod, k_mod = load_generated(checked, "torch", tmp_path), load_generated(checked, "keras", tmp_path)
    optimizer, _ = t_mod.build_optimizer(torch.nn.Linear(1, 1), TOTAL, PER_EPOCH)
    plateau = t_mod.build_plateau(optimizer)
    model = k_mod.build_model()
    model.compile(optimizer=k_mod.build_optimizer(TOTAL, PER_EPOCH), loss=k_mod.loss_fn)
    callback = k_mod.plateau_callback()
    callback.set_model(model)
    callback.on_train_begin()
    monitor = checked.plan.schedule.monitor
    torch_lrs, keras_lrs = [], []
    for epoch, value in enumerate(monitored):
        plateau.step(value)
        callback.on_epoch_end(epoch, {monitor: value})
        torch_lrs.append(optimizer.param_groups[0]["lr"])
        keras_lrs.append(float(keras.ops.convert_to_numpy(model.optimizer.learning_rate)))
    np.testing.assert_allclose(keras_lrs, torch_lrs, rtol=1e-6)  # Keras keeps the rate in float32
    assert torch_lrs[-1] < torch_lrs[0]
