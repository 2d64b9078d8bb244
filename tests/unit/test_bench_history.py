"""`make bench` history: one JSON record per run with the commit, compared with the last one."""

from __future__ import annotations

import json

from bench.__main__ import commit, last_record, previous_seconds, save_record, table_lines


def _run(seconds: float) -> dict:
    stage = {
        "stage": "EDA report",
        "rows": 95662,
        "unit": "tx",
        "seconds": seconds,
        "rows_per_s": 1,
        "peak_mib": 600,
        "cpu_s": 1.5,
    }
    return {"rows": 95662, "data_only": False, "stages": [stage]}


def test_records_accumulate_and_the_table_compares_with_the_previous(tmp_path):
    git = commit()
    assert git["commit"] and "dirty" in git
    assert last_record(tmp_path) is None
    first = {"time": 1_700_000_000, "git": git, "machine": {}, "runs": [_run(5.0)], "extras": []}
    p1 = save_record(first, tmp_path)
    p2 = save_record({**first, "runs": [_run(4.0)]}, tmp_path)  # same second: not overwritten
    assert p1 != p2 and p1.name.startswith("20231114T221320Z-" + git["short"])
    assert json.loads(p1.read_text())["git"]["commit"] == git["commit"]
    previous = last_record(tmp_path)
    assert previous["runs"][0]["stages"][0]["seconds"] == 4.0

    lines = table_lines([_run(3.0)], [], previous_seconds(previous))
    assert lines[0].endswith("vs previous |")
    assert "-1.00 s (-25%)" in lines[2] and "| 1.50 |" in lines[2]
    assert table_lines([_run(3.0)], [], {})[2].endswith("new |")
    assert "vs previous" not in table_lines([_run(3.0)], [])[0]


def test_markdown_names_both_commits():
    from bench.__main__ import markdown

    info = {"cpu": "x", "cores": 2, "memory_gib": 4, "python": "3.11", "os": "L", "date": "d"}
    run = {**_run(3.0), "seconds": 9.0, "load_before": [1, 1, 1], "load_after": [1, 1, 1]}
    git = {"commit": "abc", "short": "abc", "dirty": True}
    previous = {
        "git": {"short": "def", "dirty": False},
        "machine": {"date": "then"},
        "runs": [_run(4.0)],
        "extras": [],
    }
    text = markdown(info, [run], [], [], previous, git)
    assert "Commit abc with uncommitted changes" in text and "commit def" in text
    assert "-1.00 s (-25%)" in text
    assert "nothing to compare with" in markdown(info, [run], [], [], None, git)


def test_registry_io_bench_runs_as_a_script_with_the_project_on_pythonpath(tmp_path):
    """``python bench/registry_io.py`` puts bench/ first on sys.path, where bench/registry.py
    shadowed the registry package when the project was also on PYTHONPATH (ImportError)."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": str(root), "BATI_VAR_DIR": str(tmp_path)}
    cmd = [sys.executable, "bench/registry_io.py", "--customers", "200", "--features", "10"]
    proc = subprocess.run(
        [*cmd, "--no-postgres"], cwd=root, env=env, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "sqlite" in proc.stdout
