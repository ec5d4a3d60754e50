"""Training steps mean the same in both outputs: from the same weights and batches, k optimizer
steps (with a learning-rate schedule in play) leave the same parameters in PyTorch and Keras.

float64 throughout (EQUIVALENCE.md rule 5), and the whole test runs with Keras's floatx set to
float64 so that the schedule's learning rate is not rounded to float32 either."""

from __future__ import annotations

import numpy as np
import pytest

from dlspec.check import check_text
from dlspec.runtime import load_generated
from dlspec.transfer import keras_to_torch, torch_to_keras
from dlspec.verify import keras_floatx, randomize

from .equality import float64_training

SPEC = """
model Net {{
  input x: [3, 6, 5]
  x -> conv2d(4, 3, padding=same, activation=tanh) -> flatten() -> dense(12) -> layernorm()
  reshape((3, 4)) -> gru(5, return_sequences=true) -> lstm(6, return_sequences=true) -> rnn(5) -> dense(4)
}}

train {{
  data: synthetic(samples=64)
  optimizer: {optimizer}
  schedule: {schedule}
  epochs: 2
  batch_size: 16
  {extra}
}}
"""

TOKENS_SPEC = """
model Net {{
  input tokens: int[7]
  tokens -> embedding(11, 5) -> gru(6) -> dense(4)
}}

train {{
  data: synthetic(samples=64, vocab=11)
  optimizer: {optimizer}
  schedule: {schedule}
  epochs: 2
  batch_size: 16
}}
"""

OPTIMIZERS = [
    "sgd(lr=0.1)",
    "sgd(lr=0.1, momentum=0.9)",
    "sgd(lr=0.1, momentum=0.8, nesterov=true)",
    "adam(lr=0.01)",
    "adam(lr=0.01, beta1=0.5, beta2=0.9, eps=1e-3)",  # a large eps shows where it is added
    "adamw(lr=0.01, weight_decay=0.1)",
    "adagrad(lr=0.1)",
    "adagrad(lr=0.1, initial_accumulator=0.5, eps=1e-3)",
    "rmsprop(lr=0.01)",
    "rmsprop(lr=0.01, momentum=0.5, centered=true, eps=1e-3)",
    "adamax(lr=0.01, eps=1e-3)",
    "nadam(lr=0.01)",
]
STEPS = 4


@pytest.mark.parametrize("schedule", ["constant()", "cosine(min_ratio=0.1)"])
@pytest.mark.parametrize("optimizer", OPTIMIZERS)
def test_parameters_after_k_steps_agree(optimizer, schedule, tmp_path):
    _run(SPEC.format(optimizer=optimizer, schedule=schedule, extra=""), tmp_path)


@pytest.mark.parametrize("clip", ["clip_norm: 0.05", "clip_value: 0.002", "clip_value: 0.01\n  clip_norm: 0.03"])
@pytest.mark.parametrize("optimizer", ["sgd(lr=0.1, momentum=0.9)", "adam(lr=0.01)"])
def test_clipped_steps_agree(optimizer, clip, tmp_path):
    # Small thresholds, so that clipping acts at every step; the global norm includes the
    # PyTorch's +1e-6 (clip_grad_norm_), which a per-variable or Keras-style clip would miss.
    _run(SPEC.format(optimizer=optimizer, schedule="constant()", extra=clip), tmp_path)


@pytest.mark.parametrize("optimizer", ["sgd(lr=0.1, momentum=0.9)", "adam(lr=0.01)", "rmsprop(lr=0.01)"])
def test_embedding_updates_agree(optimizer, tmp_path):
    # Keras hands embedding gradients over as sparse slices; PyTorch's are dense.
    _run(TOKENS_SPEC.format(optimizer=optimizer, schedule="cosine()"), tmp_path)


@pytest.mark.parametrize("penalty", ["l2: 0.01", "l1: 0.001", "l1: 0.001\n  l2: 0.01"])
@pytest.mark.parametrize("optimizer", ["sgd(lr=0.1, momentum=0.9)", "adam(lr=0.01)"])
def test_penalized_steps_agree(optimizer, penalty, tmp_path):
    # The penalty covers the kernels of conv, dense and GRU layers (not biases, not layernorm):
    # a penalty on other weights, or optimizer weight decay instead of a loss term, would differ.
    _run(SPEC.format(optimizer=optimizer, schedule="constant()", extra=penalty), tmp_path)


def _run(text, tmp_path):

    with float64_training():
        _steps(check_text(text), tmp_path)


def _steps(checked, tmp_path):
    import keras
    import torch

    graph = checked.graph
    rng = np.random.default_rng(0)
    x = graph.inputs[0]
    batches = [(rng.integers(0, 11, (8, *x.shape)) if x.dtype == "int" else rng.standard_normal((8, *x.shape)),
                rng.integers(0, 4, 8)) for _ in range(STEPS)]
    with keras_floatx("float64"):
        # Loaded here, so that the module-level loss object computes in float64 too.
        t_mod, k_mod = load_generated(checked, "torch", tmp_path), load_generated(checked, "keras", tmp_path)
        t_model = t_mod.build_model().double()
        randomize(t_model, seed=1)
        k_model = k_mod.build_model()
        torch_to_keras(graph, t_model, k_model)
        k_mod.compile_model(k_model, STEPS)
        t_opt, t_sched = t_mod.build_optimizer(t_model, STEPS)
        t_lrs, k_lrs = [], []
        for x, y in batches:
            t_lrs.append(t_opt.param_groups[0]["lr"])
            k_lrs.append(float(keras.ops.convert_to_numpy(k_model.optimizer.learning_rate)))
            t_mod.train_step(t_model, t_opt, torch.from_numpy(x), torch.from_numpy(y))
            if t_sched is not None:
                t_sched.step()
            k_model.train_on_batch(x, y)
        # The learning-rate sequence is the same function of the step (EQUIVALENCE.md trap 11).
        np.testing.assert_allclose(k_lrs, t_lrs, rtol=1e-12)
        schedule = checked.plan.schedule
        assert (len(set(t_lrs)) > 1) == (schedule.name != "constant" or schedule.warmup > 0), t_lrs
        # Compare in PyTorch's layout: copy Keras's weights into a fresh PyTorch model.
        back = t_mod.build_model().double()
        keras_to_torch(graph, k_model, back)
    expected, got = t_model.state_dict(), back.state_dict()
    for name, value in expected.items():
        if name.endswith("num_batches_tracked"):  # a count PyTorch keeps, read only without momentum
            continue
        # Steps of size ~lr: agreement to 1e-9 relative, or 1e-8 of a step for values near 0, leaves room
        # only for float64 rounding (which g/sqrt(accumulator) magnifies where a gradient is tiny:
        # 1.7e-11 seen with Adagrad at lr 0.003); a wrong convention moves a weight >= 1e-4 of a step.
        atol = 1e-8 * checked.plan.optimizer.lr
        np.testing.assert_allclose(got[name].numpy(), value.numpy(), rtol=1e-9, atol=atol, err_msg=name)
    moved = max(float((expected[k] - v).abs().max()) for k, v in t_mod.build_model().double().state_dict().items())
    assert moved > 0


BATCHNORM_SPEC = """
model Net {
  input x: [3, 6, 5]
  x -> conv2d(2, 3, padding=same) -> batchnorm() -> relu() -> flatten() -> batchnorm(momentum=0.3) -> dense(4)
}

train {
  data: synthetic(samples=64)
  optimizer: sgd(lr=0.01)
  epochs: 2
  batch_size: 16
}
"""


def test_batch_norm_statistics_update_alike(tmp_path):
    # PyTorch updates the running variance with the batch's unbiased variance, Keras with the
    # biased one (0.15% apart here, found by tests/test_training_properties.py): the Keras output
    # carries a BatchNormalization subclass with PyTorch's rule.
    _run(BATCHNORM_SPEC, tmp_path)


LAYER_PENALTY_SPEC = """
model Net {{
  input x: [3, 6, 5]
  x -> conv2d(4, 3, padding=same, l2=0.05, max_norm=0.5) -> tanh() -> flatten()
  dense(12, l1=0.01, l2=0) -> reshape((3, 4)) -> gru(5, l1=0.002) -> dense(4, max_norm=0.3)
}}

train {{
  data: synthetic(samples=64)
  optimizer: {optimizer}
  epochs: 2
  batch_size: 16
  l2: 0.001
}}
"""


@pytest.mark.parametrize("optimizer", ["sgd(lr=0.1, momentum=0.9)", "adam(lr=0.05)"])
def test_layer_penalties_and_max_norm_steps_agree(optimizer, tmp_path):
    # A layer's own l1=/l2= replace the train section's for its kernels (l2=0 exempts it); max_norm
    # rescales each output unit's incoming weights after every step, as Keras's MaxNorm does
    # (including its 1e-7, which shrinks even weights under the limit a little).
    text = LAYER_PENALTY_SPEC.format(optimizer=optimizer)
    _run(text, tmp_path)


def test_layer_penalties_mean_what_the_reference_says(tmp_path):
    import torch

    checked = check_text(LAYER_PENALTY_SPEC.format(optimizer="sgd(lr=1.0)"))
    module = load_generated(checked, "torch", tmp_path)
    model = module.build_model()
    names = [n.name for n in checked.graph.nodes if n.op in ("conv2d", "dense", "gru")]
    conv, dense, gru, out = (getattr(model, n) for n in names)
    expected = (0.05 * (conv.weight ** 2).sum() + 0.01 * dense.weight.abs().sum()
                + 0.002 * (gru.weight_ih_l0.abs().sum() + gru.weight_hh_l0.abs().sum())
                + 0.001 * (gru.weight_ih_l0 ** 2).sum() + 0.001 * (gru.weight_hh_l0 ** 2).sum()
                + 0.001 * (out.weight ** 2).sum())
    torch.testing.assert_close(module.penalty(model), expected)
    # one big step pushes the weights far; max-norm brings each unit's row back to norm <= c
    x = torch.randn(16, 3, 6, 5)
    module.train_step(model, torch.optim.SGD(model.parameters(), lr=10.0), x, torch.randint(0, 4, (16,)))
    assert conv.weight.flatten(1).norm(dim=1).max() <= 0.5 + 1e-6
    assert out.weight.norm(dim=1).max() <= 0.3 + 1e-6
