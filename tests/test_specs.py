"""Every spec in specs/ passes `dls check`, compiles for both targets to ruff-clean code, and the
generated code builds, runs a forward pass and one training step, and verifies equal."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from dlspec.backends.codegen import generate
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


def test_both_backends_compute_the_same_function(spec):
    # float64 with random weights and statistics: rtol 1e-6 relative to the output's scale
    # (EQUIVALENCE.md rule 5); parameter counts must equal dlspec's, per framework.
    report = verify(check_file(spec), "float64")
    assert report.ok(DEFAULT_RTOL["float64"]), (report.outputs, report.params)
