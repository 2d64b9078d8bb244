"""Benchmark of the demo-data generator: rows, seconds, rows/s and peak memory per size.

    python bench/generate.py                      # 95,662 / 1,000,000 / 10,000,000 rows
    python bench/generate.py 95662 2000000        # chosen sizes
    python bench/generate.py --customers 3742 1000000

Each size runs in a fresh subprocess (so its peak RSS, from ``resource.getrusage``, is its own)
and includes writing Parquet to a temporary folder. CPU seconds are reported beside wall-clock
seconds because the wall clock suffers when other work shares the machine. Customers default to the real file's ratio
(3,742 per 95,662 rows). The last stdout line is a JSON list of the results.
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

DEFAULT_SIZES = (95_662, 1_000_000, 10_000_000)
REAL_RATIO = 3_742 / 95_662


def _peak_rss_mib() -> float:
    # ru_maxrss is in KiB on Linux.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def run_one(rows: int, customers: int, seed: int) -> dict[str, float]:
    """Generate ``rows`` rows and write them as Parquet; timings and peak memory."""
    import sampledata

    cpu0 = _cpu_s()

    with tempfile.TemporaryDirectory(prefix="bench-generate-") as tmp:
        t0 = time.perf_counter()
        df = sampledata.generate(rows, customers, seed)
        t1 = time.perf_counter()
        path = sampledata.write(df, Path(tmp) / "transactions.parquet")
        t2 = time.perf_counter()
        size = path.stat().st_size
    return {
        "rows": rows,
        "customers": customers,
        "generate_s": round(t1 - t0, 3),
        "write_parquet_s": round(t2 - t1, 3),
        "seconds": round(t2 - t0, 3),
        "rows_per_s": round(rows / (t2 - t0)),
        "cpu_s": round(_cpu_s() - cpu0, 3),
        "peak_rss_mib": round(_peak_rss_mib(), 1),
        "parquet_mib": round(size / 2**20, 1),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("sizes", nargs="*", type=int, default=list(DEFAULT_SIZES))
    p.add_argument("--customers", type=int, default=None, help="fixed customer count")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--one", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)

    if args.one:  # child process: one size, JSON on stdout
        rows = args.sizes[0]
        customers = args.customers or max(1, round(rows * REAL_RATIO))
        print(json.dumps(run_one(rows, customers, args.seed)))
        return 0

    results = []
    header = f"{'rows':>12} {'customers':>10} {'seconds':>8} {'rows/s':>11} {'peak MiB':>9}"
    print(header)
    for rows in args.sizes:
        cmd = [sys.executable, str(Path(__file__).resolve()), "--one", str(rows)]
        cmd += ["--seed", str(args.seed)]
        if args.customers:
            cmd += ["--customers", str(args.customers)]
        out = subprocess.run(cmd, check=True, capture_output=True, text=True, cwd=ROOT)
        r = json.loads(out.stdout.strip().splitlines()[-1])
        results.append(r)
        print(
            f"{r['rows']:>12,} {r['customers']:>10,} {r['seconds']:>8.2f} "
            f"{r['rows_per_s']:>11,} {r['peak_rss_mib']:>9,.0f}"
            f"   (generate {r['generate_s']:.2f} s, Parquet {r['write_parquet_s']:.2f} s,"
            f" CPU {r['cpu_s']:.2f} s,"
            f" {r['parquet_mib']:.0f} MiB)",
            flush=True,
        )
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
