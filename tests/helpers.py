"""Shared test helpers: the specs we ship and the `dls` command of this environment."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SPECS = sorted((ROOT / "specs").glob("*.dls"))
DLS = Path(sys.executable).with_name("dls")


def dls(*args: str, cwd: Path | None = None, env: dict | None = None, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run([str(DLS), *map(str, args)], check=False, capture_output=True, text=True, cwd=cwd, env=env, timeout=timeout)
