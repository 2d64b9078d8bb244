"""Bring your own labels: train and evaluate on any labelled tabular file.

The bank can retrain on real repayment outcomes once it has them: a CSV or Parquet file with one
row per customer (or loan), a named binary target column and any mix of numeric and categorical
columns. :func:`prepare_labelled_table` turns it into the ``(X, y)`` that
:func:`credit.models.search_candidate` and :func:`credit.evaluate.evaluate_candidate` take.

Column roles (:func:`infer_column_roles`):

* numeric: integer and float columns (integers stay numeric: counts and amounts are ordinal);
* categorical: strings, booleans, pandas categoricals;
* dropped (reported with the reason): the target, the id column, constant columns (one distinct
  value or all missing), id-like columns (a name ending in "id" whose values are nearly all
  distinct, or a text column with more than ``max_levels`` distinct values), datetimes and any
  other dtype.

Target mapping (:func:`binarize_target`): the positive class (1) is the risky outcome. Two
distinct values are required: 0/1 -> 1, False/True -> True, and for text the value that names a
bad outcome ("1", "yes", "y", "true", "bad", "default", "defaulted", "delinquent", "positive",
"high", "high_risk", "charged_off", "late") is positive; otherwise pass ``positive=``.

This module also ships :func:`synthetic_customer_table`, a customer-shaped labelled table for
tests, demos and benchmarks when no real data is at hand.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

log = logging.getLogger(__name__)

POSITIVE_TOKENS = frozenset(
    {
        "1",
        "yes",
        "y",
        "true",
        "t",
        "bad",
        "default",
        "defaulted",
        "delinquent",
        "positive",
        "high",
        "high_risk",
        "charged_off",
        "late",
    }
)
_ID_NAME = re.compile(r"(^|_)id$|id$", re.IGNORECASE)


def load_table(path: str | Path) -> pd.DataFrame:
    """Read a CSV (``.csv``, ``.csv.gz``) or Parquet (``.parquet``, ``.pq``) file by its suffix."""
    path = Path(path)
    name = path.name.lower()
    if name.endswith((".csv", ".csv.gz", ".csv.zip", ".csv.bz2")):
        return pd.read_csv(path)
    if name.endswith((".parquet", ".pq")):
        return pd.read_parquet(path)
    raise ValueError(f"unsupported table format {path.suffix!r} for {path}: use .csv or .parquet")


def infer_column_roles(
    df: pd.DataFrame,
    target: str,
    *,
    id_column: str | None = None,
    max_levels: int = 50,
) -> dict[str, Any]:
    """Split the columns of ``df`` into numeric, categorical and dropped (column -> reason)."""
    numeric: list[str] = []
    categorical: list[str] = []
    dropped: dict[str, str] = {}
    n = len(df)
    for col in df.columns:
        if col == target:
            continue
        if col == id_column:
            dropped[col] = "id column"
            continue
        s = df[col]
        n_unique = s.nunique(dropna=True)
        if n_unique <= 1:
            dropped[col] = "constant"
            continue
        is_bool = pd.api.types.is_bool_dtype(s)
        is_num = pd.api.types.is_numeric_dtype(s) and not is_bool
        if (
            _ID_NAME.search(str(col))
            and n_unique >= 0.9 * s.notna().sum()
            and (not is_num or pd.api.types.is_integer_dtype(s) or _all_integral(s))
        ):
            dropped[col] = "id-like (name ends in id, values nearly all distinct)"
            continue
        if is_num:
            numeric.append(col)
        elif is_bool or isinstance(s.dtype, pd.CategoricalDtype) or _is_text(s):
            if not is_bool and n_unique > max_levels and n_unique > 0.5 * n:
                dropped[col] = f"id-like text ({n_unique} distinct values)"
            else:
                categorical.append(col)
        else:
            dropped[col] = f"unsupported dtype {s.dtype}"
    return {"numeric": numeric, "categorical": categorical, "dropped": dropped}


def _all_integral(s: pd.Series) -> bool:
    v = s.dropna().to_numpy(dtype=float)
    return bool(np.all(v == np.round(v)))


def _is_text(s: pd.Series) -> bool:
    return pd.api.types.is_string_dtype(s) or s.dtype == object


def infer_columns(
    df: pd.DataFrame, target: str, *, id_column: str | None = None
) -> tuple[list[str], list[str]]:
    """``(numeric, categorical)`` feature columns of ``df``; dropped columns are logged."""
    roles = infer_column_roles(df, target, id_column=id_column)
    for col, why in roles["dropped"].items():
        log.info("dropping column %r: %s", col, why)
    return roles["numeric"], roles["categorical"]


def binarize_target(y: pd.Series, positive: Any = None) -> tuple[pd.Series, Any]:
    """Map a two-valued target to 0/1 ints; returns ``(y01, positive_value)``.

    Text values are compared stripped and case-insensitively ("Yes" == "yes"); the returned
    positive value is then the lower-case form. Raises ValueError unless ``y`` has exactly two
    distinct non-missing values and the positive one can be determined (see the module
    docstring) or is given. Missing targets map to 0: drop them first.
    """
    text = _is_text(y) or isinstance(y.dtype, pd.CategoricalDtype)
    if text:
        norm = y.astype("str").str.strip().str.lower().astype(object).where(y.notna(), None)
    else:
        norm = y.astype(object).where(y.notna(), None)
    values = pd.unique(norm.dropna())
    if len(values) != 2:
        raise ValueError(
            f"target {y.name!r} must have exactly two distinct values, found {len(values)}: "
            f"{list(values)[:10]}"
        )
    if positive is None:
        positive = _guess_positive(values)
        if positive is None:
            raise ValueError(
                f"cannot tell which of {list(values)} is the positive (risky) class of "
                f"{y.name!r}; pass positive=<value>"
            )
    else:
        if text:
            positive = str(positive).strip().lower()
        if not any(positive == v for v in values):
            raise ValueError(
                f"positive={positive!r} is not one of the target values {list(values)}"
            )
    y01 = (norm == positive).astype("int64")
    return y01, positive


def _guess_positive(values: np.ndarray) -> Any:
    if all(isinstance(v, (bool, np.bool_)) for v in values):
        return next(v for v in values if bool(v))
    if all(isinstance(v, (int, float, np.integer, np.floating)) for v in values):
        return next((v for v in values if v == 1), None) if {0, 1} == set(values) else None
    hits = [v for v in values if str(v).strip().lower() in POSITIVE_TOKENS]
    return hits[0] if len(hits) == 1 else None


def prepare_labelled_table(
    df: pd.DataFrame,
    target: str,
    *,
    id_column: str | None = None,
    positive: Any = None,
) -> tuple[pd.DataFrame, pd.Series, dict[str, Any]]:
    """Validate and split a labelled table into features ``X``, 0/1 target ``y`` and an info dict.

    Rows with a missing target are dropped (counted in ``info["rows_dropped"]``). ``X`` keeps
    the inferred numeric columns as float64 and categorical ones as strings (NaN for missing),
    indexed by ``id_column`` when given.
    """
    if target not in df.columns:
        raise ValueError(f"target column {target!r} not in table columns {list(df.columns)}")
    if id_column is not None and id_column not in df.columns:
        raise ValueError(f"id column {id_column!r} not in table columns")
    keep = df[target].notna()
    data = df.loc[keep]
    if id_column is not None:
        data = data.set_index(id_column, drop=False)
    y, pos = binarize_target(data[target], positive)
    roles = infer_column_roles(data, target, id_column=id_column)
    if not roles["numeric"] and not roles["categorical"]:
        raise ValueError("no usable feature columns left after dropping constant/id-like columns")
    X = pd.DataFrame(index=data.index)
    for col in roles["numeric"]:
        X[col] = pd.to_numeric(data[col], errors="coerce").astype("float64")
    for col in roles["categorical"]:
        vals = data[col].to_numpy(dtype=object)
        out = np.full(len(vals), np.nan, dtype=object)
        present = ~pd.isna(vals)
        out[present] = vals[present].astype(str)
        X[col] = out
    X = X[[c for c in data.columns if c in X.columns]]
    if y.nunique() < 2:
        raise ValueError("target has a single class after dropping missing values")
    info = {
        "target": target,
        "positive_label": pos,
        "numeric": roles["numeric"],
        "categorical": roles["categorical"],
        "dropped": roles["dropped"],
        "rows": len(X),
        "rows_dropped": int((~keep).sum()),
        "positives": int(y.sum()),
        "positive_rate": float(y.mean()),
    }
    return X, y.rename(target), info


def synthetic_customer_table(
    n: int = 1500, *, n_noise: int = 40, seed: int = 0
) -> tuple[pd.DataFrame, pd.Series]:
    """A customer-shaped table ``(X, y)`` for tests and demos (not real data).

    Heavy-tailed amounts over orders of magnitude, counts, shares in [0, 1], recency/tenure days,
    NaN standard deviations for single-transaction customers, string categoricals with missing
    values, ``n_noise`` pure-noise columns, and a ~30 % positive label with real but noisy signal
    (stale, infrequent, low-spending customers are riskier).
    """
    rng = np.random.default_rng(seed)
    n_tx = rng.geometric(0.08, n)
    avg = np.exp(rng.normal(8.5, 1.2, n))
    debit_sum = n_tx * avg * np.exp(rng.normal(0, 0.3, n))
    std = np.where(n_tx > 1, avg * rng.uniform(0.1, 1.5, n), np.nan)
    recency = np.minimum(rng.exponential(20, n), 89.0).round()
    tenure = np.clip(recency + rng.exponential(40, n), recency, 90).round()
    share_airtime = rng.beta(2, 3, n)
    share_fin = (1 - share_airtime) * rng.beta(1, 4, n)
    channel = rng.choice(
        ["ChannelId_3", "ChannelId_2", "ChannelId_1", "ChannelId_5"], n, p=[0.55, 0.35, 0.07, 0.03]
    ).astype(object)
    category = rng.choice(
        ["airtime", "financial_services", "utility_bill", "data_bundles", "tv"],
        n,
        p=[0.45, 0.35, 0.1, 0.07, 0.03],
    ).astype(object)
    provider = rng.choice([f"ProviderId_{i}" for i in range(1, 7)], n).astype(object)
    channel[rng.random(n) < 0.03] = np.nan
    category[rng.random(n) < 0.02] = np.nan
    X = pd.DataFrame(
        {
            "n_transactions": n_tx.astype(float),
            "debit_sum": debit_sum,
            "debit_mean": debit_sum / n_tx,
            "debit_std": std,
            "credit_sum": -np.where(rng.random(n) < 0.4, np.exp(rng.normal(7, 1.5, n)), 0.0),
            "recency_days": recency,
            "tenure_days": tenure,
            "window_days": np.full(n, 90.0),
            "active_days": np.minimum(n_tx, tenure + 1).astype(float),
            "share_category_airtime": share_airtime,
            "share_category_financial_services": share_fin,
            "share_weekend": rng.beta(2, 5, n),
            "fraud_count": rng.poisson(0.02, n).astype(float),
        },
        index=pd.Index([f"CustomerId_{i}" for i in range(n)], name="CustomerId"),
    )
    for j in range(n_noise):
        X[f"noise_{j:02d}"] = rng.lognormal(0, 1 + (j % 3), n) if j % 2 else rng.normal(0, 1, n)
    X["top_channel"] = pd.Series(channel, index=X.index, dtype="str")
    X["top_category"] = pd.Series(category, index=X.index, dtype="str")
    X["top_provider"] = pd.Series(provider, index=X.index, dtype="str")
    logit = (
        -1.2
        + 0.045 * (recency - 20)
        - 0.5 * (np.log1p(n_tx) - 2.5)
        - 0.25 * (np.log1p(debit_sum) - 10)
        + 0.8 * (channel == "ChannelId_1")
        + 0.6 * share_fin
        + rng.normal(0, 0.8, n)
    )
    y = pd.Series(
        (rng.random(n) < 1 / (1 + np.exp(-logit))).astype("int64"),
        index=X.index,
        name="is_high_risk",
    )
    return X, y
