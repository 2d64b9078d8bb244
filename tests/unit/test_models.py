"""Candidate pipelines, preprocessing, grid search and reproducibility."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd
import pytest
from builders import quick_evaluation
from sklearn.model_selection import train_test_split

import credit.models as models
from credit.evaluate import calibrate_if_better
from credit.models import (
    CANDIDATES,
    build_pipeline,
    load_grids,
    search_candidate,
    split_columns,
)
from credit.preprocess import SignedLog1p, TabularPreprocessor, make_preprocessor, signed_log1p
from credit.tabular import synthetic_customer_table

TINY = {
    "logreg": {"clf__C": [0.1, 1.0], "prep__encoding": ["onehot", "woe"]},
    "random_forest": {"clf__max_depth": [4, 8], "clf__n_estimators": [40]},
    "hist_gb": {"clf__max_leaf_nodes": [7, 15], "clf__max_iter": [30]},
    "scorecard": {"clf__C": [1.0]},
}


@pytest.fixture(scope="module")
def data():
    X, y = synthetic_customer_table(500, n_noise=4, seed=11)
    return train_test_split(X, y, test_size=0.3, stratify=y, random_state=1)


def test_grids_config_is_valid_and_small():
    grids = load_grids()
    assert grids["search"] == {"cv": 5, "scoring": "roc_auc"}
    X, _ = synthetic_customer_table(60, n_noise=1, seed=0)
    num, cat = split_columns(X)
    for name in CANDIDATES:
        grid = grids[name]
        assert all(k.startswith(("prep__", "clf__")) for k in grid)
        n_points = math.prod(len(v) for v in grid.values())
        assert 1 <= n_points <= 8, f"{name} grid too large for the 60 s budget"
        pipe = build_pipeline(name, num, cat)
        for point in itertools.product(*grid.values()):
            pipe.set_params(**dict(zip(grid, point, strict=True)))  # every key is a real param


def test_load_grids_rejects_bad_config(tmp_path):
    bad = tmp_path / "g.toml"
    bad.write_text("[logreg]\nclf__C = [1.0]\n")
    with pytest.raises(ValueError, match="lacks sections"):
        load_grids(bad)
    bad.write_text("[logreg]\nclf__C = []\n[random_forest]\n[hist_gb]\n[scorecard]\n")
    with pytest.raises(ValueError, match="non-empty list"):
        load_grids(bad)


def test_build_pipeline_steps_and_class_weights():
    card = build_pipeline("scorecard", ["a"], ["b"]).named_steps["clf"]
    assert (list(card.numeric), list(card.categorical)) == (["a"], ["b"])
    for name in (c for c in CANDIDATES if c != "scorecard"):
        pipe = build_pipeline(name, ["a"], ["b"], seed=3)
        assert [s for s, _ in pipe.steps] == ["prep", "clf"]
        assert isinstance(pipe.named_steps["prep"], TabularPreprocessor)
        expected = None if name == "hist_gb" else "balanced"  # see credit.models docstring
        assert pipe.named_steps["clf"].class_weight == expected
        assert pipe.named_steps["clf"].random_state == 3
    assert build_pipeline("logreg", ["a"], []).named_steps["prep"].scale is True
    hgb = build_pipeline("hist_gb", ["a"], []).named_steps["clf"]
    assert (hgb.early_stopping, hgb.validation_fraction, hgb.n_iter_no_change) == (True, 0.1, 10)
    assert build_pipeline("random_forest", ["a"], []).named_steps["clf"].max_samples == 0.5
    with pytest.raises(ValueError, match="unknown candidate"):
        build_pipeline("svm", ["a"], [])


def test_signed_log1p_only_on_heavy_tails():
    assert signed_log1p(np.array([-9.0, 0.0, 9.0, np.nan]))[:3].tolist() == pytest.approx(
        [-math.log(10), 0.0, math.log(10)]
    )
    rng = np.random.default_rng(0)
    X = pd.DataFrame(
        {
            "amount": rng.lognormal(8, 2, 300),
            "share": rng.beta(1, 8, 300),
            "normal": rng.normal(0, 50, 300),
        }
    )
    t = SignedLog1p().fit(X)
    assert t.log_columns_.tolist() == [True, False, False]
    out = t.transform(X)
    assert np.allclose(out[:, 0], np.log1p(X["amount"]))
    assert np.allclose(out[:, 1:], X[["share", "normal"]])
    assert list(t.get_feature_names_out()) == ["amount", "share", "normal"]


@pytest.mark.parametrize("encoding", ["onehot", "woe"])
def test_preprocessor_dense_finite_and_handles_unseen(encoding, data):
    X_train, X_test, y_train, _ = data
    num, cat = split_columns(X_train)
    assert cat == ["top_channel", "top_category", "top_provider"]
    prep = make_preprocessor(num, cat, encoding=encoding).fit(X_train, y_train)
    Z = prep.transform(X_test)
    assert Z.dtype == np.float64 and np.isfinite(Z).all()
    indicators = [c for c in prep.get_feature_names_out() if "missingindicator" in c]
    assert "num__missingindicator_debit_std" in indicators
    odd = X_test.head(5).copy()
    odd["top_channel"] = ["ChannelId_99", None, "x", "ChannelId_3", np.nan]
    odd["debit_sum"] = np.nan
    Z2 = prep.transform(odd)
    assert Z2.shape == (5, Z.shape[1]) and np.isfinite(Z2).all()
    with pytest.raises(ValueError):
        make_preprocessor(num, cat, encoding="target")


def test_search_candidate_result_table(data, monkeypatch):
    X_train, _, y_train, _ = data
    seen = {}
    real = models.GridSearchCV

    def spy(*args, **kwargs):
        seen.update(kwargs)
        return real(*args, **kwargs)

    monkeypatch.setattr(models, "GridSearchCV", spy)
    monkeypatch.setattr(models.os, "cpu_count", lambda: 1)
    res = search_candidate("logreg", X_train, y_train, grid=TINY["logreg"], cv=3)
    assert seen["n_jobs"] == 1 and isinstance(seen["scoring"], models.OOFRecordingAUC)
    assert seen["refit"] is False  # search_candidate refits the best point itself
    assert seen["cv"].n_splits == 3 and seen["cv"].shuffle
    table = res.cv_results
    assert len(table) == 4 and table["rank"].tolist() == sorted(table["rank"])
    assert {"mean_cv_auc", "std_cv_auc", "clf__C", "prep__encoding"} <= set(table.columns)
    assert res.best_cv_auc == pytest.approx(table["mean_cv_auc"].max())
    assert res.best_params == {k: table.loc[0, k] for k in ("clf__C", "prep__encoding")}
    assert res.best_cv_auc > 0.6 and res.seconds > 0
    assert res.best_estimator.predict_proba(X_train.head(3)).shape == (3, 2)
    # as GridSearchCV's refit: the best point fitted on every searched row
    num, cat = models.split_columns(X_train)
    again = models.build_pipeline("logreg", num, cat).set_params(**res.best_params)
    again.fit(X_train, y_train)
    np.testing.assert_array_equal(
        res.best_estimator.predict_proba(X_train), again.predict_proba(X_train)
    )


def _run(name, X_train, y_train, X_test, y_test, seed):
    res = search_candidate(name, X_train, y_train, grid=TINY[name], cv=3, n_jobs=1, seed=seed)
    model, info = calibrate_if_better(res.best_estimator, X_train, y_train, seed=seed, cv=3)
    split = X_train, X_test, y_train, y_test
    ev = quick_evaluation(
        model, split, threshold=info["threshold"], name=name, importance_repeats=0, seed=seed
    )
    return res, model, ev


@pytest.mark.parametrize("name", CANDIDATES)
def test_reproducible_same_seed_same_model_and_metrics(name, data):
    X_train, X_test, y_train, y_test = data
    r1, m1, e1 = _run(name, X_train, y_train, X_test, y_test, seed=5)
    r2, m2, e2 = _run(name, X_train, y_train, X_test, y_test, seed=5)
    assert r1.best_params == r2.best_params
    pd.testing.assert_frame_equal(
        r1.cv_results.drop(columns="mean_fit_seconds"),
        r2.cv_results.drop(columns="mean_fit_seconds"),
        rtol=0,
        atol=1e-12,
    )
    np.testing.assert_allclose(
        m1.predict_proba(X_test), m2.predict_proba(X_test), rtol=0, atol=1e-12
    )
    for key, value in e1.metrics.items():
        if key == "confusion":
            assert value == e2.metrics[key]
        else:
            assert value == pytest.approx(e2.metrics[key], abs=1e-12), key
    assert e1.metrics["roc_auc"] > 0.6


@pytest.mark.parametrize("n_jobs", [1, 2])
def test_search_records_out_of_fold_predictions_and_sklearn_scores(data, n_jobs):
    """The recording scorer gives sklearn's roc_auc scores, and the best point's out-of-fold
    predictions are cross_val_predict's on the same folds (also from worker processes)."""
    from sklearn.base import clone
    from sklearn.model_selection import GridSearchCV, StratifiedKFold, cross_val_predict

    X_train, _, y_train, _ = data
    grid = TINY["logreg"]
    res = search_candidate("logreg", X_train, y_train, grid=grid, cv=3, n_jobs=n_jobs, seed=4)
    num, cat = split_columns(X_train)
    folds = StratifiedKFold(n_splits=3, shuffle=True, random_state=4)
    plain = GridSearchCV(
        build_pipeline("logreg", num, cat, seed=4), grid, scoring="roc_auc", cv=folds
    ).fit(X_train, y_train)
    assert res.best_params == plain.best_params_
    assert res.best_cv_auc == pytest.approx(plain.best_score_, abs=1e-12)
    best = clone(plain.best_estimator_)
    proba = cross_val_predict(best, X_train, y_train, cv=folds, method="predict_proba")[:, 1]
    decision = cross_val_predict(best, X_train, y_train, cv=folds, method="decision_function")
    assert res.oof is not None and res.oof.index.equals(X_train.index)
    np.testing.assert_allclose(res.oof["proba"], proba, rtol=0, atol=1e-12)
    np.testing.assert_allclose(res.oof["response"], decision, rtol=0, atol=1e-12)
    assert res.best_estimator.memory is None  # the prep cache does not travel with the model


def test_prep_cache_gives_the_uncached_search(data, monkeypatch):
    """Grid points sharing a fold reuse its fitted preprocessing: same scores, fewer fits."""
    X_train, _, y_train, _ = data
    fits = []
    real = TabularPreprocessor.fit

    def counting(self, X, y=None):
        fits.append(len(X))
        return real(self, X, y)

    monkeypatch.setattr(TabularPreprocessor, "fit", counting)
    grid = {"clf__C": [0.1, 0.3, 1.0], "prep__encoding": ["onehot", "woe"]}
    cached = search_candidate("logreg", X_train, y_train, grid=grid, cv=3, n_jobs=1)
    # one preprocessing fit per fold and encoding, plus the refit: not one per grid point
    assert len(fits) == 3 * 2 + 1
    no_cache = models.joblib.Memory(None, verbose=0)
    monkeypatch.setattr(models.joblib, "Memory", lambda *a, **k: no_cache)
    fits.clear()
    uncached = search_candidate("logreg", X_train, y_train, grid=grid, cv=3, n_jobs=1)
    assert len(fits) == 3 * 6 + 1
    pd.testing.assert_frame_equal(
        cached.cv_results.drop(columns="mean_fit_seconds"),
        uncached.cv_results.drop(columns="mean_fit_seconds"),
        rtol=0,
        atol=1e-12,
    )


def test_scorecard_search_bins_the_refit_rows_beside_the_folds(data, monkeypatch):
    """With a pool, the refit's binning (all searched rows) is computed on a worker while the
    folds run: the refit in this process bins nothing, and the model is the one a search
    without it gives."""
    import credit.woe_scorecard as ws
    from flows.candidates import pool_preload, shared_pool
    from tasks.lifecycle import stop_worker_pool

    X_train, _, y_train, _ = data
    grid = {"clf__C": [0.1, 1.0], "clf__coding": ["woe", "dummy"]}
    here = []
    real = ws._fit_binning

    def counting(frame, *args, **kwargs):
        here.append(len(frame))  # this process only: the folds bin in the workers
        return real(frame, *args, **kwargs)

    monkeypatch.setattr(ws, "_fit_binning", counting)
    # a pool started as the flow starts it: its workers import optbinning first (a worker of an
    # older pool that imports it mid-task is replaced by loky's leak check, with a warning)
    stop_worker_pool()
    shared_pool(2, preload=pool_preload(["scorecard"]))
    ahead = search_candidate("scorecard", X_train, y_train, grid=grid, cv=3, n_jobs=2)
    assert here == []
    alone = search_candidate("scorecard", X_train, y_train, grid=grid, cv=3, n_jobs=1)
    assert len(here) == 4 and sum(here[:3]) == 2 * len(X_train)  # 3 folds' training rows,
    assert here[3] == len(X_train)  # then the refit's
    assert ahead.best_params == alone.best_params
    pd.testing.assert_frame_equal(
        ahead.cv_results.drop(columns="mean_fit_seconds"),
        alone.cv_results.drop(columns="mean_fit_seconds"),
    )
    assert ahead.best_estimator.named_steps["clf"].points_ == (
        alone.best_estimator.named_steps["clf"].points_
    )
    assert ahead.best_estimator.named_steps["clf"].memory is None


def test_scorecard_refit_binning_is_not_done_ahead_when_the_grid_changes_it(data, monkeypatch):
    """A grid over a binning setting: the refit's binning depends on the winner, so nothing is
    binned ahead (which would be wasted work) and the refit bins in this process."""
    import credit.woe_scorecard as ws

    X_train, _, y_train, _ = data
    submitted = []
    monkeypatch.setattr(
        ws.WoEScorecard, "bin_into_memory", lambda self, X, y: submitted.append(len(X))
    )
    grid = {"clf__max_n_prebins": [10, 20]}
    search_candidate("scorecard", X_train, y_train, grid=grid, cv=3, n_jobs=2)
    assert submitted == []
