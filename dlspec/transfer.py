"""Weights between a built PyTorch model and the Keras model of the same spec. PyTorch's layout
is canonical (EQUIVALENCE.md rule 4); each layer entry maps its own weights (`to_keras`,
`from_keras`), and this module walks the graph. Frameworks are imported by the caller."""

from __future__ import annotations

from typing import Any

import numpy as np

from .graph import Graph
from .registry import ident


def _torch_state(torch_model: Any) -> dict[str, np.ndarray]:
    return {k: v.detach().cpu().numpy() for k, v in torch_model.state_dict().items()}


def torch_to_keras(graph: Graph, torch_model: Any, keras_model: Any) -> None:
    """Copies every weight of `torch_model` onto `keras_model`, node by node."""
    state = _torch_state(torch_model)
    for n in graph.nodes:
        prefix = ident(n.name) + "."
        own = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
        weights = n.layer.to_keras(n, own)
        if weights:
            layer = keras_model.get_layer(n.name)
            dtypes = [w.dtype for w in layer.get_weights()]
            layer.set_weights([w.astype(d) for w, d in zip(weights, dtypes)])


def keras_to_torch(graph: Graph, keras_model: Any, torch_model: Any) -> None:
    """Copies every weight of `keras_model` onto `torch_model` (PyTorch's second RNN/LSTM bias,
    which Keras folds into the first, is set to zero)."""
    import torch

    current = torch_model.state_dict()
    state = {}
    for n in graph.nodes:
        weights = keras_model.get_layer(n.name).get_weights() if n.layer.weights(list(n.in_shapes)) else []
        for k, v in n.layer.from_keras(n, weights).items() if weights else ():
            key = f"{ident(n.name)}.{k}"
            state[key] = torch.from_numpy(np.ascontiguousarray(v)).to(current[key].dtype)
    missing = set(current) - set(state)
    assert all(k.endswith("num_batches_tracked") for k in missing), sorted(missing)
    torch_model.load_state_dict(state, strict=False)


def torch_param_count(torch_model: Any) -> tuple[int, int]:
    """(total, trainable) the way dlspec counts: parameters plus running statistics."""
    params = list(torch_model.parameters())
    stats = sum(b.numel() for name, b in torch_model.named_buffers() if not name.endswith("num_batches_tracked"))
    return sum(p.numel() for p in params) + stats, sum(p.numel() for p in params if p.requires_grad)


def keras_param_count(keras_model: Any) -> tuple[int, int]:
    trainable = sum(int(np.prod(w.shape)) for w in keras_model.trainable_weights)
    return keras_model.count_params(), trainable
