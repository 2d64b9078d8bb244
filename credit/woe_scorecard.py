"""WoE logistic scorecard on optbinning's optimal binning, scaled to points like the policy.

:class:`WoEScorecard` is a scikit-learn binary classifier:

1. **Binning** (optbinning ``BinningProcess``): every feature is binned against the target by
   optimal binning; numeric features get a monotonic event-rate trend, ascending or descending as
   the data supports it (``monotonic_trend="auto_asc_desc"``), categorical levels are grouped by
   event rate. Every feature also has a **Special** bin (values listed in ``special_codes``) and a
   **Missing** bin; a level unseen in fitting gets WoE 0 (no evidence).
2. **Selection by IV**: features whose information value is under ``min_iv`` (0.01) are dropped (the
   best one is kept when none passes), then, strongest first, those whose WoE correlates above
   ``max_corr`` with a stronger kept feature.
3. **Logistic regression**, coded as ``coding`` says. ``"woe"`` (the classic scorecard): one
   coefficient per feature on its bins' WoE; a feature given a coefficient of the wrong sign
   (safer bins scoring as riskier, a collinearity artefact) is dropped and the regression
   refitted until none is left, so points always rise with the WoE. ``"dummy"`` (the other
   textbook coding): one coefficient per bin, an indicator per bin seen in fitting, shrunk
   towards 0 by the L2 penalty ``C``; the regression weighs correlated features jointly
   instead of through their marginal WoE (``max_corr`` and the sign rule do not apply). The
   flow's grid search (credit/grids.toml) chooses the coding by CV ROC-AUC.
4. **Points**: with the policy's points-to-double-odds scaling (:class:`credit.scorecard.Scorecard`,
   ``score = offset + factor * ln(good:bad odds)``) and ``n`` selected features, bin ``i`` of
   feature ``j`` adds the log-odds term ``t_ij`` (``coef_j * woe_ij``, or the bin's own
   coefficient) and scores ``offset / n - factor * (intercept / n + t_ij)`` points, so the
   points of a customer's bins add up to the (unrounded, unclipped) policy score of the PD the
   model predicts.

Reason codes (:meth:`WoEScorecard.reason_codes`) are adverse-action style: the features whose
bin scores the most points below that feature's best bin.

The fitted state is plain data (lists, dicts, floats, numpy arrays): the optbinning objects are
discarded after fitting, so the model persists with skops and scores without importing optbinning.
WoE follows optbinning's (and :mod:`credit.woe`'s) convention ``ln(%good / %bad)``: positive is
safer than average. It is smoothed (``woe_prior_rows``, an m-estimate: each bin counts as if it
held that many more rows at the overall event rate), so a bin of a few dozen rows (a Missing
bin, a rare level) does not get an extreme WoE from noise, and a bin seen empty gets WoE 0.
Measured on German-credit-like tables (tests/unit/test_woe_scorecard.py), smoothing and a
lower ``min_iv`` (0.01 rather than 0.02: age's IV sits near 0.02 although it matters) raise the
held-out ROC-AUC; neither finer bins nor a stronger regularisation did.
"""

from __future__ import annotations

import gc
import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np
import pandas as pd
from scipy.special import expit
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.linear_model import LogisticRegression
from sklearn.utils import Tags
from sklearn.utils.validation import check_is_fitted, check_memory

from credit.preprocess import nan_tolerant_tags, to_str_object, validate_frame
from credit.reasons import humanise
from credit.scorecard import Scorecard
from credit.woe import binary_classifier_tags, binary_target, ranked_iv_table

POINTS_COLUMNS = ("feature", "bin", "count", "event_rate", "woe", "iv", "points")
SPECIAL, MISSING = "Special", "Missing"


def _fmt(x: float) -> str:
    return f"{x:.4g}"


def _numeric_labels(splits: Sequence[float]) -> list[str]:
    bounds = [-math.inf, *splits, math.inf]
    return [
        f"{'(' if i == 0 else '['}{_fmt(lo)}, {_fmt(hi)})"
        for i, (lo, hi) in enumerate(zip(bounds[:-1], bounds[1:], strict=True))
    ]


def _woe_iv(
    n_event: np.ndarray, n_nonevent: np.ndarray, prior_rows: float = 0.0
) -> tuple[np.ndarray, np.ndarray]:
    """WoE ``ln(%nonevent / %event)`` and IV per bin. ``prior_rows`` > 0: each bin gets that
    many rows at the overall event rate (an m-estimate), shrinking a small bin's WoE towards
    0; 0: optbinning's WoE (0 for a bin lacking events or non-events)."""
    total = n_event.sum() + n_nonevent.sum()
    if prior_rows > 0 and n_event.sum() > 0 and n_nonevent.sum() > 0:
        rate = n_event.sum() / total
        n_event = n_event + prior_rows * rate
        n_nonevent = n_nonevent + prior_rows * (1 - rate)
    dist_event = n_event / max(n_event.sum(), 1)
    dist_nonevent = n_nonevent / max(n_nonevent.sum(), 1)
    ok = (n_event > 0) & (n_nonevent > 0)
    woe = np.zeros(n_event.size)
    woe[ok] = np.log(dist_nonevent[ok] / dist_event[ok])
    return woe, (dist_nonevent - dist_event) * woe


CODINGS = ("woe", "dummy")
#: The parameters the binning depends on; the others (``coding``, ``C``, ``min_iv``, ...) act
#: after it, so fits that differ only in those share one binning (``memory``).
BINNING_PARAMS = frozenset(
    {"numeric", "categorical", "monotonic_trend", "max_n_prebins", "min_prebin_size",
     "min_bin_size", "max_n_bins", "special_codes"}
)  # fmt: skip


def _fit_binning(
    data: pd.DataFrame, event: np.ndarray, kinds: dict[str, str], **params: Any
) -> dict[str, tuple[dict[str, Any], np.ndarray, np.ndarray]]:
    """optbinning's BinningProcess over ``data`` (columns of kind ``numeric`` with
    ``params["monotonic_trend"]``): per column its spec (kind, splits or groups) and the event
    and non-event counts of its bins, then Special, then Missing. A column without values is
    all Missing. A pure function of its arguments, so a joblib Memory can cache it."""
    from optbinning import OptimalBinning  # heavy import (cvxpy, ortools): fit time only

    trend = params.pop("monotonic_trend")
    # One OptimalBinning per column, as optbinning's BinningProcess fits them (same options,
    # same column values), without the process's selection statistics (a binning-table analysis
    # per column, half the fit time), which nothing here reads.
    binned: dict[str, Any] = {}
    for c in data.columns:
        values = data[c]
        if not values.notna().any():
            continue
        numeric = kinds[c] == "numeric"
        optb = OptimalBinning(
            name=str(c), dtype="numerical" if numeric else "categorical", **params
        )
        if numeric and trend is not None:
            optb.set_params(monotonic_trend=trend)
        optb.fit(values.to_numpy(dtype=np.float64 if numeric else object), event)
        binned[c] = optb
    out = {}
    for c in data.columns:
        spec: dict[str, Any] = {"kind": kinds[c]}
        if c not in binned:
            spec.update({"splits": []} if spec["kind"] == "numeric" else {"groups": []})
            n_regular = 1 if spec["kind"] == "numeric" else 0
            n_event = np.array([0.0] * (n_regular + 1) + [float(event.sum())])
            n_nonevent = np.array([0.0] * (n_regular + 1) + [float(event.size - event.sum())])
            out[c] = (spec, n_event, n_nonevent)
            continue
        optb = binned[c]
        table = optb.binning_table
        n_event = np.asarray(table.n_event, dtype=np.float64)
        if spec["kind"] == "numeric":
            spec["splits"] = [float(v) for v in optb.splits]
        else:
            built = table.build()["Bin"].tolist()
            spec["groups"] = [[str(v) for v in group] for group in built[: len(n_event) - 2]]
        out[c] = (spec, n_event, np.asarray(table.n_nonevent, dtype=np.float64))
    return out


class _Framed:
    """The frame argument of the cached binning, with a one-line ``repr``. joblib hashes the
    contents for the cache key, but also writes ``repr`` of every argument beside each entry, and
    warns ("Persisting input arguments took 1.08s") when that is slow, as a frame of a few
    thousand rows can be on a loaded machine."""

    __slots__ = ("frame",)

    def __init__(self, frame: pd.DataFrame) -> None:
        self.frame = frame

    def __repr__(self) -> str:
        rows, columns = self.frame.shape
        return f"<DataFrame of {rows} rows x {columns} columns>"


def _fit_framed_binning(
    framed: _Framed, event: np.ndarray, kinds: dict[str, str], **params: Any
) -> dict[str, tuple[dict[str, Any], np.ndarray, np.ndarray]]:
    """:func:`_fit_binning` of ``framed.frame``: the function the joblib Memory caches."""
    return _fit_binning(framed.frame, event, kinds, **params)


def _is_numeric(s: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(s) and not pd.api.types.is_bool_dtype(s)


class WoEScorecard(ClassifierMixin, BaseEstimator):
    """WoE logistic scorecard (see the module docstring).

    Parameters
    ----------
    numeric, categorical: the model columns and how to bin them; when neither is given, every
        column is used, number columns as numeric and the others as categorical.
    min_iv: features with a lower information value are not used.
    max_corr: (``coding="woe"``) a feature whose WoE correlates above this (absolute) with a
        feature of higher IV is not used (None keeps all).
    monotonic_trend: optbinning's trend for numeric features ("auto_asc_desc", "ascending",
        "descending", "auto", "peak", "valley", ... or None for none).
    max_n_prebins, min_prebin_size, min_bin_size, max_n_bins: optbinning's binning limits.
    special_codes: values binned apart in a Special bin (e.g. ``[-1]`` for "not applicable").
    woe_prior_rows: each bin's WoE is estimated as if it held this many more rows at the overall
        event rate (an m-estimate): a small bin's (Missing, a rare level) noisy WoE shrinks
        towards 0, a large bin's barely moves; 0 gives optbinning's raw WoE.
    coding: ``"woe"`` (one coefficient per feature on its WoE) or ``"dummy"`` (one per bin).
    C, class_weight, max_iter: the LogisticRegression on the WoE values or bin indicators.
    scorecard: points-to-double-odds scaling as ``Scorecard.to_dict()``; None reads the policy
        (credit/policy.toml).
    memory: a joblib ``Memory`` (or its folder) caching the binning, so that fits of the same
        rows with the same binning settings (grid points changing ``C``, ``coding``, ``min_iv``)
        bin once; None bins at every fit.

    Fitted attributes: ``classes_``, ``n_features_in_`` (``feature_names_in_`` for a DataFrame),
    ``bins_`` (feature -> bins, counts, WoE, IV), ``iv_`` (feature -> IV), ``selected_``,
    ``coef_`` (per selected feature, or per seen bin of each in turn with dummy coding),
    ``intercept_``, ``n_iter_``, ``terms_`` (selected feature -> log-odds term per bin),
    ``points_`` (selected feature -> points per bin), ``scorecard_``.
    """

    def __init__(
        self,
        numeric: Sequence[str] = (),
        categorical: Sequence[str] = (),
        *,
        min_iv: float = 0.01,
        max_corr: float | None = 0.8,
        monotonic_trend: str | None = "auto_asc_desc",
        max_n_prebins: int = 20,
        min_prebin_size: float = 0.05,
        min_bin_size: float | None = 0.05,
        max_n_bins: int | None = None,
        special_codes: Sequence[Any] | None = None,
        woe_prior_rows: float = 20.0,
        coding: str = "woe",
        C: float = 1.0,
        class_weight: dict | str | None = None,
        max_iter: int = 1000,
        scorecard: dict[str, Any] | None = None,
        memory: Any = None,
    ) -> None:
        self.numeric = numeric
        self.categorical = categorical
        self.min_iv = min_iv
        self.max_corr = max_corr
        self.monotonic_trend = monotonic_trend
        self.max_n_prebins = max_n_prebins
        self.min_prebin_size = min_prebin_size
        self.min_bin_size = min_bin_size
        self.max_n_bins = max_n_bins
        self.special_codes = special_codes
        self.woe_prior_rows = woe_prior_rows
        self.coding = coding
        self.C = C
        self.class_weight = class_weight
        self.max_iter = max_iter
        self.scorecard = scorecard
        self.memory = memory

    def __sklearn_tags__(self) -> Tags:
        return binary_classifier_tags(nan_tolerant_tags(super().__sklearn_tags__(), string=True))

    # -- fitting ------------------------------------------------------------------------------

    def fit(self, X: pd.DataFrame | np.ndarray, y: pd.Series | np.ndarray) -> WoEScorecard:
        """Bin, select by IV, fit the logistic regression and scale its terms to points."""
        if self.coding not in CODINGS:
            raise ValueError(f"coding must be one of {CODINGS}, got {self.coding!r}")
        frame = validate_frame(self, X, reset=True)
        event, self.classes_ = binary_target(y, len(frame), type(self).__name__)
        self.scorecard_ = (
            Scorecard.from_toml() if self.scorecard is None else Scorecard.from_dict(self.scorecard)
        ).to_dict()
        data = self._prepare(frame, fitting=True)
        fitted = self._binning(data, event)
        self.bins_ = {
            c: self._finish(dict(spec), n_event, n_nonevent, self.woe_prior_rows)
            for c, (spec, n_event, n_nonevent) in fitted.items()
        }
        self.iv_ = {c: float(np.sum(spec["iv"])) for c, spec in self.bins_.items()}
        ranked = sorted(self.iv_, key=lambda c: (-self.iv_[c], list(data.columns).index(c)))
        self.selected_ = [c for c in ranked if self.iv_[c] >= self.min_iv] or ranked[:1]
        if self.coding == "woe":
            self.selected_ = self._decorrelate(data)
            logreg, terms = self._fit_woe(data, event)
        else:
            logreg, terms = self._fit_dummy(data, event)
        self.coef_ = logreg.coef_.ravel().astype(np.float64)
        self.intercept_ = float(logreg.intercept_[0])
        self.n_iter_ = logreg.n_iter_
        card = Scorecard.from_dict(self.scorecard_)
        n = len(self.selected_)
        self.terms_ = {c: np.asarray(t, dtype=np.float64).tolist() for c, t in terms.items()}
        self.points_ = {
            c: (card.offset / n - card.factor * (self.intercept_ / n + np.asarray(t))).tolist()
            for c, t in self.terms_.items()
        }
        return self

    def _binning(
        self, data: pd.DataFrame, event: np.ndarray
    ) -> dict[str, tuple[dict[str, Any], np.ndarray, np.ndarray]]:
        """The binning of the prepared ``data`` (through ``memory`` when set: grid points that
        change no binning setting reuse it)."""
        binning = _fit_framed_binning
        if self.memory is not None:
            binning = check_memory(self.memory).cache(_fit_framed_binning)
        return binning(
            _Framed(data),
            event,
            self.kinds_,
            special_codes=list(self.special_codes) if self.special_codes else None,
            monotonic_trend=self.monotonic_trend,
            max_n_prebins=self.max_n_prebins,
            min_prebin_size=self.min_prebin_size,
            min_bin_size=self.min_bin_size,
            max_n_bins=self.max_n_bins,
        )

    def bin_into_memory(self, X: pd.DataFrame | np.ndarray, y: pd.Series | np.ndarray) -> None:
        """Run the binning that ``fit(X, y)`` runs, into ``memory``, leaving this estimator
        unfitted: a later fit of the same rows with the same binning settings (whatever
        ``coding``, ``C``, ``min_iv``, ``max_corr``) finds it there. Lets a grid search bin
        the refit's rows on an idle core while its folds are still being fitted."""
        if self.memory is None:
            raise ValueError("bin_into_memory needs a memory to bin into")
        probe = clone(self)
        frame = validate_frame(probe, X, reset=True)
        event, _ = binary_target(y, len(frame), type(self).__name__)
        probe._binning(probe._prepare(frame, fitting=True), event)

    def _fit_woe(
        self, data: pd.DataFrame, event: np.ndarray
    ) -> tuple[LogisticRegression, dict[str, np.ndarray]]:
        """``coding="woe"``: one coefficient per feature on its WoE; a feature given a
        coefficient of the wrong sign (safer bins scoring as riskier, a collinearity artefact)
        is dropped and the regression refitted. Returns the regression and each feature's log-odds
        term per bin."""
        while True:
            woe = self._woe_matrix(data)
            logreg = LogisticRegression(
                C=self.C, class_weight=self.class_weight, max_iter=self.max_iter
            ).fit(woe, event)
            coef = logreg.coef_.ravel()
            keep = [c for c, b in zip(self.selected_, coef, strict=True) if b <= 0]
            if len(keep) == len(self.selected_) or len(self.selected_) == 1:
                break
            self.selected_ = keep or [self.selected_[int(np.argmin(coef))]]
        return logreg, {
            c: b * np.asarray(self.bins_[c]["woe"])
            for c, b in zip(self.selected_, logreg.coef_.ravel(), strict=True)
        }

    def _fit_dummy(
        self, data: pd.DataFrame, event: np.ndarray
    ) -> tuple[LogisticRegression, dict[str, np.ndarray]]:
        """``coding="dummy"``: one coefficient per bin (an indicator per bin seen in fitting,
        shrunk towards 0 by the L2 penalty ``C``). Returns each feature's log-odds term per bin
        (0 for a bin never seen, as for an unseen level), after the regression."""
        index = self._bin_matrix(data)
        blocks, owners = [], []
        for j, c in enumerate(self.selected_):
            seen = np.flatnonzero(np.asarray(self.bins_[c]["count"]) > 0)
            blocks.append((index[:, j][:, None] == seen[None, :]).astype(np.float64))
            owners += [(c, int(b)) for b in seen]
        design = np.hstack(blocks) if blocks else np.zeros((len(data), 0))
        logreg = LogisticRegression(
            C=self.C, class_weight=self.class_weight, max_iter=self.max_iter
        ).fit(design, event)
        terms = {c: np.zeros(len(self.bins_[c]["woe"])) for c in self.selected_}
        for (c, b), w in zip(owners, logreg.coef_.ravel(), strict=True):
            terms[c][b] = w
        return logreg, terms

    def _decorrelate(self, data: pd.DataFrame) -> list[str]:
        """Selected features (by decreasing IV) without those whose WoE correlates above
        ``max_corr`` in absolute value with a stronger kept one."""
        if self.max_corr is None or len(self.selected_) < 2:
            return list(self.selected_)
        woe = self._woe_matrix(data)
        with np.errstate(invalid="ignore", divide="ignore"):
            corr = np.nan_to_num(np.corrcoef(woe, rowvar=False), nan=0.0)
        kept: list[int] = []
        for j in range(woe.shape[1]):
            if all(abs(corr[j, k]) <= self.max_corr for k in kept):
                kept.append(j)
        return [self.selected_[j] for j in kept]

    def _prepare(
        self, frame: pd.DataFrame, *, fitting: bool, only: Sequence[str] | None = None
    ) -> pd.DataFrame:
        """The model columns by name (``only`` these, once every one is checked present):
        numeric ones float64, the others str objects (NaN missing). Fitting records them in
        ``kinds_`` (``numeric``/``categorical`` when given, else every column by its dtype)."""
        frame = frame.set_axis([str(c) for c in frame.columns], axis=1)
        if fitting:
            numeric, categorical = list(self.numeric), list(self.categorical)
            if numeric or categorical:
                kinds = dict.fromkeys(map(str, numeric), "numeric")
                kinds.update(dict.fromkeys(map(str, categorical), "categorical"))
            else:
                kinds = {
                    c: "numeric" if _is_numeric(frame[c]) else "categorical" for c in frame.columns
                }
            self.kinds_ = {c: kinds[c] for c in frame.columns if c in kinds}
            self.kinds_.update({c: k for c, k in kinds.items() if c not in self.kinds_})
        absent = [c for c in self.kinds_ if c not in frame.columns]
        if absent:
            raise ValueError(f"X lacks the model columns {absent[:10]}")
        out = {}
        for c in self.kinds_ if only is None else only:
            if self.kinds_[c] == "numeric":
                values = frame[c]
                if values.dtype != np.float64:
                    values = pd.to_numeric(values, errors="coerce")
                out[c] = values.to_numpy(dtype=np.float64)
            else:
                out[c] = to_str_object(frame[c].to_numpy(dtype=object))
        return pd.DataFrame(out, index=frame.index)

    @staticmethod
    def _finish(
        spec: dict[str, Any], n_event: np.ndarray, n_nonevent: np.ndarray, prior_rows: float
    ) -> dict:
        """Add labels, counts, event rates, WoE and IV to a spec with its splits or groups."""
        if spec["kind"] == "numeric":
            labels = _numeric_labels(spec["splits"])
        else:
            labels = ["[" + ", ".join(g) + "]" for g in spec["groups"]]
        woe, iv = _woe_iv(n_event, n_nonevent, prior_rows)
        count = n_event + n_nonevent
        with np.errstate(invalid="ignore", divide="ignore"):
            rate = np.where(count > 0, n_event / count, np.nan)
        spec.update(
            labels=[*labels, SPECIAL, MISSING],
            count=count.astype(np.int64).tolist(),
            event_rate=rate.tolist(),
            woe=woe.tolist(),
            iv=iv.tolist(),
        )
        return spec

    # -- binning new data ---------------------------------------------------------------------

    def _bin_index(self, data: pd.DataFrame, name: str) -> np.ndarray:
        """Bin of each value: a regular bin, Special (``n_bins``), Missing (``n_bins + 1``), or
        -1 for a level unseen in fitting."""
        spec = self.bins_[name]
        n_bins = len(spec["labels"]) - 2
        values = data[name].to_numpy()
        missing = pd.isna(values)
        if spec["kind"] == "numeric":
            x = values.astype(np.float64)
            index = np.digitize(np.where(missing, 0.0, x), spec["splits"], right=False)
        else:
            position = {level: i for i, group in enumerate(spec["groups"]) for level in group}
            index = pd.Series(values).map(position).fillna(-1).to_numpy(dtype=np.int64)
        if self.special_codes:
            special = pd.Series(values).isin(list(self.special_codes)).to_numpy() & ~missing
            index = np.where(special, n_bins, index)
        return np.where(missing, n_bins + 1, index).astype(np.int64)

    def _lookup(self, data: pd.DataFrame, values: dict[str, list[float]]) -> np.ndarray:
        """``values[feature][bin]`` of every row and selected feature; the last value of each
        list is that of an unseen level (bin -1)."""
        out = np.empty((len(data), len(self.selected_)), dtype=np.float64)
        for j, name in enumerate(self.selected_):
            out[:, j] = np.asarray(values[name], dtype=np.float64)[self._bin_index(data, name)]
        return out

    def _woe_matrix(self, data: pd.DataFrame) -> np.ndarray:
        return self._lookup(data, {c: [*self.bins_[c]["woe"], 0.0] for c in self.selected_})

    def _data(self, X: pd.DataFrame | np.ndarray) -> pd.DataFrame:
        check_is_fitted(self, "points_")
        if isinstance(X, pd.DataFrame) and hasattr(self, "feature_names_in_"):
            # named input: the model columns are selected by name (extra columns are fine, as
            # in a ColumnTransformer), so a model fitted on a wide table scores its own columns
            return self._prepare(X, fitting=False, only=self.selected_)
        return self._prepare(
            validate_frame(self, X, reset=False), fitting=False, only=self.selected_
        )

    # -- prediction ---------------------------------------------------------------------------

    def decision_function(self, X: pd.DataFrame | np.ndarray) -> np.ndarray:
        """Log-odds of the second class (high risk)."""
        return self._decision(self._bin_matrix(self._data(X)))

    def _decision(self, index: np.ndarray) -> np.ndarray:
        """Log-odds from the ``(n, selected)`` bin matrix: intercept plus each bin's term."""
        out = np.full(len(index), self.intercept_, dtype=np.float64)
        for j, c in enumerate(self.selected_):
            out += np.asarray([*self.terms_[c], 0.0])[index[:, j]]  # last: an unseen level
        return out

    def predict_proba(self, X: pd.DataFrame | np.ndarray) -> np.ndarray:
        """``(n, 2)`` probabilities; column 1 is the PD."""
        pd_ = expit(self.decision_function(X))
        return np.column_stack([1.0 - pd_, pd_])

    def predict(self, X: pd.DataFrame | np.ndarray) -> np.ndarray:
        high = self.decision_function(X) > 0
        return self.classes_[high.astype(int)]

    def points(self, X: pd.DataFrame | np.ndarray) -> pd.DataFrame:
        """Points of every row (index of ``X``) per selected feature; a row's sum is its score."""
        data = self._data(X)
        pts = self._lookup(data, self._unseen_points())
        return pd.DataFrame(pts, index=data.index, columns=list(self.selected_))

    def total_points(self, X: pd.DataFrame | np.ndarray) -> np.ndarray:
        """Unrounded score per row: the sum of its points (``Scorecard.raw_score`` of its PD)."""
        return self.points(X).sum(axis=1).to_numpy()

    def _unseen_points(self) -> dict[str, list[float]]:
        """Points per bin plus, last, those of an unseen level (WoE 0) at index -1."""
        card = Scorecard.from_dict(self.scorecard_)
        neutral = card.offset / len(self.selected_) - card.factor * self.intercept_ / len(
            self.selected_
        )
        return {c: [*self.points_[c], neutral] for c in self.selected_}

    def points_table(self) -> pd.DataFrame:
        """One row per selected feature and bin: feature, bin, count, event_rate, woe, iv (the
        bin's IV contribution) and points, features by decreasing IV."""
        check_is_fitted(self, "points_")
        rows = [
            {
                "feature": name,
                "bin": label,
                "count": count,
                "event_rate": rate,
                "woe": woe,
                "iv": iv,
                "points": points,
            }
            for name in self.selected_
            for label, count, rate, woe, iv, points in zip(
                self.bins_[name]["labels"],
                self.bins_[name]["count"],
                self.bins_[name]["event_rate"],
                self.bins_[name]["woe"],
                self.bins_[name]["iv"],
                self.points_[name],
                strict=True,
            )
        ]
        return pd.DataFrame(rows, columns=list(POINTS_COLUMNS))

    def iv_table(self) -> pd.DataFrame:
        """One row per input feature: IV, number of bins and whether it was selected."""
        check_is_fitted(self, "points_")
        return ranked_iv_table(
            self.iv_,
            n_bins=[len(self.bins_[c]["labels"]) - 2 for c in self.iv_],
            selected=[c in set(self.selected_) for c in self.iv_],
        )

    def reason_codes(
        self, X: pd.DataFrame | np.ndarray, *, top: int = 3
    ) -> list[list[dict[str, Any]]]:
        """Per row, up to ``top`` features whose bin lost the most points against the feature's
        best bin (bins seen in fitting), most first; features at their best bin are no reason.

        Each reason: ``feature``, ``value``, ``bin``, ``points``, ``best_bin`` (also as
        ``reference``), ``best_points``, ``points_lost`` (also as ``impact``, in points) and
        ``text``: the keys of :func:`credit.reasons.top_reasons` plus the bin details.
        """
        data = self._data(X)
        return self._reasons(data, self._bin_matrix(data), top)

    def pd_and_reasons(
        self, X: pd.DataFrame | np.ndarray, *, top: int = 3
    ) -> tuple[np.ndarray, list[list[dict[str, Any]]]]:
        """``predict_proba(X)[:, 1]`` and ``reason_codes(X, top=top)`` from one binning."""
        data = self._data(X)
        index = self._bin_matrix(data)
        return expit(self._decision(index)), self._reasons(data, index, top)

    def _bin_matrix(self, data: pd.DataFrame) -> np.ndarray:
        """``(n, selected features)`` bin of every row (:meth:`_bin_index`)."""
        return np.column_stack([self._bin_index(data, c) for c in self.selected_])

    def _reasons(
        self, data: pd.DataFrame, index: np.ndarray, top: int
    ) -> list[list[dict[str, Any]]]:
        unseen = self._unseen_points()
        names = list(self.selected_)
        width = 1 + max(len(unseen[c]) for c in names)  # bins + unseen, per feature
        best = [self._best_bin(c) for c in names]
        points = np.column_stack([np.asarray(unseen[c])[index[:, j]] for j, c in enumerate(names)])
        best_points = np.array([b[1] for b in best])
        lost = best_points[None, :] - points
        k = min(top, lost.shape[1])
        order = np.argsort(-lost, axis=1, kind="stable")[:, :k]
        chosen_bin = np.take_along_axis(index, order, axis=1)
        code = np.where(
            np.take_along_axis(lost, order, axis=1) > 1e-9, order * width + chosen_bin + 1, -1
        )
        # every (feature, bin) reason is the same but for the customer's value: one template
        # per code present (code -1, no points lost, sorts last and gives no reason)
        templates = np.full(len(names) * width + 1, None, dtype=object)
        for c in np.flatnonzero(np.bincount(code[code >= 0], minlength=1)).tolist():
            j = c // width
            templates[c] = _reason_template(
                names[j], self.bins_[names[j]]["labels"], c % width - 1, unseen, best[j]
            )
        chosen = np.empty(order.shape, dtype=object)  # the value of each reason's feature
        for j, name in enumerate(names):
            at = order == j
            if at.any():
                chosen[at] = _plain_values(data[name].to_numpy()[at.nonzero()[0]])
        table, valid = templates.tolist(), code >= 0
        ends = np.cumsum(valid.sum(axis=1)).tolist()  # each row's reasons end here in `flat`
        with gc_paused():  # millions of new dicts: no collector passes over them meanwhile
            flat = [
                {**table[c], "value": v}
                for c, v in zip(code[valid].tolist(), chosen[valid].tolist(), strict=True)
            ]
            return [flat[a:b] for a, b in zip([0, *ends[:-1]], ends, strict=True)]

    def _best_bin(self, name: str) -> tuple[str, float]:
        """Label and points of the feature's best bin among those seen in fitting."""
        seen = [i for i, n in enumerate(self.bins_[name]["count"]) if n > 0]
        i_best = max(seen, key=lambda i: self.points_[name][i])
        return self.bins_[name]["labels"][i_best], self.points_[name][i_best]


@contextmanager
def gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector (building many small containers that hold no cycles
    otherwise triggers collections over all of them); restored as it was."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _reason_template(
    name: str,
    labels: list[str],
    b: int,
    unseen: dict[str, list[float]],
    best: tuple[str, float],
) -> dict[str, Any]:
    """The reason of a customer in bin ``b`` of ``name`` (-1: an unseen level), value unset."""
    label = labels[b] if b >= 0 else "unseen level"
    best_label, best_points = best
    points = float(unseen[name][b])
    lost = float(best_points - points)
    return {
        "feature": name,
        "value": None,
        "reference": best_label,
        "bin": label,
        "points": points,
        "best_bin": best_label,
        "best_points": float(best_points),
        "points_lost": lost,
        "impact": lost,
        "text": f"{humanise(name)} in {label}: {lost:.0f} points below the best bin {best_label}",
    }


def _plain_values(values: np.ndarray) -> np.ndarray:
    """JSON-friendly python values (an object array): floats or str, None where missing."""
    out = values.astype(object)
    if values.dtype.kind != "f":
        out = np.array([float(v) if isinstance(v, np.floating) else v for v in out], object)
    out[pd.isna(values)] = None
    return out
