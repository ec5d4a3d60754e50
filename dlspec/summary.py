"""The summary table of `dls check`, in the manner of torchinfo and Keras's `summary()`."""

from __future__ import annotations

from rich.table import Table

from .graph import Graph
from .registry import fmt_shape


def summary_table(g: Graph) -> Table:
    table = Table(title=f"model {g.name}", title_justify="left", show_edge=False, header_style="bold")
    table.add_column("Layer")
    table.add_column("Type")
    table.add_column("Output shape")
    table.add_column("Params", justify="right")
    for t in g.inputs:
        table.add_row(t.name, "input" + (" (int)" if t.dtype == "int" else ""), fmt_shape(t.shape), "0")
    for n in g.nodes:
        total, _ = n.params("keras")
        torch_total, _ = n.params("torch")
        extra = f" (torch {torch_total:,})" if torch_total != total else ""
        table.add_row(n.name, n.op, fmt_shape(n.shape), f"{total:,}{extra}")
    return table


def totals(g: Graph) -> list[str]:
    total, trainable = g.params("keras")
    lines = [f"Total params: {total:,}", f"Trainable params: {trainable:,}", f"Non-trainable params: {total - trainable:,}"]
    torch_total, _ = g.params("torch")
    if torch_total != total:
        lines.append(f"PyTorch stores {torch_total:,}: its RNN and LSTM hold a second bias vector, which dlspec "
                     "keeps at zero and frozen (see docs/language.md)")
    return lines
