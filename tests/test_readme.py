"""The README's examples: the spec it shows is the demo, and its train section checks."""

from __future__ import annotations

import re

import numpy as np

from dlspec.check import check_file

from .helpers import ROOT

README = (ROOT / "README.md").read_text()


def _blocks(kind: str) -> list[str]:
    return re.findall(rf"```{kind}\n(.*?)```", README, flags=re.DOTALL)


def test_the_spec_shown_is_the_demo():
    shown = _blocks("dls")[0]
    assert shown.replace("# specs/demo.dls\n", "").strip() in (ROOT / "specs" / "demo.dls").read_text()


def test_the_train_section_shown_checks(tmp_path):
    (tmp_path / "data").mkdir()
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "data" / "train.npz", x=rng.random((30, 3, 8, 8)), y=rng.integers(0, 3, 30))
    model = "model Net {\n  input image: [3, 8, 8]\n  conv2d(4, 3) -> flatten() -> dense(3)\n}\n\n"
    spec = tmp_path / "net.dls"
    spec.write_text(model + _blocks("dls-fragment")[0])
    plan = check_file(spec).plan
    assert plan.optimizer.name == "adamw" and len(plan.augment) == 4 and plan.early_stopping.patience == 5
