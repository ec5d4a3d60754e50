"""The checking pipeline: file → text → IR → graphs → training plan, all or a `DlsError`."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from . import ir
from .diagnostics import Diagnostic, DlsError, error
from .graph import Graph, _Builder, build_all
from .parser import parse
from .training import Plan, plan


@dataclass
class Checked:
    spec: ir.Spec
    graphs: list[Graph]
    plan: Plan
    source: str
    filename: str
    warnings: list[Diagnostic] = field(default_factory=list)

    @property
    def graph(self) -> Graph:
        """The model the train section trains."""
        return next(g for g in self.graphs if g.name == self.plan.model)


def read_source(path: str | Path) -> str:
    p = Path(path)
    if not p.exists():
        raise error(f"no such file: {p}", hint="check the path; specs end in .dls")
    if p.is_dir():
        raise error(f"{p} is a folder, not a spec file", hint=f"name a file inside it, e.g. {p}/model.dls")
    data = p.read_bytes()
    if b"\x00" in data:
        raise error("this is a binary file, not a .dls spec", hint="a spec is UTF-8 text")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise error(f"the file is not UTF-8 text (byte {exc.start} cannot be read)", hint="save the spec as UTF-8") from None


def check_text(text: str, filename: str = "<spec>") -> Checked:
    spec = parse(text)
    graphs = build_all(spec)
    builder = _Builder(spec)
    training = plan(spec, graphs, lambda v: builder.value(v, {}))
    warnings = [w for g in graphs for w in g.warnings]
    return Checked(spec=spec, graphs=graphs, plan=training, source=text, filename=filename, warnings=warnings)


def check_file(path: str | Path) -> Checked:
    return check_text(read_source(path), str(path))


__all__ = ["Checked", "DlsError", "check_file", "check_text", "read_source"]
