"""Benchmark of ingestion + validation + cleaning (issue 2).

    python bench/ingest.py                  # the demo set, then 10,000,000 rows from Parquet
    python bench/ingest.py 95662 1000000    # chosen sizes

Targets: the default demo set (95,662 rows) under 2 s wall; ten million generated rows from
Parquet under 60 s and under 6 GiB peak memory. Each size is generated and written in one
subprocess, then ingested in a fresh one, so the peak RSS covers reading + validating + cleaning
only. The last stdout line is a JSON list of results.
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

REAL_RATIO = 3_742 / 95_662
TARGETS = {95_662: 2.0, 10_000_000: 60.0}
PEAK_TARGET_GIB = 6.0


def _generate(rows: int, path: Path) -> None:
    code = (
        "import sampledata, sys; "
        f"sampledata.write(sampledata.generate(rows={rows}, "
        f"customers={max(1, round(rows * REAL_RATIO))}), sys.argv[1])"
    )
    subprocess.run([sys.executable, "-c", code, str(path)], check=True, cwd=ROOT)


def measure(path: Path) -> dict:
    """Ingest + validate + clean ``path`` in this process; wall seconds per stage and peak RSS."""
    from credit.clean import clean_transactions
    from credit.ingest import split_valid
    from credit.sources import read_transactions

    t0 = time.perf_counter()
    raw, fingerprint = read_transactions(path)
    t1 = time.perf_counter()
    result = split_valid(raw, source=str(path), fingerprint=fingerprint)
    t2 = time.perf_counter()
    cleaned = clean_transactions(result.data)
    t3 = time.perf_counter()
    return {
        "rows": len(raw),
        "quarantined": result.report.quarantined,
        "clean_rows": len(cleaned.data),
        "read_s": round(t1 - t0, 3),
        "validate_s": round(t2 - t1, 3),
        "clean_s": round(t3 - t2, 3),
        "total_s": round(t3 - t0, 3),
        "rows_per_s": round(len(raw) / (t3 - t0)),
        "peak_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("sizes", nargs="*", type=int, default=[95_662, 10_000_000])
    parser.add_argument("--measure", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.measure:
        print(json.dumps(measure(args.measure)))
        return 0
    results = []
    with tempfile.TemporaryDirectory(prefix="bench-ingest-") as tmp:
        for rows in args.sizes:
            path = Path(tmp) / f"tx_{rows}.parquet"
            _generate(rows, path)
            out = subprocess.run(
                [sys.executable, __file__, "--measure", str(path)],
                check=True,
                capture_output=True,
                text=True,
                cwd=ROOT,
            )
            r = json.loads(out.stdout.strip().splitlines()[-1])
            target = TARGETS.get(rows)
            r["target_s"] = target
            r["ok"] = (target is None or r["total_s"] < target) and (
                r["peak_mib"] / 1024 < PEAK_TARGET_GIB
            )
            results.append(r)
            print(
                f"{rows:>12,} rows  read {r['read_s']:7.2f}s  validate {r['validate_s']:7.2f}s  "
                f"clean {r['clean_s']:6.2f}s  total {r['total_s']:7.2f}s  "
                f"{r['rows_per_s']:>10,} rows/s  peak {r['peak_mib']:>6,} MiB  "
                f"{'ok' if r['ok'] else 'OVER TARGET'}",
                flush=True,
            )
            path.unlink()
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
