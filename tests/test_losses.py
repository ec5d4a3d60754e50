"""Every loss means the same in both outputs: on the same predictions and targets, the generated
PyTorch and Keras `loss_fn` give the same value and the same gradient with respect to the
predictions; the tricky ones are also checked against formulas written independently here."""

from __future__ import annotations

import numpy as np
import pytest

from dlspec.check import check_text
from dlspec.runtime import load_generated
from dlspec.verify import keras_floatx

SPEC = """
model Net {{
  input x: [3]
  dense(4)
}}

train {{
  data: synthetic(task={task})
  loss: {loss}
}}
"""
BATCH, CLASSES = 6, 4


def _targets(task: str, rng) -> np.ndarray:
    if task == "classification":
        return rng.integers(0, CLASSES, BATCH)
    if task == "binary":
        return (rng.random((BATCH, CLASSES)) > 0.5).astype(np.float64)
    if task == "distribution":
        t = rng.random((BATCH, CLASSES)) ** 3
        t[0, 1] = 0.0  # a zero probability: KL's 0·log 0 must be 0 in both
        return t / t.sum(axis=1, keepdims=True)
    return rng.standard_normal((BATCH, CLASSES)) * 2


def _predictions(loss: str, rng) -> np.ndarray:
    raw = rng.standard_normal((BATCH, CLASSES)) * 2
    if "from_logits=false" in loss or loss.startswith("kl_divergence()"):
        p = np.exp(raw)
        p = p / p.sum(axis=1, keepdims=True)
        p[1, 2] = 1e-9  # below the clipping threshold: both must clip the same way
        return p if not loss.startswith("binary") else 1 / (1 + np.exp(-raw))
    if loss.startswith("nll"):
        return raw - np.log(np.exp(raw).sum(axis=1, keepdims=True))
    return raw


def _log_softmax(z):
    return z - np.log(np.exp(z).sum(axis=1, keepdims=True))


W = [1.0, 2.0, 0.5, 3.0]

# loss → (task, reference(prediction, target) or None)
CASES = {
    "mse()": ("regression", lambda p, t: np.mean((p - t) ** 2)),
    "mae()": ("regression", lambda p, t: np.mean(np.abs(p - t))),
    "huber(0.7)": ("regression", lambda p, t: np.mean(np.where(np.abs(p - t) <= 0.7, 0.5 * (p - t) ** 2, 0.7 * (np.abs(p - t) - 0.35)))),
    "smooth_l1(beta=0.5)": ("regression", lambda p, t: np.mean(np.where(np.abs(p - t) < 0.5, 0.5 * (p - t) ** 2 / 0.5, np.abs(p - t) - 0.25))),
    "cross_entropy()": ("classification", lambda p, t: -np.mean(_log_softmax(p)[np.arange(BATCH), t])),
    "cross_entropy(label_smoothing=0.2)": ("classification", lambda p, t: np.mean(
        -0.8 * _log_softmax(p)[np.arange(BATCH), t] - 0.2 / CLASSES * _log_softmax(p).sum(axis=1))),
    f"cross_entropy(class_weights={W})": ("classification", lambda p, t: np.sum(
        -np.array(W)[t] * _log_softmax(p)[np.arange(BATCH), t]) / np.array(W)[t].sum()),
    f"cross_entropy(label_smoothing=0.1, class_weights={W})": ("classification", lambda p, t: (
        0.9 * np.sum(-np.array(W)[t] * _log_softmax(p)[np.arange(BATCH), t]) / np.array(W)[t].sum()
        + 0.1 / CLASSES * np.sum(-(np.array(W) * _log_softmax(p)).sum(axis=1)) / np.array(W)[t].sum())),
    "cross_entropy(from_logits=false)": ("classification", None),
    f"cross_entropy(from_logits=false, label_smoothing=0.1, class_weights={W})": ("classification", None),
    "binary_cross_entropy()": ("binary", lambda p, t: np.mean(np.maximum(p, 0) - p * t + np.log1p(np.exp(-np.abs(p))))),
    "binary_cross_entropy(from_logits=false)": ("binary", None),
    "nll()": ("classification", lambda p, t: -np.mean(p[np.arange(BATCH), t])),
    "kl_divergence()": ("distribution", lambda p, t: np.mean(np.sum(np.where(t > 0, t * np.log(np.where(t > 0, t, 1)), 0)
                                                                     - t * np.log(np.maximum(p, 1e-7)), axis=1))),
    "kl_divergence(from_logits=true)": ("distribution", lambda p, t: np.mean(np.sum(
        np.where(t > 0, t * np.log(np.where(t > 0, t, 1)), 0) - t * _log_softmax(p), axis=1))),
    "cosine_similarity()": ("regression", lambda p, t: -np.mean(np.sum(p * t, 1) / np.linalg.norm(p, axis=1) / np.linalg.norm(t, axis=1))),
}


@pytest.mark.parametrize("loss", list(CASES))
def test_loss_value_and_gradient_agree(loss, tmp_path):
    import tensorflow as tf
    import torch

    task, reference = CASES[loss]
    rng = np.random.default_rng(len(loss))
    target, prediction = _targets(task, rng), _predictions(loss, rng)
    checked = check_text(SPEC.format(task=task, loss=loss))
    with keras_floatx("float64"):
        t_mod, k_mod = load_generated(checked, "torch", tmp_path), load_generated(checked, "keras", tmp_path)
        p = torch.tensor(prediction, requires_grad=True)
        t_loss = t_mod.loss_fn(p, torch.from_numpy(target))
        t_loss.backward()
        k_p = tf.Variable(prediction)
        with tf.GradientTape() as tape:
            k_loss = k_mod.loss_fn(tf.constant(target), tf.convert_to_tensor(k_p))
            k_loss = tf.reduce_mean(k_loss)  # a Keras loss function returns per-sample values
        k_grad = tape.gradient(k_loss, k_p).numpy()
    # float64 and the same formula: agreement to rounding (a few ulps of the summed terms).
    np.testing.assert_allclose(float(k_loss), t_loss.item(), rtol=1e-12)
    np.testing.assert_allclose(k_grad, p.grad.numpy(), rtol=1e-9, atol=1e-14)
    if reference is not None:
        np.testing.assert_allclose(t_loss.item(), reference(prediction, target), rtol=1e-12)
