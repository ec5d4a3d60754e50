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
