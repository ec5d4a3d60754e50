"""Loading generated code as a module: `dls run` and `dls verify` execute exactly what
`dls compile` writes, so the three can never disagree."""

from __future__ import annotations

import importlib.util
import itertools
import sys
import tempfile
from pathlib import Path
from types import ModuleType

from .check import Checked

_counter = itertools.count()


def module_source(checked: Checked, target: str, location: Path | None = None) -> str:
    from .backends.codegen import generate

    return generate(checked, target, location)


def load_module(path: Path) -> ModuleType:
    name = f"_dlspec_generated_{next(_counter)}"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def load_generated(checked: Checked, target: str, folder: Path | None = None) -> ModuleType:
    """Writes the generated module for `target` into `folder` (a temporary one if None) and imports it."""
    folder = Path(folder) if folder is not None else Path(tempfile.mkdtemp(prefix="dlspec-"))
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{checked.graph.name.lower()}_{target}.py"
    path.write_text(module_source(checked, target, folder), encoding="utf-8")
    return load_module(path)
