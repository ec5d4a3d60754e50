"""dlspec's central promise: a spec means one function in both backends. For random valid specs
(tests/strategies.py), the generated PyTorch and Keras models, given the same random weights (batch
norm statistics included), compute the same outputs on a random batch in inference mode."""

from __future__ import annotations

import pytest
from hypothesis import given, note
from hypothesis import strategies as st

from .equality import assert_float32_agrees, assert_same_function
from .equality import spec_of as _spec
from .strategies import KINDS, specs

pytestmark = pytest.mark.filterwarnings("ignore:You are using a softmax over axis:UserWarning")

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
    # PyTorch's AvgPool3d refused a window larger than the unpadded input; it now pads first.
    pytest.param(_spec("  input x: [1, 1, 2, 4]\n  avgpool3d((3, 1, 1), padding=(1, 0, 0))"), id="avgpool3d-window-past-input"),
    # A query whose keys are all masked gave NaN in PyTorch (and an average in Keras); it now outputs
    # the output projection's bias in both. Seed 0's mask ignores every key of the first sample.
    pytest.param(_spec("  input x: [4, 6]\n  input m: [4]\n  (x, m) -> attention(2, causal=true, masked=true)"),
                 id="attention-query-without-keys"),
    # A Keras RecurrentStack named `_h` named its layers `_h_l0`...: TensorFlow refuses a scope name
    # starting with `_` for a layer called inside another's call. They are `l0`, `l1`... now.
    pytest.param(_spec("  input torch: [2, 1]\n  torch -> rnn(1, bidirectional=true, layers=2, return_state=true) -> t1\n"
                       "  (torch, t1) -> rnn(1, bidirectional=true, layers=2, return_state=true, initial_state=true) -> _h"),
                 id="stack-layer-scope-names"),
]


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
