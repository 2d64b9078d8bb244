"""The API in production shape: a real gunicorn process (project gunicorn.conf.py, 2 workers)
on a free localhost port, scoring by id and by transactions, a promotion through the admin
endpoint reaching every worker without a restart, and a clean shutdown that flushes the
prediction log."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from builders import ADMIN_TOKEN, World, build_world, transactions_json

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.e2e


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(check, timeout: float) -> bool:  # noqa: ANN001
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return True
        except requests.RequestException:
            pass
        time.sleep(0.2)
    return False


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[str, World, subprocess.Popen]]:
    folder = tmp_path_factory.mktemp("gunicorn")
    world = build_world(f"sqlite:///{folder / 'bati.db'}")
    port = free_port()
    env = {
        **os.environ,
        "BATI_DB_URL": world.url,
        "BATI_ADMIN_TOKEN": ADMIN_TOKEN,
        "BATI_RELOAD_SECONDS": "1",
        "BATI_API_BIND": f"127.0.0.1:{port}",
        "WEB_CONCURRENCY": "2",
        "BATI_API_THREADS": "2",
        # The log thread would only write after an hour: rows reach the database only
        # through the shutdown flush (what the last test checks).
        "BATI_LOG_FLUSH_SECONDS": "3600",
    }
    log = open(folder / "gunicorn.log", "wb")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "api:create_app()"],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        ok = wait_until(lambda: requests.get(f"{base}/ready", timeout=2).status_code == 200, 90)
        if not ok:
            proc.terminate()
            proc.wait(10)
            pytest.fail(
                "gunicorn did not become ready:\n" + (folder / "gunicorn.log").read_text()[-3000:]
            )
        yield base, world, proc
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
        log.close()


def test_gunicorn_scores_by_id_and_by_transactions(server) -> None:  # noqa: ANN001
    base, world, _ = server
    with requests.Session() as http:
        cid = world.customers()[0]
        by_id = http.post(f"{base}/v1/score", json={"customer_id": cid}, timeout=10)
        assert by_id.status_code == 200 and by_id.json()["model_version"] == 1
        tx = transactions_json(world.raw, cid)
        by_tx = http.post(
            f"{base}/v1/score", json={"customer_id": cid, "transactions": tx}, timeout=30
        )
        assert by_tx.status_code == 200, by_tx.text
        assert by_tx.json()["source"] == "transactions"
        bad = http.post(
            f"{base}/v1/score", data=b"{", headers={"Content-Type": "application/json"}, timeout=10
        )
        assert bad.status_code == 400 and bad.json()["error"]["code"] == "malformed_json"
        big = http.post(
            f"{base}/v1/score",
            data=b"x" * (3 * 1024 * 1024),
            headers={"Content-Type": "application/json"},
            timeout=10,
        )
        assert big.status_code == 413


def test_gunicorn_promotion_reaches_every_worker(server) -> None:  # noqa: ANN001
    base, world, _ = server
    headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    body = {"actor": "risk-officer", "reason": "e2e promotion"}
    resp = requests.post(f"{base}/v1/models/2/promote", json=body, headers=headers, timeout=30)
    assert resp.status_code == 200, resp.text
    cid = world.customers()[1]
    served: dict[int, int] = {}  # worker pid -> version it serves

    def both_workers_on_v2() -> bool:
        # New connections land on either worker; /health names the worker and its version.
        for _ in range(10):
            health = requests.get(f"{base}/health", timeout=5).json()
            served[health["pid"]] = health["served_version"]
        return len(served) == 2 and set(served.values()) == {2}

    assert wait_until(both_workers_on_v2, 30), served
    scored = requests.post(f"{base}/v1/score", json={"customer_id": cid}, timeout=10)
    assert scored.json()["model_version"] == 2


def test_gunicorn_shutdown_flushes_the_prediction_log(server) -> None:  # noqa: ANN001
    from registry import Registry, read_prediction_log

    base, world, proc = server
    ids = world.customers()[:30]
    with requests.Session() as http:
        for cid in ids:
            assert (
                http.post(
                    f"{base}/v1/score",
                    json={"customer_id": cid},
                    headers={"X-Request-ID": f"flush-{cid}"},
                    timeout=10,
                ).status_code
                == 200
            )
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(60) == 0
    with Registry(world.url) as reg:
        log = read_prediction_log(reg)
    flushed = log[log["client_request_id"].fillna("").str.startswith("flush-")]
    assert sorted(flushed["customer_id"]) == sorted(ids)
    assert not flushed["request_id"].str.startswith("flush-").any()  # the server's own ids
