"""Several models in one spec (a GAN's generator and discriminator): every model is checked,
compiled into the same module (`build_model` for the trained one, `build_<name>` for the others)
and computes the same function in both outputs."""

from __future__ import annotations

import pytest

from dlspec.check import check_text
from dlspec.runtime import module_source

from .equality import assert_same_function

TWO = """model Generator {
  input noise: [8]
  noise -> dense(32) -> relu() -> reshape((2, 4, 4)) -> conv2d(1, 3, padding=same) -> tanh()
}

model Discriminator {
  input image: [1, 4, 4]
  image -> conv2d(4, 3) -> leaky_relu() -> flatten() -> dense(1)
}

train {
  model: Discriminator
  data: synthetic(task=binary)
  loss: binary_cross_entropy(from_logits=true)
}
"""


@pytest.mark.parametrize("target", ["torch", "keras"])
def test_every_model_is_in_the_module(target):
    text = module_source(check_text(TWO), target)
    assert "def build_model():" in text and "def build_generator():" in text
    compile(text, "generated.py", "exec")
    if target == "torch":
        assert "class Generator(nn.Module):" in text and "return Discriminator()" in text.split("def build_model():")[1][:80]


def test_every_model_computes_the_same_function():
    checked = check_text(TWO)
    for graph in checked.graphs:
        assert_same_function(TWO, graph=graph.name)


def _two(first: str, second: str) -> str:
    return (f"model {first} {{\n  input x: [4]\n  dense(2)\n}}\n\nmodel {second} {{\n  input x: [4]\n  dense(3)\n}}\n\n"
            f"train {{\n  model: {first}\n  data: synthetic(task=regression)\n  loss: mse()\n}}\n")


@pytest.mark.parametrize(("first", "second", "words"), [
    ("m", "M", "same names"),                  # both `class M`
    ("fooBar", "foo_bar", "same names"),       # both `build_foo_bar`
    ("Net", "d_optimizer", "`build_d_optimizer`"),  # the GAN's optimizer builder
    ("Net", "TrainingBatches", "`TrainingBatches`"),
])
def test_models_that_would_share_a_python_name_are_refused(first, second, words):
    from dlspec.diagnostics import DlsError

    with pytest.raises(DlsError) as exc:
        check_text(_two(first, second))
    d = exc.value.diagnostics[0]
    assert words in d.message and "rename" in d.hint and d.span.line == 6


def test_generated_module_level_classes_and_builders_are_listed():
    # A model's class or builder must not take a name the templates define at module level.
    import re
    from pathlib import Path

    from dlspec.registry import GENERATED_NAMES

    templates = Path(__file__).resolve().parent.parent / "backends" / "templates"
    defined = {m for f in templates.rglob("*.j2") if "_layers" not in f.parent.name
               for m in re.findall(r"^(?:class|def) (\w+)", f.read_text(), re.MULTILINE)}
    assert {n for n in defined if n[0].isupper() or n.startswith("build_")} <= GENERATED_NAMES
