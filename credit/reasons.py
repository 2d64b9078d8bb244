"""Reason codes: the factors that raised each customer's risk, in a loan officer's words.

Model-agnostic "what if this were typical" attribution: for every customer ``i`` and input feature
``j`` (the original customer columns, before preprocessing), feature ``j`` is reset to a reference
value (training median for numeric columns, training mode for categorical ones) and the model is
asked again. ``impact[i, j] = PD(actual row) - PD(row with feature j typical)``; a positive impact
means the customer's actual value raised the PD. The ``top`` features with the largest positive
impact are the reasons. All perturbed rows of a chunk of customers go to ONE ``predict_pd`` call
(``n_customers x n_features`` rows, chunked to about ``chunk_rows`` rows).

Feature names become phrases through pattern rules (:data:`RULES`), e.g. ``recency_days`` ->
"Long time since the last purchase (45 days; typical 10 days)", ``share_category_airtime`` ->
"High share of airtime purchases (95%; typical 82%)"; unknown names fall back to the humanised
name plus "higher/lower than typical".
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

# ---------------------------------------------------------------------------------------------
# Reference values


def reference_values(
    X: pd.DataFrame, numeric: Sequence[str], categorical: Sequence[str]
) -> dict[str, Any]:
    """Typical value of each feature: median (numeric, NaN if all missing), mode (categorical)."""
    ref: dict[str, Any] = {}
    for col in numeric:
        values = pd.to_numeric(X[col], errors="coerce").to_numpy(dtype=float)
        ref[col] = float(np.nanmedian(values)) if np.isfinite(values).any() else float("nan")
    for col in categorical:
        counts = X[col].dropna().astype(str).value_counts(sort=False)
        if counts.empty:
            ref[col] = None
        else:  # most frequent level, ties broken by name for determinism
            top = counts.max()
            ref[col] = str(min(counts.index[counts == top]))
    return ref


# ---------------------------------------------------------------------------------------------
# Phrases


@dataclass(frozen=True)
class Rule:
    """Phrase rule for feature names matching ``pattern``; ``{level}`` is the first group."""

    pattern: str
    unit: str  # "days", "count", "amount", "share", "rate", "level", "number"
    high: str  # phrase when the customer's value is above the reference
    low: str  # phrase when it is below
    missing: str = ""


RULES: tuple[Rule, ...] = (
    Rule(r"recency_days", "days", "Long time since the last purchase", "Very recent activity only"),
    Rule(r"tenure_days", "days", "Long history with Xente", "Short history with Xente"),
    Rule(
        r"span_days",
        "days",
        "Activity spread over a long period",
        "Activity squeezed into a short period",
    ),
    Rule(r"active_days", "count", "Many active days", "Few days with any purchase"),
    Rule(
        r"tx_per_active_day",
        "number",
        "Many transactions on each active day",
        "Few transactions on each active day",
    ),
    Rule(
        r"n_tx_(\d+)d",
        "count",
        "Many transactions in the last {level} days",
        "Few transactions in the last {level} days",
    ),
    Rule(
        r"n_tx|n_transactions|frequency",
        "count",
        "Many transactions",
        "Few transactions in the observation window",
    ),
    Rule(r"n_debit", "count", "Many purchases", "Few purchases"),
    Rule(
        r"n_credit",
        "count",
        "Many credits (refunds, reversals) into the account",
        "Few credits into the account",
    ),
    Rule(
        r"share_credit_tx",
        "share",
        "High share of credits (refunds, reversals)",
        "Low share of credits",
    ),
    Rule(
        r"gap_(mean|median)_days",
        "days",
        "Long gaps between purchases",
        "Short gaps between purchases",
        "Only one purchase: no buying rhythm yet",
    ),
    Rule(
        r"gap_max_days",
        "days",
        "A long break between purchases",
        "No long break between purchases",
        "Only one purchase: no buying rhythm yet",
    ),
    Rule(
        r"gap_std_days",
        "days",
        "Irregular timing of purchases",
        "Very regular timing of purchases",
        "Only one purchase: no buying rhythm yet",
    ),
    Rule(
        r"(?:debit|amount|value|monetary)_sum|monetary",
        "amount",
        "High total spending",
        "Low total spending",
    ),
    Rule(
        r"(?:debit|amount|value)_(?:mean|median)",
        "amount",
        "Large typical purchase amount",
        "Small typical purchase amount",
        "No purchases in the observation window",
    ),
    Rule(
        r"(?:debit|amount|value)_std",
        "amount",
        "Irregular purchase amounts",
        "Very uniform purchase amounts",
        "Only one transaction: no spending pattern yet",
    ),
    Rule(
        r"(?:amount|value)_max", "amount", "Very large single transaction", "Small largest purchase"
    ),
    Rule(
        r"(?:amount|value)_min",
        "amount",
        "High smallest transaction",
        "Low smallest transaction (large refunds or credits)",
    ),
    Rule(
        r"credit_sum",
        "amount",
        "Large amounts credited back to the account",
        "Little money credited back to the account",
    ),
    Rule(
        r"credit_mean",
        "amount",
        "Large average credit into the account",
        "Small average credit into the account",
        "No credits into the account",
    ),
    Rule(
        r"fee_count",
        "count",
        "Many fee-bearing payments (utility bills)",
        "Few fee-bearing payments",
    ),
    Rule(r"fee_sum", "amount", "High fees paid", "Low fees paid"),
    Rule(r"fraud_count", "count", "Transactions flagged as fraud", "No fraud flags"),
    Rule(r"n_products", "count", "Buys many different products", "Buys few different products"),
    Rule(r"n_accounts", "count", "Uses many accounts", "Uses few accounts"),
    Rule(r"cashback_count", "count", "Many cash-back rewards", "Few cash-back rewards earned"),
    Rule(r"cashback_sum", "amount", "Much cash-back earned", "Little cash-back earned"),
    Rule(
        r"cashback_rate",
        "rate",
        "High cash-back rate",
        "Low cash-back rate",
        "No purchases to earn cash-back",
    ),
    Rule(
        r"share_tod_(\w+)",
        "share",
        "High share of {level} activity",
        "Low share of {level} activity",
    ),
    Rule(r"share_dow_(\w+)", "share", "Much activity on {level}", "Little activity on {level}"),
    Rule(r"share_weekend", "share", "Mostly weekend activity", "Little weekend activity"),
    Rule(
        r"share_category_(\w+)",
        "share",
        "High share of {level} purchases",
        "Low share of {level} purchases",
    ),
    Rule(
        r"share_channel_(\w+)",
        "share",
        "High share of purchases through channel {level}",
        "Low share of purchases through channel {level}",
    ),
    Rule(
        r"share_provider_(\w+)",
        "share",
        "High share of purchases from provider {level}",
        "Low share of purchases from provider {level}",
    ),
    Rule(
        r"share_pricing_(\w+)",
        "share",
        "High share of pricing strategy {level}",
        "Low share of pricing strategy {level}",
    ),
    Rule(r"top_category", "level", "Mostly buys {value}", "Mostly buys {value}"),
    Rule(r"top_channel", "level", "Mostly uses {value}", "Mostly uses {value}"),
    Rule(r"top_provider", "level", "Mostly buys from {value}", "Mostly buys from {value}"),
)
_COMPILED = tuple((re.compile(rf"^(?:{r.pattern})$"), r) for r in RULES)
_DAYS = {
    "mon": "Mondays",
    "tue": "Tuesdays",
    "wed": "Wednesdays",
    "thu": "Thursdays",
    "fri": "Fridays",
    "sat": "Saturdays",
    "sun": "Sundays",
}


def humanise(name: str) -> str:
    """``debit_sum`` -> ``Debit sum``."""
    words = re.sub(r"[_\W]+", " ", str(name)).strip()
    return words[:1].upper() + words[1:] if words else str(name)


def _fmt(value: Any, unit: str) -> str:
    if isinstance(value, str):
        return value
    v = float(value)
    if unit == "share":
        return f"{v:.0%}"
    if unit == "rate":
        return f"{v:.1%}"
    if unit == "amount":
        return f"{v:,.0f} UGX"
    if unit == "days":
        return f"{v:.0f} day" if round(v) == 1 else f"{v:.0f} days"
    if unit == "count":
        return f"{v:,.0f}"
    return f"{v:,.3g}" if abs(v) < 1000 else f"{v:,.0f}"


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def describe(feature: str, value: Any, reference: Any) -> str:
    """Plain-language phrase for ``feature`` having ``value`` where ``reference`` is typical."""
    rule = None
    level = ""
    for regex, r in _COMPILED:
        m = regex.match(feature)
        if m:
            rule = r
            level = next((g for g in m.groups() if g), "") if m.groups() else ""
            break
    level = _DAYS.get(level, level.replace("_", " "))
    if rule is None:
        rule = Rule(
            "",
            "number",
            f"{humanise(feature)} higher than typical",
            f"{humanise(feature)} lower than typical",
        )
    if _missing(value):
        return rule.missing or f"{humanise(feature)} not available"
    if rule.unit == "level" or isinstance(value, str):
        text = rule.high if rule.unit == "level" else f"{humanise(feature)} is {{value}}"
        text = text.format(level=level, value=str(value).replace("_", " "))
        if _missing(reference):
            return text
        return f"{text} (most customers: {str(reference).replace('_', ' ')})"
    above = _missing(reference) or float(value) >= float(reference)
    text = (rule.high if above else rule.low).format(level=level, value=value)
    detail = _fmt(value, rule.unit)
    if not _missing(reference):
        detail += f"; typical {_fmt(reference, rule.unit)}"
    return f"{text} ({detail})"


# ---------------------------------------------------------------------------------------------
# Attribution


def reason_impacts(
    predict_pd: Callable[[pd.DataFrame], np.ndarray],
    X: pd.DataFrame,
    reference: dict[str, Any],
    *,
    features: Sequence[str] | None = None,
    chunk_rows: int = 200_000,
) -> tuple[np.ndarray, np.ndarray]:
    """``(pd, impact)``: each row's PD and the ``(n, n_features)`` matrix of PD drops when one
    feature at a time is set to its reference value (positive = the actual value raised PD)."""
    features = list(features if features is not None else reference)
    n, k = len(X), len(features)
    base = np.empty(n, dtype=float)
    impact = np.zeros((n, k), dtype=float)
    if n == 0 or k == 0:
        return predict_pd(X) if n else base, impact
    per_chunk = max(1, chunk_rows // (k + 1))
    position = {f: j for j, f in enumerate(features)}
    for start in range(0, n, per_chunk):
        Xc = X.iloc[start : start + per_chunk]
        m = len(Xc)
        columns = {}
        for col in X.columns:
            values = Xc[col].to_numpy()
            tiled = np.tile(values, k + 1)  # block j < k: feature j reset; block k: actual rows
            j = position.get(col)
            if j is not None:
                ref = reference.get(col)
                if tiled.dtype.kind in "fiub":
                    tiled = tiled.astype(float)
                    tiled[j * m : (j + 1) * m] = np.nan if ref is None else ref
                else:
                    tiled = tiled.astype(object)
                    tiled[j * m : (j + 1) * m] = np.nan if ref is None else ref
            columns[col] = tiled
        batch = pd.DataFrame(columns, columns=X.columns)
        probs = np.asarray(predict_pd(batch), dtype=float).reshape(k + 1, m)
        base[start : start + m] = probs[k]
        impact[start : start + m] = (probs[k][None, :] - probs[:k]).T
    return base, impact


def top_reasons(
    X: pd.DataFrame,
    impact: np.ndarray,
    reference: dict[str, Any],
    *,
    features: Sequence[str] | None = None,
    top: int = 3,
    min_impact: float = 1e-6,
) -> list[list[dict[str, Any]]]:
    """Per row, up to ``top`` reasons ``{feature, value, reference, impact, text}`` ordered by
    impact (only features whose actual value raised the PD by more than ``min_impact``)."""
    features = list(features if features is not None else reference)
    if impact.size == 0:
        return [[] for _ in range(len(X))]
    k = min(top, impact.shape[1])
    order = np.argsort(-impact, axis=1, kind="stable")[:, :k]
    chosen = np.take_along_axis(impact, order, axis=1)
    values = {f: X[f].to_numpy(dtype=object) for f in features if f in X.columns}

    def item(i: int, j: int, imp: float) -> dict[str, Any]:
        f = features[j]
        v = _plain(values[f][i]) if f in values else None
        ref = _plain(reference.get(f))
        return {
            "feature": f,
            "value": v,
            "reference": ref,
            "impact": float(imp),
            "text": describe(f, v, ref),
        }

    return [
        [
            item(i, int(j), imp)
            for j, imp in zip(order[i], chosen[i], strict=True)
            if imp > min_impact
        ]
        for i in range(len(X))
    ]


def _plain(v: Any) -> Any:
    """JSON-friendly scalar: python float/int/str, None for missing."""
    if v is None:
        return None
    if isinstance(v, (float, np.floating)):
        return None if math.isnan(float(v)) else float(v)
    if isinstance(v, (np.integer,)):
        return int(v)
    if isinstance(v, (np.bool_,)):
        return bool(v)
    try:
        if pd.isna(v):
            return None
    except (TypeError, ValueError):
        pass
    return v


def reason_codes(
    predict_pd: Callable[[pd.DataFrame], np.ndarray],
    X: pd.DataFrame,
    reference: dict[str, Any],
    *,
    top: int = 3,
    chunk_rows: int = 200_000,
) -> list[list[dict[str, Any]]]:
    """Top ``top`` reasons for every row of ``X`` (see the module docstring)."""
    features = [f for f in reference if f in X.columns]
    _, impact = reason_impacts(predict_pd, X, reference, features=features, chunk_rows=chunk_rows)
    return top_reasons(X, impact, reference, features=features, top=top)
