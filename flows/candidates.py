"""The fan-out of the retrain flow: train x N (concurrent grid searches) -> evaluate x N."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from credit.csvsafe import write_csv
from credit.label import split_customers
from credit.models import load_grids
from credit.training import CandidateOutcome, Split, TrainingData, stratified_sample
from flows.config import RetrainConfig
from tasks.features import content_key
from tasks.train import evaluate, train


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


def train_and_evaluate(
    config: RetrainConfig, training: TrainingData, *, out_dir: Path
) -> TrainedCandidates:
    """Split customers, search every candidate concurrently, evaluate each on the test split.

    Large tables: the searches see a stratified sample, the chosen parameters are refitted on
    a larger one (or all of TRAIN); test metrics always use the whole test split.
    """
    X_train, X_test, y_train, y_test = split_customers(
        training.X, training.y, test_size=config.test_size, seed=config.seed
    )
    grids = candidate_grids(config)
    X_search, y_search = stratified_sample(X_train, y_train, config.search_max_rows, config.seed)
    X_fit, y_fit = stratified_sample(X_train, y_train, config.fit_max_rows, config.seed)
    sampled = len(X_search) < len(X_train)
    sample_key = [len(X_search)] if sampled else []  # unchanged keys when nothing is sampled
    searches = [
        train.submit(
            name,
            X_search,
            y_search,
            cache_key=content_key(
                *training.key_parts, name, grids[name], config.seed, config.test_size, *sample_key
            ),
            grid=grids[name],
            n_jobs=config.n_jobs,
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
            n_jobs=config.n_jobs,
            importance_repeats=config.importance_repeats,
            importance_max_rows=config.importance_max_rows,
            refit=not X_fit.index.equals(X_search.index),
            dask_address=config.dask_address,
        )
        for s in searches
    ]
    outcomes = [e.result() for e in evaluations]
    for o in outcomes:
        write_csv(o.search.cv_results, out_dir / f"search_{o.name}.csv")
    sampling = config.sampling().report(len(X_train), len(X_test))
    return TrainedCandidates(outcomes, X_test, y_test, sampling, X_train, y_train)
