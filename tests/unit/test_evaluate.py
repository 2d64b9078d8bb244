"""Metrics against hand-computed values, threshold choice, calibration and evaluation."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from builders import quick_evaluation
from sklearn.calibration import CalibratedClassifierCV
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import train_test_split

from credit.evaluate import (
    METRIC_KEYS,
    auc_rows,
    bootstrap_auc_ci,
    calibrate_from_oof,
    calibrate_if_better,
    calibrate_on_holdout,
    calibrated_from_predictions,
    choose_threshold,
    classification_metrics,
    compare_candidates,
    gini,
    ks_statistic,
    weighted_auc,
)
from credit.models import build_pipeline, split_columns
from credit.tabular import synthetic_customer_table

# Hand example: sorted by p descending the labels read P P P N N P N N.
Y = np.array([1, 1, 1, 0, 0, 0, 0, 1])
P = np.array([0.9, 0.7, 0.3, 0.6, 0.2, 0.1, 0.4, 0.8])


def test_auc_ks_gini_by_hand():
    # positives .9 .7 .3 .8 beat negatives .6 .2 .1 .4 in 4 + 4 + 2 + 4 = 14 of 16 pairs
    assert roc_auc_score(Y, P) == pytest.approx(14 / 16)
    assert gini(Y, P) == pytest.approx(2 * 14 / 16 - 1)
    # TPR - FPR walking down the ranking: .25 .5 .75 .5 .25 .5 .25 0
    assert ks_statistic(Y, P) == pytest.approx(0.75)


def test_ks_with_ties_and_extremes():
    y = np.array([0, 0, 1, 1])
    assert ks_statistic(y, [0.1, 0.4, 0.35, 0.8]) == pytest.approx(0.5)
    assert ks_statistic(y, [0.1, 0.2, 0.8, 0.9]) == pytest.approx(1.0)
    assert ks_statistic(y, [0.5, 0.5, 0.5, 0.5]) == pytest.approx(0.0)
    # a tie between a positive and a negative counts one half in the AUC
    y2, p2 = np.array([0, 1, 0, 1]), np.array([0.5, 0.5, 0.2, 0.9])
    assert weighted_auc(y2, p2, np.ones((1, 4)))[0] == pytest.approx(3.5 / 4)


def test_classification_metrics_by_hand():
    m = classification_metrics(Y, P, 0.5, n_boot=50)
    assert tuple(m) == METRIC_KEYS
    assert m["confusion"] == {"tn": 3, "fp": 1, "fn": 1, "tp": 3}
    assert m["accuracy"] == pytest.approx(6 / 8)
    assert m["precision"] == pytest.approx(3 / 4)
    assert m["recall"] == pytest.approx(3 / 4)
    assert m["f1"] == pytest.approx(3 / 4)
    assert m["roc_auc"] == pytest.approx(14 / 16)
    assert m["gini"] == pytest.approx(0.75)
    assert m["ks"] == pytest.approx(0.75)
    # squared errors .01 .09 .49 .36 .04 .01 .16 .04
    assert m["brier"] == pytest.approx(1.2 / 8)
    # average precision: recall steps of 1/4 at precisions 1, 1, 1, 4/6
    assert m["pr_auc"] == pytest.approx((1 + 1 + 1 + 4 / 6) / 4)
    assert m["threshold"] == 0.5
    assert (m["n"], m["positives"]) == (8, 4)
    assert 0 <= m["roc_auc_ci_low"] <= m["roc_auc_ci_high"] <= 1


def test_weighted_auc_matches_sklearn_sample_weight():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 300)
    p = np.round(rng.random(300) * 0.5 + 0.3 * y, 2)  # rounding creates ties
    w = rng.integers(0, 4, size=(5, 300))
    ours = weighted_auc(y, p, w)
    for row, value in zip(w, ours, strict=True):
        assert value == pytest.approx(roc_auc_score(y, p, sample_weight=row), abs=1e-12)


def test_bootstrap_ci_brackets_auc_and_is_seeded():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 400)
    p = rng.random(400) * 0.6 + 0.3 * y
    auc = roc_auc_score(y, p)
    low, high = bootstrap_auc_ci(y, p, n=300, seed=7)
    assert low < auc < high
    assert high - low < 0.2
    assert bootstrap_auc_ci(y, p, n=300, seed=7) == (low, high)
    assert bootstrap_auc_ci(y, p, n=300, seed=8) != (low, high)
    wide = bootstrap_auc_ci(y, p, n=300, seed=7, alpha=0.01)
    assert wide[0] <= low and wide[1] >= high


def test_choose_threshold_by_hand():
    # F1 at p >= .7 is 6/7 (3 of 4 positives, no false positive), the best cut
    assert choose_threshold(Y, P, "f1") == pytest.approx(0.7)
    assert choose_threshold(Y, P, "youden") == pytest.approx(0.7)
    with pytest.raises(ValueError):
        choose_threshold(Y, P, "accuracy")


@pytest.fixture(scope="module")
def split():
    X, y = synthetic_customer_table(600, n_noise=3, seed=5)
    return train_test_split(X, y, test_size=0.3, stratify=y, random_state=0)


def test_calibrate_if_better_uses_train_only_and_keeps_best(split):
    X_train, _, y_train, _ = split
    num, cat = split_columns(X_train)
    model = build_pipeline("logreg", num, cat).fit(X_train, y_train)
    final, info = calibrate_if_better(model, X_train, y_train, seed=3)
    briers = [info["brier_uncalibrated"], info["brier_sigmoid"], info["brier_isotonic"]]
    assert info["brier_validation"] == min(briers)
    # class_weight="balanced" inflates PDs: recalibration must help here
    assert info["calibrated"] and info["brier_validation"] < info["brier_uncalibrated"]
    assert isinstance(final, CalibratedClassifierCV)
    assert final.method == info["method"]
    assert 0 < info["threshold"] < 1
    assert info["validation_rows"] == int(round(0.2 * len(X_train)))
    # calibration brings the mean PD close to the base rate (the weighted model does not)
    mean_pd = final.predict_proba(X_train)[:, 1].mean()
    assert abs(mean_pd - y_train.mean()) < abs(
        model.predict_proba(X_train)[:, 1].mean() - y_train.mean()
    )


def test_evaluate_candidate_metrics_baseline_plots(split, tmp_path):
    X_train, X_test, y_train, y_test = split
    num, cat = split_columns(X_train)
    model = build_pipeline("logreg", num, cat).fit(X_train, y_train)
    ev = quick_evaluation(model, split, threshold=0.5, name="lr", out_dir=tmp_path)
    assert tuple(ev.metrics) == METRIC_KEYS
    assert ev.metrics["roc_auc"] > 0.65
    p = model.predict_proba(X_test)[:, 1]
    assert ev.metrics["roc_auc"] == pytest.approx(roc_auc_score(y_test, p))
    base = ev.baseline_metrics
    assert base["roc_auc"] == pytest.approx(0.5) and base["ks"] == pytest.approx(0.0)
    prior = y_train.mean()
    expected_brier = np.mean((y_test.to_numpy() - prior) ** 2)
    assert base["brier"] == pytest.approx(expected_brier)
    assert set(ev.plots) == {"roc", "pr", "calibration", "ks", "score_distribution", "importance"}
    for path in ev.plots.values():
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert path.stat().st_size > 5_000
    imp = ev.importance
    assert list(imp["feature"])[:1] != [] and len(imp) == X_test.shape[1]
    assert imp["importance_mean"].is_monotonic_decreasing
    assert imp["feature"].iloc[0] in {
        "recency_days",
        "n_transactions",
        "debit_sum",
        "top_channel",
        "active_days",
        "debit_mean",
        "share_category_financial_services",
    }

    table = compare_candidates([ev])
    assert table.loc[0, "candidate"] == "lr"
    assert {"roc_auc", "ks", "brier", "tp", "dummy_roc_auc", "dummy_brier"} <= set(table.columns)


def test_batched_permutation_importance_matches_sklearn(split):
    from sklearn.inspection import permutation_importance

    from credit.evaluate import permutation_importance_auc

    X_train, X_test, y_train, y_test = split
    num, cat = split_columns(X_train)
    model = build_pipeline("logreg", num, cat).fit(X_train, y_train)
    ours = permutation_importance_auc(model, X_test, y_test, n_repeats=3, seed=4, chunk_rows=2000)
    ref = permutation_importance(
        model, X_test, y_test, scoring="roc_auc", n_repeats=3, random_state=4
    )
    expected = pd.Series(ref.importances_mean, index=X_test.columns)
    expected_std = pd.Series(ref.importances_std, index=X_test.columns)
    got = ours.set_index("feature")
    np.testing.assert_allclose(got["importance_mean"], expected[got.index], atol=1e-12)
    np.testing.assert_allclose(got["importance_std"], expected_std[got.index], atol=1e-12)
    assert got["importance_mean"].is_monotonic_decreasing
    # spread over two worker processes (issue 16: the pool is idle when it runs): same numbers
    pooled = permutation_importance_auc(model, X_test, y_test, n_repeats=3, seed=4, n_jobs=2)
    pd.testing.assert_frame_equal(pooled, ours, check_exact=False, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize(
    ("name", "encoding", "method"),
    [
        ("logreg", "onehot", None),
        ("logreg", "onehot", "sigmoid"),
        ("logreg", "woe", "isotonic"),
        ("hist_gb", "onehot", None),
        ("random_forest", "onehot", "sigmoid"),
    ],
)
def test_permutation_importance_in_the_transformed_space_is_sklearns(split, name, encoding, method):
    """A CreditRiskModel is transformed once and its copies shuffled in the transformed space
    (issue 16: the cold retrain's importance paid a preprocessing pass per copy); the numbers are
    sklearn's ``permutation_importance`` through the model's own ``predict_proba``. A column
    the model does not use drops exactly 0."""
    from sklearn.inspection import permutation_importance

    from credit.evaluate import permutation_importance_auc
    from credit.scoring import CreditRiskModel

    X_train, X_test, y_train, y_test = split
    X_train, X_test = X_train.copy(), X_test.copy()
    X_train.iloc[::7, 0] = np.nan  # missing values: an indicator column joins the group
    X_test.iloc[::5, 0] = np.nan
    num, cat = split_columns(X_train)
    pipe = build_pipeline(name, num, cat).set_params(prep__encoding=encoding)
    if "random_state" in pipe.named_steps["clf"].get_params():
        pipe.set_params(clf__random_state=0)
    if method is not None:
        pipe = CalibratedClassifierCV(pipe, method=method, cv=3, ensemble=False)
    model = CreditRiskModel.from_search(pipe.fit(X_train, y_train), X_train, y_train, 0.5)
    assert model.transformed(X_test) is not None  # the transformed-space path runs
    X_extra = X_test.assign(unused=np.arange(len(X_test), dtype=float))
    ours = permutation_importance_auc(model, X_extra, y_test, n_repeats=3, seed=4, n_jobs=2)
    ref = permutation_importance(
        model, X_extra, y_test, scoring="roc_auc", n_repeats=3, random_state=4
    )
    got = ours.set_index("feature")
    expected = pd.Series(ref.importances_mean, index=X_extra.columns)[got.index]
    expected_std = pd.Series(ref.importances_std, index=X_extra.columns)[got.index]
    np.testing.assert_allclose(got["importance_mean"], expected, rtol=0, atol=1e-12)
    np.testing.assert_allclose(got["importance_std"], expected_std, rtol=0, atol=1e-12)
    assert got.loc["unused", "importance_mean"] == 0.0
    assert (got["importance_mean"] != 0).sum() > 3


def test_auc_rows_matches_roc_auc_score_with_ties():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 300)
    scores = np.round(rng.random((6, 300)), 1)  # many ties
    expected = [roc_auc_score(y, row) for row in scores]
    np.testing.assert_allclose(auc_rows(y, scores), expected, rtol=0, atol=1e-12)
    np.testing.assert_allclose(auc_rows(Y, P), [roc_auc_score(Y, P)], atol=1e-12)
    with pytest.raises(ValueError, match="both classes"):
        auc_rows(np.zeros(4), np.ones((1, 4)))


def _oof(model, X, y, folds):
    """Out-of-fold (proba, response) of ``model`` as the grid search records them."""
    from sklearn.base import clone
    from sklearn.model_selection import cross_val_predict

    proba = cross_val_predict(clone(model), X, y, cv=folds, method="predict_proba")[:, 1]
    if hasattr(model, "decision_function"):
        response = cross_val_predict(clone(model), X, y, cv=folds, method="decision_function")
    else:
        response = proba
    return pd.DataFrame({"proba": proba, "response": response}, index=X.index)


@pytest.mark.parametrize("name", ["logreg", "random_forest"])
@pytest.mark.parametrize("method", ["sigmoid", "isotonic"])
def test_calibration_from_oof_is_calibratedclassifiercv_without_refits(split, name, method):
    """The model built from out-of-fold predictions is CalibratedClassifierCV(ensemble=False)
    on the same folds, to the last digit (decision_function for logreg, proba for the RF)."""
    from sklearn.model_selection import StratifiedKFold

    X_train, X_test, y_train, _ = split
    num, cat = split_columns(X_train)
    model = build_pipeline(name, num, cat).set_params(clf__random_state=0)
    folds = StratifiedKFold(n_splits=5, shuffle=True, random_state=3)
    reference = CalibratedClassifierCV(model, method=method, cv=folds, ensemble=False)
    reference.fit(X_train, y_train)
    fitted = build_pipeline(name, num, cat).set_params(clf__random_state=0).fit(X_train, y_train)
    oof = _oof(model, X_train, y_train, folds)
    ours = calibrated_from_predictions(fitted, oof["response"], y_train, method, seed=3)
    assert isinstance(ours, CalibratedClassifierCV) and ours.method == method
    np.testing.assert_allclose(
        ours.predict_proba(X_test), reference.predict_proba(X_test), rtol=0, atol=1e-12
    )
    assert list(ours.feature_names_in_) == list(X_train.columns)


def test_calibrate_from_oof_decides_on_out_of_fold_predictions(split):
    from sklearn.model_selection import StratifiedKFold

    X_train, _, y_train, _ = split
    num, cat = split_columns(X_train)
    model = build_pipeline("logreg", num, cat).fit(X_train, y_train)
    oof = _oof(model, X_train, y_train, StratifiedKFold(5, shuffle=True, random_state=3))
    final, info = calibrate_from_oof(model, oof, y_train, seed=3)
    briers = [info["brier_uncalibrated"], info["brier_sigmoid"], info["brier_isotonic"]]
    assert info["brier_validation"] == min(briers)
    # class_weight="balanced" inflates PDs: recalibration must help here, as before
    assert info["calibrated"] and info["brier_validation"] < info["brier_uncalibrated"]
    assert isinstance(final, CalibratedClassifierCV)
    assert final.calibrated_classifiers_[0].estimator is model  # no refit
    assert info["validation_rows"] == len(X_train) and info["validation"] == "out_of_fold"
    assert 0 < info["threshold"] < 1
    # without methods (a scorecard) the model stays as is and the threshold is still chosen
    same, plain = calibrate_from_oof(model, oof, y_train, seed=3, methods=())
    assert same is model and plain["method"] == "none" and not plain["calibrated"]
    assert plain["threshold"] == choose_threshold(y_train, oof["proba"])


def test_calibrate_on_holdout_fits_once(split, monkeypatch):
    from sklearn.pipeline import Pipeline

    X_train, X_test, y_train, _ = split
    num, cat = split_columns(X_train)
    fits = []
    real_fit = Pipeline.fit

    def counting_fit(self, X, y=None, **kw):
        fits.append(len(X))
        return real_fit(self, X, y, **kw)

    monkeypatch.setattr(Pipeline, "fit", counting_fit)
    final, info = calibrate_on_holdout(build_pipeline("logreg", num, cat), X_train, y_train)
    assert fits == [len(X_train) - round(0.2 * len(X_train))]
    assert info["validation"] == "holdout" and info["validation_rows"] == len(X_train) - fits[0]
    assert info["calibrated"] and isinstance(final, CalibratedClassifierCV)
    assert final.predict_proba(X_test).shape == (len(X_test), 2)


def test_bootstrap_of_constant_scores_is_exactly_one_half():
    """The dummy's interval: every resample ranks all ties, AUC 0.5 (no resampling needed)."""
    y = np.array([0, 1] * 50)
    assert bootstrap_auc_ci(y, np.full(100, 0.3), n=50) == (0.5, 0.5)
    rng = np.random.default_rng(1)
    counts = rng.multinomial(100, np.full(100, 0.01), size=20)
    np.testing.assert_allclose(weighted_auc(y, np.full(100, 0.3), counts), 0.5)
