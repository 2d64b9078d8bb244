"""The fan-out of the retrain flow: train x N (concurrent grid searches) -> evaluate x N ->
permutation importance of the chosen candidate.

Cores: the N concurrent searches and the calibration folds share ONE pool of ``n_jobs`` worker
processes (joblib's process-wide loky executor, default one per core), so N searches on a 2-core
machine run 2 fits at a time, not 2N; inside each worker BLAS/OpenMP use one thread (joblib's
inner limit), and in this process refits and evaluation run single-threaded
(:func:`credit.models.single_threaded`).

Nothing is fitted twice when it need not be: each fold's preprocessing serves every grid point
that only changes the classifier, calibration and the threshold use the searches' own
out-of-fold predictions (no calibration fits on the demo set), permutation importance runs for
the chosen candidate only, and the EDA report is written while the searches run
(:func:`tasks.explore.eda_in_background`).
"""

from __future__ import annotations

import importlib
import os
import sys
import threading
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pandas as pd

from credit.csvsafe import write_csv
from credit.label import split_customers
from credit.models import load_grids
from credit.training import (
    CandidateOutcome,
    Split,
    TrainingData,
    select_best,
    stratified_sample,
)
from credit.worker_start import lower_priority, warm_worker
from flows.config import RetrainConfig
from tasks import early_server
from tasks.features import content_key
from tasks.lifecycle import await_warm_up, install_worker_reaper, warming_up, worker_pool
from tasks.train import evaluate, importance, train


@dataclass
class TrainedCandidates:
    """Every candidate evaluated on the same held-out split."""

    outcomes: list[CandidateOutcome]
    X_test: pd.DataFrame
    y_test: pd.Series
    sampling: dict[str, dict[str, int]]
    X_train: pd.DataFrame | None = None  # the whole training split (monitoring references)
    y_train: pd.Series | None = None


def candidate_grids(config: RetrainConfig) -> dict[str, dict[str, list] | None]:
    """Each candidate's grid: the run's override, else credit/grids.toml."""
    grids = load_grids()
    return {c: (config.grids or {}).get(c) or grids.get(c) for c in config.candidates}


def shared_pool(
    n_jobs: int | None,
    dask_address: str | None = None,
    preload: Sequence[str] = (),
    *,
    wait: bool = True,
) -> int:
    """Start joblib's process-wide pool of ``n_jobs`` workers (default: one per core) before
    the concurrent searches use it, and return its size.

    Every ``Parallel(n_jobs)`` of this process then reuses that one executor, so concurrent
    grid searches queue their fits on the same workers instead of each starting its own. Starting
    it here, from one thread, also avoids joblib's race when several threads create it at once
    (``'MemmappingExecutor' object has no attribute '_temp_folder_manager'``). With a Dask
    cluster the fits go there and nothing is started. Each worker first lowers its priority,
    then imports the fitting code and ``preload`` (:func:`credit.worker_start.warm_worker`), so
    loky's leak check does not restart it when the first fit imports them.

    ``wait=False``: the workers are started here, in this thread, and return at once while
    they warm up; the next call (the flow's, before its searches) waits for that warm-up and
    raises its error (:func:`tasks.lifecycle.await_warm_up`).
    """
    n = n_jobs or os.cpu_count() or 1
    install_worker_reaper()  # workers exit when this process dies, even by kill -9
    if n > 1 and not dask_address:
        from joblib import Parallel, delayed

        try:
            await_warm_up()
        except BaseException:
            _warmed[:] = [lambda: None, None]  # warmed it was not
            raise
        how = (n, tuple(preload))
        pool, done = _warmed
        if pool() is None or pool() is not worker_pool() or done != how:
            # not this very pool already: the flow calls this again after warm_retrain started
            # it, and each warm-up task waits 0.2 s
            warm_ups = Parallel(n_jobs=n, return_as="generator_unordered")(
                delayed(warm_worker)(tuple(preload)) for _ in range(n)
            )
            _warmed[:] = [weakref.ref(worker_pool()), how]
            warming_up(warm_ups)
            if wait:
                await_warm_up()
    return n


#: The pool :func:`shared_pool` last warmed (a weak reference to joblib's executor) and how.
_warmed: list[Any] = [lambda: None, None]


def pool_preload(candidates: Sequence[str]) -> tuple[str, ...]:
    """Modules the pool workers import up front: the evaluation (matplotlib) and the
    scorecard's binning are slow to import."""
    binning = ("credit.woe_scorecard", "optbinning") if "scorecard" in candidates else ()
    return ("credit.training", *binning)


def warm_pool(config: RetrainConfig) -> int:
    """Start the run's worker pool ahead of the flow (while its Prefect server boots), without
    waiting for its warm-up: the flow's own :func:`shared_pool` call waits for it."""
    preload = pool_preload(config.candidates)
    return shared_pool(config.n_jobs, config.dask_address, preload, wait=False)


def _build_transaction_schemas() -> None:
    """Build the pandera schemas of the transaction models (built on first use, once)."""
    from schemas.transactions import CleanTransactionsSchema, TransactionsSchema

    TransactionsSchema.to_schema()
    CleanTransactionsSchema.to_schema()


def main_preloads(candidates: Sequence[str]) -> list[Callable[[], object]]:
    """What this process would otherwise load in the middle of the run, in the order the run
    needs it: the transaction schemas (pandera builds them at the first validation, importing
    its typing modules), the scorecard's binning (its refit), the registry and skops (the
    registration). Imports only: running them early changes no result."""
    modules = [*(("optbinning",) if "scorecard" in candidates else ()), "registry", "skops.io"]
    return [_build_transaction_schemas] + [
        lambda name=name: importlib.import_module(name) for name in modules
    ]


def warm_retrain(config: RetrainConfig) -> int:
    """Start the worker pool and return its size without waiting for its workers to import
    the fitting code: the flow begins as soon as its server answers, and only its searches
    wait for the pool. Beside it, while a temporary Prefect server started with the command
    still boots, load what the run will need here (:func:`main_preloads`) in a thread at the
    workers' lower priority (on Linux a thread's own niceness), so that the server, which the
    flow waits for, keeps its core."""

    def preload() -> None:
        if sys.platform.startswith("linux"):  # elsewhere it would lower the whole process
            lower_priority()
        early_server.while_booting(main_preloads(config.candidates))

    threading.Thread(target=preload, name="preload", daemon=True).start()
    return warm_pool(config)


def _chosen(searches: list) -> int:
    """Index of the candidate :func:`select_best` will choose (it looks at the search only)."""
    results = [s.result() for s in searches]
    stand_ins = [SimpleNamespace(name=r.name, search=r) for r in results]
    return stand_ins.index(select_best(stand_ins))  # type: ignore[arg-type]


def train_and_evaluate(
    config: RetrainConfig, training: TrainingData, *, out_dir: Path
) -> TrainedCandidates:
    """Split customers, search every candidate concurrently, evaluate each on the test split.

    Large tables: the searches see a stratified sample, the chosen parameters are refitted on
    a larger one (or all of TRAIN); test metrics always use the whole test split. Permutation
    importance (which decides nothing) runs once, for the candidate chosen by CV ROC-AUC.
    """
    X_train, X_test, y_train, y_test = split_customers(
        training.X, training.y, test_size=config.test_size, seed=config.seed
    )
    grids = candidate_grids(config)
    X_search, y_search = stratified_sample(X_train, y_train, config.search_max_rows, config.seed)
    X_fit, y_fit = stratified_sample(X_train, y_train, config.fit_max_rows, config.seed)
    sampled = len(X_search) < len(X_train)
    sample_key = [len(X_search)] if sampled else []  # unchanged keys when nothing is sampled
    n_jobs = shared_pool(config.n_jobs, config.dask_address, pool_preload(config.candidates))
    searches = [
        train.submit(
            name,
            X_search,
            y_search,
            cache_key=content_key(
                *training.key_parts, name, grids[name], config.seed, config.test_size, *sample_key
            ),
            grid=grids[name],
            n_jobs=n_jobs,
            seed=config.seed,
            dask_address=config.dask_address,
        )
        for name in config.candidates
    ]
    split = Split(X_fit, y_fit, X_test, y_test)
    evaluations = [
        evaluate.submit(
            s,
            split,
            model_name=training.model_name,
            out_dir=out_dir / "evaluation",
            seed=config.seed,
            n_jobs=n_jobs,  # calibration folds go to the same pool (no OpenMP threads here)
            importance_repeats=0,  # once, below, for the chosen candidate
            importance_max_rows=config.importance_max_rows,
            refit=not X_fit.index.equals(X_search.index),
            dask_address=config.dask_address,
        )
        for s in searches
    ]
    chosen = _chosen(searches)
    ranked = importance.submit(
        evaluations[chosen],
        X_test,
        y_test,
        repeats=config.importance_repeats,
        max_rows=config.importance_max_rows,
        seed=config.seed,
        out_dir=out_dir / "evaluation",
        n_jobs=None if config.dask_address else n_jobs,  # the searches are done: the pool is idle
    )
    outcomes = [e.result() for e in evaluations]
    outcomes[chosen] = ranked.result()
    for o in outcomes:
        write_csv(o.search.cv_results, out_dir / f"search_{o.name}.csv")
    sampling = config.sampling().report(len(X_train), len(X_test))
    return TrainedCandidates(outcomes, X_test, y_test, sampling, X_train, y_train)
