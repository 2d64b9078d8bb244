"""Benchmark of the score flow end to end: peak memory and customers/s, in a process of its own.

    python -m bench.score_flow                         # SQLite and PostgreSQL, 330,000 customers
    python -m bench.score_flow --no-postgres --customers 100000 --candidate logreg

Builds once (cached under ``var/bench/score_flow/``) a registry holding a champion made the way
:func:`bench.score.demo_champion` makes it (with its monitoring references, so the ``monitor``
subflow does its real work) and a published snapshot of ``--customers`` customers tiled from the
demo-sized snapshot (330,000 customers stand in for 10,000,000 transactions). Then runs
``python -m flows.score`` in a subprocess (its own Prefect home and temporary server) and
reports, per backend: the child's peak RSS (``RUSAGE_CHILDREN``), the flow's own seconds for
snapshot read + scoring + database write (``seconds``, from its summary) and the customers/s
they make, the whole process's wall seconds (Prefect start-up and the monitor subflow
included) and the monitor subflow's own seconds (``monitor_s``, from the child's log).
PostgreSQL uses a dedicated schema ``bati_bench_score`` of ``BATI_TEST_PG_URL`` (default
the local ``test`` database); it is skipped with a note when unreachable. Targets
(issue 16.2): peak < 1.5 GiB, >= 25,000 customers/s. The last stdout line is a JSON list.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

CACHE = ROOT / "var" / "bench" / "score_flow"
DEFAULT_PG = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
PG_SCHEMA = "bati_bench_score"
TARGET_PEAK_MIB = 1536
TARGET_PER_S = 25_000
DEMO_ROWS = 95_662


def pg_url(base: str, schema: str = PG_SCHEMA) -> str:
    """``base`` pointed at ``schema`` (created when missing)."""
    from sqlalchemy import create_engine, make_url, text

    admin = create_engine(base)
    try:
        with admin.begin() as conn:
            conn.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))
    finally:
        admin.dispose()
    url = make_url(base).update_query_dict({"options": f"-csearch_path={schema}"})
    return url.render_as_string(hide_password=False)


def build(db_url: str, customers: int, candidate: str, seed: int = 42) -> dict[str, Any]:
    """Fill the registry at ``db_url`` with a champion and a published snapshot of
    ``customers`` customers, unless it already holds them (the cache)."""
    from registry import Registry, served_snapshot, write_snapshot
    from schemas.defaults import DEFAULT_MODEL_NAME

    reg = Registry(db_url)
    reg.ensure_schema()
    try:
        info = served_snapshot(reg)
        loaded = reg.load_champion(DEFAULT_MODEL_NAME)
        if (
            info is not None
            and info.n_customers == customers
            and loaded is not None
            and loaded[1].model_name == candidate
        ):
            return {"built": False, "snapshot_id": info.id, "version": loaded[0].version}
        model, X_fit, y_fit, X_test, y_test, snapshot = _champion(candidate, seed)
        from bench.score import tile
        from credit.monitoring import model_references

        tiled = tile(snapshot, customers)
        tiled.attrs = {}  # the as_of goes to the header, not into every Parquet part
        refs, holdout = model_references(model, X_fit, y_fit, X_test, y_test, snapshot=snapshot)
        version = reg.register(
            DEFAULT_MODEL_NAME,
            model,
            metrics={"roc_auc": 0.7, "ks": 0.3, "brier": 0.2},
            params={"candidate": candidate},
            features=list(model.feature_names_),
            input_schema={"index": "CustomerId"},
            data_fingerprint=f"bench-score-flow-{candidate}-{seed}",
            n_rows=DEMO_ROWS,
            n_customers=len(X_fit),
            references=refs,
            reference_holdout=holdout,
        )
        reg.promote(DEFAULT_MODEL_NAME, version.version, actor="bench", reason="score flow bench")
        info = write_snapshot(
            reg, tiled, snapshot.attrs.get("as_of", "2019-02-13"), "bench", publish=True
        )
        return {"built": True, "snapshot_id": info.id, "version": version.version}
    finally:
        reg.close()


def _champion(candidate: str, seed: int) -> tuple[Any, ...]:
    """A champion fitted as :func:`bench.score.demo_champion` fits it, with its split."""
    import sampledata
    from credit.clean import clean_transactions
    from credit.features import build_feature_snapshot
    from credit.label import build_training_table, split_customers
    from credit.models import build_pipeline, load_grids, single_threaded, split_columns
    from credit.scoring import CreditRiskModel
    from flows.retrain import stratified_sample

    customers = round(DEMO_ROWS * 3_742 / 95_662)
    raw = sampledata.generate(rows=DEMO_ROWS, customers=customers, seed=seed)
    tx = clean_transactions(raw).data
    table = build_training_table(tx, seed=seed)
    snapshot = build_feature_snapshot(tx, window_days=60)
    snapshot.attrs["as_of"] = tx["TransactionStartTime"].max()
    X_train, X_test, y_train, y_test = split_customers(table.X, table.y, seed=seed)
    X_fit, y_fit = stratified_sample(X_train, y_train, 50_000, seed)
    numeric, categorical = split_columns(X_fit)
    pipeline = build_pipeline(candidate, numeric, categorical, seed=seed)
    pipeline.set_params(**{k: v[0] for k, v in load_grids()[candidate].items()})
    with single_threaded():
        pipeline.fit(X_fit, y_fit)
    model = CreditRiskModel.from_search(pipeline, X_fit, y_fit, 0.5, model_name=candidate)
    return model, X_fit, y_fit, X_test, y_test, snapshot


_LOG_TIME = re.compile(r"^(\d\d):(\d\d):(\d\d\.\d+) \|")


def monitor_seconds(log: str) -> float | None:
    """The monitor subflow's own seconds, from the child's Prefect log: its "Beginning
    subflow run" line to its "Finished in state" line (``None`` when not found)."""

    def at(line: str) -> float | None:
        m = _LOG_TIME.match(line)
        return None if m is None else int(m[1]) * 3600 + int(m[2]) * 60 + float(m[3])

    start = name = None
    for line in log.splitlines():
        if name is None:
            found = re.search(r"Beginning subflow run '([^']+)' for flow 'monitor'", line)
            if found:
                start, name = at(line), found[1]
        elif f"Flow run '{name}' - Finished in state" in line:
            end = at(line)
            if start is None or end is None:
                return None
            return round((end - start) % 86_400, 2)
    return None


def run_flow(db_url: str, *, monitor: bool = True, script: str | None = None) -> dict[str, Any]:
    """``python -m flows.score`` in a subprocess: its summary, peak RSS and wall seconds."""
    home = tempfile.mkdtemp(prefix="bench-score-prefect-")
    env = {
        **os.environ,
        "PREFECT_HOME": home,
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "DO_NOT_TRACK": "1",
        "BATI_DB_URL": db_url,
        # a loaded 2-core machine starts the temporary server slowly
        "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": os.environ.get(
            "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180"
        ),
    }
    flow = [script] if script else ["-m", "flows.score"]  # another revision's flow, to compare
    cmd = [sys.executable, *flow] + ([] if monitor else ["--no-monitor"])
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    t0 = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=env, timeout=3600)
    wall = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    if done.returncode != 0:
        tail = "\n".join(done.stderr.strip().splitlines()[-15:])
        raise RuntimeError(f"flows.score failed ({done.returncode}):\n{tail}")
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    if peak <= before:  # maxrss of children is the largest so far: an earlier child was larger
        peak = None
    customers = int(summary["customers"])
    seconds = float(summary["seconds"])
    return {
        "customers": customers,
        "written": int(summary["written"]),
        "seconds": round(seconds, 2),
        "customers_per_s": round(customers / seconds),
        "process_wall_s": round(wall, 2),
        "peak_rss_mib": None if peak is None else round(peak / 1024, 1),
        "monitor": monitor,
        "monitor_s": monitor_seconds(done.stderr + done.stdout) if monitor else None,
        "monitor_ok": bool(summary.get("monitor")) and "error" not in (summary["monitor"] or {}),
    }


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def bench_backend(backend: str, db_url: str, args: argparse.Namespace) -> dict[str, Any]:
    t0 = time.perf_counter()
    built = build(db_url, args.customers, args.candidate)
    row: dict[str, Any] = {"backend": backend, "candidate": args.candidate, **built}
    row["build_s"] = round(time.perf_counter() - t0, 1)
    row.update(run_flow(db_url, monitor=not args.no_monitor, script=args.script))
    row["load_avg"] = _load()
    peak = row["peak_rss_mib"]
    row["ok"] = (
        peak is not None and peak < TARGET_PEAK_MIB and row["customers_per_s"] >= TARGET_PER_S
    )
    print(
        f"score flow on {backend}: {row['customers']:,} customers, read+score+write "
        f"{row['seconds']:.1f} s = {row['customers_per_s']:,}/s (target >= {TARGET_PER_S:,}), "
        f"process {row['process_wall_s']:.1f} s, peak RSS {peak} MiB (target < "
        f"{TARGET_PEAK_MIB}), monitor subflow {row['monitor_s']} s, load {row['load_avg']}",
        flush=True,
    )
    return row


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=330_000)
    parser.add_argument("--candidate", default="hist_gb", help="family of the champion")
    parser.add_argument("--no-postgres", action="store_true")
    parser.add_argument("--no-sqlite", action="store_true")
    parser.add_argument("--no-monitor", action="store_true", help="skip the monitor subflow")
    parser.add_argument("--script", help="run this file instead of flows.score (a before/after)")
    args = parser.parse_args(argv)
    CACHE.mkdir(parents=True, exist_ok=True)
    rows = []
    if not args.no_sqlite:
        db = CACHE / f"registry-{args.candidate}-{args.customers}.db"
        rows.append(bench_backend("sqlite", f"sqlite:///{db}", args))
    if not args.no_postgres:
        base = os.environ.get("BATI_TEST_PG_URL", DEFAULT_PG)
        try:
            url = pg_url(base, f"{PG_SCHEMA}_{args.candidate}_{args.customers}")
        except Exception as exc:  # noqa: BLE001 - an unreachable server is a note
            print(f"postgresql skipped: {type(exc).__name__}: {exc}", file=sys.stderr)
        else:
            rows.append(bench_backend("postgresql", url, args))
    print(json.dumps(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
