"""IR → checked graph. Expands blocks, repeats, constants and `activation=` arguments into a flat
list of nodes in execution order, each with its resolved layer entry, input and output shapes,
initializer and source span. Every problem becomes a `Diagnostic` pointing at the spec text."""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Any

from . import ir
from .diagnostics import NOWHERE, Diagnostic, DlsError, Span, did_you_mean, error
from .initializers import INITIALIZERS, XAVIER, Initializer, Uniform
from .layers import ACTIVATIONS, LAYERS, Layer
from .layers.dense import Embedding
from .registry import GENERATED_NAMES, CallValue, Shape, ShapeError, Word, bind, describe, fmt_shape, snake

MODEL_SETTINGS = {"init": "the initializer of every layer's weights unless the layer names its own"}
MAX_NODES = 10_000  # a guard against `repeat` counts that would take minutes to expand


@dataclass(frozen=True)
class Tensor:
    name: str  # the node (or input) that produces it
    shape: Shape
    dtype: str
    span: Span


@dataclass(frozen=True)
class Node:
    name: str  # unique Python identifier, after the spec's names
    layer: Layer
    inputs: tuple[str, ...]
    in_shapes: tuple[Shape, ...]
    shape: Shape
    span: Span
    path: tuple[str, ...] = ()  # the block instances it sits in, outermost first
    init: Initializer | None = None

    @property
    def op(self) -> str:
        return self.layer.name

    def params(self, backend: str = "torch") -> tuple[int, int]:
        return self.layer.param_count(list(self.in_shapes), backend)


@dataclass
class Graph:
    name: str
    inputs: list[Tensor]
    nodes: list[Node]
    outputs: list[str]
    warnings: list[Diagnostic] = field(default_factory=list)
    span: Span = NOWHERE

    def shape_of(self, name: str) -> Shape:
        return self._shapes[name]

    def node(self, name: str) -> Node:
        return self._nodes[name]

    @functools.cached_property
    def _shapes(self) -> dict[str, Shape]:
        return {t.name: t.shape for t in self.inputs} | {n.name: n.shape for n in self.nodes}

    @functools.cached_property
    def _nodes(self) -> dict[str, Node]:
        return {n.name: n for n in self.nodes}

    def params(self, backend: str = "torch") -> tuple[int, int]:
        counts = [n.params(backend) for n in self.nodes]
        return sum(c[0] for c in counts), sum(c[1] for c in counts)


class _Scope:
    """Tensor names visible in one model body or block instance."""

    def __init__(self, body: tuple[ir.Statement, ...]):
        self.names: dict[str, tuple[Tensor, Span]] = {}
        self.used: set[str] = set()
        # Where each name is defined, to tell "used before it is defined" from "unknown".
        self.later: dict[str, Span] = {}
        for s in body:
            if isinstance(s, ir.Flow) and s.target:
                self.later.setdefault(s.target, s.target_span)
            elif isinstance(s, ir.Input):
                self.later.setdefault(s.name, s.span)

    def define(self, name: str, t: Tensor, span: Span) -> None:
        if name in self.names:
            raise error(f"the name `{name}` is already defined", span, hint="choose another name",
                        related=(self.names[name][1], f"`{name}` was first defined here"))
        self.names[name] = (t, span)

    def get(self, name: str, span: Span) -> Tensor:
        if name in self.names:
            self.used.add(name)
            return self.names[name][0]
        if name in self.later:
            raise error(f"`{name}` is used before it is defined", span,
                        hint="a layer can only read tensors defined above it; a tensor cannot feed back into "
                             "itself (the graph must have no cycle)",
                        related=(self.later[name], f"`{name}` is defined here"))
        known = f"the tensors defined so far are {', '.join(f'`{n}`' for n in self.names)}" if self.names else \
            f"nothing is defined yet: declare it first, e.g. `input {name}: [3, 32, 32]`"
        raise error(f"unknown tensor `{name}`", span, hint=did_you_mean(name, self.names) or known)


class _Builder:
    def __init__(self, spec: ir.Spec):
        self.consts: dict[str, Any] = {}
        self.blocks: dict[str, ir.Block] = {}
        self.nodes: list[Node] = []
        self.taken: set[str] = set()
        self.next_number: dict[tuple[str, bool], int] = {}
        self.default_init: Initializer | None = None
        self.warnings: list[Diagnostic] = []
        self.expanding: list[str] = []  # the blocks being expanded, outermost first
        seen: dict[str, Span] = {}
        # Where each constant is defined: one used above its definition is an error, not a word.
        self.const_spans = {item.name: item.span for item in spec.items if isinstance(item, ir.Const)}
        for item in spec.items:
            if isinstance(item, ir.Train | ir.Use):
                continue
            if item.name in seen:
                raise error(f"the name `{item.name}` is defined twice at the top level", item.span,
                            hint="models, blocks and constants need different names", related=(seen[item.name], "first defined here"))
            seen[item.name] = item.span
            if isinstance(item, ir.Const):
                self.consts[item.name] = self.value(item.value, {})
            elif isinstance(item, ir.Block):
                if item.name in LAYERS:
                    raise error(f"block `{item.name}` has the name of a built-in layer", item.span, hint="rename the block")
                self.blocks[item.name] = item

    # --- values ---
    def value(self, v: ir.Value, env: dict[str, Any]) -> Any:
        if isinstance(v, ir.Ref):
            if v.name in env:
                return env[v.name]
            defined = self.const_spans.get(v.name)
            if defined is not None and defined.file == v.span.file and v.span.known and \
                    (defined.line, defined.column) > (v.span.line, v.span.column):
                raise error(f"the constant `{v.name}` is used before its definition", v.span,
                            hint="move the `const` line above its first use", related=(defined, "defined here"))
            return self.consts.get(v.name, Word(v.name))  # otherwise a word such as `same` or `relu`
        if isinstance(v, ir.TupleValue):
            return tuple(self.value(x, env) for x in v.items)
        if isinstance(v, ir.ListValue):
            return [self.value(x, env) for x in v.items]
        if isinstance(v, ir.Call):
            return self.call_value(v, env)
        return v

    def call_value(self, c: ir.Call, env: dict[str, Any]) -> CallValue:
        return CallValue(
            name=c.name, args=tuple(self.value(a, env) for a in c.args),
            kwargs=tuple((k.name, self.value(k.value, env)) for k in c.kwargs), span=c.span,
            arg_spans=tuple(getattr(a, "span", c.span) for a in c.args), kwarg_spans=tuple(k.span for k in c.kwargs),
        )

    # --- names ---
    def fresh(self, prefix: str, base: str, wanted: str | None = None, numbered: bool = False) -> str:
        """`prefix + wanted` (a name the spec gave) when free, else `prefix + base`, then with `_2`, `_3`, ...
        Block instances are always numbered (`res1`, `res2`) so repeats read naturally."""
        name = prefix + wanted if wanted else None
        if name is None or name in self.taken:
            stem = prefix + base
            n = self.next_number.get((stem, numbered), 1)  # names below it are taken: no quadratic search
            while (name := f"{stem}{n}" if numbered else stem if n == 1 else f"{stem}_{n}") in self.taken:
                n += 1
            self.next_number[(stem, numbered)] = n + 1
        self.taken.add(name)
        return name

    # --- bodies ---
    def body(self, stmts, scope: _Scope, env, path, prefix, current: list[Tensor] | None, in_block: bool):
        """Runs the statements of a model or block; returns (last result, declared outputs)."""
        outputs: list[tuple[Tensor, str, Span]] = []
        block_inputs = [s for s in stmts if isinstance(s, ir.Input)] if in_block else []
        if in_block and block_inputs:
            if len(block_inputs) != len(current):
                names = ", ".join(s.name for s in block_inputs)
                raise error(f"this block takes {len(block_inputs)} input(s) ({names}), but {len(current)} reach it",
                            block_inputs[0].span)
            for s, t in zip(block_inputs, current):
                scope.define(s.name, t, s.span)
        dangling: Span | None = None  # an unnamed result that no later line has read yet
        for s in stmts:
            if isinstance(s, ir.Input):
                if not in_block:
                    current = [self.model_input(s, env, scope)]
                elif s.shape is not None:
                    raise error("a block's input takes its shape from the caller", s.span, hint=f"write `input {s.name}`")
                else:  # a block's `input x` only names what reaches the block
                    current = [scope.names[s.name][0]]
            elif isinstance(s, ir.Setting):
                self.setting(s, env, in_block)
            elif isinstance(s, ir.Output):
                outputs += [(scope.get(name, s.span), name, s.span) for name in s.names]
                dangling = None
            elif isinstance(s, ir.Flow):
                if s.sources:
                    if dangling is not None:
                        self.warnings.append(Diagnostic(
                            message="the result of this line is never used", span=dangling, severity="warning",
                            hint="name it with `-> name` and use it, or remove the line"))
                    current = [scope.get(n, s.source_span) for n in s.sources]
                elif current is None:
                    raise error("this line has nothing to read from", s.span,
                                hint="declare an input first (`input x: [3, 32, 32]`) or start the line with a tensor name, e.g. `x -> ...`")
                else:
                    scope.used.update(n for n, (t, _) in scope.names.items() if t in current)
                for step in s.steps:
                    current = [self.step(step, current, env, path, prefix, s.target if step is s.steps[-1] else None)]
                if s.target:
                    scope.define(s.target, current[0], s.target_span)
                    if s.target in LAYERS or s.target in self.blocks:
                        self.warnings.append(Diagnostic(
                            message=f"`{s.target}` names the result here; it is not applied as a layer", span=s.target_span,
                            severity="warning", hint=f"to apply it, write `{s.target}()`; else choose another name"))
                dangling = None if s.target else s.span
        return current, outputs

    def model_input(self, s: ir.Input, env, scope: _Scope) -> Tensor:
        if s.shape is None:
            raise error(f"input `{s.name}` needs a shape", s.span, hint=f"write e.g. `input {s.name}: [3, 32, 32]` (batch excluded)")
        dims = []
        for d in s.shape:
            v = self.value(d, env)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise error(f"input `{s.name}`: every size must be a positive integer, got {describe(v)}",
                            getattr(d, "span", s.span) if getattr(d, "span", NOWHERE).known else s.span)
            dims.append(v)
        name = self.fresh("", s.name, s.name)
        t = Tensor(name=name, shape=tuple(dims), dtype=s.dtype, span=s.span)
        self.inputs.append(t)
        scope.define(s.name, t, s.span)
        return t

    def setting(self, s: ir.Setting, env, in_block: bool) -> None:
        if in_block:
            raise error(f"a block cannot have settings such as `{s.key}:`", s.span,
                        hint="settings belong to the model; to give a block's layers an initializer, pass `init=` to them")
        if s.key not in MODEL_SETTINGS:
            raise error(f"unknown model setting `{s.key}`", s.span,
                        hint=did_you_mean(s.key, MODEL_SETTINGS) or f"model settings: {', '.join(MODEL_SETTINGS)}")
        span = getattr(s.value, "span", s.span)
        self.default_init = self.initializer(self.value(s.value, env), span if span.known else s.span)

    def initializer(self, v, span: Span) -> Initializer:
        call = v if isinstance(v, CallValue) else CallValue(name=str(v), span=span) if isinstance(v, str) else None
        if call is None:
            raise error(f"an initializer is a name such as `he_normal` or a call such as `normal(std=0.02)`, got {describe(v)}", span)
        return bind(INITIALIZERS, call, "initializer")

    def step(self, step: ir.Step, inputs: list[Tensor], env, path, prefix, target) -> Tensor:
        times = 1
        if step.repeat is not None:
            times = self.value(step.repeat, env)
            if isinstance(times, bool) or not isinstance(times, int) or times < 1:
                raise error(f"repeat needs a positive whole number, got {describe(times)}", step.span)
        out = inputs
        for i in range(times):
            out = [self.apply(step.call, out, env, path, prefix, target if i == times - 1 else None)]
        return out[0]

    def apply(self, c: ir.Call, inputs: list[Tensor], env, path, prefix, target) -> Tensor:
        if c.name in self.blocks:
            return self.expand(self.blocks[c.name], c, inputs, env, path, prefix, target)
        if c.name not in LAYERS:
            raise error(f"unknown layer or block `{c.name}`", c.span.head(len(c.name)),
                        hint=did_you_mean(c.name, [*LAYERS, *self.blocks]) or "see docs/language.md for the layers")
        entry = bind(LAYERS, self.call_value(c, env), "layer")
        kw_spans = {k.name: k.span for k in c.kwargs}
        act = getattr(entry, "activation", None)
        out = self.add_node(entry, inputs, c.span, path, prefix, None if act else target, init_span=kw_spans.get("init", c.span))
        if act is not None:
            span = kw_spans.get("activation", c.span)
            call = act.model_copy(update={"span": span}) if isinstance(act, CallValue) else CallValue(name=str(act), span=span)
            if call.name not in ACTIVATIONS:
                raise error(f"unknown activation `{call.name}`", span, hint=did_you_mean(call.name, ACTIVATIONS) or f"activations: {', '.join(ACTIVATIONS)}")
            out = self.add_node(bind(LAYERS, call, "activation"), [out], c.span, path, prefix, target, base=f"{out.name}_")
        return out

    def add_node(self, entry: Layer, inputs: list[Tensor], span: Span, path, prefix, target, base: str | None = None,
                 init_span: Span = NOWHERE) -> Tensor:
        if len(self.nodes) >= MAX_NODES:
            raise error(f"the model grows past {MAX_NODES:,} layers here", span, hint="lower the `repeat` counts")
        flag, what = entry.extra_input or (None, None)
        read = f"`(x, {what}) -> {entry.name}(..., {flag}=true)`" if flag else None
        if entry.arity is None and len(inputs) < 2 and flag:
            raise error(f"{entry.name} with {flag}=true takes two inputs, the second its {what}, but one reaches it",
                        span, hint=f"write {read}")
        if entry.arity is None and len(inputs) < 2:
            raise error(f"{entry.name} needs two or more inputs", span, hint=f"write e.g. `(a, b) -> {entry.name}()`")
        if entry.arity is not None and len(inputs) != entry.arity:
            merge = "merge them first, e.g. `(a, b) -> add()` or `concat()`"
            raise error(f"{entry.name} takes one input, but {len(inputs)} reach it", span,
                        hint=f"to read a {what} as the second input, write {read}; otherwise {merge}" if flag else merge)
        for t in inputs:
            if t.dtype == "int" and not entry.int_input:
                raise error(f"{entry.name} needs floating-point input, but `{t.name}` holds integer token ids", span,
                            hint="start with `embedding(vocab, dim)`", related=(t.span, f"`{t.name}` comes from here"))
            if t.dtype != "int" and entry.int_input:
                raise error(f"{entry.name} needs integer token ids, but `{t.name}` is floating-point", span,
                            hint="declare the input as integers, e.g. `input tokens: int[50]`", related=(t.span, f"`{t.name}` comes from here"))
        shapes = [t.shape for t in inputs]
        try:
            shape = entry.infer(shapes)
        except ShapeError as exc:
            culprit = inputs[-1] if len(inputs) > 1 else inputs[0]
            raise error(str(exc), span, hint=exc.hint,
                        related=(culprit.span, f"`{culprit.name}` ({fmt_shape(culprit.shape)}) comes from here")) from None
        init = None
        if "init" in type(entry).model_fields:
            own = entry.init
            init = self.initializer(own, init_span) if own is not None else self.default_init or _default_init(entry)
        name = self.fresh(prefix, entry.name, target) if base is None else \
            self.fresh("", base + entry.name, prefix + target if target else None)  # `base` has the prefix already
        self.nodes.append(Node(name=name, layer=entry, inputs=tuple(t.name for t in inputs), in_shapes=tuple(shapes),
                               shape=shape, span=span, path=path, init=init))
        return Tensor(name=name, shape=shape, dtype="float", span=span)

    def expand(self, block: ir.Block, c: ir.Call, inputs, env, path, prefix, target) -> Tensor:
        if block.name in self.expanding:
            chain = " → ".join([*self.expanding[self.expanding.index(block.name):], block.name])
            raise error(f"block `{block.name}` uses itself ({chain})", c.span.head(len(c.name)),
                        hint="blocks cannot be recursive; use `repeat N` instead")
        args = self.block_args(block, c, env)
        inst = self.fresh(prefix, block.name, numbered=True)
        scope = _Scope(block.body)
        self.expanding.append(block.name)
        try:
            current, outputs = self.body(block.body, scope, args, (*path, inst), inst + "_", inputs, in_block=True)
        except DlsError as exc:  # say which call of the block went wrong (the innermost one)
            first, *rest = exc.diagnostics
            # A library's error needs the call in the spec more than any other note.
            if c.span.known and (first.related is None or first.span.file != c.span.file):
                first = first.model_copy(update={"related": (c.span, f"in `{inst}`, this call of `{block.name}`")})
            raise DlsError([first, *rest]) from None
        finally:
            self.expanding.pop()
        self.unused(scope, block.body, outputs)
        if outputs:
            if len(outputs) > 1:
                raise error("a block has one output", outputs[1][2])
            return outputs[0][0]
        if current is None or current == inputs:
            raise error(f"block `{block.name}` has no layers", block.span)
        return current[0]

    def block_args(self, block: ir.Block, c: ir.Call, env) -> dict[str, Any]:
        params = [p.name for p in block.params]
        args: dict[str, Any] = {}
        if len(c.args) > len(params):
            raise error(f"block `{block.name}` takes {len(params)} argument(s), got {len(c.args)}", c.span,
                        hint=f"block {block.name}({', '.join(params)})")
        for p, a in zip(params, c.args):
            args[p] = self.value(a, env)
        for k in c.kwargs:
            if k.name not in params:
                raise error(f"block `{block.name}` has no parameter `{k.name}`", k.span,
                            hint=did_you_mean(k.name, params) or f"its parameters: {', '.join(params) or 'none'}")
            if k.name in args:
                raise error(f"parameter `{k.name}` is given twice", k.span)
            args[k.name] = self.value(k.value, env)
        for p in block.params:
            if p.name not in args:
                if p.default is None:
                    raise error(f"block `{block.name}` needs `{p.name}`", c.span)
                args[p.name] = self.value(p.default, {})
        return args

    def unused(self, scope: _Scope, body, outputs) -> None:
        declared = {name for _, name, _ in outputs}
        last_target = next((s.target for s in reversed(body) if isinstance(s, ir.Flow)), None)
        for name, (_, span) in scope.names.items():
            if name not in scope.used and name not in declared and name != last_target:
                self.warnings.append(Diagnostic(message=f"`{name}` is never used", span=span, severity="warning",
                                                hint="use it, list it in `output`, or remove it"))


def _default_init(entry: Layer) -> Initializer:
    return Uniform() if isinstance(entry, Embedding) else XAVIER


def build_graph(spec: ir.Spec, model: ir.Model) -> Graph:
    b = _Builder(spec)
    b.inputs = []
    b.taken = set()
    scope = _Scope(model.body)
    # Settings first: a model-wide `init:` applies to every layer, wherever it is written.
    for s in model.body:
        if isinstance(s, ir.Setting):
            b.setting(s, {}, False)
    body = tuple(s for s in model.body if not isinstance(s, ir.Setting))
    current, outputs = b.body(body, scope, {}, (), "", None, in_block=False)
    if not b.inputs:
        raise error(f"model `{model.name}` has no input", model.span, hint="declare one, e.g. `input x: [3, 32, 32]`")
    if not outputs:
        if current is None or current[0].name in {t.name for t in b.inputs}:
            raise error(f"model `{model.name}` has no layers", model.span)
        outputs = [(current[0], current[0].name, NOWHERE)]
    b.unused(scope, body, outputs)
    out_names = [t.name for t, _, _ in outputs]
    nodes = _live(b.nodes, out_names)
    return Graph(name=model.name, inputs=b.inputs, nodes=nodes, outputs=out_names, warnings=b.warnings, span=model.span)


def _live(nodes: list[Node], outputs: list[str]) -> list[Node]:
    """Drops nodes no output depends on (reported as unused names already)."""
    need, by_name = set(outputs), {n.name: n for n in nodes}
    for n in reversed(nodes):
        if n.name in need:
            need.update(n.inputs)
    return [n for n in nodes if n.name in need and n.name in by_name]


def build_all(spec: ir.Spec) -> list[Graph]:
    models = spec.of(ir.Model)
    if not models:
        raise error("the spec defines no model",
                    hint="add one, e.g.\nmodel Net {\n  input x: [4]\n  dense(2)\n}")
    _Builder(spec)  # checks top-level names even when a model fails first
    _python_names(models)
    return [build_graph(spec, m) for m in models]


def _python_names(models: list[ir.Model]) -> None:
    """Each model becomes a class `Name` and, beside others, a builder `build_<snake name>` in the
    generated file: two models may not map to one, nor to a name the file defines itself."""
    seen: dict[str, ir.Model] = {}
    for m in models:
        cls, builder = m.name[:1].upper() + m.name[1:], "build_" + snake(m.name)
        clash = cls if cls in GENERATED_NAMES else builder if len(models) > 1 and builder in GENERATED_NAMES else None
        if clash:
            raise error(f"a model named `{m.name}` would take the name `{clash}`, which the generated code defines",
                        m.span, hint="rename the model")
        other = seen.get(snake(m.name))
        if other is not None:
            raise error(f"models `{other.name}` and `{m.name}` would get the same names in the generated code "
                        f"(`{cls}`, `{builder}`)", m.span, hint="rename one of them", related=(other.span, "the other model"))
        seen[snake(m.name)] = m
