"""The equality assertions every property test shares: a spec's PyTorch and Keras outputs,
given the same weights, compute the same function."""

from __future__ import annotations

import contextlib
import re

import numpy as np
import pytest

from dlspec.check import check_text
from dlspec.transfer import keras_param_count, keras_to_torch, torch_param_count, torch_to_keras
from dlspec.verify import build_pair, compare, keras_floatx, random_inputs, run_pair, verify

keras = pytest.importorskip("keras")
torch = pytest.importorskip("torch")

BATCH = 4

# float64: both backends evaluate the same formulas, so what is left is summation order (~1e-15)
# and two TensorFlow ops that round a constant to float32 even in float64: `tf.nn.gelu`
# (1/sqrt(2), 0.044715) and LeakyReLU's slope (an op attribute), ~1e-8 relative, measured. 1e-6
# is far above both and far below any real mismatch (a wrong eps, transpose or gate order is
# >= 1e-4). Relative to the output's scale, as `dls verify` computes it.
F64_RTOL = 1e-6
# float32: a smoke check that the float32 models build and agree. Forward noise is ~1e-7 per op
# and grows through a dozen layers, normalizations and recurrences to ~1e-5.
F32_RTOL = 1e-4


def spec_of(body: str) -> str:
    return f"model Net {{\n{body}\n}}\n\ntrain {{\n  data: synthetic(task=regression)\n  loss: mse()\n}}\n"


def assert_same_function(text: str, seed: int = 0, graph: str | None = None) -> None:
    """The spec's model (or its model named `graph`) is one function in both outputs."""
    keras.backend.clear_session()  # otherwise Keras slows down as models accumulate
    checked = check_text(text)
    graph = next(g for g in checked.graphs if g.name == graph) if graph else checked.graph
    torch_model, keras_model = build_pair(checked, "float64", seed, graph)
    t_out, k_out = run_pair(graph, torch_model, keras_model, random_inputs(graph, BATCH, seed, "float64"))
    for name, t, k in zip(graph.outputs, t_out, k_out, strict=True):
        assert t.shape == k.shape == (BATCH, *graph.shape_of(name)), name
    assert torch_param_count(torch_model) == graph.params("torch")
    assert keras_param_count(keras_model) == graph.params("keras")
    for diff in compare(graph.outputs, t_out, k_out):
        assert diff.max_rel <= F64_RTOL, diff
    assert_transfer_round_trips(graph, torch_model, keras_model)


def assert_transfer_round_trips(graph, torch_model, keras_model) -> None:
    """Keras -> PyTorch -> Keras gives back every Keras weight bit for bit, and every PyTorch weight
    too, except that RNN/LSTM's two biases (of every layer and direction) come back as (their sum,
    0): Keras keeps only the sum."""
    weights = keras_model.get_weights()
    back = type(torch_model)().to(torch.float64)
    keras_to_torch(graph, keras_model, back)
    torch_to_keras(graph, back, keras_model)
    for before, after in zip(weights, keras_model.get_weights(), strict=True):
        np.testing.assert_array_equal(before, after)
    old, new = torch_model.state_dict(), back.state_dict()
    summed = set()
    for key in old:
        ih = key.replace("bias_hh", "bias_ih")
        if re.search(r"bias_hh_l\d+(_reverse)?$", key) and not torch.equal(old[key], new[key]):
            assert not new[key].any() and torch.equal(new[ih], old[ih] + old[key]), key
            summed |= {key, ih}
    for key in old.keys() - summed:
        assert torch.equal(old[key], new[key]), key


def assert_float32_agrees(text: str) -> None:
    keras.backend.clear_session()
    report = verify(check_text(text), "float32", batch=BATCH)
    assert report.params["dlspec torch"] == report.params["torch"]
    assert report.params["dlspec keras"] == report.params["keras"]
    for diff in report.outputs:
        assert diff.max_rel <= F32_RTOL, diff


@contextlib.contextmanager
def float64_training():
    """Both frameworks in float64, for comparing training: PyTorch's default dtype (some optimizer
    state, NAdam's mu product, follows it) and Keras's floatx and dtype policy; Keras's session is
    cleared afterwards."""
    default = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        with keras_floatx("float64"):
            yield
    finally:
        torch.set_default_dtype(default)
        keras.backend.clear_session()
