"""Drawing one layer call for the shape that reaches it: every layer of dlspec's registry, each where
its input shape allows, with random valid arguments (checked by the calculator in shapes.py).

Layers left out of the generator, and why:
- `embedding`: only on the tokens input (drawn by `specs`), as ids are integers.
- `cross_attention`, `graph_conv`, `scale`, `sample_normal`, `kl_normal` and the merges take two
  inputs: bodies.py draws them as moves (they need a second tensor).
- Block-library calls: bodies.py too (`use resnet` and the others)."""

from __future__ import annotations

import math

from hypothesis import strategies as st

from .parts import Call, Invalid, Word, divisors, int_or_tuple, maybe, mk, number
from .shapes import ACTIVATIONS, keras_bias_ok, out_shape

MAX_WIDTH, MAX_SIZE = 16, 12
# Spatial sizes that upsampling, zero padding and transposed convolutions may grow to.
MAX_GROWN = 16
INITS = ["xavier_uniform", "xavier_normal", "he_uniform", "he_normal", "orthogonal", "zeros", "ones"]


def activation(draw, rank: int) -> Call:
    name = draw(st.sampled_from(ACTIVATIONS))
    if name == "leaky_relu":
        return mk(draw, name, ("slope",), slope=maybe(draw, number(draw, [0.01, 0.1, 0.2, 0.3]), 0.01))
    if name == "elu":
        return mk(draw, name, ("alpha",), alpha=maybe(draw, number(draw, [0.5, 1.0, 1.5]), 1.0))
    if name == "gelu":
        return mk(draw, name, approximate=draw(st.sampled_from([None, False, True])))
    if name == "softmax":
        return mk(draw, name, axis=draw(st.none() | st.integers(-rank, rank - 1)))
    return mk(draw, name)


def act_arg(draw, rank: int):
    """An `activation=` value (or None): a word, a string, or a call."""
    if draw(st.booleans()):
        return None
    a = activation(draw, rank)
    return a if a.fields else draw(st.sampled_from([Word(a.name), a.name, a]))


def init_arg(draw):
    """An `init=` value (or None)."""
    if draw(st.integers(0, 3)):
        return None
    kind = draw(st.sampled_from([*INITS, "uniform", "normal"]))
    if kind == "uniform":
        return mk(draw, kind, ("low", "high"), low=maybe(draw, number(draw, [-0.2, -0.05]), -0.05),
                  high=number(draw, [0.05, 0.3]))
    if kind == "normal":
        return mk(draw, kind, ("mean", "std"), mean=maybe(draw, 0.0, 0.0), std=number(draw, [0.02, 0.5]))
    return draw(st.sampled_from([Word(kind), mk(draw, kind)]))


def bias_arg(draw):
    return draw(st.sampled_from([None, True, False]))


def _fits(name: str, args: dict, s: tuple, most: int = MAX_SIZE) -> bool:
    try:
        return max(out_shape(name, args, [s])[1:]) <= most
    except Invalid:
        return False


def conv(draw, s, keep=False, filters=None) -> Call:
    """conv1d/2d/3d, depthwise_conv1d/2d or separable_conv1d/2d. `keep`: stride 1 and `same`, so
    only the channels may change (to `filters`)."""
    dims, channels = len(s) - 1, s[0]
    filters = filters or (channels if keep else None)
    kinds = ["conv", "conv"] + (["separable"] if dims < 3 else []) + \
        (["depthwise"] if dims < 3 and (not filters or filters % channels == 0) else [])
    kind = draw(st.sampled_from(kinds))
    if kind == "depthwise":
        multiplier = filters // channels if filters else draw(st.integers(1, max(1, MAX_WIDTH // channels)))
        groups, filters = channels, channels * multiplier
    elif kind == "separable":
        multiplier, groups = draw(st.integers(1, 3)), 1
        filters = filters or draw(st.integers(1, MAX_WIDTH))
    else:
        groups = draw(st.sampled_from([g for g in divisors(channels) if not filters or filters % g == 0]))
        filters = filters or groups * draw(st.integers(1, max(1, (MAX_WIDTH if dims < 3 else 8) // groups)))
    kernel = tuple(draw(st.integers(1, 3 if dims == 3 else 4)) for _ in range(dims))
    if keep:
        stride = (1,) * dims
    elif kind == "conv" or dims == 1:
        stride = tuple(draw(st.sampled_from([1, 1, 2])) for _ in range(dims))
    else:  # TensorFlow's depthwise kernel takes one stride for both axes
        stride = (draw(st.sampled_from([1, 1, 2])),) * dims
    dilation = (1,) * dims if max(stride) > 1 else tuple(draw(st.sampled_from([1, 1, 2])) for _ in range(dims))
    padding = "same" if keep else draw(st.sampled_from(["same", "valid", "int", "tuple"]))
    if padding == "int":
        padding = draw(st.integers(0, 2))
    elif padding == "tuple":
        padding = tuple(draw(st.integers(0, 2)) for _ in range(dims))
    name = f"{'conv' if kind == 'conv' else kind + '_conv'}{dims}d"
    args = {"filters": filters, "kernel": kernel, "stride": stride, "dilation": dilation, "groups": groups,
            "multiplier": filters // channels if kind == "depthwise" else 1}
    padding = padding if _fits(name, args | {"padding": padding}, s) else "same"
    common = {"kernel": int_or_tuple(draw, kernel), "stride": maybe(draw, int_or_tuple(draw, stride), 1),
              "dilation": maybe(draw, int_or_tuple(draw, dilation), 1),
              "padding": maybe(draw, Word(padding) if isinstance(padding, str) else padding, "valid"),
              "bias": bias_arg(draw), "activation": act_arg(draw, len(s)), "init": init_arg(draw)}
    if kind == "conv":
        return mk(draw, name, ("filters", "kernel"), filters=filters, groups=maybe(draw, groups, 1), **common)
    if kind == "depthwise":
        return mk(draw, name, ("kernel",), multiplier=maybe(draw, args["multiplier"], 1), **common)
    return mk(draw, name, ("filters", "kernel"), filters=filters, multiplier=maybe(draw, multiplier, 1), **common)


def transpose(draw, s, keep=False) -> Call:
    """conv_transpose1d/2d: padding valid, same, a number (with output_padding) or output_size."""
    dims = len(s) - 1
    name = f"conv_transpose{dims}d"
    filters = s[0] if keep else draw(st.integers(1, MAX_WIDTH))
    kernel = tuple(draw(st.integers(1, 4)) for _ in range(dims))
    stride = (1,) * dims if keep else tuple(draw(st.integers(1, 3)) for _ in range(dims))
    form = "same" if keep else draw(st.sampled_from(["valid", "same", "number", "number", "output_size"]))
    args: dict = {"filters": filters, "kernel": kernel, "stride": stride}
    if form in ("number", "output_size"):
        # padding small enough to leave an output: (n − 1)·s + k − 2p ≥ 1
        pads = tuple(draw(st.integers(0, max(0, ((n - 1) * ss + k - 1) // 2))) for n, ss, k in zip(s[1:], stride, kernel))
        extra = tuple(draw(st.integers(0, ss - 1)) for ss in stride)
        args["padding"] = pads
        if form == "number":
            args["output_padding"] = extra
        else:
            args["output_size"] = tuple((n - 1) * ss - 2 * p + k + e for n, ss, p, k, e in zip(s[1:], stride, pads, kernel, extra))
    else:
        args["padding"] = form
    if not _fits(name, args, s, MAX_GROWN):
        args = {"filters": filters, "kernel": kernel, "stride": (1,) * dims, "padding": "same"}
        stride, form = args["stride"], "same"
    fields = {"filters": filters, "kernel": int_or_tuple(draw, kernel), "stride": maybe(draw, int_or_tuple(draw, stride), 1),
              "padding": maybe(draw, Word(form) if form in ("valid", "same") else int_or_tuple(draw, args["padding"]), "valid"),
              "bias": bias_arg(draw), "activation": act_arg(draw, len(s)), "init": init_arg(draw)}
    if "output_padding" in args:
        fields["output_padding"] = maybe(draw, int_or_tuple(draw, args["output_padding"]), 0)
    if "output_size" in args:
        fields["output_size"] = int_or_tuple(draw, args["output_size"])
    return mk(draw, name, ("filters", "kernel"), **fields)


def _sides(draw, dims: int, most: tuple[int, ...]):
    """zeropad/crop amounts, at most `most[i]` on each side of axis i, in one of the written forms."""
    forms = ["number", "sides"] + (["axes"] if dims == 2 else [])
    form = draw(st.sampled_from(forms))
    if form == "number":
        return draw(st.integers(0, min(most)))
    if form == "axes":
        return tuple(draw(st.integers(0, m)) for m in most)
    pairs = tuple((draw(st.integers(0, m)), draw(st.integers(0, m))) for m in most)
    return pairs[0] if dims == 1 else pairs


def resize(draw, s) -> Call:
    """upsample1d/2d, zeropad1d/2d or crop1d/2d."""
    dims = len(s) - 1
    kind = draw(st.sampled_from(["upsample", "zeropad", "crop"]))
    if kind == "upsample" and math.prod(s[1:]) > 1:  # (not of one cell: a constant map, see shapes.py)
        scale = tuple(draw(st.integers(1, max(1, min(3, MAX_GROWN // n)))) for n in s[1:])
        mode = draw(st.sampled_from(["nearest", "linear" if dims == 1 else "bilinear"]))
        return mk(draw, f"upsample{dims}d", ("scale",), scale=int_or_tuple(draw, scale), mode=maybe(draw, Word(mode), "nearest"))
    if kind == "crop" and max(s[1:]) > 1:
        return mk(draw, f"crop{dims}d", ("cropping",), cropping=_sides(draw, dims, tuple((n - 1) // 2 for n in s[1:])))
    most = tuple(max(0, min(2, (MAX_GROWN - n) // 2)) for n in s[1:])
    return mk(draw, f"zeropad{dims}d", ("padding",), padding=_sides(draw, dims, most))


def pool(draw, s) -> Call:
    """max/avg pools (1-D to 3-D, avg pools maybe padded) and adaptive pools (1-D, 2-D)."""
    dims = len(s) - 1
    if dims < 3 and draw(st.integers(0, 2)) == 0:
        grow = math.prod(s[1:]) > 1  # (not from one cell: a constant map, see shapes.py)
        size = tuple(draw(st.integers(1, min(MAX_SIZE, n + 2) if grow else 1)) for n in s[1:])
        return mk(draw, f"adaptive_{draw(st.sampled_from(['avg', 'max']))}pool{dims}d", ("output_size",),
                  output_size=int_or_tuple(draw, size))
    op = draw(st.sampled_from(["max", "avg"]))
    kernel = tuple(draw(st.integers(1, min(3, n))) for n in s[1:])
    stride = tuple(draw(st.integers(1, 3)) for _ in range(dims)) if draw(st.booleans()) else None
    padding = None
    if op == "avg" and draw(st.booleans()):
        padding = maybe(draw, int_or_tuple(draw, tuple(draw(st.integers(0, k // 2)) for k in kernel)), 0)
    return mk(draw, f"{op}pool{dims}d", ("kernel", "stride"), kernel=int_or_tuple(draw, kernel),
              stride=stride and int_or_tuple(draw, stride), padding=padding)


def dense(draw, s, keep=False, units=None) -> Call:
    units = units or (s[-1] if keep else draw(st.integers(1, MAX_WIDTH)))
    return mk(draw, "dense", ("units",), units=units, bias=bias_arg(draw), activation=act_arg(draw, len(s)),
              init=init_arg(draw))


def recurrent(draw, s, keep=False, state=None) -> Call:
    """rnn/lstm/gru, maybe bidirectional and stacked (with dropout between the layers), maybe giving
    its final states (`return_state=true`); `state`: the kind and the fields that an encoder giving
    its state, or a decoder reading one, must have (see bodies.Body.state)."""
    both = draw(st.integers(0, 3)) == 0 and (not keep or s[-1] % 2 == 0)
    if keep:
        units, seq = (s[-1] // 2 if both else s[-1]), True
    else:
        units, seq = draw(st.integers(1, 8 if both else 12)), draw(st.booleans())
    kind, fixed = state or (draw(st.sampled_from(["rnn", "lstm", "gru"])), {})
    layers = (fixed["layers"] or 1) if "layers" in fixed else draw(st.sampled_from([1, 1, 1, 2, 3]))
    rate = draw(st.sampled_from([None, 0.0, 0.2])) if layers > 1 else None  # (training only)
    final = not keep and not seq and draw(st.integers(0, 3)) == 0
    fields = {"units": units, "return_sequences": maybe(draw, seq, False), "bidirectional": maybe(draw, both, False),
              "layers": maybe(draw, layers, 1), "dropout": rate, "return_state": maybe(draw, final, False),
              "init": init_arg(draw)} | fixed
    return mk(draw, kind, ("units",), **fields)


def sequence(draw, s) -> Call:
    """attention, transformer_encoder, positional_embedding or sinusoidal_embedding on [steps, features]."""
    steps, width = s
    kind = draw(st.sampled_from(["attention", "attention", "transformer_encoder", "positional_embedding",
                                 "sinusoidal_embedding"] if width > 1 else ["attention", "positional_embedding"]))
    if kind == "positional_embedding":
        return mk(draw, kind, max_len=draw(st.sampled_from([None, steps, steps + draw(st.integers(1, 5))])))
    if kind == "sinusoidal_embedding":
        return mk(draw, kind)
    fit = [h for h in divisors(width) if keras_bias_ok(s, h)]
    if not fit:  # [1, 1]
        return mk(draw, "positional_embedding")
    heads = draw(st.sampled_from(fit))
    rate = maybe(draw, number(draw, [0.0, 0.1]), 0.0 if kind == "attention" else 0.1)
    if kind == "attention":
        return mk(draw, kind, ("heads",), heads=heads, dropout=rate, bias=bias_arg(draw),
                  causal=draw(st.sampled_from([None, False, True])))
    return mk(draw, kind, ("heads", "ff"), heads=heads, ff=draw(st.integers(1, MAX_WIDTH)), dropout=rate,
              norm=draw(st.sampled_from([None, Word("post"), Word("pre"), "pre"])),
              ff_activation=draw(st.sampled_from([None, Word("relu"), Word("gelu"), "gelu"])),
              eps=maybe(draw, number(draw, [1e-5, 1e-3]), 1e-5), causal=draw(st.sampled_from([None, False, True])))


def reshape(draw, s) -> Call:
    n = math.prod(s)
    options = [(n,)] + [(a, n // a) for a in divisors(n) if a <= MAX_WIDTH and n // a <= 64] + \
              [(a, b, n // (a * b)) for a in divisors(n) if a <= MAX_WIDTH
               for b in divisors(n // a) if b <= MAX_SIZE and n // (a * b) <= MAX_SIZE]
    shape = draw(st.sampled_from(options))
    if draw(st.booleans()):
        i = draw(st.integers(0, len(shape) - 1))
        shape = (*shape[:i], -1, *shape[i + 1:])
    return mk(draw, "reshape", ("shape",), shape=shape)


def permute(draw, s) -> Call:
    dims = draw(st.permutations(range(len(s))).filter(lambda p: p != list(range(len(s)))))
    return mk(draw, "permute", ("dims",), dims=tuple(dims))


def norm(draw, s) -> Call:
    """batchnorm, layernorm (over trailing axes), groupnorm or instancenorm; never over groups of
    one value (see shapes.py)."""
    eps = maybe(draw, number(draw, [1e-5, 1e-3, 0.1]), 1e-5)
    r, positions = len(s), math.prod(s[1:])
    groups = [g for g in divisors(s[0]) if s[0] // g * positions >= 2]
    axes = [j for j in range(1, r + 1) if math.prod(s[r - j:]) >= 2]
    kinds = ["batchnorm", "batchnorm"] + ["layernorm"] * bool(axes) + ["groupnorm"] * bool(groups) + \
        ["instancenorm"] * (r >= 2 and positions >= 2)
    kind = draw(st.sampled_from(kinds))
    if kind == "batchnorm":
        return mk(draw, "batchnorm", eps=eps, momentum=maybe(draw, number(draw, [0.1, 0.01, 0.5]), 0.1))
    if kind == "groupnorm":
        return mk(draw, kind, ("groups",), groups=draw(st.sampled_from(groups)), eps=eps)
    if kind == "instancenorm":
        return mk(draw, kind, eps=eps, affine=draw(st.sampled_from([None, True, False])))
    j = draw(st.sampled_from(axes))
    written = tuple(range(-j, 0)) if draw(st.booleans()) else tuple(range(r - j, r))
    value = written if len(written) > 1 or draw(st.booleans()) else written[0]
    return mk(draw, "layernorm", eps=eps, axes=None if written == (-1,) and draw(st.booleans()) else value)


def simple(draw, s) -> Call:
    """A layer that keeps any shape: an activation, a norm or dropout."""
    kind = draw(st.sampled_from(["act", "act", "norm", "dropout"]))
    if kind == "act":
        return activation(draw, len(s))
    if kind == "dropout":
        return mk(draw, "dropout", ("rate",), rate=number(draw, [0.0, 0.1, 0.5]))
    return norm(draw, s)


# What may follow a shape of each rank (repeats weigh the choice), and which of them can keep it.
KINDS_BY_RANK = {
    1: ["dense", "simple", "dense", "simple", "simple", "reshape"],
    2: ["pool", "resize", "sequence", "rnn", "conv", "transpose", "permute", "simple", "pool", "resize", "sequence",
        "rnn", "conv", "dense", "simple", "global", "flatten", "reshape"],
    3: ["pool", "resize", "conv", "transpose", "permute", "simple", "pool", "resize", "conv", "global", "flatten",
        "reshape", "simple", "conv"],
    4: ["pool", "conv", "simple", "permute", "pool", "conv", "simple", "global", "flatten", "reshape"],
}
KEEPING = ("conv", "dense", "rnn", "simple", "sequence", "transpose")


def layer(draw, s, keep=False) -> Call:
    """Any single-input layer that fits shape `s` (with `keep`, one that also keeps it)."""
    kind = draw(st.sampled_from([k for k in KINDS_BY_RANK[len(s)] if not keep or k in KEEPING]))
    if kind in ("conv", "dense", "rnn", "transpose"):
        return {"conv": conv, "dense": dense, "rnn": recurrent, "transpose": transpose}[kind](draw, s, keep)
    if kind == "global":
        return mk(draw, draw(st.sampled_from(["global_avgpool", "global_maxpool"])))
    if kind == "flatten":
        return mk(draw, "flatten")
    return {"simple": simple, "pool": pool, "reshape": reshape, "resize": resize, "sequence": sequence,
            "permute": permute}[kind](draw, s)

