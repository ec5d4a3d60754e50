"""`dls run` as a training tool: checkpoints, resuming, a loss that is not finite, history files."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from dlspec.check import check_text
from dlspec.runtime import load_generated

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
