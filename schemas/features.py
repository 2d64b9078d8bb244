"""pandera schema of the customer feature snapshot (one row per customer as of a date).

The feature set is wide (a share column per category level), so the schema is built from the
frame's own columns by name rules rather than listed field by field; the rules are plain data and
import no pipeline code:

* index ``CustomerId``: unique, non-null strings in the Xente id format;
* ``top_*``: non-empty strings (a customer's most frequent level);
* ``share_*``: float64 in [0, 1];
* counts (``n_*``, ``*_count``, ``active_days``): float64 >= 0, never missing;
* durations (``*_days``) and magnitudes (``debit_*``, ``credit_*``, ``value_*``, ``fee_*``,
  ``cashback_*``): float64 >= 0, missing allowed where a statistic is undefined;
* every other column: float64; no numeric column may hold +-inf.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

import numpy as np
import pandas as pd
import pandera.pandas as pa

from schemas import vocab

CORE_COLUMNS: tuple[str, ...] = (
    "n_tx",
    "recency_days",
    "tenure_days",
    "active_days",
    "amount_sum",
    "value_sum",
    "debit_sum",
    "credit_sum",
    "cashback_count",
    "cashback_sum",
    "fraud_count",
    "top_category",
    "top_channel",
    "top_provider",
)
"""Columns every snapshot must have, whatever the feature version."""

_COUNT = re.compile(r"^(n_.*|.*_count|active_days)$")
_NON_NEGATIVE = re.compile(r"^(.*_days|(debit|credit|value|fee|cashback)_.*)$")


def _finite(s: pd.Series) -> pd.Series:
    return pd.Series(~np.isinf(s.to_numpy(dtype=np.float64, na_value=np.nan)), index=s.index)


def _float(*checks: pa.Check, nullable: bool = True) -> pa.Column:
    return pa.Column(
        "float64",
        checks=[*checks, pa.Check(_finite, element_wise=False, name="finite")],
        nullable=nullable,
    )


def _column(name: str) -> pa.Column:
    if name.startswith("top_"):
        return pa.Column(str, pa.Check.str_length(min_value=1), nullable=False)
    if name.startswith("share_"):
        return _float(pa.Check.in_range(0.0, 1.0))
    if _COUNT.match(name):
        return _float(pa.Check.ge(0.0), nullable=False)
    if _NON_NEGATIVE.match(name):
        return _float(pa.Check.ge(0.0))
    return _float()


def feature_snapshot_schema(columns: Iterable[str]) -> pa.DataFrameSchema:
    """The schema for a snapshot with these ``columns`` (core columns are always required)."""
    names = list(dict.fromkeys([*CORE_COLUMNS, *columns]))
    return pa.DataFrameSchema(
        {name: _column(name) for name in names},
        index=pa.Index(
            str,
            checks=pa.Check.str_matches(vocab.ID_PATTERNS["CustomerId"]),
            unique=True,
            nullable=False,
            name="CustomerId",
        ),
        strict=True,
        ordered=False,
        coerce=False,
        name="FeatureSnapshot",
    )


def validate_feature_snapshot(
    df: pd.DataFrame, *, columns: Iterable[str] | None = None
) -> pd.DataFrame:
    """Validate a feature snapshot lazily (every failure reported at once); return it unchanged.

    With ``columns`` (e.g. the training feature list) exactly those columns must be present.
    """
    schema = feature_snapshot_schema(df.columns if columns is None else columns)
    return schema.validate(df, lazy=True)
