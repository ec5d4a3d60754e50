"""The reference specs of the architectures Keras ships as applications have exactly Keras's
parameter counts (input 224x224x3, 1000 classes), in `dls check` and in both compiled models
(tests/test_specs.py verifies the built models' counts equal `dls check`'s)."""

from __future__ import annotations

import pytest

from dlspec.check import check_file

from .helpers import ROOT

# spec, keras.applications constructor, the count the issue gives (Keras's documented figure)
APPLICATIONS = [
    ("vgg16", "VGG16", 138_357_544),
    ("resnet50", "ResNet50", 25_636_712),
    ("mobilenet_v2", "MobileNetV2", 3_538_984),
    ("densenet121", "DenseNet121", 8_062_504),
]


@pytest.mark.parametrize(("spec", "application", "count"), APPLICATIONS, ids=[a[0] for a in APPLICATIONS])
def test_parameter_counts_equal_keras_applications(spec, application, count):
    keras = pytest.importorskip("keras")
    graph = check_file(ROOT / "specs" / f"{spec}.dls").graph
    keras.backend.clear_session()
    model = getattr(keras.applications, application)(weights=None, input_shape=(224, 224, 3), classes=1000)
    assert model.count_params() == count  # the application as Keras builds it offline
    assert graph.params("keras")[0] == count
    assert graph.params("torch")[0] == count
    # the same architecture, not just the same total: every layer with weights, by its output shape
    # (channels last) and parameter count; as multisets, since Keras lists parallel branches in its
    # own order
    ours = sorted((s[1:] + s[:1] if len(s) == 3 else s, n.params("keras")[0])
                  for n in graph.nodes if n.params("keras")[0] for s in [graph.shape_of(n.name)])
    theirs = sorted((tuple(layer.output.shape[1:]), layer.count_params()) for layer in model.layers if layer.count_params())
    assert ours == theirs
    keras.backend.clear_session()


def test_the_readme_states_each_reference_specs_count():
    # The README's table of reference specs says what `dls check` reports.
    import re

    readme = (ROOT / "README.md").read_text()
    rows = re.findall(r"^\| `(\w+)\.dls` \| .*? \| ([\d,]+(?: \+ [\d,]+)*) \|$", readme, flags=re.MULTILINE)
    assert len(rows) >= 13
    for spec, counts in rows:  # a spec with several models: their counts joined by +, in spec order
        graphs = check_file(ROOT / "specs" / f"{spec}.dls").graphs
        assert [g.params("keras")[0] for g in graphs] == [int(c.replace(",", "")) for c in counts.split(" + ")], spec
        for g in graphs:  # PyTorch trains as many; it stores more only where an RNN or LSTM keeps its frozen bias
            assert g.params("torch")[1] == g.params("keras")[1], spec
            frozen = any(n.layer.name in ("rnn", "lstm") for n in g.nodes)
            assert (g.params("torch")[0] > g.params("keras")[0]) == frozen, spec
