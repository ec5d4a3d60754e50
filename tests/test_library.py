"""`use`: blocks from dlspec's library or from a file of the user's, with errors that point into
the file the problem is in."""

from __future__ import annotations

import pytest

from dlspec.check import check_file, check_text
from dlspec.diagnostics import DlsError, render
from dlspec.library import library_names
from dlspec.parser import parse
from dlspec.printer import format_spec

from .helpers import dls

RESNET = """use resnet

model Small {
  input image: [3, 16, 12]
  image -> conv2d(8, 3, padding=same) -> basic(16, stride=2) -> basic_identity(16)
  bottleneck(4, 32) -> bottleneck_identity(4, 32) -> global_avgpool() -> dense(10)
}
"""


def test_stdlib_blocks_expand_like_written_ones():
    g = check_text(RESNET).graph
    assert g.shape_of(g.outputs[0]) == (10,)
    assert {n.path[0] for n in g.nodes if n.path} == {"basic1", "basic_identity1", "bottleneck1", "bottleneck_identity1"}
    # basic(16, stride=2): 3x3 and 1x1 convolutions at stride 2 on 16x12 give 8x6
    assert g.shape_of("basic1_add") == (16, 8, 6)


def test_every_library_checks_and_names_its_blocks_in_a_comment():
    for name in library_names():
        spec = check_text(f"use {name}\n\nmodel M {{\n  input x: [4]\n  dense(2)\n}}\n")
        assert spec.graph.name == "M"


def test_a_file_relative_to_the_spec(tmp_path):
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / "blocks.dls").write_text('use "more.dls"\n\nblock twice(n) {\n  input x\n  x -> half(n) -> half(n)\n}\n')
    (tmp_path / "lib" / "more.dls").write_text("block half(n) {\n  input x\n  x -> dense(n) -> relu()\n}\n")
    spec = tmp_path / "net.dls"
    spec.write_text('use "lib/blocks.dls"\n\nmodel M {\n  input x: [4]\n  twice(3)\n}\n')
    g = check_file(spec).graph
    assert [n.op for n in g.nodes] == ["dense", "relu", "dense", "relu"]


def _error(text: str, tmp_path=None) -> DlsError:
    with pytest.raises(DlsError) as exc:
        if tmp_path is None:
            check_text(text)
        else:
            (tmp_path / "net.dls").write_text(text)
            check_file(tmp_path / "net.dls")
    return exc.value


def test_unknown_library_suggests_the_closest():
    d = _error("use resnt\n\nmodel M {\n  input x: [4]\n  dense(2)\n}\n").diagnostics[0]
    assert "no library `resnt`" in d.message and "`resnet`" in d.hint
    assert (d.span.line, d.span.column) == (1, 5)


def test_missing_file(tmp_path):
    d = _error('use "nope.dls"\n\nmodel M {\n  input x: [4]\n  dense(2)\n}\n', tmp_path).diagnostics[0]
    assert "no such file" in d.message and "relative to the spec" in d.hint


def test_an_error_inside_a_library_block_points_into_the_library(tmp_path):
    (tmp_path / "blocks.dls").write_text("block wide(n) {\n  input x\n  x -> conv2d(n, 3)\n}\n")
    d = _error('use "blocks.dls"\n\nmodel M {\n  input x: [4]\n  wide(2)\n}\n', tmp_path).diagnostics[0]
    assert d.span.file.endswith("blocks.dls") and d.span.line == 3
    assert d.related[0].file == "" and d.related[0].line == 5  # the call, in the spec
    text = render(d, str(tmp_path / "net.dls"), (tmp_path / "net.dls").read_text())
    assert "blocks.dls:3:" in text and "x -> conv2d(n, 3)" in text and "net.dls:5:" in text and "wide(2)" in text


def test_a_library_with_a_model_is_refused(tmp_path):
    (tmp_path / "lib.dls").write_text("model Other {\n  input x: [4]\n  dense(2)\n}\n")
    d = _error('use "lib.dls"\n\nmodel M {\n  input x: [4]\n  dense(2)\n}\n', tmp_path).diagnostics[0]
    assert "blocks and constants only" in d.message and d.span.file.endswith("lib.dls")


def test_a_block_named_like_a_library_block_is_a_clash():
    d = _error("use resnet\n\nblock basic(n) {\n  input x\n  x -> dense(n)\n}\n\nmodel M {\n  input x: [4]\n  basic(2)\n}\n").diagnostics[0]
    assert "defined twice" in d.message and d.related[0].file.endswith("resnet.dls")


def test_use_is_kept_by_the_printer_and_reserved():
    text = 'use resnet\nuse "my blocks.dls"\n\nmodel M {\n  input x: [4]\n  dense(2)\n}\n'
    assert format_spec(parse(text), text) == text
    with pytest.raises(DlsError, match="reserved word"):
        parse("model M {\n  input use: [4]\n  dense(2)\n}\n")


def test_cli_compiles_a_spec_using_the_library(tmp_path):
    spec = tmp_path / "net.dls"
    spec.write_text(RESNET)
    r = dls("compile", spec, "-t", "torch", "-o", tmp_path / "net.py")
    assert r.returncode == 0, r.stderr
    assert "self.basic1_conv2d" in (tmp_path / "net.py").read_text()


def test_library_files_are_in_canonical_format():
    from dlspec.library import _stdlib

    for path in _stdlib().glob("*.dls"):
        text = path.read_text()
        assert format_spec(parse(text), text) == text, path.name
