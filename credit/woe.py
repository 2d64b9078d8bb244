"""Weight of evidence (WoE) binning and information value (IV).

Convention (Siddiqi, *Credit Risk Scorecards*): with ``bad`` = label 1 and ``good`` = label 0,
for each bin ``i`` of a feature, with additive smoothing ``s`` over the feature's ``k`` bins::

    dist_good_i = (good_i + s) / (goods + s * k)
    dist_bad_i  = (bad_i  + s) / (bads  + s * k)
    woe_i       = ln(dist_good_i / dist_bad_i)          # > 0: safer than average
    iv_i        = (dist_good_i - dist_bad_i) * woe_i    # >= 0
    IV          = sum_i iv_i

Numeric features are cut at quantiles (intervals closed on the right, bins under
``min_bin_share`` of the rows merged into a neighbour); missing values form their own bin.
Categorical features use their levels as bins, levels under ``min_bin_share`` pooled into one
``__other__`` bin. At transform time an unseen level, or a missing value when none was seen in
fitting, gets WoE 0 (no evidence either way).

:class:`WoEEncoder` is a plain scikit-learn transformer (clonable; fitted state in dicts, lists and
floats, so skops can persist it) and fits inside a ``ColumnTransformer``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils import Tags
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import _assert_all_finite, check_is_fitted, column_or_1d

from credit.preprocess import nan_tolerant_tags, validate_frame

OTHER = "__other__"
MISSING = "NaN"
IV_THRESHOLDS: tuple[tuple[float, str], ...] = (
    (0.02, "useless"),
    (0.1, "weak"),
    (0.3, "medium"),
    (0.5, "strong"),
)
"""Upper bounds of the usual IV bands; IV >= 0.5 is "suspicious" (too good: check for leaks)."""


def iv_strength(iv: float) -> str:
    """The usual verbal band of an information value."""
    for bound, name in IV_THRESHOLDS:
        if iv < bound:
            return name
    return "suspicious"


def binary_target(y, n: int, who: str) -> tuple[np.ndarray, np.ndarray]:
    """``(event, classes)``: a 0/1 event indicator of ``y`` and its two sorted class labels.

    The event (bad, 1) is the second class, as ``predict_proba[:, 1]`` in scikit-learn. Raises
    ValueError for a length other than ``n``, missing or infinite values, a continuous target
    ("Unknown label type"), one class or more than two.
    """
    y = column_or_1d(y, warn=True)
    if y.shape[0] != n:
        raise ValueError(
            f"Found input variables with inconsistent numbers of samples: [{n}, {y.shape[0]}]"
        )
    if y.dtype.kind in "fc":
        _assert_all_finite(y, input_name="y")
    elif pd.isna(y).any():
        raise ValueError("Input y contains NaN (missing labels)")
    check_classification_targets(y)
    classes = np.unique(y)
    if classes.size < 2:
        raise ValueError(f"{who} needs both classes; y has 1 class: {classes}")
    if classes.size > 2:
        raise ValueError(
            f"Only binary classification is supported: {who} needs a binary target; "
            f"y has {classes.size} classes"
        )
    return (y == classes[1]).astype(np.int64), classes


def binary_classifier_tags(tags: Tags) -> Tags:
    """``tags`` of a classifier that takes a binary target only (:func:`binary_target`)."""
    tags.classifier_tags.multi_class = False
    return tags


def _is_numeric(s: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(s) and not isinstance(s.dtype, pd.CategoricalDtype)


def _merge_small(edges: list[float], counts: list[int], min_count: float) -> list[float]:
    """Drop inner edges until every bin holds at least ``min_count`` rows (or one bin is left)."""
    edges, counts = list(edges), list(counts)
    while len(counts) > 1 and min(counts) < min_count:
        j = int(np.argmin(counts))
        if j == 0:
            left = False
        elif j == len(counts) - 1:
            left = True
        else:
            left = counts[j - 1] <= counts[j + 1]
        neighbour = j - 1 if left else j + 1
        counts[neighbour] += counts[j]
        del counts[j]
        del edges[j - 1 if left else j]  # the edge between bin j and its neighbour
    return edges


def _woe_iv(bad: np.ndarray, good: np.ndarray, smoothing: float) -> tuple[np.ndarray, np.ndarray]:
    k = bad.size
    dist_bad = (bad + smoothing) / (bad.sum() + smoothing * k)
    dist_good = (good + smoothing) / (good.sum() + smoothing * k)
    with np.errstate(divide="ignore", invalid="ignore"):
        woe = np.log(dist_good / dist_bad)
    woe = np.where(np.isfinite(woe), woe, 0.0)  # only without smoothing and an empty class
    return woe, (dist_good - dist_bad) * woe


def _fmt(x: float) -> str:
    return f"{x:.6g}"


class WoEEncoder(TransformerMixin, BaseEstimator):
    """Replace each feature by the weight of evidence of its bin.

    Parameters
    ----------
    n_bins: quantile bins per numeric feature before small bins are merged.
    min_bin_share: a numeric bin or categorical level under this share of rows is merged/pooled.
    smoothing: pseudo-count added to the bad and good count of every bin.

    Fitted attributes: ``bins_`` (feature -> binning spec), ``iv_`` (feature -> IV),
    ``n_features_in_`` and, when fitted on a DataFrame, ``feature_names_in_``. An array's
    columns are named ``x0, x1, ...``. The event (WoE's "bad") is the second sorted class of
    ``y`` (1 for a 0/1 target).
    """

    def __init__(self, n_bins: int = 10, min_bin_share: float = 0.05, smoothing: float = 0.5):
        self.n_bins = n_bins
        self.min_bin_share = min_bin_share
        self.smoothing = smoothing

    def fit(self, X: pd.DataFrame | np.ndarray, y: pd.Series | np.ndarray) -> WoEEncoder:
        """Bin every column of ``X`` and compute each bin's WoE against binary ``y``."""
        if int(self.n_bins) < 1:
            raise ValueError("n_bins must be >= 1")
        if not 0 <= float(self.min_bin_share) < 1:
            raise ValueError("min_bin_share must be in [0, 1)")
        if float(self.smoothing) < 0:
            raise ValueError("smoothing must be >= 0")
        frame = validate_frame(self, X, reset=True)
        target, _ = binary_target(y, len(frame), type(self).__name__)
        self.bins_: dict[str, dict] = {}
        self.iv_: dict[str, float] = {}
        for col in frame.columns:
            series = frame[col]
            if _is_numeric(series):
                spec = self._fit_numeric(series.to_numpy(dtype=np.float64), target)
            else:
                spec = self._fit_categorical(series, target)
            self.bins_[str(col)] = spec
            self.iv_[str(col)] = float(sum(spec["iv"]))
        return self

    def __sklearn_tags__(self):
        tags = nan_tolerant_tags(super().__sklearn_tags__(), string=True)
        tags.target_tags.required = True
        return tags

    def _finish(self, spec: dict, bin_index: np.ndarray, labels: list[str], target: np.ndarray):
        k = len(labels)
        count = np.bincount(bin_index, minlength=k)
        bad = np.bincount(bin_index, weights=target, minlength=k)
        woe, iv = _woe_iv(bad, count - bad, float(self.smoothing))
        spec.update(
            labels=labels,
            count=[int(v) for v in count],
            bad=[int(v) for v in bad],
            woe=[float(v) for v in woe],
            iv=[float(v) for v in iv],
        )
        return spec

    def _fit_numeric(self, x: np.ndarray, target: np.ndarray) -> dict:
        missing = np.isnan(x)
        present = x[~missing]
        finite = present[np.isfinite(present)]
        edges: list[float] = []
        if finite.size and int(self.n_bins) > 1:
            qs = np.linspace(0, 1, int(self.n_bins) + 1)[1:-1]
            candidates = np.unique(np.quantile(finite, qs))
            edges = [float(e) for e in candidates if e < finite.max()]
            counts = np.bincount(
                np.searchsorted(edges, present, side="left"), minlength=len(edges) + 1
            )
            edges = _merge_small(edges, counts.tolist(), float(self.min_bin_share) * x.size)
        index = np.searchsorted(edges, x, side="left")
        bounds = [-math.inf, *edges, math.inf]
        labels = [
            f"({_fmt(lo)}, {_fmt(hi)}]" if math.isfinite(hi) else f"({_fmt(lo)}, inf)"
            for lo, hi in zip(bounds[:-1], bounds[1:], strict=True)
        ]
        has_missing = bool(missing.any())
        if has_missing:
            index[missing] = len(labels)
            labels.append(MISSING)
        spec = {"kind": "numeric", "edges": edges, "has_missing": has_missing}
        return self._finish(spec, index, labels, target)

    def _fit_categorical(self, series: pd.Series, target: np.ndarray) -> dict:
        missing = series.isna().to_numpy()
        values = series.astype("str").to_numpy(dtype=object)
        levels, counts = np.unique(values[~missing], return_counts=True)
        min_count = float(self.min_bin_share) * len(series)
        order = np.lexsort((levels, -counts))  # most frequent first, ties by name
        kept = [str(levels[i]) for i in order if counts[i] >= min_count]
        rare = [str(levels[i]) for i in order if counts[i] < min_count]
        labels = kept + ([OTHER] if rare else [])
        position = {level: i for i, level in enumerate(kept)}
        position.update({level: len(kept) for level in rare})
        index = np.full(len(series), -1, dtype=np.int64)
        index[~missing] = pd.Series(values[~missing]).map(position).to_numpy(dtype=np.int64)
        has_missing = bool(missing.any())
        if has_missing:
            index[missing] = len(labels)
            labels.append(MISSING)
        spec = {
            "kind": "categorical",
            "levels": kept,
            "rare_levels": rare,
            "has_missing": has_missing,
        }
        return self._finish(spec, index, labels, target)

    def transform(self, X: pd.DataFrame | np.ndarray) -> np.ndarray:
        """WoE of each value's bin, as a float64 array with the input's column order."""
        check_is_fitted(self, "bins_")
        frame = validate_frame(self, X, reset=False)
        out = np.empty(frame.shape, dtype=np.float64)
        for j, spec in enumerate(self.bins_.values()):
            series = frame.iloc[:, j]
            woe = np.asarray(spec["woe"], dtype=np.float64)
            missing = series.isna().to_numpy()
            nan_woe = woe[-1] if spec["has_missing"] else 0.0
            if spec["kind"] == "numeric":
                x = pd.to_numeric(series, errors="coerce").to_numpy(dtype=np.float64)
                missing = np.isnan(x)
                idx = np.searchsorted(spec["edges"], np.where(missing, 0.0, x), side="left")
                col = woe[idx]
            else:
                mapping = {level: woe[i] for i, level in enumerate(spec["levels"])}
                if spec["rare_levels"]:
                    other = woe[len(spec["levels"])]
                    mapping.update({level: other for level in spec["rare_levels"]})
                col = series.astype("str").map(mapping).to_numpy(dtype=np.float64, na_value=0.0)
                col = np.nan_to_num(col, nan=0.0)  # unseen level: no evidence
            col[missing] = nan_woe
            out[:, j] = col
        return out

    def get_feature_names_out(self, input_features: list[str] | None = None) -> np.ndarray:
        """One output per input feature, same names."""
        check_is_fitted(self, "bins_")
        return np.asarray(list(self.bins_), dtype=object)

    def woe_table(self) -> pd.DataFrame:
        """Per feature and bin: count, bad, good, bad rate, WoE and IV contribution."""
        check_is_fitted(self, "bins_")
        rows = []
        for name, spec in self.bins_.items():
            for label, count, bad, woe, iv in zip(
                spec["labels"], spec["count"], spec["bad"], spec["woe"], spec["iv"], strict=True
            ):
                rows.append(
                    {
                        "feature": name,
                        "bin": label,
                        "count": count,
                        "bad": bad,
                        "good": count - bad,
                        "bad_rate": bad / count if count else math.nan,
                        "woe": woe,
                        "iv_contribution": iv,
                    }
                )
        return pd.DataFrame(rows, columns=list(_WOE_COLUMNS))

    def iv_table(self) -> pd.DataFrame:
        """One row per feature: IV, its band and the number of bins, highest IV first."""
        check_is_fitted(self, "bins_")
        return ranked_iv_table(
            self.iv_,
            strength=[iv_strength(v) for v in self.iv_.values()],
            n_bins=[len(self.bins_[f]["labels"]) for f in self.iv_],
        )


def ranked_iv_table(iv: dict[str, float], **columns: list[Any]) -> pd.DataFrame:
    """One row per feature of ``iv`` (feature, iv, then ``columns`` in that order), highest IV
    first, ties by feature name."""
    table = pd.DataFrame({"feature": list(iv), "iv": list(iv.values()), **columns})
    return table.sort_values(["iv", "feature"], ascending=[False, True], ignore_index=True)


_WOE_COLUMNS = ("feature", "bin", "count", "bad", "good", "bad_rate", "woe", "iv_contribution")


def iv_table(X: pd.DataFrame, y: pd.Series | np.ndarray, **kw: float) -> pd.DataFrame:
    """Information value of every column of ``X`` against ``y`` (columns: feature, iv, strength,
    n_bins), highest first. Keyword arguments go to :class:`WoEEncoder`."""
    return WoEEncoder(**kw).fit(X, y).iv_table()


def woe_table(X: pd.DataFrame, y: pd.Series | np.ndarray, **kw: float) -> pd.DataFrame:
    """Bin-level WoE table of every column of ``X`` (feature, bin, count, bad, good, bad_rate,
    woe, iv_contribution). Keyword arguments go to :class:`WoEEncoder`."""
    return WoEEncoder(**kw).fit(X, y).woe_table()
