"""The candidates fan-out: permutation importance once, for the chosen candidate, and every
candidate's metrics, calibration and threshold as a full evaluation gives them."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from prefect import flow

from credit.evaluate import permutation_importance_auc
from credit.label import split_customers
from credit.models import search_candidate
from credit.tabular import synthetic_customer_table
from credit.training import DataSummary, Split, TrainingData, finalize_candidate, select_best
from flows.candidates import train_and_evaluate
from flows.config import RetrainConfig

GRIDS = {"logreg": {"clf__C": [0.1, 1.0]}, "hist_gb": {"clf__max_iter": [30]}}


@flow(name="fan-out-under-test")
def _fan_out(config: RetrainConfig, training: TrainingData, out_dir: Path):
    return train_and_evaluate(config, training, out_dir=out_dir)


@pytest.mark.e2e
def test_importance_only_for_the_chosen_candidate(prefect_harness, tmp_path):
    X, y = synthetic_customer_table(700, n_noise=4, seed=7)
    training = TrainingData(
        X=X,
        y=y,
        model_name="fan-out-test",
        key_parts=["fan-out-test", str(tmp_path)],
        n_rows=len(X),
        data=DataSummary("synthetic", "fp", len(X), 0, len(X), {}),
    )
    config = RetrainConfig(
        candidates=["logreg", "hist_gb"], grids=GRIDS, importance_repeats=2, seed=3
    )
    trained = _fan_out(config, training, tmp_path)
    chosen = select_best(trained.outcomes)
    losers = [o for o in trained.outcomes if o is not chosen]
    assert losers and all(o.evaluation.importance is None for o in losers)
    plots = tmp_path / "evaluation"
    assert (plots / f"{chosen.name}_importance.png").exists()
    assert not any((plots / f"{o.name}_importance.png").exists() for o in losers)
    for o in losers:  # every other plot is still drawn for every candidate
        assert {"roc", "pr", "calibration", "ks", "score_distribution"} <= set(o.evaluation.plots)

    # The chosen candidate's importance and every candidate's figures are those of the full
    # per-candidate evaluation (search -> calibrate -> evaluate with importance).
    X_train, X_test, y_train, y_test = split_customers(X, y, test_size=0.2, seed=3)
    expected = permutation_importance_auc(chosen.model, X_test, y_test, n_repeats=2, seed=3)
    pd.testing.assert_frame_equal(chosen.evaluation.importance, expected)
    split = Split(X_train, y_train, X_test, y_test)
    for o in trained.outcomes:
        search = search_candidate(o.name, X_train, y_train, grid=GRIDS[o.name], n_jobs=1, seed=3)
        full = finalize_candidate(
            search, split, model_name="fan-out-test", seed=3, importance_repeats=2
        )
        assert o.search.best_params == search.best_params
        assert o.calibration["method"] == full.calibration["method"]
        assert o.metrics == full.metrics
        assert o.evaluation.baseline_metrics == full.evaluation.baseline_metrics
