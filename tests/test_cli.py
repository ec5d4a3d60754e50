"""The `dls` command as a user meets it: output, exit codes, files written, imports avoided."""

from __future__ import annotations

import json
import os

from .helpers import ROOT, SPECS, dls

DEMO = ROOT / "specs" / "demo.dls"


def test_check_prints_summary_and_totals():
    r = dls("check", DEMO)
    assert r.returncode == 0, r.stderr
    assert "conv_bn1_conv2d" in r.stdout and "[32, 8, 8]" in r.stdout
    assert "Total params: 29,098" in r.stdout and "Non-trainable params: 256" in r.stdout
    assert r.stdout.strip().endswith("ok")


def test_the_parser_is_cached_per_user_and_a_bad_cache_is_rebuilt(tmp_path):
    # The analysed grammar is kept in $XDG_CACHE_HOME/dlspec (a pickle: never the shared /tmp; a
    # relative $XDG_CACHE_HOME is ignored, as the XDG rules say); a cache that is corrupt, or a
    # folder that cannot be made, costs time, not correctness.
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache")}
    first = dls("check", DEMO, env=env)
    [cache] = (tmp_path / "cache" / "dlspec").iterdir()
    assert first.returncode == 0 and cache.name.startswith("parser-") and cache.suffix == ".pickle"
    written = cache.stat().st_mtime_ns
    assert dls("check", DEMO, env=env).stdout == first.stdout and cache.stat().st_mtime_ns == written  # read, not rebuilt
    for damage in (b"", cache.read_bytes()[:200], b"not a cache\n"):
        cache.write_bytes(damage)
        again = dls("check", DEMO, env=env)
        assert (again.returncode, again.stdout, again.stderr) == (0, first.stdout, first.stderr)
        assert cache.stat().st_size > 1000  # written anew
    (tmp_path / "file").write_text("")
    blocked = dls("check", DEMO, env={**os.environ, "XDG_CACHE_HOME": str(tmp_path / "file")})
    assert (blocked.returncode, blocked.stdout, blocked.stderr) == (0, first.stdout, first.stderr)
    relative = dls("check", DEMO, cwd=tmp_path, env={**os.environ, "XDG_CACHE_HOME": "rel", "HOME": str(tmp_path / "home")})
    assert relative.returncode == 0 and not (tmp_path / "rel").exists()
    assert [p.suffix for p in (tmp_path / "home" / ".cache" / "dlspec").iterdir()] == [".pickle"]


def test_check_and_compile_import_no_framework(tmp_path):
    # A poisoned torch/tensorflow/keras/numpy on the path makes any import of them fail loudly.
    for name in ("torch", "tensorflow", "keras", "numpy"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "__init__.py").write_text(f"raise SystemExit('{name} was imported')")
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    for args in (("check", DEMO), ("compile", DEMO, "-t", "torch"), ("compile", DEMO, "-t", "keras"), ("fmt", "--check", DEMO)):
        r = dls(*args, env=env)
        assert r.returncode == 0, (args, r.stderr)
        assert "was imported" not in r.stderr + r.stdout


def test_compile_writes_the_file(tmp_path):
    target = tmp_path / "sub" / "model.py"
    r = dls("compile", DEMO, "--target", "keras", "-o", target)
    assert r.returncode == 0, r.stderr
    assert "def build_model():" in target.read_text()
    assert not [p for p in target.parent.iterdir() if p.name != "model.py"], "temporary file left behind"


def test_fmt_rewrites_in_place_and_keeps_comments(tmp_path):
    spec = tmp_path / "messy.dls"
    spec.write_text("# keep me\nmodel   M{\n input x:[4]   # and me\n x->dense( 3 ,activation=relu)\n}\n")
    assert dls("fmt", "--check", spec).returncode == 1
    r = dls("fmt", spec)
    assert r.returncode == 0, r.stderr
    assert spec.read_text() == "# keep me\nmodel M {\n  input x: [4]  # and me\n  x -> dense(3, activation=relu)\n}\n"
    assert dls("fmt", "--check", spec).returncode == 0


def test_every_shipped_spec_is_formatted():
    for spec in SPECS:
        assert dls("fmt", "--check", spec).returncode == 0, f"{spec.name}: run `dls fmt {spec}`"


def test_verify_reports_ok():
    r = dls("verify", DEMO)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "logits" in r.stdout and r.stdout.strip().endswith("OK")


def test_run_writes_a_complete_run_folder(tmp_path):
    r = dls("run", DEMO, "--epochs", "1", "--out", tmp_path / "run")
    assert r.returncode == 0, r.stderr
    files = {p.name for p in (tmp_path / "run").iterdir()}
    assert {"spec.dls", "resolved.json", "metrics.json", "weights.pt", "digitscnn_torch.py"} <= files
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert len(metrics["history"]) == 1 and metrics["samples_per_second"] > 0
    resolved = json.loads((tmp_path / "run" / "resolved.json").read_text())
    assert resolved["params"]["total"] == 29098


def test_run_with_keras_backend(tmp_path):
    r = dls("run", DEMO, "--backend", "keras", "--epochs", "1", "--out", tmp_path / "run")
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "run" / "model.weights.h5").exists()
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert "val_accuracy" in metrics["history"][-1] and "accuracy" in metrics["final"]["validation"]


def test_missing_backend_is_a_clear_error(tmp_path):
    (tmp_path / "torch").mkdir()  # stands in for an environment without PyTorch
    (tmp_path / "torch" / "__init__.py").write_text("raise ModuleNotFoundError(\"No module named 'torch'\", name='torch')")
    r = dls("run", DEMO, "--backend", "torch", "--out", tmp_path / "run", env={**os.environ, "PYTHONPATH": str(tmp_path)})
    assert r.returncode == 2
    assert "pip install 'dlspec[torch]'" in r.stderr and "Traceback" not in r.stderr
