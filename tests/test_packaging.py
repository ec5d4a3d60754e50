"""`pip install .` gives a working `dls` from any directory: the wheel carries the grammar and the
templates inside the `dlspec` package (not as top-level `grammar`/`backends` modules)."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile

from .helpers import ROOT


def test_wheel_installs_and_runs_from_elsewhere(tmp_path):
    build = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", tmp_path / "dist", ROOT],
                           check=False, capture_output=True, text=True, cwd=tmp_path)
    assert build.returncode == 0, build.stderr
    wheel = next((tmp_path / "dist").glob("dlspec-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    assert "dlspec/grammar/dls.lark" in names
    assert {"dlspec/backends/templates/torch.py.j2", "dlspec/backends/templates/keras.py.j2"} <= set(names)
    assert "dlspec/stdlib/resnet.dls" in names, "the block library (`use resnet`) must ship"
    assert not any(n.startswith(("grammar/", "backends/", "tests/")) for n in names), "stray top-level packages"

    site = tmp_path / "site"
    install = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", site, wheel],
                             check=False, capture_output=True, text=True)
    assert install.returncode == 0, install.stderr
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "net.dls").write_text("use resnet\n\n" + (ROOT / "specs" / "demo.dls").read_text())
    env = {**os.environ, "PYTHONPATH": str(site)}
    where = subprocess.run([sys.executable, "-c", "import dlspec.backends; print(dlspec.backends.__file__)"],
                           check=False, capture_output=True, text=True, cwd=elsewhere, env=env)
    assert where.stdout.startswith(str(site)), where.stdout + where.stderr
    for args in (["check", "net.dls"], ["compile", "net.dls", "--target", "keras", "-o", "net_keras.py"]):
        r = subprocess.run([str(site / "bin" / "dls"), *args], check=False, capture_output=True, text=True, cwd=elsewhere, env=env)
        assert r.returncode == 0, r.stderr
    assert "keras.Model(" in (elsewhere / "net_keras.py").read_text()
