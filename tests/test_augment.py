"""Augmentation: both outputs draw the same (augmented) training batches, bit for bit, and each
operation does what the language reference says."""

from __future__ import annotations

import numpy as np
import pytest

from dlspec.check import check_text
from dlspec.diagnostics import DlsError
from dlspec.runtime import load_generated

SPEC = """
model Net {{
  input image: [3, 8, 10]
  flatten() -> dense(4)
}}

train {{
  data: synthetic(samples=40)
  batch_size: 16
  augment: [{augment}]
}}
"""
EVERYTHING = ("flip(vertical=true), rotation(20), zoom(0.2), translate(0.2), crop(2), brightness(0.1), "
              "contrast(0.3), saturation(0.5), hue(0.1), noise(0.05), cutout(3)")


def _module(augment, tmp_path, target="torch"):
    return load_generated(check_text(SPEC.format(augment=augment)), target, tmp_path / target)


def test_both_outputs_draw_the_same_augmented_batches(tmp_path):
    torch_mod, keras_mod = _module(EVERYTHING, tmp_path), _module(EVERYTHING, tmp_path, "keras")
    x, y, _, _ = torch_mod.load_data()
    batches = keras_mod.TrainingBatches(x, y, 16)
    for epoch in (1, 2):
        for step in range(len(batches)):
            idx = torch_mod.batch_indices(len(x), 16, epoch, step)
            expected = torch_mod.augment(x[idx], np.random.default_rng([torch_mod.SEED, epoch, step]))
            got_x, got_y = batches[step]
            np.testing.assert_array_equal(got_x, expected)
            np.testing.assert_array_equal(got_y, y[idx])
            assert not np.array_equal(expected, x[idx])  # something was done
        batches.on_epoch_end()


def _one(op, xb, seed=0, **kw):
    module = _one.modules[op]
    return getattr(module, op)(xb, np.random.default_rng(seed), **kw)


@pytest.fixture(scope="module", autouse=True)
def modules(tmp_path_factory):
    names = ["flip", "rotation", "zoom", "translate", "crop", "brightness", "contrast", "saturation", "hue", "noise", "cutout"]
    module = load_generated(check_text(SPEC.format(augment=EVERYTHING)), "torch", tmp_path_factory.mktemp("aug"))
    _one.modules = dict.fromkeys(names, module)


def test_operations_do_what_they_say():
    rng = np.random.default_rng(1)
    xb = rng.random((64, 3, 8, 10)).astype(np.float32)
    flipped = _one("flip", xb, horizontal=True, vertical=False, p=0.5)
    mirrored = [np.array_equal(f, x[..., ::-1]) for f, x in zip(flipped, xb)]
    assert 16 < sum(mirrored) < 48 and all(m or np.array_equal(f, x) for m, f, x in zip(mirrored, flipped, xb))
    np.testing.assert_array_equal(_one("rotation", xb, degrees=1e-9), xb)  # no angle, no change
    turned = _one("rotation", xb[:, :, :8, :8], degrees=180)  # some sample turns by ~180°: its corners swap
    assert any(np.allclose(t[:, 0, 0], x[:, 7, 7]) for t, x in zip(turned, xb[:, :, :8, :8]))
    shifted = _one("translate", xb, fraction=0.3)
    assert ((shifted == 0).mean(axis=(1, 2, 3)) > 0).mean() > 0.5  # zeros fill what moved in
    cropped = _one("crop", xb, padding=2)
    assert cropped.shape == xb.shape and (cropped == 0).any()
    bright = _one("brightness", xb, delta=0.25) - xb
    assert np.allclose(bright, bright[:, :1, :1, :1], atol=1e-6) and np.abs(bright).max() <= 0.25
    assert np.abs(bright[:, 0, 0, 0]).max() > 0.15
    contrasted = _one("contrast", xb, factor=0.5)
    np.testing.assert_allclose(contrasted.mean(axis=(2, 3)), xb.mean(axis=(2, 3)), atol=1e-5)  # means kept
    grey = np.repeat(xb[:, :1], 3, axis=1)
    np.testing.assert_allclose(_one("saturation", grey, factor=0.9), grey, atol=1e-6)  # grey stays grey
    luma = np.array([0.299, 0.587, 0.114])
    hued = _one("hue", xb, delta=0.5)
    np.testing.assert_allclose(np.tensordot(luma, hued, axes=([0], [1])), np.tensordot(luma, xb, axes=([0], [1])), atol=1e-5)
    noisy = _one("noise", np.zeros((64, 3, 8, 10), np.float32), std=0.1)
    assert abs(noisy.std() - 0.1) < 0.005 and abs(noisy.mean()) < 0.005
    cut = _one("cutout", np.ones((64, 3, 8, 10), np.float32), size=3)
    zeros = (cut[:, 0] == 0).sum(axis=(1, 2))
    assert zeros.max() == 9 and zeros.min() >= 4  # a 3×3 square, clipped at the borders


def test_token_mask_and_checks(tmp_path):
    spec = SPEC.replace("input image: [3, 8, 10]", "input tokens: int[50]").replace("flatten()", "embedding(20, 4) -> flatten()")
    module = load_generated(check_text(spec.format(augment="token_mask(0.25, mask=1)")), "torch", tmp_path)
    tokens = np.full((200, 50), 7)
    masked = module.token_mask(tokens, np.random.default_rng(0), rate=0.25, mask=1)
    assert set(np.unique(masked)) == {1, 7} and abs((masked == 1).mean() - 0.25) < 0.02
    with pytest.raises(DlsError, match="works on images"):
        check_text(spec.format(augment="flip()"))
    with pytest.raises(DlsError, match="RGB images"):
        check_text(SPEC.replace("[3, 8, 10]", "[1, 8, 10]").format(augment="hue(0.1)"))
