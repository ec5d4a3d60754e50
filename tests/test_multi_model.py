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
