"""Prefect's own database on PostgreSQL (issue 16.5): a Prefect server started with
``PREFECT_API_DATABASE_CONNECTION_URL=postgresql+asyncpg://...`` on a dedicated database of the
local PostgreSQL (``BATI_TEST_PG_URL``; skipped without it) runs a flow, whose run is then read
back from that database."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from registry.testing import PG_ENV

ROOT = Path(__file__).resolve().parents[2]
FLOW = """
from prefect import flow, task

@task
def double(x: int) -> int:
    return 2 * x

@flow(name="pg-smoke")
def pg_smoke(n: int) -> int:
    return sum(double.map(range(n)).result())

print(pg_smoke(4))
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def prefect_pg_database() -> Iterator[tuple[str, str]]:
    """(asyncpg URL for Prefect, psycopg URL for the checks) of a fresh database, dropped after."""
    base = os.environ.get(PG_ENV)
    if not base:
        pytest.skip(f"Prefect on PostgreSQL needs {PG_ENV} (e.g. postgresql+psycopg://...)")
    name = f"prefect_test_{os.getpid()}"
    admin = sa.create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}"'))
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    url = sa.engine.make_url(base).set(database=name)
    try:
        yield (
            url.set(drivername="postgresql+asyncpg").render_as_string(hide_password=False),
            url.render_as_string(hide_password=False),
        )
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def _wait_healthy(api: str, server: subprocess.Popen, timeout: float = 180.0) -> None:
    """Poll ``/health`` once a second until it answers 200 (the server may not exit first)."""
    for _ in range(int(timeout)):
        assert server.poll() is None, f"the Prefect server exited with {server.returncode}"
        with contextlib.suppress(OSError), urllib.request.urlopen(f"{api}/health", timeout=2) as r:
            if r.status == 200:
                return
        time.sleep(1)
    raise AssertionError("the Prefect server did not answer /api/health in time")


@pytest.mark.e2e
def test_prefect_server_runs_a_flow_on_postgresql(prefect_pg_database, tmp_path: Path) -> None:
    prefect_url, check_url = prefect_pg_database
    port = _free_port()
    api = f"http://127.0.0.1:{port}/api"
    env = {
        **os.environ,
        "PREFECT_HOME": str(tmp_path / "prefect"),
        "PREFECT_API_DATABASE_CONNECTION_URL": prefect_url,
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "DO_NOT_TRACK": "1",
        "PREFECT_UI_ENABLED": "false",
    }
    env.pop("PREFECT_API_URL", None)
    prefect = str(Path(sys.executable).parent / "prefect")
    server = subprocess.Popen(
        [prefect, "server", "start", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        _wait_healthy(api, server)
        run = subprocess.run(
            [sys.executable, "-c", FLOW],
            env={**env, "PREFECT_API_URL": api},
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert run.returncode == 0, run.stderr[-2000:]
        assert run.stdout.strip().splitlines()[-1] == "12"
    finally:
        server.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            server.wait(timeout=30)
        if server.poll() is None:
            server.kill()
            server.wait()

    # The run and its four task runs are rows of Prefect's tables in PostgreSQL.
    engine = sa.create_engine(check_url)
    try:
        with engine.connect() as conn:
            flows = conn.execute(
                sa.text(
                    "SELECT fr.state_type FROM flow_run fr JOIN flow f ON f.id = fr.flow_id "
                    "WHERE f.name = 'pg-smoke'"
                )
            ).all()
            tasks = conn.execute(
                sa.text("SELECT count(*) FROM task_run WHERE state_type = 'COMPLETED'")
            ).scalar_one()
    finally:
        engine.dispose()
    assert [str(s) for (s,) in flows] == ["COMPLETED"]
    assert tasks == 4
