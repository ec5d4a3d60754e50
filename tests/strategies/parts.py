"""What a drawn spec is made of (values, calls, blocks, flows) and how it is written as text; the
small drawing helpers every layer drawer shares."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from hypothesis import strategies as st

KEYWORDS = {"true", "false", "const", "block", "model", "train", "input", "output", "repeat", "use"}


class Invalid(Exception):
    """A layer or block does not fit the shape that reaches it."""


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
    library: str | None = None  # a block of dlspec's library (`use library`), whose body is not drawn
    rule: Any = None  # a library block's shape rule: (arguments, input shapes) -> output shape


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



def comment(draw) -> str:
    free = st.text(st.characters(exclude_characters="\n\r", exclude_categories=["Cs", "Cc"]), max_size=12)
    return "# " + draw(st.sampled_from(["note", 'a "quoted" } -> b(1)', "résumé ✓", ""]) | free).rstrip()

