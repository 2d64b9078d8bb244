"""Held-out evaluation: metrics, threshold choice, calibration, baseline and plots.

Metric conventions (``y`` are 0/1 labels, ``p`` the predicted probability of the positive,
"high risk", class; a customer is predicted positive when ``p >= threshold``):

* ``roc_auc``: area under the ROC curve (ties count one half); ``gini = 2 * roc_auc - 1``;
* ``ks``: Kolmogorov-Smirnov statistic, ``max |TPR - FPR|`` over all thresholds, i.e. the largest
  gap between the score CDFs of the two classes;
* ``pr_auc``: average precision (step-wise area under the precision-recall curve);
* ``brier``: mean squared error of ``p`` against ``y``;
* ``roc_auc_ci_low/high``: percentile bootstrap interval of the ROC-AUC (resampling customers).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import clone
from sklearn.calibration import CalibratedClassifierCV
from sklearn.dummy import DummyClassifier
from sklearn.exceptions import NotFittedError
from sklearn.frozen import FrozenEstimator
from sklearn.metrics import (
    accuracy_score,
    average_precision_score,
    brier_score_loss,
    confusion_matrix,
    f1_score,
    precision_recall_curve,
    precision_score,
    recall_score,
    roc_auc_score,
    roc_curve,
)
from sklearn.model_selection import StratifiedKFold, train_test_split
from sklearn.utils.validation import check_is_fitted

from credit.models import single_threaded

METRIC_KEYS = (
    "accuracy",
    "precision",
    "recall",
    "f1",
    "roc_auc",
    "pr_auc",
    "gini",
    "ks",
    "brier",
    "threshold",
    "confusion",
    "roc_auc_ci_low",
    "roc_auc_ci_high",
    "n",
    "positives",
)


def _arrays(y, p) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(y).astype(int).ravel()
    p = np.asarray(p, dtype=float).ravel()
    if y.shape != p.shape:
        raise ValueError(f"y and p differ in length: {y.shape} vs {p.shape}")
    return y, p


def ks_statistic(y, p) -> float:
    """Kolmogorov-Smirnov separation: ``max |TPR - FPR|`` over all thresholds (0 to 1)."""
    y, p = _arrays(y, p)
    fpr, tpr, _ = roc_curve(y, p)
    return float(np.max(np.abs(tpr - fpr)))


def gini(y, p) -> float:
    """Gini coefficient (accuracy ratio) ``2 * AUC - 1``."""
    y, p = _arrays(y, p)
    return float(2.0 * roc_auc_score(y, p) - 1.0)


def weighted_auc(y, p, weights: np.ndarray) -> np.ndarray:
    """ROC-AUC for each row of ``weights`` (shape ``(B, n)``: case weights, e.g. bootstrap
    counts), ties counted one half. Rows without both classes give NaN."""
    y, p = _arrays(y, p)
    weights = np.atleast_2d(np.asarray(weights, dtype=float))
    order = np.argsort(p, kind="mergesort")
    p_sorted = p[order]
    starts = np.flatnonzero(np.r_[True, p_sorted[1:] != p_sorted[:-1]])
    w = weights[:, order]
    pos = np.add.reduceat(w * (y[order] == 1), starts, axis=1)
    neg = np.add.reduceat(w * (y[order] == 0), starts, axis=1)
    neg_below = np.cumsum(neg, axis=1) - neg
    n_pos, n_neg = pos.sum(axis=1), neg.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        auc = (pos * (neg_below + 0.5 * neg)).sum(axis=1) / (n_pos * n_neg)
    return np.where((n_pos > 0) & (n_neg > 0), auc, np.nan)


def auc_rows(y, scores: np.ndarray) -> np.ndarray:
    """ROC-AUC of each row of ``scores`` (shape ``(k, n)``) against the 0/1 labels ``y``, ties
    counted one half: ``roc_auc_score`` per row, by ranks in one vectorised pass."""
    from scipy.stats import rankdata

    y = np.asarray(y).astype(int).ravel()
    scores = np.atleast_2d(np.asarray(scores, dtype=float))
    n_pos = int(y.sum())
    n_neg = y.size - n_pos
    if n_pos == 0 or n_neg == 0:
        raise ValueError("ROC-AUC needs both classes in y")
    ranks = rankdata(scores, axis=1)  # average ranks: ties count one half
    return (ranks[:, y == 1].sum(axis=1) - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)


def bootstrap_auc_ci(
    y, p, *, n: int = 500, seed: int = 42, alpha: float = 0.05
) -> tuple[float, float]:
    """Percentile bootstrap ``(1 - alpha)`` interval for the ROC-AUC (vectorised, chunked)."""
    y, p = _arrays(y, p)
    if p.size and np.all(p == p[0]) and 0 < y.sum() < y.size:
        # constant scores (the prior-only dummy): every resample with both classes has AUC
        # exactly 0.5, so the interval is known without resampling
        return 0.5, 0.5
    rng = np.random.default_rng(seed)
    size = len(y)
    chunk = max(1, min(n, 2_000_000 // max(size, 1)))
    aucs = []
    done = 0
    while done < n:
        b = min(chunk, n - done)
        counts = rng.multinomial(size, np.full(size, 1.0 / size), size=b)
        aucs.append(weighted_auc(y, p, counts))
        done += b
    values = np.concatenate(aucs)
    values = values[~np.isnan(values)]
    if values.size == 0:
        return float("nan"), float("nan")
    low, high = np.quantile(values, [alpha / 2, 1 - alpha / 2])
    return float(low), float(high)


def choose_threshold(y, p, method: str = "f1") -> float:
    """Decision threshold from validation predictions (never the test set).

    ``"f1"`` maximises F1 over the precision-recall curve; ``"youden"`` maximises
    ``TPR - FPR`` (Youden's J). A customer is flagged high risk when ``p >= threshold``.
    """
    y, p = _arrays(y, p)
    if method == "f1":
        precision, recall, thresholds = precision_recall_curve(y, p)
        precision, recall = precision[:-1], recall[:-1]
        with np.errstate(invalid="ignore", divide="ignore"):
            f1 = np.where(precision + recall > 0, 2 * precision * recall / (precision + recall), 0)
        return float(thresholds[int(np.argmax(f1))])
    if method == "youden":
        fpr, tpr, thresholds = roc_curve(y, p)
        i = int(np.argmax(tpr - fpr))
        return float(min(thresholds[i], 1.0))
    raise ValueError(f"unknown threshold method {method!r}; use 'f1' or 'youden'")


def classification_metrics(
    y, p, threshold: float, *, n_boot: int = 500, seed: int = 42
) -> dict[str, Any]:
    """Threshold-free and thresholded metrics for one set of predictions (keys: METRIC_KEYS)."""
    y, p = _arrays(y, p)
    pred = (p >= threshold).astype(int)
    tn, fp, fn, tp = confusion_matrix(y, pred, labels=[0, 1]).ravel()
    auc = float(roc_auc_score(y, p))
    low, high = bootstrap_auc_ci(y, p, n=n_boot, seed=seed)
    return {
        "accuracy": float(accuracy_score(y, pred)),
        "precision": float(precision_score(y, pred, zero_division=0)),
        "recall": float(recall_score(y, pred, zero_division=0)),
        "f1": float(f1_score(y, pred, zero_division=0)),
        "roc_auc": auc,
        "pr_auc": float(average_precision_score(y, p)),
        "gini": 2.0 * auc - 1.0,
        "ks": ks_statistic(y, p),
        "brier": float(brier_score_loss(y, p)),
        "threshold": float(threshold),
        "confusion": {"tn": int(tn), "fp": int(fp), "fn": int(fn), "tp": int(tp)},
        "roc_auc_ci_low": low,
        "roc_auc_ci_high": high,
        "n": len(y),
        "positives": int(y.sum()),
    }


def _is_fitted(model) -> bool:
    try:
        check_is_fitted(model)
    except NotFittedError:
        return False
    return True


def calibrate_if_better(
    model,
    X_train: pd.DataFrame,
    y_train: pd.Series,
    *,
    seed: int = 42,
    methods: tuple[str, ...] = ("sigmoid", "isotonic"),
    cv: int = 5,
    threshold_method: str = "f1",
    n_jobs: int | None = None,
) -> tuple[Any, dict[str, Any]]:
    """Calibrate ``model`` only if that lowers the Brier score on validation data from TRAIN.

    The training data is split (stratified, ``seed``) into fit 60 % / calibration 20 % /
    validation 20 %. A clone fitted on the fit part is scored on the validation part as is and
    after sigmoid / isotonic calibration on the calibration part; the lowest validation Brier
    wins (ties keep the uncalibrated model). If calibration wins, the returned model is
    ``CalibratedClassifierCV(clone(model), method, cv=StratifiedKFold(cv), ensemble=False)``
    fitted on all of TRAIN (calibrator fitted on out-of-fold predictions); otherwise ``model``
    itself (fitted on TRAIN if it was not). The decision threshold is chosen on the validation
    predictions of the winner. The test split is never touched. ``n_jobs`` parallelises the
    final calibration's CV fits.
    """
    with single_threaded():
        return _calibrate_if_better(
            model,
            X_train,
            y_train,
            seed=seed,
            methods=methods,
            cv=cv,
            threshold_method=threshold_method,
            n_jobs=n_jobs,
        )


def _calibration_info(
    preds: dict[str, np.ndarray], best: str, methods, y, threshold_method: str, start: float
) -> dict[str, Any]:
    """The calibration decision as recorded: Brier per method on ``y``, the chosen method and
    the decision threshold on its predictions."""
    briers = {m: float(brier_score_loss(y, v)) for m, v in preds.items()}
    return {
        "method": best,
        "calibrated": best != "none",
        "brier_uncalibrated": briers["none"],
        **{f"brier_{m}": briers[m] for m in methods},
        "brier_validation": briers[best],
        "threshold": choose_threshold(y, preds[best], method=threshold_method),
        "threshold_method": threshold_method,
        "validation_rows": len(y),
        "seconds": time.perf_counter() - start,
    }


def _calibrate_if_better(
    model, X_train, y_train, *, seed, methods, cv, threshold_method, n_jobs
) -> tuple[Any, dict[str, Any]]:
    X_rest, X_val, y_rest, y_val = train_test_split(
        X_train, y_train, test_size=0.2, stratify=y_train, random_state=seed
    )
    X_fit, X_cal, y_fit, y_cal = train_test_split(
        X_rest, y_rest, test_size=0.25, stratify=y_rest, random_state=seed
    )
    start = time.perf_counter()
    raw = clone(model).fit(X_fit, y_fit)
    preds = {"none": raw.predict_proba(X_val)[:, 1]}
    for method in methods:
        cal = CalibratedClassifierCV(FrozenEstimator(raw), method=method).fit(X_cal, y_cal)
        preds[method] = cal.predict_proba(X_val)[:, 1]
    briers = {m: float(brier_score_loss(y_val, v)) for m, v in preds.items()}
    best = min(briers, key=briers.get)
    if best == "none":
        final = model if _is_fitted(model) else clone(model).fit(X_train, y_train)
    else:
        final = CalibratedClassifierCV(
            clone(model),
            method=best,
            cv=StratifiedKFold(n_splits=cv, shuffle=True, random_state=seed),
            ensemble=False,
            n_jobs=n_jobs,
        ).fit(X_train, y_train)
    return final, _calibration_info(preds, best, methods, y_val, threshold_method, start)


def calibrated_from_predictions(
    model, response: np.ndarray, y, method: str, *, cv: int = 5, seed: int = 42
) -> CalibratedClassifierCV:
    """The fitted ``CalibratedClassifierCV(clone(model), method, cv=StratifiedKFold(cv),
    ensemble=False)`` that fitting on TRAIN would give, built from ``model`` already fitted on
    TRAIN and its out-of-fold ``response`` on TRAIN (``decision_function``, else the positive
    probability), so nothing is refitted: ``ensemble=False`` is exactly "calibrator on
    out-of-fold predictions, estimator refitted on all rows"."""
    from sklearn.calibration import _fit_calibrator
    from sklearn.preprocessing import LabelEncoder
    from sklearn.utils._array_api import get_namespace

    y = np.asarray(y)
    response = np.asarray(response, dtype=float).reshape(-1, 1)
    cal = CalibratedClassifierCV(
        clone(model),
        method=method,
        cv=StratifiedKFold(n_splits=cv, shuffle=True, random_state=seed),
        ensemble=False,
    )
    cal.classes_ = LabelEncoder().fit(y).classes_
    xp, _ = get_namespace(response)
    cal.calibrated_classifiers_ = [_fit_calibrator(model, response, y, cal.classes_, method, xp=xp)]
    for attr in ("n_features_in_", "feature_names_in_"):
        if hasattr(model, attr):
            setattr(cal, attr, getattr(model, attr))
    return cal


def _cross_fitted(response: np.ndarray, y: np.ndarray, method: str, cv: int, seed: int):
    """Calibrated probabilities of every row from calibrators fitted on the other folds."""
    from sklearn.calibration import _fit_calibrator
    from sklearn.utils._array_api import get_namespace

    out = np.empty(len(y))
    classes = np.unique(y)
    xp, _ = get_namespace(response)
    folds = StratifiedKFold(n_splits=cv, shuffle=True, random_state=seed)
    for fit, held in folds.split(response.reshape(-1, 1), y):
        calibrator = _fit_calibrator(
            _Classes(classes), response[fit].reshape(-1, 1), y[fit], classes, method, xp=xp
        ).calibrators[0]
        out[held] = np.clip(calibrator.predict(response[held]), 0.0, 1.0)
    return out


class _Classes:
    """Stand-in classifier for sklearn's calibrator fitting: only ``classes_`` is read."""

    def __init__(self, classes: np.ndarray) -> None:
        self.classes_ = classes


def _decide(
    model,
    proba: np.ndarray,
    response: np.ndarray,
    y: np.ndarray,
    *,
    seed: int,
    methods: tuple[str, ...],
    cv: int,
    threshold_method: str,
) -> tuple[Any, dict[str, Any]]:
    """Calibration decision and threshold from held-out predictions of the fitted ``model``:
    validation Brier as is (``proba``) or with sigmoid / isotonic calibrators cross-fitted on
    ``response``; the lowest wins (ties keep the uncalibrated model)."""
    start = time.perf_counter()
    preds = {"none": proba}
    for method in methods:
        preds[method] = _cross_fitted(response, y, method, cv, seed)
    briers = {m: float(brier_score_loss(y, v)) for m, v in preds.items()}
    best = min(briers, key=briers.get)
    final = (
        model
        if best == "none"
        else calibrated_from_predictions(model, response, y, best, cv=cv, seed=seed)
    )
    return final, _calibration_info(preds, best, methods, y, threshold_method, start)


def calibrate_from_oof(
    model,
    oof: pd.DataFrame,
    y_train: pd.Series,
    *,
    seed: int = 42,
    methods: tuple[str, ...] = ("sigmoid", "isotonic"),
    cv: int = 5,
    threshold_method: str = "f1",
) -> tuple[Any, dict[str, Any]]:
    """:func:`calibrate_if_better` without fitting a model: ``model`` is already fitted on all
    of TRAIN and ``oof`` holds its grid search's out-of-fold predictions of every TRAIN row
    (columns ``proba``, ``response``, see :class:`credit.models.SearchResult`).

    Validation Brier of each option is measured on all TRAIN rows out of fold: as is (the
    ``proba`` column), or calibrated by sigmoid / isotonic calibrators cross-fitted on the
    other folds' ``response``; the lowest wins (ties keep the uncalibrated model). A winning
    calibration gives :func:`calibrated_from_predictions` (the calibrator on all the
    out-of-fold responses, the model as fitted), the same model as ``CalibratedClassifierCV(
    ensemble=False)`` on the search's folds; the threshold is chosen on the winner's
    out-of-fold predictions. The test split is never touched.
    """
    final, info = _decide(
        model,
        oof["proba"].to_numpy(dtype=float),
        oof["response"].to_numpy(dtype=float),
        np.asarray(y_train).astype(int),
        seed=seed,
        methods=methods,
        cv=cv,
        threshold_method=threshold_method,
    )
    return final, {**info, "validation": "out_of_fold"}


def calibrate_on_holdout(
    model,
    X_train: pd.DataFrame,
    y_train: pd.Series,
    *,
    seed: int = 42,
    methods: tuple[str, ...] = ("sigmoid", "isotonic"),
    cv: int = 5,
    holdout: float = 0.2,
    threshold_method: str = "f1",
) -> tuple[Any, dict[str, Any]]:
    """One fit instead of :func:`calibrate_if_better`'s up to seven, for large training sets:
    a clone of ``model`` is fitted on a stratified ``1 - holdout`` of TRAIN and predicts the
    held-out rest; the decision and threshold are :func:`calibrate_from_oof`'s on those
    held-out predictions, and a winning calibrator is fitted on them ("prefit" calibration
    of the model as fitted). The test split is never touched."""
    with single_threaded():
        X_fit, X_hold, y_fit, y_hold = train_test_split(
            X_train, y_train, test_size=holdout, stratify=y_train, random_state=seed
        )
        start = time.perf_counter()
        fitted = clone(model).fit(X_fit, y_fit)
        proba = fitted.predict_proba(X_hold)[:, 1]
        has_decision = hasattr(fitted, "decision_function")
        response = fitted.decision_function(X_hold) if has_decision else proba
        final, info = _decide(
            fitted,
            np.asarray(proba, dtype=float),
            np.asarray(response, dtype=float),
            np.asarray(y_hold).astype(int),
            seed=seed,
            methods=methods,
            cv=cv,
            threshold_method=threshold_method,
        )
    info["seconds"] = time.perf_counter() - start
    return final, {**info, "validation": "holdout", "fit_rows": len(y_fit)}


def _permuted_aucs(
    model, X: pd.DataFrame, y: np.ndarray, block: list, perms: list[np.ndarray]
) -> np.ndarray:
    """ROC-AUC of every (column of ``block``, permutation) copy of ``X``: one ``predict_proba``
    call on the stacked copies; shape ``(len(block), len(perms))``.

    A model with a columnwise view (:meth:`credit.scoring.CreditRiskModel.transformed`) is
    transformed once: shuffling an input column shuffles only its own transformed columns, so the
    copies are built in the transformed space and only the head sees them (the same numbers
    without a preprocessing pass over every copy)."""
    parts = model.transformed(X) if hasattr(model, "transformed") else None
    if parts is not None:
        return _permuted_aucs_transformed(model, X, *parts, y, block, perms)
    n, columns = len(X), list(X.columns)
    copies = len(block) * len(perms)
    data = {}
    for col in columns:
        values = X[col].to_numpy()
        tiled = np.tile(values, copies)
        if col in block:
            b = block.index(col)
            for r, perm in enumerate(perms):
                k = b * len(perms) + r
                tiled[k * n : (k + 1) * n] = values[perm]
        data[col] = tiled
    batch = pd.DataFrame(data, columns=columns)
    probs = model.predict_proba(batch)[:, 1].reshape(copies, n)
    return auc_rows(y, probs).reshape(len(block), len(perms))


def _permuted_aucs_transformed(
    model,
    X: pd.DataFrame,
    view,
    Z: np.ndarray,
    y: np.ndarray,
    block: list,
    perms: list[np.ndarray],
    *,
    max_rows: int = 65_536,
) -> np.ndarray:
    """:func:`_permuted_aucs` in the transformed space of ``view``: each (column, permutation)
    copy is ``Z`` with that column's group of transformed columns shuffled; the copies go to the
    head in stacked calls of at most ``max_rows`` rows (and at least one column). A column the
    model does not use scores the AUC of ``X`` itself, by the same call as the baseline's."""
    n = len(Z)
    groups = dict(zip(model.reference_, view.groups, strict=True))
    out = np.empty((len(block), len(perms)))
    used = [b for b, col in enumerate(block) if col in groups and len(groups[col])]
    unused = sorted(set(range(len(block))) - set(used))
    if unused:
        out[unused] = roc_auc_score(y, model.predict_proba(X)[:, 1])  # the baseline's call
    per_call = max(1, max_rows // max(n * len(perms), 1))
    with single_threaded():
        for start in range(0, len(used), per_call):
            chosen = used[start : start + per_call]
            stacked = np.tile(Z, (len(chosen) * len(perms), 1))
            for i, b in enumerate(chosen):
                g = groups[block[b]]
                for r, perm in enumerate(perms):
                    k = i * len(perms) + r
                    stacked[k * n : (k + 1) * n, g] = Z[np.ix_(perm, g)]
            probs = np.asarray(view.head(stacked), dtype=float).reshape(-1, n)
            out[chosen] = auc_rows(y, probs).reshape(len(chosen), len(perms))
    return out


def permutation_importance_auc(
    model,
    X: pd.DataFrame,
    y,
    *,
    n_repeats: int = 5,
    seed: int = 42,
    chunk_rows: int = 200_000,
    n_jobs: int | None = None,
) -> pd.DataFrame:
    """Permutation importance: mean and std drop in ROC-AUC when one input column is shuffled.

    Same permutations and numbers as ``sklearn.inspection.permutation_importance(model, X, y,
    scoring="roc_auc", n_repeats=n_repeats, random_state=seed)``, but all shuffled copies of a
    chunk of columns go through ONE ``predict_proba`` call instead of one call per column and
    repeat (pipelines with DataFrame preprocessing pay a fixed cost per call). ``n_jobs`` > 1
    spreads the chunks over joblib's worker processes (at least one chunk per worker), with the
    same numbers. Returns columns feature, importance_mean, importance_std sorted by importance
    (largest first).
    """
    y = np.asarray(y).astype(int)
    n, columns = len(X), list(X.columns)
    baseline = roc_auc_score(y, model.predict_proba(X)[:, 1])
    # sklearn: one seed drawn from random_state, every column reshuffled from that same seed
    column_seed = np.random.RandomState(seed).randint(np.iinfo(np.int32).max + 1)
    rs = np.random.RandomState(column_seed)
    idx, current = np.arange(n), np.arange(n)
    perms = []
    for _ in range(n_repeats):  # sklearn reshuffles the already shuffled column each repeat
        rs.shuffle(idx)
        current = current[idx]
        perms.append(current)
    per_chunk = max(1, chunk_rows // max(n * n_repeats, 1))
    workers = max(1, n_jobs or 1)
    if workers > 1:  # no worker left idle
        per_chunk = min(per_chunk, -(-len(columns) // workers))
    blocks = [columns[i : i + per_chunk] for i in range(0, len(columns), per_chunk)]
    if workers > 1 and len(blocks) > 1:
        from joblib import Parallel, delayed

        parts = Parallel(n_jobs=min(workers, len(blocks)))(
            delayed(_permuted_aucs)(model, X, y, block, perms) for block in blocks
        )
    else:
        parts = [_permuted_aucs(model, X, y, block, perms) for block in blocks]
    drops = baseline - np.vstack(parts) if parts else np.empty((0, n_repeats))
    return (
        pd.DataFrame(
            {
                "feature": columns,
                "importance_mean": drops.mean(axis=1),
                "importance_std": drops.std(axis=1),
            }
        )
        .sort_values("importance_mean", ascending=False, kind="stable")
        .reset_index(drop=True)
    )


@dataclass
class Evaluation:
    """Held-out evaluation of one candidate beside a prior-only dummy baseline."""

    name: str
    metrics: dict[str, Any]
    baseline_metrics: dict[str, Any]
    plots: dict[str, Path] = field(default_factory=dict)
    importance: pd.DataFrame | None = field(default=None, repr=False)


def evaluate_candidate(
    model,
    X_test: pd.DataFrame,
    y_test: pd.Series,
    *,
    threshold: float,
    out_dir: Path | None = None,
    name: str = "model",
    X_train: pd.DataFrame | None = None,
    y_train: pd.Series | None = None,
    importance_repeats: int = 5,
    n_boot: int = 500,
    seed: int = 42,
    n_jobs: int | None = None,
) -> Evaluation:
    """Metrics of a fitted ``model`` on the held-out test split, plus a dummy baseline.

    The baseline is ``DummyClassifier(strategy="prior")`` fitted on ``(X_train, y_train)``
    (on the test labels when no training data is given). With ``out_dir`` the ROC, PR,
    calibration, KS, score-distribution and permutation-importance PNGs are written there
    as ``{name}_{kind}.png`` (importance skipped when ``importance_repeats`` is 0).
    Permutation importance is :func:`permutation_importance_auc` (batched, in this process);
    ``n_jobs`` is accepted for interface stability and not needed.
    """
    with single_threaded():
        return _evaluate_candidate(
            model,
            X_test,
            y_test,
            threshold=threshold,
            out_dir=out_dir,
            name=name,
            X_train=X_train,
            y_train=y_train,
            importance_repeats=importance_repeats,
            n_boot=n_boot,
            seed=seed,
        )


def _evaluate_candidate(
    model,
    X_test,
    y_test,
    *,
    threshold,
    out_dir,
    name,
    X_train,
    y_train,
    importance_repeats,
    n_boot,
    seed,
) -> Evaluation:
    p = model.predict_proba(X_test)[:, 1]
    metrics = classification_metrics(y_test, p, threshold, n_boot=n_boot, seed=seed)
    fit_X, fit_y = (X_train, y_train) if y_train is not None else (X_test, y_test)
    dummy = DummyClassifier(strategy="prior").fit(fit_X, fit_y)
    p_dummy = dummy.predict_proba(X_test)[:, 1]
    baseline = classification_metrics(y_test, p_dummy, threshold, n_boot=n_boot, seed=seed)
    plots: dict[str, Path] = {}
    importance = None
    if importance_repeats:
        importance = permutation_importance_auc(
            model, X_test, y_test, n_repeats=importance_repeats, seed=seed
        )
    if out_dir is not None:
        from credit import plots as P

        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        y_arr = np.asarray(y_test).astype(int)
        plots["roc"] = P.plot_roc(y_arr, p, out_dir / f"{name}_roc.png", title=name)
        plots["pr"] = P.plot_pr(y_arr, p, out_dir / f"{name}_pr.png", title=name)
        plots["calibration"] = P.plot_calibration(
            y_arr, p, out_dir / f"{name}_calibration.png", title=name
        )
        plots["ks"] = P.plot_ks(y_arr, p, out_dir / f"{name}_ks.png", title=name)
        plots["score_distribution"] = P.plot_score_distribution(
            y_arr, p, out_dir / f"{name}_score_distribution.png", title=name, threshold=threshold
        )
        if importance is not None:
            plots["importance"] = P.plot_importance(
                importance, out_dir / f"{name}_importance.png", title=name
            )
    return Evaluation(
        name=name,
        metrics=metrics,
        baseline_metrics=baseline,
        plots=plots,
        importance=importance,
    )


def compare_candidates(evals: list[Evaluation]) -> pd.DataFrame:
    """One row per candidate: its test metrics, confusion counts and the dummy's key metrics,
    sorted by test ROC-AUC (best first)."""
    rows = []
    for ev in evals:
        m = ev.metrics
        row: dict[str, Any] = {"candidate": ev.name}
        row.update({k: v for k, v in m.items() if k != "confusion"})
        row.update(m["confusion"])
        for key in ("roc_auc", "pr_auc", "ks", "brier", "accuracy", "f1"):
            row[f"dummy_{key}"] = ev.baseline_metrics[key]
        rows.append(row)
    table = pd.DataFrame(rows)
    if table.empty:
        return table
    return table.sort_values("roc_auc", ascending=False, kind="stable").reset_index(drop=True)
