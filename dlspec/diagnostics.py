"""Errors as values: a `Diagnostic` carries a span, a message and a hint, and is rendered once."""

from __future__ import annotations

import difflib
from collections.abc import Iterable

from pydantic import BaseModel, ConfigDict


class Span(BaseModel):
    """Where a node came from: 1-based line and column of its first and last character.

    Spans never take part in equality: two IR nodes are equal when they say the same thing,
    wherever they were written (this is what makes `parse(print(ir)) == ir` hold).
    """

    model_config = ConfigDict(frozen=True)
    line: int = 0
    column: int = 0
    end_line: int = 0
    end_column: int = 0

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Span)

    def __hash__(self) -> int:
        return 0

    @property
    def known(self) -> bool:
        return self.line > 0


NOWHERE = Span()


class Diagnostic(BaseModel):
    model_config = ConfigDict(frozen=True)
    message: str
    span: Span = NOWHERE
    hint: str | None = None
    severity: str = "error"
    # A second place involved in the problem (e.g. where the other shape came from).
    related: tuple[Span, str] | None = None


class DlsError(Exception):
    """Raised with one or more diagnostics; the CLI renders them and exits 2."""

    def __init__(self, diagnostics: Diagnostic | Iterable[Diagnostic]):
        self.diagnostics = (
            [diagnostics] if isinstance(diagnostics, Diagnostic) else list(diagnostics)
        )
        super().__init__("; ".join(d.message for d in self.diagnostics))


def error(message: str, span: Span = NOWHERE, hint: str | None = None, **kw) -> DlsError:
    return DlsError(Diagnostic(message=message, span=span, hint=hint, **kw))


def did_you_mean(word: str, choices: Iterable[str]) -> str | None:
    """A hint naming the closest known word, or None when nothing is close."""
    close = difflib.get_close_matches(word, sorted(set(choices)), n=1, cutoff=0.6)
    return f"did you mean `{close[0]}`?" if close else None


def _excerpt(source: str, span: Span) -> list[str]:
    lines = source.splitlines()
    if not span.known or span.line > len(lines):
        return []
    text = lines[span.line - 1].expandtabs(1)
    end = span.end_column if span.end_line == span.line and span.end_column > span.column else span.column + 1
    width = max(1, min(end, len(text) + 1) - span.column)
    return [f"  {span.line:>4} | {text}", "       | " + " " * (span.column - 1) + "^" * width]


def render(diag: Diagnostic, filename: str, source: str | None) -> str:
    """`file:line:col: error: message`, the source line with a caret under the span, the hint."""
    where = f"{filename}:{diag.span.line}:{diag.span.column}" if diag.span.known else filename
    out = [f"{where}: {diag.severity}: {diag.message}"]
    if source is not None:
        out += _excerpt(source, diag.span)
    if diag.related is not None:
        rspan, rmsg = diag.related
        if rspan.known:
            out.append(f"{filename}:{rspan.line}:{rspan.column}: note: {rmsg}")
            if source is not None:
                out += _excerpt(source, rspan)
    if diag.hint:
        out.append(f"  hint: {diag.hint}")
    return "\n".join(out)
