"""`dls verify`: build the spec in both frameworks, copy the PyTorch weights into Keras, run both
on the same random batch in inference mode, and compare every output."""

from __future__ import annotations

import contextlib
import tempfile
from dataclasses import dataclass

import numpy as np

from .check import Checked
from .graph import Graph
from .layers.dense import Embedding
from .runtime import load_generated
from .transfer import keras_param_count, torch_param_count, torch_to_keras


@dataclass
class OutputDiff:
    name: str
    max_abs: float
    max_rel: float  # max |torch - keras| / max |torch|: relative to the output's scale

    def ok(self, rtol: float) -> bool:
        return self.max_rel <= rtol


@dataclass
class Report:
    model: str
    dtype: str
    outputs: list[OutputDiff]
    params: dict[str, tuple[int, int]]  # "dlspec torch", "torch", "dlspec keras", "keras"

    def ok(self, rtol: float) -> bool:
        return all(o.ok(rtol) for o in self.outputs) and self.params["torch"] == self.params["dlspec torch"] \
            and self.params["keras"] == self.params["dlspec keras"]


DEFAULT_RTOL = {"float64": 1e-6, "float32": 1e-4}  # EQUIVALENCE.md rule 5


def random_inputs(graph: Graph, batch: int, seed: int, dtype: str) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    arrays = []
    for t in graph.inputs:
        if t.dtype == "int":
            vocab = min((n.layer.vocab for n in graph.nodes if isinstance(n.layer, Embedding) and t.name in n.inputs), default=10)
            arrays.append(rng.integers(0, vocab, size=(batch, *t.shape)).astype(np.int64))
        else:
            arrays.append(rng.standard_normal((batch, *t.shape)).astype(dtype))
    return arrays


@contextlib.contextmanager
def keras_floatx(dtype: str):
    """Keras builds layers in `dtype` inside this block. Both settings are needed: once Keras has
    read its global dtype policy, floatx alone no longer changes the layers' dtype."""
    import keras

    old_floatx, old_policy = keras.config.floatx(), keras.config.dtype_policy()
    keras.config.set_floatx(dtype)
    keras.config.set_dtype_policy(dtype)
    try:
        yield
    finally:
        keras.config.set_floatx(old_floatx)
        keras.config.set_dtype_policy(old_policy)


def randomize(torch_model, seed: int) -> None:
    """Random values in every weight and statistic: fresh models have zero biases and identity
    batch-norm statistics, which would let a wrong bias or statistic mapping pass unseen."""
    import torch

    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in [*torch_model.named_parameters(), *torch_model.named_buffers()]:
            if not t.is_floating_point() or (isinstance(t, torch.nn.Parameter) and not t.requires_grad):
                continue  # integers (batch counts), and weights the model keeps fixed (a second RNN bias)
            if name.endswith("running_var"):
                t.copy_(0.5 + torch.rand(t.shape, generator=gen, dtype=t.dtype))
            elif t.dim() > 1:  # scaled by fan-in: deep outputs stay where differences show, not saturated
                t.copy_(torch.randn(t.shape, generator=gen, dtype=t.dtype) / t[0].numel() ** 0.5)
            else:  # biases, normalization scales and means
                t.copy_(0.5 * torch.randn(t.shape, generator=gen, dtype=t.dtype))


def build_pair(checked: Checked, dtype: str = "float64", seed: int = 0, graph: Graph | None = None):
    """(torch model, keras model) of `graph` (default: the trained model) built from the generated
    code, with the same random weights."""
    import torch

    from .backends.codegen import builder_name

    graph = graph or checked.graph
    with tempfile.TemporaryDirectory(prefix="dlspec-") as folder:  # imported, the files are no longer needed
        torch_mod, keras_mod = load_generated(checked, "torch", folder), load_generated(checked, "keras", folder)
    build = builder_name(checked, graph)
    torch_model = getattr(torch_mod, build)().to(getattr(torch, dtype)).eval()
    randomize(torch_model, seed)
    with keras_floatx(dtype):
        keras_model = getattr(keras_mod, build)()
    torch_to_keras(graph, torch_model, keras_model)
    return torch_model, keras_model


def run_pair(graph: Graph, torch_model, keras_model, inputs: list[np.ndarray]) -> tuple[list[np.ndarray], list[np.ndarray]]:
    import torch

    with torch.no_grad():
        t_out = torch_model(*[torch.from_numpy(x) for x in inputs])
    t_out = [t.numpy() for t in (t_out if isinstance(t_out, tuple) else (t_out,))]
    k_out = keras_model(inputs if len(inputs) > 1 else inputs[0], training=False)
    k_out = [np.asarray(k) for k in (k_out if isinstance(k_out, list | tuple) else [k_out])]
    return t_out, k_out


def compare(names: list[str], t_out: list[np.ndarray], k_out: list[np.ndarray]) -> list[OutputDiff]:
    diffs = []
    for name, a, b in zip(names, t_out, k_out):
        err = float(np.max(np.abs(a - b))) if a.size else 0.0
        scale = float(np.max(np.abs(a))) if a.size else 0.0
        diffs.append(OutputDiff(name=name, max_abs=err, max_rel=err / scale if scale > 0 else err))
    return diffs


def verify(checked: Checked, dtype: str = "float64", batch: int = 4, seed: int = 0, graph: Graph | None = None) -> Report:
    """The comparison for `graph` (default: the trained model)."""
    graph = graph or checked.graph
    torch_model, keras_model = build_pair(checked, dtype, seed, graph)
    t_out, k_out = run_pair(graph, torch_model, keras_model, random_inputs(graph, batch, seed, dtype))
    params = {"dlspec torch": graph.params("torch"), "torch": torch_param_count(torch_model),
              "dlspec keras": graph.params("keras"), "keras": keras_param_count(keras_model)}
    return Report(model=graph.name, dtype=dtype, outputs=compare(graph.outputs, t_out, k_out), params=params)
