"""Cleaning: the validated transactions made ready for feature engineering.

Policy (documented in the README):
- exact duplicate transactions (every column equal) are removed and counted;
- types are normalised: ids and categories ``str``, Amount/Value ``float64``, integers ``int64``,
  TransactionStartTime timezone-aware UTC;
- constant descriptive columns (CurrencyCode, CountryCode on Xente data) are dropped and named in the
  report; columns that downstream steps need are never dropped;
- missing values: every raw field is required, so ingestion quarantines rows with nulls; cleaning
  therefore receives none and fails loudly (``CleaningError``) if any appear;
- rows are sorted by time, and the output is validated by ``CleanTransactionsSchema``.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pandera.pandas as pa

from credit.transactions import Bucket, CustomerBuckets, time_ns
from schemas.transactions import UTC_TIMESTAMP, CleanTransactionsSchema

log = logging.getLogger(__name__)

STRING_COLUMNS = (
    "TransactionId",
    "BatchId",
    "AccountId",
    "SubscriptionId",
    "CustomerId",
    "ProviderId",
    "ProductId",
    "ProductCategory",
    "ChannelId",
)
FLOAT_COLUMNS = ("Amount", "Value")
INT_COLUMNS = ("PricingStrategy", "FraudResult")
TIME_COLUMN = "TransactionStartTime"
# Columns feature engineering relies on; never dropped even when constant in a small file.
KEEP_COLUMNS = frozenset((*STRING_COLUMNS, *FLOAT_COLUMNS, *INT_COLUMNS, TIME_COLUMN))
OPTIONAL_CONSTANTS = ("CurrencyCode", "CountryCode")
DEFAULT_SAMPLE_ROWS = 1_000_000
"""Out of core: cleaned rows drawn uniformly (seeded) for the EDA report."""


_TARGET_DTYPES = {
    **dict.fromkeys(STRING_COLUMNS, "str"),
    **dict.fromkeys(FLOAT_COLUMNS, "float64"),
    **dict.fromkeys(INT_COLUMNS, "int64"),
}


def _drop_exact_duplicates(tx: pd.DataFrame) -> pd.DataFrame:
    """Rows equal in every column; only rows sharing a TransactionId can be such duplicates,
    so only those are hashed whole (a full-frame drop_duplicates costs seconds per million)."""
    repeated = tx["TransactionId"].duplicated(keep=False).to_numpy()
    if not repeated.any():
        return tx.copy(deep=False).reset_index(drop=True)
    dupes = tx.loc[repeated].duplicated().to_numpy()
    keep = np.ones(len(tx), dtype=bool)
    keep[np.flatnonzero(repeated)[dupes]] = False
    return tx.loc[keep].reset_index(drop=True)


class CleaningError(Exception):
    """The cleaned frame broke its own contract."""


@dataclass
class CleanReport:
    """What cleaning did (JSON via :meth:`to_dict`); ``buckets`` and ``seconds`` are set for a
    whole run over customer buckets."""

    rows_in: int
    rows_out: int
    duplicates_removed: int
    constant_columns_dropped: list[str]
    customers: int
    start: str | None
    end: str | None
    buckets: int | None = None
    seconds: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


#: The report's counts that add up over customer buckets (a customer is in one bucket only).
_BUCKET_SUMS = ("rows_in", "rows_out", "duplicates_removed", "customers")


def _iso(ts: pd.Timestamp | None) -> str | None:
    return None if ts is None else ts.as_unit("us").isoformat()


@dataclass
class CleanResult:
    data: pd.DataFrame
    report: CleanReport


def clean_transactions(tx: pd.DataFrame) -> CleanResult:
    """Deduplicate, normalise types, drop constant descriptive columns, sort and validate."""
    n_in = len(tx)
    df = _drop_exact_duplicates(tx)
    n_dupes = n_in - len(df)
    for col, dtype in _TARGET_DTYPES.items():
        if str(df[col].dtype) != dtype:
            df[col] = df[col].astype(dtype)
    if df[TIME_COLUMN].dtype != UTC_TIMESTAMP:
        df[TIME_COLUMN] = pd.to_datetime(df[TIME_COLUMN], utc=True).astype(UTC_TIMESTAMP)
    dropped = [c for c in OPTIONAL_CONSTANTS if c in df.columns and df[c].nunique() <= 1]
    df = df.drop(columns=dropped)
    nulls = df.isna().sum()
    if nulls.any():
        raise CleaningError(f"nulls after ingestion in {nulls[nulls > 0].to_dict()}")
    if not df[TIME_COLUMN].is_monotonic_increasing:
        df = df.sort_values(TIME_COLUMN, kind="stable", ignore_index=True)
    try:
        CleanTransactionsSchema.validate(df, lazy=True, inplace=True)
    except pa.errors.SchemaErrors as exc:
        raise CleaningError(
            f"cleaned transactions fail their schema:\n{exc.failure_cases}"
        ) from None
    report = CleanReport(
        rows_in=n_in,
        rows_out=len(df),
        duplicates_removed=n_dupes,
        constant_columns_dropped=dropped,
        customers=int(df["CustomerId"].nunique()),
        start=_iso(df[TIME_COLUMN].min()) if len(df) else None,
        end=_iso(df[TIME_COLUMN].max()) if len(df) else None,
    )
    log.info("cleaned: %d -> %d rows (%d duplicates removed)", n_in, len(df), n_dupes)
    return CleanResult(df, report)


@dataclass
class CleanedGroup:
    """One bucket group cleaned (:func:`clean_group`): its cleaned buckets, their reports, the
    distinct values of the optional constant columns, first/last time (ns) and EDA sample."""

    buckets: list[Bucket]
    reports: list[CleanReport]
    distinct: dict[str, list]
    first: int | None
    last: int | None
    sample: pd.DataFrame | None


def clean_group(
    group: CustomerBuckets, *, sample_fraction: float = 0.0, seed: int = 0
) -> CleanedGroup:
    """:func:`clean_transactions` on each bucket of a group (:meth:`CustomerBuckets.groups`).

    A bucket in memory stays in memory; one on disk is replaced by ``clean-BUCKET.parquet``.
    Out of core, each cleaned row is drawn for the EDA sample with probability
    ``sample_fraction`` (bucket ``b`` draws with the seed ``(seed, b)``: the same sample
    whichever process cleans which bucket)."""
    distinct: dict[str, set] = {c: set() for c in OPTIONAL_CONSTANTS}
    reports: list[CleanReport] = []
    cleaned: list[Bucket] = []
    samples: list[pd.DataFrame] = []
    first = last = None
    for i, (bucket, df) in enumerate(zip(group.buckets, group.frames(), strict=True)):
        for c in OPTIONAL_CONSTANTS:
            if c in df.columns:
                distinct[c].update(pd.unique(df[c].dropna()).tolist())
        result = clean_transactions(df)
        del df
        leftover = [c for c in OPTIONAL_CONSTANTS if c in result.data.columns]
        tx = result.data.drop(columns=leftover) if leftover else result.data
        reports.append(result.report)
        on_disk = not isinstance(bucket, pd.DataFrame)
        if len(tx):
            t = time_ns(tx)
            lo, hi = int(t.min()), int(t.max())
            first = lo if first is None else min(first, lo)
            last = hi if last is None else max(last, hi)
            if on_disk and sample_fraction > 0:
                rng = np.random.default_rng([seed, group.offset + i])
                take = rng.random(len(tx)) < sample_fraction
                if take.any():
                    samples.append(tx.loc[take])
        if on_disk:
            files = [bucket] if isinstance(bucket, Path) else list(bucket)
            out = files[0].with_name(f"clean-{group.offset + i:05d}.parquet")
            tx.to_parquet(out, index=False)
            for f in files:
                f.unlink()
            cleaned.append(out)
        else:
            cleaned.append(tx)
        del tx, result
    return CleanedGroup(
        buckets=cleaned,
        reports=reports,
        distinct={c: sorted(v, key=str) for c, v in distinct.items()},
        first=first,
        last=last,
        sample=pd.concat(samples) if samples else None,
    )


def sample_fraction(rows: int, sample_rows: int = DEFAULT_SAMPLE_ROWS) -> float:
    """The share of cleaned rows drawn for the EDA report out of core."""
    return min(1.0, sample_rows / rows) if rows else 0.0


def combine_cleaned(
    buckets: CustomerBuckets, groups: list[CleanedGroup], *, started: float
) -> CustomerBuckets:
    """The cleaned buckets of every group (in order), with the report of the whole; the EDA
    sample, if any, is stored in the work folder."""
    reports = [r for g in groups for r in g.reports]
    dropped = [
        c for c in OPTIONAL_CONSTANTS if len({v for g in groups for v in g.distinct[c]}) <= 1
    ]
    firsts = [g.first for g in groups if g.first is not None]
    lasts = [g.last for g in groups if g.last is not None]
    first_ts = pd.Timestamp(min(firsts), unit="ns", tz="UTC") if firsts else None
    last_ts = pd.Timestamp(max(lasts), unit="ns", tz="UTC") if lasts else None
    cleaned = [b for g in groups for b in g.buckets]
    report = CleanReport(
        **{k: sum(getattr(r, k) for r in reports) for k in _BUCKET_SUMS},
        constant_columns_dropped=dropped,
        start=_iso(first_ts),
        end=_iso(last_ts),
        buckets=len(cleaned),
        seconds=round(time.perf_counter() - started, 3),
    )
    sample_path = None
    samples = [g.sample for g in groups if g.sample is not None]
    if samples and buckets.folder is not None:  # kept on disk until the report asks for it
        sample_path = buckets.folder / "eda-sample.parquet"
        sample = pd.concat(samples)
        del samples
        sample = sample.sort_values(TIME_COLUMN, kind="stable", ignore_index=True)
        sample.to_parquet(sample_path, index=False)
        del sample
    log.info("cleaned %d bucket(s): %d -> %d rows", len(cleaned), report.rows_in, report.rows_out)
    return CustomerBuckets(
        cleaned,
        first_ts,
        last_ts,
        report.rows_out,
        report=report,
        folder=buckets.folder,
        sample_path=sample_path,
    )


def clean_buckets(
    buckets: CustomerBuckets, *, sample_rows: int = DEFAULT_SAMPLE_ROWS, seed: int = 0
) -> CustomerBuckets:
    """:func:`clean_transactions` on every customer bucket, with the report of the whole
    (:func:`clean_group` per bucket, then :func:`combine_cleaned`; the flow runs one task per
    bucket group instead).

    Each bucket's rows are in source order and exact duplicates share a customer, so
    deduplication keeps the same first occurrence as on the whole data. CurrencyCode and
    CountryCode are left out of every bucket when constant over the whole data (as on one
    frame). A bucket in memory stays in memory; buckets on disk are replaced by cleaned ones,
    and ``sample_rows`` cleaned rows are drawn (``seed``) for the EDA report.
    """
    t0 = time.perf_counter()
    fraction = sample_fraction(buckets.rows, sample_rows)
    groups = [clean_group(g, sample_fraction=fraction, seed=seed) for g in buckets.groups()]
    return combine_cleaned(buckets, groups, started=t0)
