"""Hypothesis strategies for dlspec text.

`specs(kind)` draws VALID specs from the v1 layers. Each layer's arguments are drawn for the shape
that reaches it; shapes are tracked by a small calculator written from the language reference
(independent of dlspec's checker), so a spec is valid by construction. Specs have chains, residual
`add`s, `concat`s, blocks with parameters, `repeat`, constants, `activation=` and `init=`.

`ir_texts()` draws arbitrary text the grammar accepts, meaningful or not, for the parser/printer
round trip: odd identifiers, ints, floats in every spelling, escaped strings, nested calls,
tuples, lists, line joins and comments.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

from hypothesis import strategies as st

MAX_WIDTH, MAX_SIZE = 16, 12
KINDS = ("image", "signal", "sequence", "tokens", "vector")
KEYWORDS = {"true", "false", "const", "block", "model", "train", "input", "output", "repeat", "use"}
# Names that collide with what generated code defines or imports; spec names must not break it.
TRICKY = ["torch", "nn", "F", "self", "layers", "ops", "keras", "np", "math", "SEED", "forward", "training", "eval",
          "to", "double", "parameters", "reset_parameters", "_h", "__h", "x_cl", "x_cf", "h_cl", "h_pad", "conv2d", "relu",
          "dense", "Input", "lambda", "None", "print", "build_model"]
ACTIVATIONS = ["relu", "sigmoid", "tanh", "silu", "leaky_relu", "elu", "gelu", "softmax"]
INITS = ["xavier_uniform", "xavier_normal", "he_uniform", "he_normal", "orthogonal", "zeros", "ones"]


class Invalid(Exception):
    """A layer or block does not fit the shape that reaches it."""


# --- what a drawn spec is made of ---------------------------------------------------------------

@dataclass(frozen=True)
class Sym:
    """Text written in place of a value: a constant, a block parameter, or a number's spelling."""
    text: str
    value: Any


@dataclass(frozen=True)
class Word:
    """A bare word such as `same` or `relu`."""
    text: str


@dataclass(frozen=True)
class Call:
    """A layer, activation or initializer call. The first `npos` fields are written positionally."""
    name: str
    fields: tuple[tuple[str, Any], ...] = ()
    npos: int = 0

    def args(self, env: dict) -> dict:
        return {k: resolve(v, env) for k, v in self.fields}

    def sub(self, names: set[str], value: Any, sym: Sym) -> Call:
        fields = tuple((k, sym if k in names and type(v) is type(value) and v == value else v) for k, v in self.fields)
        return Call(self.name, fields, self.npos)


@dataclass(eq=False)
class Block:
    name: str
    params: list[tuple[str, Any]]  # (name, default or None)
    body: list
    values: dict[str, Any]  # the parameters' values at the call it was drawn for


@dataclass(frozen=True)
class BlockCall:
    block: Block
    args: tuple[tuple[str, Any, bool], ...]  # (parameter, value, written positionally)

    def env(self) -> dict:
        return {p: d for p, d in self.block.params if d is not None} | {p: v for p, v, _ in self.args}


@dataclass
class Flow:
    sources: tuple[str, ...]  # () continues from the previous statement
    steps: list[tuple[Any, Call | BlockCall]]  # (repeat count or None, call)
    target: str | None = None


@dataclass(frozen=True)
class Input:
    name: str
    dims: tuple | None = None
    dtype: str = ""


@dataclass(frozen=True)
class Output:
    name: str


def resolve(v: Any, env: dict) -> Any:
    if isinstance(v, Sym):
        return resolve(env[v.text], env) if v.text in env else resolve(v.value, env)
    if isinstance(v, tuple):
        return tuple(resolve(x, env) for x in v)
    return v.text if isinstance(v, Word) else v


def text(v: Any) -> str:
    if isinstance(v, Sym | Word):
        return v.text
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int | float):
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, tuple):
        return "(" + ", ".join(map(text, v)) + ("," if len(v) == 1 else "") + ")"
    if isinstance(v, Call):
        parts = [text(x) for _, x in v.fields[:v.npos]] + [f"{k}={text(x)}" for k, x in v.fields[v.npos:]]
        return f"{v.name}({', '.join(parts)})"
    if isinstance(v, BlockCall):
        parts = [text(x) for _, x, pos in v.args if pos] + [f"{p}={text(x)}" for p, x, pos in v.args if not pos]
        return f"{v.block.name}({', '.join(parts)})"
    raise TypeError(v)


# --- the shape calculator -----------------------------------------------------------------------

def _n(v, dims: int) -> tuple[int, ...]:
    return (v,) * dims if isinstance(v, int) else tuple(v)


def _need(ok: bool, why: str) -> None:
    if not ok:
        raise Invalid(why)


def out_shape(name: str, a: dict, shapes: list[tuple[int, ...]]) -> tuple[int, ...]:
    """The output shape of layer `name` with argument values `a`, or `Invalid`."""
    s, r = shapes[0], len(shapes[0])
    if name in ("add", "concat"):
        _need(len(shapes) >= 2 and all(len(t) == r for t in shapes), "merge needs 2+ inputs of one rank")
        if name == "add":
            _need(all(t == s for t in shapes), "add needs equal shapes")
            return s
        ax = a.get("axis", 0)
        _need(-r <= ax < r, "concat axis")
        ax %= r
        _need(all(t[:ax] + t[ax + 1:] == s[:ax] + s[ax + 1:] for t in shapes), "concat shapes")
        return (*s[:ax], sum(t[ax] for t in shapes), *s[ax + 1:])
    _need(len(shapes) == 1, "one input")
    act = a.get("activation")
    if isinstance(act, Call) and act.name == "softmax":
        out = out_shape(name, {k: v for k, v in a.items() if k != "activation"}, shapes)
        out_shape("softmax", act.args({}), [out])
        return out
    if name in ACTIVATIONS or name == "dropout":
        _need(-r <= a.get("axis", -1) < r, "softmax axis")
        return s
    if name == "layernorm":
        return s
    if name == "batchnorm":
        _need(r in (1, 2, 3), "batchnorm rank")
        return s
    if name == "dense":
        _need(r in (1, 2), "dense rank")
        return (*s[:-1], a["units"])
    if name == "embedding":
        _need(r == 1, "embedding rank")
        return (*s, a["dim"])
    if name in ("rnn", "lstm", "gru"):
        _need(r == 2, "recurrent rank")
        return (s[0], a["units"]) if a.get("return_sequences") else (a["units"],)
    if name == "flatten":
        return (math.prod(s),)
    if name == "reshape":
        known = math.prod(d for d in a["shape"] if d != -1)
        out = tuple(math.prod(s) // known if d == -1 else d for d in a["shape"])
        _need(math.prod(out) == math.prod(s), "reshape size")
        return out
    if name.startswith("global_"):
        _need(r in (2, 3), "global pool rank")
        return s[:1]
    dims = int(name[-2])
    _need(r == dims + 1, f"{name} rank")
    k = _n(a["kernel"], dims)
    if "pool" in name:
        stride = _n(a.get("stride") or a["kernel"], dims)
        out = tuple((n - kk) // ss + 1 for n, kk, ss in zip(s[1:], k, stride))
        _need(min(out) >= 1, "pool window larger than input")
        return (s[0], *out)
    stride, dil, groups = _n(a.get("stride", 1), dims), _n(a.get("dilation", 1), dims), a.get("groups", 1)
    _need(s[0] % groups == 0 and a["filters"] % groups == 0, "groups divide channels and filters")
    _need(max(stride) == 1 or max(dil) == 1, "stride and dilation both above 1")
    pad = a.get("padding", "valid")
    pads = [pad] * dims if isinstance(pad, str) else _n(pad, dims)
    out = tuple(-(-n // ss) if p == "same" else (n + 2 * (0 if p == "valid" else p) - dd * (kk - 1) - 1) // ss + 1
                for n, kk, ss, dd, p in zip(s[1:], k, stride, dil, pads))
    _need(min(out) >= 1, "conv leaves no output")
    return (a["filters"], *out)


def apply(c: Call | BlockCall, shapes: list, env: dict) -> tuple[int, ...]:
    if isinstance(c, BlockCall):
        return run(c.block.body, shapes, {k: resolve(v, env) for k, v in c.env().items()})
    out = out_shape(c.name, c.args(env), shapes)
    _need(max(out) <= 4096 and (len(out) == 1 or max(out[1:]) <= 64), "too large")
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


# --- drawing layers for a shape -----------------------------------------------------------------

def mk(draw, name: str, pos: tuple[str, ...] = (), **fields) -> Call:
    """A call with the given fields (None: left out, the default); a drawn prefix of the `pos`
    fields is written positionally, the rest as keywords in a drawn order."""
    fields = {k: v for k, v in fields.items() if v is not None}
    lead = []
    for k in pos:
        if k not in fields:
            break
        lead.append(k)
    lead = lead[:draw(st.integers(0, len(lead)))]
    rest = draw(st.permutations([k for k in fields if k not in lead]))
    return Call(name, tuple((k, fields[k]) for k in [*lead, *rest]), len(lead))


def maybe(draw, value, default):
    """`value`, or None (left out) half of the time when it equals the default."""
    return None if resolve(value, {}) == default and draw(st.booleans()) else value


def number(draw, choices: list[float]) -> Sym | float:
    """A float from `choices`, sometimes spelled another way (1e-05, 1.000000E-05, 0.00001)."""
    v = draw(st.sampled_from(choices))
    spellings = [t for t in (repr(v), f"{v:e}", f"{v:E}", f"{v:.8f}".rstrip("0")) if float(t) == v and any(c in t for c in ".eE")]
    spelled = draw(st.sampled_from(spellings))
    return v if spelled == repr(v) else Sym(spelled, v)


def int_or_tuple(draw, v: tuple[int, ...]):
    return v[0] if len(set(v)) == 1 and draw(st.booleans()) else v


def divisors(n: int) -> list[int]:
    return [d for d in range(1, n + 1) if n % d == 0]


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


def conv(draw, s, keep=False, filters=None) -> Call:
    """conv1d/conv2d. `keep`: stride 1 and `same`, so only the channels may change (to `filters`)."""
    dims, channels = len(s) - 1, s[0]
    filters = filters or (channels if keep else None)
    groups = draw(st.sampled_from([g for g in divisors(channels) if not filters or filters % g == 0]))
    filters = filters or groups * draw(st.integers(1, MAX_WIDTH // groups))
    kernel = tuple(draw(st.integers(1, 4)) for _ in range(dims))
    stride = (1,) * dims if keep else tuple(draw(st.sampled_from([1, 1, 2])) for _ in range(dims))
    dilation = (1,) * dims if max(stride) > 1 else tuple(draw(st.sampled_from([1, 1, 2])) for _ in range(dims))
    padding = "same" if keep else draw(st.sampled_from(["same", "valid", "int", "tuple"]))
    if padding == "int":
        padding = draw(st.integers(0, 2))
    elif padding == "tuple":
        padding = tuple(draw(st.integers(0, 2)) for _ in range(dims))
    try:
        args = {"filters": filters, "kernel": kernel, "stride": stride, "dilation": dilation, "groups": groups}
        padding = padding if max(out_shape(f"conv{dims}d", args | {"padding": padding}, [s])[1:]) <= MAX_SIZE else "same"
    except Invalid:
        padding = "same"
    return mk(draw, f"conv{dims}d", ("filters", "kernel"), filters=filters, kernel=int_or_tuple(draw, kernel),
              stride=maybe(draw, int_or_tuple(draw, stride), 1), dilation=maybe(draw, int_or_tuple(draw, dilation), 1),
              padding=maybe(draw, Word(padding) if isinstance(padding, str) else padding, "valid"),
              groups=maybe(draw, groups, 1), bias=draw(st.sampled_from([None, True, False])),
              activation=act_arg(draw, len(s)), init=init_arg(draw))


def dense(draw, s, keep=False, units=None) -> Call:
    units = units or (s[-1] if keep else draw(st.integers(1, MAX_WIDTH)))
    return mk(draw, "dense", ("units",), units=units, bias=draw(st.sampled_from([None, True, False])),
              activation=act_arg(draw, len(s)), init=init_arg(draw))


def recurrent(draw, s, keep=False) -> Call:
    units, seq = (s[-1], True) if keep else (draw(st.integers(1, 12)), draw(st.booleans()))
    return mk(draw, draw(st.sampled_from(["rnn", "lstm", "gru"])), ("units",), units=units,
              return_sequences=maybe(draw, seq, False), init=init_arg(draw))


def pool(draw, s) -> Call:
    dims = len(s) - 1
    kernel = tuple(draw(st.integers(1, min(3, n))) for n in s[1:])
    stride = tuple(draw(st.integers(1, 3)) for _ in range(dims)) if draw(st.booleans()) else None
    return mk(draw, f"{draw(st.sampled_from(['max', 'avg']))}pool{dims}d", ("kernel", "stride"),
              kernel=int_or_tuple(draw, kernel), stride=stride and int_or_tuple(draw, stride))


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


def simple(draw, s) -> Call:
    """A layer that keeps any shape: an activation, a norm or dropout."""
    kind = draw(st.sampled_from(["act", "act", "norm", "dropout"]))
    if kind == "act":
        return activation(draw, len(s))
    if kind == "dropout":
        return mk(draw, "dropout", ("rate",), rate=number(draw, [0.0, 0.1, 0.5]))
    eps = maybe(draw, number(draw, [1e-5, 1e-3, 0.1]), 1e-5)
    # Not layernorm over one feature: x - mean(x) is then rounding noise, divided by sqrt(eps), and
    # float32 outputs are noise in either framework (found by the float32 smoke test).
    if (len(s) <= 3 and draw(st.booleans())) or s[-1] == 1:
        return mk(draw, "batchnorm", eps=eps, momentum=maybe(draw, number(draw, [0.1, 0.01, 0.5]), 0.1))
    return mk(draw, "layernorm", eps=eps)


def layer(draw, s, keep=False) -> Call:
    """Any v1 layer that fits shape `s` (with `keep`, one that also keeps it)."""
    kinds = {1: ["dense", "simple", "simple", "reshape"],
             2: ["conv", "conv", "pool", "rnn", "rnn", "dense", "simple", "simple", "global", "flatten", "reshape"],
             3: ["conv", "conv", "conv", "pool", "simple", "simple", "global", "flatten", "reshape"]}[len(s)]
    kind = draw(st.sampled_from([k for k in kinds if not keep or k in ("conv", "dense", "rnn", "simple")]))
    if kind in ("conv", "dense", "rnn"):
        return {"conv": conv, "dense": dense, "rnn": recurrent}[kind](draw, s, keep)
    if kind == "global":
        return mk(draw, draw(st.sampled_from(["global_avgpool", "global_maxpool"])))
    if kind == "flatten":
        return mk(draw, "flatten")
    return {"simple": simple, "pool": pool, "reshape": reshape}[kind](draw, s)


# --- drawing model and block bodies -------------------------------------------------------------

class Names:
    """Fresh names for tensors, blocks, parameters, constants and models, unique in the spec."""

    def __init__(self, draw):
        self.draw, self.used = draw, set(KEYWORDS)

    def fresh(self, pool: list[str], fallback: str) -> str:
        name, n = self.draw(st.sampled_from(pool)), 1
        while name in self.used:
            name, n = f"{fallback}{n}", n + 1
        self.used.add(name)
        return name

    def tensor(self) -> str:
        kind = self.draw(st.integers(0, 5))
        if kind == 0:
            return self.fresh(TRICKY, "t")
        if kind == 1:  # next to a name dlspec or a backend derives: a node's default name, a layout copy
            bases = sorted(self.used - KEYWORDS) + ["conv2d", "conv1d", "dense", "relu", "batchnorm", "maxpool2d"]
            base, suffix = self.draw(st.sampled_from(bases)), self.draw(st.sampled_from(["_cl", "_cf", "_pad", "_2", "_"]))
            return self.fresh([base + suffix], "t")
        return self.fresh(["h", "t", "feat", "skip", "y"], "t")


class Body:
    """The statements of a model or block, drawn move by move, with the shapes of its named tensors."""

    def __init__(self, draw, names: Names, inputs: dict[str, tuple], shape: tuple, blocks: list | None):
        self.draw, self.names, self.blocks = draw, names, blocks
        self.stmts: list = [Input(n) for n in inputs]
        self.shapes = dict(inputs)  # named float tensors, to branch from
        self.cur, self.shape = next(iter(inputs), None), shape  # the current result (None: unnamed)

    def emit(self, sources: tuple[str, ...], steps, shape, named: bool | None = None) -> str | None:
        """Appends a flow, leaving out its source when it continues the current result."""
        if sources == (self.cur,) and (self.cur is None or self.draw(st.booleans())):
            sources = ()
        target = self.names.tensor() if named or (named is None and self.draw(st.booleans())) else None
        self.stmts.append(Flow(sources, steps, target))
        self.cur, self.shape = target, shape
        if target:
            self.shapes[target] = shape
        return target

    def name_current(self) -> str:
        if self.cur is None:
            self.cur = self.stmts[-1].target = self.names.tensor()
            self.shapes[self.cur] = self.shape
        return self.cur

    def steps(self, s, n: int, keep=False) -> tuple[list, tuple]:
        """`n` layers from shape `s` (one may be repeated), and the shape they give."""
        steps = []
        for _ in range(n):
            c = layer(self.draw, s, keep)
            times, s = self.repeated(c, s) if not keep else (None, apply(c, [s], {}))
            steps.append((times, c))
        return steps, s

    def repeated(self, c, s) -> tuple[Any, tuple]:
        """(repeat count or None, output shape) of step `c` on shape `s`."""
        shapes = [apply(c, [s], {})]
        if self.draw(st.integers(0, 3)):
            return None, shapes[0]
        times = self.draw(st.integers(2, 3))
        try:
            for _ in range(times - 1):
                shapes.append(apply(c, shapes[-1:], {}))
        except Invalid:
            return None, shapes[0]
        return times, shapes[-1]

    def move(self) -> None:
        moves = ["extend", "extend", "residual", "concat"] + ["block"] * (self.blocks is not None)
        getattr(self, self.draw(st.sampled_from(moves)))()

    def extend(self) -> None:
        steps, s = self.steps(self.shape, self.draw(st.integers(1, 3)))
        self.emit((self.cur,), steps, s)

    def pick(self) -> str:
        """A named tensor to branch from: the current result (named now if needed) or an earlier one."""
        if not self.shapes or self.draw(st.booleans()):
            return self.name_current()
        return self.draw(st.sampled_from(sorted(self.shapes)))

    def branch(self, a: str, first: Call | None = None) -> str:
        """`a -> ... -> b`: layers that keep the shape, after `first` if given; returns b."""
        s = apply(first, [self.shapes[a]], {}) if first else self.shapes[a]
        steps, s = self.steps(s, self.draw(st.integers(0 if first else 1, 2)), keep=True)
        self.cur = None  # a branch starts from `a`, never continues the previous line
        return self.emit((a,), [(None, first)] * bool(first) + steps, s, named=True)

    def residual(self) -> None:
        a = self.pick()
        ins = [a] + [self.branch(a) for _ in range(self.draw(st.integers(1, 2)))]
        steps, s = self.steps(self.shapes[a], self.draw(st.integers(0, 1)), keep=True)
        self.emit(tuple(self.draw(st.permutations(ins))), [(None, mk(self.draw, "add"))] + steps, s)

    def concat(self) -> None:
        a = self.pick()
        s = self.shapes[a]
        room = {0: MAX_WIDTH - s[0]} if len(s) >= 2 else {}
        room |= {len(s) - 1: MAX_WIDTH - s[-1]} if len(s) <= 2 else {}
        room = {ax: r for ax, r in room.items() if r >= 1}
        same = [ax for ax in range(len(s)) if 2 * s[ax] <= MAX_WIDTH]
        if room and (not same or self.draw(st.booleans())):
            ax = self.draw(st.sampled_from(sorted(room)))
            k = self.draw(st.integers(1, room[ax]))
            first = conv(self.draw, s, keep=True, filters=k) if ax == 0 < len(s) - 1 else dense(self.draw, s, units=k)
            b = self.branch(a, first)
        elif same:
            ax, b = self.draw(st.sampled_from(same)), self.branch(a)
        else:
            return self.residual()
        written = self.draw(st.sampled_from([ax, ax - len(s)]))
        cat = mk(self.draw, "concat", ("axis",), axis=maybe(self.draw, written, 0))
        ins = self.draw(st.permutations([a, b]))
        self.emit(tuple(ins), [(None, cat)], out_shape("concat", {"axis": ax}, [self.shapes[n] for n in ins]))

    def block(self) -> None:
        calls = []
        for blk in self.blocks:
            env = {p: self.draw(st.integers(1, min(2 * v, MAX_WIDTH))) if isinstance(v, int) and self.draw(st.booleans())
                   else v for p, v in blk.values.items()}  # another width (or repeat count), maybe
            try:
                call = self.call_of(blk, env)
                calls.append((call, apply(call, [self.shape], {})))
            except Invalid:
                pass
        if not calls or self.draw(st.booleans()):
            blk = new_block(self.draw, self.names, self.shape)
            self.blocks.append(blk)
            call = self.call_of(blk, blk.values)
        else:
            call = self.draw(st.sampled_from(calls))[0]
        times, s = self.repeated(call, self.shape)
        self.emit((self.cur,), [(times, call)], s)

    def call_of(self, blk: Block, env: dict) -> BlockCall:
        """A call of `blk` passing `env`: leading parameters positionally, some defaults left out."""
        args, positional = [], True
        for p, default in blk.params:
            if env[p] != default or self.draw(st.booleans()):
                positional = positional and self.draw(st.booleans())
                args.append((p, env[p], positional))
            else:
                positional = False
        return BlockCall(blk, tuple(args))


def abstract(draw, stmts: list, names: Names, pool: list[str], limit: int) -> dict[str, Any]:
    """Writes up to `limit` values of the calls in `stmts` as names (block parameters or constants),
    in place; returns {name: value}."""
    fields = {"filters", "units", "dim", "vocab", "eps", "rate", "activation", "repeat"}
    flows = [s for s in stmts if isinstance(s, Flow)]
    found = [v for f in flows for t, c in f.steps for k, v in ([("repeat", t)] + list(getattr(c, "fields", ())))
             if k in fields and v is not None and not isinstance(v, Sym)]
    chosen = {}
    for v in draw(st.lists(st.sampled_from(found), max_size=limit, unique_by=repr)) if found else []:
        sym = Sym(names.fresh(pool, pool[0]), v)
        chosen[sym.text] = v
        for f in flows:
            f.steps = [(sym if t == v and type(t) is type(v) else t,
                        c.sub(fields, v, sym) if isinstance(c, Call) else c) for t, c in f.steps]
    return chosen


def new_block(draw, names: Names, s: tuple) -> Block:
    name = names.fresh(["stage", "res", "conv_bn", "unit", "cell", "mix"], "blk")
    x = names.tensor() if draw(st.booleans()) else None
    body = Body(draw, names, {x: s} if x else {}, s, blocks=None)
    body.extend()  # the first move continues from the block's input, which may have no name
    for _ in range(draw(st.integers(0, 1))):
        body.move()
    if x and draw(st.booleans()):
        body.stmts.append(Output(body.name_current()))
    values = abstract(draw, body.stmts, names, ["f", "width", "act", "n", "p", "filters"], 2)
    params = [(p, draw(st.sampled_from([None, v]))) for p, v in values.items()]
    params = [(p, d) for p, d in params if d is None] + [(p, d) for p, d in params if d is not None]
    return Block(name, params, body.stmts, values)


def input_shape(draw, kind: str) -> tuple[int, ...]:
    """Every dimension different, so that a wrong transpose cannot pass by symmetry."""
    sizes = {"image": [(1, 6), (3, MAX_SIZE), (3, MAX_SIZE)], "signal": [(1, 8), (4, MAX_SIZE)],
             "sequence": [(2, 8), (1, 10)], "tokens": [(2, 10)], "vector": [(2, MAX_WIDTH)]}[kind]
    dims: list[int] = []
    for lo, hi in sizes:
        dims.append(draw(st.integers(lo, hi).filter(lambda d: d not in dims)))
    return tuple(dims)


def statement(draw, s) -> str:
    if isinstance(s, Input):
        return f"input {s.name}" if s.dims is None else f"input {s.name}: {s.dtype}[{', '.join(map(text, s.dims))}]"
    if isinstance(s, Output):
        return f"output {s.name}"
    parts = [s.sources[0]] if len(s.sources) == 1 else ["(" + ", ".join(s.sources) + ")"] if s.sources else []
    parts += [("" if t is None else f"repeat {text(t)} ") + text(c) for t, c in s.steps] + [s.target] * bool(s.target)
    out = parts[0]
    for part in parts[1:]:  # long flows may continue on the next line, after or before the arrow
        out += draw(st.sampled_from([" -> ", " -> ", " -> ", " ->\n    ", "\n    -> "])) + part
    return out


def comment(draw) -> str:
    free = st.text(st.characters(exclude_characters="\n\r", exclude_categories=["Cs", "Cc"]), max_size=12)
    return "# " + draw(st.sampled_from(["note", 'a "quoted" } -> b(1)', "résumé ✓", ""]) | free).rstrip()


def lines(draw, stmts: list, head: list[str] = ()) -> str:
    out = []
    for s in [*head, *stmts]:
        if draw(st.integers(0, 7)) == 0:
            out.append(comment(draw))
        line = s if isinstance(s, str) else statement(draw, s)
        out.append(line + ("  " + comment(draw) if draw(st.integers(0, 7)) == 0 else ""))
    return "".join(f"  {line}\n" for line in out)


@st.composite
def specs(draw, kind: str) -> str:
    """A valid spec (with a train section) whose model reads one input of `kind` (see KINDS)."""
    names = Names(draw)
    x, s = names.fresh(TRICKY if draw(st.integers(0, 3)) == 0 else ["x", "inputs"], "x"), input_shape(draw, kind)
    blocks: list[Block] = []
    body = Body(draw, names, {x: s}, s, blocks)
    body.stmts[0] = Input(x, s, draw(st.sampled_from(["", "float"])))
    if kind == "tokens":  # ids -> one embedding, or two summed
        body.stmts[0], body.shapes, body.cur = Input(x, s, "int"), {}, None
        dim = draw(st.integers(1, MAX_WIDTH))
        embeds = [mk(draw, "embedding", ("vocab", "dim"), vocab=draw(st.integers(2, 20)), dim=dim, init=init_arg(draw))
                  for _ in range(draw(st.integers(1, 2)))]
        made = [body.emit((x,), [(None, e)], (*s, dim), named=len(embeds) > 1) for e in embeds]
        if len(made) > 1:
            body.emit(tuple(made), [(None, mk(draw, "add"))], (*s, dim))
    for _ in range(draw(st.integers(1, 4))):
        body.move()
    if draw(st.booleans()):  # a head: flatten or global pooling, then dense
        steps, shape = [], body.shape
        if len(shape) > 1:
            steps.append((None, mk(draw, draw(st.sampled_from(["flatten", "global_avgpool", "global_maxpool"])))))
            shape = apply(steps[-1][1], [shape], {})
        steps.append((None, dense(draw, shape)))
        body.emit((body.cur,), steps, apply(steps[-1][1], [shape], {}))
    if draw(st.booleans()):
        body.stmts.append(Output(body.name_current()))
    consts = abstract(draw, body.stmts, names, ["WIDTH", "C", "DIM", "EPS", "ACT", "N"], 2)
    if draw(st.booleans()):  # an input size as a constant
        i = draw(st.integers(0, len(s) - 1))
        sym = Sym(names.fresh(["SIZE", "CHANNELS", "STEPS"], "SIZE"), s[i])
        consts[sym.text] = s[i]
        inp = body.stmts[0]
        body.stmts[0] = Input(inp.name, (*s[:i], sym, *s[i + 1:]), inp.dtype)
    model = names.fresh(["Net", "M", "Model1", "Torch", "nn", "F", "layers", "keras"], "Net")
    settings = [f"init: {text(init_arg(draw) or Word('he_uniform'))}"] * draw(st.booleans())
    items = [f"model {model} {{\n{lines(draw, body.stmts, settings)}}}\n"]
    for blk in blocks:
        params = ", ".join(p if d is None else f"{p}={text(d)}" for p, d in blk.params)
        items.insert(draw(st.integers(0, len(items))), f"block {blk.name}({params}) {{\n{lines(draw, blk.body)}}}\n")
    head = "".join(f"const {k} = {text(v)}\n" for k, v in consts.items())
    train = "train {\n  data: synthetic(task=regression)\n  loss: mse()\n}\n"
    return "\n".join([head, *items, train]).lstrip("\n")


# --- arbitrary IR-level text --------------------------------------------------------------------

NAMES = (st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,7}", fullmatch=True)
         | st.sampled_from(["modelx", "true_", "inputs", "int", "float", "repeat2", "_", "__x__", "same", "relu"])
         ).filter(lambda n: n not in KEYWORDS)


def _int_text(v: int, form: int) -> str:
    return f"+{v}" if form == 1 and v >= 0 else f"{'-' if v < 0 else ''}00{abs(v)}" if form == 2 else str(v)


def _float_text(v: float, form: int) -> str:
    text = [repr(v), f"{v:e}", f"{v:.3E}", f"{v:.4f}"][form]
    return text.replace("0.", ".", 1) if text.lstrip("-").startswith("0.") and form == 3 else text


_STRING_PARTS = st.characters(exclude_characters='"\\\n\r', exclude_categories=["Cs"]) | st.sampled_from(
    ["\\\\", '\\"', "\\n", "\\t", "\\/", "\\b", "\\f", "\\r", "\\u00e9", "\\u2028", "\\ud83d\\ude00", "#", "'", "😀"])
ATOMS = st.one_of(
    st.builds(_int_text, st.integers(-(2**63), 2**63 - 1), st.integers(0, 2)),
    st.builds(_float_text, st.floats(-1e300, 1e300, allow_nan=False), st.integers(0, 3)),
    st.lists(_STRING_PARTS, max_size=6).map(lambda parts: '"' + "".join(parts) + '"'),
    st.sampled_from(["true", "false"]),
    NAMES,
)
# Between items in brackets; newlines (and comments) inside brackets join lines.
_SEPS = st.sampled_from([", ", ",", " , ", ",\n      ", "\n    , ", ",  # in brackets\n    "])


@st.composite
def _joined(draw, items: list[str], brackets: str, one_needs_comma: bool = False) -> str:
    body = draw(_SEPS).join(items) if len(items) < 2 else "".join(
        item + (draw(_SEPS) if i < len(items) - 1 else "") for i, item in enumerate(items))
    if items and (draw(st.booleans()) or one_needs_comma and len(items) == 1):
        body += ","
    return brackets[0] + body + brackets[1]


@st.composite
def _call(draw, inner) -> str:
    args = draw(st.lists(inner, max_size=3)) + [f"{k}={v}" for k, v in draw(st.lists(st.tuples(NAMES, inner), max_size=2))]
    return draw(NAMES) + draw(_joined(args, "()"))


VALUES = st.recursive(ATOMS, lambda inner: st.one_of(
    st.lists(inner, max_size=3).flatmap(lambda xs: _joined(xs, "()", one_needs_comma=True)),
    st.lists(inner, max_size=3).flatmap(lambda xs: _joined(xs, "[]")),
    _call(inner),
), max_leaves=8)


@st.composite
def _statement(draw) -> str:
    kind = draw(st.sampled_from(["input", "output", "setting", "flow", "flow"]))
    if kind == "input":
        head = f"input {draw(NAMES)}"
        if draw(st.booleans()):
            return head
        dtype = draw(st.sampled_from(["", "int", "float", "int ", "float "]))
        return f"{head}: {dtype}" + draw(_joined(draw(st.lists(VALUES, min_size=1, max_size=3)), "[]"))
    if kind == "output":
        return "output " + ", ".join(draw(st.lists(NAMES, min_size=1, max_size=3)))
    if kind == "setting":
        return f"{draw(NAMES)}: {draw(VALUES)}"
    parts = [draw(st.sampled_from(["", "one", "many"]))]
    if parts[0] == "one":
        parts[0] = draw(NAMES)
    elif parts[0] == "many":
        parts[0] = draw(_joined(draw(st.lists(NAMES, min_size=2, max_size=3)), "()"))
    for _ in range(draw(st.integers(1, 3))):
        step = draw(_call(VALUES))
        parts.append(f"repeat {draw(VALUES)} {step}" if draw(st.integers(0, 3)) == 0 else step)
    if draw(st.booleans()):
        parts.append(draw(NAMES))
    out = parts[1] if not parts[0] else parts[0] + draw(st.sampled_from([" -> ", "->"])) + parts[1]
    for part in parts[2:]:
        out += draw(st.sampled_from([" -> ", "->", " ->\n      ", "\n    -> ", " ->  # after an arrow\n    "])) + part
    return out


@st.composite
def _body(draw, statements) -> str:
    """`{ ... }` with statements, blank lines and comments, sometimes sharing a line with a brace."""
    lines = []
    for s in draw(st.lists(statements, max_size=4)):
        if draw(st.integers(0, 5)) == 0:
            lines.append(draw(st.sampled_from(["", comment(draw)])))
        lines.append(s + ("  " + comment(draw) if draw(st.integers(0, 4)) == 0 else ""))
    if not lines:
        return draw(st.sampled_from(["{}", "{\n}", "{  # empty\n}"]))
    first = " " + lines.pop(0) + "\n" if draw(st.integers(0, 4)) == 0 and not lines[0].startswith("#") else "\n"
    last = "  " + lines.pop() + " }" if lines and draw(st.integers(0, 4)) == 0 and "#" not in lines[-1] else "}"
    return "{" + first + "".join(f"  {line}\n" for line in lines) + last


@st.composite
def ir_texts(draw) -> str:
    """Text the grammar accepts, from the whole IR: constants, blocks, models and train sections
    with every kind of value; meaningful or not (names are not resolved)."""
    items = []
    for kind in draw(st.lists(st.sampled_from(["const", "block", "model", "train"]), max_size=4)):
        name = draw(NAMES)
        if kind == "const":
            items.append(f"const {name} = {draw(VALUES)}")
        elif kind == "block":
            params = [p if draw(st.booleans()) else f"{p}={draw(VALUES)}" for p in draw(st.lists(NAMES, max_size=3))]
            items.append(f"block {name}" + draw(_joined(params, "()")) + " " + draw(_body(_statement())))
        elif kind == "model":
            items.append(f"model {name} " + draw(_body(_statement())))
        else:
            settings = st.builds(lambda k, v: f"{k}: {v}", NAMES | st.just("model"), VALUES)
            items.append("train " + draw(_body(settings)))
    seps = st.sampled_from(["\n", "\n\n", "\n# between items\n", "\n\n\n"])
    text = "".join(item + draw(seps) for item in items)
    text = draw(st.sampled_from(["", "# a header comment\n", "\n"])) + text
    return text.replace("\n", "\r\n") if draw(st.integers(0, 5)) == 0 else text
