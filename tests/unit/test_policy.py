"""Loan policy: configuration, spending capacity, expected loss and monotonicity."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from credit.policy import CapacityConfig, LoanPolicy, spending_capacity
from credit.scorecard import Scorecard

POLICY = LoanPolicy.from_toml()
SC = Scorecard.from_toml()


def test_config_loaded_and_consistent_with_scorecard():
    assert POLICY.lgd == 0.65 and POLICY.min_amount == 5000 and POLICY.currency == "UGX"
    assert [b.name for b in POLICY.bands] == ["A", "B", "C", "D", "E"]
    assert POLICY.band_floors == SC.bands
    assert not POLICY.bands[-1].approve
    assert LoanPolicy.from_dict(POLICY.to_dict()) == POLICY


def test_recommend_by_hand():
    # band A: 1.5 x 100,000 = 150,000; band C: 0.6 x 100,000 = 60,000;
    # band B: 1.0 x 900,000 capped at 500,000; band D: 0.3 x 10,000 = 3,000 < 5,000 -> declined;
    # band E: declined whatever the spend
    pd_ = np.array([0.02, 0.2, 0.08, 0.4, 0.7])
    score = SC.score(pd_)
    assert SC.band(score).tolist() == ["A", "C", "B", "D", "E"]
    spend = np.array([100_000, 100_000, 900_000, 10_000, 1_000_000])
    rec = POLICY.recommend(pd_, score, spend)
    assert list(rec.columns) == ["band", "approved", "amount", "duration_days", "expected_loss"]
    assert rec["approved"].tolist() == [True, True, True, False, False]
    assert rec["amount"].tolist() == [150_000, 60_000, 500_000, 0, 0]
    assert rec["duration_days"].tolist() == [90, 30, 60, 0, 0]
    np.testing.assert_allclose(rec["expected_loss"], pd_ * 0.65 * rec["amount"])
    # amounts are rounded down to 1,000 UGX
    odd = POLICY.recommend(np.array([0.02]), np.array([600]), np.array([12_345.0]))
    assert odd["amount"].item() == 18_000  # 1.5 x 12,345 = 18,517.5


@given(
    st.lists(
        st.tuples(st.floats(0.0, 1.0), st.floats(0.0, 1.0), st.floats(0, 5e6)),
        min_size=1,
        max_size=40,
    )
)
def test_riskier_never_gets_more_amount_or_duration(rows):
    p1, p2, spend = (np.array(c, dtype=float) for c in zip(*rows, strict=True))
    safer_pd, riskier_pd = np.minimum(p1, p2), np.maximum(p1, p2)
    safer = POLICY.recommend(safer_pd, SC.score(safer_pd), spend)
    riskier = POLICY.recommend(riskier_pd, SC.score(riskier_pd), spend)
    assert np.all(riskier["amount"].to_numpy() <= safer["amount"].to_numpy())
    assert np.all(riskier["duration_days"].to_numpy() <= safer["duration_days"].to_numpy())
    assert np.all(~riskier["approved"].to_numpy() | safer["approved"].to_numpy())
    # and more spending never lowers the offer at the same score
    more = POLICY.recommend(safer_pd, SC.score(safer_pd), spend * 2)
    assert np.all(more["amount"].to_numpy() >= safer["amount"].to_numpy())
    assert np.all(safer["amount"] >= 0) and np.all(safer["expected_loss"] >= 0)


def test_non_monotone_config_rejected():
    data = POLICY.to_dict()
    data["bands"][2]["max_amount"] = 10_000_000  # C would out-lend B
    with pytest.raises(ValueError, match="not monotone"):
        LoanPolicy.from_dict(data)
    data = POLICY.to_dict()
    data["bands"][1]["approve"] = False  # B declined but C approved
    with pytest.raises(ValueError, match="not monotone"):
        LoanPolicy.from_dict(data)
    with pytest.raises(ValueError):
        LoanPolicy.from_dict({**POLICY.to_dict(), "lgd": 1.5})


def test_spending_capacity_columns_and_fallbacks(caplog):
    X = pd.DataFrame(
        {"debit_sum": [90_000.0, np.nan, -5.0], "window_days": [30.0, 60.0, 0.0]},
        index=["a", "b", "c"],
    )
    cap = spending_capacity(X, CapacityConfig(spend_columns=("nope", "debit_sum")))
    assert cap.index.tolist() == ["a", "b", "c"]
    assert cap.tolist() == [90_000.0, 0.0, 0.0]  # 90,000 over 30 days; NaN and negative -> 0
    no_window = spending_capacity(X[["debit_sum"]], CapacityConfig(default_window_days=90))
    assert no_window.iloc[0] == pytest.approx(30_000.0)
    with caplog.at_level("WARNING"):
        zero = spending_capacity(X[["window_days"]], POLICY.capacity)
    assert (zero == 0).all() and "no spend column" in caplog.text
    rec = POLICY.recommend(np.full(3, 0.01), np.full(3, 700), zero.to_numpy())
    assert not rec["approved"].any() and (rec["amount"] == 0).all()
