"""Benchmark of customer features, the proxy label, the IV table and the EDA report.

    python bench/features.py                     # demo set, then 1,000,000 and 10,000,000 rows
    python bench/features.py 95662 2000000       # chosen sizes for the large-data figure
    python bench/features.py --skip-large        # demo-set figures only

Figures and targets (issue 3):

* default demo set: features + out-of-time label + IV table under 3 s; EDA report under 15 s;
* N generated transactions: ``build_customer_features`` over all history under 60 s and a peak
  resident memory under 6 GiB at ten million rows.

Each large size is generated and written to Parquet in one subprocess, then read and featurised in a
fresh one, whose peak RSS (``resource.getrusage``) therefore covers loading the data plus the
features, not the generator. Customers follow the real file's ratio (3,742 per 95,662 rows).
CPU seconds are printed beside wall-clock seconds. The last stdout line is a JSON list of results.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

LARGE_SIZES = (1_000_000, 10_000_000)
REAL_RATIO = 3_742 / 95_662
TARGETS = {"demo_features_label_iv_s": 3.0, "demo_eda_s": 15.0, "features_s": 60.0, "peak_gib": 6.0}


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def _cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _verdict(value: float, target: float) -> str:
    return "ok" if value < target else "OVER TARGET"


def demo_figures() -> dict:
    """Time the per-run work on the default demo set (in this process)."""
    import sampledata
    from credit.eda import build_eda_report
    from credit.label import build_training_table
    from credit.woe import iv_table

    tx = sampledata.generate()
    t0, c0 = time.perf_counter(), _cpu_s()
    table = build_training_table(tx)
    t1 = time.perf_counter()
    ivs = iv_table(table.X, table.y)
    t2, c2 = time.perf_counter(), _cpu_s()
    with tempfile.TemporaryDirectory() as tmp:
        t3 = time.perf_counter()
        path = build_eda_report(
            tx, Path(tmp) / "eda.html", rfm=table.rfm, labels=table.y, features=table.X
        )
        t4 = time.perf_counter()
        size_kib = path.stat().st_size / 1024
    return {
        "case": "demo",
        "rows": len(tx),
        "customers": len(table.X),
        "features_label_s": round(t1 - t0, 3),
        "iv_s": round(t2 - t1, 3),
        "features_label_iv_s": round(t2 - t0, 3),
        "features_label_iv_cpu_s": round(c2 - c0, 3),
        "eda_s": round(t4 - t3, 3),
        "eda_kib": round(size_kib, 1),
        "n_features": table.X.shape[1],
        "n_iv_rows": len(ivs),
        "high_risk_share": round(float(table.y.mean()), 4),
    }


def _prepare(rows: int, customers: int, path: str) -> None:
    import sampledata

    sampledata.write(sampledata.generate(rows=rows, customers=customers), Path(path))


def _measure(path: str) -> dict:
    import pandas as pd

    from credit.features import build_customer_features

    t0 = time.perf_counter()
    tx = pd.read_parquet(path)
    load_s = time.perf_counter() - t0
    rss_loaded = _peak_rss_mib()
    as_of = tx["TransactionStartTime"].max() + pd.Timedelta(seconds=1)
    t1, c1 = time.perf_counter(), _cpu_s()
    feats = build_customer_features(tx, as_of=as_of)
    t2, c2 = time.perf_counter(), _cpu_s()
    return {
        "rows": len(tx),
        "customers": len(feats),
        "load_s": round(load_s, 2),
        "features_s": round(t2 - t1, 2),
        "features_cpu_s": round(c2 - c1, 2),
        "rss_after_load_mib": round(rss_loaded),
        "peak_rss_mib": round(_peak_rss_mib()),
    }


def large_figures(rows: int) -> dict:
    """Generate ``rows`` transactions to Parquet, then featurise them in a fresh process."""
    customers = max(1, min(rows, round(rows * REAL_RATIO)))
    with tempfile.TemporaryDirectory() as tmp:
        path = str(Path(tmp) / "tx.parquet")
        me = str(Path(__file__).resolve())
        subprocess.run(
            [sys.executable, me, "--_prepare", str(rows), str(customers), path], check=True
        )
        out = subprocess.run(
            [sys.executable, me, "--_measure", path], check=True, capture_output=True, text=True
        )
    result = json.loads(out.stdout.strip().splitlines()[-1])
    return {"case": "large", **result}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("sizes", nargs="*", type=int, help="row counts for the large-data figure")
    parser.add_argument("--skip-large", action="store_true", help="demo-set figures only")
    parser.add_argument("--_prepare", nargs=3, help=argparse.SUPPRESS)
    parser.add_argument("--_measure", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args._prepare:
        rows, customers, path = args._prepare
        _prepare(int(rows), int(customers), path)
        return 0
    if args._measure:
        print(json.dumps(_measure(args._measure)))
        return 0

    results = []
    demo = demo_figures()
    results.append(demo)
    print(
        f"demo set {demo['rows']:,} rows, {demo['customers']:,} customers, "
        f"{demo['n_features']} features: features+label {demo['features_label_s']:.2f} s, "
        f"IV {demo['iv_s']:.2f} s, together {demo['features_label_iv_s']:.2f} s "
        f"(target < {TARGETS['demo_features_label_iv_s']:.0f} s: "
        f"{_verdict(demo['features_label_iv_s'], TARGETS['demo_features_label_iv_s'])})"
    )
    print(
        f"EDA report {demo['eda_s']:.2f} s, {demo['eda_kib']:,.0f} KiB "
        f"(target < {TARGETS['demo_eda_s']:.0f} s: {_verdict(demo['eda_s'], TARGETS['demo_eda_s'])})"
    )
    sizes = [] if args.skip_large else (args.sizes or list(LARGE_SIZES))
    for rows in sizes:
        r = large_figures(rows)
        results.append(r)
        peak_gib = r["peak_rss_mib"] / 1024
        print(
            f"{r['rows']:,} rows, {r['customers']:,} customers: features {r['features_s']:.1f} s "
            f"(cpu {r['features_cpu_s']:.1f} s; target < {TARGETS['features_s']:.0f} s: "
            f"{_verdict(r['features_s'], TARGETS['features_s'])}), Parquet load {r['load_s']:.1f} s, "
            f"RSS after load {r['rss_after_load_mib']:,} MiB, peak {r['peak_rss_mib']:,} MiB "
            f"(target < {TARGETS['peak_gib']:.0f} GiB: {_verdict(peak_gib, TARGETS['peak_gib'])})"
        )
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
