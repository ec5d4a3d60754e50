"""`use`: blocks from dlspec's library (`use resnet` reads dlspec/stdlib/resnet.dls) or from
another spec file (`use "blocks.dls"`, relative to the spec). A library holds blocks, constants
and `use` lines; its blocks join the spec's as if written there, and errors inside them point at
the library's file."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from . import ir
from .diagnostics import DlsError, did_you_mean, error
from .parser import parse


def _stdlib() -> Path:
    return Path(str(resources.files("dlspec").joinpath("stdlib")))


def library_names() -> list[str]:
    return sorted(p.stem for p in _stdlib().glob("*.dls"))


def _locate(use: ir.Use, base: Path) -> Path:
    if use.is_file:
        path = base / use.name
        if not path.is_file():
            raise error(f"no such file: {path}", use.span, hint="a `use`d file is named relative to the spec's folder")
        return path
    path = _stdlib() / f"{use.name}.dls"
    if not path.is_file():
        names = library_names()
        raise error(f"dlspec has no library `{use.name}`", use.span,
                    hint=did_you_mean(use.name, names) or f"the libraries: {', '.join(names)}; "
                    'or name a file of yours in quotes, e.g. `use "blocks.dls"`')
    return path


def _read(path: Path, use: ir.Use) -> ir.Spec:
    from .check import read_source  # check imports this module

    try:
        return parse(read_source(path), file=str(path))
    except DlsError as exc:  # a library without spans in its own file (unreadable): point at the `use`
        first, *rest = exc.diagnostics
        if not first.span.known:
            first = first.model_copy(update={"span": use.span})
        raise DlsError([first, *rest]) from None


def _collect(spec: ir.Spec, base: Path, items: list, seen: set[Path]) -> None:
    for use in spec.of(ir.Use):
        path = _locate(use, base).resolve()
        if path in seen:  # each library once, even when used twice or in a cycle
            continue
        seen.add(path)
        lib = _read(path, use)
        for item in lib.items:
            if isinstance(item, ir.Model | ir.Train):
                what = "a model" if isinstance(item, ir.Model) else "a train section"
                raise error(f"a library holds blocks and constants only; this one has {what}", item.span,
                            hint="move it into the spec that uses the library",
                            related=(use.span, "used here"))
        _collect(lib, path.parent, items, seen)
        items += [item for item in lib.items if isinstance(item, ir.Block | ir.Const)]


def with_uses(spec: ir.Spec, base: Path) -> ir.Spec:
    """The spec with the blocks and constants of every `use` (and theirs) before its own items."""
    items: list = []
    _collect(spec, base, items, set())
    return spec.model_copy(update={"items": (*items, *spec.items)}) if items else spec
