"""Adversarial training (a train section with a `discriminator`): the plan's checks, the same
adversarial steps in both outputs, and `dls run` of a GAN."""

from __future__ import annotations

import numpy as np
import pytest

from dlspec.backends.codegen import builder_name
from dlspec.check import check_text
from dlspec.diagnostics import DlsError
from dlspec.runtime import load_generated
from dlspec.transfer import keras_to_torch, torch_to_keras
from dlspec.verify import keras_floatx, randomize

from .equality import float64_training

# Every dimension differs (noise 5, map [4, 3, 2], samples [2, 6, 4]), so that a wrong transpose
# cannot pass by symmetry; batch norm in both models, in training mode.
SPEC = """
model Gen {{
  input z: [5]
  z -> dense(24) -> reshape((4, 3, 2)) -> batchnorm() -> relu()
  conv_transpose2d(2, 4, stride=2, padding=1) -> tanh()
}}

model Disc {{
  input sample: [2, 6, 4]
  sample -> conv2d(3, 3, stride=2, padding=1) -> leaky_relu(0.2) -> batchnorm() -> flatten() -> dense(1)
}}

train {{
  model: Gen
  discriminator: Disc
  data: synthetic(samples=64)
  loss: {loss}
  optimizer: {optimizer}
  schedule: {schedule}
  epochs: 2
  batch_size: 16
  {extra}
}}
"""
STEPS = 4

CASES = [
    ("adversarial()", "adam(lr=0.01, beta1=0.5)", "constant()", ""),
    ("adversarial(label_smoothing=0.1)", "sgd(lr=0.1, momentum=0.9)", "cosine(min_ratio=0.1)", "d_optimizer: adam(lr=0.02)"),
    ("adversarial(label_smoothing=0.2)", "rmsprop(lr=0.01)", "constant()", "d_optimizer: nadam(lr=0.01)"),
    # Small thresholds, so that clipping acts in every step of both models (the generator's with
    # build_optimizer's clips, the discriminator's with build_d_optimizer's).
    ("adversarial()", "adam(lr=0.01)", "constant()", "clip_norm: 0.05\n  clip_value: 0.01\n  d_optimizer: sgd(lr=0.1, momentum=0.9)"),
]


def gan(loss="adversarial()", optimizer="adam(lr=0.01)", schedule="constant()", extra=""):
    return SPEC.format(loss=loss, optimizer=optimizer, schedule=schedule, extra=extra)


@pytest.mark.parametrize("loss,optimizer,schedule,extra", CASES)
def test_adversarial_steps_agree(loss, optimizer, schedule, extra, tmp_path):

    with float64_training():
        _steps(check_text(gan(loss, optimizer, schedule, extra)), tmp_path)


def _steps(checked, tmp_path):
    import tensorflow as tf
    import torch

    graphs = {g.name: g for g in checked.graphs}
    pair = [graphs["Gen"], graphs["Disc"]]
    rng = np.random.default_rng(0)
    batches = [(rng.standard_normal((8, 2, 6, 4)), rng.standard_normal((8, 5))) for _ in range(STEPS)]
    with keras_floatx("float64"):
        t_mod, k_mod = load_generated(checked, "torch", tmp_path), load_generated(checked, "keras", tmp_path)
        t_models, k_models = [], []
        for seed, graph in enumerate(pair, start=1):
            t_model = getattr(t_mod, builder_name(checked, graph))().double()
            randomize(t_model, seed=seed)
            k_model = getattr(k_mod, builder_name(checked, graph))()
            torch_to_keras(graph, t_model, k_model)
            t_models.append(t_model)
            k_models.append(k_model)
        d_build = "build_d_optimizer" if checked.plan.d_optimizer else "build_optimizer"
        (t_g_opt, t_g_sched), (t_d_opt, t_d_sched) = t_mod.build_optimizer(t_models[0], STEPS), getattr(t_mod, d_build)(t_models[1], STEPS)
        k_g_opt, k_d_opt = k_mod.build_optimizer(STEPS), getattr(k_mod, d_build)(STEPS)
        k_step = tf.function(k_mod.train_step)  # as fit runs it
        t_losses, k_losses = [], []
        for real, z in batches:
            t_losses.append([v.item() for v in t_mod.train_step(*t_models, t_g_opt, t_d_opt, torch.from_numpy(real), torch.from_numpy(z))])
            for scheduler in (t_g_sched, t_d_sched):
                if scheduler is not None:
                    scheduler.step()
            k_losses.append([float(v) for v in k_step(*k_models, k_g_opt, k_d_opt, real, z)])
        # Copied back into fresh PyTorch models, to compare in PyTorch's layout.
        backs = []
        for graph, k_model in zip(pair, k_models):
            back = getattr(t_mod, builder_name(checked, graph))().double()
            keras_to_torch(graph, k_model, back)
            backs.append(back)
    # The losses of every step: float64 rounding only (a wrong label, sum or batch-norm mode is off by > 1e-3).
    np.testing.assert_allclose(k_losses, t_losses, rtol=1e-9)
    worst = 0.0
    for i, (graph, t_model, back) in enumerate(zip(pair, t_models, backs)):
        got = dict(back.named_parameters())
        for name, value in t_model.named_parameters():
            a, b = got[name].detach().numpy(), value.detach().numpy()
            worst = max(worst, float(np.abs(a - b).max()))
            # Four steps of size ~lr (1e-2) through both models: 1e-8 absolute is 1e-6 of a step, room
            # only for float64 rounding, which m / sqrt(v) (Adam, RMSprop) enlarges where a gradient
            # is near 0 (measured: up to 5.3e-10). A wrong formula or order is off by ~1e-3 of a step or more.
            np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-8, err_msg=f"{graph.name}.{name}")
        start = getattr(t_mod, builder_name(checked, graph))().double()
        randomize(start, seed=i + 1)
        moved = max((dict(start.named_parameters())[k] - v).abs().max().item() for k, v in t_model.named_parameters())
        assert moved > 1e-4, f"{graph.name} did not train"
    print(f"largest parameter difference: {worst:.2e}")


# --- the plan's checks ---------------------------------------------------------------------------------

def _with(old: str, new: str) -> str:
    text = gan()
    assert old in text
    return text.replace(old, new, 1)


ERRORS = [
    ("no discriminator", _with("  discriminator: Disc\n", ""), "adversarial() is for a generator", "discriminator: <model>"),
    ("d_optimizer alone", "model M {\n  input x: [4]\n  dense(1)\n}\n\ntrain {\n  d_optimizer: sgd()\n}\n",
     "`d_optimizer` is for a generator trained against a discriminator", "discriminator: <model>"),
    ("unknown discriminator", _with("discriminator: Disc", "discriminator: Dics"), "unknown model `Dics`", "Disc"),
    ("itself", _with("discriminator: Disc", "discriminator: Gen"), "both the generator", "a model of its own"),
    ("supervised loss", _with("loss: adversarial()", "loss: mse()"), "not mse", "label_smoothing"),
    ("smoothing of 1", _with("loss: adversarial()", "loss: adversarial(label_smoothing=1)"), "label_smoothing", None),
    ("fake shape", _with("input sample: [2, 6, 4]", "input sample: [2, 4, 6]"),
     "the generator gives samples of shape [2, 6, 4], but the discriminator's input `sample` is [2, 4, 6]", "same shape"),
    ("verdict shape", _with("-> dense(1)", "-> dense(2)"), "one logit per sample, shape [1], but `Disc` gives [2]", "dense(1)"),
    ("integer noise", _with("input z: [5]\n  z -> dense(24)", "input z: int[5]\n  z -> embedding(10, 4) -> flatten() -> dense(24)"),
     "`z` receives noise z ~ N(0, 1), so it must be float", "input z: [5]"),
    ("data shape", _with("data: synthetic(samples=64)", "data: digits()"), "digits gives 64 pixels", "[1, 8, 8]"),
    ("metrics", _with("  epochs: 2\n", "  epochs: 2\n  metrics: [accuracy]\n"), "`metrics` is not supported in adversarial training", "d_loss"),
    ("early stopping", _with("  epochs: 2\n", "  early_stopping: patience(3)\n"), "`early_stopping` is not supported", None),
    ("l2", _with("  epochs: 2\n", "  l2: 0.01\n"), "`l2` is not supported", None),
    ("clip_norm", _with("  epochs: 2\n", "  clip_norm: -1\n"), "`clip_norm` must be a positive number", None),
    ("plateau", _with("schedule: constant()", "schedule: plateau()"), "watches a validation figure", "cosine()"),
    ("adversarial without a discriminator", "model M {\n  input x: [4]\n  dense(1)\n}\n\ntrain {\n  loss: adversarial()\n}\n",
     "is for a generator trained against a discriminator", "discriminator: <model>"),
]


@pytest.mark.parametrize("case,text,message,hint", ERRORS, ids=[e[0] for e in ERRORS])
def test_plan_errors(case, text, message, hint):
    with pytest.raises(DlsError) as info:
        check_text(text)
    d = info.value.diagnostics[0]
    assert message in d.message
    assert d.span.known
    if hint:
        assert hint in (d.hint or "")


def test_the_plan_of_a_gan():
    plan = check_text(gan(extra="d_optimizer: sgd(lr=0.1)")).plan
    assert (plan.model, plan.discriminator, plan.loss.name) == ("Gen", "Disc", "adversarial")
    assert (plan.optimizer.name, plan.d_optimizer.name) == ("adam", "sgd")
    # Supervised specs with two models keep their plan: no discriminator.
    two = gan().split("train {")[0] + "train {\n  model: Disc\n  data: synthetic(task=binary)\n  loss: binary_cross_entropy()\n}\n"
    assert check_text(two).plan.discriminator is None


def test_the_losses_follow_their_formulas(tmp_path):
    import torch

    module = load_generated(check_text(gan("adversarial(label_smoothing=0.2)")), "torch", tmp_path)
    real, fake = np.array([[0.3], [-1.2], [2.0]]), np.array([[-0.5], [0.8], [0.1]])

    def bce(x, t):  # with logits, averaged
        return float(np.mean(np.logaddexp(0, x) - t * x))

    d = module.d_loss_fn(torch.from_numpy(real), torch.from_numpy(fake)).item()
    g = module.g_loss_fn(torch.from_numpy(fake)).item()
    assert d == pytest.approx(bce(real, 0.8) + bce(fake, 0.0), rel=1e-12)
    assert g == pytest.approx(bce(fake, 1.0), rel=1e-12)  # non-saturating: -log D(G(z)), not log(1 - D(G(z)))


# --- the generated loop and `dls run` ---------------------------------------------------------------------

def test_both_outputs_draw_the_same_batches_and_noise(tmp_path):
    checked = check_text(gan())
    t_mod, k_mod = load_generated(checked, "torch", tmp_path), load_generated(checked, "keras", tmp_path)
    for epoch, step in [(1, 0), (1, 3), (2, 1)]:
        assert np.array_equal(t_mod.batch_indices(51, 16, epoch, step), k_mod.batch_indices(51, 16, epoch, step))
        assert np.array_equal(t_mod.noise(16, epoch, step), k_mod.noise(16, epoch, step))
    assert t_mod.noise(4, 1, 0).shape == (4, 5)
    assert not np.array_equal(t_mod.noise(4, 1, 0), t_mod.noise(4, 1, 1))


class Killed(Exception):
    pass


@pytest.mark.parametrize("backend", ["torch", "keras"])
def test_a_resumed_run_ends_as_an_uninterrupted_one(backend, tmp_path):
    text = gan("adversarial(label_smoothing=0.1)", "adam(lr=0.01)", "cosine()").replace("epochs: 2", "epochs: 3")
    module = load_generated(check_text(text), backend, tmp_path)
    data = module.load_data()
    whole = module.build_model(), module.build_disc()
    module.fit(*whole, data, on_epoch=lambda e, logs: None)

    def kill_after_two(epoch, logs):
        if epoch == 2:
            raise Killed  # as if the process died after the checkpoint of epoch 2

    checkpoint = str(tmp_path / ("checkpoint.pt" if backend == "torch" else "backup"))
    with pytest.raises(Killed):
        module.fit(module.build_model(), module.build_disc(), data, checkpoint=checkpoint, on_epoch=kill_after_two)
    resumed = module.build_model(), module.build_disc()  # a fresh process would start from fresh weights
    history = module.fit(*resumed, data, checkpoint=checkpoint, resume=True, on_epoch=lambda e, logs: None)
    assert len(history) == 3 and set(history[0]) == {"d_loss", "g_loss", "time"}
    for a, b in zip(whole, resumed):
        # Bit for bit: batches, noise, weights, batch-norm statistics, optimizers and schedule resumed.
        for x, y in zip(_state(a, backend), _state(b, backend), strict=True):
            assert np.array_equal(x, y)


def _state(model, backend):
    return [t.numpy() for t in model.state_dict().values()] if backend == "torch" else model.get_weights()


@pytest.mark.parametrize("backend", ["torch", "keras"])
def test_dls_run_trains_a_gan(backend, tmp_path):
    import json

    from .helpers import dls

    spec = tmp_path / "gan.dls"
    spec.write_text(gan().replace("conv_transpose2d(2,", "conv_transpose2d(1,").replace("[2, 6, 4]", "[1, 6, 4]"))  # grey images
    out = tmp_path / "run"
    r = dls("run", spec, "--backend", backend, "--out", out)
    assert r.returncode == 0, r.stderr
    rows = (out / "history.csv").read_text().splitlines()
    assert rows[0] == "epoch,d_loss,g_loss,time,lr" and len(rows) == 3
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["discriminator"] == "Disc" and set(metrics["final"]) == {"d_loss", "g_loss"}
    assert json.loads((out / "resolved.json").read_text())["train"]["discriminator"] == "Disc"
    for name in ("curves.png", "samples.png"):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    weights = ("generator.pt", "discriminator.pt") if backend == "torch" else ("generator.weights.h5", "discriminator.weights.h5")
    assert all((out / w).exists() for w in weights)
    again = dls("run", spec, "--backend", backend, "--out", out, "--resume")  # a finished run: nothing to do
    assert again.returncode == 0, again.stderr
    assert (out / "history.csv").read_text().splitlines() == rows


def test_a_gan_whose_losses_are_not_finite_stops(tmp_path):
    from .helpers import dls

    spec = tmp_path / "gan.dls"
    spec.write_text(gan(optimizer="sgd(lr=1e30)"))
    r = dls("run", spec, "--out", tmp_path / "run")
    assert r.returncode == 1, r.stderr
    assert "training stopped: the losses became" in r.stderr and "Traceback" not in r.stderr


def test_check_names_the_discriminator():
    from .helpers import ROOT, dls

    r = dls("check", ROOT / "specs" / "dcgan.dls")
    assert r.returncode == 0 and "train Generator against Discriminator" in " ".join(r.stdout.split())
