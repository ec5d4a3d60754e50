"""Initial weights are drawn from the distribution the spec names, in both outputs: each sample of
weights passes a Kolmogorov-Smirnov test against that distribution (so a truncated normal, Keras's
HeNormal and GlorotNormal, would fail), and the two frameworks' samples against each other."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from dlspec.check import check_text
from dlspec.runtime import load_generated

SPEC = """
model Net {{
  input x: [6, 9, 9]
  conv2d(40, 3, init={init}) -> flatten() -> dense(50, init={init})
}}

train {{
  data: synthetic()
}}
"""
# fan_in and fan_out of the two layers: conv 6·3·3 in, 40·3·3 out; dense 40·7·7 in, 50 out.
FANS = {"conv2d": (54, 360), "dense": (1960, 50)}


def expected(init: str, fan_in: int, fan_out: int):
    """The named distribution, as a scipy.stats frozen distribution."""
    avg = (fan_in + fan_out) / 2
    return {
        "xavier_uniform": stats.uniform(-np.sqrt(3 / avg), 2 * np.sqrt(3 / avg)),
        "xavier_normal": stats.norm(0, np.sqrt(1 / avg)),
        "he_uniform": stats.uniform(-np.sqrt(6 / fan_in), 2 * np.sqrt(6 / fan_in)),
        "he_normal": stats.norm(0, np.sqrt(2 / fan_in)),
        "uniform(-0.2, 0.3)": stats.uniform(-0.2, 0.5),
        "normal(0.1, 0.02)": stats.norm(0.1, 0.02),
    }[init]


@pytest.mark.parametrize("init", ["xavier_uniform", "xavier_normal", "he_uniform", "he_normal", "uniform(-0.2, 0.3)", "normal(0.1, 0.02)"])
def test_initial_weights_follow_the_named_distribution(init, tmp_path):
    checked = check_text(SPEC.format(init=init))
    torch_model = load_generated(checked, "torch", tmp_path).build_model()
    keras_model = load_generated(checked, "keras", tmp_path).build_model()
    for layer, (fan_in, fan_out) in FANS.items():
        torch_w = getattr(torch_model, layer).weight.detach().numpy().ravel()
        keras_w = keras_model.get_layer(layer).get_weights()[0].ravel()
        dist = expected(init, fan_in, fan_out)
        # p > 1e-4: a false alarm about once in 10,000 runs; a truncated normal at these sample
        # sizes (thousands of weights) gives p far below 1e-10.
        for name, w in (("torch", torch_w), ("keras", keras_w)):
            assert stats.kstest(w, dist.cdf).pvalue > 1e-4, (layer, name)
        assert stats.ks_2samp(torch_w, keras_w).pvalue > 1e-4, layer


@pytest.mark.parametrize("gain", [1.0, 2.0])
def test_orthogonal_weights_are_scaled_semi_orthogonal_and_haar_distributed(gain, tmp_path):
    # Each layer's weight, as a matrix of its output units (rows) by their fan-in, has orthogonal
    # rows of length `gain` in both frameworks; its entries are distributed like those of a random
    # orthogonal matrix (Haar measure, scipy's ortho_group), not, say, a plain scaled normal.
    checked = check_text(SPEC.format(init=f"orthogonal(gain={gain})"))
    torch_model = load_generated(checked, "torch", tmp_path).build_model()
    keras_model = load_generated(checked, "keras", tmp_path).build_model()
    to_torch = {"conv2d": lambda k: k.transpose(3, 2, 0, 1), "dense": lambda k: k.T}
    for layer, (fan_in, _) in FANS.items():
        torch_w = getattr(torch_model, layer).weight.detach().numpy()
        keras_w = to_torch[layer](keras_model.get_layer(layer).get_weights()[0])
        haar = stats.ortho_group.rvs(fan_in, random_state=0)[: torch_w.shape[0]]
        for name, w in (("torch", torch_w), ("keras", keras_w)):
            m = w.reshape(w.shape[0], -1).astype(np.float64)
            np.testing.assert_allclose(m @ m.T, gain**2 * np.eye(m.shape[0]), atol=1e-4, err_msg=f"{layer} {name}")
            assert stats.ks_2samp(m.ravel() / gain, haar.ravel()).pvalue > 1e-4, (layer, name)
