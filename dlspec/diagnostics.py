"""Errors as values: a `Diagnostic` carries a span, a message and a hint, and is rendered once."""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from pathlib import Path

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
    file: str = ""  # set for a span in another file than the spec's: a `use`d library

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Span)

    def __hash__(self) -> int:
        return 0

    @property
    def known(self) -> bool:
        return self.line > 0

    def head(self, width: int) -> Span:
        """The first `width` characters of this span (e.g. a call's name)."""
        return self.model_copy(update={"end_line": self.line, "end_column": self.column + width}) if self.known else self


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
    """A hint naming the closest known word (ignoring case), or None when nothing is close."""
    by_lower = {c.lower(): c for c in sorted(set(choices), reverse=True)}
    close = difflib.get_close_matches(word.lower(), by_lower, n=1, cutoff=0.7)
    return f"did you mean `{by_lower[close[0]]}`?" if close else None


def _printable(text: str) -> str:
    """User text made safe for a terminal: control characters (e.g. escape sequences) shown as `\\x1b`."""
    return "".join(c if c.isprintable() or c == "\n" else repr(c)[1:-1] for c in text)


def _excerpt(source: str, span: Span) -> list[str]:
    lines = source.split("\n")
    if not span.known or span.line > len(lines):
        return []
    # One character per column, so the caret lines up: tabs become spaces, other controls `?`.
    text = "".join(c if c.isprintable() else " " if c == "\t" else "?" for c in lines[span.line - 1].rstrip("\r"))
    end = span.end_column if span.end_line == span.line and span.end_column > span.column else span.column + 1
    width = max(1, min(end, len(text) + 1) - span.column)
    return [f"  {span.line:>4} | {text}", "       | " + " " * (span.column - 1) + "^" * width]


def _where(span: Span, filename: str, source: str | None) -> tuple[str, str | None]:
    """The file a span is in and its text: the spec's, or a `use`d library's."""
    if not span.file:
        return _printable(filename), source
    try:
        return _printable(span.file), Path(span.file).read_text(encoding="utf-8")
    except OSError:
        return _printable(span.file), None


def render(diag: Diagnostic, filename: str, source: str | None) -> str:
    """`file:line:col: error: message`, the source line with a caret under the span, the hint."""
    name, text = _where(diag.span, filename, source)
    where = f"{name}:{diag.span.line}:{diag.span.column}" if diag.span.known else name
    out = [f"{where}: {diag.severity}: {_printable(diag.message)}"]
    if text is not None:
        out += _excerpt(text, diag.span)
    if diag.related is not None:
        rspan, rmsg = diag.related
        if rspan.known:
            rname, rtext = _where(rspan, filename, source)
            out.append(f"{rname}:{rspan.line}:{rspan.column}: note: {_printable(rmsg)}")
            if rtext is not None:
                out += _excerpt(rtext, rspan)
    if diag.hint:
        out.append("  hint: " + _printable(diag.hint).replace("\n", "\n        "))
    return "\n".join(out)
