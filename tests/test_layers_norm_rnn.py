"""Normalization (groupnorm, instancenorm, layernorm over chosen axes, batchnorm up to [C, D, H, W])
and recurrent options (bidirectional, stacked layers, dropout between them, the final state as an
output and an initial state as an input): for random valid
arguments and shapes whose dimensions all differ (so that a wrong transpose cannot pass by
symmetry), the PyTorch and Keras outputs compute the same function in float64 (rtol 1e-6, see
tests/equality.py), hold the parameters dlspec counts (checked here against a count written
independently), and transfer weights both ways bit for bit. Shape errors say what is wrong."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, note, settings
from hypothesis import strategies as st

from dlspec.check import check_text
from dlspec.diagnostics import DlsError

from .equality import assert_float32_agrees, assert_same_function, spec_of

GATES = {"rnn": 1, "lstm": 4, "gru": 3}


def _spec(shape, chain: str) -> str:
    return spec_of(f"  input x: [{', '.join(map(str, shape))}]\n  x -> {chain}")


def _sizes(draw, n: int, lo: int = 2, hi: int = 7) -> list[int]:
    return draw(st.lists(st.integers(lo, hi), min_size=n, max_size=n, unique=True))


def _last_node_params(text: str) -> tuple[tuple[int, int], tuple[int, int]]:
    node = check_text(text).graph.nodes[-1]
    return node.params("torch"), node.params("keras")


# --- normalization ---------------------------------------------------------------------------------

@st.composite
def norm_cases(draw):
    """(spec text, (total, trainable) of the norm layer in PyTorch, the same in Keras)."""
    kind = draw(st.sampled_from(["groupnorm", "instancenorm", "layernorm", "batchnorm"]))
    rank = draw(st.integers(2 if kind == "instancenorm" else 1, 4))
    sizes = _sizes(draw, rank + 1)
    shape = tuple(sizes[1:])
    # Sometimes a 1x1 convolution first, so the norm's input arrives channels-last in Keras.
    conv = rank in (2, 3) and draw(st.booleans())
    prefix, in_shape = (f"conv{rank - 1}d({shape[0]}, 1) -> ", (sizes[0], *shape[1:])) if conv else ("", shape)
    c = shape[0]
    eps = draw(st.sampled_from([None, 1e-5, 1e-3, 0.1]))
    args = [] if eps is None else [f"eps={eps}"]
    if kind == "groupnorm":
        groups = draw(st.sampled_from([g for g in range(1, c + 1) if c % g == 0]))
        args.insert(0, str(groups))
        counts = (2 * c, 2 * c)
    elif kind == "instancenorm":
        affine = draw(st.sampled_from([None, True, False]))
        args += [] if affine is None else [f"affine={str(affine).lower()}"]
        counts = (2 * c, 2 * c) if affine is not False else (0, 0)
    elif kind == "layernorm":
        k = draw(st.integers(1, rank))
        axes = draw(st.permutations(list(range(rank - k, rank))))
        if draw(st.booleans()):
            axes = [a - rank for a in axes]  # counted from the end
        if k == 1 and draw(st.booleans()):
            args.append(f"axes={axes[0]}")
        elif k > 1 or draw(st.booleans()):
            args.append(f"axes=({', '.join(map(str, axes))}{',' if k == 1 else ''})")
        n = math.prod(shape[rank - k:])
        counts = (2 * n, 2 * n)
    else:
        momentum = draw(st.sampled_from([None, 0.1, 0.01, 0.5]))
        args += [] if momentum is None else [f"momentum={momentum}"]
        counts = (4 * c, 2 * c)  # running mean and variance count, untrained
    text = _spec(in_shape, f"{prefix}{kind}({', '.join(args)})")
    return text, counts, counts


@settings(max_examples=30)
@given(case=norm_cases())
def test_norm_same_function(case):
    text, torch_counts, keras_counts = case
    note(text)
    assert _last_node_params(text) == (torch_counts, keras_counts)
    assert_same_function(text)


# --- recurrent -------------------------------------------------------------------------------------

@st.composite
def recurrent_cases(draw):
    kind = draw(st.sampled_from(list(GATES)))
    steps, features, units = _sizes(draw, 3, 2, 8)
    bidirectional = draw(st.booleans())
    layers = draw(st.integers(1, 3))
    dropout = draw(st.sampled_from([0.0, 0.3])) if layers > 1 else 0.0
    sequences = draw(st.booleans())
    state = not sequences and draw(st.booleans())  # the final states [rows, units] as the output
    args = [str(units)]
    for name, value, default in (("return_sequences", sequences, False), ("bidirectional", bidirectional, False),
                                 ("layers", layers, 1), ("dropout", dropout, 0.0), ("return_state", state, False)):
        if value != default or draw(st.booleans()) and (name != "dropout" or layers > 1) and (name != "return_state" or not sequences):
            args.append(f"{name}={str(value).lower() if isinstance(value, bool) else value}")
    # PyTorch's count: per layer and direction, W_ih, W_hh and two biases; the layers above the
    # first read both directions. Keras (and dlspec's training) has one bias for rnn and lstm.
    g, d = GATES[kind], 2 if bidirectional else 1
    total = sum(g * units * ((features if k == 0 else d * units) + units + 2) for k in range(layers) for _ in range(d))
    trainable = total - (0 if kind == "gru" else g * units * layers * d)
    text = _spec((steps, features), f"{kind}({', '.join(args)})")
    return text, (total, trainable), (trainable, trainable)


@settings(max_examples=30)
@given(case=recurrent_cases())
def test_recurrent_same_function(case):
    text, torch_counts, keras_counts = case
    note(text)
    assert _last_node_params(text) == (torch_counts, keras_counts)
    assert_same_function(text)


@st.composite
def state_cases(draw):
    """An encoder's final state (`return_state=true`) starting a decoder (`initial_state=true`), or a
    state computed by a dense layer, so that any value reaches every row; maybe bidirectional and
    stacked; sizes all differ."""
    steps, features, units, dec_steps, dec_features = _sizes(draw, 5, 2, 8)
    bidirectional, layers = draw(st.booleans()), draw(st.sampled_from([1, 1, 2, 3]))
    decoder = draw(st.sampled_from(list(GATES)))
    d = layers * (2 if bidirectional else 1)  # cells: one per layer and direction
    rows = d * (2 if decoder == "lstm" else 1)
    both = (", bidirectional=true" if bidirectional else "") + (f", layers={layers}" if layers > 1 else "")
    both += f", dropout={draw(st.sampled_from([0.0, 0.3]))}" if layers > 1 and draw(st.booleans()) else ""
    lines = [f"  input y: [{dec_steps}, {dec_features}]", f"  input x: [{steps}, {features}]"]
    # An encoder of the decoder's kind, or one whose state has as many rows (gru for rnn...).
    encoders = [k for k in GATES if (2 if k == "lstm" else 1) == rows // d]
    if draw(st.booleans()):
        lines.append(f"  x -> {draw(st.sampled_from(encoders))}({units}{both}, return_state=true) -> state")
    else:
        lines.append(f"  x -> flatten() -> dense({rows * units}) -> reshape(({rows}, {units})) -> state")
    sequences = draw(st.booleans())
    tail = draw(st.sampled_from(["", ", return_state=true"])) if not sequences else ", return_sequences=true"
    lines.append(f"  (y, state) -> {decoder}({units}{both}, initial_state=true{tail})")
    return spec_of("\n".join(lines))


@settings(max_examples=25)
@given(text=state_cases())
def test_state_passing_same_function(text):
    """The state's rows (h, then c, per direction) mean the same in both outputs: PyTorch's h_n and
    c_n are stacked into it and split back from it, Keras lists them per direction."""
    note(text)
    assert_same_function(text)


def test_the_state_is_the_last_output_and_the_cell():
    """`return_state` gives h (the output's last step, the backward direction's first) and an LSTM's c."""
    import torch

    from dlspec.verify import build_pair

    text = ("model M {\n  input x: [6, 3]\n  x -> lstm(4, bidirectional=true, return_sequences=true) -> seq\n"
            "  x -> lstm(4, bidirectional=true, return_state=true) -> state\n  output seq, state\n}\n"
            "train {\n  data: synthetic(task=regression)\n  loss: [mse(out=seq), mean(out=state)]\n}\n")
    torch_model, _ = build_pair(check_text(text), "float64", 0)
    torch_model.state.load_state_dict(torch_model.seq.state_dict())
    x = torch.from_numpy(np.random.default_rng(0).normal(size=(2, 6, 3)))
    with torch.no_grad():
        seq, state = torch_model(x)
    assert state.shape == (2, 4, 4)
    np.testing.assert_allclose(state[:, 0], seq[:, -1, :4])  # forward h after the last step
    np.testing.assert_allclose(state[:, 2], seq[:, 0, 4:])  # backward h after reading back to the first
    assert not np.allclose(state[:, 1], state[:, 0])  # c is not h


# float32: both outputs build and agree (rtol 1e-4), on a few layers with everything switched on.
FLOAT32 = [
    "  input x: [6, 5, 7]\n  x -> conv2d(4, 3) -> groupnorm(2) -> instancenorm() -> layernorm(axes=(0, 1, 2))",
    "  input x: [3, 4, 5, 2]\n  x -> batchnorm(momentum=0.3) -> groupnorm(3, eps=0.001) -> layernorm(axes=(-2, -1))",
    "  input x: [7, 3]\n  x -> lstm(5, bidirectional=true, layers=2, dropout=0.2, return_sequences=true) -> gru(4, bidirectional=true)",
    "  input x: [7, 3]\n  x -> rnn(6, layers=3, bidirectional=true)",
    ("  input y: [5, 2]\n  input x: [7, 3]\n  x -> lstm(4, bidirectional=true, return_state=true) -> s\n"
     "  (y, s) -> lstm(4, bidirectional=true, initial_state=true)"),
    ("  input y: [5, 2]\n  input x: [7, 3]\n  x -> lstm(4, layers=2, bidirectional=true, return_state=true) -> s\n"
     "  (y, s) -> lstm(4, layers=2, bidirectional=true, dropout=0.2, initial_state=true, return_state=true)"),
]


@pytest.mark.parametrize("body", FLOAT32)
def test_float32_agrees(body):
    assert_float32_agrees(spec_of(body))


def test_keras_recurrent_stack_survives_saving(tmp_path):
    """A stack that passes states is a RecurrentStack in Keras, which saves and loads its layers."""
    import keras

    from dlspec.verify import build_pair

    text = spec_of("  input y: [5, 2]\n  input x: [7, 3]\n  x -> lstm(4, layers=2, return_state=true) -> s\n"
                   "  (y, s) -> gru(4, layers=2, bidirectional=true, dropout=0.2, initial_state=true, return_sequences=true)")
    _, keras_model = build_pair(check_text(text), "float64", 0)
    keras_model.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras")
    rng = np.random.default_rng(1)
    inputs = [rng.standard_normal((2, 5, 2)), rng.standard_normal((2, 7, 3))]
    np.testing.assert_array_equal(np.asarray(loaded(inputs)), np.asarray(keras_model(inputs)))


def test_stacked_dropout_acts_in_training_only_in_both():
    """Inference is deterministic, so the tests above cannot see dropout: in training, both outputs
    drop between the stacked layers by similar amounts (measured: mean change 0.027 vs 0.026)."""
    import keras
    import torch

    from dlspec.verify import build_pair

    text = spec_of("  input x: [7, 3]\n  x -> lstm(4, layers=2, bidirectional=true, dropout=0.5)")
    torch_model, keras_model = build_pair(check_text(text), "float64", 0)
    x = np.random.default_rng(1).normal(size=(256, 7, 3))
    torch.manual_seed(0)
    keras.utils.set_random_seed(0)
    with torch.no_grad():
        torch_eval = torch_model.eval()(torch.from_numpy(x)).numpy()
        torch_train = torch_model.train()(torch.from_numpy(x)).numpy()
    keras_eval, keras_train = keras_model(x, training=False).numpy(), keras_model(x, training=True).numpy()
    np.testing.assert_allclose(torch_eval, keras_eval, rtol=1e-6, atol=1e-12)
    torch_change, keras_change = np.abs(torch_train - torch_eval).mean(), np.abs(keras_train - keras_eval).mean()
    assert torch_change > 1e-3 and keras_change > 1e-3
    assert 2 / 3 < torch_change / keras_change < 3 / 2


# --- shape and argument errors ---------------------------------------------------------------------

# (id, input shape, layer, words of the message, words of the hint)
ERRORS = [
    ("groupnorm groups do not divide channels", "[6, 5, 7]", "groupnorm(4)",
     "groupnorm(4) needs a channel count divisible by 4, but the input [6, 5, 7] has 6 channels", "allow groups 1, 2, 3, 6"),
    ("groupnorm rank", "[2, 3, 4, 5, 6]", "groupnorm(2)",
     "groupnorm expects an input of shape [C], [C, L], [C, H, W] or [C, D, H, W] (channels first), got [2, 3, 4, 5, 6]", None),
    ("instancenorm of a vector", "[6]", "instancenorm()",
     "instancenorm expects an input of shape [C, L], [C, H, W] or [C, D, H, W]", "a [C] input has one per channel"),
    ("instancenorm of one position", "[6, 1]", "instancenorm()",
     "instancenorm needs more than one position per channel, but the input [6, 1] has one", "groupnorm(1)"),
    ("batchnorm rank", "[2, 3, 4, 5, 6]", "batchnorm()",
     "batchnorm expects an input of shape [C], [C, L], [C, H, W] or [C, D, H, W]", None),
    ("layernorm leading axis", "[6, 5, 7]", "layernorm(axes=0)",
     "layernorm normalizes trailing axes only; axes (0,) of [6, 5, 7] are not the last 1",
     "`permute((1, 2, 0)) -> layernorm(axes=(-1,))`"),
    ("layernorm axes with a gap", "[6, 5, 7]", "layernorm(axes=(0, 2))",
     "axes (0, 2) of [6, 5, 7] are not the last 2", "`permute((1, 0, 2)) -> layernorm(axes=(-2, -1))`"),
    ("layernorm axis out of range", "[6, 5, 7]", "layernorm(axes=3)",
     "layernorm axis 3 is out of range for an input of shape [6, 5, 7]", "this input has 3"),
    ("layernorm axis twice", "[6, 5, 7]", "layernorm(axes=(2, -1))",
     "layernorm axes (2, -1) name the same axis twice", None),
    ("layernorm no axes", "[6, 5, 7]", "layernorm(axes=())", "argument `axes` must have 1 value", None),
    ("recurrent dropout without a stack", "[5, 3]", "lstm(4, dropout=0.3)",
     "lstm: dropout applies between stacked layers, so it needs layers=2 or more", "signature: lstm("),
    ("recurrent zero layers", "[5, 3]", "gru(4, layers=0)", "gru: argument `layers` must be above 0, got 0", None),
    ("bidirectional over a vector", "[5]", "rnn(4, bidirectional=true)", "rnn expects an input of shape [channels, length]",
     "recurrent layers read [steps, features]"),
    ("state and sequences", "[5, 3]", "lstm(4, return_state=true, return_sequences=true)",
     "lstm: return_state=true returns the final state instead of the outputs, so it excludes return_sequences=true", None),
    ("initial state without its input", "[5, 3]", "lstm(4, initial_state=true)",
     "lstm with initial_state=true takes two inputs, the second its state, but one reaches it",
     "`(x, state) -> lstm(..., initial_state=true)`"),
]


@pytest.mark.parametrize("name,shape,call,message,hint", ERRORS, ids=[e[0] for e in ERRORS])
def test_error(name, shape, call, message, hint):
    text = f"model M {{\n  input x: {shape}\n  x -> {call}\n}}\n"
    with pytest.raises(DlsError) as exc:
        check_text(text)
    [d] = exc.value.diagnostics
    assert message in d.message
    assert d.span.line == 3  # at the layer
    if hint is not None:
        assert d.hint is not None and hint in d.hint


STATE_ERRORS = [
    ("[2, 4]", "gru(4, initial_state=true)", "gru: the initial state must be [1, 4] (h, 4 wide), got [2, 4]",
     "a `gru(4, return_state=true)` gives one"),
    ("[2, 4]", "lstm(4, bidirectional=true, initial_state=true)",
     "lstm: the initial state must be [4, 4] (h and c for each direction, 4 wide), got [2, 4]",
     "a `lstm(4, bidirectional=true, return_state=true)` gives one"),
    ("[2, 4]", "rnn(4, layers=3, bidirectional=true, initial_state=true)",
     "rnn: the initial state must be [6, 4] (h for each layer and direction, 4 wide), got [2, 4]",
     "a `rnn(4, bidirectional=true, layers=3, return_state=true)` gives one"),
    ("[1, 4]", "gru(4)", "gru takes one input, but 2 reach it",
     "to read a state as the second input, write `(x, state) -> gru(..., initial_state=true)`"),
]


@pytest.mark.parametrize("state,call,message,hint", STATE_ERRORS)
def test_initial_state_shape_error(state, call, message, hint):
    text = f"model M {{\n  input x: [5, 3]\n  input s: {state}\n  (x, s) -> {call}\n}}\n"
    with pytest.raises(DlsError) as exc:
        check_text(text)
    [d] = exc.value.diagnostics
    assert message in d.message and hint in d.hint
    assert d.span.line == 4


# --- training steps --------------------------------------------------------------------------------

NETS = {
    "stacks": """  input x: [3, 6, 5]
  x -> conv2d(4, 3, padding=same) -> groupnorm(2) -> instancenorm() -> layernorm(axes=(0, 1, 2))
  reshape((6, 20)) -> lstm(3, bidirectional=true, layers=2, return_sequences=true) -> rnn(2, layers=2) -> r
  x -> reshape((3, 30)) -> gru(4, bidirectional=true) -> g
  (r, g) -> concat() -> dense(4)""",
    # the encoder learns through the state it hands the decoder
    "state": """  input y: [4, 3]
  input x: [5, 2]
  x -> lstm(3, bidirectional=true, return_state=true) -> s
  (y, s) -> lstm(3, bidirectional=true, return_sequences=true, initial_state=true) -> flatten() -> dense(4)""",
    "stacked state": """  input y: [4, 3]
  input x: [5, 2]
  x -> gru(3, layers=2, return_state=true) -> s
  (y, s) -> gru(3, layers=2, initial_state=true) -> dense(4)""",
}

TRAIN = """
model Net {{
{net}
}}

train {{
  data: synthetic(samples=64)
  optimizer: {optimizer}
  epochs: 2
  batch_size: 16
  {extra}
}}
"""


@pytest.mark.parametrize("net", NETS)
@pytest.mark.parametrize("optimizer,extra", [("sgd(lr=0.1, momentum=0.9)", ""), ("adam(lr=0.01)", "l2: 0.01")])
def test_training_steps_agree(net, optimizer, extra, tmp_path):
    """k optimizer steps on the spec's own batches leave the same parameters in both (rtol 1e-9, see
    test_optimizers.py): the frozen second bias of every layer and direction, the penalty over every
    stacked kernel, the norms' gradients and the state's mean the same."""
    from .test_training_shapes import _steps_agree

    assert _steps_agree(TRAIN.format(net=NETS[net], optimizer=optimizer, extra=extra), tmp_path) < 1e-9
