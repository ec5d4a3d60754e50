"""dlspec's central promise: a spec means one function in both backends. For random valid specs
(tests/strategies.py), the generated PyTorch and Keras models, given the same random weights (batch
norm statistics included), compute the same outputs on a random batch in inference mode."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, note
from hypothesis import strategies as st

from dlspec.check import check_text
from dlspec.transfer import keras_param_count, keras_to_torch, torch_param_count, torch_to_keras
from dlspec.verify import build_pair, compare, random_inputs, run_pair, verify

from .strategies import KINDS, specs

pytestmark = pytest.mark.filterwarnings("ignore:You are using a softmax over axis:UserWarning")
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


def _spec(body: str) -> str:
    return f"model Net {{\n{body}\n}}\n\ntrain {{\n  data: synthetic(task=regression)\n  loss: mse()\n}}\n"


# Specs the property tests once failed on, kept forever, each named after the bug it found.
REGRESSIONS = [
    # Keras layers dlspec adds (layout changes, explicit padding) took names of the spec's tensors.
    pytest.param(_spec("  input x: [3, 5, 7]\n  x -> conv2d(4, 3) -> x_cl"), id="permute-named-like-a-tensor"),
    pytest.param(_spec("  input x: [3, 5, 7]\n  x -> conv2d(4, 2, padding=same) -> h\n  h -> relu() -> h_pad"),
                 id="padding-named-like-a-tensor"),
    # TensorFlow's float32 CPU Conv2D returns garbage for one input channel, height stride 1 and a
    # width stride that leaves one output column; Keras now takes that column's window at stride 1.
    pytest.param(_spec("  input x: [1, 9, 1]\n  conv2d(1, (1, 3), stride=(1, 2), padding=same)"), id="tf-conv-one-column"),
    pytest.param(_spec("  input x: [1, 5, 4]\n  conv2d(3, 2, stride=(1, 3))"), id="tf-conv-one-column-cropped"),
    # `self.__h` in the generated class was name-mangled to `_Net__h`: transfer found no weights.
    pytest.param(_spec("  input x: [3, 5, 7]\n  x -> conv2d(4, 3) -> __h"), id="name-mangled-attribute"),
]


def assert_same_function(text: str, seed: int = 0) -> None:
    keras.backend.clear_session()  # otherwise Keras slows down as models accumulate
    checked = check_text(text)
    graph = checked.graph
    torch_model, keras_model = build_pair(checked, "float64", seed)
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
    too, except that RNN/LSTM's two biases come back as (their sum, 0): Keras keeps only the sum."""
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
        if key.endswith("bias_hh_l0") and not torch.equal(old[key], new[key]):
            assert not new[key].any() and torch.equal(new[ih], old[ih] + old[key]), key
            summed |= {key, ih}
    for key in old.keys() - summed:
        assert torch.equal(old[key], new[key]), key


@pytest.mark.parametrize("kind", KINDS)
@given(data=st.data())
def test_float64_same_function(kind, data):
    text = data.draw(specs(kind), label="spec")
    note(text)
    assert_same_function(text)


@pytest.mark.parametrize("text", REGRESSIONS)
def test_regression(text):
    assert_same_function(text)
    assert_float32_agrees(text)


@given(text=st.sampled_from(KINDS).flatmap(specs))
def test_float32_smoke(text):
    note(text)
    assert_float32_agrees(text)


def assert_float32_agrees(text: str) -> None:
    keras.backend.clear_session()
    report = verify(check_text(text), "float32", batch=BATCH)
    assert report.params["dlspec torch"] == report.params["torch"]
    assert report.params["dlspec keras"] == report.params["keras"]
    for diff in report.outputs:
        assert diff.max_rel <= F32_RTOL, diff
