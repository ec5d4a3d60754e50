"""`dls graph`: every shipped spec draws to valid SVG with each layer's call and shape and a group per
block instance; DOT text needs no Graphviz; a missing Graphviz or a wrong suffix is a clear error;
no framework is imported; large models lay out in reasonable time."""

from __future__ import annotations

import os
import re
import shutil
import time
import xml.etree.ElementTree as ET

import pytest

from dlspec.check import check_file, check_text
from dlspec.drawing import render, to_dot
from dlspec.registry import fmt_shape

from .helpers import DLS, ROOT, SPECS, dls

DEMO = ROOT / "specs" / "demo.dls"
SVG = "{http://www.w3.org/2000/svg}"


def svg_of(graphs) -> ET.Element:
    if shutil.which("dot") is None:
        pytest.fail("these tests need Graphviz's dot program: apt install graphviz, or brew install graphviz")
    return ET.fromstring(render(to_dot(graphs), "svg"))


def texts(root: ET.Element) -> list[str]:
    return ["".join(t.itertext()) for t in root.iter(f"{SVG}text")]


def clusters(root: ET.Element) -> dict[str, str]:
    """Cluster id → the label drawn on it."""
    found = {}
    for g in root.iter(f"{SVG}g"):
        if g.get("class") == "cluster":
            title = g.find(f"{SVG}title").text
            found[title] = " ".join("".join(t.itertext()) for t in g.iter(f"{SVG}text"))
    return found


def edges(root: ET.Element) -> dict[str, str]:
    """`a->b` → the edge's stroke colour."""
    found = {}
    for g in root.iter(f"{SVG}g"):
        if g.get("class") == "edge":
            found[g.find(f"{SVG}title").text.replace("&#45;", "-")] = g.find(f"{SVG}path").get("stroke")
    return found


@pytest.mark.parametrize("spec", SPECS, ids=lambda p: p.stem)
def test_every_spec_draws_each_layer_shape_and_block(spec):
    checked = check_file(spec)
    root = svg_of(checked.graphs)
    words = texts(root)
    shown = set(words)
    for g in checked.graphs:
        for t in g.inputs:
            assert any(w.startswith(f"input {t.name}") for w in words), t.name
            assert fmt_shape(t.shape) in shown
        for n in g.nodes:
            # A layer's box starts with its call; an activation written as `activation=` is folded into it.
            assert fmt_shape(n.shape) in shown, (n.name, n.shape)
            assert any(w.startswith(f"{n.op}(") or f"activation={n.op}" in w for w in words), n.name
        instances = {inst for n in g.nodes for inst in n.path}
        drawn = clusters(root)
        for inst in instances:
            assert any(title.endswith(inst) for title in drawn), (inst, drawn)
        assert sum(w == "output" for w in words) >= len(g.outputs)


def test_calls_are_drawn_as_written():
    root = svg_of(check_file(ROOT / "specs" / "two_branch_cnn.dls").graphs)
    words = set(texts(root))
    assert {"conv2d(8, 3, padding=same, activation=relu)", "conv2d(4, 3, padding=same, dilation=2, activation=relu)",
            "concat()", "reshape((20, 16))", "[20, 8, 8]", "input image", "[1, 8, 8]", "output", "probs"} <= words
    # Three edges into the concat, in the concat style.
    into = {k: v for k, v in edges(root).items() if k.endswith("->concat")}
    assert len(into) == 3 and set(into.values()) == {"#e69f00"}


NESTED = """
block inner(w) {
  input x
  x -> dense(w) -> relu() -> h
  (x, h) -> add()
}
block outer(w) {
  input x
  x -> inner(w) -> inner(w) -> layernorm()
}
model Net {
  input x: [8]
  x -> outer(8) -> outer(8) -> dense(3)
}
"""


def test_block_instances_are_nested_clusters_and_residual_edges_stand_out():
    g = check_text(NESTED).graphs[0]
    root = svg_of([g])
    drawn = clusters(root)
    outer = sorted({n.path[0] for n in g.nodes if n.path})
    inner = sorted({n.path[1] for n in g.nodes if len(n.path) > 1})
    assert len(outer) == 2 and len(inner) == 4
    assert {f"cluster_{i}" for i in outer + inner} <= set(drawn)
    # An inner cluster is drawn inside its outer one, labelled by its own short name.
    for i in inner:
        parent = next(o for o in outer if i.startswith(o + "_"))
        assert drawn[f"cluster_{i}"].startswith(i.removeprefix(parent + "_"))
    adds = [n for n in g.nodes if n.op == "add"]
    assert len(adds) == 4
    colours = edges(root)
    for n in adds:
        assert [colours[f"{src}->{n.name}"] for src in n.inputs] == ["#0072b2", "#0072b2"]
    assert colours[f"{g.nodes[-1].name}->output 0"] == "#444444"


GAN = """
model Generator {
  input z: [16]
  z -> dense(32, activation=relu) -> dense(64, activation=tanh)
}
model Discriminator {
  input image: [64]
  image -> dense(32, activation=leaky_relu) -> dense(1)
}
"""


def test_several_models_are_each_a_cluster_or_one_by_name(tmp_path):
    root = svg_of(check_text(GAN).graphs)
    drawn = clusters(root)
    assert "model Generator" in drawn.values() and "model Discriminator" in drawn.values()
    # The outputs are unnamed: their boxes say `output` and not the names dlspec made up.
    assert "output" in texts(root) and not [w for w in texts(root) if "dense_2" in w]
    spec = tmp_path / "gan.dls"
    spec.write_text(GAN)
    r = dls("graph", spec, "--model", "Discriminator")
    assert r.returncode == 0, r.stderr
    assert "Discriminator" in r.stdout and "Generator" not in r.stdout and "dense(1)" in r.stdout
    r = dls("graph", spec, "--model", "Discriminatr")
    assert r.returncode == 2 and "no model `Discriminatr`" in r.stderr and "Discriminator" in r.stderr


def test_writes_svg_and_png_and_leaves_no_temporary_file(tmp_path):
    for name, magic in (("model.svg", b"<?xml"), ("sub/model.png", b"\x89PNG")):
        r = dls("graph", DEMO, "-o", tmp_path / name)
        assert r.returncode == 0, r.stderr
        assert (tmp_path / name).read_bytes().startswith(magic)
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["model.png", "model.svg", "sub"]


@pytest.fixture
def path_without_dot():
    """An environment whose PATH holds only this environment's scripts (dls), so `dot` cannot be found."""
    assert not (DLS.parent / "dot").exists()
    return {**os.environ, "PATH": str(DLS.parent)}


@pytest.mark.parametrize("suffix", [".dot", ".gv"])
def test_dot_text_needs_no_graphviz(tmp_path, path_without_dot, suffix):
    target = tmp_path / f"model{suffix}"
    r = dls("graph", DEMO, "-o", target, env=path_without_dot)
    assert r.returncode == 0, r.stderr
    text = target.read_text()
    assert text.startswith("digraph") and "rankdir=TB" in text and "conv2d(32, 3" in text


def test_missing_graphviz_is_a_clear_error(tmp_path, path_without_dot):
    r = dls("graph", DEMO, "-o", tmp_path / "model.svg", env=path_without_dot)
    assert r.returncode == 2
    assert "needs Graphviz's `dot` program" in r.stderr and "apt install graphviz" in r.stderr
    assert "brew install graphviz" in r.stderr and "model.dot" in r.stderr and "Traceback" not in r.stderr
    assert list(tmp_path.iterdir()) == []


def test_unknown_suffix_is_an_error(tmp_path):
    r = dls("graph", DEMO, "-o", tmp_path / "model.jpg")
    assert r.returncode == 2
    assert "`.jpg`" in r.stderr and ".svg" in r.stderr and "Traceback" not in r.stderr
    assert list(tmp_path.iterdir()) == []


def test_graph_imports_no_framework(tmp_path):
    for name in ("torch", "tensorflow", "keras", "numpy"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "__init__.py").write_text(f"raise SystemExit('{name} was imported')")
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    r = dls("graph", DEMO, "-o", tmp_path / "model.svg", env=env)
    assert r.returncode == 0, r.stderr
    assert "was imported" not in r.stderr + r.stdout
    assert (tmp_path / "model.svg").exists()


RESNET50 = """
block bottleneck(width, out, stride=1) {
  input x
  x -> conv2d(width, 1, bias=false) -> batchnorm() -> relu()
  conv2d(width, 3, stride=stride, padding=1, bias=false) -> batchnorm() -> relu()
  conv2d(out, 1, bias=false) -> batchnorm() -> h
  x -> conv2d(out, 1, stride=stride, bias=false) -> batchnorm() -> s
  (h, s) -> add() -> relu()
}
block identity(width, out) {
  input x
  x -> conv2d(width, 1, bias=false) -> batchnorm() -> relu()
  conv2d(width, 3, padding=1, bias=false) -> batchnorm() -> relu()
  conv2d(out, 1, bias=false) -> batchnorm() -> h
  (h, x) -> add() -> relu()
}
model ResNet50 {
  input image: [3, 64, 64]
  image -> conv2d(64, 7, stride=2, padding=3, bias=false) -> batchnorm() -> relu() -> maxpool2d(2)
  bottleneck(64, 256) -> repeat 2 identity(64, 256)
  bottleneck(128, 512, stride=2) -> repeat 3 identity(128, 512)
  bottleneck(256, 1024, stride=2) -> repeat 5 identity(256, 1024)
  bottleneck(512, 2048, stride=2) -> repeat 2 identity(512, 2048)
  global_avgpool() -> dense(1000)
}
"""

DENSENET = """
block dense_layer(growth) {
  input x
  x -> batchnorm() -> relu() -> conv2d(growth, 3, padding=1) -> h
  (x, h) -> concat()
}
block transition(out) {
  input x
  x -> batchnorm() -> relu() -> conv2d(out, 1) -> avgpool2d(2)
}
model DenseNet {
  input image: [3, 32, 32]
  image -> conv2d(24, 3, padding=1)
  repeat 16 dense_layer(12) -> transition(108)
  repeat 16 dense_layer(12) -> transition(150)
  repeat 16 dense_layer(12) -> batchnorm() -> relu() -> global_avgpool() -> dense(10)
}
"""


@pytest.mark.parametrize("text", [RESNET50, DENSENET], ids=["resnet50", "densenet"])
def test_large_models_draw_in_reasonable_time(text):
    graphs = check_text(text).graphs
    assert len(graphs[0].nodes) > 150
    start = time.perf_counter()
    root = svg_of(graphs)
    elapsed = time.perf_counter() - start
    assert len(re.findall(r"cluster_", " ".join(clusters(root)))) >= 16
    assert elapsed < 60, f"drawing took {elapsed:.1f} s"
