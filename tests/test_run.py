"""`dls run` as a training tool: checkpoints, resuming, a loss that is not finite, history files."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from dlspec.check import check_text
from dlspec.runtime import load_generated

from .equality import float64_training
from .helpers import dls

SPEC = """
model Net {
  input x: [6]
  x -> dense(16, activation=relu) -> dropout(0.3) -> dense(3)
}

train {
  data: synthetic(samples=96)
  optimizer: adam(lr=0.01)
  schedule: cosine(warmup=3)
  epochs: 4
  batch_size: 16
  early_stopping: patience(10, monitor=val_loss)
}
"""


class Killed(Exception):
    pass


def test_resume_ends_with_the_weights_of_an_uninterrupted_run(tmp_path):
    import torch

    module = load_generated(check_text(SPEC), "torch", tmp_path)
    data = module.load_data()
    whole = module.build_model()
    module.fit(whole, data, on_epoch=lambda e, logs: None)

    def kill_after_two(epoch, logs):
        if epoch == 2:
            raise Killed  # as if the process died after the checkpoint of epoch 2 was written

    checkpoint = str(tmp_path / "checkpoint.pt")
    with pytest.raises(Killed):
        module.fit(module.build_model(), data, checkpoint=checkpoint, on_epoch=kill_after_two)
    resumed = module.build_model()  # a fresh process would start from fresh weights
    history = module.fit(resumed, data, checkpoint=checkpoint, resume=True, on_epoch=lambda e, logs: None)
    assert len(history) == 4
    for (name, a), b in zip(whole.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), name  # bit for bit: shuffling, dropout and schedule resumed too


def test_keras_run_resumes_from_its_backup(tmp_path):
    import keras

    module = load_generated(check_text(SPEC), "keras", tmp_path)
    data = module.load_data()
    first = module.fit(module.build_model(), data, epochs=2, checkpoint=str(tmp_path / "backup"), verbose=0)
    assert len(first.history["loss"]) == 2
    seen = []

    class Epochs(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            seen.append(epoch)

    module.fit(module.build_model(), data, epochs=4, checkpoint=str(tmp_path / "backup"), callbacks=[Epochs()], verbose=0)
    assert seen == [2, 3]  # epochs 1 and 2 came from the backup


def test_run_folder_and_resume_through_the_cli(tmp_path):
    spec = tmp_path / "net.dls"
    spec.write_text(SPEC)
    out = tmp_path / "run"
    r = dls("run", spec, "--out", out)
    assert r.returncode == 0, r.stderr
    rows = list(csv.DictReader((out / "history.csv").open()))
    assert [row["epoch"] for row in rows] == ["1", "2", "3", "4"] and float(rows[0]["lr"]) > 0
    assert (out / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    again = dls("run", spec, "--out", out)
    assert again.returncode == 2 and "--resume" in again.stderr  # never overwrites a run silently
    for _ in range(2):  # resuming a finished run, twice, changes nothing
        resumed = dls("run", spec, "--out", out, "--resume")
        assert resumed.returncode == 0, resumed.stderr
        assert [row["epoch"] for row in csv.DictReader((out / "history.csv").open())] == ["1", "2", "3", "4"]
    longer = dls("run", spec, "--out", out, "--resume", "--epochs", "6")
    assert longer.returncode == 2 and "started for 4 epochs" in longer.stderr
    spec.write_text(SPEC.replace("adam(lr=0.01)", "adam(lr=0.02)"))
    changed = dls("run", spec, "--out", out, "--resume")
    assert changed.returncode == 2 and "spec differs" in changed.stderr


def test_a_loss_that_is_not_finite_stops_the_run(tmp_path):
    spec = tmp_path / "diverge.dls"
    spec.write_text(SPEC.replace("adam(lr=0.01)", "sgd(lr=1e30)").replace("schedule: cosine(warmup=3)", ""))
    r = dls("run", spec, "--out", tmp_path / "run")
    assert r.returncode == 1
    assert "training stopped: the loss became" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "run" / "weights.pt").exists()


def test_early_stopping_restores_the_best_epoch(tmp_path):
    spec = SPEC.replace("patience(10, monitor=val_loss)", "patience(1, monitor=val_loss)").replace("epochs: 4", "epochs: 30")
    spec = spec.replace("adam(lr=0.01)", "adam(lr=0.3)")  # too fast to keep improving for long
    module = load_generated(check_text(spec), "torch", tmp_path)
    data = module.load_data()
    model = module.build_model()
    history = module.fit(model, data, on_epoch=lambda e, logs: None)
    losses = [h["val_loss"] for h in history]
    assert len(history) < 30 and losses[-1] >= min(losses)
    assert np.isclose(module.evaluate(model, data[2], data[3])["loss"], min(losses))


WHOLE_FIT_SPEC = """
model Net {
  input x: [6]
  x -> dense(16, activation=tanh) -> dense(3)
}

train {
  data: synthetic(samples=80)
  optimizer: adam(lr=0.01)
  schedule: cosine(warmup=3)
  epochs: 3
  batch_size: 16
  augment: []
}
"""


def test_whole_fits_agree_across_epochs(tmp_path):
    # Both generated `fit` functions, from the same weights, train on the same batches in the same
    # order for every epoch (Keras must not permute the batches it is given): the same parameters
    # after 3 epochs, float64, relative 1e-9 (as tests/test_optimizers.py states).

    from dlspec.transfer import keras_to_torch, torch_to_keras
    from dlspec.verify import randomize

    checked = check_text(WHOLE_FIT_SPEC)
    with float64_training():
        t_mod, k_mod = load_generated(checked, "torch", tmp_path), load_generated(checked, "keras", tmp_path)
        x, y, x_val, y_val = (a.astype(np.float64) if a.dtype.kind == "f" else a for a in t_mod.load_data())
        t_model = t_mod.build_model().double()
        randomize(t_model, seed=3)
        k_model = k_mod.build_model()
        torch_to_keras(checked.graph, t_model, k_model)
        t_mod.fit(t_model, (x, y, x_val, y_val), on_step=lambda *a: None, on_epoch=lambda *a: None)
        k_mod.fit(k_model, (x, y, x_val, y_val), verbose=0)
        back = t_mod.build_model().double()
        keras_to_torch(checked.graph, k_model, back)
    for (name, a), b in zip(t_model.state_dict().items(), back.state_dict().values()):
        np.testing.assert_allclose(b.numpy(), a.numpy(), rtol=1e-9, atol=1e-12, err_msg=name)


def test_keras_resume_ends_with_the_weights_of_an_uninterrupted_run(tmp_path):
    # Killed after two of four epochs and resumed from its backup, the Keras output ends bit for
    # bit as an uninterrupted run: the same batches in the same order, the optimizer's state, and
    # dropout's random state.
    import keras

    module = load_generated(check_text(SPEC), "keras", tmp_path)
    data = module.load_data()
    whole = module.build_model()
    module.fit(whole, data, verbose=0)

    class Kill(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            if epoch == 2:
                raise Killed

    with pytest.raises(Killed):
        module.fit(module.build_model(), data, checkpoint=str(tmp_path / "backup"), callbacks=[Kill()], verbose=0)
    resumed = module.build_model()  # a fresh process would start from fresh weights
    module.fit(resumed, data, checkpoint=str(tmp_path / "backup"), verbose=0)
    for a, b in zip(whole.get_weights(), resumed.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
