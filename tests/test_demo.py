"""The promise of the README: the demo spec trains to at least 95% validation accuracy on digits."""

from __future__ import annotations

from rich.console import Console

from dlspec.check import check_file
from dlspec.train_run import train

from .helpers import ROOT


def test_demo_reaches_95_percent(tmp_path):
    metrics = train(check_file(ROOT / "specs" / "demo.dls"), "torch", None, tmp_path, Console(quiet=True))
    assert metrics["final"]["validation"]["accuracy"] >= 0.95, metrics["final"]
