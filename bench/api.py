"""Benchmark of the scoring API over HTTP, against a plain baseline, in one run.

    python -m bench.api [--seconds 60] [--rate 400] [--threads 16] [--db-url URL]
                        [--slow-clients 50]

1. Builds a demo registry (the default ``sampledata`` set: Xente-sized, ~3.7k customers; two
   CreditRiskModel versions, a feature snapshot, v1 champion) unless ``--db-url`` names one.
2. Starts the API under gunicorn (the project's ``gunicorn.conf.py``: 2 x cores workers of
   ``api.worker``)
   and a baseline on other free ports: the Flask development server with the same model
   unpickled at start, one ``score_frame`` (predict + reason codes) per request.
3. Drives each from a separate process (threads, keep-alive connections, 127.0.0.1 only):
   * latency: one connection, sequential single-customer scores by id: p50/p95/p99;
   * sustained: ``--threads`` connections paced to ``--rate`` requests/s for ``--seconds``:
     achieved rate, errors, p50/p95/p99 under load;
   * capacity: the same connections as fast as possible for ``--burst-seconds``: requests/s;
   * batch: a batch of 1,000 customers by id, ``--batches`` times: median and max seconds;
   * slow clients (``--slow-clients N``): N connections trickle a byte every 2 s while 200
     scores are sent one after another: how many were answered, the slowest, and when the
     trickled requests were cut (:func:`slow_clients`).
4. Prints both servers' figures, the targets (p50 < 10 ms, p99 < 50 ms, >= 300 req/s for 60 s
   without error, batch of 1,000 < 1 s) and the ratios to the baseline.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import pickle
import random
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from bench.common import percentiles
from schemas.defaults import DEFAULT_MODEL_NAME

ROOT = Path(__file__).resolve().parents[1]
HOST = "127.0.0.1"


# -------------------------------------------------------------------------------------------
# Load driver (runs in its own process: ``--drive``)
# -------------------------------------------------------------------------------------------


class _Client:
    """One keep-alive HTTP/1.1 connection; reconnects after a failure."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.conn: http.client.HTTPConnection | None = None

    def post(self, path: str, body: bytes) -> tuple[int, bytes]:
        for attempt in (0, 1):
            if self.conn is None:
                self.conn = http.client.HTTPConnection(HOST, self.port, timeout=30)
            try:
                self.conn.request(
                    "POST", path, body=body, headers={"Content-Type": "application/json"}
                )
                resp = self.conn.getresponse()
                data = resp.read()
                if resp.getheader("Connection", "").lower() == "close":
                    self.conn.close()
                    self.conn = None
                return resp.status, data
            except (OSError, http.client.HTTPException):
                self.conn.close()
                self.conn = None
                if attempt:
                    raise
        raise RuntimeError("unreachable")


def _run_threads(
    port: int, bodies: list[bytes], threads: int, seconds: float, rate: float | None
) -> dict[str, Any]:
    latencies: list[list[float]] = [[] for _ in range(threads)]
    errors = [0] * threads
    start = time.perf_counter() + 0.2
    stop_at = start + seconds

    def worker(k: int) -> None:
        client = _Client(port)
        rnd = random.Random(1000 + k)
        interval = threads / rate if rate else 0.0
        n = 0
        while True:
            due = start + (k / threads) * interval + n * interval if rate else time.perf_counter()
            now = time.perf_counter()
            if due >= stop_at or now >= stop_at:
                break
            if due > now:
                time.sleep(due - now)
            t0 = time.perf_counter()
            try:
                status, _ = client.post("/v1/score", rnd.choice(bodies))
                ok = status == 200
            except (OSError, http.client.HTTPException):
                ok = False
            latencies[k].append(time.perf_counter() - t0)
            errors[k] += 0 if ok else 1
            n += 1

    pool = [threading.Thread(target=worker, args=(k,)) for k in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    elapsed = max(time.perf_counter(), stop_at) - start
    flat = [x for part in latencies for x in part]
    return {
        "requests": len(flat),
        "errors": sum(errors),
        "seconds": round(elapsed, 2),
        "rps": round(len(flat) / elapsed, 1),
        **percentiles(flat),
    }


def drive(port: int, ids: list[str], args: argparse.Namespace) -> dict[str, Any]:
    """All phases against one server; returns the figures."""
    bodies = [json.dumps({"customer_id": c}).encode() for c in ids]
    client = _Client(port)
    rnd = random.Random(7)
    for _ in range(200):  # warm-up
        client.post("/v1/score", rnd.choice(bodies))
    seq: list[float] = []
    seq_errors = 0
    for _ in range(args.latency_requests):
        t0 = time.perf_counter()
        status, _ = client.post("/v1/score", rnd.choice(bodies))
        seq.append(time.perf_counter() - t0)
        seq_errors += status != 200
    out: dict[str, Any] = {
        "latency": {"requests": len(seq), "errors": seq_errors, **percentiles(seq)}
    }
    out["sustained"] = _run_threads(port, bodies, args.threads, args.seconds, args.rate)
    out["capacity"] = _run_threads(port, bodies, args.threads, args.burst_seconds, None)
    batch_ids = [ids[i % len(ids)] for i in range(1000)]
    batch_body = json.dumps({"customers": [{"customer_id": c} for c in batch_ids]}).encode()
    times, batch_errors = [], 0
    for _ in range(args.batches):
        t0 = time.perf_counter()
        status, data = client.post("/v1/score/batch", batch_body)
        times.append(time.perf_counter() - t0)
        batch_errors += status != 200 or len(json.loads(data)["results"]) != 1000
    out["batch_1000"] = {
        "calls": len(times),
        "errors": batch_errors,
        "median_s": round(statistics.median(times), 4),
        "max_s": round(max(times), 4),
    }
    return out


def slow_clients(
    port: int,
    ids: list[str],
    *,
    clients: int = 50,
    requests: int = 200,
    every: float = 2.0,
) -> dict[str, Any]:
    """``clients`` connections trickle one byte every ``every`` s (half their headers, half a
    body); meanwhile ``requests`` normal scores by id are sent one after another, each on a new
    connection. Returns how many were answered, their worst and p99 latency, and when the
    trickling connections were answered (the whole-request deadline)."""
    head = b"POST /v1/score HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
    socks: list[tuple[socket.socket, bytes, float]] = []
    for k in range(clients):
        sock = socket.create_connection((HOST, port), timeout=60)
        rest = head + b"Content-Length: 400\r\n\r\n" + b" " * 399 if k % 2 else head
        if k % 2:  # body trickle: headers at once, then the body byte by byte
            sock.sendall(rest[: len(head) + 24])
            rest = rest[len(head) + 24 :]
        socks.append((sock, rest, time.monotonic()))
    answered_after: list[float | None] = [None] * clients
    stop = threading.Event()

    def trickle(k: int) -> None:
        sock, rest, started = socks[k]
        sock.settimeout(every)
        for i in range(len(rest)):
            if stop.is_set():
                return
            try:
                sock.sendall(rest[i : i + 1])
                if sock.recv(1):
                    answered_after[k] = time.monotonic() - started
                    return
            except TimeoutError:
                continue
            except OSError:
                answered_after[k] = time.monotonic() - started
                return

    pool = [threading.Thread(target=trickle, args=(k,), daemon=True) for k in range(clients)]
    for t in pool:
        t.start()
    time.sleep(1.0)  # every slow connection is open and trickling
    lat: list[float] = []
    ok = 0
    for i in range(requests):
        body = json.dumps({"customer_id": ids[i % len(ids)]}).encode()
        t0 = time.perf_counter()
        try:
            conn = http.client.HTTPConnection(HOST, port, timeout=30)
            conn.request(
                "POST", "/v1/score", body=body, headers={"Content-Type": "application/json"}
            )
            resp = conn.getresponse()
            resp.read()
            ok += resp.status == 200
            conn.close()
        except (OSError, http.client.HTTPException):
            pass
        lat.append(time.perf_counter() - t0)
    deadline = time.monotonic() + 60  # the trickled requests' answers, all within a minute
    for t in pool:
        t.join(max(0.0, deadline - time.monotonic()))
    stop.set()
    for sock, _, _ in socks:
        sock.close()
    cut = [a for a in answered_after if a is not None]
    return {
        "slow_clients": clients,
        "requests": requests,
        "answered_200": ok,
        "max_ms": round(max(lat) * 1000, 1),
        **percentiles(lat),
        "slow_answered": len(cut),
        "slow_answered_after_max_s": round(max(cut), 1) if cut else None,
    }


# -------------------------------------------------------------------------------------------
# Baseline server (runs in its own process: ``--baseline-serve``)
# -------------------------------------------------------------------------------------------


def serve_baseline(port: int, model_path: Path, features_path: Path) -> None:
    """Plain Flask dev server: model unpickled at start, one score_frame per request."""
    import pandas as pd
    from flask import Flask, jsonify, request

    with open(model_path, "rb") as fh:
        model = pickle.load(fh)  # noqa: S301 - the baseline's naive pattern, our own file
    features = pd.read_parquet(features_path)
    app = Flask("baseline")

    def records(frame: pd.DataFrame) -> list[dict[str, Any]]:
        frame = frame.astype(object).where(frame.notna(), None)
        return [
            {"customer_id": str(i), **r}
            for i, r in zip(frame.index, frame.to_dict("records"), strict=True)
        ]

    @app.post("/v1/score")
    def score() -> Any:
        cid = request.get_json()["customer_id"]
        if cid not in features.index:
            return jsonify({"error": "unknown customer"}), 404
        return jsonify(records(model.score_frame(features.loc[[cid]]))[0])

    @app.post("/v1/score/batch")
    def batch() -> Any:
        ids = [c["customer_id"] for c in request.get_json()["customers"]]
        frame = model.score_frame(features.loc[[i for i in ids if i in features.index]])
        return jsonify({"results": records(frame)})

    @app.get("/ready")
    def ready() -> Any:
        return jsonify({"status": "ready"})

    app.run(host=HOST, port=port, threaded=True)


# -------------------------------------------------------------------------------------------
# Orchestration
# -------------------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def _wait_ready(port: int, proc: subprocess.Popen, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server on port {port} exited with {proc.returncode}")
        try:
            conn = http.client.HTTPConnection(HOST, port, timeout=2)
            conn.request("GET", "/ready")
            if conn.getresponse().status == 200:
                return
        except OSError:
            pass
        time.sleep(0.3)
    raise RuntimeError(f"server on port {port} not ready after {timeout:.0f} s")


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()


def _build_demo(folder: Path) -> tuple[str, Any]:
    sys.path.insert(0, str(ROOT / "tests"))
    from builders import build_world

    from sampledata import DEFAULT_CUSTOMERS, DEFAULT_ROWS

    world = build_world(
        f"sqlite:///{folder / 'bati.db'}", rows=DEFAULT_ROWS, customers=DEFAULT_CUSTOMERS
    )
    return world.url, world


def _champion_and_snapshot(url: str) -> tuple[Any, Any]:
    from registry import Registry, read_feature_snapshot

    with Registry(url) as reg:
        loaded = reg.load_champion(os.environ.get("BATI_MODEL_NAME", DEFAULT_MODEL_NAME))
        if loaded is None:
            raise SystemExit(f"no champion in {url}: run the training flow or omit --db-url")
        snapshot = read_feature_snapshot(reg)
    if snapshot.empty:
        raise SystemExit("the registry has no feature snapshot to score by id")
    return loaded[1], snapshot


def _drive_in_subprocess(port: int, ids_file: Path, args: argparse.Namespace) -> dict[str, Any]:
    cmd = [
        sys.executable,
        "-m",
        "bench.api",
        "--drive",
        str(port),
        "--ids-file",
        str(ids_file),
        "--seconds",
        str(args.seconds),
        "--burst-seconds",
        str(args.burst_seconds),
        "--rate",
        str(args.rate),
        "--threads",
        str(args.threads),
        "--batches",
        str(args.batches),
        "--latency-requests",
        str(args.latency_requests),
    ]
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def _line(name: str, r: dict[str, Any]) -> list[str]:
    lat, sus, cap, bat = r["latency"], r["sustained"], r["capacity"], r["batch_1000"]
    return [
        f"{name}",
        f"  single by id, sequential : p50 {lat['p50_ms']} ms  p95 {lat['p95_ms']} ms  "
        f"p99 {lat['p99_ms']} ms  ({lat['requests']} requests, {lat['errors']} errors)",
        f"  sustained {sus['seconds']:.0f} s          : {sus['rps']} req/s  errors {sus['errors']}  "
        f"p50 {sus['p50_ms']} ms  p95 {sus['p95_ms']} ms  p99 {sus['p99_ms']} ms",
        f"  capacity (max)           : {cap['rps']} req/s  errors {cap['errors']}  "
        f"p50 {cap['p50_ms']} ms  p99 {cap['p99_ms']} ms",
        f"  batch of 1,000 by id     : median {bat['median_s']} s  max {bat['max_s']} s  "
        f"errors {bat['errors']}",
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="sustained phase length")
    parser.add_argument("--burst-seconds", type=float, default=10.0)
    parser.add_argument("--rate", type=float, default=400.0, help="sustained target req/s")
    parser.add_argument("--threads", type=int, default=16, help="client connections")
    parser.add_argument("--batches", type=int, default=5)
    parser.add_argument("--latency-requests", type=int, default=1000)
    parser.add_argument("--db-url", default=None, help="registry with a champion + snapshot")
    parser.add_argument("--workers", type=int, default=2 * (os.cpu_count() or 1))
    parser.add_argument("--worker-threads", type=int, default=4)
    parser.add_argument("--no-baseline", action="store_true")
    parser.add_argument(
        "--slow-clients",
        type=int,
        default=0,
        help="then open this many trickling connections and time 200 normal scores",
    )
    parser.add_argument("--json", action="store_true", help="print the figures as JSON too")
    # internal modes
    parser.add_argument("--drive", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--ids-file", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--baseline-serve", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--model", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--features", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.drive:
        ids = json.loads(args.ids_file.read_text())
        print(json.dumps(drive(args.drive, ids, args)))
        return 0
    if args.baseline_serve:
        serve_baseline(args.baseline_serve, args.model, args.features)
        return 0

    folder = Path(tempfile.mkdtemp(prefix="bati-bench-api-"))
    t0 = time.perf_counter()
    url = args.db_url or _build_demo(folder)[0]
    model, snapshot = _champion_and_snapshot(url)
    print(f"registry ready in {time.perf_counter() - t0:.1f} s: {len(snapshot):,} customers")
    ids = [str(c) for c in snapshot.index]
    ids_file = folder / "ids.json"
    ids_file.write_text(json.dumps(ids))

    results: dict[str, Any] = {}
    gport = _free_port()
    env = {
        **os.environ,
        "BATI_DB_URL": url,
        "BATI_API_BIND": f"{HOST}:{gport}",
        "WEB_CONCURRENCY": str(args.workers),
        "BATI_API_THREADS": str(args.worker_threads),
    }
    gunicorn = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "api:create_app()"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=open(folder / "gunicorn.log", "wb"),  # noqa: SIM115
    )
    try:
        _wait_ready(gport, gunicorn)
        time.sleep(2)  # let every worker finish booting
        print(f"gunicorn ({args.workers} workers x {args.worker_threads} threads) on :{gport}")
        results["api"] = _drive_in_subprocess(gport, ids_file, args)
        if args.slow_clients:
            results["slow_clients"] = slow_clients(gport, ids, clients=args.slow_clients)
    finally:
        _stop(gunicorn)

    if not args.no_baseline:
        from credit.features import align_features

        with open(folder / "model.pkl", "wb") as fh:
            pickle.dump(model, fh)
        table = align_features(snapshot, list(model.feature_names_))
        table.attrs = {}
        table.to_parquet(folder / "features.parquet")
        bport = _free_port()
        baseline = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "bench.api",
                "--baseline-serve",
                str(bport),
                "--model",
                str(folder / "model.pkl"),
                "--features",
                str(folder / "features.parquet"),
            ],
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            _wait_ready(bport, baseline)
            print(f"baseline (Flask dev server, unpickled model) on :{bport}")
            results["baseline"] = _drive_in_subprocess(bport, ids_file, args)
        finally:
            _stop(baseline)

    print()
    for name, label in (("api", "API (gunicorn)"), ("baseline", "baseline (Flask dev server)")):
        if name in results:
            print("\n".join(_line(label, results[name])))
    api = results["api"]
    checks = {
        "p50 < 10 ms (sequential)": (api["latency"]["p50_ms"] or 1e9) < 10,
        "p99 < 50 ms (sequential)": (api["latency"]["p99_ms"] or 1e9) < 50,
        "p99 < 50 ms (sustained)": (api["sustained"]["p99_ms"] or 1e9) < 50,
        f">= 300 req/s for {args.seconds:.0f} s, no error": api["sustained"]["rps"] >= 300
        and api["sustained"]["errors"] == 0
        and args.seconds >= 60,
        "batch of 1,000 < 1 s": api["batch_1000"]["max_s"] < 1.0,
    }
    slow = results.get("slow_clients")
    if slow:
        print(
            f"  with {slow['slow_clients']} trickling clients: {slow['answered_200']} of "
            f"{slow['requests']} scores answered, max {slow['max_ms']} ms, "
            f"p99 {slow['p99_ms']} ms; "
            f"trickled requests cut after {slow['slow_answered_after_max_s']} s"
        )
        checks["200 scores < 1 s each beside slow clients"] = (
            slow["answered_200"] == slow["requests"] and slow["max_ms"] < 1000
        )
    print("\ntargets:")
    for name, ok in checks.items():
        print(f"  [{'x' if ok else ' '}] {name}")
    if "baseline" in results:
        base = results["baseline"]

        def ratio(a: float | None, b: float | None) -> str:
            return f"{a / b:.1f}x" if a and b else "n/a"

        print("\nratio API / baseline:")
        print(f"  capacity req/s       : {ratio(api['capacity']['rps'], base['capacity']['rps'])}")
        print(
            f"  sustained req/s      : {ratio(api['sustained']['rps'], base['sustained']['rps'])}"
        )
        print(
            f"  p50 latency (faster) : {ratio(base['latency']['p50_ms'], api['latency']['p50_ms'])}"
        )
        print(
            f"  p99 latency (faster) : {ratio(base['latency']['p99_ms'], api['latency']['p99_ms'])}"
        )
        print(
            "  batch 1,000 (faster) : "
            f"{ratio(base['batch_1000']['median_s'], api['batch_1000']['median_s'])}"
        )
    if args.json:
        print(json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
