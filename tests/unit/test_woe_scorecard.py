"""WoE logistic scorecard (credit/woe_scorecard.py): bins, points, score, reasons, accuracy."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedShuffleSplit, train_test_split
from sklearn.pipeline import Pipeline

from credit.models import build_pipeline, search_candidate, split_columns
from credit.scorecard import Scorecard
from credit.scoring import CreditRiskModel
from credit.tabular import prepare_labelled_table
from credit.woe_scorecard import POINTS_COLUMNS, WoEScorecard, _woe_iv


def _effect(mapping: dict[str, float], values: np.ndarray) -> np.ndarray:
    return np.array([mapping[v] for v in values])


def german_like(n: int = 1000, seed: int = 0) -> tuple[pd.DataFrame, pd.Series]:
    """A German-credit-shaped table with a known logistic structure: 7 categorical and 4 numeric
    columns, ~35 % bad, missing values in savings, employment and credit_amount."""
    rng = np.random.default_rng(seed)
    cat = {
        "checking_status": ({"<0": 0.9, "0-200": 0.5, ">=200": -0.1, "none": -0.9},
                            [0.27, 0.27, 0.06, 0.40]),
        "credit_history": ({"critical": -0.6, "delayed": 0.2, "existing_paid": 0.1,
                            "all_paid": 0.9, "none_taken": 1.0}, [0.29, 0.09, 0.53, 0.05, 0.04]),
        "purpose": ({"radio_tv": -0.3, "new_car": 0.4, "furniture": 0.0, "used_car": -0.7,
                     "business": 0.1, "education": 0.5, "repairs": 0.3, "other": 0.0},
                    [0.28, 0.23, 0.18, 0.10, 0.10, 0.05, 0.03, 0.03]),
        "savings": ({"<100": 0.3, "100-500": 0.1, "500-1000": -0.3, ">=1000": -0.6,
                     "unknown": -0.4}, [0.6, 0.1, 0.06, 0.05, 0.19]),
        "employment": ({"unemployed": 0.3, "<1": 0.3, "1-4": 0.0, "4-7": -0.3, ">=7": -0.2},
                       [0.06, 0.17, 0.34, 0.17, 0.26]),
        "housing": ({"own": -0.2, "rent": 0.2, "free": 0.3}, [0.71, 0.18, 0.11]),
    }  # fmt: skip
    X = pd.DataFrame(
        {
            name: rng.choice(list(effects), n, p=p).astype(object)
            for name, (effects, p) in cat.items()
        }
    )
    X["duration"] = np.clip(np.round(rng.gamma(3.0, 7.0, n)), 4, 72)
    X["credit_amount"] = np.round(np.exp(rng.normal(7.9, 0.75, n)) + 250 * X["duration"])
    X["age"] = np.clip(np.round(19 + rng.gamma(2.2, 7.0, n)), 19, 75)
    X["installment_rate"] = rng.integers(1, 5, n).astype(float)
    X["existing_credits"] = rng.choice([1.0, 2.0, 3.0, 4.0], n, p=[0.63, 0.33, 0.03, 0.01])
    logit = (
        -1.0
        + sum(_effect(effects, X[name].to_numpy()) for name, (effects, _) in cat.items())
        + 0.035 * (X["duration"] - 20)
        + 0.25 * (np.log(X["credit_amount"]) - 8.3)
        - 0.02 * (X["age"] - 35)
        + 0.15 * (X["installment_rate"] - 2.5)
    ).to_numpy()
    y = pd.Series((rng.random(n) < 1 / (1 + np.exp(-logit))).astype(np.int64), name="default")
    for col, share in (("savings", 0.05), ("employment", 0.04), ("credit_amount", 0.03)):
        X.loc[rng.random(n) < share, col] = np.nan
    return X, y


@pytest.fixture(scope="module")
def german() -> tuple[pd.DataFrame, pd.Series]:
    return german_like()


@pytest.fixture(scope="module")
def fitted(german) -> tuple[WoEScorecard, pd.DataFrame, pd.DataFrame]:
    X, y = german
    X_train, X_test, y_train, _ = train_test_split(X, y, test_size=0.3, stratify=y, random_state=0)
    return WoEScorecard().fit(X_train, y_train), X_train, X_test


HELD_OUT_TABLES, HELD_OUT_SPLITS = 4, 3  # 12 stratified 70/30 splits of 1,000-row tables
BASELINES = ("logreg", "random_forest", "hist_gb")
TUNED = ("logreg", "scorecard")  # searched as the flow searches them (credit/grids.toml)


def held_out_aucs(
    tables: int = HELD_OUT_TABLES, splits: int = HELD_OUT_SPLITS, **scorecard: Any
) -> dict[str, np.ndarray]:
    """Held-out ROC-AUC per split of the candidates' default pipelines, of the default
    scorecard, and of logreg and the scorecard as the flow tunes them (``*_tuned``: the grid
    search of credit/grids.toml on the training part): ``splits`` stratified 70/30 splits of
    each of ``tables`` German-credit-like tables."""
    names = (*BASELINES, "scorecard", *(f"{name}_tuned" for name in TUNED))
    aucs: dict[str, list[float]] = {name: [] for name in names}
    for seed in range(tables):
        X, y = german_like(seed=seed)
        numeric, categorical = split_columns(X)
        cv = StratifiedShuffleSplit(n_splits=splits, test_size=0.3, random_state=seed)
        for train, test in cv.split(X, y):
            X_train, y_train = X.iloc[train], y.iloc[train]
            models = {name: build_pipeline(name, numeric, categorical) for name in BASELINES}
            models["scorecard"] = WoEScorecard(**scorecard)
            for model in models.values():
                model.fit(X_train, y_train)
            for name in TUNED:
                models[f"{name}_tuned"] = search_candidate(name, X_train, y_train, n_jobs=1)
            for name, model in models.items():
                model = getattr(model, "best_estimator", model)
                pd_ = model.predict_proba(X.iloc[test])[:, 1]
                aucs[name].append(roc_auc_score(y.iloc[test], pd_))
    return {name: np.asarray(values) for name, values in aucs.items()}


@pytest.fixture(scope="module")
def held_out(request: pytest.FixtureRequest) -> dict[str, np.ndarray]:
    """:func:`held_out_aucs`, printed (means, sd, the scorecards' per-split gaps)."""
    aucs = held_out_aucs()
    with request.config.pluginmanager.getplugin("capturemanager").global_and_fixture_disabled():
        print(f"\nheld-out ROC-AUC, mean (sd) over {len(aucs['scorecard'])} splits:")
        for name, values in aucs.items():
            if name.startswith("scorecard"):
                print(f"  {name:16s} {values.mean():.4f} ({values.std():.4f})")
                continue
            mine = "scorecard_tuned" if name.endswith("_tuned") else "scorecard"
            gap = aucs[mine] - values
            print(
                f"  {name:16s} {values.mean():.4f} ({values.std():.4f}); {mine} - it per "
                f"split: mean {gap.mean():+.4f}, min {gap.min():+.4f}, max {gap.max():+.4f}"
            )
    return aucs


@pytest.mark.long
def test_held_out_auc_within_001_of_the_best_candidate_default_and_tuned(held_out) -> None:
    """Issue #17 item 1, over 12 held-out splits (one test, so that xdist computes the costly
    ``held_out`` fixture on one worker only):

    * default pipelines: the scorecard's mean ROC-AUC is within 0.01 of the best candidate's
      (logreg / random forest / hist_gb);
    * as the flow tunes them: the scorecard tuned by its grid (coding, C, min_iv) is within 0.01
      of logreg tuned by its grid, the strongest candidate on these logistic tables. Before the
      dummy coding (WoE coding only) it was 0.012 behind logreg at C=0.1: binned numerics lose
      their linear effects, one coefficient per bin wins back part of it.
    """
    means = {name: float(values.mean()) for name, values in held_out.items()}
    best = max(BASELINES, key=means.__getitem__)
    assert means["scorecard"] >= means[best] - 0.01, (best, means)
    assert means["scorecard_tuned"] >= means["logreg_tuned"] - 0.01, means


def test_dummy_coding_scores_the_sum_of_its_points_and_caches_the_binning(german, tmp_path) -> None:
    """coding="dummy": one coefficient per bin seen in fitting (unseen and empty bins score
    the neutral term 0), the score is the sum of the points, reasons are points lost against
    the best bin; a cached binning (``memory``) gives exactly the uncached model."""
    X, y = german
    plain = WoEScorecard(coding="dummy", C=0.1).fit(X, y)
    cached = WoEScorecard(coding="dummy", C=0.1, memory=str(tmp_path)).fit(X, y)
    again = WoEScorecard(coding="dummy", C=0.1, memory=str(tmp_path)).fit(X, y)
    for other in (cached, again):
        assert other.points_ == plain.points_ and other.intercept_ == plain.intercept_
    seen = sum(int(np.sum(np.asarray(plain.bins_[c]["count"]) > 0)) for c in plain.selected_)
    assert plain.coef_.shape == (seen,)
    for c in plain.selected_:
        empty = np.asarray(plain.bins_[c]["count"]) == 0
        assert np.all(np.asarray(plain.terms_[c])[empty] == 0.0)
    card = Scorecard.from_dict(plain.scorecard_)
    pd_ = plain.predict_proba(X)[:, 1]
    np.testing.assert_allclose(plain.total_points(X), card.raw_score(pd_), atol=1e-6)
    both_pd, reasons = plain.pd_and_reasons(X.iloc[:50])
    np.testing.assert_allclose(both_pd, pd_[:50])
    assert all(r["points_lost"] > 0 for row in reasons for r in row)
    with pytest.raises(ValueError, match="coding must be one of"):
        WoEScorecard(coding="onehot").fit(X, y)


def test_cached_binning_keys_on_the_frames_contents_and_records_a_one_line_repr(
    german, tmp_path
) -> None:
    """joblib writes ``repr`` of each argument beside a cache entry and warns when that takes
    over 0.5 s ("Persisting input arguments took 1.08s", seen in CI on a loaded machine): the
    frame's repr is one line; its contents still make the key (equal frames hit, a changed one
    misses)."""
    import json

    X, y = german
    WoEScorecard(coding="dummy", C=0.1, memory=str(tmp_path)).fit(X, y)
    WoEScorecard(coding="dummy", C=1.0, memory=str(tmp_path)).fit(X.copy(), y)
    changed = X.copy()
    changed.iloc[0, 0] = changed.iloc[1, 0]
    WoEScorecard(coding="dummy", C=0.1, memory=str(tmp_path)).fit(changed, y)
    entries = sorted(tmp_path.rglob("metadata.json"))
    assert len(entries) == 2  # the copy hit the first entry, the changed frame did not
    for entry in entries:
        args = json.loads(entry.read_text())["input_args"]
        assert args["framed"] == f"<DataFrame of {len(X)} rows x {X.shape[1]} columns>"


def test_bin_into_memory_bins_as_fit_would_and_leaves_the_estimator_unfitted(
    german, tmp_path, monkeypatch
) -> None:
    """``bin_into_memory`` stores the binning a fit of the same rows computes: fits with other
    coding / C / min_iv then bin nothing, one with another binning setting bins afresh, and the
    model is the one fitted without any memory."""
    from sklearn.exceptions import NotFittedError

    import credit.woe_scorecard as ws

    X, y = german
    calls = []
    real = ws._fit_binning
    monkeypatch.setattr(
        ws, "_fit_binning", lambda frame, *a, **k: calls.append(len(frame)) or real(frame, *a, **k)
    )
    ahead = WoEScorecard(coding="dummy", C=0.1, memory=str(tmp_path))
    ahead.bin_into_memory(X, y)
    assert calls == [len(X)]
    with pytest.raises(NotFittedError):
        ahead.predict_proba(X)
    for params in ({"coding": "dummy", "C": 0.1}, {"coding": "woe", "C": 1.0, "min_iv": 0.0}):
        cached = WoEScorecard(memory=str(tmp_path), **params).fit(X, y)
        assert cached.points_ == WoEScorecard(**params).fit(X, y).points_
    assert calls == [len(X)] + [len(X)] * 2  # only the two fits without memory binned
    WoEScorecard(max_n_prebins=10, memory=str(tmp_path)).fit(X, y)
    assert len(calls) == 4
    with pytest.raises(ValueError, match="needs a memory"):
        WoEScorecard().bin_into_memory(X, y)


def test_woe_prior_rows_shrinks_small_bins_only() -> None:
    """The m-estimate: a 30-row bin's WoE moves towards 0, a 600-row bin's barely, an empty
    bin stays 0; with 0 prior rows the raw WoE (optbinning's) comes back."""
    n_event = np.array([150.0, 20.0, 0.0, 5.0])
    n_nonevent = np.array([450.0, 10.0, 0.0, 0.0])
    raw, _ = _woe_iv(n_event, n_nonevent)
    smooth, iv = _woe_iv(n_event, n_nonevent, 20.0)
    assert raw[3] == 0 and smooth[3] < 0  # all bad: optbinning says 0, the m-estimate "risky"
    assert 0 > smooth[1] > raw[1]  # the 30-row risky bin: shrunk, same sign
    assert abs(smooth[0] - raw[0]) < 0.1 * abs(raw[0])  # the 600-row bin barely moves
    assert smooth[2] == pytest.approx(0.0) and (iv >= 0).all()
    rate = 175 / 635
    expected = np.log(((10 + 20 * (1 - rate)) / (460 + 80 * (1 - rate))) /
                      ((20 + 20 * rate) / (175 + 80 * rate)))  # fmt: skip
    assert smooth[1] == pytest.approx(expected)
    X, y = german_like(n=700, seed=3)
    raw_fit, smooth_fit = (WoEScorecard(woe_prior_rows=m).fit(X, y) for m in (0, 20))
    for feature in ("savings", "employment"):  # their Missing bins hold ~30 rows
        raw_missing = raw_fit.bins_[feature]["woe"][-1]
        assert abs(smooth_fit.bins_[feature]["woe"][-1]) < abs(raw_missing) or raw_missing == 0


def test_points_table_and_score_is_the_sum_of_points(fitted) -> None:
    card, _, X_test = fitted
    table = card.points_table()
    assert tuple(table.columns) == POINTS_COLUMNS
    assert list(table.feature.unique()) == card.selected_
    assert {"Special", "Missing"} <= set(table.bin)
    pd_ = card.predict_proba(X_test)[:, 1]
    policy = Scorecard.from_toml()  # the policy's PDO scaling
    total = card.total_points(X_test)
    np.testing.assert_allclose(total, policy.raw_score(pd_), atol=1e-6)
    inside = (total > policy.min_score) & (total < policy.max_score)
    assert inside.mean() > 0.9
    np.testing.assert_array_equal(np.rint(total[inside]), policy.score(pd_)[inside])
    # by hand for one customer: look up each feature's bin in the table and add the points
    points = card.points(X_test.head(1))
    assert points.sum(axis=1).iloc[0] == pytest.approx(total[0])
    for feature, value in points.iloc[0].items():
        assert value in set(table.loc[table.feature == feature, "points"])


def test_selection_by_iv_and_monotonic_numeric_bins(fitted) -> None:
    card, _, _ = fitted
    ivs = card.iv_table().set_index("feature")
    assert not ivs.loc[ivs.iv < card.min_iv, "selected"].any()
    assert ivs.loc[card.selected_, "iv"].min() >= card.min_iv
    for feature in ("duration", "credit_amount", "age"):  # monotone by construction
        rate = np.asarray(card.bins_[feature]["event_rate"][:-2])
        step = np.diff(rate)
        assert (step >= -1e-12).all() or (step <= 1e-12).all(), (feature, rate)
    assert len(card.bins_["duration"]["labels"]) > 3  # the data supports several bins
    # a higher WoE (safer bin) never scores fewer points: no wrong-sign coefficients
    assert (card.coef_ <= 0).all()


def test_special_and_missing_bins_and_unseen_levels(german) -> None:
    X, y = german
    X = X.copy()
    X.loc[X.index[::10], "duration"] = -1.0  # "not applicable" code
    X["never_filled"] = np.nan  # optbinning cannot bin it: all Missing, IV 0
    card = WoEScorecard(special_codes=[-1.0]).fit(X, y)
    assert card.iv_["never_filled"] == 0 and card.bins_["never_filled"]["count"][-1] == len(X)
    spec = card.bins_["duration"]
    assert spec["count"][-2] == len(X.index[::10])  # Special
    assert spec["count"][-1] == 0 and card.bins_["savings"]["count"][-1] == X.savings.isna().sum()
    row = X.head(3).copy()
    row["duration"] = [-1.0, np.nan, 12.0]
    row["checking_status"] = ["never seen", np.nan, "none"]
    points = card.points(row)
    table = card.points_table()
    duration = table[table.feature == "duration"].set_index("bin").points
    assert points.duration.iloc[0] == pytest.approx(duration["Special"])
    assert points.duration.iloc[1] == pytest.approx(duration["Missing"])
    n = len(card.selected_)
    neutral = Scorecard.from_toml().offset / n - Scorecard.from_toml().factor * card.intercept_ / n
    assert points.checking_status.iloc[0] == pytest.approx(neutral)  # unseen level: WoE 0


@pytest.mark.parametrize("trend", ["auto_asc_desc", None])
def test_binning_is_optbinnings_binning_process_without_its_statistics(german, trend) -> None:
    """The per-column fit (issue 16: half the binning time) gives exactly the bins and counts
    of optbinning's BinningProcess, the reference it replaced: numeric and categorical columns,
    a Special code, missing values and an empty column."""
    from optbinning import BinningProcess

    from credit.woe_scorecard import _fit_binning

    X, y = german
    X = X.copy()
    X.loc[X.index[::10], "duration"] = -1.0
    X["never_filled"] = np.nan
    card = WoEScorecard(special_codes=[-1.0], monotonic_trend=trend).fit(X, y)
    data, event = card._prepare(X, fitting=False), y.to_numpy().astype(int)
    params = {
        "special_codes": [-1.0],
        "max_n_prebins": card.max_n_prebins,
        "min_prebin_size": card.min_prebin_size,
        "min_bin_size": card.min_bin_size,
        "max_n_bins": card.max_n_bins,
    }
    ours = _fit_binning(data, event, card.kinds_, monotonic_trend=trend, **params)
    binnable = [c for c in data.columns if data[c].notna().any()]
    numeric = [c for c in binnable if card.kinds_[c] == "numeric"]
    process = BinningProcess(
        binnable,
        categorical_variables=[c for c in binnable if c not in numeric],
        binning_fit_params={
            c: {} if trend is None else {"monotonic_trend": trend} for c in numeric
        },
        **params,
    ).fit(data[binnable], event)
    assert set(ours) == set(data.columns) and "never_filled" not in binnable
    for c in binnable:
        reference = process.get_binned_variable(c)
        spec, n_event, n_nonevent = ours[c]
        np.testing.assert_array_equal(n_event, reference.binning_table.n_event)
        np.testing.assert_array_equal(n_nonevent, reference.binning_table.n_nonevent)
        if c in numeric:
            assert spec["splits"] == [float(v) for v in reference.splits], c
        else:
            bins = reference.binning_table.build()["Bin"].tolist()[: len(n_event) - 2]
            assert spec["groups"] == [[str(v) for v in group] for group in bins], c


def test_reason_codes_are_the_largest_points_lost_against_the_best_bin(fitted) -> None:
    card, _, X_test = fitted
    table = card.points_table()
    best = table[table["count"] > 0].groupby("feature").points.max()
    points = card.points(X_test.head(20))
    lost = best[points.columns].to_numpy()[None, :] - points.to_numpy()
    for i, reasons in enumerate(card.reason_codes(X_test.head(20), top=3)):
        expected = sorted(lost[i][lost[i] > 1e-9], reverse=True)[:3]
        assert [r["points_lost"] for r in reasons] == pytest.approx(expected)
        for r in reasons:
            assert r["points"] + r["points_lost"] == pytest.approx(r["best_points"])
            assert r["reference"] == r["best_bin"] and r["text"]
    # a customer sitting in every feature's best bin has nothing to explain
    best_bins = table.loc[table.groupby("feature").points.idxmax()]
    assert set(best_bins.feature) == set(card.selected_)


def test_bring_your_own_labels_table(german) -> None:
    X, y = german
    raw = X.assign(
        customer_id=[f"C{i}" for i in range(len(X))],
        outcome=np.where(y == 1, "bad", "good"),
        housing=X.housing.astype("category"),
    )
    Xp, yp, info = prepare_labelled_table(raw, "outcome", id_column="customer_id")
    assert info["positive_label"] == "bad"
    X_train, X_test, y_train, y_test = train_test_split(Xp, yp, test_size=0.3, random_state=0)
    model = CreditRiskModel(WoEScorecard()).fit(X_train, y_train)
    assert roc_auc_score(y_test, model.predict_pd(X_test)) > 0.7
    # the training path: a pipeline naming its columns, fitted on a wider table, then wrapped
    roles = {"numeric": info["numeric"], "categorical": info["categorical"][1:]}
    wide = X_train.assign(note="free text")
    fitted = Pipeline([("clf", WoEScorecard(**roles))]).fit(wide, y_train)
    wrapped = CreditRiskModel.from_search(fitted, wide, y_train, 0.5, model_name="scorecard")
    assert wrapped.feature_names_ == [c for c in X_train.columns if c != info["categorical"][0]]
    np.testing.assert_allclose(
        wrapped.predict_pd(X_test), fitted.predict_proba(X_test.assign(note="x"))[:, 1]
    )
    assert wrapped.score_frame(X_test.head(3)).reasons.iloc[0][0]["bin"]
    frame = model.score_frame(X_test.head(5))
    card = Scorecard.from_toml()
    total = model.estimator_.total_points(model._align(X_test.head(5)))
    np.testing.assert_array_equal(frame.score, np.clip(np.rint(total), 300, 850))
    first = frame.reasons.iloc[0]
    assert first and {"feature", "value", "reference", "impact", "text", "bin"} <= set(first[0])
    assert list(model.points_table().columns) == list(POINTS_COLUMNS)
    assert card.pdo == Scorecard.from_dict(model.scorecard_).pdo


def test_transaction_feature_table_and_registry_round_trip() -> None:
    from builders import clean, demo_transactions

    from credit.label import build_training_table
    from registry.artifacts import load_artifact, serialise, sha256_hex

    table = build_training_table(clean(demo_transactions(rows=6000, customers=300, seed=5)))
    X, y = table.X, table.y
    model = CreditRiskModel(WoEScorecard()).fit(X, y)
    pd_ = model.predict_pd(X)
    assert roc_auc_score(y, pd_) > 0.7
    assert 1 <= len(model.estimator_.selected_) < X.shape[1]
    blob = serialise(model)
    again = load_artifact(blob, expected_sha256=sha256_hex(blob))
    np.testing.assert_allclose(again.predict_pd(X), pd_)
    pd.testing.assert_frame_equal(again.points_table(), model.points_table())
