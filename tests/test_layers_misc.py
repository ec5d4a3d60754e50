"""Element-wise merges, scale (squeeze-and-excitation), permute, the VAE layers (sample_normal,
kl_normal) and graph_conv: both outputs compute the same function in float64 on random shapes
whose dimensions all differ; kl_normal and graph_conv also match a numpy reference; sample_normal
draws N(mean, exp(log_var)) in training in both outputs; shape errors say what is wrong.

Models here have one input, so a second operand (a log-variance, an adjacency matrix) is computed
from it: that also puts the operand through layers, in both outputs."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dlspec.backends.codegen import generate
from dlspec.check import check_text
from dlspec.diagnostics import DlsError
from dlspec.verify import build_pair, run_pair

from .equality import assert_float32_agrees, assert_same_function, spec_of

FEW = settings(max_examples=8)


def distinct(n: int, lo: int = 2, hi: int = 9):
    """n different sizes, so that a wrong transpose or broadcast cannot pass by symmetry."""
    return st.lists(st.integers(lo, hi), min_size=n, max_size=n, unique=True)


def same_shape_branch(shape) -> str:
    """A layer that keeps `shape` and has weights (so the branches differ from the input)."""
    c = shape[0]
    return {1: f"dense({c})", 2: f"conv1d({c}, 1)", 3: f"conv2d({c}, 1)"}[len(shape)]


def shape_text(shape) -> str:
    return "[" + ", ".join(map(str, shape)) + "]"


# --- element-wise merges, scale, permute ----------------------------------------------------------

@FEW
@given(op=st.sampled_from(["multiply", "subtract", "average", "maximum"]), rank=st.integers(1, 3), data=st.data())
def test_merges_compute_the_same_function(op, rank, data):
    shape = data.draw(distinct(rank))
    n = 2 if op == "subtract" else data.draw(st.integers(2, 3))
    lines = [f"  input x: {shape_text(shape)}"]
    lines += [f"  x -> {same_shape_branch(shape)} -> b{i}" for i in range(n - 1)]
    # x arrives logical in Keras, the conv branches channels last: the merge must line them up
    lines += [f"  ({', '.join(['x'] + [f'b{i}' for i in range(n - 1)])}) -> {op}() -> y", "  output y"]
    assert_same_function(spec_of("\n".join(lines)))


@FEW
@given(shape=distinct(3, 2, 9), reduction=st.integers(1, 3))
def test_squeeze_and_excitation_scales_each_channel(shape, reduction):
    c = shape[0]
    body = f"""  input x: {shape_text(shape)}
  x -> conv2d({c}, 3, padding=same) -> h
  h -> global_avgpool() -> dense({max(c // reduction, 1)}) -> relu() -> dense({c}) -> sigmoid() -> s
  (h, s) -> scale() -> flatten() -> dense(3)"""
    assert_same_function(spec_of(body))


@FEW
@given(shape=distinct(2, 2, 9))
def test_scale_of_a_one_dimensional_map(shape):
    c = shape[0]
    # the map from a convolution (channels last in Keras) and straight from the input (logical)
    body = f"""  input x: {shape_text(shape)}
  x -> global_maxpool() -> dense({c}) -> s
  x -> conv1d({c}, 1) -> h
  (h, s) -> scale() -> a
  (x, s) -> scale() -> b
  (a, b) -> concat(1)"""
    assert_same_function(spec_of(body))


def test_scale_multiplies_channels_not_the_last_axis():
    """Against numpy: y[c, h, w] = x[c, h, w] · s[c], with the [C] weights made from x."""
    text = spec_of("  input x: [3, 4, 5]\n  x -> global_avgpool() -> s\n  (x, s) -> scale()")
    x = np.random.default_rng(1).standard_normal((2, 3, 4, 5))
    t_out, k_out = _outputs(text, x)
    expected = x * x.mean(axis=(2, 3))[:, :, None, None]
    np.testing.assert_allclose(t_out, expected, rtol=1e-12)
    np.testing.assert_allclose(k_out, expected, rtol=1e-12)


@FEW
@given(rank=st.integers(2, 3), data=st.data())
def test_permute_reorders_logical_axes(rank, data):
    shape = data.draw(distinct(rank))
    dims = tuple(data.draw(st.permutations(range(rank))))
    dims_text = "(" + ", ".join(map(str, dims)) + ("," if rank == 1 else "") + ")"
    conv = same_shape_branch(shape)
    body = f"""  input x: {shape_text(shape)}
  x -> {conv} -> permute({dims_text}) -> a
  x -> permute({dims_text}) -> b
  (a, b) -> add()"""
    checked = check_text(spec_of(body))
    assert checked.graph.shape_of(checked.graph.outputs[0]) == tuple(shape[d] for d in dims)
    assert_same_function(spec_of(body))


# --- VAE: sample_normal and kl_normal -------------------------------------------------------------

@FEW
@given(features=st.integers(2, 9), latent=st.integers(2, 9), steps=st.one_of(st.none(), st.integers(2, 6)))
def test_vae_layers_compute_the_same_function(features, latent, steps):
    shape = f"[{features}]" if steps is None else f"[{steps}, {features}]"
    body = f"""  input x: {shape}
  x -> dense({latent}) -> mean
  x -> dense({latent}) -> log_var
  (mean, log_var) -> sample_normal() -> z
  (mean, log_var) -> kl_normal() -> kl
  z -> dense({features + 1}) -> flatten() -> r
  (r, kl) -> concat()"""
    assert_same_function(spec_of(body))


def test_kl_normal_of_a_feature_map_sums_every_axis():
    # Keras holds the convolution's output channels last; the sum must not care.
    body = """  input x: [3, 5, 7]
  x -> conv2d(4, 1) -> mean
  x -> conv2d(4, 3, padding=same) -> log_var
  (mean, log_var) -> kl_normal()"""
    assert_same_function(spec_of(body))


def test_kl_normal_matches_the_formula():
    text = spec_of("  input x: [3, 4, 5]\n  (x, x) -> kl_normal()")
    x = np.random.default_rng(2).standard_normal((6, 3, 4, 5))
    expected = -0.5 * (1 + x - x**2 - np.exp(x)).sum(axis=(1, 2, 3))[:, None]
    for out in _outputs(text, x):
        np.testing.assert_allclose(out, expected, rtol=1e-12)
        assert out.shape == (6, 1)


def test_kl_normal_is_zero_for_the_standard_normal():
    text = spec_of("  input x: [4]\n  (x, x) -> subtract() -> zero\n  (zero, zero) -> kl_normal()")
    for out in _outputs(text, np.ones((2, 4))):
        np.testing.assert_array_equal(out, np.zeros((2, 1)))


SAMPLES = 4000


@pytest.mark.parametrize("backend", ["torch", "keras"])
def test_sample_normal_draws_from_normal_mean_exp_log_var_in_training(backend):
    """In training z = mean + exp(0.5 · log_var) · ε: (z − mean) / exp(0.5 · log_var) must be
    standard normal (Kolmogorov–Smirnov over 4000 × 3 draws, seeded; the critical value at
    p = 0.001 is 0.018), and independent of the sample (mean and log_var vary per sample)."""
    from scipy import stats

    z, mean, log_var = _training_draws(backend)
    assert np.ptp(log_var) > 1.0 and np.ptp(mean) > 1.0  # the draws cover many variances
    eps = ((z - mean) / np.exp(0.5 * log_var)).ravel()
    assert stats.kstest(eps, "norm").pvalue > 0.001
    # and mean and variance directly: the sample mean's standard error is 1 / sqrt(12000) ≈ 0.009
    assert abs(eps.mean()) < 0.04 and abs(eps.var() - 1) < 0.06


def test_sample_normal_draws_afresh_at_each_training_call():
    import torch

    checked = check_text(spec_of("  input x: [2]\n  x -> dense(3) -> m\n  (m, m) -> sample_normal()"))
    torch_model, keras_model = build_pair(checked, "float64", seed=0)
    x = np.ones((2, 2))
    torch_model.train()
    with torch.no_grad():
        first, second = (torch_model(torch.from_numpy(x)).numpy() for _ in range(2))
    assert not np.array_equal(first, second)
    first, second = (np.asarray(keras_model(x, training=True)) for _ in range(2))
    assert not np.array_equal(first, second)


def test_sample_normal_is_the_mean_in_inference():
    body = """  input x: [4]
  x -> dense(3) -> mean
  x -> dense(3) -> log_var
  (mean, log_var) -> sample_normal() -> z
  (z, mean) -> subtract()"""
    x = np.random.default_rng(3).standard_normal((5, 4))
    for out in _outputs(spec_of(body), x):
        np.testing.assert_array_equal(out, np.zeros((5, 3)))


def _training_draws(backend: str):
    body = """  input x: [2]
  x -> dense(3) -> mean
  x -> dense(3) -> log_var
  (mean, log_var) -> sample_normal() -> z
  (z, mean, log_var) -> concat()"""
    checked = check_text(spec_of(body))
    torch_model, keras_model = build_pair(checked, "float64", seed=0)
    x = np.random.default_rng(4).standard_normal((SAMPLES, 2))
    if backend == "torch":
        import torch

        torch_model.train()
        torch.manual_seed(0)
        with torch.no_grad():
            out = torch_model(torch.from_numpy(x)).numpy()
    else:
        out = np.asarray(keras_model(x, training=True))
    return out[:, :3], out[:, 3:6], out[:, 6:]


# --- graph convolution -----------------------------------------------------------------------------

@FEW
@given(sizes=distinct(3, 2, 9), bias=st.booleans(), normalize=st.booleans(), nonnegative=st.booleans(),
       activation=st.sampled_from(["", ", activation=relu"]), from_conv=st.booleans())
def test_graph_conv_computes_the_same_function(sizes, bias, normalize, nonnegative, activation, from_conv):
    nodes, features, units = sizes
    # features straight from the input (logical in Keras) or from a convolution (channels last)
    feats = f"x -> conv1d({nodes}, 1) -> h" if from_conv else "x -> relu() -> h"
    adjacency = f"x -> dense({nodes})" + (" -> sigmoid()" if nonnegative else "") + " -> a"
    body = f"""  input x: [{nodes}, {features}]
  {feats}
  {adjacency}
  (h, a) -> graph_conv({units}, bias={str(bias).lower()}, normalize={str(normalize).lower()}{activation})"""
    checked = check_text(spec_of(body))
    # parameters: dense(nodes) on [nodes, features], graph_conv's W (units, features) and b, conv1d
    expected = features * nodes + nodes + features * units + units * bias + (nodes * nodes + nodes) * from_conv
    assert checked.graph.params("torch") == checked.graph.params("keras") == (expected, expected)
    assert_same_function(spec_of(body))


def _gcn_reference(x, a, weight, bias, normalize):
    if normalize:
        a = a + np.eye(a.shape[-1])
        degree = a.sum(-1)
        scale = np.where(degree > 0, 1 / np.sqrt(np.where(degree > 0, degree, 1)), 0)
        a = scale[:, :, None] * a * scale[:, None, :]
    return a @ x @ weight.T + bias


@pytest.mark.parametrize("normalize", [True, False])
@pytest.mark.parametrize("nonnegative", [True, False], ids=["adjacency >= 0", "any adjacency"])
def test_graph_conv_matches_kipf_and_welling(normalize, nonnegative):
    """Against numpy, with the weights of the built PyTorch model: Â X Wᵀ + b, Â normalized by the
    row sums of A + I, and a node whose degree is not positive reading nothing (no NaN)."""
    # the adjacency a dense layer's output (of any sign), or its sigmoid (nonnegative)
    adjacency = "x -> dense(5) -> d\n  d -> sigmoid() -> a" if nonnegative else "x -> dense(5) -> a"
    body = f"""  input x: [5, 3]
  {adjacency}
  (x, a) -> graph_conv(4, normalize={str(normalize).lower()})"""
    checked = check_text(spec_of(body))
    torch_model, keras_model = build_pair(checked, "float64", seed=0)
    x = np.random.default_rng(5).standard_normal((6, 5, 3))
    t_out, k_out = run_pair(checked.graph, torch_model, keras_model, [x])
    w = {k: v.numpy() for k, v in torch_model.state_dict().items()}
    dense = "d" if nonnegative else "a"
    a = x @ w[f"{dense}.weight"].T + w[f"{dense}.bias"]
    a = 1 / (1 + np.exp(-a)) if nonnegative else a
    if normalize and not nonnegative:
        assert ((a + np.eye(5)).sum(-1) <= 0).any()  # the rule for degrees <= 0 is exercised
    expected = _gcn_reference(x, a, w["graph_conv.weight"], w["graph_conv.bias"], normalize)
    assert np.isfinite(t_out[0]).all()
    np.testing.assert_allclose(t_out[0], expected, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(k_out[0], expected, rtol=1e-10, atol=1e-12)


def test_float32_agrees():
    assert_float32_agrees(spec_of("""  input x: [6, 5, 7]
  x -> conv2d(6, 3, padding=same) -> h
  h -> global_avgpool() -> dense(3) -> relu() -> dense(6) -> sigmoid() -> s
  (h, s) -> scale() -> permute((1, 2, 0)) -> flatten() -> dense(4)"""))
    assert_float32_agrees(spec_of("""  input x: [5, 3]
  x -> dense(5) -> sigmoid() -> a
  (x, a) -> graph_conv(4, activation=relu) -> g
  g -> flatten() -> dense(2) -> mean
  g -> flatten() -> dense(2) -> log_var
  (mean, log_var) -> sample_normal() -> z
  (mean, log_var) -> kl_normal() -> kl
  (z, kl, mean) -> concat()"""))


# --- the generated code ------------------------------------------------------------------------------

ALL = spec_of("""  input x: [5, 3]
  x -> dense(4) -> m
  x -> dense(4) -> v
  (m, v) -> sample_normal() -> z
  (m, v) -> kl_normal() -> kl
  x -> dense(5) -> a
  (z, a) -> graph_conv(4, activation=relu) -> g
  g -> global_avgpool() -> s
  (g, s) -> scale() -> g2
  (g2, z, m) -> multiply() -> g3
  (g3, m) -> subtract() -> g4
  (g4, v) -> average() -> g5
  (g5, v) -> maximum() -> permute((1, 0)) -> flatten() -> f
  (f, kl) -> concat()""")


@pytest.mark.parametrize("target", ["torch", "keras"])
def test_generated_code_is_ruff_clean(target, tmp_path):
    path = tmp_path / f"all_{target}.py"
    path.write_text(generate(check_text(ALL), target))
    ruff = subprocess.run([sys.executable, "-m", "ruff", "check", "--isolated", "--select", "E,F,W,I,B,UP", "--line-length", "200", str(path)],
                          check=False, capture_output=True, text=True)
    assert ruff.returncode == 0, ruff.stdout


def test_keras_model_saves_and_loads(tmp_path):
    """The custom Keras layers are serializable: a saved model loads and predicts the same."""
    import keras

    checked = check_text(ALL)
    _, keras_model = build_pair(checked, "float64", seed=0)
    x = np.random.default_rng(6).standard_normal((3, 5, 3))
    keras_model.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras")
    np.testing.assert_array_equal(np.asarray(loaded(x, training=False)), np.asarray(keras_model(x, training=False)))


def test_whole_model_computes_the_same_function():
    assert_same_function(ALL)


# --- errors ----------------------------------------------------------------------------------------

def M(body: str, shape: str = "[3, 5, 7]") -> str:
    return f"model M {{\n  input x: {shape}\n{body}\n}}\n"


ERRORS = [
    ("multiply of different shapes", M("  x -> conv2d(4, 1) -> a\n  (x, a) -> multiply()"),
     "multiply needs inputs of the same shape: [3, 5, 7] vs [4, 5, 7]", None),
    ("multiply a map by a vector", M("  x -> global_avgpool() -> s\n  (x, s) -> multiply()"),
     "multiply needs inputs of the same shape: [3, 5, 7] vs [3]", "(map, weights) -> scale()"),
    ("subtract of three", M("  (x, x, x) -> subtract()"), "subtract takes exactly two inputs (a - b), but 3 reach it", "(a, b) -> subtract()"),
    ("subtract of one", M("  x -> subtract()"), "subtract needs two or more inputs", "(a, b) -> subtract()"),
    ("average of different ranks", M("  x -> flatten() -> f\n  (x, f) -> average()"), "average needs inputs of the same shape: [3, 5, 7] vs [105]", None),
    ("scale, vector first", M("  x -> global_avgpool() -> s\n  (s, x) -> scale()"),
     "scale needs a map [C, ...] and one weight per channel [C], got [3] and [3, 5, 7]", "the map first"),
    ("scale, wrong channel count", M("  x -> global_avgpool() -> dense(4) -> s\n  (x, s) -> scale()"),
     "scale needs a map [C, ...] and one weight per channel [C], got [3, 5, 7] and [4]", "multiply()"),
    ("scale of three", M("  x -> global_avgpool() -> s\n  (x, s, s) -> scale()"), "scale takes exactly two inputs", "(a, b) -> scale()"),
    ("permute, not a permutation", M("  permute((0, 0, 1))"), "permute: dims must list each axis 0 to 2 once", "permute(dims)"),
    ("permute, no axes", M("  permute(())"), "permute: dims must list the input's axes in their new order", "permute(dims)"),
    ("permute, wrong rank", M("  permute((1, 0))"), "permute(1, 0) reorders 2 axes, but the input [3, 5, 7] has 3", "every axis"),
    ("sample_normal of different shapes", M("  x -> flatten() -> dense(4) -> m\n  x -> flatten() -> dense(3) -> v\n  (m, v) -> sample_normal()"),
     "sample_normal takes two inputs of one shape, the mean and the log-variance, got [4] and [3]", "(mean, log_var) -> sample_normal()"),
    ("kl_normal of three", M("  (x, x, x) -> kl_normal()"),
     "kl_normal takes two inputs of one shape, the mean and the log-variance, got [3, 5, 7] and [3, 5, 7] and [3, 5, 7]", "(mean, log_var)"),
    ("graph_conv, adjacency not square", M("  x -> dense(4) -> a\n  (x, a) -> graph_conv(8)", "[5, 3]"),
     "graph_conv needs a square adjacency matrix [nodes, nodes] as its second input, got [5, 4]", "links node i to node j"),
    ("graph_conv, node counts differ", M("  x -> flatten() -> dense(36) -> reshape((6, 6)) -> a\n  (x, a) -> graph_conv(8)", "[5, 6]"),
     "graph_conv: the features have 5 nodes ([5, 6]) but the adjacency matrix [6, 6] has 6", "both inputs describe the same nodes"),
    ("graph_conv, features a map", M("  x -> flatten() -> dense(9) -> reshape((3, 3)) -> a\n  (x, a) -> graph_conv(8)"),
     "graph_conv expects node features [nodes, features] as its first input, got [3, 5, 7]", "(features, adjacency)"),
    ("graph_conv, one input", M("  graph_conv(8)", "[5, 3]"), "graph_conv needs two or more inputs", "(a, b) -> graph_conv()"),
    ("graph_conv, three inputs", M("  (x, x, x) -> graph_conv(8)", "[5, 5]"),
     "graph_conv takes two inputs, the node features and the adjacency matrix, but 3 reach it", "(features, adjacency) -> graph_conv(16)"),
    ("concat of different spatial sizes", M("  x -> conv2d(4, 3) -> a\n  (x, a) -> concat()"),
     "concat needs inputs of the same shape outside axis 0: [3, 5, 7] vs [4, 3, 5]", "crop or pad one of them, or pool to the same size"),
    ("concat of different ranks", M("  x -> flatten() -> f\n  (x, f) -> concat()"),
     "concat needs inputs of the same shape outside axis 0: [3, 5, 7] vs [105]", "`flatten()` or `reshape(...)` one of them"),
    # PyTorch's Linear would act on the width, Keras's Dense on the channels: an error, not a guess
    ("dense on a feature map", M("  dense(10)"), "dense expects [features] or [steps, features], got the feature map [3, 5, 7]",
     "add `flatten()` (or `global_avgpool()`) before `dense`; to mix the channels at each position, use `conv2d(10, 1)`"),
    ("dense on a rank-4 map", M("  dense(10)", "[2, 3, 5, 7]"), "dense expects [features] or [steps, features], got the feature map [2, 3, 5, 7]",
     "use `conv3d(10, 1)`"),
    ("dense on a rank-5 map", M("  dense(10)", "[2, 3, 5, 7, 4]"), "got the feature map [2, 3, 5, 7, 4]",
     "add `flatten()` (or `global_avgpool()`) before `dense`"),
]


@pytest.mark.parametrize("name,text,message,hint", ERRORS, ids=[e[0] for e in ERRORS])
def test_shape_errors_say_what_is_wrong(name, text, message, hint):
    with pytest.raises(DlsError) as exc:
        check_text(text, "s.dls")
    d = exc.value.diagnostics[0]
    assert message in d.message, d.message
    if hint is None:
        assert d.hint is None
    else:
        assert hint in (d.hint or ""), d.hint


def test_dense_keeps_working_on_steps_and_features():
    """[steps, features] is a sequence: dense acts on each step, in both outputs."""
    checked = check_text(M("  dense(4)", "[5, 3]"))
    assert checked.graph.shape_of(checked.graph.outputs[0]) == (5, 4)
    assert_same_function(spec_of("  input x: [5, 3]\n  x -> conv1d(6, 1) -> dense(4)"))


# --- helpers ---------------------------------------------------------------------------------------

def _outputs(text: str, x: np.ndarray) -> list[np.ndarray]:
    """The inference outputs of both generated models (same weights) for the batch `x`."""
    checked = check_text(text)
    torch_model, keras_model = build_pair(checked, "float64", seed=0)
    t_out, k_out = run_pair(checked.graph, torch_model, keras_model, [x])
    return [t_out[0], k_out[0]]

