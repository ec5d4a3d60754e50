"""The shape calculator: each layer's output shape from its arguments and input shapes, written from
the language reference (docs/language.md, "## Shapes" and the layer reference), independent of
dlspec's checker. `Invalid` when the layer does not fit."""

from __future__ import annotations

import math
import re

from .parts import BlockCall, Call, Flow, Input, Invalid, Output, resolve

ACTIVATIONS = ["relu", "sigmoid", "tanh", "silu", "leaky_relu", "elu", "gelu", "softmax",
               "relu6", "hard_sigmoid", "hard_swish", "mish", "log_softmax"]
MERGES = ("add", "subtract", "multiply", "average", "maximum")
# Layers over spatial axes, named <op><dims>d.
SPATIAL = re.compile(r"(conv|depthwise_conv|separable_conv|conv_transpose|upsample|zeropad|crop|maxpool|avgpool"
                     r"|adaptive_avgpool|adaptive_maxpool)([123])d$")
# Shapes stay small so that examples stay fast; dlspec itself allows any size.
MAX_VALUES, MAX_SPATIAL = 4096, 64


KERAS_BIAS_BUG = "attention with one feature per head over as many steps as heads (refused by dlspec: a Keras bug)"


def keras_bias_ok(s: tuple, heads: int, width: int | None = None) -> bool:
    """False where dlspec refuses attention because Keras computes it wrong (found by these
    properties): with one feature per head, Keras's TensorFlow `ops.add` takes the projections'
    [heads, 1] bias for a bias of axis 1 (the steps) when the steps number the heads, as
    `tf.nn.bias_add(data_format="NCHW")`. `s` is the projected tensor's [steps, features]; `width`
    the query's, which sets the head width."""
    return not ((width or s[1]) == heads and s[0] == heads and heads > 1)


def _n(v, dims: int) -> tuple[int, ...]:
    return (v,) * dims if isinstance(v, int) else tuple(v)


def _need(ok: bool, why: str) -> None:
    if not ok:
        raise Invalid(why)


def sides(v, dims: int) -> tuple[tuple[int, int], ...]:
    """zeropad/crop amounts as (lo, hi) per axis: a number, (lo, hi) in 1-D, (h, w) or ((t, b), (l, r)) in 2-D."""
    if isinstance(v, int):
        return ((v, v),) * dims
    if dims == 1:
        return (tuple(v),)
    return tuple(x if isinstance(x, tuple) else (x, x) for x in v)


def _conv(op: str, dims: int, a: dict, s: tuple) -> tuple[int, ...]:
    k = _n(a["kernel"], dims)
    stride, dil = _n(a.get("stride", 1), dims), _n(a.get("dilation", 1), dims)
    filters, groups = a.get("filters"), a.get("groups", 1)
    if op == "depthwise_conv":
        filters, groups = s[0] * a.get("multiplier", 1), s[0]
    _need(s[0] % groups == 0 and filters % groups == 0, "groups divide channels and filters")
    _need(max(stride) == 1 or max(dil) == 1, "stride and dilation both above 1")
    _need(op == "conv" or dims == 1 or len(set(stride)) == 1, "a depthwise kernel takes one stride")
    pad = a.get("padding", "valid")
    pads = [pad] * dims if isinstance(pad, str) else _n(pad, dims)
    out = tuple(-(-n // ss) if p == "same" else (n + 2 * (0 if p == "valid" else p) - dd * (kk - 1) - 1) // ss + 1
                for n, kk, ss, dd, p in zip(s[1:], k, stride, dil, pads))
    _need(min(out) >= 1, "conv leaves no output")
    return (filters, *out)


def _transpose(dims: int, a: dict, s: tuple) -> tuple[int, ...]:
    """PyTorch's (n − 1)·s − 2p + k + output_padding; `same`: n·s."""
    k, stride = _n(a["kernel"], dims), _n(a.get("stride", 1), dims)
    op = _n(a.get("output_padding", 0), dims)
    _need(all(0 <= o < ss for o, ss in zip(op, stride)), "output_padding below the stride")
    pad = a.get("padding", "valid")
    if pad == "same":
        _need(not any(op) and "output_size" not in a, "same fixes the size")
        return (a["filters"], *(n * ss for n, ss in zip(s[1:], stride)))
    p = _n(0 if pad == "valid" else pad, dims)
    out = tuple((n - 1) * ss - 2 * pp + kk + o for n, ss, pp, kk, o in zip(s[1:], stride, p, k, op))
    if "output_size" in a:
        want = _n(a["output_size"], dims)
        _need(not any(op) and all(o <= w < o + ss for o, w, ss in zip(out, want, stride)), "output_size out of reach")
        out = want
    _need(min(out) >= 1, "transposed conv leaves no output")
    return (a["filters"], *out)


def _spatial(name: str, a: dict, s: tuple) -> tuple[int, ...]:
    m = SPATIAL.match(name)
    _need(m is not None, f"unknown layer {name}")
    op, dims = m[1], int(m[2])
    _need(len(s) == dims + 1, f"{name} rank")
    if op in ("conv", "depthwise_conv", "separable_conv"):
        return _conv(op, dims, a, s)
    if op == "conv_transpose":
        return _transpose(dims, a, s)
    if op in ("upsample", "adaptive_avgpool", "adaptive_maxpool"):
        # Beyond dlspec's rules: a map of one cell grown is constant, which a norm would turn to noise.
        _need(math.prod(s[1:]) > 1 or op != "upsample" and set(_n(a["output_size"], dims)) == {1}, "grows one cell")
    if op == "upsample":
        return (s[0], *(n * f for n, f in zip(s[1:], _n(a["scale"], dims))))
    if op in ("zeropad", "crop"):
        sign = 1 if op == "zeropad" else -1
        out = tuple(n + sign * (lo + hi) for n, (lo, hi) in zip(s[1:], sides(a["padding" if sign > 0 else "cropping"], dims)))
        _need(min(out) >= 1, "crop leaves nothing")
        return (s[0], *out)
    if op.startswith("adaptive"):
        return (s[0], *_n(a["output_size"], dims))
    k = _n(a["kernel"], dims)
    stride, pad = _n(a.get("stride") or a["kernel"], dims), _n(a.get("padding", 0), dims)
    _need(op == "avgpool" or not any(pad), "max pools take no padding")
    _need(all(2 * p <= kk for p, kk in zip(pad, k)), "pool padding at most half the window")
    out = tuple((n + 2 * p - kk) // ss + 1 for n, kk, ss, p in zip(s[1:], k, stride, pad))
    _need(min(out) >= 1, "pool window larger than input")
    return (s[0], *out)


def _merge(name: str, a: dict, shapes: list) -> tuple[int, ...]:
    s, r = shapes[0], len(shapes[0])
    _need(len(shapes) >= 2, "a merge takes 2+ inputs")
    if name == "concat":
        _need(all(len(t) == r for t in shapes), "concat of one rank")
        ax = a.get("axis", 0)
        _need(-r <= ax < r, "concat axis")
        ax %= r
        _need(all(t[:ax] + t[ax + 1:] == s[:ax] + s[ax + 1:] for t in shapes), "concat shapes")
        return (*s[:ax], sum(t[ax] for t in shapes), *s[ax + 1:])
    if name in ("scale", "graph_conv", "cross_attention"):
        _need(len(shapes) == 2, f"{name} takes two inputs")
        x, y = shapes
        if name == "scale":
            _need(len(x) >= 2 and y == x[:1], "scale takes [C, ...] and [C]")
            return x
        _need(len(x) == len(y) == 2, f"{name} takes two [rows, features]")
        if name == "graph_conv":
            _need(y == (x[0], x[0]), "graph_conv takes [N, F] and [N, N]")
            return (x[0], a["units"])
        _need(x[1] % a["heads"] == 0, "heads divide the width")
        _need(keras_bias_ok(x, a["heads"]) and keras_bias_ok(y, a["heads"], x[1]), KERAS_BIAS_BUG)
        return x
    _need(all(t == s for t in shapes), f"{name} needs equal shapes")
    _need(len(shapes) == 2 or name in ("add", "multiply", "average", "maximum"), f"{name} takes two inputs")
    return (1,) if name == "kl_normal" else s


def _state(name: str, a: dict) -> tuple[int, int]:
    """A recurrent layer's state: per layer and direction h, and c for an LSTM; `units` wide."""
    return a.get("layers", 1) * (2 if a.get("bidirectional") else 1) * (2 if name == "lstm" else 1), a["units"]


def out_shape(name: str, a: dict, shapes: list[tuple[int, ...]]) -> tuple[int, ...]:
    """The output shape of layer `name` with argument values `a`, or `Invalid`."""
    if name in (*MERGES, "concat", "scale", "graph_conv", "cross_attention", "sample_normal", "kl_normal"):
        return _merge(name, a, shapes)
    if name in ("rnn", "lstm", "gru") and a.get("initial_state"):
        _need(len(shapes) == 2, "a recurrent layer with initial_state=true takes (x, state)")
        _need(tuple(shapes[1]) == _state(name, a), "the initial state is [rows, units]")
        shapes = shapes[:1]
    _need(len(shapes) == 1, "one input")
    s, r = shapes[0], len(shapes[0])
    act = a.get("activation")
    if isinstance(act, Call) and act.name == "softmax":
        out = out_shape(name, {k: v for k, v in a.items() if k != "activation"}, shapes)
        out_shape("softmax", act.args({}), [out])
        return out
    if name in ACTIVATIONS or name == "dropout":
        _need(-r <= a.get("axis", -1) < r, "softmax axis")
        return s
    # Beyond dlspec's rules: no normalization over groups of one value, where x − mean(x) is
    # rounding noise divided by sqrt(eps) and float32 outputs are noise in either framework (found
    # by the float32 smoke test); likewise no map of one cell grown by upsampling.
    if name == "layernorm":
        given = _n(a.get("axes", -1), 1)
        axes = sorted({ax % r for ax in given if -r <= ax < r})
        _need(len(axes) == len(given) and axes == list(range(r - len(axes), r)), "trailing axes")
        _need(math.prod(s[r - len(axes):]) >= 2, "normalizes more than one value")
        return s
    if name == "groupnorm":
        _need(s[0] % a["groups"] == 0, "groups divide the channels")
        _need(s[0] // a["groups"] * math.prod(s[1:]) >= 2, "normalizes more than one value")
        return s
    if name == "instancenorm":
        _need(r >= 2 and math.prod(s[1:]) >= 2, "instancenorm normalizes more than one position")
        return s
    if name == "batchnorm":
        _need(r in (1, 2, 3, 4), "batchnorm rank")
        return s
    if name == "dense":
        _need(r in (1, 2), "dense rank")
        return (*s[:-1], a["units"])
    if name == "embedding":
        _need(r == 1, "embedding rank")
        return (*s, a["dim"])
    if name in ("rnn", "lstm", "gru"):
        _need(r == 2, "recurrent rank")
        if a.get("return_state"):
            _need(not a.get("return_sequences"), "return_state excludes return_sequences")
            return _state(name, a)
        width = a["units"] * (2 if a.get("bidirectional") else 1)
        return (s[0], width) if a.get("return_sequences") else (width,)
    if name in ("attention", "transformer_encoder", "positional_embedding", "sinusoidal_embedding"):
        _need(r == 2, "a sequence [steps, features]")
        _need(s[1] % a.get("heads", 1) == 0, "heads divide the width")
        _need(name != "transformer_encoder" or s[1] >= 2, "its layer norms normalize more than one value")
        _need("heads" not in a or keras_bias_ok(s, a["heads"]), KERAS_BIAS_BUG)
        _need(a.get("max_len") is None or a["max_len"] >= s[0], "max_len covers the steps")
        return s
    if name == "permute":
        _need(sorted(a["dims"]) == list(range(r)), "permute lists every axis once")
        return tuple(s[d] for d in a["dims"])
    if name == "flatten":
        return (math.prod(s),)
    if name == "reshape":
        known = math.prod(d for d in a["shape"] if d != -1)
        out = tuple(math.prod(s) // known if d == -1 else d for d in a["shape"])
        _need(math.prod(out) == math.prod(s), "reshape size")
        return out
    if name.startswith("global_"):
        _need(r in (2, 3, 4), "global pool rank")
        return s[:1]
    return _spatial(name, a, s)


def apply(c: Call | BlockCall, shapes: list, env: dict) -> tuple[int, ...]:
    if isinstance(c, BlockCall):
        args = {k: resolve(v, env) for k, v in c.env().items()}
        # a library block's shape rule is written beside its drawer
        out = c.block.rule(args, shapes) if c.block.rule else run(c.block.body, shapes, args)
    else:
        out = out_shape(c.name, c.args(env), shapes)
    _need(math.prod(out) <= MAX_VALUES and (len(out) == 1 or max(out[1:]) <= MAX_SPATIAL), "too large")
    return out


def run(body: list, shapes: list, env: dict) -> tuple[int, ...]:
    """The output shape of a block body (or `Invalid`), as dlspec's graph builder runs it."""
    scope = dict(zip([s.name for s in body if isinstance(s, Input)], shapes))
    cur, out = shapes, None
    for s in body:
        if isinstance(s, Output):
            out = scope[s.name]
        elif isinstance(s, Flow):
            xs = [scope[n] for n in s.sources] if s.sources else cur
            for times, c in s.steps:
                for _ in range(resolve(times, env) or 1):
                    xs = [apply(c, xs, env)]
            cur = xs
            if s.target:
                scope[s.target] = xs[0]
    return out or cur[0]
