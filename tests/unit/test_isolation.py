"""The suite's own state stays in its session folder (tests/conftest.py)."""

from __future__ import annotations

import os
from pathlib import Path


def test_prefect_state_lives_in_the_session_folder_whatever_make_exports() -> None:
    """`make test` exports the project's var/prefect (for `make run` and `make server`); the
    tests' Prefect home and results must still be the session's temporary folder, beside its
    var/ (before: the exported folder, absent on a fresh clone, warned at every import)."""
    session = Path(os.environ["BATI_VAR_DIR"]).parent
    assert Path(os.environ["PREFECT_HOME"]) == session / "prefect"
    assert Path(os.environ["PREFECT_RESULTS_LOCAL_STORAGE_PATH"]).is_relative_to(session)
    project = Path(__file__).resolve().parents[2]
    assert not Path(os.environ["PREFECT_HOME"]).is_relative_to(project)
