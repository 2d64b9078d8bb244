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
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import pandera.pandas as pa

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
class CleanResult:
    data: pd.DataFrame
    report: dict[str, Any] = field(default_factory=dict)


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
    report = {
        "rows_in": n_in,
        "rows_out": len(df),
        "duplicates_removed": n_dupes,
        "constant_columns_dropped": dropped,
        "customers": int(df["CustomerId"].nunique()),
        "start": df[TIME_COLUMN].min().isoformat() if len(df) else None,
        "end": df[TIME_COLUMN].max().isoformat() if len(df) else None,
    }
    log.info("cleaned: %d -> %d rows (%d duplicates removed)", n_in, len(df), n_dupes)
    return CleanResult(df, report)
