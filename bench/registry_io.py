"""Benchmark of the registry's bulk I/O on SQLite and PostgreSQL.

    .venv/bin/python bench/registry_io.py [--customers 330000] [--features 80]

Figures, per backend, each step in its own process (its peak RSS is the step's own):
* ``snapshot write``: a typed feature snapshot (float features plus three text columns, like
  credit.features) stored as Parquet parts, unpublished, then published;
* ``snapshot read``: the served snapshot read back whole (what the API does at reload), and one
  customer's features (reading only the part that holds it);
* ``write_scores``: that many customers' scores (PostgreSQL: COPY).
PostgreSQL comes from BATI_TEST_PG_URL (default the local test database) in a throw-away
schema; it is skipped with a note when unreachable. The last stdout line is a JSON list.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
# first, always: run as a script, bench/ leads sys.path and its registry.py would shadow the
# registry package even when the project is on PYTHONPATH
sys.path.insert(0, str(ROOT))

DEFAULT_PG = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
TEXT_COLUMNS = ("top_category", "top_channel", "top_provider")


def _frame(customers: int, features: int) -> Any:
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(0)
    n_num = features - len(TEXT_COLUMNS)
    values = rng.lognormal(3, 1.5, size=(customers, n_num)).round(2)
    frame = pd.DataFrame(values, columns=[f"f{i:02d}" for i in range(n_num)])
    for col in TEXT_COLUMNS:
        frame[col] = pd.Series(
            rng.choice(["airtime", "financial_services", "utility_bill"], customers), dtype="str"
        )
    frame.index = pd.Index([f"CustomerId_{i}" for i in range(customers)], name="CustomerId")
    return frame


def _peak_mib() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def step(name: str, url: str, customers: int, features: int) -> dict[str, Any]:
    """Run one step in this process; returns its figures."""
    import numpy as np
    import pandas as pd

    from registry import (
        Registry,
        publish_snapshot,
        read_feature_snapshot,
        read_snapshot,
        write_scores,
        write_snapshot,
    )

    reg = Registry(url)
    reg.ensure_schema()
    out: dict[str, Any] = {"step": name, "customers": customers}
    try:
        if name == "snapshot-write":
            frame = _frame(customers, features)
            t0 = time.perf_counter()
            info = write_snapshot(reg, frame, "2019-02-13", "bench-run", feature_version="1.0.0")
            publish_snapshot(reg, info.id)
            out.update(seconds=time.perf_counter() - t0, mib=round(info.size_bytes / 2**20, 1))
            out["parts"] = info.n_parts
        elif name == "snapshot-read":
            t0 = time.perf_counter()
            frame = read_feature_snapshot(reg)
            out["seconds"] = time.perf_counter() - t0
            out["shape"] = list(frame.shape)
            t0 = time.perf_counter()
            one = read_snapshot(reg, customers=[frame.index[len(frame) // 2]])
            out["one_customer_ms"] = round(1000 * (time.perf_counter() - t0), 1)
            assert len(one) == 1
        elif name == "write-scores":
            rng = np.random.default_rng(1)
            p = rng.random(customers)
            scores = pd.DataFrame(
                {
                    "probability": p,
                    "score": (850 - 550 * p).round().astype("int64"),
                    "band": np.where(p < 0.2, "A", np.where(p < 0.5, "C", "E")),
                    "approved": p < 0.5,
                    "amount": np.where(p < 0.5, 50_000.0, np.nan),
                    "duration_days": np.where(p < 0.5, 30, 0),
                },
                index=pd.Index([f"CustomerId_{i}" for i in range(customers)], name="CustomerId"),
            )
            t0 = time.perf_counter()
            n = write_scores(
                reg, scores, "bench-score", as_of="2019-02-13", model_name="bench", model_version=1
            )
            out.update(seconds=time.perf_counter() - t0, rows=n)
        out["seconds"] = round(out["seconds"], 3)
        out["per_second"] = round(customers / out["seconds"])
    finally:
        reg.close()
    out["peak_rss_mib"] = _peak_mib()
    return out


def _child(name: str, url: str, args: argparse.Namespace) -> dict[str, Any]:
    cmd = [sys.executable, __file__, "--step", name, "--url", url]
    cmd += ["--customers", str(args.customers), "--features", str(args.features)]
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=1800)
    if done.returncode != 0:
        raise RuntimeError(done.stderr.strip().splitlines()[-1] if done.stderr else "failed")
    return json.loads(done.stdout.strip().splitlines()[-1])


def run_backend(backend: str, url: str, args: argparse.Namespace) -> list[dict[str, Any]]:
    rows = []
    for name in ("snapshot-write", "snapshot-read", "write-scores"):
        row = {"backend": backend, **_child(name, url, args)}
        print(json.dumps(row), flush=True)
        rows.append(row)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=330_000)
    parser.add_argument("--features", type=int, default=80)
    parser.add_argument("--step", help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--no-postgres", action="store_true")
    args = parser.parse_args()
    if args.step:
        print(json.dumps(step(args.step, args.url, args.customers, args.features)))
        return

    from registry.testing import isolated_pg_url

    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        rows += run_backend("sqlite", f"sqlite:///{Path(tmp) / 'io.db'}", args)
    if not args.no_postgres:
        base = os.environ.get("BATI_TEST_PG_URL", DEFAULT_PG)
        try:
            with isolated_pg_url(base, "bati_bench") as url:
                rows += run_backend("postgresql", url, args)
        except Exception as exc:  # noqa: BLE001 - an unreachable server is a note, not a failure
            print(f"postgresql skipped: {type(exc).__name__}: {exc}", file=sys.stderr)
    print(json.dumps(rows))


if __name__ == "__main__":
    main()
