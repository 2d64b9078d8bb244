"""A run's feature snapshot is served only when the run completes: a retrain killed after it
wrote its snapshot leaves the served snapshot, and the API's answers, as they were."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from builders import ADMIN_TOKEN, ROOT

import sampledata


def _retrain(data: Path, env: dict[str, str], out: Path) -> subprocess.Popen:
    args = ["-m", "flows.retrain", "--data", str(data), "--candidates", "logreg"]
    return subprocess.Popen(
        [sys.executable, *args, "--out-dir", str(out)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )


def test_killed_retrain_leaves_the_served_snapshot_and_answers(tmp_path: Path) -> None:
    from api import create_app
    from registry import Registry, list_snapshots, read_feature_snapshot, served_snapshot_id

    db = f"sqlite:///{tmp_path / 'pub.db'}"
    env = {**os.environ, "BATI_DB_URL": db, "PREFECT_HOME": str(tmp_path / "prefect")}
    env.pop("PREFECT_API_URL", None)
    first, second = tmp_path / "a.parquet", tmp_path / "b.parquet"
    sampledata.write(sampledata.generate(rows=12_000, customers=400, seed=3), first)
    sampledata.write(sampledata.generate(rows=12_000, customers=400, seed=4), second)

    done = _retrain(first, env, tmp_path / "run1")
    out, err = done.communicate(timeout=600)
    assert done.returncode == 0, err.decode()[-3000:]
    with Registry(db) as reg:
        served = served_snapshot_id(reg)
        before_ids = {s.id for s in list_snapshots(reg)}
    assert served is not None

    config = {"db_url": db, "admin_token": ADMIN_TOKEN, "start_background": False}
    app = create_app(config)
    client = app.test_client()
    with Registry(db) as reg:
        customers = list(read_feature_snapshot(reg).index[:5])
    answers = {c: client.post("/v1/score", json={"customer_id": c}) for c in customers}
    assert all(r.status_code == 200 for r in answers.values())
    answers = {c: r.get_json() for c, r in answers.items()}

    # The second retrain is killed once its snapshot is written (before its promotion).
    killed = _retrain(second, env, tmp_path / "run2")
    deadline = time.monotonic() + 600
    new = []
    while time.monotonic() < deadline and killed.poll() is None:
        with Registry(db) as reg:
            new = [s for s in list_snapshots(reg) if s.id not in before_ids]
        if new:
            break
        time.sleep(0.2)
    assert new, "the second retrain never wrote its snapshot"
    os.killpg(killed.pid, signal.SIGKILL)
    killed.wait(timeout=30)

    with Registry(db) as reg:
        assert served_snapshot_id(reg) == served
        assert not any(s.published for s in list_snapshots(reg) if s.id not in before_ids)
    # A worker that reloads now, and one started now, serve exactly what was served before.
    state = app.extensions["bati"]
    state.holder.refresh()
    fresh_app = create_app(config)
    for c, expected in answers.items():
        for api in (client, fresh_app.test_client()):
            got = api.post("/v1/score", json={"customer_id": c}).get_json()
            assert _stable(got) == _stable(expected)
    for a in (app, fresh_app):
        a.extensions["bati"].close()


def _stable(body: dict) -> dict:
    """A score without its per-request fields."""
    return {k: v for k, v in body.items() if k not in ("request_id", "scored_at")}
