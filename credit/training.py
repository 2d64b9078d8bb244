"""From a labelled customer table to evaluated candidates and the model worth registering.

The steps the flow runs as separate tasks, as plain functions:
``search_candidate`` (grid search on TRAIN) -> ``finalize_candidate`` (calibrate if it helps, pick
the threshold on validation data carved from TRAIN, evaluate once on TEST beside a dummy
baseline) -> ``select_best`` (by cross-validated ROC-AUC, never by the test split) ->
``CreditRiskModel`` (the object the registry stores and the API serves).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from credit.evaluate import Evaluation, calibrate_if_better, evaluate_candidate
from credit.models import SearchResult
from credit.scoring import CreditRiskModel

METRIC_KEYS = ("roc_auc", "ks", "brier", "accuracy", "precision", "recall", "f1")


@dataclass
class CandidateOutcome:
    """One candidate after search, calibration and held-out evaluation."""

    name: str
    search: SearchResult
    model: CreditRiskModel
    calibration: dict[str, Any]
    evaluation: Evaluation
    seconds: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def metrics(self) -> dict[str, Any]:
        return self.evaluation.metrics

    def summary(self) -> dict[str, Any]:
        """One row of the candidates table (JSON-friendly)."""
        m, b = self.evaluation.metrics, self.evaluation.baseline_metrics
        row: dict[str, Any] = {"candidate": self.name, "cv_roc_auc": self.search.best_cv_auc}
        for key in ("roc_auc", "roc_auc_ci_low", "roc_auc_ci_high", "pr_auc", "gini", "ks"):
            row[key] = m.get(key)
        for key in ("brier", "accuracy", "precision", "recall", "f1", "threshold"):
            row[key] = m.get(key)
        row["dummy_roc_auc"] = b.get("roc_auc")
        row["dummy_brier"] = b.get("brier")
        row["calibration"] = self.calibration.get("method")
        row["search_seconds"] = round(self.search.seconds, 2)
        row["best_params"] = _plain(self.search.best_params)
        return {k: _plain(v) for k, v in row.items()}


def _plain(value: Any) -> Any:
    """numpy scalars and nested containers as plain JSON types."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value


def finalize_candidate(
    search: SearchResult,
    X_train: pd.DataFrame,
    y_train: pd.Series,
    X_test: pd.DataFrame,
    y_test: pd.Series,
    *,
    model_name: str,
    out_dir: Path | None = None,
    seed: int = 42,
    n_jobs: int | None = None,
    importance_repeats: int = 5,
) -> CandidateOutcome:
    """Calibrate if it lowers validation Brier, then evaluate once on the held-out test split."""
    t0 = time.perf_counter()
    fitted, calibration = calibrate_if_better(
        search.best_estimator, X_train, y_train, seed=seed, n_jobs=n_jobs
    )
    threshold = float(calibration["threshold"])
    model = CreditRiskModel.from_search(fitted, X_train, y_train, threshold, model_name=model_name)
    evaluation = evaluate_candidate(
        model,
        X_test,
        y_test,
        threshold=threshold,
        out_dir=out_dir,
        name=search.name,
        X_train=X_train,
        y_train=y_train,
        seed=seed,
        importance_repeats=importance_repeats,
        n_jobs=n_jobs,
    )
    return CandidateOutcome(
        name=search.name,
        search=search,
        model=model,
        calibration=_plain(calibration),
        evaluation=evaluation,
        seconds=time.perf_counter() - t0,
    )


def select_best(outcomes: list[CandidateOutcome]) -> CandidateOutcome:
    """The candidate with the best cross-validated ROC-AUC (the test split does not choose)."""
    if not outcomes:
        raise ValueError("no candidates were trained")
    return max(outcomes, key=lambda o: (o.search.best_cv_auc, -len(o.name)))


def headline_metrics(metrics: dict[str, Any]) -> dict[str, float]:
    """The metrics every report and the CLI's JSON line carry, by name."""
    return {k: float(metrics[k]) for k in METRIC_KEYS if metrics.get(k) is not None}


def registry_metrics(metrics: dict[str, Any]) -> dict[str, float]:
    """All scalar metrics (confusion counts flattened) for the registry."""
    out: dict[str, float] = {}
    for key, value in metrics.items():
        if isinstance(value, dict):
            out.update({f"{key}_{k}": float(v) for k, v in value.items()})
        elif isinstance(value, int | float | np.number) and np.isfinite(value):
            out[key] = float(value)
    return out
