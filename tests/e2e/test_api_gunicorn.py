"""The API in production shape: a real gunicorn process (project gunicorn.conf.py, 2 workers)
on a free localhost port, scoring by id and by transactions, a promotion through the admin
endpoint reaching every worker without a restart, and a clean shutdown that flushes the
prediction log."""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Iterator

import pytest
import requests
from builders import ADMIN_AUTH, ADMIN_TOKEN, World, build_world, transactions_json, wait_until

from bench import soak

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, World, soak.Server]]:
    """Two gunicorn workers (two threads each) serving a small registry, ready to score."""
    folder = tmp_path_factory.mktemp("gunicorn")
    world = build_world(f"sqlite:///{folder / 'bati.db'}")
    # The log thread would only write after an hour: rows reach the database only
    # through the shutdown flush (what the last test checks).
    with soak.gunicorn(
        world.url,
        folder / "gunicorn.log",
        workers=2,
        threads=2,
        admin_token=ADMIN_TOKEN,
        env={"BATI_LOG_FLUSH_SECONDS": "3600"},
    ) as running:
        base = f"http://{soak.HOST}:{running.port}"
        ok = wait_until(lambda: requests.get(f"{base}/ready", timeout=2).status_code == 200, 90)
        if not ok:
            pytest.fail("gunicorn did not become ready:\n" + running.log_tail())
        yield base, world, running


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
    headers = ADMIN_AUTH
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


def test_gunicorn_workers_converge_on_a_newer_published_snapshot(server) -> None:  # noqa: ANN001
    """Issue 13 item 5: a newer published snapshot for the same champion reaches every worker
    within the reload interval; an unpublished one (a killed run's) reaches none."""
    from registry import Registry, publish_snapshot, write_snapshot

    base, world, _ = server
    gone, kept = world.customers()[-1], world.customers()[-2]  # not among the next test's
    with Registry(world.url) as reg:
        pending = write_snapshot(reg, world.snapshot.drop(index=gone), world.as_of, "e2e-night")

    def answers(cid: str, n: int = 12) -> set[int]:  # new connections land on either worker
        return {
            requests.post(f"{base}/v1/score", json={"customer_id": cid}, timeout=10).status_code
            for _ in range(n)
        }

    time.sleep(2.5)  # more than BATI_RELOAD_SECONDS: the unpublished snapshot is not served
    assert answers(gone) == {200}
    with Registry(world.url) as reg:
        publish_snapshot(reg, pending.id)
    seen: dict[int, int | None] = {}

    def every_worker_on_new_snapshot() -> bool:
        for _ in range(10):
            health = requests.get(f"{base}/health", timeout=5).json()
            seen[health["pid"]] = health["served_snapshot_id"]
        return len(seen) == 2 and set(seen.values()) == {pending.id}

    assert wait_until(every_worker_on_new_snapshot, 30), seen
    assert answers(gone, 20) == {404}
    assert answers(kept, 20) == {200}


def _samples(base: str, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    """Samples ``name`` of GET /metrics, keyed by their sorted labels."""
    from prometheus_client.parser import text_string_to_metric_families

    resp = requests.get(f"{base}/metrics", timeout=10)
    assert resp.status_code == 200 and resp.headers["Content-Type"].startswith("text/plain")
    out = {}
    for family in text_string_to_metric_families(resp.text):
        for sample in family.samples:
            if sample.name == name:
                out[tuple(sorted(sample.labels.items()))] = sample.value
    return out


def test_gunicorn_metrics_sum_every_worker(server) -> None:  # noqa: ANN001
    """Issue 17 item 3: requests spread over both workers are all counted by /metrics."""
    base, world, _ = server
    health_key = (("method", "GET"), ("route", "/health"), ("status", "200"))
    score_key = (("method", "POST"), ("route", "/v1/score"), ("status", "200"))
    before = _samples(base, "bati_http_requests_total")
    scores_before = sum(_samples(base, "bati_scores_total").values())
    pids: set[int] = set()
    n_health = 0
    while len(pids) < 2 or n_health < 20:  # a new connection each: both workers answer
        pids.add(requests.get(f"{base}/health", timeout=5).json()["pid"])
        n_health += 1
        assert n_health < 200, "one worker never answered"
    customers = world.customers()[40:55]
    for cid in customers:
        resp = requests.post(f"{base}/v1/score", json={"customer_id": cid}, timeout=10)
        assert resp.status_code == 200
    after = _samples(base, "bati_http_requests_total")
    assert after[health_key] - before.get(health_key, 0) == n_health
    assert after[score_key] - before.get(score_key, 0) == len(customers)
    assert sum(_samples(base, "bati_scores_total").values()) - scores_before == len(customers)
    assert set(_samples(base, "bati_served_model_version").values()) == {2}
    assert sum(_samples(base, "bati_model_reloads_total").values()) >= 4  # 2 workers x 2 loads
    count = _samples(base, "bati_http_request_duration_seconds_count")
    assert count[score_key] == after[score_key]
    assert _samples(base, "bati_prediction_log_queue_depth")  # published (live workers' sum)
    assert _samples(base, "bati_prediction_log_dropped_total") == {(): 0.0}
    # Label values are templates: no customer id, no unbounded path.
    text = requests.get(f"{base}/metrics", timeout=10).text
    assert not any(cid in text for cid in customers)
    assert requests.get(f"{base}/nope/CustomerId_1", timeout=5).status_code == 404
    assert "CustomerId_1" not in requests.get(f"{base}/metrics", timeout=10).text


def test_gunicorn_shutdown_flushes_the_prediction_log(server) -> None:  # noqa: ANN001
    from registry import Registry, read_prediction_log

    base, world, running = server
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
    running.proc.send_signal(signal.SIGTERM)
    assert running.proc.wait(60) == 0
    with Registry(world.url) as reg:
        log = read_prediction_log(reg)
    flushed = log[log["client_request_id"].fillna("").str.startswith("flush-")]
    assert sorted(flushed["customer_id"]) == sorted(ids)
    assert not flushed["request_id"].str.startswith("flush-").any()  # the server's own ids


def test_gunicorn_logs_are_json_lines_without_customer_values(server) -> None:  # noqa: ANN001
    """Issue 17 item 4 (after the shutdown above): every line of the server's log is one JSON
    object; each request has an access line with the server's request id, route, status and
    duration; no customer id, token or request body appears."""
    _, world, running = server
    lines = [ln for ln in running.log_path.read_text().splitlines() if ln.strip()]
    records = [json.loads(ln) for ln in lines]  # every line parses
    assert all({"ts", "level", "logger", "message"} <= set(r) for r in records)
    access = [r for r in records if r["logger"] == "api.access"]
    scored = [r for r in access if r.get("route") == "/v1/score"]
    assert len(scored) >= 30
    assert all(
        len(r["request_id"]) == 32
        and r["status"] in (200, 400, 404, 413)
        and r["duration_ms"] >= 0
        and r["method"] == "POST"
        for r in scored
    )
    text = running.log_path.read_text()
    assert ADMIN_TOKEN not in text
    assert not any(cid in text for cid in world.customers())
    assert "flush-" not in text  # the caller's X-Request-ID is not logged either
