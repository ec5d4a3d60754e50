"""IR → canonical `.dls` text. `format_spec` also puts comments back, so `dls fmt` keeps them."""

from __future__ import annotations

import json
from collections.abc import Sequence

from . import ir
from .registry import fmt_float

INDENT = "  "
WIDTH = 100  # a flow longer than this (with its indentation) is broken before an arrow


def value(v: ir.Value) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return fmt_float(v)
    if isinstance(v, str):
        return json.dumps(v)  # a valid double-quoted literal for our grammar too
    if isinstance(v, ir.Ref):
        return v.name
    if isinstance(v, ir.Call):
        return call(v)
    if isinstance(v, ir.TupleValue):
        inner = ", ".join(value(x) for x in v.items)
        return f"({inner},)" if len(v.items) == 1 else f"({inner})"
    if isinstance(v, ir.ListValue):
        return "[" + ", ".join(value(x) for x in v.items) + "]"
    raise TypeError(f"not a value: {v!r}")


def call(c: ir.Call) -> str:
    args = [value(a) for a in c.args] + [f"{k.name}={value(k.value)}" for k in c.kwargs]
    return f"{c.name}({', '.join(args)})"


def statement(s: ir.Statement) -> str:
    if isinstance(s, ir.Input):
        if s.shape is None:
            return f"input {s.name}"
        dims = ", ".join(value(d) for d in s.shape)
        return f"input {s.name}: {'int' if s.dtype == 'int' else ''}[{dims}]"
    if isinstance(s, ir.Output):
        return "output " + ", ".join(s.names)
    if isinstance(s, ir.Setting):
        return f"{s.key}: {value(s.value)}"
    if isinstance(s, ir.Flow):
        parts = []
        if len(s.sources) == 1:
            parts.append(s.sources[0])
        elif s.sources:
            parts.append("(" + ", ".join(s.sources) + ")")
        for step in s.steps:
            parts.append(call(step.call) if step.repeat is None else f"repeat {value(step.repeat)} {call(step.call)}")
        if s.target is not None:
            parts.append(s.target)
        return _wrap(parts)
    raise TypeError(f"not a statement: {s!r}")


def _wrap(parts: list[str]) -> str:
    """`a -> b -> c`, broken before an arrow where a line would pass WIDTH; the next line starts with
    `->`, indented one step further (the grammar joins a line that starts with an arrow)."""
    lines = [parts[0]]
    for part in parts[1:]:
        indent = len(INDENT) * (1 if len(lines) == 1 else 2)
        if indent + len(lines[-1]) + len(" -> ") + len(part) > WIDTH and lines[-1].strip() != "->":
            lines.append(INDENT + "-> " + part)
        else:
            lines[-1] += " -> " + part
    return "\n".join(lines)


class _Writer:
    """Collects lines, emitting each pending comment before the first line written after it, and
    keeping one blank line where the source had one or more between two lines of a body."""

    def __init__(self, comments: Sequence[tuple[int, str]], blank: set[int]):
        self.lines: list[str] = []
        self.comments = sorted(comments)
        self.at = 0
        self.blank, self.last = blank, 0  # the source's blank lines; the last source line written

    def _gap(self, line: int) -> None:
        if self.last and self.lines and self.lines[-1] and any(n in self.blank for n in range(self.last + 1, line)):
            self.lines.append("")

    def flush_until(self, line: int | None, indent: str) -> None:
        while self.at < len(self.comments) and (line is None or self.comments[self.at][0] < line):
            self._gap(self.comments[self.at][0])
            self.lines.append(indent + self.comments[self.at][1])
            self.last = self.comments[self.at][0]
            self.at += 1

    def emit(self, text: str, span_line: int, end_line: int, indent: str) -> None:
        if span_line:
            self.flush_until(span_line, indent)
            self._gap(span_line)
        inside = []  # comments on the statement's own lines
        while self.at < len(self.comments) and span_line and self.comments[self.at][0] <= end_line:
            inside.append(self.comments[self.at][1])
            self.at += 1
        rows = [indent + row for row in text.split("\n")]
        if len(inside) == 1 and len(rows) == 1:
            rows[0] += "  " + inside[0]  # one comment after a one-line statement stays there
        else:  # several, or a statement on several lines: each comment on a line of its own, above it
            rows = [indent + c for c in inside] + rows
        self.lines += rows
        self.last = max(self.last, end_line)


def layout(text: str) -> tuple[list[tuple[int, str]], list[int]]:
    """The comments of a source text as (line, text), and the line of each top-level `}`."""
    comments, closes, depth, line, i = [], [], 0, 1, 0
    while i < len(text):
        c = text[i]
        if c == "\n":
            line += 1
        elif c == '"':
            i += 1
            while i < len(text) and text[i] not in '"\n':
                i += 2 if text[i] == "\\" else 1
        elif c == "#":
            end = text.find("\n", i)
            end = len(text) if end < 0 else end
            comments.append((line, text[i:end].rstrip()))
            i = end
            continue
        elif c == "{":
            depth += 1
        elif c == "}":
            depth -= 1
            if depth == 0:
                closes.append(line)
        i += 1
    return comments, closes


def format_spec(spec: ir.Spec, source: str | None = None) -> str:
    """The canonical text of a spec; with the `source` it came from, its comments are kept."""
    comments, closes = layout(source) if source is not None else ([], [])
    closes = iter(closes)
    blank = {n for n, text in enumerate((source or "").split("\n"), 1) if not text.strip()}
    w = _Writer(comments, blank)
    for i, item in enumerate(spec.items):
        one_line = (ir.Const, ir.Use)  # consecutive one-line items stay together
        if i and not (isinstance(item, one_line) and type(spec.items[i - 1]) is type(item)):
            w.lines.append("")
        line = item.span.line
        if isinstance(item, ir.Use):
            w.emit(f"use {value(item.name) if item.is_file else item.name}", line, line, "")
            continue
        if isinstance(item, ir.Const):
            w.emit(f"const {item.name} = {value(item.value)}", line, line, "")
            continue
        if isinstance(item, ir.Block):
            params = ", ".join(p.name if p.default is None else f"{p.name}={value(p.default)}" for p in item.params)
            head, body = f"block {item.name}({params}) {{", item.body
        elif isinstance(item, ir.Model):
            head, body = f"model {item.name} {{", item.body
        else:
            head, body = "train {", item.settings
        w.emit(head, line, line, "")
        w.last = 0  # no blank line at the top of a body
        for s in body:
            w.emit(statement(s), s.span.line, max(s.span.end_line, s.span.line), INDENT)
        w.flush_until(next(closes, None), INDENT)
        w.lines.append("}")
    w.flush_until(None, "")
    return "\n".join(w.lines).strip("\n") + "\n"
