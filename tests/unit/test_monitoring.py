"""Population stability and decay: hand-checked PSI, stored bins, shifts, breaches."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from credit.monitoring import (
    BinnedReference,
    Thresholds,
    bin_counts,
    bin_reference,
    build_references,
    decay_report,
    feature_stability,
    psi,
    psi_breaches,
    stability,
)


def test_psi_matches_the_formula_by_hand() -> None:
    e, a = np.array([0.5, 0.3, 0.2]), np.array([0.4, 0.4, 0.2])
    by_hand = (0.4 - 0.5) * math.log(0.4 / 0.5) + (0.4 - 0.3) * math.log(0.4 / 0.3)
    assert psi(e, a) == pytest.approx(by_hand)
    assert psi(e, e) == 0.0
    # An empty bin is floored, not infinite.
    assert math.isfinite(psi(np.array([0.5, 0.5, 0.0]), np.array([0.4, 0.4, 0.2])))


def test_numeric_bins_come_from_the_reference_and_catch_a_unit_change() -> None:
    rng = np.random.default_rng(0)
    ref_values = pd.Series(rng.lognormal(7, 1, 20_000), name="amount")
    ref = bin_reference(ref_values)
    assert ref.kind == "numeric" and len(ref.edges) == 9
    assert np.allclose(ref.proportions[:-1], 0.1, atol=0.002) and ref.proportions[-1] == 0
    same = pd.Series(rng.lognormal(7, 1, 20_000))
    assert stability(ref, same) < 0.01
    assert stability(ref, same * 5) > 0.25  # amounts multiplied by 5 upstream
    with_nan = pd.concat([same, pd.Series([np.nan] * 2_000)])
    assert bin_counts(ref, with_nan)[-1] == 2_000


def test_edges_are_inclusive_on_the_right_and_infinities_land_in_the_end_bins() -> None:
    ref = BinnedReference("x", "numeric", (0.25, 0.25, 0.5, 0.0), 4, edges=(1.0, 2.0))
    counts = bin_counts(ref, pd.Series([1.0, 1.5, 2.0, 3.0, -np.inf, np.inf, np.nan]))
    assert counts.tolist() == [2, 2, 2, 1]


def test_categorical_bins_keep_unseen_levels_and_missing_apart() -> None:
    ref = bin_reference(pd.Series(["a"] * 60 + ["b"] * 40, name="channel"))
    assert ref.levels == ("a", "b") and ref.proportions == (0.6, 0.4, 0.0, 0.0)
    counts = bin_counts(ref, pd.Series(["a", "c", None, "b", "c"], dtype="object"))
    assert counts.tolist() == [1, 1, 2, 1]
    assert stability(ref, pd.Series(["c"] * 100)) > 0.25


def test_references_round_trip_as_json_and_give_the_same_psi() -> None:
    rng = np.random.default_rng(1)
    frame = pd.DataFrame(
        {"n": rng.normal(size=5_000), "c": rng.choice(["x", "y", "z"], 5_000), "k": 1}
    )
    refs = build_references(frame)
    stored = {
        k: BinnedReference.from_dict(json.loads(json.dumps(v.to_dict()))) for k, v in refs.items()
    }
    shifted = frame.assign(n=frame["n"] + 1)
    assert feature_stability(stored, shifted) == feature_stability(refs, shifted)
    figures = feature_stability(refs, shifted)
    assert figures["n"] > 0.25 and figures["c"] < 0.01 and figures["k"] == 0
    assert "missing" in refs["n"].bin_labels()


def test_breaches_by_threshold_worst_first() -> None:
    found = psi_breaches({"a": 0.05, "b": 0.12, "c": 0.4, "d": None}, Thresholds())
    assert [(b.metric, b.level) for b in found] == [("c", "act"), ("b", "watch")]
    assert psi_breaches({"a": 0.15}, Thresholds(watch=0.2, act=0.3)) == []


def test_decay_flags_a_model_that_stopped_ranking_and_a_band_off_its_range() -> None:
    rng = np.random.default_rng(2)
    y = rng.integers(0, 2, 4_000)
    good = np.clip(0.3 + 0.4 * y + rng.normal(0, 0.2, 4_000), 0.01, 0.99)
    bands = np.where(good > 0.5, "E", "A")
    ranges = {"A": (0.0, 0.4), "E": (0.5, 1.0)}
    ok = decay_report(good, y, bands, holdout_auc=0.9, band_pd_ranges=ranges)
    assert ok.roc_auc > 0.85 and ok.breaches == []
    assert {b["band"] for b in ok.bands} == {"A", "E"}
    noise = rng.uniform(0.01, 0.99, 4_000)
    noisy_bands = np.where(noise > 0.5, "E", "A")
    bad = decay_report(noise, y, noisy_bands, holdout_auc=0.9, band_pd_ranges=ranges)
    metrics = {b.metric for b in bad.breaches}
    assert "realized_roc_auc" in metrics and "band_A_default_rate" in metrics
    assert json.dumps(bad.to_dict())  # JSON-ready for the time series


# -- references stored with a version (issue 14, item 1) and the stability built on them -------
def _fitted_world():
    from builders import clean, demo_transactions, synthetic_label, train_model

    from credit.features import build_feature_snapshot

    tx = clean(demo_transactions(rows=4000, customers=200))
    X = build_feature_snapshot(tx, window_days=60)
    y = synthetic_label(X)
    model = train_model(X.iloc[:150], y.iloc[:150])
    return X, y, model


def test_model_references_hold_training_holdout_and_scored_population() -> None:
    from credit.monitoring import (
        LABEL_COLUMN,
        PD_COLUMN,
        model_references,
        population_stability,
    )

    X, y, model = _fitted_world()
    dist, holdout = model_references(
        model, X.iloc[:150], y.iloc[:150], X.iloc[150:], y.iloc[150:], snapshot=X, iv={"n_tx": 0.3}
    )
    json.dumps(dist)  # plain JSON for the registry
    assert set(dist) >= {"training", "holdout", "scored", "iv", "band_pd_ranges", "inputs"}
    assert set(dist["training"]["inputs"]) == set(model.feature_names_)
    assert dist["band_pd_ranges"]["A"][0] == 0.0 and dist["band_pd_ranges"]["E"][1] == 1.0
    assert list(dist["scored"]["band"]["levels"]) == list("ABCDE")
    assert len(holdout) == len(X) - 150 and {LABEL_COLUMN, PD_COLUMN} <= set(holdout.columns)
    assert np.allclose(holdout[PD_COLUMN], model.predict_pd(X.iloc[150:]))

    # The same population against its own reference: no drift; amounts x5: inputs breach.
    scored = model.score_frame(X, with_reasons=False)
    same = population_stability(dist, scored, X)
    assert same.reference == "scored" and same.score_psi == 0 and same.max_feature_psi == 0
    assert same.breaches == []
    money = [c for c in X.columns if c.startswith(("amount_", "value_", "debit_"))]
    x5 = X.copy()
    x5[money] = x5[money] * 5
    drifted = population_stability(dist, model.score_frame(x5, with_reasons=False), x5)
    assert drifted.feature_psi["amount_sum"] > 0.25
    assert any(b.metric == "feature_psi.amount_sum" and b.level == "act" for b in drifted.breaches)


def test_population_stability_falls_back_to_holdout_and_training_bins() -> None:
    from credit.monitoring import choose_reference, model_references

    X, y, model = _fitted_world()
    dist, _ = model_references(model, X.iloc[:150], y.iloc[:150], X.iloc[150:], y.iloc[150:])
    name, ref = choose_reference(dist)
    assert name == "holdout+training" and set(ref["inputs"]) == set(model.feature_names_)


def test_band_pd_ranges_follow_the_scorecard() -> None:
    from credit.monitoring import band_pd_ranges
    from credit.scorecard import Scorecard

    card = Scorecard.from_toml()
    ranges = band_pd_ranges(card.bands, card.pd_from_score)
    assert ranges["A"] == [0.0, pytest.approx(card.pd_from_score(580), abs=1e-6)]
    assert ranges["B"][0] == ranges["A"][1] and ranges["E"] == [ranges["D"][1], 1.0]
    assert 0.03 < ranges["A"][1] < 0.05  # policy.toml: A is PD <= ~4 %


def test_realized_outcomes_and_proxy_label_look_only_after_as_of() -> None:
    from credit.monitoring import realized_outcomes, realized_proxy_label

    as_of = pd.Timestamp("2024-01-10", tz="UTC")
    outcomes = pd.DataFrame(
        {
            "customer_id": ["a", "b", "c", "d"],
            "date": ["2024-01-09", "2024-01-20", "2024-03-01", "2024-01-15"],
            "defaulted": [1, 1, 1, 0],
        }
    )
    realized = realized_outcomes(outcomes, pd.Index(["a", "b", "c", "d", "z"]), as_of, 30)
    assert realized.to_dict() == {"a": 0, "b": 1, "c": 0, "d": 0}  # z: no outcome known

    rows = []
    for i in range(30):
        cid = f"c{i}"
        n = 1 if i < 10 else 8  # the first ten are disengaged after as_of
        for k in range(n):
            rows.append((cid, "acc", 1000.0 * (1 + i % 3), as_of + pd.Timedelta(days=1 + 2 * k)))
        rows.append((cid, "acc", 1e9, as_of - pd.Timedelta(days=1)))  # before: ignored
    tx = pd.DataFrame(rows, columns=["CustomerId", "AccountId", "Amount", "TransactionStartTime"])
    label = realized_proxy_label(tx, pd.Index([f"c{i}" for i in range(30)]), as_of, 30)
    assert label.loc[[f"c{i}" for i in range(10)]].all()
    assert label.sum() >= 10 and label.loc["c29"] == 0


def test_a_band_breaches_only_beyond_its_sampling_error() -> None:
    from credit.monitoring import wilson_interval

    ranges = {"A": (0.0, 0.04), "C": (0.10, 0.24)}
    # Three customers in band C, none defaulted: rate 0 < 0.10, but 0/3 says nothing.
    p, y, bands = np.array([0.2, 0.2, 0.2, 0.02]), np.zeros(4), np.array(["C", "C", "C", "A"])
    few = decay_report(p, y, bands, holdout_auc=None, band_pd_ranges=ranges)
    assert [b.metric for b in few.breaches] == []
    strict = decay_report(p, y, bands, holdout_auc=None, band_pd_ranges=ranges, band_z=0)
    assert {b.metric for b in strict.breaches} == {"band_C_default_rate"}
    low, high = wilson_interval(30, 100)
    assert 0.21 < low < 0.22 and 0.39 < high < 0.40
