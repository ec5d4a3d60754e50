"""Training beyond one input, one output and a class per sample: reconstruction targets
(autoencoders), several outputs with a weighted sum of losses, a class label per position, several
inputs, and a held-out test split. Both outputs must train alike: from the same weights and the
same batches, k optimizer steps leave the same parameters (float64, as in test_optimizers.py)."""

from __future__ import annotations

import re

import numpy as np
import pytest

from dlspec.check import check_file, check_text
from dlspec.diagnostics import DlsError
from dlspec.runtime import load_generated
from dlspec.transfer import keras_to_torch, torch_to_keras
from dlspec.verify import keras_floatx, randomize

from .equality import float64_training

STEPS = 3


def _float64(a):
    if isinstance(a, tuple):
        return tuple(_float64(v) for v in a)
    return a.astype(np.float64) if np.issubdtype(a.dtype, np.floating) else a


def _steps_agree(text, tmp_path, batch=16):
    """Trains both generated models for STEPS batches of the spec's own data (the batches Keras's
    TrainingBatches gives, augmentation included) from the same random weights; returns the largest
    parameter difference, after asserting agreement."""
    import torch

    checked = check_text(text)
    graph = checked.graph
    with float64_training():
        t_mod, k_mod = load_generated(checked, "torch", tmp_path), load_generated(checked, "keras", tmp_path)
        x, y, _, _ = t_mod.load_data()
        x, y = _float64(x), _float64(y)
        t_model = t_mod.build_model().double()
        randomize(t_model, seed=1)
        k_model = k_mod.build_model()
        torch_to_keras(graph, t_model, k_model)
        k_mod.compile_model(k_model, STEPS)
        t_opt, _ = t_mod.build_optimizer(t_model, STEPS)
        batches = k_mod.TrainingBatches(x, y, batch)
        t_losses, k_losses = [], []
        for step in range(STEPS):
            xb, targets = batches[step]
            idx = t_mod.batch_indices(len(y), batch, 1, step)
            t_x = tuple(torch.from_numpy(a) for a in xb) if isinstance(xb, tuple) else torch.from_numpy(xb)
            t_model.train()
            t_losses.append(t_mod.train_step(t_model, t_opt, t_x, torch.from_numpy(y[idx])).item())
            k_losses.append(float(np.ravel(k_model.train_on_batch(xb, targets))[0]))
        back = t_mod.build_model().double()
        keras_to_torch(graph, k_model, back)
    # The loss before each step: the same weighted sum in both (float64 rounding only).
    np.testing.assert_allclose(k_losses, t_losses, rtol=1e-9)
    expected, got = t_model.state_dict(), back.state_dict()
    worst = 0.0
    for name, value in expected.items():
        np.testing.assert_allclose(got[name].numpy(), value.numpy(), rtol=1e-9, atol=1e-12, err_msg=name)
        worst = max(worst, float((got[name] - value).abs().max()))
    moved = max(float((expected[k] - v).abs().max()) for k, v in t_mod.build_model().double().state_dict().items())
    assert moved > 0
    return worst


def _error(text) -> str:
    with pytest.raises(DlsError) as exc:
        check_text(text)
    return exc.value.diagnostics[0].message + " | " + (exc.value.diagnostics[0].hint or "")


# --- 1. reconstruction targets ------------------------------------------------------------------

AUTOENCODER = """
model Autoencoder {{
  input image: [1, 8, 8]
  image -> conv2d(4, 3, stride=2, padding=same, activation=relu)
  conv_transpose2d(1, 4, stride=2, padding=1, activation=sigmoid)
}}

train {{
  data: {data}
  loss: {loss}
  optimizer: adam(lr=0.01)
  batch_size: 16
  {extra}
}}
"""


def test_reconstruction_targets_are_the_clean_inputs(tmp_path):
    checked = check_text(AUTOENCODER.format(data="digits(reconstruct=true)", loss="mse()", extra="augment: [noise(0.2)]"))
    t_mod, k_mod = load_generated(checked, "torch", tmp_path / "t"), load_generated(checked, "keras", tmp_path / "k")
    t_data, k_data = t_mod.load_data(), k_mod.load_data()
    for a, b in zip(t_data, k_data):
        np.testing.assert_array_equal(a, b)
    x, y, x_val, y_val = t_data
    np.testing.assert_array_equal(y, x)
    np.testing.assert_array_equal(y_val, x_val)
    assert y.dtype == np.float32 and y.shape == (len(x), 1, 8, 8)
    xb, yb = k_mod.TrainingBatches(x, y, 16)[0]
    idx = t_mod.batch_indices(len(y), 16, 1, 0)
    np.testing.assert_array_equal(yb, x[idx])  # the targets: clean
    noise = xb - yb
    assert 0.15 < noise.std() < 0.25  # the inputs: noisy, noise(0.2)
    np.testing.assert_array_equal(xb, t_mod.augment(x[idx], np.random.default_rng([0, 1, 0])))
    np.testing.assert_array_equal(x[idx], y[idx])  # augmenting made a new array: the data is untouched


def test_denoising_autoencoder_steps_agree(tmp_path):
    worst = _steps_agree(AUTOENCODER.format(data="digits(reconstruct=true)", loss="mse()", extra="augment: [noise(0.2)]"), tmp_path)
    assert worst < 1e-12


@pytest.mark.parametrize(("data", "loss", "message"), [
    ("digits(reconstruct=true)", "cross_entropy()", "cross_entropy needs class labels, but digits gives the inputs' values"),
    ("synthetic(reconstruct=true, validation=0.5, test=0.5)", "mse()", "leave no training samples"),
])
def test_reconstruction_errors(data, loss, message):
    assert message in _error(AUTOENCODER.format(data=data, loss=loss, extra=""))


def test_reconstruction_needs_the_input_shape():
    text = AUTOENCODER.format(data="digits(reconstruct=true)", loss="mse()", extra="").replace(
        "conv_transpose2d(1, 4, stride=2, padding=1, activation=sigmoid)", "conv2d(1, 1)")
    message = _error(text)
    assert "input `image` [1, 8, 8] the target, but output `conv2d_2` is [1, 4, 4]" in message
    assert "decoder" in message


def test_reconstruction_from_files(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.random((20, 1, 8, 8)).astype(np.float32)
    np.savez(tmp_path / "images.npz", x=x)  # no `y`: the targets are the inputs
    spec = tmp_path / "ae.dls"
    spec.write_text(AUTOENCODER.format(data='npz("images.npz", reconstruct=true, validation=0.25)', loss="mae()", extra=""))
    x_train, y_train, x_val, y_val = load_generated(check_file(spec), "keras", tmp_path / "k").load_data()
    np.testing.assert_array_equal(x_val, y_val)
    order = np.random.default_rng(0).permutation(20)
    np.testing.assert_array_equal(x_train, x[order[5:]])
    np.testing.assert_array_equal(y_train, x[order[5:]])
    np.testing.assert_array_equal(y_val, x[order[:5]])
    rows = ["a,b,c"] + [",".join(map(str, r)) for r in rng.standard_normal((12, 3))]
    (tmp_path / "rows.csv").write_text("\n".join(rows) + "\n")
    spec.write_text("model Rows {\n  input v: [3]\n  dense(2) -> dense(3)\n}\n\n"
                    'train {\n  data: csv("rows.csv", reconstruct=true, normalize=true)\n  loss: mse()\n}\n')
    x_train, y_train, _, _ = load_generated(check_file(spec), "torch", tmp_path / "t").load_data()
    np.testing.assert_array_equal(y_train, x_train)
    np.testing.assert_allclose(y_train.mean(axis=0), 0, atol=1e-6)  # the normalized inputs are the targets


# --- 2. several outputs, a weighted sum of losses -----------------------------------------------

TWO_HEADS = """
model TwoHeads {{
  input image: [64]
  image -> dense(8, activation=tanh) -> h
  h -> dense(3) -> mean
  h -> dense(3) -> log_var
  mean -> dense({recon_units}{recon_act}) -> recon
  (mean, log_var) -> kl_normal() -> kl
  output {outputs}
}}

train {{
  data: digits({data})
  loss: {loss}
  optimizer: {optimizer}
  batch_size: 16
  {extra}
}}
"""


def _two_heads(loss, data="reconstruct=true", recon_units=64, recon_act=", activation=sigmoid", outputs="recon, kl",
               optimizer="adam(lr=0.01)", extra=""):
    return TWO_HEADS.format(loss=loss, data=data, recon_units=recon_units, recon_act=recon_act, outputs=outputs,
                            optimizer=optimizer, extra=extra)


@pytest.mark.parametrize(("loss", "kwargs"), [
    ("[mse(out=recon), mean(out=kl, weight=0.01)]", {}),
    # listed in another order than the outputs; a weight on the target-reading term; a penalty
    # (added once, though Keras multiplies the first output's loss by its weight)
    ("[mean(out=kl, weight=0.5), mse(out=recon, weight=2)]", {"optimizer": "sgd(lr=0.1, momentum=0.9)", "extra": "l2: 0.01"}),
    ("[mean(out=kl, weight=0.1), mse(out=recon, weight=3)]", {"outputs": "kl, recon", "extra": "l1: 0.001\n  clip_norm: 0.5"}),
    ("[cross_entropy(out=recon, label_smoothing=0.1), mean(out=kl, weight=0.2)]",
     {"data": "", "recon_units": 10, "recon_act": "", "extra": "metrics: [accuracy]"}),
])
def test_weighted_sums_of_output_losses_train_alike(loss, kwargs, tmp_path):
    worst = _steps_agree(_two_heads(loss, **kwargs), tmp_path)
    assert worst < 1e-12


def test_the_total_loss_and_metrics_of_several_outputs_agree(tmp_path):
    """evaluate() in both outputs: Keras's loss_fn is fit's own sum (LOSSES, LOSS_WEIGHTS), and the
    metrics read the target-reading output, wherever it is among the outputs."""
    import torch

    from dlspec.verify import build_pair

    text = _two_heads("[mean(out=kl, weight=0.01), cross_entropy(out=recon)]", data="", recon_units=10, recon_act="",
                      outputs="kl, recon", extra="metrics: [accuracy, f1(macro)]")
    checked = check_text(text)
    t_model, k_model = build_pair(checked)
    with keras_floatx("float64"):
        t_mod, k_mod = load_generated(checked, "torch", tmp_path), load_generated(checked, "keras", tmp_path)
        x, y, _, _ = t_mod.load_data()
        x = x[:100].astype(np.float64)
        y = y[:100]
        t_logs, k_logs = t_mod.evaluate(t_model, x, y), k_mod.evaluate(k_model, x, y)
        with torch.no_grad():
            kl, logits = t_model(torch.from_numpy(x))
    expected = 0.01 * kl.mean().item() + torch.nn.functional.cross_entropy(logits, torch.from_numpy(y)).item()
    np.testing.assert_allclose(t_logs["loss"], expected, rtol=1e-12)
    np.testing.assert_allclose(k_logs["loss"], t_logs["loss"], rtol=1e-12)
    assert t_logs["accuracy"] == k_logs["accuracy"] == float(np.mean(logits.numpy().argmax(1) == y))
    assert t_logs["f1_macro"] == k_logs["f1_macro"]


def test_vae_spec_losses_agree_in_inference(tmp_path):
    from pathlib import Path

    from dlspec.verify import build_pair

    checked = check_file(Path(__file__).resolve().parent.parent / "specs" / "vae.dls")
    t_model, k_model = build_pair(checked)
    with keras_floatx("float64"):
        t_mod, k_mod = load_generated(checked, "torch", tmp_path), load_generated(checked, "keras", tmp_path)
        x, y, _, _ = t_mod.load_data()
        x, y = x[:64].astype(np.float64), y[:64].astype(np.float64)
        t_logs, k_logs = t_mod.evaluate(t_model, x, y), k_mod.evaluate(k_model, x, y)
    assert set(t_logs) == {"loss", "mse"}
    for k in t_logs:
        np.testing.assert_allclose(k_logs[k], t_logs[k], rtol=1e-9)


@pytest.mark.parametrize(("loss", "extra", "message"), [
    ("mse()", "", "model `TwoHeads` has 2 outputs (recon, kl): say which one mse reads"),
    ("[mse(out=recon), mean(out=kll)]", "", "mean: out=kll is not an output of model `TwoHeads` | did you mean `kl`?"),
    ("[mse(out=recon), mae(out=recon)]", "", "output `recon` has two losses"),
    ("[mse(out=recon)]", "", "output `kl` has no loss | every output needs a loss term; for a value the model computes itself, add `mean(out=kl)`"),
    ("[mse(out=recon), mse(out=kl)]", "", "outputs `recon` and `kl` both read the data's targets"),
    ("[mean(out=recon), mean(out=kl)]", "metrics: [mse]", "no loss term reads targets"),
    ("[mse(out=recon, weight=-1), mean(out=kl)]", "", "mse: weight must be a positive number, got -1"),
    ("[mse(out=recon, wieght=2), mean(out=kl)]", "", "mse has no argument `wieght`"),
    ("[]", "", "`loss` takes a loss, or a list of losses one per output"),
])
def test_loss_list_errors(loss, extra, message):
    assert message in _error(_two_heads(loss, extra=extra))


def test_target_free_losses_only(tmp_path):
    # Every term target-free: the data's targets are not read; training still runs in both outputs.
    worst = _steps_agree(_two_heads("[mean(out=recon, weight=0.5), mean(out=kl)]", data=""), tmp_path)
    assert worst < 1e-12


# --- 3. a class label per position --------------------------------------------------------------

TAGGER = """
model Tagger {{
  input tokens: int[{seq}]
  tokens -> embedding(11, 6)
  gru(5, bidirectional=true, return_sequences=true)
  dense({classes}){head}
}}

train {{
  data: synthetic(samples=64)
  loss: {loss}
  optimizer: adam(lr=0.01)
  batch_size: 16
  metrics: [accuracy, top_k(2), precision(micro), recall(macro), f1(macro), confusion_matrix]
}}
"""
W = [1.0, 2.0, 0.5, 3.0]


def _log_softmax(z):
    return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))


def _ce(p, t, eps=0.0, w=None):
    """PyTorch's cross-entropy over every position: logits [B, S, C], labels [B, S]."""
    lp = _log_softmax(p).reshape(-1, p.shape[-1])
    t = t.reshape(-1)
    w = np.ones(p.shape[-1]) if w is None else np.array(w)
    picked = -w[t] * lp[np.arange(len(t)), t]
    smooth = -(w * lp).sum(axis=1) / p.shape[-1]
    return ((1 - eps) * picked.sum() + eps * smooth.sum()) / w[t].sum()


PER_POSITION = {
    "cross_entropy()": lambda p, t: _ce(p, t),
    "cross_entropy(label_smoothing=0.2)": lambda p, t: _ce(p, t, 0.2),
    f"cross_entropy(class_weights={W})": lambda p, t: _ce(p, t, 0.0, W),
    f"cross_entropy(label_smoothing=0.1, class_weights={W})": lambda p, t: _ce(p, t, 0.1, W),
    "cross_entropy(from_logits=false)": None,
    f"cross_entropy(from_logits=false, label_smoothing=0.1, class_weights={W})": None,
    "nll()": lambda p, t: -np.mean(np.take_along_axis(p, t[..., None], axis=-1)),
}


@pytest.mark.parametrize("loss", list(PER_POSITION))
def test_per_position_loss_value_and_gradient_agree(loss, tmp_path):
    import tensorflow as tf
    import torch

    rng = np.random.default_rng(len(loss))
    batch, seq, classes = 3, 7, 4
    target = rng.integers(0, classes, (batch, seq))
    raw = rng.standard_normal((batch, seq, classes)) * 2
    if "from_logits=false" in loss:
        prediction = np.exp(raw) / np.exp(raw).sum(axis=-1, keepdims=True)
        prediction[1, 2, 3] = 1e-9  # clipped alike in both
    elif loss.startswith("nll"):
        prediction = _log_softmax(raw)
    else:
        prediction = raw
    checked = check_text(TAGGER.format(seq=seq, classes=classes, loss=loss, head=" -> log_softmax()" if loss.startswith("nll") else ""))
    with keras_floatx("float64"):
        t_mod, k_mod = load_generated(checked, "torch", tmp_path), load_generated(checked, "keras", tmp_path)
        p = torch.tensor(prediction, requires_grad=True)
        t_loss = t_mod.loss_fn(p, torch.from_numpy(target))
        t_loss.backward()
        k_p = tf.Variable(prediction)
        with tf.GradientTape() as tape:
            k_loss = tf.reduce_mean(k_mod.loss_fn(tf.constant(target), tf.convert_to_tensor(k_p)))  # Keras's mean over all values
        k_grad = tape.gradient(k_loss, k_p).numpy()
    np.testing.assert_allclose(float(k_loss), t_loss.item(), rtol=1e-12)
    np.testing.assert_allclose(k_grad, p.grad.numpy(), rtol=1e-9, atol=1e-14)
    if PER_POSITION[loss] is not None:
        np.testing.assert_allclose(t_loss.item(), PER_POSITION[loss](prediction, target), rtol=1e-12)


def test_per_position_metrics_and_labels(tmp_path):
    checked = check_text(TAGGER.format(seq=7, classes=4, loss="cross_entropy()", head=""))
    t_mod, k_mod = load_generated(checked, "torch", tmp_path / "t"), load_generated(checked, "keras", tmp_path / "k")
    x, y, _, _ = t_mod.load_data()
    assert y.shape == (len(x), 7) and y.dtype == np.int64 and set(np.unique(y)) <= {0, 1, 2, 3}
    # synthetic tags a token by a fixed rule: one token id, one tag, wherever it stands
    tags = {}
    for token, tag in zip(x.ravel(), y.ravel()):
        assert tags.setdefault(token, tag) == tag
    rng = np.random.default_rng(3)
    out = rng.standard_normal((len(y), 7, 4))
    logs = t_mod.compute_metrics(out, y)
    assert logs == k_mod.compute_metrics(out, y)
    predicted = out.argmax(-1)
    assert logs["accuracy"] == np.mean(predicted == y)  # over every position of every sample
    assert logs["precision_micro"] == pytest.approx(np.mean(predicted == y))
    top2 = np.argsort(-out, axis=-1)[..., :2]
    assert logs["top2_accuracy"] == np.mean((top2 == y[..., None]).any(-1))
    matrix = t_mod.confusion_matrix(out, y)
    assert matrix.sum() == y.size and np.trace(matrix) == (predicted == y).sum()


def test_tagger_steps_agree(tmp_path):
    worst = _steps_agree(TAGGER.format(seq=7, classes=4, loss=f"cross_entropy(label_smoothing=0.1, class_weights={W})", head=""),
                         tmp_path)
    assert worst < 1e-12


@pytest.mark.parametrize(("body", "data", "message"), [
    ("input x: [6]\n  dense(20)\n  reshape((5, 2, 2))", "synthetic()",
     "cross_entropy needs an output of shape [classes], or [positions, classes] for a label per position, but output `reshape` is [5, 2, 2]"),
    ("input x: [8, 8]\n  dense(10)", "digits()", "digits has 10 classes, but the model's output is [8, 10]"),
])
def test_per_position_errors(body, data, message):
    assert message in _error(f"model M {{\n  {body}\n}}\n\ntrain {{\n  data: {data}\n}}\n")


def test_per_position_labels_from_a_file(tmp_path):
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "tags.npz", x=rng.integers(0, 11, (20, 7)), y=rng.integers(0, 4, (20, 7)))
    spec = tmp_path / "tagger.dls"
    spec.write_text(TAGGER.format(seq=7, classes=4, loss="cross_entropy()", head="").replace("synthetic(samples=64)", 'npz("tags.npz")'))
    x, y, _, _ = load_generated(check_file(spec), "torch", tmp_path / "t").load_data()
    assert x.shape == (16, 7) and y.shape == (16, 7)
    np.savez(tmp_path / "tags.npz", x=rng.integers(0, 11, (20, 7)), y=rng.integers(0, 4, (20,)))
    with pytest.raises(DlsError, match=r"labels of shape \[\] per sample, but the model's output \[7, 4\] takes labels of shape \[7\]"):
        check_file(spec)


# --- 4. several inputs ---------------------------------------------------------------------------

GCN = """
model Gcn {{
  input features: [5, 3]
  input adjacency: [5, 5]
  (features, adjacency) -> graph_conv(4, activation=tanh) -> hidden
  (hidden, adjacency) -> graph_conv(2) -> nodes
}}

train {{
  data: {data}
  optimizer: adam(lr=0.01)
  batch_size: 16
  {extra}
}}
"""

MIXED = """
model Mixed {
  input tokens: int[5]
  input extra: [5, 2]
  tokens -> embedding(9, 4) -> e
  (e, extra) -> concat(axis=-1) -> gru(6) -> dense(3)
}

train {
  data: synthetic(samples=64, task=regression)
  loss: mse()
  optimizer: sgd(lr=0.1, momentum=0.9)
  batch_size: 16
  augment: [token_mask(0.2)]
}
"""

IMAGE_AND_FEATURES = """
model ImageAndFeatures {
  input image: [1, 4, 6]
  input extra: [3]
  image -> flatten() -> f
  (f, extra) -> concat() -> dense(5, activation=tanh) -> dense(2)
}

train {
  data: synthetic(samples=48, task=binary)
  loss: binary_cross_entropy()
  batch_size: 16
  augment: [noise(0.3), flip()]
}
"""


def test_synthetic_data_gives_every_input(tmp_path):
    checked = check_text(GCN.format(data="synthetic(samples=40)", extra=""))
    t_data = load_generated(checked, "torch", tmp_path / "t").load_data()
    k_data = load_generated(checked, "keras", tmp_path / "k").load_data()
    (features, adjacency), y, (f_val, a_val), y_val = t_data
    for a, b in zip([features, adjacency, y, f_val, a_val, y_val], [*k_data[0], k_data[1], *k_data[2], k_data[3]]):
        np.testing.assert_array_equal(a, b)
    assert features.shape == (32, 5, 3) and adjacency.shape == (32, 5, 5) and y.shape == (32, 5) and len(y_val) == 8
    np.testing.assert_array_equal(adjacency, adjacency.transpose(0, 2, 1))  # undirected
    assert set(np.unique(adjacency)) == {0.0, 1.0} and not adjacency[:, range(5), range(5)].any()
    x, y, _, _ = load_generated(check_text(MIXED), "torch", tmp_path / "m").load_data()
    assert x[0].dtype == np.int64 and 0 <= x[0].min() and x[0].max() < 9 and x[1].dtype == np.float32 and y.shape == (len(y), 3)


@pytest.mark.parametrize("text", [GCN.format(data="synthetic(samples=48)", extra=""), MIXED, IMAGE_AND_FEATURES],
                         ids=["gcn", "tokens_and_features", "image_and_features"])
def test_several_inputs_train_alike(text, tmp_path):
    worst = _steps_agree(text, tmp_path)
    assert worst < 1e-12


@pytest.mark.parametrize("text", [GCN.format(data="synthetic(samples=48)", extra=""), MIXED, IMAGE_AND_FEATURES,
                                  AUTOENCODER.format(data="digits(reconstruct=true)", loss="mse()", extra="augment: [noise(0.2)]")],
                         ids=["gcn", "tokens_and_features", "image_and_features", "denoising"])
def test_the_pytorch_loop_feeds_the_batches_keras_gets(text, tmp_path):
    """fit() in the PyTorch output builds its batches itself: the same as Keras's TrainingBatches,
    with the augmentation on the first input only and never on the targets."""
    checked = check_text(text)
    t_mod, k_mod = load_generated(checked, "torch", tmp_path / "t"), load_generated(checked, "keras", tmp_path / "k")
    x, y, x_val, y_val = t_mod.load_data()
    x, y = (tuple(a[:40] for a in x), y[:40]) if isinstance(x, tuple) else (x[:40], y[:40])
    fed = []

    def record(model, optimizer, xb, yb):
        fed.append((tuple(a.numpy() for a in xb) if isinstance(xb, tuple) else xb.numpy(), yb.numpy()))
        return t_mod.torch.zeros(())

    t_mod.train_step = record
    t_mod.fit(t_mod.build_model(), (x, y, x_val[:0] if not isinstance(x_val, tuple) else tuple(a[:0] for a in x_val), y_val[:0]),
              epochs=2, on_epoch=lambda e, logs: None)
    batches = k_mod.TrainingBatches(x, y, 16)
    expected = []
    for epoch in range(2):
        expected += [batches[step] for step in range(len(batches))]
        batches.on_epoch_end()
    assert len(fed) == len(expected) == 6
    for (t_x, t_y), (k_x, k_y) in zip(fed, expected):
        for a, b in zip(t_x if isinstance(t_x, tuple) else (t_x,), k_x if isinstance(k_x, tuple) else (k_x,)):
            np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(t_y, k_y)
    first = fed[0][0]
    if isinstance(first, tuple) and checked.plan.augment:  # the first input is augmented, the others are not
        idx = t_mod.batch_indices(len(y), 16, 1, 0)
        assert not np.array_equal(first[0], x[0][idx])
        for a, b in zip(first[1:], x[1:]):
            np.testing.assert_array_equal(a, b[idx])


def test_npz_gives_one_array_per_input(tmp_path):
    rng = np.random.default_rng(0)
    arrays = {"features": rng.standard_normal((20, 5, 3)), "adjacency": (rng.random((20, 5, 5)) < 0.3).astype(float),
              "y": rng.integers(0, 2, (20, 5))}
    np.savez(tmp_path / "graphs.npz", **arrays)
    spec = tmp_path / "gcn.dls"
    spec.write_text(GCN.format(data='npz("graphs.npz", validation=0.25)', extra=""))
    (features, adjacency), y, _, _ = load_generated(check_file(spec), "keras", tmp_path / "k").load_data()
    train = np.random.default_rng(0).permutation(20)[5:]
    np.testing.assert_array_equal(features, arrays["features"][train].astype(np.float32))
    np.testing.assert_array_equal(adjacency, arrays["adjacency"][train].astype(np.float32))
    np.testing.assert_array_equal(y, arrays["y"][train])
    for data, message in [('npz("graphs.npz", x="features")', "the model has 2 inputs: npz reads each from the array named after it"),
                          ('npz("graphs.npz", normalize=true)', "normalize works on a model with one input"),
                          ('npz("other.npz")', "other.npz has no array `adjacency`")]:
        np.savez(tmp_path / "other.npz", features=arrays["features"], y=arrays["y"])
        spec.write_text(GCN.format(data=data, extra=""))
        with pytest.raises(DlsError) as exc:
            check_file(spec)
        assert message in exc.value.diagnostics[0].message


@pytest.mark.parametrize(("data", "message"), [
    ("digits()", "digits gives one input per sample, but the model has 2 inputs (`features`, `adjacency`)"),
    ('csv("x.csv")', "csv gives one input per sample, but the model has 2 inputs"),
])
def test_one_input_sources_refuse_several(data, message):
    assert message in _error(GCN.format(data=data, extra=""))


# --- 5. a test split -----------------------------------------------------------------------------

SPLIT = """
model Net {{
  input x: [6]
  dense(8, activation=relu) -> dense(3)
}}

train {{
  data: synthetic(samples=80{data})
  optimizer: adam(lr=0.01)
  epochs: 2
  batch_size: 16
  metrics: [accuracy]
}}
"""


def test_the_test_split_comes_after_validation(tmp_path):
    before = load_generated(check_text(SPLIT.format(data="")), "torch", tmp_path / "a").load_splits()
    module = load_generated(check_text(SPLIT.format(data=", validation=0.25, test=0.15")), "keras", tmp_path / "b")
    x, _, x_val, _, x_test, y_test = module.load_splits()
    assert (len(x), len(x_val), len(x_test)) == (48, 20, 12)
    all_x = np.concatenate([before[0], before[2]])  # the same samples, split otherwise
    order = np.random.default_rng(0).permutation(80)
    generated = module.load_arrays(0)[0]
    np.testing.assert_array_equal(x_val, generated[order[:20]])
    np.testing.assert_array_equal(x_test, generated[order[20:32]])
    np.testing.assert_array_equal(x, generated[order[32:]])
    assert len(before[4]) == 0 and len(all_x) == 80  # test=0 (the default): no test samples, splits as before
    np.testing.assert_array_equal(before[2], generated[order[:16]])
    np.testing.assert_array_equal(module.load_test_data()[1], y_test)


def test_dls_run_and_the_generated_main_report_the_test_split(tmp_path):
    import json
    import subprocess
    import sys

    from .helpers import dls

    spec = tmp_path / "net.dls"
    spec.write_text(SPLIT.format(data=", test=0.25"))
    r = dls("run", spec, "--out", tmp_path / "run", "-b", "torch")
    assert r.returncode == 0, r.stderr
    assert "/ 20 test samples" in r.stdout
    assert re.search(r"metric\W+train\W+validation\W+test\s*$", r.stdout, re.MULTILINE)  # the table's columns
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert set(metrics["test"]) == {"loss", "accuracy"} and set(metrics["final"]) == {"train", "validation"}
    out = tmp_path / "gen" / "net_keras.py"
    r = dls("compile", spec, "-t", "keras", "-o", out)
    assert r.returncode == 0, r.stderr
    code = out.read_text().replace("EPOCHS = 2", "EPOCHS = 1")
    out.write_text(code)
    run = subprocess.run([sys.executable, str(out)], cwd=out.parent, capture_output=True, text=True, timeout=300, check=False)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip().splitlines()[-1].startswith("test loss=") and "accuracy=" in run.stdout


MASKED = """model Masked {
  input tokens: int[10]
  input mask: [10]
  tokens -> embedding(30, 8) -> x
  (x, mask) -> attention(2, masked=true) -> permute((1, 0)) -> global_avgpool() -> dense(3)
}

train {
  data: synthetic(samples=200)
}
"""


def test_synthetic_attention_masks_are_zeros_and_ones(tmp_path):
    (tokens, mask), *_ = load_generated(check_text(MASKED), "torch", tmp_path).load_data()
    assert set(np.unique(mask)) == {0.0, 1.0} and 0.7 < mask.mean() < 0.9  # attend with probability 0.8
    assert tokens.dtype == np.int64


@pytest.mark.parametrize("layer", ["attention(2, masked=true)", "transformer_encoder(2, 6, masked=true, causal=true, dropout=0.0)"])
def test_masked_attention_trains_alike(layer, tmp_path):
    assert _steps_agree(MASKED.replace("attention(2, masked=true)", layer), tmp_path) < 1e-9
