"""Training tasks: one grid search per candidate (run concurrently), then calibration and the
held-out evaluation of each candidate."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from credit.models import SearchResult, search_candidate
from credit.training import CandidateOutcome, finalize_candidate


def _search_key(context: Any, parameters: dict[str, Any]) -> str:
    return f"train-{parameters['name']}-{parameters['cache_key']}"


@task(
    name="train",
    task_run_name="train-{name}",
    cache_key_fn=_search_key,
    persist_result=True,
    timeout_seconds=3600,
)
def train(
    name: str,
    X: pd.DataFrame,
    y: pd.Series,
    *,
    cache_key: str,
    grid: dict[str, list] | None,
    n_jobs: int | None,
    seed: int,
) -> SearchResult:
    """GridSearchCV (stratified 5-fold, ROC-AUC) of candidate ``name`` on the training split.

    Cached on the data fingerprint, windows, grid and seed (``cache_key``), so a re-run on
    unchanged data skips the search.
    """
    result = search_candidate(name, X, y, grid=grid, n_jobs=n_jobs, seed=seed)
    get_run_logger().info(
        "%s: cv ROC-AUC %.4f with %s in %.1f s (%d fits)",
        name,
        result.best_cv_auc,
        result.best_params,
        result.seconds,
        len(result.cv_results),
    )
    return result


@task(name="evaluate", task_run_name="evaluate-{search.name}", cache_policy=NO_CACHE)
def evaluate(
    search: SearchResult,
    X_train: pd.DataFrame,
    y_train: pd.Series,
    X_test: pd.DataFrame,
    y_test: pd.Series,
    *,
    model_name: str,
    out_dir: Path,
    seed: int,
    n_jobs: int | None,
) -> CandidateOutcome:
    """Calibrate where it helps, then evaluate once on the held-out split with plots."""
    outcome = finalize_candidate(
        search,
        X_train,
        y_train,
        X_test,
        y_test,
        model_name=model_name,
        out_dir=out_dir,
        seed=seed,
        n_jobs=n_jobs,
    )
    m = outcome.metrics
    get_run_logger().info(
        "%s held-out: ROC-AUC %.4f [%.4f, %.4f], KS %.4f, Brier %.4f (dummy AUC %.3f), "
        "calibration %s",
        search.name,
        m["roc_auc"],
        m["roc_auc_ci_low"],
        m["roc_auc_ci_high"],
        m["ks"],
        m["brier"],
        outcome.evaluation.baseline_metrics["roc_auc"],
        outcome.calibration["method"],
    )
    return outcome
