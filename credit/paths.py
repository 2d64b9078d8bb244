"""Where the project keeps its generated files (all under var/, never committed)."""

from __future__ import annotations

import os
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def var_dir() -> Path:
    """The folder for generated data, runs and the SQLite database (``BATI_VAR_DIR`` overrides)."""
    path = Path(os.environ.get("BATI_VAR_DIR", PROJECT_ROOT / "var"))
    path.mkdir(parents=True, exist_ok=True)
    return path


def runs_dir() -> Path:
    path = var_dir() / "runs"
    path.mkdir(parents=True, exist_ok=True)
    return path
