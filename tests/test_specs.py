"""Every spec in specs/ passes `dls check`, compiles for both targets to ruff-clean code, and the
generated code builds, runs a forward pass and one training step, and verifies equal."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from dlspec.backends.codegen import builder_name, generate
from dlspec.check import check_file
from dlspec.runtime import load_generated
from dlspec.verify import DEFAULT_RTOL, verify

from .helpers import SPECS

pytestmark = pytest.mark.parametrize("spec", SPECS, ids=[p.stem for p in SPECS])


def test_checks_without_warnings(spec):
    checked = check_file(spec)
    assert checked.warnings == []
    assert checked.graph.params("keras")[0] > 0


@pytest.mark.parametrize("target", ["torch", "keras"])
def test_generated_code_is_ruff_clean(spec, target, tmp_path):
    path = tmp_path / f"{spec.stem}_{target}.py"
    path.write_text(generate(check_file(spec), target))
    ruff = subprocess.run([sys.executable, "-m", "ruff", "check", "--isolated", "--select", "E,F,W,I,B,UP", "--line-length", "200", str(path)],
                          check=False, capture_output=True, text=True)
    assert ruff.returncode == 0, ruff.stdout


def _first(x, n=8):
    """The first n samples of the inputs: an array, or a tuple of arrays for a model with several."""
    return tuple(a[:n] for a in x) if isinstance(x, tuple) else x[:n]


def _shapes(out) -> list[tuple]:
    return [tuple(o.shape) for o in (out if isinstance(out, list | tuple) else [out])]


def test_torch_forward_and_one_step(spec, tmp_path):
    import torch

    checked = check_file(spec)
    module = load_generated(checked, "torch", tmp_path)
    if checked.plan.discriminator:
        return _gan_step(checked, module, "torch")
    x, y, _, _ = module.load_data()
    model = module.build_model()
    xb, yb = _first(x), torch.from_numpy(y[:8])
    out = model(*map(torch.from_numpy, xb)) if isinstance(xb, tuple) else model(torch.from_numpy(xb))
    assert _shapes(out) == [(8, *checked.graph.shape_of(o)) for o in checked.graph.outputs]
    optimizer, _ = module.build_optimizer(model, 10)
    before = [p.detach().clone() for p in model.parameters()]
    loss = module.loss_fn(out, yb)
    loss.backward()
    optimizer.step()
    assert np.isfinite(loss.item())
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters())), "one step changed no weight"


def test_keras_forward_and_one_step(spec, tmp_path):
    import keras

    checked = check_file(spec)
    module = load_generated(checked, "keras", tmp_path)
    if checked.plan.discriminator:
        return _gan_step(checked, module, "keras")
    x, y, _, _ = module.load_data()
    model = module.build_model()
    out = model(_first(x), training=False)
    assert _shapes(out) == [(8, *checked.graph.shape_of(o)) for o in checked.graph.outputs]
    module.compile_model(model, 10)
    before = [w.copy() for w in model.get_weights()]
    # Several outputs: fit takes one target per output (the generated targets_of).
    loss = model.train_on_batch(_first(x), getattr(module, "targets_of", lambda t: t)(y[:8]))
    assert np.isfinite(float(np.ravel(loss)[0]))
    assert any(not np.array_equal(a, b) for a, b in zip(before, model.get_weights()))
    keras.backend.clear_session()


def _gan_step(checked, module, target):
    """A GAN's forward pass and one adversarial step (train_step: the discriminator's, then the
    generator's) on 8 real samples and noise: the losses are finite and both models change."""
    disc = next(g for g in checked.graphs if g.name == checked.plan.discriminator)
    generator, discriminator = module.build_model(), getattr(module, builder_name(checked, disc))()
    real, z = module.load_data()[0][:8], module.noise(8, 1, 0)
    build_d = module.build_d_optimizer if checked.plan.d_optimizer else module.build_optimizer
    if target == "torch":
        import torch

        real, z = torch.from_numpy(real), torch.from_numpy(z)
        (g_opt, _), (d_opt, _) = module.build_optimizer(generator, 10), build_d(discriminator, 10)
        weights = lambda m: [p.detach().numpy().copy() for p in m.parameters()]
    else:
        g_opt, d_opt = module.build_optimizer(10), build_d(10)
        weights = lambda m: m.get_weights()
    assert tuple(np.shape(generator(z))) == tuple(real.shape)
    before = [weights(m) for m in (generator, discriminator)]
    losses = module.train_step(generator, discriminator, g_opt, d_opt, real, z)
    assert all(np.isfinite(float(np.asarray(loss.detach() if target == "torch" else loss))) for loss in losses)
    for m, was in zip((generator, discriminator), before):
        assert any(not np.array_equal(a, b) for a, b in zip(was, weights(m))), f"one step changed no weight of {m}"


def test_both_backends_compute_the_same_function(spec):
    # float64 with random weights and statistics: rtol 1e-6 relative to the output's scale
    # (EQUIVALENCE.md rule 5); parameter counts must equal dlspec's, per framework. Every model
    # of the spec (a GAN's discriminator too).
    checked = check_file(spec)
    for graph in checked.graphs:
        report = verify(checked, "float64", graph=graph)
        assert report.ok(DEFAULT_RTOL["float64"]), (graph.name, report.outputs, report.params)
