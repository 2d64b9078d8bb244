"""Reason codes: phrases, reference values, batched attribution and the served model's frame."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from credit.models import build_pipeline, split_columns
from credit.reasons import (
    describe,
    humanise,
    reason_codes,
    reason_impacts,
    reference_values,
    top_reasons,
)
from credit.scoring import SCORE_COLUMNS, CreditRiskModel
from credit.tabular import synthetic_customer_table


def test_describe_phrases():
    assert describe("recency_days", 45.0, 10.0) == (
        "Long time since the last purchase (45 days; typical 10 days)"
    )
    assert describe("debit_sum", 2500.0, 11530.0) == (
        "Low total spending (2,500 UGX; typical 11,530 UGX)"
    )
    assert describe("share_category_airtime", 0.95, 0.82) == (
        "High share of airtime purchases (95%; typical 82%)"
    )
    assert describe("share_category_financial_services", 0.0, 0.07).startswith(
        "Low share of financial services purchases"
    )
    assert describe("n_tx_30d", 1.0, 2.0) == "Few transactions in the last 30 days (1; typical 2)"
    assert describe("share_dow_sun", 0.5, 0.0).startswith("Much activity on Sundays")
    assert describe("gap_mean_days", None, 5.9) == "Only one purchase: no buying rhythm yet"
    assert describe("top_channel", "ChannelId_1", "ChannelId_3") == (
        "Mostly uses ChannelId 1 (most customers: ChannelId 3)"
    )
    assert (
        describe("mystery_metric", 3.0, 1.0) == "Mystery metric higher than typical (3; typical 1)"
    )
    assert describe("mystery_metric", None, 1.0) == "Mystery metric not available"
    assert humanise("share_tod_night") == "Share tod night"


def test_reference_values_median_and_mode():
    X = pd.DataFrame(
        {
            "a": [1.0, 2.0, np.nan, 10.0],
            "b": [np.nan] * 4,
            "c": ["x", "y", "y", None],
            "d": ["q", "p", "q", "p"],  # tie: the name decides
        }
    )
    ref = reference_values(X, ["a", "b"], ["c", "d"])
    assert ref["a"] == 2.0 and np.isnan(ref["b"])
    assert ref["c"] == "y" and ref["d"] == "p"


def _toy_pd(batch: pd.DataFrame) -> np.ndarray:
    z = (
        0.05 * batch["recency_days"].to_numpy(float)
        - 0.3 * np.log1p(batch["debit_sum"].to_numpy(float))
        + 1.0 * (batch["top_channel"].to_numpy(object) == "ChannelId_1")
    )
    return 1 / (1 + np.exp(-z))


def test_reason_impacts_exact_and_one_call_per_chunk():
    X = pd.DataFrame(
        {
            "recency_days": [60.0, 2.0, 10.0],
            "debit_sum": [500.0, 90_000.0, 10_000.0],
            "top_channel": ["ChannelId_1", "ChannelId_3", "ChannelId_3"],
        },
        index=["c1", "c2", "c3"],
    )
    ref = {"recency_days": 10.0, "debit_sum": 10_000.0, "top_channel": "ChannelId_3"}
    calls = []

    def counting(batch):
        calls.append(len(batch))
        return _toy_pd(batch)

    base, impact = reason_impacts(counting, X, ref)
    assert calls == [3 * 4]  # 3 customers x (3 features + the actual rows), one call
    np.testing.assert_allclose(base, _toy_pd(X))
    for j, f in enumerate(ref):
        typical = X.copy()
        typical[f] = ref[f]
        np.testing.assert_allclose(impact[:, j], _toy_pd(X) - _toy_pd(typical), atol=1e-15)
    assert np.all(impact[2] == 0)  # c3 is the typical customer: nothing to explain
    # chunking changes the number of calls, not the answer
    calls.clear()
    base2, impact2 = reason_impacts(counting, X, ref, chunk_rows=8)
    assert calls == [8, 4]
    np.testing.assert_array_equal(impact, impact2)
    np.testing.assert_array_equal(base, base2)

    reasons = top_reasons(X, impact, ref, top=3)
    names = list(ref)
    expected = [names[j] for j in np.argsort(-impact[0]) if impact[0, j] > 0]
    assert [r["feature"] for r in reasons[0]] == expected and len(expected) == 3
    assert [r["impact"] for r in reasons[0]] == pytest.approx(sorted(impact[0], reverse=True))
    assert reasons[0][0]["value"] == 60.0 and reasons[0][0]["reference"] == 10.0
    assert reasons[0][0]["text"].startswith("Long time since the last purchase")
    # c2 is recent and big-spending: only risk-raising factors are reported (none here)
    assert reasons[1] == [] and reasons[2] == []
    assert reason_codes(_toy_pd, X, ref, top=2)[0] == reasons[0][:2]


@pytest.fixture(scope="module")
def served():
    X, y = synthetic_customer_table(400, n_noise=3, seed=21)
    num, cat = split_columns(X)
    pipe = build_pipeline("logreg", num, cat).fit(X, y)
    return CreditRiskModel.from_search(pipe, X, y, threshold=0.5, model_name="logreg"), X


def test_score_frame_columns_and_reasons(served):
    model, X = served
    frame = model.score_frame(X.head(50))
    assert tuple(frame.columns) == SCORE_COLUMNS
    assert frame.index.equals(X.head(50).index)
    np.testing.assert_allclose(frame["probability"], model.predict_pd(X.head(50)))
    assert set(frame["risk_class"]) <= {"high", "low"}
    assert ((frame["probability"] >= 0.5) == (frame["risk_class"] == "high")).all()
    assert frame["score"].between(300, 850).all()
    by_pd = frame.sort_values("probability")
    assert by_pd["score"].is_monotonic_decreasing
    for reasons in frame["reasons"]:
        assert len(reasons) <= 3
        assert [r["impact"] for r in reasons] == sorted(
            (r["impact"] for r in reasons), reverse=True
        )
        for r in reasons:
            assert set(r) == {"feature", "value", "reference", "impact", "text"}
            assert r["impact"] > 0 and r["text"] and r["feature"] in model.feature_names_
    assert sum(len(r) for r in frame["reasons"]) > 50  # most customers get reasons
    # a customer at every reference value has nothing pushing the PD up
    typical = pd.DataFrame([model.reference_], index=["typical"])
    assert model.score_frame(typical)["reasons"].iloc[0] == []
    no_reasons = model.score_frame(X.head(5), with_reasons=False)
    assert (no_reasons["reasons"].map(len) == 0).all()


def _fitted(name: str, calibrate: str | None = None):
    """A served model of family ``name`` (optionally calibrated in one fold, as the retrain
    flow calibrates) and its customers (with missing values and an unseen level)."""
    from sklearn.calibration import CalibratedClassifierCV

    X, y = synthetic_customer_table(300, n_noise=2, seed=5)
    num, cat = split_columns(X)
    X.loc[X.index[:15], num[0]] = np.nan
    pipe = build_pipeline(name, num, cat, seed=0)
    if name == "random_forest":
        pipe.set_params(clf__n_estimators=20)
    if name == "hist_gb":
        pipe.set_params(clf__max_iter=30)
    est = pipe.fit(X, y)
    if calibrate:
        est = CalibratedClassifierCV(pipe, method=calibrate, cv=3, ensemble=False).fit(X, y)
    model = CreditRiskModel.from_search(est, X, y, threshold=0.5, model_name=name)
    X = X.copy()
    X.loc[X.index[-3:], cat[0]] = "never_seen_level"
    return model, X


@pytest.mark.parametrize(
    ("name", "calibrate"),
    [
        ("logreg", None),
        ("logreg", "sigmoid"),
        ("logreg", "isotonic"),
        ("hist_gb", None),
        ("hist_gb", "isotonic"),
        ("random_forest", None),
        ("random_forest", "sigmoid"),
    ],
)
def test_columnwise_impacts_equal_the_stacked_re_prediction(name, calibrate):
    """Transforming once (linear: exact per-column terms; boosted trees: rewired trees; a
    forest: each reset row walked again from where it leaves its path) gives the impacts and
    reasons of re-predicting every stacked raw row."""
    from credit.reasons import columnwise_impacts

    model, X = _fitted(name, calibrate)
    view = model._columnwise()
    assert view is not None
    assert (view.linear is not None) == (name == "logreg")
    assert (view.terms is not None) == (name in ("hist_gb", "random_forest"))
    Xa = model._align(X)
    base, impact = reason_impacts(
        lambda b: model.estimator_.predict_proba(b)[:, 1], Xa, model.reference_
    )
    base2, impact2 = columnwise_impacts(view, Xa)
    np.testing.assert_allclose(base2, base, rtol=0, atol=1e-12)
    np.testing.assert_allclose(impact2, impact, rtol=0, atol=1e-12)
    assert (impact != 0).any()
    expected = model._reasons(Xa, 3)
    got = model.score_frame(X, with_reasons=True)["reasons"].tolist()
    assert [[r["feature"] for r in g] for g in got] == [[r["feature"] for r in e] for e in expected]
    for g, e in zip(got, expected, strict=True):
        assert [r["impact"] for r in g] == pytest.approx([r["impact"] for r in e], abs=1e-12)
        assert [r["text"] for r in g] == [r["text"] for r in e]


def _counting(view):
    """``view`` with a head that records how many rows each call predicts, and that record."""
    from dataclasses import replace

    calls: list[int] = []

    def counting(Z):
        calls.append(len(Z))
        return view.head(Z)

    return replace(view, head=counting), calls


def test_tree_impacts_predict_only_resets_that_cross_a_split(monkeypatch):
    """Trees read through no terms (here boosted trees too large to tabulate) are asked only
    about (customer, feature) pairs whose reset crosses one of their split thresholds; a
    customer at the reference everywhere costs no call at all."""
    import credit.tree_resets
    from credit.reasons import columnwise_impacts

    monkeypatch.setattr(credit.tree_resets, "MAX_TABLE_SPLITS", 0)
    model, X = _fitted("hist_gb")
    view = model._columnwise()
    assert view.terms is None and view.thresholds is not None
    counted, rows = _counting(view)
    Xa = model._align(X)
    columnwise_impacts(counted, Xa)
    assert rows[0] == len(Xa) and 0 < sum(rows[1:]) < len(Xa) * len(view.groups)
    rows.clear()
    typical = model._align(pd.DataFrame([model.reference_], index=["typical"]))
    _, impact = columnwise_impacts(counted, typical)
    assert rows == [1] and not impact.any()


def test_column_groups_partition_the_output_and_isolate_each_input():
    """Each output column of the preprocessing belongs to exactly one input column's group, and
    changing one input column changes only the columns of its group."""
    model, X = _fitted("logreg")
    prep = model.estimator_.named_steps["prep"]
    groups = prep.column_groups()
    Z = prep.transform(X)
    owners = np.concatenate(list(groups.values()))
    assert sorted(owners.tolist()) == list(range(Z.shape[1]))
    for col, cols in groups.items():
        changed = X.copy()
        changed[col] = X[col].iloc[::-1].to_numpy()  # other customers' values, same column
        diff = np.flatnonzero((prep.transform(changed) != Z).any(axis=0))
        assert set(diff.tolist()) <= set(cols.tolist()), col


@pytest.mark.parametrize("name", ["logreg", "hist_gb"])
def test_fast_transform_is_the_pipeline_transform(name):
    """The numpy path of the preprocessing gives the very numbers of scikit-learn's, with
    missing values, rare levels and a level never seen in fitting."""
    model, X = _fitted(name)
    X.loc[X.index[20:25], X.columns[-1]] = None
    prep = model.estimator_.named_steps["prep"]
    Xa = model._align(X)
    np.testing.assert_array_equal(prep.fast_transform(Xa), prep.transform(Xa))


def test_top_order_is_the_stable_sort_wherever_a_reason_is_given():
    """The partial sort picks exactly the columns of the full stable sort whose impacts give a
    reason (ties broken by column, a tie at the cut falls back to the full sort)."""
    from credit.reasons import top_order

    rng = np.random.default_rng(0)
    for trial in range(400):
        n, width = int(rng.integers(0, 40)), int(rng.integers(1, 12))
        if trial % 2:  # few distinct values: ties everywhere, zeros and tiny impacts
            impact = rng.choice([0.0, 0.1, 0.2, 0.3, -0.1, 1e-7], size=(n, width))
        else:
            impact = rng.normal(size=(n, width))
        for top in (1, 3, 5):
            got = top_order(impact, top, 1e-6)
            full = np.argsort(-impact, axis=1, kind="stable")[:, : min(top, width)]
            reason = np.take_along_axis(impact, full, axis=1) > 1e-6
            assert np.array_equal(np.where(reason, got, -1), np.where(reason, full, -1))


@pytest.mark.parametrize("ties_to_the_right", [False, True])
def test_additive_top_impacts_equal_the_full_impact_matrix_with_ties(
    ties_to_the_right, monkeypatch
):
    """A logistic head sends only the top deltas through the link; order and impacts are those
    of the whole impact matrix, also for rows with tied features at the cut (and when the
    partial sort keeps the rightmost of tied columns, as numpy is free to)."""
    if ties_to_the_right:

        def rightmost(a, kth, axis=-1):  # a valid partition: ties keep the highest columns
            columns = np.broadcast_to(np.arange(a.shape[-1]), a.shape)
            return np.lexsort((-columns, a), axis=-1)

        monkeypatch.setattr(np, "argpartition", rightmost)
    from scipy.special import expit

    from credit.reasons import ColumnwiseModel, additive_top_impacts, columnwise_impacts, top_order

    rng = np.random.default_rng(1)
    k = 12
    w = np.array([0.5] * 8 + [2.0, -1.5, 0.3, 0.8])
    X = pd.DataFrame(rng.choice([-1.0, 0.0, 1.0, 2.0], size=(500, k)))
    # eight equal contributions, nothing else: more tied features than pass through the link
    X.iloc[:50, :8] = 1.0
    X.iloc[:50, 8:] = 0.0
    model = ColumnwiseModel(
        transform=lambda frame: frame.to_numpy(dtype=float),
        head=lambda Z: expit(Z @ w - 0.2),
        groups=[np.array([j]) for j in range(k)],
        z_reference=np.zeros(k),
        linear=(w, -0.2),
        link=expit,
    )
    base, impact = columnwise_impacts(model, X)
    got = additive_top_impacts(model, X, top=3)
    assert got is not None
    pd_, order, chosen = got
    expected = top_order(impact, 3, 1e-6)
    reason = np.take_along_axis(impact, expected, axis=1) > 1e-6
    np.testing.assert_array_equal(pd_, base)
    assert np.array_equal(np.where(reason, order, -1), np.where(reason, expected, -1))
    np.testing.assert_array_equal(chosen[reason], np.take_along_axis(impact, expected, 1)[reason])
    assert reason[:50].all() and (order[:50] == [0, 1, 2]).all()  # the lowest tied columns
    from dataclasses import replace

    assert additive_top_impacts(replace(model, link=lambda d: expit(2 * d)), X) is None


def test_a_forest_scores_a_few_rows_in_one_stacked_call_and_many_by_its_trees():
    """Walking 150 trees costs about the same for 1 row as for 50: below
    ``FOREST_TERMS_MIN_ROWS`` rows the forest's head is called once on the resets that cross a
    split, above it no reset row is predicted; both give the same impacts."""
    from dataclasses import replace

    from credit.reasons import columnwise_impacts
    from credit.scoring import FOREST_TERMS_MIN_ROWS

    model, X = _fitted("random_forest")
    view = model._columnwise()
    assert view.terms is not None and view.thresholds is not None
    counted, calls = _counting(view)
    few = model._align(X.head(FOREST_TERMS_MIN_ROWS - 1))
    base, impact = columnwise_impacts(counted, few)
    assert calls[0] == len(few) and sum(calls[1:]) > 0  # the stacked resets
    calls.clear()
    base2, impact2 = columnwise_impacts(replace(counted, terms_min_rows=0), few)
    assert calls == []  # the trees' walk: no head call at all
    np.testing.assert_allclose(base2, base, rtol=0, atol=1e-12)
    np.testing.assert_allclose(impact2, impact, rtol=0, atol=1e-12)
    many = model._align(X.head(FOREST_TERMS_MIN_ROWS))
    columnwise_impacts(counted, many)
    assert calls == []
