"""Promotion gates: losses on the reference holdout, score and input drift, noise tolerance."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from credit.gates import (
    GatePolicy,
    drifted_inputs,
    evaluate_gates,
    paired_loss_se,
    reference_metrics,
)
from credit.monitoring import build_references, feature_stability

GOOD = {"roc_auc": 0.78, "ks": 0.45, "brier": 0.18}


def _gates(**kw):
    base = dict(
        input_psi={"amount_sum": 0.02, "tenure_days": 0.05},
        iv={"amount_sum": 0.3, "tenure_days": 0.1},
        score_psi=0.04,
        challenger_metrics=dict(GOOD),
        champion_metrics=dict(GOOD),
        champion_version=3,
        reference_customers=1000,
    )
    base.update(kw)
    return evaluate_gates(**base)


def test_a_challenger_like_the_champion_passes() -> None:
    result = _gates()
    assert result.passed and result.hold is None and not result.drifted_inputs


def test_losing_on_the_reference_holdout_holds() -> None:
    worse = {"roc_auc": 0.72, "ks": 0.45, "brier": 0.18}
    result = _gates(challenger_metrics=worse)
    assert not result.passed
    assert "champion v3's reference holdout" in result.hold and "ROC-AUC 0.7200" in result.hold
    assert result.checks["reference_holdout"]["auc_loss"] == pytest.approx(0.06)


def test_a_loss_within_the_noise_of_a_small_holdout_passes() -> None:
    worse = {"roc_auc": 0.74, "ks": 0.45, "brier": 0.18}  # loss 0.04 > 0.02 tolerance
    assert not _gates(challenger_metrics=worse).passed
    noisy = {"auc_loss": 0.03, "ks_loss": 0.03, "brier_increase": 0.005}  # 2 SE = 0.06
    assert _gates(challenger_metrics=worse, loss_se=noisy).passed


def test_scores_that_differ_on_the_reference_holdout_hold_unless_too_few() -> None:
    assert "scores on champion v3's reference holdout" in _gates(score_psi=0.4).hold
    small = _gates(score_psi=0.4, reference_customers=80)
    assert small.passed and small.checks["score_psi_judged"] is False


def test_drift_counts_only_on_informative_inputs() -> None:
    policy = GatePolicy()
    psi = {"amount_sum": 1.2, "noise": 3.0, "unknown_iv": 0.5, "stable": 0.1}
    found = drifted_inputs(psi, {"amount_sum": 0.4, "noise": 0.001, "stable": 0.5}, policy)
    assert found == {"amount_sum": 1.2, "unknown_iv": 0.5}
    result = _gates(input_psi=psi, iv={"amount_sum": 0.4, "noise": 0.001, "stable": 0.5})
    assert "PSI > 0.25 on 2 informative inputs: amount_sum 1.20" in result.hold


def test_a_challenger_that_cannot_score_the_reference_is_held() -> None:
    assert "could not be evaluated" in _gates(challenger_metrics=None).hold


def test_amounts_times_five_drift_the_training_inputs() -> None:
    rng = np.random.default_rng(0)
    train = pd.DataFrame({"amount_sum": rng.lognormal(8, 1, 3000), "n_tx": rng.poisson(9, 3000)})
    refs = build_references(train)
    fresh = pd.DataFrame({"amount_sum": rng.lognormal(8, 1, 3000), "n_tx": rng.poisson(9, 3000)})
    x5 = fresh.assign(amount_sum=fresh["amount_sum"] * 5)
    iv = {"amount_sum": 0.3, "n_tx": 0.2}
    assert drifted_inputs(feature_stability(refs, fresh), iv, GatePolicy()) == {}
    assert list(drifted_inputs(feature_stability(refs, x5), iv, GatePolicy())) == ["amount_sum"]


def test_paired_bootstrap_se_shrinks_with_the_holdout() -> None:
    rng = np.random.default_rng(1)

    def se(n: int) -> float:
        y = rng.integers(0, 2, n)
        p1 = np.clip(0.5 * y + rng.normal(0.25, 0.2, n), 0, 1)
        p2 = np.clip(0.5 * y + rng.normal(0.25, 0.25, n), 0, 1)
        return paired_loss_se(y, p1, p2, n_boot=100)["auc_loss"]

    assert se(80) > 2 * se(2000) > 0
    assert reference_metrics(np.zeros(5), np.zeros(5)) is None
