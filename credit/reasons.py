"""Reason codes: the factors that raised each customer's risk, in a loan officer's words.

Model-agnostic "what if this were typical" attribution: for every customer ``i`` and input feature
``j`` (the original customer columns, before preprocessing), feature ``j`` is reset to a reference
value (training median for numeric columns, training mode for categorical ones) and the model is
asked again. ``impact[i, j] = PD(actual row) - PD(row with feature j typical)``; a positive impact
means the customer's actual value raised the PD. The ``top`` features with the largest positive
impact are the reasons. All perturbed rows of a chunk of customers go to ONE ``predict_pd`` call
(``n_customers x n_features`` rows, chunked to about ``chunk_rows`` rows). The served model
computes the same impacts faster through its structure (:func:`columnwise_impacts`): the
preprocessing runs once, a logistic regression's resets are exact sums of per-column terms, a
boosted ensemble's are sums over rewired copies of the trees that test the feature
(:mod:`credit.tree_resets`), and a random forest is asked only about resets that cross one of
its split thresholds.

Feature names become phrases through pattern rules (:data:`RULES`, read from ``reasons.toml``),
e.g. ``recency_days`` -> "Long time since the last purchase (45 days; typical 10 days)",
``share_category_airtime`` -> "High share of airtime purchases (95%; typical 82%)"; unknown
names fall back to the humanised name plus "higher/lower than typical".
"""

from __future__ import annotations

import functools
import math
import re
import tomllib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy.special import expit

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


#: The phrase rules, first match wins (``credit/reasons.toml``).
RULES: tuple[Rule, ...] = tuple(
    Rule(**rule)
    for rule in tomllib.loads(Path(__file__).with_name("reasons.toml").read_text("utf-8"))["rule"]
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


@functools.lru_cache(maxsize=4096)
def _rule_of(feature: str) -> tuple[Rule | None, str]:
    """The first rule matching ``feature`` and its level (weekday names spelled out)."""
    for regex, r in _COMPILED:
        m = regex.match(feature)
        if m:
            level = next((g for g in m.groups() if g), "") if m.groups() else ""
            return r, _DAYS.get(level, level.replace("_", " "))
    return None, ""


def describe(feature: str, value: Any, reference: Any) -> str:
    """Plain-language phrase for ``feature`` having ``value`` where ``reference`` is typical."""
    rule, level = _rule_of(feature)
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


@dataclass(frozen=True)
class ColumnwiseModel:
    """A PD model seen as a columnwise ``transform`` of the input columns, then a ``head``.

    ``groups[j]`` are the transformed columns that depend on input feature ``j`` alone, so
    "feature ``j`` reset to its reference" is the transformed matrix with those columns set to
    ``z_reference`` (the transformed reference row): no second pass through the preprocessing.
    ``linear`` ``(w, b)`` when the head is ``link(Z @ w + b)`` (a logistic regression, possibly
    calibrated): the reset decisions are exact sums, no model call at all. ``terms`` when the
    head is ``link(decision(Z))`` with an additive decision (a boosted ensemble's raw score, a
    forest's mean leaf probability): ``terms(Z)`` gives ``(decision, drop)``, reset ``j``'s
    decision being ``decision - drop[:, j]`` (:func:`credit.tree_resets.boosted_reset_terms`,
    :func:`credit.tree_resets.forest_reset_terms`). ``thresholds`` (per
    transformed column, the sorted split thresholds of a tree ensemble): a reset that crosses
    none of them changes no tree's path, so its impact is 0 without a model call.
    """

    transform: Callable[[pd.DataFrame], np.ndarray]
    head: Callable[[np.ndarray], np.ndarray]
    groups: list[np.ndarray]
    z_reference: np.ndarray
    linear: tuple[np.ndarray, float] | None = None
    link: Callable[[np.ndarray], np.ndarray] | None = None
    terms: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]] | None = None
    thresholds: list[np.ndarray] | None = None
    float32: bool = False  # the trees compare float32 values (scikit-learn's forests)
    terms_min_rows: int = 0  # fewer rows take the stacked path (a forest: see columnwise_view)


def columnwise_impacts(
    model: ColumnwiseModel, X: pd.DataFrame, *, chunk_rows: int = 200_000
) -> tuple[np.ndarray, np.ndarray]:
    """``(pd, impact)`` exactly as :func:`reason_impacts` defines them, through ``model``'s
    structure: X is transformed once and the reset rows are built in the transformed space.

    Linear and additive heads (``linear``, ``terms``): every reset decision is the decision
    minus that feature's drop, then the link. Other heads: the reset rows go to the head in one
    stacked call per ``chunk_rows`` rows; with split ``thresholds`` only the (customer, feature)
    pairs whose reset moves some column across a split threshold (the others' impact is
    exactly 0: every tree takes the same path). Fewer than ``terms_min_rows`` rows take that
    stacked path even with ``terms``, when one call of the head costs less.
    """
    Z = model.transform(X)
    n, k = len(Z), len(model.groups)
    zr = model.z_reference
    terms = decision_terms(model, Z) if n >= model.terms_min_rows else None
    if terms is not None and model.link is not None:
        decision, delta = terms
        base = model.link(decision)
        reset = model.link((decision[:, None] - delta).ravel()).reshape(n, k)
        return base, base[:, None] - reset
    Z = np.ascontiguousarray(Z)  # the reset rows are gathered row by row
    base = np.asarray(model.head(Z), dtype=float)
    impact = np.zeros((n, k), dtype=float)
    if n == 0 or k == 0:
        return base, impact
    feature, row = np.nonzero(_moved(model, Z).T)  # the pairs to predict, feature-major
    for start in range(0, len(row), chunk_rows):
        f, r = feature[start : start + chunk_rows], row[start : start + chunk_rows]
        block = Z[r]
        cuts = [0, *(np.flatnonzero(np.diff(f)) + 1).tolist(), len(f)]
        for lo, hi in zip(cuts[:-1], cuts[1:], strict=True):
            cols = model.groups[int(f[lo])]
            block[lo:hi, cols] = zr[cols]
        impact[r, f] = base[r] - np.asarray(model.head(block), dtype=float)
    return base, impact


def decision_terms(model: ColumnwiseModel, Z: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """``(decision, drop)`` of a linear or additive head (None for others): the decision of each
    row and, per feature, how much lower it is with that feature at its reference."""
    if model.linear is not None:
        return _linear_terms(model, Z)
    if model.terms is not None:
        return model.terms(Z)
    return None


def _linear_terms(model: ColumnwiseModel, Z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A linear head's decision ``Z @ w + b`` and, per feature, ``delta``: the sum of
    ``w_c (z_c - zr_c)`` over its columns (the decision drop when it is reset)."""
    assert model.linear is not None
    w, b = model.linear
    share = np.zeros((len(w), len(model.groups)))  # column c's term goes to the feature owning c
    for j, cols in enumerate(model.groups):
        share[cols, j] = w[cols]
    return Z @ w + b, (Z - model.z_reference) @ share


def additive_top_impacts(
    model: ColumnwiseModel, X: pd.DataFrame, *, top: int = 3, min_impact: float = 1e-6
) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """``(pd, order, chosen)`` as :func:`columnwise_impacts` then :func:`top_order` give them
    (``chosen``: the impacts at ``order``), for a linear or additive head (``linear``,
    ``terms``) with the logistic link; None for any other model.

    The impact ``link(d) - link(d - delta_j)`` rises with ``delta_j`` (the link is monotone),
    so only the ``top + 4`` features of largest ``delta`` per row go through the link. A
    feature left out has an impact at most the smallest of theirs; a row whose ``top``-th
    impact (above ``min_impact``) equals that smallest one might tie with a left-out feature,
    and is computed in full.
    """
    if (model.linear is None and model.terms is None) or model.link is not expit:
        return None
    Z = model.transform(X)
    n, k = len(Z), len(model.groups)
    terms = decision_terms(model, Z)
    assert terms is not None
    decision, delta = terms
    base = expit(decision)
    width = min(k, top + 4)
    if width == k or n == 0:
        impact = base[:, None] - expit((decision[:, None] - delta).ravel()).reshape(n, k)
        order = top_order(impact, top, min_impact)
        return base, order, np.take_along_axis(impact, order, axis=1)
    candidates = np.sort(np.argpartition(-delta, width - 1, axis=1)[:, :width], axis=1)
    reset = decision[:, None] - np.take_along_axis(delta, candidates, axis=1)
    impact = base[:, None] - expit(reset.ravel()).reshape(n, width)
    inner = top_order(impact, top, min_impact)  # columns ascending: ties break as in full
    order = np.take_along_axis(candidates, inner, axis=1)
    chosen = np.take_along_axis(impact, inner, axis=1)
    kth = chosen.min(axis=1)
    unsure = (kth > min_impact) & (kth <= impact.min(axis=1))
    if unsure.any():
        rows = np.flatnonzero(unsure)
        full = base[rows, None] - expit(decision[rows, None] - delta[rows])
        order[rows] = top_order(full, top, min_impact)
        chosen[rows] = np.take_along_axis(full, order[rows], axis=1)
    return base, order, chosen


def _moved(model: ColumnwiseModel, Z: np.ndarray) -> np.ndarray:
    """``(n, k)``: whether resetting feature j of row i can change the PD (all True without
    split thresholds; with them, whether some column of j lies on another side of a split
    than its reference value; NaN on a side of its own)."""
    moved = np.ones((len(Z), len(model.groups)), dtype=bool)
    if model.thresholds is None:
        return moved
    cast = np.float32 if model.float32 else np.float64
    values = Z.astype(cast).astype(np.float64)
    ref = model.z_reference.astype(cast).astype(np.float64)

    def side(th: np.ndarray, v: np.ndarray) -> np.ndarray:
        return np.where(np.isnan(v), len(th) + 1, np.searchsorted(th, v, side="left"))

    for j, cols in enumerate(model.groups):
        moved[:, j] = False
        for c in cols.tolist():
            th = model.thresholds[c]
            moved[:, j] |= side(th, values[:, c]) != side(th, ref[c : c + 1])
    return moved


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
    if impact.size == 0:
        return [[] for _ in range(len(X))]
    order = top_order(impact, top, min_impact)
    chosen = np.take_along_axis(impact, order, axis=1)
    return reasons_at(X, order, chosen, reference, features=features, min_impact=min_impact)


def reasons_at(
    X: pd.DataFrame,
    order: np.ndarray,
    chosen: np.ndarray,
    reference: dict[str, Any],
    *,
    features: Sequence[str] | None = None,
    min_impact: float = 1e-6,
) -> list[list[dict[str, Any]]]:
    """The reasons of :func:`top_reasons` from each row's top feature columns ``order`` and
    their impacts ``chosen`` (those up to ``min_impact`` give no reason)."""
    features = list(features if features is not None else reference)
    rows, slots = np.nonzero(chosen > min_impact)  # row-major: each row's reasons in order
    picked = order[rows, slots]
    values = np.full(len(rows), None, dtype=object)
    texts = np.empty(len(rows), dtype=object)
    refs = [_plain(reference.get(f)) for f in features]
    for j in np.unique(picked).tolist():
        at = np.flatnonzero(picked == j)
        if features[j] in X.columns:
            values[at] = _plain_array(X[features[j]].to_numpy()[rows[at]])
        # one phrase per distinct value of the feature (values repeat across customers)
        codes, uniques = pd.factorize(values[at], use_na_sentinel=True)
        phrases = [describe(features[j], v, refs[j]) for v in uniques.tolist()]
        phrases.append(describe(features[j], None, refs[j]))  # code -1: missing
        texts[at] = np.asarray(phrases, dtype=object)[codes]

    from credit.woe_scorecard import gc_paused  # that module imports this one

    ends = np.cumsum(np.bincount(rows, minlength=len(X))).tolist()
    names = np.asarray(features, dtype=object)[picked].tolist()
    references = np.asarray([*refs, None], dtype=object)[picked].tolist()
    with gc_paused():  # many small dicts: no collector passes over them meanwhile
        flat = [
            {"feature": f, "value": v, "reference": r, "impact": imp, "text": t}
            for f, v, r, imp, t in zip(
                names,
                values.tolist(),
                references,
                chosen[rows, slots].tolist(),
                texts.tolist(),
                strict=True,
            )
        ]
        return [flat[a:b] for a, b in zip([0, *ends[:-1]], ends, strict=True)]


def top_order(impact: np.ndarray, top: int, min_impact: float) -> np.ndarray:
    """``argsort(-impact, stable)[:, :top]`` where it matters (impacts above ``min_impact``),
    from a partial sort: the ``top`` largest of each row by (impact desc, column asc). A row
    whose ``top``-th largest impact is above ``min_impact`` and tied with one left out falls
    back to the full stable sort, so the chosen columns are exactly the stable sort's."""
    n, width = impact.shape
    k = min(top, width)
    if k == width or k == 0:
        return np.argsort(-impact, axis=1, kind="stable")[:, :k]
    part = np.argpartition(-impact, k - 1, axis=1)[:, :k]
    values = np.take_along_axis(impact, part, axis=1)
    # within the k: impact descending, then column ascending (the stable sort's order)
    inner = np.lexsort((part, -values), axis=-1) if n else np.empty((0, k), np.intp)
    order = np.take_along_axis(part, inner, axis=1)
    kth = values.min(axis=1)
    tied = (kth > min_impact) & ((impact >= kth[:, None]).sum(axis=1) > k)
    if tied.any():
        order[tied] = np.argsort(-impact[tied], axis=1, kind="stable")[:, :k]
    return order


def _plain_array(values: np.ndarray) -> np.ndarray:
    """:func:`_plain` of every element, vectorised: python scalars, None for missing."""
    out = values.astype(object)
    if values.dtype.kind in "fc":
        out[np.isnan(values)] = None
    elif values.dtype.kind not in "iub":
        out[pd.isna(values)] = None
        return np.array([_plain(v) for v in out.tolist()], dtype=object)
    return out


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
