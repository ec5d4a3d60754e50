"""Graph convolution (Kipf & Welling, 2017) over a dense adjacency matrix per sample."""

from __future__ import annotations

from ..registry import CallValue, PositiveInt, ShapeError, fmt_shape, fn
from .base import LOGICAL, Layer, Penalty, initializer_args, layer
from .dense import Dense


@layer
class GraphConv(Layer):
    """`(features, adjacency) -> graph_conv(units)`: features [nodes, in], adjacency [nodes, nodes]
    (a float matrix per sample; entry (i, j) weighs what node i reads from node j) → [nodes, units]:
    out = Â · X · Wᵀ + b. With `normalize=true`, Â = D^-1/2 (A + I) D^-1/2, where the degree d_i is
    the row sum of A + I and D^-1/2 holds 1/√d_i where d_i > 0 and 0 elsewhere (so a node of
    degree ≤ 0, possible with negative weights, reads nothing rather than NaN); otherwise Â = A.
    W is (units, in), as PyTorch's Linear stores it."""

    name = "graph_conv"
    positional = ("units",)
    example = "graph_conv(16)"
    arity = None
    keras_layout = LOGICAL
    torch_classes = ("gcn_graph_conv",)
    keras_classes = ("gcn_graph_conv",)
    units: PositiveInt
    bias: bool = True
    normalize: bool = True
    activation: str | CallValue | None = None
    init: str | CallValue | None = None
    l1: Penalty = None
    l2: Penalty = None

    def infer(self, shapes):
        if len(shapes) != 2:
            raise ShapeError(f"graph_conv takes two inputs, the node features and the adjacency matrix, but {len(shapes)} reach it",
                             hint="write `(features, adjacency) -> graph_conv(16)`")
        x, a = shapes
        order = "write `(features, adjacency) -> graph_conv(...)`, features [nodes, features] first"
        if len(x) != 2:
            raise ShapeError(f"graph_conv expects node features [nodes, features] as its first input, got {fmt_shape(x)}", hint=order)
        if len(a) != 2 or a[0] != a[1]:
            raise ShapeError(f"graph_conv needs a square adjacency matrix [nodes, nodes] as its second input, got {fmt_shape(a)}",
                             hint="entry (i, j) links node i to node j, so both sizes are the number of nodes; " + order)
        if a[0] != x[0]:
            raise ShapeError(f"graph_conv: the features have {x[0]} nodes ({fmt_shape(x)}) but the adjacency matrix {fmt_shape(a)} has {a[0]}",
                             hint="both inputs describe the same nodes: features [nodes, features], adjacency [nodes, nodes]")
        return (x[0], self.units)

    # W and b are a Dense layer's: the same names, layouts, initialization and transfer.
    weights, torch_init, to_keras, from_keras = Dense.weights, Dense.torch_init, Dense.to_keras, Dense.from_keras

    def torch_module(self, node):
        return fn("GraphConv", node.in_shapes[0][1], self.units, bias=self.bias, normalize=self.normalize)

    def torch_forward(self, node, mod, xs):
        return f"{mod}({xs[0]}, {xs[1]})"

    def keras_layer(self, node, layout):
        return fn("GraphConv", self.units, use_bias=self.bias, normalize=self.normalize, **initializer_args(node, self.bias),
                  name=node.name)
