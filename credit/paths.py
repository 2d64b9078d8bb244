"""Where the project keeps its generated files (all under var/, never committed)."""

from __future__ import annotations

import subprocess
from pathlib import Path

from schemas.defaults import PROJECT_ROOT, var_path

__all__ = ["PROJECT_ROOT", "code_version", "runs_dir", "var_dir"]


def var_dir() -> Path:
    """The folder for generated data, runs and the SQLite database (``BATI_VAR_DIR`` overrides)."""
    path = var_path()
    path.mkdir(parents=True, exist_ok=True)
    return path


def runs_dir() -> Path:
    path = var_dir() / "runs"
    path.mkdir(parents=True, exist_ok=True)
    return path


def code_version() -> str | None:
    """The git commit the code runs from, when it is a checkout."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=PROJECT_ROOT,
            capture_output=True,
            text=True,
            timeout=5,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None
