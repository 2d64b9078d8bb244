"""Soak test of the scoring API: its benchmarked rate for a minute with a promotion in the middle.

    python -m bench.soak [--seconds 60] [--rate 400] [--threads 16] [--promote-at 0.5]
                         [--reload-seconds 1] [--rows N --customers N] [--db-url URL] [--json]

1. Builds a registry (default: the Xente-sized demo set; v1 champion, v2 candidate, a feature
   snapshot) or uses ``--db-url`` (a champion, another version, a snapshot), and computes the
   expected answer of every snapshot customer under both versions.
2. Starts the API under gunicorn (the project's ``gunicorn.conf.py``) and waits until every
   worker serves the champion.
3. Sends paced traffic from ``--threads`` keep-alive connections at ``--rate`` requests/s: single
   scores by id (89 %), batches of 20 by id (10 %), and single scores from raw transactions
   (1 %: ``as_of`` = the snapshot date, so the answer must equal the snapshot's; each costs
   ~70 ms of CPU, the validation and reason codes of the training code path).
4. At ``--promote-at`` of the run, promotes the other version through the admin endpoint and
   polls ``/health`` until every worker serves it (each worker swaps only once the new model and
   its score table are completely built: reload interval + build time).
5. Stops gunicorn (SIGTERM flushes the prediction log) and reads the prediction log back.

Checked, and printed: requests sent, errors (non-200 or no answer), requests retried on a fresh
connection, versions served before and after the promotion and how long the switch took, batches
mixing two versions, answers that differ from the expected model's (a half-loaded model would
show here), prediction rows lost. Exit status 1 on any violation.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.common import percentiles
from schemas.defaults import DEFAULT_MODEL_NAME

ROOT = Path(__file__).resolve().parents[1]
HOST = "127.0.0.1"
DEFAULT_TOKEN = "soak-admin-token-7f3a9c-0123456789abcdef"  # >= 32 chars (api.config)
BATCH_SIZE = 20
TOLERANCE = 1e-9  # probability: same model, same features, same code path


# -------------------------------------------------------------------------------------------
# The server
# -------------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def _http(
    method: str, port: int, path: str, body: bytes | None, headers: dict[str, str], timeout: float
) -> tuple[int, Any]:
    """One request on a fresh connection: (status, decoded JSON or None)."""
    conn = http.client.HTTPConnection(HOST, port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=headers)
        resp = conn.getresponse()
        data = resp.read()
    finally:
        conn.close()
    try:
        return resp.status, json.loads(data)
    except ValueError:
        return resp.status, None


def http_get(port: int, path: str, timeout: float = 5.0) -> tuple[int, Any]:
    """One GET on a fresh connection: (status, decoded JSON or None)."""
    return _http("GET", port, path, None, {}, timeout)


def http_post(
    port: int, path: str, body: Any, headers: dict[str, str] | None = None, timeout: float = 30
) -> tuple[int, Any]:
    """One JSON POST on a fresh connection: (status, decoded JSON or None)."""
    headers = {"Content-Type": "application/json", **(headers or {})}
    return _http("POST", port, path, json.dumps(body).encode(), headers, timeout)


@dataclass
class Server:
    """A running gunicorn serving the API."""

    port: int
    proc: subprocess.Popen
    log_path: Path
    workers: int

    def served_versions(self, polls: int = 40) -> dict[int, int | None]:
        """worker pid -> served version, from ``/health`` on fresh connections."""
        seen: dict[int, int | None] = {}
        for _ in range(polls):
            status, body = http_get(self.port, "/health")
            if status == 200 and body:
                seen[body["pid"]] = body["served_version"]
            if len(seen) >= self.workers:
                break
        return seen

    def wait_all_serving(self, version: int | None, timeout: float = 60) -> dict[int, int | None]:
        """Wait until every worker answers ``/health`` and serves ``version``."""
        deadline = time.monotonic() + timeout
        seen: dict[int, int | None] = {}
        while time.monotonic() < deadline:
            try:
                seen = self.served_versions()
            except OSError:
                seen = {}
            if len(seen) >= self.workers and set(seen.values()) == {version}:
                return seen
            time.sleep(0.2)
        raise RuntimeError(f"workers never all served v{version}: {seen}\n{self.log_tail()}")

    def log_tail(self, chars: int = 3000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def stop(self, timeout: float = 60) -> int | None:
        """SIGTERM (workers flush their prediction log), then wait; returns the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        return self.proc.returncode


@contextmanager
def gunicorn(
    url: str,
    log_path: Path,
    *,
    workers: int | None = None,
    threads: int = 4,
    reload_seconds: float = 1.0,
    admin_token: str | None = DEFAULT_TOKEN,
    env: dict[str, str] | None = None,
    ready_timeout: float = 120,
) -> Iterator[Server]:
    """``gunicorn "api:create_app()"`` on a free port; waits for ``/health`` (not ``/ready``:
    a registry without a champion is a valid start). Stopped (SIGTERM) on exit."""
    workers = workers or 2 * (os.cpu_count() or 1)
    port = free_port()
    full_env = {
        **os.environ,
        "BATI_DB_URL": url,
        "BATI_API_BIND": f"{HOST}:{port}",
        "WEB_CONCURRENCY": str(workers),
        "BATI_API_THREADS": str(threads),
        "BATI_RELOAD_SECONDS": str(reload_seconds),
        **(env or {}),
    }
    if admin_token:
        full_env["BATI_ADMIN_TOKEN"] = admin_token
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "api:create_app()"],
            cwd=ROOT,
            env=full_env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    server = Server(port, proc, log_path, workers)
    try:
        deadline = time.monotonic() + ready_timeout
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"gunicorn exited with {proc.returncode}:\n{server.log_tail()}")
            try:
                if http_get(port, "/health", timeout=2)[0] == 200:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"gunicorn not up after {ready_timeout:.0f} s\n{server.log_tail()}"
                )
            time.sleep(0.2)
        yield server
    finally:
        server.stop()


# -------------------------------------------------------------------------------------------
# What to send and what must come back
# -------------------------------------------------------------------------------------------


@dataclass
class Plan:
    """The registry, the two versions and the expected answer of every customer."""

    url: str
    model_name: str
    old: int
    new: int
    expected: dict[int, dict[str, float]]  # version -> customer -> probability of default
    tx_bodies: dict[str, bytes] = field(default_factory=dict)  # customer -> request body

    @property
    def ids(self) -> list[str]:
        return sorted(self.expected[self.old])


def expected_answers(url: str, model_name: str, versions: list[int]) -> dict[int, dict[str, float]]:
    """The probability each version gives each customer of the latest snapshot."""
    from credit.features import align_features
    from registry import Registry, read_feature_snapshot

    out: dict[int, dict[str, float]] = {}
    with Registry(url) as reg:
        snapshot = read_feature_snapshot(reg)
        for version in versions:
            info = reg.get_version(model_name, version)
            model = reg.load_model(model_name, version)
            X = align_features(snapshot, list(info.features or model.feature_names_))
            X.index = X.index.astype(str)
            pd_ = model.score_frame(X, with_reasons=False)["probability"]
            out[version] = {str(c): float(p) for c, p in pd_.items()}
    return out


def prepare(
    folder: Path,
    *,
    db_url: str | None = None,
    rows: int | None = None,
    customers: int | None = None,
    tx_customers: int = 200,
    max_tx_body: int = 100_000,
) -> Plan:
    """Build the demo registry in ``folder`` (or read ``db_url``) and the expected answers."""
    from registry import Registry

    raw = as_of = None
    if db_url is None:
        sys.path.insert(0, str(ROOT / "tests"))
        from builders import build_world

        from sampledata import DEFAULT_CUSTOMERS, DEFAULT_ROWS

        world = build_world(
            f"sqlite:///{folder / 'bati.db'}",
            rows=rows or DEFAULT_ROWS,
            customers=customers or DEFAULT_CUSTOMERS,
        )
        url, raw, as_of = world.url, world.raw, world.as_of
    else:
        url = db_url
    model_name = os.environ.get("BATI_MODEL_NAME", DEFAULT_MODEL_NAME)
    with Registry(url) as reg:
        versions = reg.list_versions(model_name)
    champion = next((v.version for v in versions if v.is_champion), None)
    others = [v.version for v in versions if not v.is_champion]
    if champion is None or not others:
        raise SystemExit(f"{model_name} needs a champion and another version to promote")
    plan = Plan(url, model_name, champion, max(others), {})
    plan.expected = expected_answers(url, model_name, [plan.old, plan.new])
    if raw is not None:
        from builders import transactions_json

        stamp = as_of.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        for cid in plan.ids:
            body = json.dumps(
                {"customer_id": cid, "transactions": transactions_json(raw, cid), "as_of": stamp}
            ).encode()
            if len(body) <= max_tx_body:
                plan.tx_bodies[cid] = body
            if len(plan.tx_bodies) >= tx_customers:
                break
    return plan


# -------------------------------------------------------------------------------------------
# The load
# -------------------------------------------------------------------------------------------


@dataclass
class Record:
    """One request and what came back."""

    t0: float
    t1: float
    kind: str  # "id" | "batch" | "tx"
    request_id: str
    status: int  # 0: no answer
    version: int | None = None
    result_versions: tuple[int, ...] = ()
    customers: tuple[str, ...] = ()
    wrong: int = 0  # results whose probability is not the expected model's
    mixed: bool = False  # a batch whose results come from more than one version
    retried: bool = False


class _Connection:
    """One keep-alive connection; a failed exchange is retried once on a new one (counted)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.conn: http.client.HTTPConnection | None = None

    def post(self, path: str, body: bytes, request_id: str) -> tuple[int, bytes, bool]:
        headers = {"Content-Type": "application/json", "X-Request-ID": request_id}
        for attempt in (0, 1):
            if self.conn is None:
                self.conn = http.client.HTTPConnection(HOST, self.port, timeout=30)
            try:
                self.conn.request("POST", path, body=body, headers=headers)
                resp = self.conn.getresponse()
                return resp.status, resp.read(), attempt > 0
            except (OSError, http.client.HTTPException):
                self.conn.close()
                self.conn = None
                if attempt:
                    return 0, b"", True
        raise AssertionError("unreachable")

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()


def _judge(record: Record, data: bytes, plan: Plan) -> None:
    """Fill versions, wrong answers and mixing from a 200 response."""
    body = json.loads(data)
    results = body["results"] if record.kind == "batch" else [body]
    record.version = int(body["model_version"])
    record.result_versions = tuple(int(r["model_version"]) for r in results)
    record.mixed = len(set(record.result_versions) | {record.version}) > 1
    record.customers = tuple(str(r["customer_id"]) for r in results)
    for r in results:
        want = plan.expected.get(int(r["model_version"]), {}).get(str(r["customer_id"]))
        if want is None or abs(float(r["probability_of_default"]) - want) > TOLERANCE:
            record.wrong += 1


def drive(
    port: int,
    plan: Plan,
    *,
    seconds: float,
    rate: float,
    threads: int,
    batch_share: float = 0.1,
    tx_share: float = 0.01,
    seed: int = 7,
    at: list[tuple[float, Any]] | None = None,
) -> tuple[list[Record], float]:
    """Paced load for ``seconds``; ``at`` = [(seconds from start, callable)] run meanwhile from
    this thread. Returns the records and the start time (``time.monotonic()``)."""
    ids = plan.ids
    tx_ids = sorted(plan.tx_bodies)
    tx_share = tx_share if tx_ids else 0.0
    records: list[list[Record]] = [[] for _ in range(threads)]
    tag = uuid.uuid4().hex[:8]  # this run's request ids: soak-<tag>-<thread>-<n>
    start = time.monotonic() + 0.2
    stop_at = start + seconds
    interval = threads / rate

    def worker(k: int) -> None:
        rnd = random.Random(seed * 1000 + k)
        conn = _Connection(port)
        n = 0
        try:
            while True:
                due = start + (k / threads) * interval + n * interval
                if due >= stop_at:
                    break
                now = time.monotonic()
                if due > now:
                    time.sleep(due - now)
                draw = rnd.random()
                if draw < tx_share:
                    kind, path, body = "tx", "/v1/score", plan.tx_bodies[rnd.choice(tx_ids)]
                elif draw < tx_share + batch_share:
                    chosen = rnd.sample(ids, min(BATCH_SIZE, len(ids)))
                    kind, path = "batch", "/v1/score/batch"
                    body = json.dumps({"customers": [{"customer_id": c} for c in chosen]}).encode()
                else:
                    kind, path = "id", "/v1/score"
                    body = json.dumps({"customer_id": rnd.choice(ids)}).encode()
                rid = f"soak-{tag}-{k}-{n}"
                t0 = time.monotonic()
                status, data, retried = conn.post(path, body, rid)
                rec = Record(t0, time.monotonic(), kind, rid, status, retried=retried)
                if status == 200:
                    try:
                        _judge(rec, data, plan)
                    except (ValueError, KeyError, TypeError):
                        rec.status = -1  # a 200 that is not a valid answer counts as an error
                records[k].append(rec)
                n += 1
        finally:
            conn.close()

    pool = [threading.Thread(target=worker, args=(k,), daemon=True) for k in range(threads)]
    for t in pool:
        t.start()
    for offset, action in sorted(at or [], key=lambda item: item[0]):
        delay = start + offset - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        action()
    for t in pool:
        t.join()
    return [r for part in records for r in part], start


def prediction_log_loss(url: str, records: list[Record]) -> dict[str, int]:
    """Scored customers of 200 answers that are missing from the prediction log."""
    from collections import Counter

    from registry import Registry, read_prediction_log

    with Registry(url) as reg:
        log = read_prediction_log(reg)
    sent = Counter((r.request_id, c) for r in records if r.status == 200 for c in r.customers)
    prefixes = tuple({r.request_id.rsplit("-", 2)[0] + "-" for r in records})
    # The server makes the audit key; the id this driver sent is kept as client_request_id.
    log = log[log["client_request_id"].fillna("").astype(str).str.startswith(prefixes)]
    logged = Counter(zip(log["client_request_id"], log["customer_id"], strict=True))
    return {
        "rows_expected": sum(sent.values()),
        "rows_logged": sum(logged.values()),
        "rows_lost": sum((sent - logged).values()),
        "rows_unexpected": sum((logged - sent).values()),
    }


def promote_and_watch(
    server: Server, plan: Plan, *, token: str = DEFAULT_TOKEN, timeout: float = 120
) -> dict[str, Any]:
    """Promote ``plan.new`` through the admin endpoint, then poll ``/health`` until every worker
    serves it; returns the times (``time.monotonic()``) and the HTTP status."""
    t0 = time.monotonic()
    status, _ = http_post(
        server.port,
        f"/v1/models/{plan.new}/promote",
        {"actor": "soak", "reason": "promotion under load"},
        headers={"Authorization": f"Bearer {token}"},
    )
    out: dict[str, Any] = {"t0": t0, "t1": time.monotonic(), "status": status, "switched": None}
    deadline = out["t1"] + timeout
    while status == 200 and time.monotonic() < deadline:
        seen = server.served_versions()
        if len(seen) >= server.workers and set(seen.values()) == {plan.new}:
            out["switched"] = time.monotonic()
            break
        time.sleep(0.1)
    return out


def summarise(
    records: list[Record],
    plan: Plan,
    *,
    start: float,
    seconds: float,
    promote: dict[str, Any] | None,
    reload_seconds: float,
    max_switch_seconds: float = 60.0,
) -> dict[str, Any]:
    """Figures and the list of violations (empty = pass).

    The switch is measured, not assumed: ``promote["switched"]`` is when ``/health`` showed every
    worker on the new version (a worker swaps only once the new model and its score table are
    completely built). No request sent after that may be answered by the old version, and the
    switch must complete within ``reload_seconds + max_switch_seconds``.
    """
    ok = [r for r in records if r.status == 200]
    figures: dict[str, Any] = {
        "requests": len(records),
        "by_kind": {k: sum(r.kind == k for r in records) for k in ("id", "batch", "tx")},
        "customers_scored": sum(len(r.customers) for r in ok),
        "errors": len(records) - len(ok),
        "retried": sum(r.retried for r in records),
        "rps": round(len(records) / seconds, 1),
        "mixed_batches": sum(r.mixed for r in ok),
        "wrong_answers": sum(r.wrong for r in ok),
        **percentiles([r.t1 - r.t0 for r in records]),
        "latency_by_kind": {
            k: percentiles([r.t1 - r.t0 for r in records if r.kind == k])
            for k in ("id", "batch", "tx")
        },
    }
    versions = {v for r in ok for v in (r.version, *r.result_versions)}
    figures["versions_seen"] = sorted(versions)
    violations = []
    if figures["errors"]:
        statuses = sorted({r.status for r in records if r.status != 200})
        violations.append(f"{figures['errors']} error(s), statuses {statuses}")
    if figures["retried"]:
        violations.append(f"{figures['retried']} request(s) needed a new connection")
    if figures["mixed_batches"]:
        violations.append(f"{figures['mixed_batches']} batch(es) mixed two versions")
    if figures["wrong_answers"]:
        violations.append(f"{figures['wrong_answers']} answer(s) differ from their version's model")
    if not versions <= {plan.old, plan.new}:
        violations.append(f"unexpected versions {sorted(versions - {plan.old, plan.new})}")
    if promote is not None:
        begin, end = promote["t0"] - start, promote["t1"] - start
        switched = None if promote.get("switched") is None else promote["switched"] - start
        old_times = [r.t0 - start for r in ok if r.version == plan.old]
        new_times = [r.t0 - start for r in ok if r.version == plan.new]
        figures["promotion"] = {
            "status": promote["status"],
            "at_s": round(begin, 3),
            "took_s": round(end - begin, 3),
            "all_workers_switched_after_s": None if switched is None else round(switched - end, 3),
            "first_new_answer_after_s": round(min(new_times) - begin, 3) if new_times else None,
            "last_old_answer_after_s": round(max(old_times) - end, 3) if old_times else None,
            "answers_before": sum(t < begin for t in old_times + new_times),
            "answers_after_switch": None
            if switched is None
            else sum(t >= switched for t in old_times + new_times),
        }
        if promote["status"] != 200:
            violations.append(f"promotion answered {promote['status']}")
        # A request sent just before the promotion may be answered by the new version once the
        # promotion has begun: what may not happen is a new answer that *ended* before it began.
        if any(r.t1 < promote["t0"] for r in ok if r.version == plan.new):
            violations.append("the new version answered before it was promoted")
        if switched is None:
            violations.append("the workers never all served the new version")
        else:
            if switched - end > reload_seconds + max_switch_seconds:
                violations.append(f"the switch took {switched - end:.1f} s")
            late = sum(t >= switched for t in old_times)
            if late:
                violations.append(f"{late} answer(s) from the old version after the switch")
            if not any(t >= switched for t in new_times):
                violations.append("no answer observed after the switch (run longer)")
    figures["violations"] = violations
    return figures


def run_soak(
    folder: Path,
    *,
    seconds: float = 60,
    rate: float = 400,
    threads: int = 16,
    promote_at: float | None = 0.5,
    reload_seconds: float = 1.0,
    max_switch_seconds: float = 60.0,
    workers: int | None = None,
    worker_threads: int = 4,
    db_url: str | None = None,
    rows: int | None = None,
    customers: int | None = None,
    batch_share: float = 0.1,
    tx_share: float = 0.01,
    check_log: bool = True,
    log=print,  # noqa: ANN001 - any print-like callable
) -> dict[str, Any]:
    """The whole soak (see the module docstring); returns the figures."""
    t_build = time.monotonic()
    plan = prepare(folder, db_url=db_url, rows=rows, customers=customers)
    log(
        f"registry ready in {time.monotonic() - t_build:.1f} s: {len(plan.ids):,} customers, "
        f"v{plan.old} champion, v{plan.new} to promote, {len(plan.tx_bodies)} transaction bodies"
    )
    promote: dict[str, Any] = {}
    with gunicorn(
        plan.url,
        folder / "gunicorn.log",
        workers=workers,
        threads=worker_threads,
        reload_seconds=reload_seconds,
    ) as server:
        pids = server.wait_all_serving(plan.old)
        log(f"gunicorn: {len(pids)} workers x {worker_threads} threads on :{server.port}")

        def do_promote() -> None:
            promote.update(promote_and_watch(server, plan))

        at = [(seconds * promote_at, do_promote)] if promote_at is not None else []
        records, start = drive(
            server.port,
            plan,
            seconds=seconds,
            rate=rate,
            threads=threads,
            batch_share=batch_share,
            tx_share=tx_share,
            at=at,
        )
        after = server.served_versions()
        code = server.stop()
    figures = summarise(
        records,
        plan,
        start=start,
        seconds=seconds,
        promote=promote or None,
        reload_seconds=reload_seconds,
        max_switch_seconds=max_switch_seconds,
    )
    figures["workers_after"] = {str(pid): v for pid, v in after.items()}
    figures["same_workers"] = set(after) <= set(pids)
    figures["gunicorn_exit"] = code
    if not figures["same_workers"]:
        figures["violations"].append(f"workers restarted: {sorted(pids)} -> {sorted(after)}")
    if check_log:
        figures["prediction_log"] = prediction_log_loss(plan.url, records)
        lost = figures["prediction_log"]["rows_lost"]
        if lost or figures["prediction_log"]["rows_unexpected"]:
            figures["violations"].append(f"prediction log: {figures['prediction_log']}")
    return figures


def report(figures: dict[str, Any], seconds: float, rate: float) -> list[str]:
    """The figures as text."""
    p = figures.get("promotion") or {}
    log = figures.get("prediction_log") or {}
    lines = [
        f"soak {seconds:.0f} s at {rate:.0f} req/s target: {figures['requests']:,} requests "
        f"({figures['rps']} req/s; by id {figures['by_kind']['id']:,}, batches of {BATCH_SIZE} "
        f"{figures['by_kind']['batch']:,}, raw transactions {figures['by_kind']['tx']:,}), "
        f"{figures['customers_scored']:,} customers scored",
        f"errors {figures['errors']}  retried {figures['retried']}  mixed batches "
        f"{figures['mixed_batches']}  wrong answers {figures['wrong_answers']}  versions "
        f"{figures['versions_seen']}",
        f"latency p50 {figures['p50_ms']} ms  p95 {figures['p95_ms']} ms  p99 {figures['p99_ms']} ms",
        *(
            f"  {kind:<5} p50 {q['p50_ms']} ms  p95 {q['p95_ms']} ms  p99 {q['p99_ms']} ms"
            for kind, q in figures["latency_by_kind"].items()
        ),
    ]
    if p:
        lines.append(
            f"promotion at {p['at_s']} s (HTTP {p['status']}, {p['took_s']} s): every worker on "
            f"the new version {p['all_workers_switched_after_s']} s after it (first new answer "
            f"{p['first_new_answer_after_s']} s, last old answer {p['last_old_answer_after_s']} s"
            f"); {p['answers_after_switch']:,} answers after the switch, all new"
            if p["answers_after_switch"] is not None
            else f"promotion at {p['at_s']} s (HTTP {p['status']}): the switch never completed"
        )
    if log:
        lines.append(
            f"prediction log: {log['rows_logged']:,} of {log['rows_expected']:,} rows, "
            f"lost {log['rows_lost']}"
        )
    lines.append(
        f"workers unchanged: {figures['same_workers']}  gunicorn exit {figures['gunicorn_exit']}"
    )
    lines.append(
        "PASS" if not figures["violations"] else "FAIL: " + "; ".join(figures["violations"])
    )
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--rate", type=float, default=400.0, help="target requests/s")
    parser.add_argument("--threads", type=int, default=16, help="client connections")
    parser.add_argument("--promote-at", type=float, default=0.5, help="fraction of the run")
    parser.add_argument("--reload-seconds", type=float, default=1.0)
    parser.add_argument(
        "--max-switch-seconds",
        type=float,
        default=60.0,
        help="allowed time for every worker to build and serve the new version",
    )
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument("--worker-threads", type=int, default=4)
    parser.add_argument("--db-url", default=None, help="registry with a champion + snapshot")
    parser.add_argument("--rows", type=int, default=None)
    parser.add_argument("--customers", type=int, default=None)
    parser.add_argument("--json", action="store_true", help="print the figures as JSON too")
    args = parser.parse_args(argv)
    folder = Path(tempfile.mkdtemp(prefix="bati-soak-"))
    # Every option but --json is a keyword argument of run_soak, under the same name.
    figures = run_soak(folder, **{k: v for k, v in vars(args).items() if k != "json"})
    print("\n".join(report(figures, args.seconds, args.rate)))
    if args.json:
        print(json.dumps(figures))
    return 1 if figures["violations"] else 0


if __name__ == "__main__":
    sys.exit(main())
