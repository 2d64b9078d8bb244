"""Faults and load, with nothing lost: the database failing during registration, the retrain
flow killed mid-run, the API started before any model exists, PostgreSQL restarted under a
serving API, and the API held at its benchmarked rate with a promotion in the middle.

PostgreSQL faults run against a private, throw-away PostgreSQL server (``initdb`` in a temporary
folder, its own port) so that stopping and restarting it never disturbs the shared server other
suites use; they are skipped with the reason when the PostgreSQL server binaries are not
installed. Every fault test checks the same three things: the failure is loud (an exception or a
documented HTTP error, never a hang or a 500), nothing half-written remains, and what was served
or scored is not lost.
"""

from __future__ import annotations

import glob
import json
import os
import pwd
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from builders import (
    ADMIN_TOKEN,
    MODEL_NAME,
    ROOT,
    World,
    build_world,
    last_json,
    run_python,
    start_python,
    transactions_json,
)
from sqlalchemy import create_engine, event, text
from sqlalchemy.exc import OperationalError

from api import create_app
from bench import soak
from registry import Registry

pytestmark = pytest.mark.e2e


def count(url: str, table: str) -> int:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return conn.execute(text(f"SELECT count(*) FROM {table}")).scalar_one()  # noqa: S608
    finally:
        engine.dispose()


def register_next(reg: Registry, world: World, tag: str) -> Any:
    """Register the world's v1 model again as a new version (what a retrain would do)."""
    from builders import register

    return register(reg, world.models[1], world.snapshot, tag=tag)


# =============================================================================================
# A private PostgreSQL server
# =============================================================================================


def _pg_bindir() -> Path | None:
    """The folder holding the PostgreSQL server programs (initdb, pg_ctl), if installed."""
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(p.split("/")[4]))
    try:
        out = subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True, timeout=10)
        candidates.append(out.stdout.strip())
    except (OSError, subprocess.SubprocessError):
        pass
    for folder in reversed(candidates):
        if folder and all((Path(folder) / name).exists() for name in ("initdb", "pg_ctl")):
            return Path(folder)
    return None


@dataclass
class PrivatePostgres:
    """A PostgreSQL server of our own: started, stopped and restarted at will."""

    bindir: Path
    folder: Path
    port: int
    as_user: list[str]

    @property
    def data(self) -> Path:
        return self.folder / "data"

    def _ctl(self, *args: str) -> float:
        opts = (
            f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 -c fsync=off "
            "-c full_page_writes=off -c max_connections=200"
        )
        start = time.monotonic()
        subprocess.run(
            [*self.as_user, str(self.bindir / "pg_ctl"), "-D", str(self.data)]
            + ["-l", str(self.folder / "server.log"), "-w", "-t", "60", *args, "-o", opts],
            check=True,
            capture_output=True,
            timeout=90,
        )
        return time.monotonic() - start

    def start(self) -> float:
        return self._ctl("start")

    def stop(self, mode: str = "fast") -> float:
        return self._ctl("stop", "-m", mode)

    def restart(self, down_seconds: float = 0.0, while_down: Any = None) -> float:
        """Stop (fast: sessions terminated), stay down ``down_seconds`` (calling ``while_down``
        meanwhile), start; returns the seconds the server was unavailable."""
        start = time.monotonic()
        self.stop("fast")
        if while_down is not None:
            while_down()
        time.sleep(max(0.0, down_seconds - (time.monotonic() - start)))
        self.start()
        return time.monotonic() - start

    def is_up(self) -> bool:
        done = subprocess.run(
            [*self.as_user, str(self.bindir / "pg_ctl"), "-D", str(self.data), "status"],
            capture_output=True,
            timeout=30,
        )
        return done.returncode == 0

    def ensure_up(self) -> None:
        if not self.is_up():
            self.start()

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        engine = create_engine(self.url(), isolation_level="AUTOCOMMIT")
        with engine.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        engine.dispose()
        return self.url(name)


@pytest.fixture(scope="module")
def private_pg() -> Iterator[PrivatePostgres]:
    bindir = _pg_bindir()
    if bindir is None:
        pytest.skip("PostgreSQL server binaries (initdb, pg_ctl) are not installed")
    as_user: list[str] = []
    folder = Path(tempfile.mkdtemp(prefix="bati-pg-"))
    if os.geteuid() == 0:  # initdb refuses to run as root: run the server as "postgres"
        try:
            owner = pwd.getpwnam("postgres")
        except KeyError:
            pytest.skip("running as root without a 'postgres' user to own a private server")
        if not shutil.which("runuser"):
            pytest.skip("running as root without runuser to start a private server")
        os.chown(folder, owner.pw_uid, owner.pw_gid)
        as_user = ["runuser", "-u", "postgres", "--"]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = PrivatePostgres(bindir, folder, port, as_user)
    subprocess.run(
        [*as_user, str(bindir / "initdb"), "-D", str(server.data), "-U", "postgres"]
        + ["--auth=trust", "-E", "UTF8", "--no-sync"],
        check=True,
        capture_output=True,
        timeout=120,
    )
    server.start()
    try:
        yield server
    finally:
        if server.is_up():
            server.stop("immediate")
        shutil.rmtree(folder, ignore_errors=True)


# =============================================================================================
# 1. The database fails during registration
# =============================================================================================


def _api(url: str, **overrides: Any) -> Any:
    config = {"db_url": url, "admin_token": ADMIN_TOKEN, "start_background": False}
    return create_app({**config, **overrides})


def _assert_serves(client: Any, world: World, version: int) -> None:
    for cid in world.customers()[:5]:
        resp = client.post("/v1/score", json={"customer_id": cid})
        assert resp.status_code == 200, resp.get_data(as_text=True)
        assert resp.get_json()["model_version"] == version


def test_database_error_during_registration_sqlite(tmp_path: Path) -> None:
    """The SQLite file fails at the artifact write: no version, the API keeps serving v1."""
    world = build_world(f"sqlite:///{tmp_path / 'bati.db'}")
    app = _api(world.url)
    client = app.test_client()
    reg = Registry(world.url)

    def disk_fails(conn, cursor, statement, params, context, executemany):  # noqa: ANN001
        if statement.lstrip().upper().startswith("INSERT INTO MODEL_ARTIFACTS"):
            raise sqlite3.OperationalError("disk I/O error")

    event.listen(reg.engine, "before_cursor_execute", disk_fails)
    try:
        with pytest.raises(OperationalError, match="disk I/O"):
            register_next(reg, world, "doomed")
    finally:
        event.remove(reg.engine, "before_cursor_execute", disk_fails)
    try:
        assert [v.version for v in reg.list_versions(MODEL_NAME)] == [1, 2]
        assert count(world.url, "model_artifacts") == 2
        assert app.extensions["bati"].holder.refresh() is False
        _assert_serves(client, world, 1)
        assert register_next(reg, world, "retried").version == 3  # no number was consumed
    finally:
        reg.close()
        app.extensions["bati"].close()


@pytest.mark.postgres
def test_postgres_dies_during_registration(private_pg: PrivatePostgres) -> None:
    """The server is killed (``pg_ctl stop -m immediate``: a crash) while the version and its
    artifact are being written: the registration fails, the restarted server holds no trace of
    it, the API served v1 throughout and the retried registration gets the next number."""
    url = private_pg.create_database("register_crash")
    world = build_world(url)
    app = _api(url)
    client = app.test_client()
    state = app.extensions["bati"]
    reg = Registry(url)
    crashed: dict[str, float] = {}

    def crash_server(conn, cursor, statement, params, context, executemany):  # noqa: ANN001
        if statement.lstrip().upper().startswith("INSERT INTO MODEL_ARTIFACTS") and not crashed:
            crashed["stop_s"] = private_pg.stop("immediate")

    event.listen(reg.engine, "before_cursor_execute", crash_server)
    try:
        with pytest.raises(OperationalError):
            register_next(reg, world, "doomed")
        assert crashed, "the fault was never injected"
        # While the database is down: scores from memory, registry endpoints say 503.
        _assert_serves(client, world, 1)
        assert client.get("/ready").status_code == 200
        down = client.get("/v1/models")
        assert down.status_code == 503
        assert down.get_json()["error"]["code"] == "database_unavailable"
        assert state.holder.refresh() is False and state.holder.current.version == 1
    finally:
        event.remove(reg.engine, "before_cursor_execute", crash_server)
        private_pg.ensure_up()
    try:
        assert [v.version for v in reg.list_versions(MODEL_NAME)] == [1, 2]
        assert count(url, "model_artifacts") == 2
        assert client.get("/v1/models").status_code == 200  # recovered without a restart
        assert register_next(reg, world, "retried").version == 3
        assert reg.load_model(MODEL_NAME, 3, use_cache=False) is not None
        _assert_serves(client, world, 1)  # a registration alone changes nothing served
    finally:
        reg.close()
        state.close()


# =============================================================================================
# 2. The retrain flow killed mid-run
# =============================================================================================


@pytest.fixture(scope="module")
def tiny_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small generated set: a retrain of it takes seconds (300 customers, 8,000 rows)."""
    import sampledata

    path = tmp_path_factory.mktemp("tiny") / "xente_tiny.parquet"
    sampledata.write(sampledata.generate(rows=8000, customers=300, seed=7), path)
    return path


_KILL_AT_REGISTRATION = textwrap.dedent(
    """
    import os, runpy, signal, sys
    import registry.core as core

    real_register = core.Registry.register

    def register(self, *args, **kwargs):
        # Die like a power cut at the commit of the version + artifact transaction.
        core.RegistrySession.commit = lambda session: os.kill(os.getpid(), signal.SIGKILL)
        return real_register(self, *args, **kwargs)

    core.Registry.register = register
    sys.argv = ["flows.retrain", *sys.argv[1:]]
    runpy.run_module("flows.retrain", run_name="__main__", alter_sys=True)
    """
)


def _retrain_args(
    data: Path, db_url: str, out_dir: Path, *, kill_at_registration: bool
) -> list[str]:
    """The Python arguments of one retrain run (``-m flows.retrain ...`` or the killing wrapper)."""
    args = ["--data", str(data), "--candidates", "logreg", "--db-url", db_url]
    args += ["--out-dir", str(out_dir)]
    if kill_at_registration:
        return ["-c", _KILL_AT_REGISTRATION, *args]
    return ["-m", "flows.retrain", *args]


def _flow_env() -> dict[str, str]:
    from prefect.settings import PREFECT_API_URL

    api_url = PREFECT_API_URL.value()
    assert api_url, "the Prefect test harness should provide an API URL"
    return {**os.environ, "PREFECT_API_URL": api_url, "PYTHONPATH": str(ROOT)}


def _wait_for(path: Path, proc: subprocess.Popen, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if proc.poll() is not None:
            raise AssertionError(f"the run ended (rc {proc.returncode}) before {path.name}")
        if time.monotonic() > deadline:
            raise AssertionError(f"{path.name} did not appear within {timeout:.0f} s")
        time.sleep(0.05)


def test_retrain_killed_mid_run_leaves_nothing_half_written(
    prefect_harness, tiny_path: Path, tmp_path: Path
) -> None:
    """SIGKILL during training, then during the registration commit; the third run succeeds
    with exactly one complete, loadable version."""
    url = f"sqlite:///{tmp_path / 'reg.db'}"
    env = _flow_env()
    logs = tmp_path / "logs"
    logs.mkdir()

    # Run 1: killed from outside while the candidates train (the process group: no orphans).
    out1 = tmp_path / "run1"
    with (logs / "run1.log").open("wb") as log:
        args = _retrain_args(tiny_path, url, out1, kill_at_registration=False)
        proc = start_python(*args, env=env, log=log)
        try:
            _wait_for(out1 / "information_value.csv", proc, 180)  # written just before training
            time.sleep(1.0)
        finally:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(30)
    assert proc.returncode == -signal.SIGKILL
    log1 = (logs / "run1.log").read_text()
    assert "logreg: cv ROC-AUC" not in log1, log1[-2000:]  # killed before training ended
    assert not (out1 / "search_logreg.csv").exists() and not (out1 / "model_card.md").exists()

    # Run 2: dies at the commit of the version + artifact transaction.
    out2 = tmp_path / "run2"
    with (logs / "run2.log").open("wb") as log:
        args = _retrain_args(tiny_path, url, out2, kill_at_registration=True)
        proc2 = start_python(*args, env=env, log=log)
        try:
            proc2.wait(300)
        finally:
            if proc2.poll() is None:  # timed out: end the run and its workers
                os.killpg(proc2.pid, signal.SIGKILL)
    log2 = (logs / "run2.log").read_text()
    assert proc2.returncode == -signal.SIGKILL, log2[-3000:]
    assert "Task run 'evaluate-logreg' - Finished" in log2  # it died registering, not before
    with Registry(url) as reg:
        assert reg.list_versions() == []
    assert count(url, "model_artifacts") == 0
    assert not (out2 / "model_card.md").exists()

    # Run 3: nothing in the way; exactly one new version, complete and loadable.
    out3 = tmp_path / "run3"
    proc3 = run_python(*_retrain_args(tiny_path, url, out3, kill_at_registration=False), env=env)
    assert proc3.returncode == 0, proc3.stderr[-3000:]
    summary = last_json(proc3)
    assert summary["model_version"] == 1 and summary["champion"] == 1
    with Registry(url) as reg:
        versions = reg.list_versions()
        assert [v.version for v in versions] == [1]
        assert reg.load_model(versions[0].model_name, 1, use_cache=False) is not None
    assert count(url, "model_artifacts") == 1
    assert (out3 / "model_card.md").exists()


# =============================================================================================
# 3. The API started before any model exists
# =============================================================================================


def test_api_before_any_model_then_promoted_without_restart(tmp_path: Path) -> None:
    """gunicorn on a registry that does not exist yet: 503 with Retry-After until a model is
    registered and promoted, then 200 from every worker, the same worker processes."""
    url = f"sqlite:///{tmp_path / 'later.db'}"
    with soak.gunicorn(url, tmp_path / "gunicorn.log", workers=2, threads=2) as server:
        port = server.port
        status, body = soak.http_get(port, "/ready")
        assert status == 503 and body["error"]["code"] == "no_champion"
        for path, payload in (
            ("/v1/score", {"customer_id": "CustomerId_1"}),
            ("/v1/score/batch", {"customers": [{"customer_id": "CustomerId_1"}]}),
        ):
            status, body = soak.http_post(port, path, payload)
            assert status == 503 and body["error"]["code"] == "no_champion", body
        assert soak.http_get(port, "/v1/models/champion")[0] == 503
        pids = server.wait_all_serving(None)
        assert len(pids) == 2

        world = build_world(url)  # the first retrain: two versions, a snapshot, v1 promoted
        assert server.wait_all_serving(1, timeout=30).keys() == pids.keys()
        for cid in world.customers()[:20]:
            status, body = soak.http_post(port, "/v1/score", {"customer_id": cid})
            assert status == 200 and body["model_version"] == 1, body
        assert soak.http_get(port, "/ready")[0] == 200


def _read_response(sock: socket.socket) -> bytes:
    """One whole HTTP response (headers and a Content-Length body) from a raw socket."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(4096)
        if not chunk:
            return data
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(
        (
            int(line.split(b":")[1])
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length:")
        ),
        0,
    )
    while len(body) < length:
        chunk = sock.recv(4096)
        if not chunk:
            break
        body += chunk
    return head + b"\r\n\r\n" + body


def test_gunicorn_limits_and_logs(tmp_path: Path) -> None:
    """Production shape: a client that stalls its body is cut off by the request time limit
    (400 body_timeout) without hurting others; the access and error logs, at debug level, hold
    no value of the customer records sent."""
    world = build_world(f"sqlite:///{tmp_path / 'bati.db'}")
    access = tmp_path / "access.log"
    env = {
        "BATI_REQUEST_TIMEOUT_SECONDS": "2",
        "BATI_API_ACCESSLOG": str(access),
        "BATI_API_LOGLEVEL": "debug",
    }
    with soak.gunicorn(world.url, tmp_path / "gunicorn.log", workers=1, threads=2, env=env) as srv:
        srv.wait_all_serving(1)
        # A body that never completes, and one that trickles: both cut at the 2 s budget.
        for trickle in (False, True):
            with socket.create_connection(("127.0.0.1", srv.port), timeout=15) as sock:
                sock.sendall(
                    b"POST /v1/score HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                    b"Content-Length: 5000\r\n\r\n{"
                )
                start = time.monotonic()
                if trickle:
                    for _ in range(6):
                        time.sleep(0.5)
                        try:
                            sock.sendall(b" ")
                        except OSError:
                            break
                answer = _read_response(sock)
                waited = time.monotonic() - start
            assert answer.startswith(b"HTTP/1.1 400"), answer[:200]
            assert b"body_timeout" in answer
            assert waited < 6, waited
            cid = world.customers()[0]
            assert soak.http_post(srv.port, "/v1/score", {"customer_id": cid})[0] == 200

        # Distinctive customer records through every path.
        cid = world.customers()[1]
        tx = transactions_json(world.raw, cid)
        marks = {"TransactionId": "TransactionId_718293", "AccountId": "AccountId_605040"}
        record = {**tx[0], **marks, "Amount": 123457.5, "Value": 123457.5}
        body = {"customer_id": cid, "transactions": [record, *tx[1:]]}
        assert soak.http_post(srv.port, "/v1/score", body)[0] == 200
        bad = {"customer_id": cid, "transactions": [{**record, "Value": 3.0}]}
        assert soak.http_post(srv.port, "/v1/score", bad)[0] == 422
        assert (
            soak.http_post(srv.port, "/v1/score", {"customer_id": "CustomerId_8080808"})[0] == 404
        )
        wrong = {"Authorization": "Bearer guess-4242-token"}
        assert soak.http_post(srv.port, "/v1/models/rollback", {}, headers=wrong)[0] == 403
    logs = access.read_text() + (tmp_path / "gunicorn.log").read_text()
    assert "POST /v1/score" in logs  # the access log is on and was written
    for value in ("718293", "605040", "123457", "8080808", "guess-4242", ADMIN_TOKEN):
        assert value not in logs, value


def test_slow_clients_hold_no_worker_and_meet_one_deadline(tmp_path: Path) -> None:
    """Issue 15.1: 50 connections trickling their headers or body (a byte every 0.5 s) while
    one worker with two threads serves 200 normal scores in a row, each under 1 s; every
    trickled request is answered 400 at its whole-request deadline (3 s here), not per recv.
    With gunicorn's plain gthread worker the normal scores waited for the trickled ones."""
    from bench.api import slow_clients

    world = build_world(f"sqlite:///{tmp_path / 'bati.db'}")
    env = {"BATI_REQUEST_TIMEOUT_SECONDS": "3"}
    with soak.gunicorn(world.url, tmp_path / "gunicorn.log", workers=1, threads=2, env=env) as srv:
        srv.wait_all_serving(1)
        figures = slow_clients(srv.port, world.customers(), clients=50, requests=200, every=0.5)
        assert figures["answered_200"] == 200, figures
        assert figures["max_ms"] < 1000, figures
        assert figures["slow_answered"] == 50, figures
        assert figures["slow_answered_after_max_s"] < 3 + 2, figures
        assert soak.http_get(srv.port, "/ready")[0] == 200
    assert "Traceback" not in (tmp_path / "gunicorn.log").read_text()


def test_malformed_chunked_body_is_400_without_a_stack_trace(tmp_path: Path) -> None:
    """Issue 15.9: a chunk size that is not hex answered 500 and logged a traceback."""
    world = build_world(f"sqlite:///{tmp_path / 'bati.db'}")
    with soak.gunicorn(world.url, tmp_path / "gunicorn.log", workers=1, threads=2) as srv:
        srv.wait_all_serving(1)
        for framing in (b"zz\r\n{}\r\n0\r\n\r\n", b"2\r\n{}XX0\r\n\r\n"):
            with socket.create_connection(("127.0.0.1", srv.port), timeout=15) as sock:
                sock.sendall(
                    b"POST /v1/score HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                    b"Transfer-Encoding: chunked\r\n\r\n" + framing
                )
                answer = _read_response(sock)
            assert answer.startswith(b"HTTP/1.1 400"), answer[:300]
            assert b"malformed_body" in answer and b"Traceback" not in answer
        cid = world.customers()[0]
        assert soak.http_post(srv.port, "/v1/score", {"customer_id": cid})[0] == 200
    log = (tmp_path / "gunicorn.log").read_text()
    assert "Traceback" not in log and "internal_error" not in log


def test_bad_setting_stops_gunicorn_with_one_line(tmp_path: Path) -> None:
    """Issue 15.10: the production command refuses a bad value before serving, naming it."""
    for var, value in (
        ("BATI_REQUEST_TIMEOUT_SECONDS", "nan"),
        ("BATI_RELOAD_SECONDS", "inf"),
        ("BATI_ADMIN_TOKEN", "short-4242"),
    ):
        env = {**os.environ, var: value, "BATI_API_BIND": "127.0.0.1:0"}
        done = subprocess.run(
            [sys.executable, "-m", "gunicorn", "api:create_app()"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        lines = done.stderr.strip().splitlines()
        assert done.returncode != 0 and len(lines) == 1, done.stderr
        assert lines[0].startswith(f"bati api: refused setting {var}: ")
        assert "short-4242" not in done.stderr


@pytest.mark.postgres
def test_recreated_database_does_not_split_the_workers(tmp_path: Path) -> None:
    """Issue 15.4: the registry's PostgreSQL schema dropped and recreated empty while two
    workers serve. Before, the API migrated the empty database itself and the workers split
    (one served the old model, a restarted one 503). Now no worker creates a table; every
    worker keeps its last verified model and names the problem in /ready and /health; both
    recover without a restart once the schema and a champion are back."""
    from sqlalchemy.engine import make_url

    from registry.testing import PG_ENV, database_url

    if not os.environ.get(PG_ENV):
        pytest.skip(f"needs {PG_ENV}")
    with database_url("postgres", tmp_path) as url:
        schema = make_url(url).query["options"].split("search_path=")[1]
        world = build_world(url)
        with soak.gunicorn(url, tmp_path / "gunicorn.log", workers=2, threads=2) as srv:
            srv.wait_all_serving(1)
            admin = create_engine(os.environ[PG_ENV])
            with admin.begin() as conn:
                conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
                conn.execute(text(f'CREATE SCHEMA "{schema}"'))

            def every_worker_reports() -> bool:
                seen = {}
                for _ in range(20):
                    body = soak.http_get(srv.port, "/health")[1]
                    seen[body["pid"]] = (body["served_version"], body["reload"]["last_error"])
                return len(seen) == 2 and all(
                    v == 1 and e and "registry migrate" in e for v, e in seen.values()
                )

            deadline = time.monotonic() + 30
            while not every_worker_reports():
                assert time.monotonic() < deadline, srv.log_tail()
                time.sleep(0.5)
            for _ in range(10):
                status, body = soak.http_get(srv.port, "/ready")
                assert status == 200 and "registry migrate" in body["registry_error"], body
                cid = world.customers()[0]
                assert soak.http_post(srv.port, "/v1/score", {"customer_id": cid})[0] == 200
            status, body = soak.http_get(srv.port, "/v1/models")
            assert status == 503 and body["error"]["code"] == "schema_not_current", body
            with admin.connect() as conn:
                tables = conn.execute(
                    text("SELECT count(*) FROM information_schema.tables WHERE table_schema = :s"),
                    {"s": schema},
                ).scalar_one()
            assert tables == 0  # the API created nothing
            admin.dispose()
            build_world(url)  # `registry migrate` and a retrain
            deadline = time.monotonic() + 30
            while True:
                seen = {}
                for _ in range(20):
                    body = soak.http_get(srv.port, "/health")[1]
                    seen[body["pid"]] = body["reload"]["last_error"]
                if len(seen) == 2 and set(seen.values()) == {None}:
                    break
                assert time.monotonic() < deadline, (seen, srv.log_tail())
                time.sleep(0.5)
            assert soak.http_get(srv.port, "/v1/models")[0] == 200
            assert soak.http_get(srv.port, "/ready")[1]["registry_error"] is None


# =============================================================================================
# 4. PostgreSQL restarted under the serving API
# =============================================================================================


@pytest.mark.postgres
def test_postgres_restart_under_gunicorn(private_pg: PrivatePostgres, tmp_path: Path) -> None:
    """Load on a 2-worker gunicorn while its PostgreSQL registry restarts: no request fails
    (scores come from memory), the registry endpoints recover by themselves, a promotion right
    after is served by every worker, the same processes, and no prediction row is lost."""
    url = private_pg.create_database("restart_under_api")
    plan = soak.prepare(tmp_path, db_url=_seed(url))
    events: dict[str, Any] = {}
    with soak.gunicorn(
        url,
        tmp_path / "gunicorn.log",
        workers=2,
        threads=4,
        reload_seconds=1.0,
        admin_token=soak.DEFAULT_TOKEN,
        env={"BATI_LOG_FLUSH_SECONDS": "0.2"},
    ) as server:
        pids = server.wait_all_serving(plan.old)

        def while_down() -> None:
            t0 = time.monotonic()
            events["models_while_down"] = soak.http_get(server.port, "/v1/models")
            events["models_while_down_s"] = time.monotonic() - t0
            events["ready_while_down"] = soak.http_get(server.port, "/ready")[0]

        def restart() -> None:
            try:
                events["down_s"] = private_pg.restart(down_seconds=3.0, while_down=while_down)
            finally:
                private_pg.ensure_up()
            t0 = time.monotonic()
            while soak.http_get(server.port, "/v1/models")[0] != 200:
                if time.monotonic() - t0 > 20:
                    break
                time.sleep(0.05)
            events["models_recovered_s"] = time.monotonic() - t0

        def promote() -> None:
            events["promote"] = soak.promote_and_watch(server, plan)

        records, start = soak.drive(
            server.port, plan, seconds=9, rate=150, threads=6, at=[(1.5, restart), (4.0, promote)]
        )
        after = server.served_versions()
        server.stop()
    figures = soak.summarise(
        records,
        plan,
        start=start,
        seconds=9,
        promote=events["promote"],
        reload_seconds=1.0,
        max_switch_seconds=10.0,
    )
    print(
        json.dumps({"figures": figures, "events": {k: events[k] for k in events if k != "promote"}})
    )
    assert figures["violations"] == [], figures
    status, body = events["models_while_down"]
    assert status == 503 and body["error"]["code"] == "database_unavailable", body
    assert events["models_while_down_s"] < 5 and events["ready_while_down"] == 200, events
    assert events["models_recovered_s"] < 10, events
    assert set(after) <= set(pids) and set(after.values()) == {plan.new}, (pids, after)
    loss = soak.prediction_log_loss(url, records)
    assert loss["rows_lost"] == 0 and loss["rows_unexpected"] == 0, loss


def _seed(url: str) -> str:
    build_world(url)
    return url


# =============================================================================================
# 5. Load with a promotion in the middle
# =============================================================================================


def test_load_with_a_promotion_in_the_middle(tmp_path: Path) -> None:
    """The soak of bench/soak.py, shortened: 12 s at the benchmarked 400 requests/s (by id,
    batches, raw transactions) on the production gunicorn, v2 promoted at 5 s through the admin
    endpoint: zero errors, no batch mixing versions, every answer equal to its version's model,
    only v2 after the reload interval, every score in the prediction log."""
    figures = soak.run_soak(
        tmp_path,
        seconds=12,
        rate=400,
        threads=16,
        promote_at=0.4,
        reload_seconds=1.0,
        max_switch_seconds=10.0,
        rows=3000,
        customers=150,
        log=lambda *_: None,
    )
    print(json.dumps(figures))
    assert figures["violations"] == [], figures
    assert figures["errors"] == 0 and figures["requests"] >= 4000
    assert figures["versions_seen"] == [1, 2]
    assert figures["prediction_log"]["rows_lost"] == 0
    assert min(figures["by_kind"].values()) > 0


def test_prediction_log_waits_out_an_outage_but_not_a_refusal() -> None:
    """Unit view of the writer: batches survive any number of "database unavailable" failures
    (they wait in the buffer), while rows the database refuses are counted failed after 3."""
    from sqlalchemy.exc import IntegrityError

    from api.predlog import PredictionLogWriter

    outage = {"left": 7}
    written: list[int] = []

    def write(rows: list[dict[str, Any]]) -> None:
        if outage["left"]:
            outage["left"] -= 1
            raise OperationalError("INSERT", {}, ConnectionRefusedError("server restarting"))
        written.append(len(rows))

    writer = PredictionLogWriter(write, batch_rows=4)
    writer.submit([{"request_id": f"r{i}"} for i in range(6)])
    for _ in range(7):
        assert writer.flush_once() is False
    assert writer.stats() == {"queued": 6, "written": 0, "dropped": 0, "failed": 0}
    writer.flush()
    assert written == [4, 2] and writer.stats()["failed"] == 0
    writer.close()

    def refuse(rows: list[dict[str, Any]]) -> None:
        raise IntegrityError("INSERT", {}, ValueError("bad row"))

    refusing = PredictionLogWriter(refuse)
    refusing.submit([{"request_id": "x"}] * 3)
    for _ in range(3):
        refusing.flush_once()
    assert refusing.stats() == {"queued": 0, "written": 0, "dropped": 0, "failed": 3}
    refusing.close()
