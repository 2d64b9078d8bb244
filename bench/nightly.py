"""The cost of a night grows with the night, not the history: ``python -m bench.nightly``.

    python -m bench.nightly                         # 10M-row store, 100K-row night (~15 min)
    python -m bench.nightly --no-flows              # ingestion of the night only (~1 min cached)
    python -m bench.nightly --store-rows 1M --night-rows 20K --candidates logreg

1. The store: ``--store-rows`` generated rows, cleaned and appended once to a Parquet store
   cached in ``var/bench/nightly-store-<rows>`` (10M rows: a few minutes, once).
2. The night: ``--night-rows`` new rows of the same customers, dated the day after the store's
   newest transaction, landed as one Parquet file.
3. Ingestion of the night alone (:func:`feed.night.ingest_new` on a hard-linked copy of the
   store, after the one-off import of the validation schemas): target under 10 s.
4. The whole night (``python -m flows.nightly`` on another copy: ingest, window, retrain, score)
   against ``python -m flows.retrain`` on one file holding the same window: target within 1.2x.

Figures go to stdout and to ``var/bench/nightly.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pandas as pd

from bench.__main__ import parse_size
from bench.flow import _customers, _renumber

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "var" / "bench"
INGEST_TARGET_S = 10.0
NIGHT_RATIO_TARGET = 1.2


def build_store(rows: int, folder: Path) -> float:
    """Generate, clean and store ``rows`` transactions once (cached: ``_complete`` marks it)."""
    import sampledata
    from credit.clean import clean_transactions
    from feed import ManifestEntry, open_store
    from feed.manifest import now

    done = folder / "_complete"
    if done.exists():
        return 0.0
    shutil.rmtree(folder, ignore_errors=True)
    t0 = time.perf_counter()
    raw = sampledata.generate(rows=rows, customers=_customers(rows), seed=42)
    tx = clean_transactions(raw).data
    del raw
    store = open_store(str(folder))

    def entry(result: Any) -> ManifestEntry:
        return ManifestEntry(
            f"generated-{rows}", "0" * 64, 0, rows, rows, 0, result.new, 0, 0, "bench", now()
        )

    store.append(tx, entry)
    done.write_text(str(rows))
    return time.perf_counter() - t0


def link_copy(src: Path, dst: Path) -> Path:
    """A copy of a store whose Parquet parts are hard links (parts are never rewritten)."""
    shutil.rmtree(dst, ignore_errors=True)
    shutil.copytree(src, dst, copy_function=os.link, ignore=shutil.ignore_patterns("*.sqlite*"))
    for f in src.glob("_manifest.sqlite*"):
        shutil.copy2(f, dst / f.name)
    return dst


def land_night(rows: int, store_rows: int, newest: pd.Timestamp, landing: Path) -> Path:
    """``rows`` new transactions of the store's customers on the day after ``newest``."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    import sampledata

    customers = min(_customers(store_rows), rows // 4)
    raw = sampledata.generate(rows=rows, customers=customers, seed=4242)
    stamps = pd.to_datetime(raw["TransactionStartTime"], utc=True)
    day = newest.tz_convert("UTC").normalize() + pd.Timedelta(days=1)
    raw["TransactionStartTime"] = day + (stamps - stamps.dt.normalize())
    table = pa.Table.from_pandas(raw, preserve_index=False)
    table = _renumber(table, "TransactionId", 5_000_000_000)  # ids the store does not hold
    shutil.rmtree(landing, ignore_errors=True)
    landing.mkdir(parents=True)
    path = landing / f"{day:%Y-%m-%d}.parquet"
    pq.write_table(table, path)
    return path


def warm_up() -> None:
    """Import what validation uses (pandera builds its schema on first use: ~3 s, once per
    process, whatever the night's size), so the figure is the night's own cost."""
    from schemas.transactions import CleanTransactionsSchema, TransactionsSchema

    TransactionsSchema.to_schema()
    CleanTransactionsSchema.to_schema()


def timed_cli(module: str, args: list[str], work: Path) -> tuple[float, dict[str, Any]]:
    """Run ``python -m module args`` with a fresh registry in ``work``: seconds and summary."""
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    env = {
        **os.environ,
        "BATI_DB_URL": f"sqlite:///{work / 'bati.db'}",
        # Its own Prefect state: no task-cache hit from the other run on the same window.
        "PREFECT_HOME": str(work / "prefect"),
        "PREFECT_RESULTS_LOCAL_STORAGE_PATH": str(work / "prefect" / "results"),
    }
    env.pop("PREFECT_API_URL", None)
    t0 = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", module, *args], cwd=ROOT, env=env, capture_output=True, text=True
    )
    seconds = time.perf_counter() - t0
    (work / f"{module}.log").write_text(proc.stdout + proc.stderr)
    if proc.returncode:
        raise SystemExit(f"{module} failed: {proc.stderr.strip().splitlines()[-1:]}")
    return seconds, json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.nightly", description=__doc__)
    parser.add_argument("--store-rows", type=parse_size, default=10_000_000)
    parser.add_argument("--night-rows", type=parse_size, default=100_000)
    parser.add_argument("--candidates", default=None, help="passed to both flows")
    parser.add_argument("--no-flows", action="store_true", help="ingestion of the night only")
    args = parser.parse_args(argv)

    from feed import ingest_new, open_store
    from flows.nightly import write_window

    work = OUT / "nightly"
    work.mkdir(parents=True, exist_ok=True)
    cached = OUT / f"nightly-store-{args.store_rows}"
    build_s = build_store(args.store_rows, cached)
    newest = open_store(str(cached)).newest()
    assert newest is not None
    landing = work / "landing"
    land_night(args.night_rows, args.store_rows, newest, landing)

    store = open_store(str(link_copy(cached, work / "store-ingest")))
    warm_up()
    t0 = time.perf_counter()
    night = ingest_new(landing, store, run_id="bench", out_dir=work / "ingest")
    ingest_s = time.perf_counter() - t0
    figures: dict[str, Any] = {
        "store_rows": args.store_rows,
        "night_rows": args.night_rows,
        "store_build_seconds": round(build_s, 1),
        "night_new_rows": night.new_rows,
        "ingest_seconds": round(ingest_s, 2),
        "ingest_target_seconds": INGEST_TARGET_S,
        "ingest_ok": ingest_s < INGEST_TARGET_S,
    }
    print(
        f"ingestion of a {args.night_rows:,}-row night into a {args.store_rows:,}-row store: "
        f"{ingest_s:.2f} s (target < {INGEST_TARGET_S:.0f} s)",
        flush=True,
    )
    if not args.no_flows:
        extra = ["--candidates", args.candidates] if args.candidates else []
        days = 90  # the default observation + performance days
        window = work / "window.parquet"
        write_window(str(work / "store-ingest"), days, window)
        nightly_store = link_copy(cached, work / "store-night")
        night_s, summary = timed_cli(
            "flows.nightly",
            ["--landing", str(landing), "--store", str(nightly_store), *extra],
            work / "run-nightly",
        )
        retrain_s, _ = timed_cli(
            "flows.retrain", ["--data", str(window), *extra], work / "run-retrain"
        )
        ratio = night_s / retrain_s
        figures.update(
            window_rows=summary["window"]["rows"],
            night_seconds=round(night_s, 1),
            retrain_one_file_seconds=round(retrain_s, 1),
            ratio=round(ratio, 3),
            ratio_target=NIGHT_RATIO_TARGET,
            ratio_ok=ratio <= NIGHT_RATIO_TARGET,
        )
        print(
            f"whole night {night_s:.1f} s vs retrain on one file {retrain_s:.1f} s: "
            f"{ratio:.2f}x (target <= {NIGHT_RATIO_TARGET}x)",
            flush=True,
        )
    (OUT / "nightly.json").write_text(json.dumps(figures, indent=2) + "\n")
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
