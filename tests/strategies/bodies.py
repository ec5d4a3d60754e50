"""Drawing model and block bodies move by move (chains, merges, two-input layers, blocks of the spec
and of dlspec's libraries), and the spec text around them."""

from __future__ import annotations

import math
from typing import Any

from hypothesis import strategies as st

from .layers import MAX_SIZE, MAX_WIDTH, act_arg, activation, conv, dense, init_arg, layer, recurrent
from .library import LIBRARY_BLOCKS, library_calls
from .parts import KEYWORDS, Block, BlockCall, Call, Flow, Input, Invalid, Output, Sym, Word, comment, maybe, mk, text
from .shapes import MAX_VALUES, apply, keras_bias_ok, out_shape

KINDS = ("image", "signal", "sequence", "tokens", "vector", "volume")
# Names that collide with what generated code defines or imports; spec names must not break it.
TRICKY = ["torch", "nn", "F", "self", "layers", "ops", "keras", "np", "math", "SEED", "forward", "training", "eval",
          "to", "double", "parameters", "reset_parameters", "_h", "__h", "x_cl", "x_cf", "h_cl", "h_pad", "conv2d", "relu",
          "dense", "Input", "lambda", "None", "print", "build_model"]


class Names:
    """Fresh names for tensors, blocks, parameters, constants and models, unique in the spec."""

    def __init__(self, draw):
        self.draw, self.used = draw, set(KEYWORDS) | set(LIBRARY_BLOCKS)
        self.libraries: list[str] = []  # the `use` lines the spec needs

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
            for _attempt in range(4):  # a layer may make a tensor too large (shapes.MAX_VALUES): draw another
                c = layer(self.draw, s, keep)
                try:
                    times, out = self.repeated(c, s) if not keep else (None, apply(c, [s], {}))
                    break
                except Invalid:
                    pass
            else:
                c, times, out = mk(self.draw, "relu"), None, s
            steps.append((times, c))
            s = out
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
        moves = ["extend", "extend", "residual", "residual", "concat", "gate", "vae", "graph", "cross", "state", "library"]
        getattr(self, self.draw(st.sampled_from(moves + ["block"] * (self.blocks is not None))))()

    def extend(self) -> None:
        steps, s = self.steps(self.shape, self.draw(st.integers(1, 3)))
        self.emit((self.cur,), steps, s)

    def pick(self) -> str:
        """A named tensor to branch from: the current result (named now if needed) or an earlier one."""
        if not self.shapes or self.draw(st.booleans()):
            return self.name_current()
        return self.draw(st.sampled_from(sorted(self.shapes)))

    def branch(self, a: str, first: Call | None = None, last: Call | None = None) -> str:
        """`a -> ... -> b`: layers that keep the shape, after `first` and before `last` if given; returns b."""
        s = apply(first, [self.shapes[a]], {}) if first else self.shapes[a]
        steps, s = self.steps(s, self.draw(st.integers(0 if first or last else 1, 2)), keep=True)
        self.cur = None  # a branch starts from `a`, never continues the previous line
        steps = [(None, first)] * bool(first) + steps + [(None, last)] * bool(last)
        return self.emit((a,), steps, s, named=True)

    def residual(self) -> None:
        """`(a, b, ...) -> add()` (or another element-wise merge) of branches that keep a's shape."""
        a = self.pick()
        op = self.draw(st.sampled_from(["add", "add", "add", "multiply", "average", "maximum", "subtract"]))
        if op == "subtract":  # b has weights: a − b never cancels to rounding noise (as a − dropout(a) would)
            ins = [a, self.branch(a, self.weighted(self.shapes[a]))]
        else:
            ins = [a] + [self.branch(a) for _ in range(self.draw(st.integers(1, 2)))]
        steps, s = self.steps(self.shapes[a], self.draw(st.integers(0, 1)), keep=True)
        self.emit(tuple(self.draw(st.permutations(ins))), [(None, mk(self.draw, op))] + steps, s)

    def weighted(self, s) -> Call:
        """A layer with weights that keeps shape `s`."""
        return dense(self.draw, s, keep=True) if len(s) == 1 else conv(self.draw, s, keep=True)

    def gate(self) -> None:
        """`(x, g) -> scale()`, g a [C] vector computed from x (squeeze-and-excitation)."""
        a = self.pick()
        s = self.shapes[a]
        if len(s) < 2:
            return self.residual()
        pooled = mk(self.draw, self.draw(st.sampled_from(["global_avgpool", "global_maxpool"])))
        steps = [(None, pooled)] + [(None, dense(self.draw, s[:1], units=self.draw(st.integers(1, MAX_WIDTH))))] * \
            self.draw(st.booleans()) + [(None, dense(self.draw, s[:1], units=s[0]))]
        self.cur = None
        g = self.emit((a,), steps + [(None, mk(self.draw, self.draw(st.sampled_from(["sigmoid", "hard_sigmoid"]))))],
                      s[:1], named=True)
        self.emit((a, g), [(None, mk(self.draw, "scale"))], s)

    def vae(self) -> None:
        """`(mean, log_var) -> sample_normal()` or `kl_normal()`, both computed from one tensor; the
        log-variance ends in tanh, so that exp(log_var) stays finite whatever the weights."""
        a = self.pick()
        s = self.shapes[a]
        mean = self.branch(a, self.weighted(s))
        log_var = self.branch(a, last=mk(self.draw, "tanh"))
        op = self.draw(st.sampled_from(["sample_normal", "kl_normal"]))
        self.emit((mean, log_var), [(None, mk(self.draw, op))], out_shape(op, {}, [s, s]))

    def graph(self) -> None:
        """`(x, adjacency) -> graph_conv(units)` on x [N, F], the adjacency [N, N] computed from x by a dense
        layer: non-negative when normalized, so that no node degree is near zero (1/sqrt of rounding noise)."""
        a = self.pick()
        s = self.shapes[a]
        if len(s) != 2:
            return self.residual()
        normalize = self.draw(st.sampled_from([None, True, False]))
        if normalize is False:
            last = activation(self.draw, 2) if self.draw(st.booleans()) else None
        else:
            last = mk(self.draw, self.draw(st.sampled_from(["sigmoid", "softmax", "relu"])))
        adj = self.branch(a, dense(self.draw, s, units=s[0]), last=last)
        x = a if self.draw(st.booleans()) else self.branch(a)
        call = mk(self.draw, "graph_conv", ("units",), units=self.draw(st.integers(1, MAX_WIDTH)),
                  bias=self.draw(st.sampled_from([None, True, False])), normalize=normalize,
                  activation=act_arg(self.draw, 2), init=init_arg(self.draw))
        self.emit((x, adj), [(None, call)], out_shape("graph_conv", call.args({}), [s, (s[0], s[0])]))

    def cross(self) -> None:
        """`(x, context) -> cross_attention(heads)`: the context another [steps, features] tensor, or
        computed from x (transposed, or by a dense layer)."""
        a = self.pick()
        s = self.shapes[a]
        if len(s) != 2:
            return self.residual()
        others = [n for n, t in self.shapes.items() if len(t) == 2 and n != a]
        if others and self.draw(st.booleans()):
            ctx = self.draw(st.sampled_from(sorted(others)))
        else:
            first = self.draw(st.sampled_from([mk(self.draw, "permute", ("dims",), dims=(1, 0)), dense(self.draw, s)]))
            ctx = self.branch(a, first)
        c = self.shapes[ctx]
        fit = [h for h in range(1, s[1] + 1) if s[1] % h == 0 and keras_bias_ok(s, h) and keras_bias_ok(c, h, s[1])]
        if not fit:
            return self.residual()
        heads = self.draw(st.sampled_from(fit))
        call = mk(self.draw, "cross_attention", ("heads",), heads=heads, dropout=self.draw(st.sampled_from([None, 0.0, 0.1])),
                  bias=self.draw(st.sampled_from([None, True, False])), causal=self.draw(st.sampled_from([None, False, True])))
        self.emit((a, ctx), [(None, call)], s)

    def state(self) -> None:
        """`(x, state) -> lstm(units, initial_state=true)` on x [steps, features]: the state the final
        state (`return_state=true`) of a recurrent layer over a named sequence, or any [rows, units]
        tensor (a dense layer's, reshaped)."""
        a = self.pick()
        s = self.shapes[a]
        if len(s) != 2:
            return self.residual()
        # Mostly one layer, one direction: Keras builds recurrent layers slowly, and
        # test_state_passing_same_function covers stacks and both directions too.
        kind, units = self.draw(st.sampled_from(["rnn", "lstm", "gru"])), self.draw(st.integers(1, 8))
        both, layers = self.draw(st.integers(0, 2)) == 0, self.draw(st.sampled_from([1, 1, 1, 2]))
        rows = layers * (2 if both else 1) * (2 if kind == "lstm" else 1)
        src = self.draw(st.sampled_from(sorted(n for n, t in self.shapes.items() if len(t) == 2)))
        if self.draw(st.booleans()):  # an encoder of the same kind, or of another with as many rows
            enc = self.draw(st.sampled_from(["lstm"] if kind == "lstm" else ["rnn", "gru"]))
            first = recurrent(self.draw, self.shapes[src], state=(enc, {
                "units": units, "bidirectional": both or None, "layers": maybe(self.draw, layers, 1), "return_state": True,
                "return_sequences": None}))
            state = self.branch(src, first)
        else:
            self.cur = None
            steps = [(None, mk(self.draw, "flatten")), (None, dense(self.draw, (1,), units=rows * units)),
                     (None, mk(self.draw, "reshape", ("shape",), shape=(rows, units)))]
            state = self.emit((src,), steps, (rows, units), named=True)
        call = recurrent(self.draw, s, state=(kind, {"units": units, "bidirectional": maybe(self.draw, both, False),
                                                     "layers": maybe(self.draw, layers, 1), "initial_state": True}))
        self.emit((a, state), [(None, call)], out_shape(kind, call.args({}), [s, (rows, units)]))

    def library(self) -> None:
        """A block of dlspec's libraries, maybe repeated."""
        calls = []
        for blk, args in library_calls(self.draw, self.shape, MAX_WIDTH):
            call = self.call_of(blk, args)
            try:
                calls.append((call, apply(call, [self.shape], {})))
            except Invalid:
                pass
        if not calls:
            return self.extend()
        call = self.draw(st.sampled_from(calls))[0]
        if call.block.library not in self.names.libraries:
            self.names.libraries.append(call.block.library)
        times, s = self.repeated(call, self.shape)
        self.emit((self.cur,), [(times, call)], s)

    def concat(self) -> None:
        a = self.pick()
        s = self.shapes[a]
        # the largest extent along each axis that keeps the result within MAX_WIDTH and MAX_VALUES
        most = [min(MAX_WIDTH, MAX_VALUES * d // math.prod(s)) for d in s]
        axes = ([0] if len(s) >= 2 else []) + ([len(s) - 1] if len(s) <= 2 else [])
        room = {ax: most[ax] - s[ax] for ax in axes if most[ax] > s[ax]}
        same = [ax for ax in range(len(s)) if 2 * s[ax] <= most[ax]]
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
    fields = {"filters", "units", "dim", "vocab", "eps", "rate", "activation", "repeat", "heads", "ff", "multiplier"}
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
             "sequence": [(2, 8), (1, 10)], "tokens": [(2, 10)], "vector": [(2, MAX_WIDTH)],
             "volume": [(1, 4), (2, 6), (2, 7), (3, 8)]}[kind]
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
    head = "".join(f"use {lib}\n" for lib in names.libraries) + "".join(f"const {k} = {text(v)}\n" for k, v in consts.items())
    train = "train {\n  data: synthetic(task=regression)\n  loss: mse()\n}\n"
    return "\n".join([head, *items, train]).lstrip("\n")


# --- arbitrary IR-level text --------------------------------------------------------------------
