"""Training tasks: one grid search per candidate (run concurrently), then calibration and the
held-out evaluation of each candidate."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pandas as pd
from joblib import Parallel, delayed
from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE
from sklearn.base import clone

from credit.models import SearchResult, on_local_pool, search_candidate, single_threaded
from credit.training import CandidateOutcome, Split, finalize_candidate


@contextmanager
def joblib_on_dask(address: str | None) -> Iterator[Any]:
    """Run joblib's parallel loops (GridSearchCV and calibration folds) on a Dask cluster.

    Inside a Dask worker (the flow runs on prefect-dask's task runner) the worker's own client
    is used; elsewhere a client connects to ``address`` for the duration. Without an address
    this does nothing and joblib keeps its local processes.
    """
    if not address:
        yield None
        return
    import joblib
    from distributed import Client, get_client, get_worker

    own = None
    try:
        get_worker()  # inside a task on a Dask worker: use the worker's client
        client = get_client()
    except ValueError:
        client = own = Client(address, set_as_default=False)
    try:
        with joblib.parallel_backend("dask", client=client):
            yield client
    finally:
        if own is not None:
            own.close()


def _search_key(context: Any, parameters: dict[str, Any]) -> str:
    return f"train-{parameters['name']}-{parameters['cache_key']}"


# No timeout_seconds here or on the other submitted tasks (eda): they run in worker threads,
# where Prefect cannot interrupt them; a timeout would only fail a search after it finished
# (and warn about it in every run's logs).
@task(
    name="train",
    task_run_name="train-{name}",
    cache_key_fn=_search_key,
    persist_result=True,
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
    dask_address: str | None = None,
) -> SearchResult:
    """GridSearchCV (stratified 5-fold, ROC-AUC) of candidate ``name`` on the training split
    (or the stratified sample of it the flow passes).

    Cached on the data fingerprint, windows, grid, seed and sample size (``cache_key``), so a
    re-run on unchanged data skips the search. With ``dask_address`` the CV fits run on that
    Dask cluster through joblib's Dask backend.
    """
    with joblib_on_dask(dask_address):
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
    split: Split,
    *,
    model_name: str,
    out_dir: Path,
    seed: int,
    n_jobs: int | None,
    importance_repeats: int = 5,
    importance_max_rows: int | None = None,
    refit: bool = False,
    dask_address: str | None = None,
) -> CandidateOutcome:
    """Calibrate where it helps, then evaluate once on the held-out split with plots.

    ``refit``: the search ran on a sample, so the chosen parameters are fitted afresh on
    ``split.X_train`` (calibration decides how, as always). Metrics use the whole test split;
    permutation importance (``importance_repeats`` shuffles) uses a seeded sample of at most
    ``importance_max_rows`` test customers when the split is larger.
    """
    if refit:
        search = dataclasses.replace(search, best_estimator=clone(search.best_estimator))
    sample_importance = (
        importance_repeats > 0
        and importance_max_rows is not None
        and len(split.X_test) > importance_max_rows
    )
    options = {
        "model_name": model_name,
        "out_dir": out_dir,
        "seed": seed,
        "importance_repeats": 0 if sample_importance else importance_repeats,
    }
    with joblib_on_dask(dask_address):
        if on_local_pool(n_jobs):
            # on a worker of the shared pool: this process's threads (the other evaluations,
            # the EDA report, the orchestration) then do not queue for its interpreter lock
            job = delayed(finalize_candidate)(search, split, n_jobs=1, **options)
            outcome = Parallel(n_jobs=n_jobs)([job])[0]
        else:
            outcome = finalize_candidate(search, split, n_jobs=n_jobs, **options)
    n_test = len(split.X_test)
    if sample_importance:
        _importance_on_sample(
            outcome,
            split.X_test,
            split.y_test,
            importance_max_rows,
            importance_repeats,
            seed,
            out_dir,
        )
    outcome.extra.update(
        {
            "fit_rows": len(split.X_train),
            "test_rows": n_test,
            "importance_rows": (
                min(n_test, importance_max_rows or n_test) if importance_repeats else 0
            ),
        }
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


@task(name="importance", task_run_name="importance-{outcome.name}", cache_policy=NO_CACHE)
def importance(
    outcome: CandidateOutcome,
    X_test: pd.DataFrame,
    y_test: pd.Series,
    *,
    repeats: int,
    max_rows: int | None,
    seed: int,
    out_dir: Path | None,
    n_jobs: int | None = None,
) -> CandidateOutcome:
    """Permutation importance of the chosen candidate and its plot (``{name}_importance.png``).

    It changes no decision (selection is by CV ROC-AUC, calibration by validation Brier), so the
    flow runs it once, for the chosen model, not for every candidate. The whole test split is
    shuffled, or a stratified seeded sample of ``max_rows`` customers when it is larger: the
    same numbers :func:`credit.evaluate.evaluate_candidate` gives with ``importance_repeats``.
    It runs after every search, so ``n_jobs`` spreads it over the then idle worker pool.
    """
    if repeats <= 0:
        return outcome
    _importance_on_sample(outcome, X_test, y_test, max_rows, repeats, seed, out_dir, n_jobs)
    outcome.extra["importance_rows"] = min(len(X_test), max_rows or len(X_test))
    return outcome


def _importance_on_sample(
    outcome: CandidateOutcome,
    X_test: pd.DataFrame,
    y_test: pd.Series,
    max_rows: int | None,
    repeats: int,
    seed: int,
    out_dir: Path | None,
    n_jobs: int | None = None,
) -> None:
    """Permutation importance on the test split, or on a stratified sample of ``max_rows`` of
    it when it is larger."""
    from sklearn.model_selection import train_test_split

    from credit.evaluate import permutation_importance_auc

    X_s, y_s = X_test, y_test
    if max_rows is not None and len(X_test) > max_rows:
        stratify = y_test if y_test.value_counts().min() >= 2 else None
        X_s, _, y_s, _ = train_test_split(
            X_test, y_test, train_size=max_rows, stratify=stratify, random_state=seed
        )
    with single_threaded():
        importance = permutation_importance_auc(
            outcome.model, X_s, y_s, n_repeats=repeats, seed=seed, n_jobs=n_jobs
        )
    outcome.evaluation.importance = importance
    if out_dir is not None:
        from credit import plots as P

        outcome.evaluation.plots["importance"] = P.plot_importance(
            importance, Path(out_dir) / f"{outcome.name}_importance.png", title=outcome.name
        )
