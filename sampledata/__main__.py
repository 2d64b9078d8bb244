"""``python -m sampledata``: write deterministic Xente-shaped demo transactions.

With no arguments it writes the default demo set (95,662 rows, 3,742 customers, seed 42) to
``var/data/xente_demo.parquet`` under the project root (``$BATI_VAR_DIR/data`` when that is set).
The output format follows the suffix (.csv or .parquet): CSV is formatted like the real file
(``2018-11-15T02:18:49Z`` timestamps, ``1000`` not ``1000.0``); Parquet stores
``TransactionStartTime`` as a tz-aware ``timestamp[us, tz=UTC]`` column. The generation parameters
are recorded beside the output in ``<file>.params.json``. A short summary goes to stdout; the last
line is a JSON object ``{"path", "rows", "customers", "seconds"}``.

``--daily DIR`` writes the same rows as one file per day instead (``DIR/2018-11-15.csv``, ...;
``--daily-format parquet`` for Parquet), to replay the nightly feed night by night; the JSON line
then also has ``files``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import pandas as pd

from sampledata import generator, writer


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m sampledata",
        description="Write deterministic Xente-shaped transactions (CSV or Parquet by suffix).",
    )
    p.add_argument("--rows", type=int, default=generator.DEFAULT_ROWS, help="number of rows")
    p.add_argument(
        "--customers", type=int, default=generator.DEFAULT_CUSTOMERS, help="distinct customers"
    )
    p.add_argument("--seed", type=int, default=generator.DEFAULT_SEED, help="random seed")
    p.add_argument(
        "--out",
        type=Path,
        default=None,
        help="output .csv or .parquet (default: var/data/xente_demo.parquet)",
    )
    p.add_argument(
        "--daily",
        type=Path,
        default=None,
        metavar="DIR",
        help="write one file per day (named by date) into DIR instead of --out",
    )
    p.add_argument("--daily-format", choices=("csv", "parquet"), default="csv")
    return p


def summary_lines(df: pd.DataFrame) -> list[str]:
    """A few human-readable figures of a generated frame."""
    t = df["TransactionStartTime"]
    amount = df["Amount"]
    return [
        f"rows {len(df):,}, customers {df['CustomerId'].nunique():,}, "
        f"accounts {df['AccountId'].nunique():,}",
        f"span {t.min():%Y-%m-%dT%H:%M:%SZ} .. {t.max():%Y-%m-%dT%H:%M:%SZ}",
        f"negative amounts {(amount < 0).mean():.1%}, fraud {df['FraudResult'].mean():.2%}, "
        f"median amount {amount.median():,.0f} UGX",
    ]


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    out: Path = args.out if args.out is not None else writer.default_demo_path()
    if out.suffix.lower() not in (".csv", ".parquet"):
        print(f"error: --out must end in .csv or .parquet, got {out}", file=sys.stderr)
        return 2
    t0 = time.perf_counter()
    try:
        df = generator.generate(args.rows, args.customers, args.seed)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    params = writer.generation_params(args.rows, args.customers, args.seed)
    files: list[Path] = []
    if args.daily is not None:
        files = writer.write_daily(df, args.daily, suffix=f".{args.daily_format}")
        out = args.daily
        writer.write_sidecar(args.daily / "_generation", params)
    else:
        writer.write(df, out)
        writer.write_sidecar(out, params)
    seconds = time.perf_counter() - t0
    for line in summary_lines(df):
        print(line)
    print(f"wrote {out} in {seconds:.2f} s")
    result = {
        "path": str(out.resolve()),
        "rows": len(df),
        "customers": int(df["CustomerId"].nunique()),
        "seconds": round(seconds, 3),
    }
    if files:
        result["files"] = len(files)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
