"""Prefect flows: ``nightly`` (the night: ingest, retrain, score), ``retrain``, ``score``."""

import os as _os
from contextlib import suppress as _suppress
from pathlib import Path as _Path

from schemas.defaults import var_path as _var_path


def _prefect_defaults() -> None:
    """Before Prefect is imported: its state in the project's var/prefect (not ``$HOME``),
    matplotlib's cache in var/matplotlib, no telemetry, unless set; so a command pasted from
    the README behaves as ``make`` does."""
    home = _var_path() / "prefect"
    if "PREFECT_HOME" not in _os.environ:
        home.mkdir(parents=True, exist_ok=True)
        _os.environ["PREFECT_HOME"] = str(home)
    else:  # cached task results live with the rest of that Prefect state
        home = _Path(_os.environ["PREFECT_HOME"]).expanduser()
        # `make` exports var/prefect before var/ exists (a fresh clone): Prefect creates only
        # the last level (it warned), and the temporary server could not open its database
        with _suppress(OSError):  # Prefect says so itself
            home.mkdir(parents=True, exist_ok=True)
    _os.environ.setdefault("MPLCONFIGDIR", str(_var_path() / "matplotlib"))
    # The temporary server of a run without PREFECT_API_URL starts slowly on a busy small machine.
    _os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "90")
    _os.environ.setdefault("PREFECT_RESULTS_LOCAL_STORAGE_PATH", str(home / "results"))
    _os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    _os.environ.setdefault("DO_NOT_TRACK", "1")


_prefect_defaults()
