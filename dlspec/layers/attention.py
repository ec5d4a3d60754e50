"""Attention, positions and the transformer encoder, over [steps, features] (batch first in both
frameworks, so no layout change). The frameworks store attention weights differently (EQUIVALENCE.md
trap 10): PyTorch fuses the query, key and value projections into one `in_proj_weight` (3E × E) when
they read the same width, where Keras keeps a kernel per projection shaped (E, heads, head_dim) and
an output kernel (heads, head_dim, E); transfer splits and reshapes. Both scale the scores by
1/sqrt(head_dim) (Keras rounds that constant to float32 even in float64: ~1e-8 relative, measured,
unless head_dim is a power of 4). dlspec's causal mask means: the query at step i attends the keys
at steps j ≤ i (PyTorch receives a boolean `attn_mask`, True = ignore; Keras
`use_causal_mask=True`). A key padding mask (`masked=true`, also on transformer_encoder) is one more
input, [key_steps] floats (≥ 0.5 attends, below ignores the key), turned into a boolean [steps,
key_steps] mask by a helper in each output (with causality if asked); a query left with no key
attends nothing and outputs the output projection's bias, where PyTorch would give NaN and Keras an
average of the values: both helpers let such a query attend every key (so no NaN reaches the
gradients either) and replace its output."""

from __future__ import annotations

from typing import ClassVar, Literal

from ..registry import Code, PositiveFloat, PositiveInt, Rate, ShapeError, fmt_shape, fn
from .base import LOGICAL, Layer, layer

# Every projection of an attention layer starts from U(-a, a), a = sqrt(3 / width): Glorot's bound
# for a width × width matrix, written in both outputs (PyTorch's fused Glorot bound over 3E × E
# and Keras's fans of a 3-d kernel differ); biases start at zero.


def _bound(width: int) -> Code:
    return Code(f"math.sqrt(3 / {int(width)})")


def _sequence(shapes, what: str, which: str = "its input"):
    for s in shapes:
        if len(s) != 2:
            raise ShapeError(f"{what} expects {which} as [steps, features], got {fmt_shape(s)}",
                             hint="an embedding gives [steps, features]; a [features] vector becomes one step "
                                  "with `reshape((1, n))`")
    return shapes[0]


def _heads_divide(what: str, heads: int, width: int, *steps: int) -> None:
    if width % heads:
        fits = [h for h in range(1, width + 1) if width % h == 0]
        raise ShapeError(f"{what}: {heads} heads do not divide the width {width} (each head takes an equal share "
                         "of the features)", hint=f"use a number of heads that divides {width}: {', '.join(map(str, fits))}; "
                                                  "or change the width with `dense(...)` before it")
    if width == heads and heads > 1 and heads in steps:
        # Keras's TensorFlow `add` takes a projection bias shaped (heads, 1) for a per-channel bias and
        # adds it along the steps when they number the heads: measured wrong by 0.2-0.8 relative.
        raise ShapeError(f"{what}: one feature per head over {heads} steps, as many as the heads, is computed wrong "
                         "by Keras (its bias is added along the steps)", hint="use fewer heads, so that each reads two "
                         "features or more")


def _mha_weights(prefix: str, width: int, context: int, bias: bool) -> dict:
    # nn.MultiheadAttention fuses the three projections only when keys and values have the query's width.
    e, c = width, context
    w = {f"{prefix}in_proj_weight": (3 * e, e)} if c == e else \
        {f"{prefix}q_proj_weight": (e, e), f"{prefix}k_proj_weight": (e, c), f"{prefix}v_proj_weight": (e, c)}
    if bias:
        w[f"{prefix}in_proj_bias"] = (3 * e,)
    w[f"{prefix}out_proj.weight"] = (e, e)
    return w | ({f"{prefix}out_proj.bias": (e,)} if bias else {})


def _mha_init(mod: str, width: int, context: int, bias: bool) -> list[str]:
    a = _bound(width)
    names = ["in_proj_weight"] if context == width else ["q_proj_weight", "k_proj_weight", "v_proj_weight"]
    lines = [fn("nn.init.uniform_", Code(f"{mod}.{n}"), a=Code(f"-{a}"), b=a) for n in [*names, "out_proj.weight"]]
    return lines + ([f"nn.init.zeros_({mod}.in_proj_bias)", f"nn.init.zeros_({mod}.out_proj.bias)"] if bias else [])


def mha_to_keras(w: dict, prefix: str, heads: int, bias: bool) -> list:
    """PyTorch's projections → Keras's query, key, value and output kernels (and biases)."""
    import numpy as np

    if f"{prefix}in_proj_weight" in w:
        qkv = np.split(w[f"{prefix}in_proj_weight"], 3)
    else:
        qkv = [w[f"{prefix}{p}_proj_weight"] for p in "qkv"]
    e = qkv[0].shape[0]
    biases = np.split(w[f"{prefix}in_proj_bias"], 3) if bias else [None] * 3
    out = []
    for m, b in zip(qkv, biases):
        out.append(m.T.reshape(m.shape[1], heads, e // heads))
        if bias:
            out.append(b.reshape(heads, e // heads))
    out.append(w[f"{prefix}out_proj.weight"].T.reshape(heads, e // heads, e))
    return out + ([w[f"{prefix}out_proj.bias"]] if bias else [])


def mha_from_keras(ws: list, prefix: str, bias: bool) -> dict:
    import numpy as np

    step = 2 if bias else 1
    kernels = [ws[i * step] for i in range(4)]
    q, k, v = (m.reshape(m.shape[0], -1).T for m in kernels[:3])
    out = kernels[3]
    e = out.shape[-1]
    w = {f"{prefix}in_proj_weight": np.concatenate([q, k, v])} if q.shape == k.shape else \
        {f"{prefix}q_proj_weight": q, f"{prefix}k_proj_weight": k, f"{prefix}v_proj_weight": v}
    if bias:
        w[f"{prefix}in_proj_bias"] = np.concatenate([ws[1].reshape(-1), ws[3].reshape(-1), ws[5].reshape(-1)])
    w[f"{prefix}out_proj.weight"] = out.reshape(-1, e).T
    return w | ({f"{prefix}out_proj.bias": ws[7]} if bias else {})


def _keras_mha(heads: int, width: int, dropout: float, bias: bool, name: str) -> str:
    a = _bound(width)
    return fn("layers.MultiHeadAttention", num_heads=heads, key_dim=width // heads, value_dim=width // heads,
              dropout=dropout, use_bias=bias,
              kernel_initializer=Code(fn("initializers.RandomUniform", minval=Code(f"-{a}"), maxval=a)),
              bias_initializer=Code('"zeros"'), name=name)


def _count(what: str, shapes, names: str, words: str, masked: bool) -> None:
    """`names`: the inputs as written, e.g. "x, context, mask"; `words`: what they are."""
    wanted = len(names.split(", "))
    if len(shapes) != wanted:
        raise ShapeError(f"{what}{' with masked=true' if masked else ''} takes {['two', 'three'][wanted - 2]} inputs, "
                         f"{words}, got {len(shapes)}",
                         hint=f"write `({names}) -> {what}(heads{', masked=true' if masked else ''})`")


def _check_mask(what: str, mask, keys: int) -> None:
    if tuple(mask) != (keys,):
        raise ShapeError(f"{what}: the mask must be [{keys}], one value per key step (1 = attend, 0 = ignore), "
                         f"got {fmt_shape(mask)}", hint=f"declare it e.g. `input mask: [{keys}]`; it is the last input")


class _Attention(Layer):
    positional = ("heads",)
    keras_layout = LOGICAL
    context_input: ClassVar[int] = 0  # which input gives the keys and values
    heads: PositiveInt
    dropout: Rate = 0.0
    bias: bool = True
    causal: bool = False
    masked: bool = False

    def context_width(self, shapes) -> int:
        return shapes[self.context_input][-1]

    def weights(self, shapes):
        return _mha_weights("", shapes[0][-1], self.context_width(shapes), self.bias)

    def torch_module(self, node):
        width, context = node.in_shapes[0][-1], self.context_width(node.in_shapes)
        extra = {} if context == width else {"kdim": context, "vdim": context}
        return fn("nn.MultiheadAttention", width, self.heads, dropout=self.dropout, bias=self.bias, **extra,
                  batch_first=True)

    def torch_init(self, node, mod):
        return _mha_init(mod, node.in_shapes[0][-1], self.context_width(node.in_shapes), self.bias)

    def torch_classes_for(self, node):
        return ("attention_masked",) if self.masked else ()

    def keras_classes_for(self, node):
        return ("attention_mask", "attention_masked") if self.masked else ()

    def torch_forward(self, node, mod, xs):
        q, kv = xs[0], xs[self.context_input]
        if self.masked:
            return fn("masked_attention", Code(mod), Code(q), Code(kv), Code(xs[-1]), causal=self.causal)
        mask = ""
        if self.causal:  # True = ignore: the query at step i sees the keys at steps j <= i
            steps, keys = node.in_shapes[0][0], node.in_shapes[self.context_input][0]
            mask = f"attn_mask=torch.ones({steps}, {keys}, dtype=torch.bool, device={q}.device).triu(1), "
        return f"{mod}({q}, {kv}, {kv}, {mask}need_weights=False)[0]"

    def keras_layer(self, node, layout):
        width = node.in_shapes[0][-1]
        if self.masked:  # a MultiHeadAttention inside, with its weights in the same order
            return fn("MaskedAttention", self.heads, width, dropout=self.dropout, bias=self.bias, causal=self.causal,
                      name=node.name)
        return _keras_mha(self.heads, width, self.dropout, self.bias, node.name)

    def keras_call(self, node, layer, xs, fresh):
        kv = xs[self.context_input]
        if self.masked:
            return f"{layer}({xs[0]}, {kv}, {xs[-1]})"
        # Keras's MultiHeadAttention is called as (query, value, key).
        causal = ", use_causal_mask=True" if self.causal else ""
        return f"{layer}({xs[0]}, {kv}, {kv}{causal})"

    def to_keras(self, node, w):
        return mha_to_keras(w, "", self.heads, self.bias)

    def from_keras(self, node, ws):
        return mha_from_keras(ws, "", self.bias)


@layer
class Attention(_Attention):
    """Multi-head self-attention: queries, keys and values are all projections of the input
    [steps, features]; the output, projected back to the input's width, has its shape. `heads`
    must divide the width (each head reads width/heads features). Dropout acts on the attention
    weights, in training only. `causal=true`: step i attends steps j ≤ i only. `masked=true`:
    `(x, mask) -> attention(heads, masked=true)` with a mask [steps] of floats, 1 = attend that
    step, 0 = ignore it (a value ≥ 0.5 attends); a query left with no step to attend outputs the
    output projection's bias (zero without bias). Projection weights start from U(−a, a) with
    a = sqrt(3 / width), biases at zero."""

    name = "attention"
    example = "attention(4)"
    extra_input = ("masked", "mask")

    @property
    def arity(self):  # the mask is a second input
        return None if self.masked else 1

    def infer(self, shapes):
        if self.masked:
            _count("attention", shapes, "x, mask", "the sequence and its mask", masked=True)
        s = _sequence(shapes[:1], "attention")
        if self.masked:
            _check_mask("attention", shapes[1], s[0])
        _heads_divide("attention", self.heads, s[-1], s[0])
        return s


@layer
class CrossAttention(_Attention):
    """Multi-head cross-attention `(x, context) -> cross_attention(heads)`: queries from x
    [steps, features], keys and values from context [context_steps, context_features] (any
    length and width); the output has x's shape. `heads` must divide x's width. Otherwise as
    `attention` (with `causal=true`, query step i attends context steps j ≤ i; with `masked=true`,
    `(x, context, mask)` and a mask [context_steps])."""

    name = "cross_attention"
    example = "cross_attention(4)"
    arity = None  # two, or three with a mask: checked below, with a clearer message than "two or more"
    context_input = 1

    def infer(self, shapes):
        if self.masked:
            _count("cross_attention", shapes, "x, context, mask", "the queries, the context and its mask", True)
        else:
            _count("cross_attention", shapes, "x, context", "the queries and the context", False)
        s = _sequence(shapes[:1], "cross_attention", "its queries (first input)")
        c = _sequence(shapes[1:2], "cross_attention", "its context (second input)")
        if self.masked:
            _check_mask("cross_attention", shapes[2], c[0])
        _heads_divide("cross_attention", self.heads, s[-1], s[0], c[0])
        return s


@layer
class PositionalEmbedding(Layer):
    """Adds a learned vector per position to [steps, features]: a weight [max_len, features] of
    which the first `steps` rows are used (`max_len` defaults to steps). Starts from N(0, 0.02²)."""

    name = "positional_embedding"
    keras_layout = LOGICAL
    keras_classes = ("position_embedding",)
    max_len: PositiveInt | None = None

    def infer(self, shapes):
        s = _sequence(shapes, "positional_embedding")
        if self.max_len is not None and self.max_len < s[0]:
            raise ShapeError(f"positional_embedding has max_len={self.max_len} positions, but its input has {s[0]} steps",
                             hint=f"raise max_len to at least {s[0]}, or leave it out")
        return s

    def weights(self, shapes):
        steps, width = shapes[0]
        return {"weight": (self.max_len or steps, width)}

    def torch_module(self, node):
        steps, width = node.in_shapes[0]
        return fn("nn.Embedding", self.max_len or steps, width)  # only its weight is used

    def torch_init(self, node, mod):
        return [fn("nn.init.normal_", Code(f"{mod}.weight"), mean=0.0, std=0.02)]

    def torch_forward(self, node, mod, xs):
        return f"{xs[0]} + {mod}.weight[:{node.in_shapes[0][0]}]"

    def keras_layer(self, node, layout):
        steps, width = node.in_shapes[0]
        return fn("PositionalEmbedding", self.max_len or steps, width, name=node.name)

    def to_keras(self, node, w):
        return [w["weight"]]

    def from_keras(self, node, ws):
        return {"weight": ws[0]}


@layer
class SinusoidalEmbedding(Layer):
    """Adds the fixed table of "Attention is all you need" to [steps, features]: at step p,
    feature 2i holds sin(p / 10000^(2i/features)) and feature 2i+1 the cosine of the same angle.
    No weights; both outputs compute the table with the same numpy code in float64."""

    name = "sinusoidal_embedding"
    keras_layout = LOGICAL
    torch_classes = ("position_sinusoidal",)
    keras_classes = ("position_sinusoidal",)

    def infer(self, shapes):
        return _sequence(shapes, "sinusoidal_embedding")

    def torch_forward(self, node, mod, xs):
        steps, width = node.in_shapes[0]
        x = xs[0]
        return f"{x} + torch.as_tensor(sinusoidal_table({steps}, {width}), dtype={x}.dtype, device={x}.device)"

    def keras_layer(self, node, layout):
        return fn("SinusoidalEmbedding", name=node.name)


@layer
class TransformerEncoder(Layer):
    """One transformer encoder layer, PyTorch's `nn.TransformerEncoderLayer` (batch first):
    self-attention with `heads` heads, then a feed-forward block dense(ff) → `ff_activation` (relu,
    or exact gelu) → dense(features), each with dropout and added back to its input. `norm=post` normalizes after
    each sum (the original transformer), `norm=pre` before each block. [steps, features] →
    same; `heads` must divide features. Dropout (on the attention weights, after the activation
    and on each block's output) acts in training only. Attention projections start as in
    `attention`, the feed-forward weights from Glorot uniform, biases at zero, norms at (1, 0).
    `causal=true` and `masked=true` mean what they mean for `attention`: step i attends steps
    j ≤ i (a decoder-only block, as in GPT); `(x, mask) -> transformer_encoder(heads, ff,
    masked=true)` ignores the steps whose mask is below 0.5 (padding), and a step left with no step
    to attend takes the attention's output-projection bias as its attention output."""

    name = "transformer_encoder"
    positional = ("heads", "ff")
    extra_input = ("masked", "mask")
    example = "transformer_encoder(4, 128)"
    keras_layout = LOGICAL
    keras_classes = ("attention_encoder", "attention_mask")  # the class can mask, so it names the helper
    heads: PositiveInt
    ff: PositiveInt
    dropout: Rate = 0.1
    norm: Literal["post", "pre"] = "post"
    # Not `activation`: that argument name means an activation layer after the layer (graph.py).
    ff_activation: Literal["relu", "gelu"] = "relu"
    eps: PositiveFloat = 1e-5
    causal: bool = False
    masked: bool = False

    @property
    def arity(self):  # the mask is a second input
        return None if self.masked else 1

    def infer(self, shapes):
        if self.masked:
            _count("transformer_encoder", shapes, "x, mask", "the sequence and its mask", masked=True)
        s = _sequence(shapes[:1], "transformer_encoder")
        if self.masked:
            _check_mask("transformer_encoder", shapes[1], s[0])
        _heads_divide("transformer_encoder", self.heads, s[-1], s[0])
        return s

    def weights(self, shapes):
        e, f = shapes[0][-1], self.ff
        return _mha_weights("self_attn.", e, e, True) | {
            "linear1.weight": (f, e), "linear1.bias": (f,), "linear2.weight": (e, f), "linear2.bias": (e,),
            "norm1.weight": (e,), "norm1.bias": (e,), "norm2.weight": (e,), "norm2.bias": (e,)}

    def torch_module(self, node):
        return fn("nn.TransformerEncoderLayer", node.in_shapes[0][-1], self.heads, dim_feedforward=self.ff,
                  dropout=self.dropout, activation=self.ff_activation, layer_norm_eps=self.eps, batch_first=True,
                  norm_first=self.norm == "pre", bias=True)

    def torch_init(self, node, mod):
        e = node.in_shapes[0][-1]
        lines = _mha_init(f"{mod}.self_attn", e, e, True)
        for lin in ("linear1", "linear2"):
            lines += [f"nn.init.xavier_uniform_({mod}.{lin}.weight)", f"nn.init.zeros_({mod}.{lin}.bias)"]
        for norm in ("norm1", "norm2"):
            lines += [f"nn.init.ones_({mod}.{norm}.weight)", f"nn.init.zeros_({mod}.{norm}.bias)"]
        return lines

    def torch_classes_for(self, node):
        return ("attention_masked", "encoder_masked") if self.masked else ()

    def torch_forward(self, node, mod, xs):
        x = xs[0]
        if self.masked:
            return fn("masked_encoder_layer", Code(mod), Code(x), Code(xs[1]), causal=self.causal)
        if self.causal:  # True = ignore: step i attends steps j <= i
            steps = node.in_shapes[0][0]
            return f"{mod}({x}, src_mask=torch.ones({steps}, {steps}, dtype=torch.bool, device={x}.device).triu(1))"
        return f"{mod}({x})"

    def keras_layer(self, node, layout):
        flags = {k: True for k in ("causal", "masked") if getattr(self, k)}
        return fn("TransformerEncoder", node.in_shapes[0][-1], self.heads, self.ff, dropout=self.dropout,
                  norm_first=self.norm == "pre", activation=self.ff_activation, eps=self.eps, **flags, name=node.name)

    def keras_call(self, node, layer, xs, fresh):
        return f"{layer}({', '.join(xs)})"

    # The Keras layer's weights: its attention's (as `attention`), then linear1, linear2, norm1, norm2.
    def to_keras(self, node, w):
        return mha_to_keras(w, "self_attn.", self.heads, True) + [
            w["linear1.weight"].T, w["linear1.bias"], w["linear2.weight"].T, w["linear2.bias"],
            w["norm1.weight"], w["norm1.bias"], w["norm2.weight"], w["norm2.bias"]]

    def from_keras(self, node, ws):
        rest = ws[8:]
        return mha_from_keras(ws[:8], "self_attn.", True) | {
            "linear1.weight": rest[0].T, "linear1.bias": rest[1], "linear2.weight": rest[2].T, "linear2.bias": rest[3],
            "norm1.weight": rest[4], "norm1.bias": rest[5], "norm2.weight": rest[6], "norm2.bias": rest[7]}
