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


class CleaningError(Exception):
    """The cleaned frame broke its own contract."""


@dataclass
class CleanResult:
    data: pd.DataFrame
    report: dict[str, Any] = field(default_factory=dict)


def clean_transactions(tx: pd.DataFrame) -> CleanResult:
    """Deduplicate, normalise types, drop constant descriptive columns, sort and validate."""
    n_in = len(tx)
    df = tx.drop_duplicates(ignore_index=True)
    n_dupes = n_in - len(df)
    for col in STRING_COLUMNS:
        df[col] = df[col].astype("str")
    for col in FLOAT_COLUMNS:
        df[col] = df[col].astype("float64")
    for col in INT_COLUMNS:
        df[col] = df[col].astype("int64")
    df[TIME_COLUMN] = pd.to_datetime(df[TIME_COLUMN], utc=True).astype(UTC_TIMESTAMP)
    dropped = [c for c in OPTIONAL_CONSTANTS if c in df.columns and df[c].nunique() <= 1]
    df = df.drop(columns=dropped)
    nulls = df.isna().sum()
    if nulls.any():
        raise CleaningError(f"nulls after ingestion in {nulls[nulls > 0].to_dict()}")
    df = df.sort_values(TIME_COLUMN, kind="stable", ignore_index=True)
    try:
        CleanTransactionsSchema.validate(df, lazy=True)
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
