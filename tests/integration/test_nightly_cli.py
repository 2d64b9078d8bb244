"""``python -m flows.nightly`` from a plain shell: no source fails at once naming the setting,
and Prefect's state goes under the project's var/ folder, never into ``$HOME``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from builders import ROOT


def _plain_env(tmp_path: Path) -> dict[str, str]:
    """A shell without any Prefect setting, HOME and var/ in temporary folders."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("PREFECT_", "BATI_")) and k != "DO_NOT_TRACK"
    }
    (tmp_path / "home").mkdir()
    env.update(HOME=str(tmp_path / "home"), BATI_VAR_DIR=str(tmp_path / "var"))
    return env


def _run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "flows.nightly", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_no_source_fails_at_once_naming_the_setting(tmp_path: Path) -> None:
    env = _plain_env(tmp_path)
    t0 = time.perf_counter()
    proc = _run([], env)
    assert proc.returncode == 1
    (line,) = proc.stderr.strip().splitlines()
    assert "BATI_LANDING" in line and "--landing" in line and "--demo" in line
    assert "error" in json.loads(proc.stdout.strip().splitlines()[-1])
    assert time.perf_counter() - t0 < 30  # no Prefect server was started
    assert not list((tmp_path / "home").iterdir())


def test_a_plain_shell_run_keeps_prefect_state_in_var_not_home(tmp_path: Path) -> None:
    env = _plain_env(tmp_path)
    (tmp_path / "landing").mkdir()  # nothing landed: a quick night that trains nothing
    proc = _run(["--landing", str(tmp_path / "landing")], env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    assert (summary["new_files"], summary["trained"], summary["model_version"]) == (0, False, None)
    assert summary["skipped_reason"] == "the transaction store is empty"
    written = [p for p in (tmp_path / "home").rglob("*")]
    assert written == [], f"written under HOME: {written[:5]}"
    assert (tmp_path / "var" / "prefect").is_dir()
    assert "telemetry" not in proc.stderr.lower()
