"""What every layer entry declares. A layer is a pydantic model whose fields are its arguments;
its methods give the shape rule, the weights in the canonical (PyTorch) layout, and the
rendering for each backend. `graph.py` calls the shape rule; `backends/` call the renderers;
`transfer.py` calls `to_keras` / `from_keras`."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, ClassVar

from ..registry import CallValue, Code, Entry, NonNegFloat, PositiveFloat, Shape, ShapeError, fmt_shape, fn, registry_of

if TYPE_CHECKING:  # numpy is imported by weight transfer only: `dls check` does without it
    import numpy as np

LAYERS, layer = registry_of("layer")

CHANNELS_LAST, LOGICAL, ANY = "channels_last", "logical", "any"


class Layer(Entry):
    kind: ClassVar[str] = "layer"
    arity: ClassVar[int | None] = 1  # how many input tensors; None means two or more
    # (flag, what): `flag=true` makes the layer read `what` as one more input (`masked`: a mask).
    extra_input: ClassVar[tuple[str, str] | None] = None
    keras_layout: ClassVar[str] = ANY  # the layout the Keras rendering expects its input in
    int_input: ClassVar[bool] = False  # takes integer tensors (token ids)
    # Classes the rendering may need in the generated file, each a template named after it in
    # backends/templates/torch_layers/ or keras_layers/, written once before the model; a node
    # names those it does need in `torch_classes_for` / `keras_classes_for`.
    torch_classes: ClassVar[tuple[str, ...]] = ()
    keras_classes: ClassVar[tuple[str, ...]] = ()

    # --- shapes and weights (batch dimension never included) ---
    def infer(self, shapes: list[Shape]) -> Shape:
        return shapes[0]

    def weights(self, shapes: list[Shape]) -> dict[str, Shape]:
        """Trainable weights, PyTorch names and layout."""
        return {}

    def buffers(self, shapes: list[Shape]) -> dict[str, Shape]:
        """Non-trainable state (e.g. batch-norm statistics); counted as parameters, as Keras does."""
        return {}

    def param_count(self, shapes: list[Shape], backend: str = "torch") -> tuple[int, int]:
        """(total, trainable) as `backend` counts them."""
        trainable = sum(math.prod(s) for s in self.weights(shapes).values())
        return trainable + sum(math.prod(s) for s in self.buffers(shapes).values()), trainable

    # --- PyTorch ---
    def torch_module(self, node: Any) -> str | None:
        return None

    def torch_forward(self, node: Any, mod: str, xs: list[str]) -> str:
        return f"{mod}({xs[0]})"

    def torch_init(self, node: Any, mod: str) -> list[str]:
        return []

    def torch_classes_for(self, node: Any) -> tuple[str, ...]:
        return self.torch_classes

    # --- Keras ---
    def keras_layer(self, node: Any, layout: str) -> str:
        """The Keras layer for this node, named `node.name`; it holds the weights. `layout` is the
        layout its input arrives in (see `keras_axis`)."""
        raise NotImplementedError

    def keras_call(self, node: Any, layer: str, xs: list[str], fresh: Any) -> str:
        """How the Keras layer is applied to the input variables `xs`. `fresh` names any layer
        applied after it (see `keras_prelude`)."""
        return f"{layer}({xs[0]})" if self.arity == 1 else f"{layer}([{', '.join(xs)}])"

    def keras_prelude(self, node: Any, fresh: Any) -> list[tuple[str, str]]:
        """(name, layer) pairs applied before `keras_layer`, e.g. explicit padding. `fresh(base)`
        gives a name (for the layer and its variable) that no tensor of the spec has."""
        return []

    def keras_classes_for(self, node: Any) -> tuple[str, ...]:
        return self.keras_classes

    def to_keras(self, node: Any, w: dict[str, np.ndarray]) -> list[np.ndarray]:
        return []

    def from_keras(self, node: Any, ws: list[np.ndarray]) -> dict[str, np.ndarray]:
        return {}


def derive(base: type[Layer], cls_name: str, fields: dict[str, Any] | None = None, *, doc: str, **attrs: Any) -> type[Layer]:
    """Registers a layer that differs from `base` (which holds all its logic) only in class
    attributes (`attrs`: name, example, dims...) and arguments: `fields` maps each, in signature
    order, to its type or to (type, default). It serves families such as conv1d/2d/3d, whose members
    would otherwise repeat one declaration with other numbers."""
    fields = fields or {}
    return layer(type(cls_name, (base,), {
        "__doc__": doc, "__module__": base.__module__, "__qualname__": cls_name, **attrs,
        "__annotations__": {f: t[0] if isinstance(t, tuple) else t for f, t in fields.items()},
        **{f: t[1] for f, t in fields.items() if isinstance(t, tuple)},
    }))


SHAPE_NAMES = {1: "[features]", 2: "[channels, length]", 3: "[channels, height, width]", 4: "[channels, depth, height, width]"}


def want_rank(shapes: list[Shape], ranks: tuple[int, ...], what: str, hint: str | None = None) -> Shape:
    s = shapes[0]
    if len(s) not in ranks:
        wanted = " or ".join(SHAPE_NAMES.get(r, f"rank {r}") for r in ranks)
        raise ShapeError(f"{what} expects an input of shape {wanted}, got {fmt_shape(s)}", hint)
    return s


def as_call(v: str | CallValue) -> CallValue:
    return v if isinstance(v, CallValue) else CallValue(name=v)


def keras_axis(axis: int, rank: int, layout: str) -> int:
    """The Keras axis (batch = 0) of a logical channels-first axis (batch excluded, may be < 0).

    The one place where channels-first maps to channels-last (EQUIVALENCE.md rule 2)."""
    axis = axis % rank
    if layout != CHANNELS_LAST or rank < 2:
        return axis + 1
    return rank if axis == 0 else axis


# A layer's own l1/l2 coefficient for its kernels; None: the train section's `l1:`/`l2:`.
Penalty = NonNegFloat | None
# Max-norm: each output unit's incoming weight vector is rescaled to a norm of at most this.
MaxNorm = PositiveFloat | None


def initializer_args(node: Any, bias: bool, kernels: tuple[str, ...] = ("kernel",)) -> dict[str, Code]:
    """The Keras initializers of a layer whose kernels (`kernel`, or `depthwise` and `pointwise`...)
    take the node's `init` and whose bias starts at zero; and its kernel's max-norm constraint."""
    args = {f"{k}_initializer": Code(node.init.keras()) for k in kernels}
    if bias:
        args["bias_initializer"] = Code('"zeros"')
    if getattr(node.layer, "max_norm", None):
        # Keras's kernel is (..., in, out): the norm runs over every axis but the last.
        rank = len(node.layer.weights(list(node.in_shapes))["weight"])
        axis = 0 if rank == 2 else list(range(rank - 1))
        args["kernel_constraint"] = Code(fn("keras.constraints.MaxNorm", node.layer.max_norm, axis=axis))
    return args


def init_weight_and_bias(node: Any, mod: str, bias: bool) -> list[str]:
    lines = [node.init.torch(f"{mod}.weight")]
    if bias:
        lines.append(f"nn.init.zeros_({mod}.bias)")
    return lines
