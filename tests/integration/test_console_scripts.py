"""Console scripts of pyproject's [project.scripts]: installed, and each answers --help."""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from builders import ROOT

SCRIPTS = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
BIN = Path(sys.executable).parent


def run(name: str, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(BIN / name), *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **(env or {})},
        cwd=ROOT,
    )


def test_every_documented_script_is_declared() -> None:
    expected = {
        "bati-retrain", "bati-score", "bati-nightly", "bati-monitor", "bati-registry",
        "bati-ingest", "bati-sampledata", "bati-api",
    }  # fmt: skip
    assert expected <= set(SCRIPTS)


@pytest.mark.parametrize("name", sorted(SCRIPTS))
def test_console_script_help(name: str, tmp_path: Path) -> None:
    if not (BIN / name).exists():
        pytest.fail(f"{name} is not installed: run .venv/bin/python -m pip install -e '.[dev]'")
    done = run(name, "--help", env={"PREFECT_HOME": str(tmp_path / "prefect")})
    assert done.returncode == 0, done.stderr[-2000:]
    assert "usage:" in done.stdout.lower()
    assert "Traceback" not in done.stderr


def test_bati_api_refuses_a_bad_setting_in_one_line() -> None:
    done = run("bati-api", "--check", env={"BATI_RELOAD_SECONDS": "soon"})
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "bati api: refused setting BATI_RELOAD_SECONDS: must be a number"
    ]
    ok = run("bati-api", "--check", env={"BATI_RELOAD_SECONDS": "5"})
    assert ok.returncode == 0 and "'reload_seconds': 5.0" in ok.stdout
