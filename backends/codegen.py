"""The shared code generator. It walks the checked graph and the training plan and fills a Jinja
template; `TorchGenerator` and `KerasGenerator` override only what differs. Spec content reaches
the output only through `ident` (validated identifiers) and `lit` (repr-escaped literals)."""

from __future__ import annotations

import math
import os
import re
import textwrap
from pathlib import Path

import jinja2

from dlspec.check import Checked
from dlspec.data import IMAGE_SUFFIXES, adjacency_inputs, mask_inputs, vocab_limit
from dlspec.graph import Graph
from dlspec.losses import CLASSES
from dlspec.registry import ident, lit, snake
from dlspec.schedules import Expr

_ENV = jinja2.Environment(
    loader=jinja2.PackageLoader("dlspec.backends", "templates"),
    undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True,
    autoescape=False,  # the output is Python; every value is escaped by `lit` before it gets here
)
_ENV.filters["lit"] = lit
_ENV.filters["ident"] = ident


def source_name(filename: str) -> str:
    """The spec's file name for the header, only when it is plain (it lands in a docstring)."""
    name = Path(filename).name
    return name if re.fullmatch(r"[A-Za-z0-9_.+-]{1,100}", name) else "a spec"


def class_name(name: str) -> str:
    return ident(name[:1].upper() + name[1:])


def builder_name(checked: Checked, graph: Graph) -> str:
    """`build_model` for the model the train section trains; `build_<name>` for the others (a GAN's
    second model, say)."""
    if graph.name == checked.graph.name:
        return "build_model"
    return ident("build_" + snake(graph.name))


class Generator:
    target: str
    template: str
    expr: Expr  # how schedule formulas are written in this target

    def __init__(self, checked: Checked, location: Path):
        self.checked = checked.trainable()
        self.location = location
        self.graph: Graph = checked.graph
        self.plan = checked.plan
        schedule = self.plan.schedule
        self.constant_lr = schedule.name in ("constant", "plateau") and not schedule.warmup
        # The model the data feeds: a GAN's samples feed its discriminator.
        self.data_graph: Graph = next((g for g in checked.graphs if g.name == self.plan.discriminator), self.graph)

    # --- what both targets share ---
    def data_context(self) -> dict:
        g, p = self.data_graph, self.plan
        x = g.inputs[0]
        target = getattr(p, "target_output", None) or g.outputs[0]
        out = g.shape_of(target)
        adjacency, masks = adjacency_inputs(g), mask_inputs(g)
        vocab = getattr(p.data, "vocab", None)
        per_position = p.loss.target == CLASSES and len(out) == 2
        return {
            # Every input, for data that gives several (synthetic, npz): x is then a tuple of arrays.
            "inputs": [{"name": t.name, "key": lit(t.name), "shape": lit(tuple(t.shape)), "int": t.dtype == "int",
                        "adjacency": t.name in adjacency, "mask": t.name in masks, "nodes": lit(t.shape[0]), "vocab": lit(vocab or vocab_limit(g, t.name))}
                       for t in g.inputs],
            "several_inputs": len(g.inputs) > 1,
            "reconstruct": p.data.reconstruct,
            "test": lit(p.data.test),
            "per_position": per_position,
            # synthetic labels per position, read from that position of the first input
            "positionwise": len(out) == 2 and len(x.shape) >= 1 and x.shape[0] == out[0],
            "normalize": lit(getattr(p.data, "normalize", False)),
            "data": p.data.name,
            "data_entry": p.data,
            "data_path": lit(Path(os.path.relpath(p.data.path, self.location.resolve())).as_posix())
            if hasattr(p.data, "path") else None,
            "data_template": p.data.template,
            "image_suffixes": IMAGE_SUFFIXES,
            "task": getattr(p.data, "task", "classification"),
            "input_shape": lit(tuple(x.shape)),
            "input_int": x.dtype == "int",
            "output_shape": lit(tuple(out)),
            "outputs": lit(math.prod(out)),
            "validation": lit(p.data.validation),
            "samples": lit(getattr(p.data, "samples", 0)),
        }

    def context(self) -> dict:
        p = self.plan
        return {
            "source": source_name(self.checked.filename),
            "model_name": self.graph.name,
            "epochs": lit(p.epochs),
            "batch_size": lit(p.batch_size),
            "seed": lit(p.seed),
            "loss": p.loss,
            "loss_template": p.loss.template(self.target),
            # Several outputs: one loss term each (the data's targets go to `target_index`).
            "terms": [{"fn": ident(f"{t.output}_loss"), "output": t.output, "weight": lit(t.weight),
                       "reads_targets": t.reads_targets, "index": self.graph.outputs.index(t.output)} for t in p.terms]
            if len(p.terms) > 1 else [],
            "several_outputs": len(self.graph.outputs) > 1,
            "target_index": self.graph.outputs.index(p.target_output) if getattr(p, "target_output", None) else 0,
            "metrics": list(p.metrics),
            "schedule_doc": textwrap.fill(f"{p.schedule.name}: " + " ".join((type(p.schedule).__doc__ or "").split()),
                                          width=WIDTH - 4, subsequent_indent="    "),
            "constant_lr": self.constant_lr,
            "factor_body": p.schedule.body(self.expr),
            "lr": lit(p.optimizer.lr),
            "optimizer_template": p.optimizer.template,
            "early_stopping": p.early_stopping,
            **self.penalties(),
            "plateau": p.schedule if p.schedule.per_epoch else None,
            "augmentations": list(p.augment),
            "layer_classes": sorted({f"{self.target}_layers/{c}.py.j2" for g in self.checked.graphs for n in g.nodes
                                     for c in getattr(n.layer, f"{self.target}_classes_for")(n)}),
            "clip_norm": lit(p.clip_norm) if p.clip_norm else None,
            "clip_value": lit(p.clip_value) if p.clip_value else None,
            **self.data_context(),
            # Every model of the spec, the trained one first.
            "models": [{"class_name": class_name(g.name), "builder": builder_name(self.checked, g), **self.model_context(g)}
                       for g in sorted(self.checked.graphs, key=lambda g: g is not self.graph)],
            **self.training_context(),
            "gan": self.gan_context(),
        }

    def gan_context(self) -> dict | None:
        """Adversarial training (a `discriminator` in the plan): the generator's noise and the
        discriminator's builder; None for supervised training."""
        p = self.plan
        if p.discriminator is None:
            return None
        return {
            "discriminator": class_name(self.data_graph.name),
            "d_builder": builder_name(self.checked, self.data_graph),
            "noise_shape": lit(tuple(self.graph.inputs[0].shape)),
            "d_lr": lit(p.d_optimizer.lr) if p.d_optimizer else None,
            "d_optimizer_template": p.d_optimizer.template if p.d_optimizer else None,
        }

    def loss_source(self, context: dict) -> str:
        """`loss_fn`: the loss's template, or with several outputs one function per output's term,
        `<output>_loss`, which the main template combines."""
        common = {"per_position": context["per_position"]}
        terms = self.plan.terms
        if len(terms) <= 1:
            axes = lit(tuple(range(1, len(self.graph.shape_of(self.graph.outputs[0])) + 1)))
            return _ENV.get_template(context["loss_template"]).render(loss=context["loss"], fn_name="loss_fn", sample_axes=axes,
                                                                      **common).strip()
        parts = []
        for t in terms:
            rank = len(self.graph.shape_of(t.output))
            parts.append(_ENV.get_template(t.loss.template(self.target)).render(
                loss=t.loss, fn_name=ident(f"{t.output}_loss"), sample_axes=lit(tuple(range(1, rank + 1))),
                **(common if t.reads_targets else {"per_position": False})).strip())
        return "\n\n\n".join(parts)

    def penalties(self) -> dict:
        """The l1/l2 penalties and max-norm constraints, per kernel: the weights of layers that take
        an initializer (dense, conv, embedding, recurrent, graph), biases excluded, each with its
        layer's own `l1=`/`l2=` or else the train section's. PyTorch names weights (`l1_terms`:
        (coefficient, node, weight)); Keras, layers (`l1_layers`: (coefficient, node))."""
        out = {"l1_terms": [], "l2_terms": [], "l1_layers": [], "l2_layers": [], "max_norms": []}
        for n in self.graph.nodes:
            if "init" not in type(n.layer).model_fields:
                continue
            kernels = [w for w in n.layer.weights(list(n.in_shapes)) if not w.rsplit(".", 1)[-1].startswith("bias")]
            for key in ("l1", "l2"):
                own = getattr(n.layer, key, None)
                c = own if own is not None else getattr(self.plan, key)
                if c:
                    out[f"{key}_terms"] += [(lit(c), n.name, w) for w in kernels]
                    out[f"{key}_layers"].append((c, n.name))
            if getattr(n.layer, "max_norm", None):
                out["max_norms"].append((lit(n.layer.max_norm), n.name, "weight"))
        out["penalty"] = bool(out["l1_terms"] or out["l2_terms"])
        out["l1_layers"], out["l2_layers"] = lit(out["l1_layers"]), lit(out["l2_layers"])
        return out

    def model_context(self, g: Graph) -> dict:
        raise NotImplementedError

    def training_context(self) -> dict:
        raise NotImplementedError

    def render(self) -> str:
        context = self.context()
        context["loss_source"] = self.loss_source(context)
        context["uses_functional"] = any(m.get("uses_functional") for m in context["models"]) or "F." in context["loss_source"]
        text = _ENV.get_template(self.template).render(**context)
        return "\n".join(wrap(line) for line in text.split("\n"))


WIDTH = 100


def _items(line: str, open_at: int) -> tuple[list[str], int] | None:
    """The comma-separated items inside the bracket at `open_at`, and where its closing bracket is;
    None if it does not close on this line, or holds a comprehension (its commas are not items)."""
    items, depth, quote, start, i, top = [], 0, None, open_at + 1, open_at + 1, []
    while i < len(line):
        c = line[i]
        if not quote and depth == 0:
            top.append(c)
        if quote:
            if c == "\\":
                i += 1
            elif c == quote:
                quote = None
        elif c in "\"'":
            quote = c
        elif c in "([{":
            depth += 1
        elif c in ")]}":
            if not depth:
                break
            depth -= 1
        elif c == "," and depth == 0:
            items.append(line[start:i].strip())
            start = i + 1
        i += 1
    else:
        return None
    if re.search(r"\bfor\b", "".join(top)):
        return None
    if line[start:i].strip():
        items.append(line[start:i].strip())
    return items, i


def wrap(line: str, width: int = WIDTH, nested: bool = False) -> str:
    """Breaks a long `name = callee(args)(...)` line after its first `(`, packing the arguments
    into lines of at most `width`, in the style of black and ruff format; an argument that is a
    long call itself (a layer wrapped in Bidirectional, say) is broken the same way, and a long list
    (a Sequential's layers) gets an item per line."""
    if len(line) <= width:
        return line
    indent = line[: len(line) - len(line.lstrip())]
    inner = indent + "    "
    if nested and line.lstrip().startswith("["):
        found = _items(line, len(indent))
        if found is None or len(found[0]) < 2:
            return line
        items, close = found
        return "\n".join([indent + "[", *(wrap(f"{inner}{item},", width, nested=True) for item in items), indent + line[close:]])
    if not re.match(r"\s*[\w.]+\(" if nested else r"\s*[\w.]+ = [\w.]+\(", line):
        return line
    open_at = line.index("(")
    if not (line[open_at - 1].isalnum() or line[open_at - 1] in "_])"):
        return line  # a parenthesized expression, not a call: a trailing comma would make a tuple
    found = _items(line, open_at)
    if found is None or len(found[0]) < 2:
        return line  # not a closed call, or nothing to break between
    args, close = found
    rows, row = [], ""
    for arg in args:
        piece = arg + ","
        if row and len(inner) + len(row) + 1 + len(piece) > width:
            rows.append(row)
            row = piece
        else:
            row = f"{row} {piece}" if row else piece
    rows.append(row)
    return "\n".join([line[: open_at + 1], *(wrap(inner + r, width, nested=True) for r in rows), indent + line[close:]])


def generate(checked: Checked, target: str, location: Path | None = None) -> str:
    """The module for `target`; `location` is the folder it will be written to (default: the current
    one), so that data files are named relative to it and the module can move with them."""
    from .keras_gen import KerasGenerator
    from .torch_gen import TorchGenerator

    generators = {"torch": TorchGenerator, "keras": KerasGenerator}
    return generators[target](checked, location or Path.cwd()).render()
