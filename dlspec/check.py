"""The checking pipeline: file → text → IR → graphs → training plan, all or a `DlsError`."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from . import ir
from .diagnostics import Diagnostic, DlsError, Span, error
from .graph import Graph, _Builder, build_all
from .library import with_uses
from .parser import parse
from .training import Plan, plan


@dataclass
class Checked:
    spec: ir.Spec
    graphs: list[Graph]
    plan: Plan | None  # None: no train section, and the default training does not fit the model
    source: str
    filename: str
    warnings: list[Diagnostic] = field(default_factory=list)
    plan_error: DlsError | None = None  # why the default training does not fit

    @property
    def graph(self) -> Graph:
        """The model the train section trains (the first model, without a plan)."""
        name = self.plan.model if self.plan else self.graphs[0].name
        return next(g for g in self.graphs if g.name == name)

    def trainable(self) -> Checked:
        """Itself, when it has a training plan; else the reason, as a `DlsError` with a hint."""
        if self.plan is None:
            d = self.plan_error.diagnostics[0]
            raise DlsError(d if d.hint else d.model_copy(update={"hint": "add a `train { ... }` section that fits the model"}))
        return self


MAX_BYTES = 1_000_000  # far above any hand-written spec; keeps `dls check /dev/zero` from hanging


def read_source(path: str | Path) -> str:
    """The text of a spec file, or a `DlsError` saying why it cannot be one."""
    p = Path(path)
    if not p.exists():
        raise error(f"no such file: {p}", hint="check the path; specs end in .dls")
    if p.is_dir():
        raise error(f"{p} is a folder, not a spec file", hint=f"name a file inside it, e.g. {p}/model.dls")
    if not p.is_file():
        raise error(f"{p} is not a regular file", hint="name a .dls file")
    try:
        with p.open("rb") as f:
            data = f.read(MAX_BYTES + 1)
    except OSError as exc:
        raise error(f"cannot read {p}: {exc.strerror or exc}", hint="check the file's permissions") from None
    if len(data) > MAX_BYTES:
        raise error(f"{p} is larger than {MAX_BYTES:,} bytes, too large for a spec", hint="is this the right file?")
    if b"\x00" in data:
        raise error("this is a binary file, not a .dls spec", hint="a spec is UTF-8 text")
    try:
        return data.decode("utf-8-sig")  # a byte-order mark, as some editors write, is not part of the text
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        column = len(data[data.rfind(b"\n", 0, exc.start) + 1:exc.start].decode("utf-8", "replace")) + 1
        raise error(f"the file is not UTF-8 text: byte 0x{data[exc.start]:02X} cannot be read",
                    Span(line=line, column=column, end_line=line, end_column=column + 1),
                    hint="save the spec as UTF-8 (your editor's encoding setting)") from None


def check_text(text: str, filename: str = "<spec>") -> Checked:
    spec = parse(text)
    base = Path(filename).parent if Path(filename).is_file() else Path()
    full = with_uses(spec, base)  # the spec with the blocks of its `use`d libraries
    graphs = build_all(full)
    builder = _Builder(full)
    training, why = None, None
    try:
        training = plan(full, graphs, lambda v: builder.value(v, {}), base)
    except DlsError as exc:
        if spec.of(ir.Train):
            raise
        why = exc  # without a train section, only compiling and running need the default training
    warnings = [w for g in graphs for w in g.warnings]
    return Checked(spec=spec, graphs=graphs, plan=training, source=text, filename=filename, warnings=warnings,
                   plan_error=why)


def check_file(path: str | Path) -> Checked:
    return check_text(read_source(path), str(path))


__all__ = ["Checked", "DlsError", "check_file", "check_text", "read_source"]
