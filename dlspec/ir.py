"""The typed, immutable IR of a spec: what the text says, with source spans, nothing resolved.

Blocks, repeats and constants stay as written here; `graph.py` expands them into the flat graph
the backends read. `printer.py` turns this IR back into canonical text.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from .diagnostics import NOWHERE, Span


class Node(BaseModel):
    model_config = ConfigDict(frozen=True)
    span: Span = NOWHERE


class Ref(Node):
    """A bare identifier: a constant, a block parameter, or a word such as `same` or `relu`."""

    name: str


class KwArg(Node):
    name: str
    value: Value


class Call(Node):
    """`name(arg, ..., key=value, ...)`: a layer, a block, or a value such as `adam(lr=1e-3)`."""

    name: str
    args: tuple[Value, ...] = ()
    kwargs: tuple[KwArg, ...] = ()


class TupleValue(Node):
    items: tuple[Value, ...]


class ListValue(Node):
    items: tuple[Value, ...]


# bool before int: pydantic's smart union keeps the exact type (True stays bool, 1 stays int).
Value = bool | int | float | str | Ref | Call | TupleValue | ListValue


class Setting(Node):
    """`key: value` in a model or the train section."""

    key: str
    value: Value


class Input(Node):
    name: str
    dtype: str = "float"
    shape: tuple[Value, ...] | None = None  # None only inside a block: the block's own input


class Output(Node):
    names: tuple[str, ...]


class Step(Node):
    call: Call
    repeat: Value | None = None


class Flow(Node):
    """`[source ->] step -> step ... [-> target]`."""

    sources: tuple[str, ...] = ()  # empty: continue from the previous statement
    steps: tuple[Step, ...]
    target: str | None = None
    source_span: Span = NOWHERE
    target_span: Span = NOWHERE


Statement = Input | Output | Flow | Setting


class Param(Node):
    name: str
    default: Value | None = None


class Block(Node):
    name: str
    params: tuple[Param, ...] = ()
    body: tuple[Statement, ...] = ()


class Model(Node):
    name: str
    body: tuple[Statement, ...] = ()


class Use(Node):
    """`use resnet` (a library shipped with dlspec) or `use "blocks.dls"` (a file, relative to the spec)."""

    name: str
    is_file: bool = False


class Const(Node):
    name: str
    value: Value


class Train(Node):
    settings: tuple[Setting, ...] = ()


Item = Use | Const | Block | Model | Train


class Spec(Node):
    items: tuple[Item, ...] = ()

    def of(self, kind: type) -> list:
        return [item for item in self.items if isinstance(item, kind)]


for _cls in (KwArg, Call, TupleValue, ListValue, Setting, Input, Step, Flow, Param, Block, Const):
    _cls.model_rebuild()
