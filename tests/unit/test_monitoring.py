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
