"""PD -> 300-850 score mapping: anchor, points to double the odds, monotonicity, bands."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from credit.scorecard import Scorecard

SC = Scorecard()


def test_factor_and_offset_by_hand():
    assert SC.factor == pytest.approx(20 / math.log(2))  # 28.8539...
    assert SC.offset == pytest.approx(600 - 20 / math.log(2) * math.log(50))  # 487.12...


def test_anchor_50_to_1_good_bad_is_600():
    assert SC.raw_score(1 / 51) == pytest.approx(600.0)
    assert SC.score(1 / 51) == 600


def test_doubling_the_odds_adds_pdo_points():
    for odds in (0.5, 1.0, 3.0, 50.0):
        pd_a, pd_b = 1 / (1 + odds), 1 / (1 + 2 * odds)
        assert SC.raw_score(pd_b) - SC.raw_score(pd_a) == pytest.approx(20.0)
    assert SC.raw_score(0.5) == pytest.approx(SC.offset)  # even odds


def test_clipping_and_integer_output():
    s = SC.score(np.array([0.0, 1e-9, 0.5, 1 - 1e-9, 1.0]))
    assert s.dtype == np.int64
    assert s.tolist() == [850, 850, 487, 300, 300]
    assert SC.score(0.9999).item() == 300


@given(st.lists(st.floats(0, 1, allow_nan=False), min_size=2, max_size=50))
def test_score_is_monotone_decreasing_in_pd(pds):
    p = np.sort(np.array(pds))
    s = SC.score(p)
    assert np.all(np.diff(s) <= 0)
    assert s.min() >= 300 and s.max() <= 850


@given(st.floats(310, 840))
def test_pd_from_score_inverts_score(score):
    assert SC.raw_score(SC.pd_from_score(score)) == pytest.approx(score, abs=1e-6)


def test_bands_cutoffs_from_config():
    sc = Scorecard.from_toml()
    assert sc.bands == {"A": 580, "B": 550, "C": 520, "D": 490, "E": 300}
    assert (sc.base_score, sc.base_odds, sc.pdo) == (600, 50, 20)
    assert sc.band(850) == "A" and sc.band(580) == "A"
    assert sc.band(579) == "B" and sc.band(550) == "B"
    assert sc.band(520) == "C" and sc.band(519) == "D"
    assert sc.band(489) == "E" and sc.band(300) == "E"
    assert sc.band(np.array([600, 560, 530, 500, 400])).tolist() == ["A", "B", "C", "D", "E"]
    # bands are ordered: a lower PD never lands in a worse band
    order = {b: i for i, b in enumerate(sc.bands)}
    ranks = [order[b] for b in sc.band(sc.score(np.linspace(0.001, 0.999, 200)))]
    assert ranks == sorted(ranks)


def test_round_trip_dict_and_invalid_configs():
    assert Scorecard.from_dict(SC.to_dict()) == SC
    with pytest.raises(ValueError):
        Scorecard(pdo=0)
    with pytest.raises(ValueError):
        Scorecard(bands={"A": 500, "B": 600, "C": 300})
    with pytest.raises(ValueError):
        Scorecard(bands={"A": 600, "B": 400})  # scores 300-399 would have no band
