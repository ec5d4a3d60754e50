"""The registry mechanism: every layer (and training component) is a pydantic model whose fields
are its arguments. An entry declares, once, its arguments with types, defaults and ranges, its
shape rule, its weights, and its rendering for both backends (see `layers.py`).

This module holds what all entries share: binding call arguments to fields (with did-you-mean
hints), the argument types, and the literal helpers that keep spec content inert in generated code.
"""

from __future__ import annotations

import json
import keyword
import math
import re
from collections.abc import Callable, Sequence
from typing import Annotated, Any, ClassVar

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

from .diagnostics import NOWHERE, Span, did_you_mean, error

Shape = tuple[int, ...]


def _to_float(v: Any) -> Any:
    # Strict mode rejects an int for a float field; `lr=1` should still mean 1.0.
    return float(v) if isinstance(v, int) and not isinstance(v, bool) else v


Float = Annotated[float, BeforeValidator(_to_float)]
PositiveInt = Annotated[int, Field(gt=0)]
NonNegInt = Annotated[int, Field(ge=0)]
Rate = Annotated[float, BeforeValidator(_to_float), Field(ge=0.0, lt=1.0)]
PositiveFloat = Annotated[float, BeforeValidator(_to_float), Field(gt=0.0)]
NonNegFloat = Annotated[float, BeforeValidator(_to_float), Field(ge=0.0)]


class Word(str):
    """A bare word from the spec (`same`, `relu`), as opposed to a quoted string: it may be a
    misspelt constant, which error messages then say."""


class CallValue(BaseModel):
    """An argument written as a call, e.g. `init=normal(std=0.02)` or `optimizer: adam(lr=1e-3)`."""

    model_config = ConfigDict(frozen=True)
    name: str
    args: tuple[Any, ...] = ()
    kwargs: tuple[tuple[str, Any], ...] = ()
    span: Span = NOWHERE
    arg_spans: tuple[Span, ...] = ()
    kwarg_spans: tuple[Span, ...] = ()


class Entry(BaseModel):
    """Base of every registry entry. Fields are the arguments; class variables describe the entry."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)
    kind: ClassVar[str] = "layer"
    name: ClassVar[str]
    positional: ClassVar[tuple[str, ...]] = ()
    example: ClassVar[str] = ""

    def problem(self) -> str | None:
        """A message when arguments that are each valid do not fit together."""
        return None

    @classmethod
    def signature(cls) -> str:
        parts = []
        for fname, field in cls.model_fields.items():
            parts.append(fname if field.is_required() else f"{fname}={_show(field.default)}")
        return f"{cls.name}({', '.join(parts)})"


def _show(v: Any) -> str:
    if v is None:
        return "none"
    if isinstance(v, bool):
        return "true" if v else "false"
    return fmt_float(v) if isinstance(v, float) else str(v)


def registry_of(kind: str) -> tuple[dict[str, type[Entry]], Callable[[type[Entry]], type[Entry]]]:
    """A fresh table of entries of one kind, and the decorator that fills it."""
    table: dict[str, type[Entry]] = {}

    def register(cls: type[Entry]) -> type[Entry]:
        assert cls.name not in table, cls.name
        table[cls.name] = cls
        return cls

    return table, register


def bind(table: dict[str, type[Entry]], call: CallValue, what: str) -> Entry:
    """Validate a call against its entry: names, arity, types and ranges, each error with a span."""
    cls = table.get(call.name)
    if cls is None:
        raise error(f"unknown {what} `{call.name}`", call.span,
                    hint=did_you_mean(call.name, table) or f"known {what}s: {', '.join(sorted(table))}")
    fields = list(cls.model_fields)
    values: dict[str, Any] = {}
    spans: dict[str, Span] = {}
    if len(call.args) > len(cls.positional):
        extra = call.arg_spans[len(cls.positional)] if len(call.arg_spans) > len(cls.positional) else call.span
        took = ", ".join(cls.positional) or "none"
        raise error(f"{call.name} takes {len(cls.positional)} positional argument(s) ({took}), got {len(call.args)}",
                    extra, hint=f"name the others, e.g. {cls.signature()}")
    for i, (fname, v) in enumerate(zip(cls.positional, call.args)):
        values[fname] = v
        spans[fname] = call.arg_spans[i] if i < len(call.arg_spans) else call.span
    for i, (k, v) in enumerate(call.kwargs):
        span = call.kwarg_spans[i] if i < len(call.kwarg_spans) else call.span
        if k not in fields:
            raise error(f"{call.name} has no argument `{k}`", span,
                        hint=did_you_mean(k, fields) or f"its arguments are: {cls.signature()}")
        if k in values:
            raise error(f"{call.name}: argument `{k}` is given twice", span)
        values[k] = v
        spans[k] = span
    missing = [f for f, field in cls.model_fields.items() if field.is_required() and f not in values]
    if missing:
        raise error(f"{call.name} needs `{missing[0]}`", call.span, hint=f"write e.g. {cls.example or cls.signature()}")
    try:
        entry = cls(**values)
    except ValidationError as exc:
        first = exc.errors()[0]
        fname = str(first["loc"][0]) if first["loc"] else ""
        got = values.get(fname, first.get("input"))
        takes_call = "CallValue" in str(cls.model_fields[fname].annotation) if fname in cls.model_fields else False
        explain = "must be a name, or a call such as `name(...)`" if takes_call else _explain(first)
        hint = f"signature: {cls.signature()}"
        if first["type"] == "literal_error":
            hint = did_you_mean(str(got), re.findall(r"'([^']*)'", str((first.get("ctx") or {}).get("expected", "")))) or hint
        elif isinstance(got, Word):
            hint = f"`{got}` is not a constant or block parameter defined above; define it with `const {got} = ...`, or write a value"
        raise error(f"{call.name}: argument `{fname}` {explain}, got {describe(got)}", spans.get(fname, call.span), hint=hint) from None
    problem = entry.problem()
    if problem:
        raise error(f"{call.name}: {problem}", call.span, hint=f"signature: {cls.signature()}")
    return entry


_BOUNDS = {"greater_than": ("gt", "above"), "greater_than_equal": ("ge", "at least"), "less_than": ("lt", "below"),
           "less_than_equal": ("le", "at most")}


def _explain(err: dict) -> str:
    msg = err["msg"]
    kind = err["type"]
    ctx = err.get("ctx") or {}
    if kind in _BOUNDS:
        key, words = _BOUNDS[kind]
        return f"must be {words} {_show(ctx.get(key))}"
    if kind == "finite_number":
        return "must be a finite number"
    if kind in ("too_short", "too_long"):
        n = ctx.get("min_length" if kind == "too_short" else "max_length", 0)
        return f"must have {n} value{'s' * (n != 1)}, e.g. {describe(tuple([3] * n))}"
    if kind in ("int_type", "int_parsing"):
        return "must be an integer"
    if kind in ("float_type", "float_parsing"):
        return "must be a number"
    if kind == "bool_type":
        return "must be true or false"
    if kind == "tuple_type":
        return "must be a tuple such as (3, 3)"
    if kind == "literal_error":
        return "must be " + str(ctx.get("expected", msg.removeprefix("Input should be "))).replace("'", "`")
    return msg[0].lower() + msg[1:] if msg else "is invalid"


def describe(v: Any) -> str:
    """A value as the spec would write it."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, Word):
        return str(v)
    if isinstance(v, str):
        return json.dumps(v, ensure_ascii=False)
    if isinstance(v, CallValue):
        return f"{v.name}(...)"
    if isinstance(v, tuple):
        return "(" + ", ".join(describe(x) for x in v) + ("," if len(v) == 1 else "") + ")"
    if isinstance(v, list):
        return "[" + ", ".join(describe(x) for x in v) + "]"
    return fmt_float(v) if isinstance(v, float) else repr(v)


class ShapeError(Exception):
    """Raised by a shape rule; graph.py attaches the span of the layer that raised it."""

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.hint = hint


def fmt_shape(shape: Sequence[int]) -> str:
    return "[" + ", ".join(str(d) for d in shape) + "]"


def fmt_float(v: float) -> str:
    """A float as a spec writes it: Python's shortest form, with a plain exponent (`1e-5`, not
    `1e-05`) and always a `.` or an exponent (`2.0`), so it reads back as a float."""
    text = repr(v)
    if "e" in text:
        mantissa, exponent = text.split("e")
        return f"{mantissa}e{int(exponent)}"
    return text if "." in text else text + ".0"


# --- code literals: the only way spec content reaches generated Python ---------------------------

_RESERVED = set(keyword.kwlist) | set(keyword.softkwlist) | {
    # names the generated modules use
    "self", "torch", "nn", "F", "np", "keras", "layers", "ops", "initializers", "math", "time",
    "len", "range", "float", "int", "tuple", "super", "print", "zip",
    "EPOCHS", "BATCH_SIZE", "SEED", "VALIDATION", "INPUT_SHAPE", "OUTPUT_SHAPE", "ProbabilityCrossEntropy", "Schedule",
    "build_model", "build_optimizer", "loss_fn", "split", "load_data", "evaluate", "fit", "main",
    # classes and functions the layers bring into the generated file (backends/templates/*_layers/;
    # a test checks the list against them)
    "AdaptivePool", "BatchNorm", "GraphConv", "MaskedAttention", "masked_attention", "masked_encoder_layer", "KlNormal", "PositionalEmbedding", "ResizeLinear", "SampleNormal", "SeparableConv",
    "SinusoidalEmbedding", "TransformerEncoder", "RecurrentStack", "sinusoidal_table",
    # attributes of the generated nn.Module, which a layer attribute `self.<name>` must not shadow
    # (tests check this list against torch's)
    *["forward", "reset_parameters", "training", "T_destination", "add_module", "apply", "bfloat16", "buffers", "call_super_init", "children", "compile", "cpu", "cuda", "double", "dump_patches", "eval", "extra_repr", "get_buffer", "get_extra_state", "get_parameter", "get_submodule", "half", "ipu", "load_state_dict", "modules", "mtia", "named_buffers", "named_children", "named_modules", "named_parameters", "parameters", "register_backward_hook", "register_buffer", "register_forward_hook", "register_forward_pre_hook", "register_full_backward_hook", "register_full_backward_pre_hook", "register_load_state_dict_post_hook", "register_load_state_dict_pre_hook", "register_module", "register_parameter", "register_state_dict_post_hook", "register_state_dict_pre_hook", "requires_grad_", "set_extra_state", "set_submodule", "share_memory", "state_dict", "to", "to_empty", "train", "type", "xpu", "zero_grad"],
}


# Module-level classes and functions of the generated files (backends/templates; a test checks the
# list): a model's class (`Net`) or builder (`build_net`) must not take one of these names.
GENERATED_NAMES = {
    "Adagrad", "Adam", "Adamax", "EarlyStopping", "EpochOfBatches", "NAdam", "RMSprop", "RaiseOnNonFiniteLoss",
    "RandomState", "SGD", "Schedule", "TorchRule", "TrainingBatches", "ValidationMetrics", "ProbabilityCrossEntropy",
    "build_model", "build_optimizer", "build_d_optimizer", "build_plateau",
}


def snake(name: str) -> str:
    """`DigitsCNN` → `digits_cnn`, `fooBar` → `foo_bar`: a model's name in its builder, `build_<snake>`."""
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "_", name).lower()


def ident(name: str) -> str:
    """A spec name as a Python identifier. Names are validated by the grammar (letters, digits,
    underscores). A name that would shadow Python, generated code or nn.Module (`self`, `class`,
    `forward`) gets a trailing `_`, and so does each such name that already ends in `_`
    (`self_` → `self__`). A name starting with `_` would be private, or name-mangled as an
    attribute (`self.__h`), so it gets a leading `v`, and so does each name of the form `v…v_…`
    (`_h` → `v_h`, `v_h` → `vv_h`). Both rules keep distinct names distinct."""
    if not name.isidentifier() or not name.isascii():
        raise ValueError(f"not an identifier: {name!r}")
    if re.match(r"v*_", name):
        name = "v" + name
    return name + "_" if name.rstrip("_") in _RESERVED else name


def lit(v: Any) -> str:
    """A Python literal for a validated value; strings are escaped, floats exact."""
    if isinstance(v, Code):
        return str(v)
    if isinstance(v, str):
        return json.dumps(v)  # a double-quoted, fully escaped Python string literal
    if isinstance(v, bool) or v is None or isinstance(v, int):
        return repr(v)
    if isinstance(v, float):
        if math.isinf(v) or math.isnan(v):
            return f"float({str(v)!r})"
        return repr(v)
    if isinstance(v, tuple):
        inner = ", ".join(lit(x) for x in v)
        return f"({inner},)" if len(v) == 1 else f"({inner})"
    if isinstance(v, list):
        return "[" + ", ".join(lit(x) for x in v) + "]"
    raise TypeError(f"no literal for {type(v).__name__}")


class Code(str):
    """Source text built by dlspec itself (never from spec content), passed through `lit` as is."""


def fn(callee: str, /, *args: Any, **kwargs: Any) -> str:
    """`callee(arg, ..., key=value)` with every value rendered by `lit`."""
    parts = [lit(a) for a in args] + [f"{k}={lit(v)}" for k, v in kwargs.items()]
    return f"{callee}({', '.join(parts)})"
