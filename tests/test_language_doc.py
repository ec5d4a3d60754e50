"""docs/language.md stays true: every complete example (```dls) passes `dls check`, and the
generated reference matches the registries, so the doc cannot fall behind them.

After changing a registry entry, regenerate the reference: `python tests/test_language_doc.py`."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

from dlspec import training
from dlspec.check import check_text
from dlspec.diagnostics import DlsError, render
from dlspec.initializers import INITIALIZERS
from dlspec.layers import LAYERS
from dlspec.registry import Entry
from dlspec.training import SETTINGS

DOC = Path(__file__).resolve().parent.parent / "docs" / "language.md"
BEGIN, END = "<!-- BEGIN GENERATED REFERENCE -->", "<!-- END GENERATED REFERENCE -->"
FAMILIES = {"activations": "Activations", "conv": "Convolutions", "resize": "Resizing, padding and cropping",
            "dense": "Dense and embedding", "norm": "Normalization and dropout", "pool": "Pooling",
            "recurrent": "Recurrent", "attention": "Attention and positions", "structure": "Structure and merging",
            "generative": "Generative (VAE)", "graph_conv": "Graph convolution"}
# Every registry of the train section (found, so that a new one cannot be missed), with its title.
TITLES = {"DATA": "Data sources", "LOSSES": "Losses", "OPTIMIZERS": "Optimizers", "SCHEDULES": "Schedules",
          "METRICS": "Metrics", "AUGMENTATIONS": "Augmentations", "EARLY_STOPPING": "Early stopping"}
TRAINING = {name: table for name, table in vars(training).items() if name.isupper() and isinstance(table, dict) and table
            and all(isinstance(v, type) and issubclass(v, Entry) for v in table.values())}
ORDER = sorted(TRAINING, key=lambda n: list(TITLES).index(n) if n in TITLES else len(TITLES))
TABLES = [("Initializers", INITIALIZERS)] + [(TITLES.get(n, n.replace("_", " ").capitalize()), TRAINING[n]) for n in ORDER]


def _entry(cls) -> str:
    paragraphs = [" ".join(p.split()) for p in re.split(r"\n\s*\n", cls.__doc__ or "") if p.strip()]
    positional = f" Positional: {', '.join(f'`{p}`' for p in cls.positional)}." if cls.positional else ""
    return f"- `{cls.signature()}`" + "".join(f"\n  {p}" for p in paragraphs) + positional


def reference() -> str:
    """The generated part of the doc, from the registries."""
    out = ["### Layers"]
    for module, title in FAMILIES.items():
        out += ["", f"#### {title}", ""]
        out += [_entry(c) for c in LAYERS.values() if c.__module__.rsplit(".", 1)[-1] == module]
    for title, table in TABLES:
        out += ["", f"### {title}", ""] + [_entry(c) for c in table.values()]
    return "\n".join(out)


def _blocks(kind: str) -> list[tuple[int, str]]:
    text = DOC.read_text(encoding="utf-8")
    return [(text[:m.start()].count("\n") + 2, m.group(1))
            for m in re.finditer(rf"^```{kind}\n(.*?)^```$", text, flags=re.DOTALL | re.MULTILINE)]


EXAMPLES = _blocks("dls")


def test_the_doc_has_examples_of_both_kinds():
    assert len(EXAMPLES) >= 15 and len(_blocks("dls-fragment")) >= 1
    fences = re.findall(r"^```(\S*)$", DOC.read_text(encoding="utf-8"), flags=re.MULTILINE)
    assert set(fences) <= {"dls", "dls-fragment", "text", ""}, "mark spec code as dls or dls-fragment"


@pytest.mark.parametrize("line,text", EXAMPLES, ids=[f"line{n}" for n, _ in EXAMPLES])
def test_every_complete_example_checks(line, text):
    try:
        checked = check_text(text, f"language.md:{line}")
    except DlsError as exc:
        pytest.fail("\n".join(render(d, f"docs/language.md (example at line {line})", text) for d in exc.diagnostics))
    assert not checked.warnings, [w.message for w in checked.warnings]


def test_fragments_are_not_complete_specs():
    # A fragment that would pass as a whole spec should be marked `dls`, and be tested.
    for line, text in _blocks("dls-fragment"):
        with pytest.raises(DlsError):
            check_text(text)


def test_the_generated_reference_matches_the_registries():
    text = DOC.read_text(encoding="utf-8")
    assert text.count(BEGIN) == 1 and text.count(END) == 1
    current = text[text.index(BEGIN) + len(BEGIN):text.index(END)].strip()
    assert current == reference(), "the reference is out of date: run `python tests/test_language_doc.py`"


def test_generated_names_follow_the_doc():
    example = next(text for _, text in EXAMPLES if "model class" in text)
    assert [n.name for n in check_text(example).graph.nodes] == \
        ["res1_h", "res1_r", "res1_add", "res2_h", "res2_r", "res2_add", "import"]
    spec = """block b() {
  input x
  x -> dense(4, activation=relu) -> h
  h -> dense(4)
}
model M {
  input x: [4]
  x -> b() -> dense(4, activation=relu)
  dense(4, activation=gelu) -> y
  y -> dense(2)
}
"""
    assert [n.name for n in check_text(spec).graph.nodes] == \
        ["b1_dense", "b1_h", "b1_dense_2", "dense", "dense_relu", "dense_2", "y", "dense_3"]


@pytest.mark.parametrize("table", [LAYERS, INITIALIZERS, *TRAINING.values(), SETTINGS])
def test_every_registry_entry_is_mentioned(table):
    missing = [name for name in table if f"`{name}" not in DOC.read_text(encoding="utf-8")]
    assert not missing, f"docs/language.md does not mention {missing}"


def test_the_train_registries_are_found():
    assert {"DATA", "LOSSES", "OPTIMIZERS", "SCHEDULES"} <= set(TRAINING)


def test_every_layer_has_a_shape_rule():
    rules = DOC.read_text(encoding="utf-8").split("## Shapes")[1].split("\n## ")[0]
    assert not [name for name in LAYERS if f"`{name}" not in rules]


if __name__ == "__main__":
    doc = DOC.read_text(encoding="utf-8")
    head, rest = doc.split(BEGIN)
    DOC.write_text(f"{head}{BEGIN}\n{reference()}\n{END}{rest.split(END, 1)[1]}", encoding="utf-8")
    sys.stdout.write(f"updated {DOC}\n")
