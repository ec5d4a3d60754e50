"""`dls graph`: a picture of a checked model, drawn the way people draw networks. Each layer is a
box with its call as the spec writes it (`conv2d(32, 3)`) and its output shape; inputs and outputs
are their own shapes; block instances are nested clusters; the edges into an `add` (residual) or a
`concat` are coloured. The DOT text comes from the `graphviz` package; pictures from Graphviz's
`dot` program, which only SVG/PNG/PDF output needs."""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape
from pathlib import Path

import graphviz

from .diagnostics import DlsError, did_you_mean, error
from .graph import Graph, Node
from .layers import ACTIVATIONS
from .registry import Word, describe, fmt_shape

FORMATS = {".svg": "svg", ".png": "png", ".pdf": "pdf", ".dot": "dot", ".gv": "dot"}
TEXT_FORMATS = {"dot"}  # written without the `dot` program
INSTALL_HINT = ("install Graphviz (`apt install graphviz`, `brew install graphviz` or `conda install graphviz`), "
                "or write the DOT text with `-o model.dot`")

# Edges into merge layers: the picture should show where paths join (colour-blind-safe hues).
_MERGE_EDGE = {"add": {"color": "#0072b2", "penwidth": "1.6"},  # residual sums
               "concat": {"color": "#e69f00", "penwidth": "1.6", "style": "dashed"}}
_OTHER_MERGE_EDGE = {"color": "#009e73", "penwidth": "1.6"}
_CLUSTER_FILL = ("#fafaf0", "#f0f4fa", "#f8f0f8")  # by nesting depth, so nested instances stand apart
_FILL = {"input": "#d9f0d3", "output": "#fde0dd", "merge": "#deebf7", "layer": "#f7f7f7"}


class GraphvizMissing(Exception):
    """The `dot` program is not on PATH."""


class RenderFailed(Exception):
    """`dot` ran and failed; the message is its own."""


@dataclass(frozen=True)
class _Box:
    """One box of the picture: a node, with the activation its call named folded into it."""

    id: str  # the name other nodes read it by
    call: str
    shape: str
    inputs: tuple[str, ...]
    path: tuple[str, ...]
    op: str
    merge: bool
    params: int


def call_text(node: Node) -> str:
    """The layer's call as the spec writes it: the arguments it was given (positional ones by
    position), each in its shortest form with the same meaning (`3`, not the `(3, 3)` it widens to)."""
    layer = node.layer
    cls = type(layer)
    given = layer.model_fields_set
    args: list[str] = []
    positional = True
    for fname in cls.positional:
        if fname not in given:
            positional = False
            continue
        value = _shortest(layer, fname)
        args.append(value if positional else f"{fname}={value}")
    args += [f"{fname}={_shortest(layer, fname)}" for fname in cls.model_fields if fname in given and fname not in cls.positional]
    return f"{layer.name}({', '.join(args)})"


def _shortest(layer, fname: str) -> str:
    v = getattr(layer, fname)
    if isinstance(v, str) and v.isidentifier():
        return describe(Word(v))  # `same`, as written, not the quoted string it was stored as
    if isinstance(v, tuple) and v and all(x == v[0] for x in v) and isinstance(v[0], int):
        try:
            if getattr(type(layer)(**{**_given(layer), fname: v[0]}), fname) == v:
                return describe(v[0])
        except (ValueError, TypeError):
            pass  # the field takes tuples only (`reshape((4, 4))`)
    return describe(v)


def _given(layer) -> dict:
    return {f: getattr(layer, f) for f in layer.model_fields_set}


def _boxes(g: Graph) -> list[_Box]:
    """The graph's nodes as boxes. `conv2d(8, 3, activation=relu)` becomes two nodes in the graph (the
    activation is its own node, right after); drawn as one box, as it was written."""
    boxes: list[_Box] = []
    nodes = g.nodes
    i = 0
    while i < len(nodes):
        n = nodes[i]
        shown = n
        nxt = nodes[i + 1] if i + 1 < len(nodes) else None
        if (getattr(n.layer, "activation", None) is not None and nxt is not None and nxt.inputs == (n.name,)
                and nxt.span == n.span and nxt.op in ACTIVATIONS):
            shown, i = nxt, i + 1
        boxes.append(_Box(id=shown.name, call=call_text(n), shape=fmt_shape(shown.shape), inputs=n.inputs, path=n.path,
                          op=n.op, merge=type(n.layer).arity is None,
                          params=n.params("keras")[0] + (shown.params("keras")[0] if shown is not n else 0)))
        i += 1
    return boxes


def _label(title: str, shape: str, bold: bool = True) -> str:
    """An HTML-like label: the call on top, the shape below in a smaller grey font."""
    head = f"<b>{escape(title)}</b>" if bold else escape(title)
    return f'<{head}<br/><font point-size="10" color="#555555">{escape(shape)}</font>>'


def _draw_model(dot: graphviz.Digraph, g: Graph, prefix: str) -> None:
    """Adds the model's boxes and edges to `dot`; node ids start with `prefix` so models do not clash."""
    def nid(name: str) -> str:
        return f"{prefix}{name}"

    for t in g.inputs:
        dtype = " (int)" if t.dtype == "int" else ""
        dot.node(nid(t.name), _label(f"input {t.name}{dtype}", fmt_shape(t.shape)), shape="invhouse",
                 fillcolor=_FILL["input"], tooltip=f"input {t.name}")
    boxes = _boxes(g)
    # Clusters nest as the block instances do: a tree keyed by path prefix, filled from the boxes.
    tree: dict[tuple[str, ...], list[_Box]] = {}
    children: dict[tuple[str, ...], list[tuple[str, ...]]] = {(): []}
    for b in boxes:
        for depth in range(1, len(b.path) + 1):
            sub = b.path[:depth]
            if sub not in children:
                children[sub] = []
                children[sub[:-1]].append(sub)
        tree.setdefault(b.path, []).append(b)

    outputs = set(g.outputs)

    def add_boxes(target: graphviz.Digraph, path: tuple[str, ...]) -> None:
        for b in tree.get(path, []):
            kind = "output" if b.id in outputs else "merge" if b.merge else "layer"
            target.node(nid(b.id), _label(b.call, b.shape), fillcolor=_FILL[kind],
                        tooltip=f"{b.id}: {b.params:,} params", **({"penwidth": "2"} if kind == "output" else {}))
        for sub in children.get(path, []):
            # The instance name without its parent's prefix: `res1_inner2` inside `res1` shows as `inner2`.
            shown = sub[-1].removeprefix(f"{sub[-2]}_") if len(sub) > 1 else sub[-1]
            with target.subgraph(name=f"cluster_{prefix}{sub[-1]}") as c:
                c.attr(label=shown, tooltip=sub[-1], style="rounded,filled", color="#9e9e9e", labeljust="l", fontsize="12",
                       fillcolor=_CLUSTER_FILL[(len(sub) - 1) % len(_CLUSTER_FILL)])
                add_boxes(c, sub)

    add_boxes(dot, ())

    for b in boxes:
        style = (_MERGE_EDGE.get(b.op, _OTHER_MERGE_EDGE)) if b.merge else {}
        for src in b.inputs:
            dot.edge(nid(src), nid(b.id), **style)
    ops = {n.name: n.op for n in g.nodes}
    for k, name in enumerate(g.outputs):
        out = f"{prefix}output {k}"
        named = name in ops and not _automatic(name, ops[name])
        label = _label("output", name) if named or len(g.outputs) > 1 else "<<b>output</b>>"
        dot.node(out, label, shape="house", fillcolor=_FILL["output"], tooltip=f"output {name}")
        dot.edge(nid(name), out)


def _automatic(name: str, op: str) -> bool:
    """Whether a node's name is one dlspec made up (`dense`, `dense_2`, `dense_2_tanh`) rather than the
    spec's `-> name`; only the spec's names say something worth printing."""
    return bool(re.fullmatch(rf"(\w+_)?{re.escape(op)}(_\d+)?", name))


def to_dot(graphs: Sequence[Graph], title: str | None = None) -> graphviz.Digraph:
    """The picture of `graphs` as DOT. One model is drawn on its own, titled `model <name>`; several
    each in a cluster so titled, under `title` (the spec's file name) if given."""
    single = len(graphs) == 1
    dot = graphviz.Digraph(name=graphs[0].name if single else title or "models")
    dot.attr(rankdir="TB", fontname="Helvetica", newrank="true", nodesep="0.3", ranksep="0.35", labelloc="t", fontsize="16")
    if single or title:
        dot.attr(label=f"model {graphs[0].name}" if single else title)
    dot.attr("node", shape="box", style="rounded,filled", fontname="Helvetica", fontsize="12", margin="0.15,0.05")
    dot.attr("edge", color="#444444", arrowsize="0.7")
    if len(graphs) == 1:
        _draw_model(dot, graphs[0], "")
        return dot
    for i, g in enumerate(graphs):
        with dot.subgraph(name=f"cluster_model_{i}") as c:
            c.attr(label=f"model {g.name}", fontsize="14", style="rounded", color="#888888")
            _draw_model(c, g, f"{g.name}.")
    return dot


def pick(graphs: list[Graph], model: str | None) -> list[Graph]:
    """All the models, or the one `--model` names (a `DlsError` with a did-you-mean if none has that name)."""
    if model is None:
        return graphs
    found = [g for g in graphs if g.name == model]
    if not found:
        names = [g.name for g in graphs]
        raise DlsError(error(f"the spec has no model `{model}`",
                             hint=did_you_mean(model, names) or f"its models: {', '.join(names)}").diagnostics)
    return found


def output_format(path: Path) -> str:
    """The format a file name asks for, or a `DlsError` listing those we write."""
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        shown = f"`{path.suffix}`" if path.suffix else "no suffix"
        raise error(f"cannot tell what to write for {path}: {shown}",
                    hint=f"name a file ending in {', '.join(FORMATS)} (e.g. model.svg)")
    return fmt


def render(dot: graphviz.Digraph, fmt: str) -> bytes:
    """The picture's bytes; `dot` text needs no program, the others run Graphviz's `dot`."""
    if fmt in TEXT_FORMATS:
        return dot.source.encode("utf-8")
    if fmt == "png":
        dot = dot.copy()
        dot.attr(dpi="144")  # the default 96 blurs the small shape text
    try:
        return dot.pipe(format=fmt, engine="dot", quiet=True)
    except graphviz.ExecutableNotFound:
        raise GraphvizMissing() from None
    except graphviz.CalledProcessError as exc:
        detail = (exc.stderr or b"").decode("utf-8", "replace").strip() if isinstance(exc.stderr, bytes) else str(exc.stderr or "")
        raise RenderFailed(detail or str(exc)) from None


def write_bytes_atomically(path: Path, data: bytes) -> None:
    """All of `data` or nothing at `path`: a temporary file beside it, then a rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
