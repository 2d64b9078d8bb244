"""Weight of evidence and information value, checked against hand computations."""

from __future__ import annotations

import math
import pickle

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline

from credit.woe import MISSING, OTHER, WoEEncoder, iv_strength, iv_table, woe_table


def _woe(good: float, bad: float, goods: float, bads: float, k: int, s: float) -> float:
    return math.log(((good + s) / (goods + s * k)) / ((bad + s) / (bads + s * k)))


def _iv(good: float, bad: float, goods: float, bads: float, k: int, s: float) -> float:
    dg, db = (good + s) / (goods + s * k), (bad + s) / (bads + s * k)
    return (dg - db) * math.log(dg / db)


X_HAND = pd.DataFrame({"x": [1.0, 2, 3, 4, 5, 6, 7, 8]})
Y_HAND = pd.Series([0, 0, 0, 1, 0, 1, 1, 1])


def test_numeric_two_bins_by_hand() -> None:
    enc = WoEEncoder(n_bins=2, min_bin_share=0.0, smoothing=0.5).fit(X_HAND, Y_HAND)
    spec = enc.bins_["x"]
    assert spec["edges"] == [4.5]  # the median of 1..8
    # bin (-inf, 4.5]: 3 good, 1 bad; bin (4.5, inf): 1 good, 3 bad; 4 goods, 4 bads, k = 2
    w1, w2 = _woe(3, 1, 4, 4, 2, 0.5), _woe(1, 3, 4, 4, 2, 0.5)
    assert w1 == pytest.approx(math.log(0.7 / 0.3))
    assert spec["woe"] == pytest.approx([w1, w2])
    assert enc.iv_["x"] == pytest.approx(_iv(3, 1, 4, 4, 2, 0.5) + _iv(1, 3, 4, 4, 2, 0.5))
    assert enc.iv_["x"] == pytest.approx(2 * 0.4 * math.log(0.7 / 0.3))
    out = enc.transform(pd.DataFrame({"x": [0.0, 4.5, 4.6, 100.0]}))
    np.testing.assert_allclose(out[:, 0], [w1, w1, w2, w2])  # intervals closed on the right


def test_no_smoothing_gives_the_textbook_values() -> None:
    enc = WoEEncoder(n_bins=2, min_bin_share=0.0, smoothing=0.0).fit(X_HAND, Y_HAND)
    assert enc.bins_["x"]["woe"] == pytest.approx([math.log(3), -math.log(3)])
    assert enc.iv_["x"] == pytest.approx(2 * (0.75 - 0.25) * math.log(3))


def test_missing_values_form_their_own_bin() -> None:
    X = pd.DataFrame({"x": [1.0, 2, 3, 4, np.nan, np.nan, np.nan]})
    y = [0, 0, 1, 1, 1, 1, 0]
    enc = WoEEncoder(n_bins=2, min_bin_share=0.0, smoothing=0.5).fit(X, y)
    spec = enc.bins_["x"]
    assert spec["labels"][-1] == MISSING and spec["count"] == [2, 2, 3]
    # goods 3 (two in bin 0, one NaN), bads 4; k = 3
    expected = [_woe(2, 0, 3, 4, 3, 0.5), _woe(0, 2, 3, 4, 3, 0.5), _woe(1, 2, 3, 4, 3, 0.5)]
    assert spec["woe"] == pytest.approx(expected)
    out = enc.transform(pd.DataFrame({"x": [np.nan, 1.5]}))
    np.testing.assert_allclose(out[:, 0], [expected[2], expected[0]])
    # a column without missing values in fit maps a later NaN to 0 (no evidence)
    plain = WoEEncoder(n_bins=2, min_bin_share=0.0).fit(X_HAND, Y_HAND)
    assert plain.transform(pd.DataFrame({"x": [np.nan]}))[0, 0] == 0.0


def test_categorical_levels_rare_pooling_and_unknown() -> None:
    X = pd.DataFrame({"c": ["a"] * 5 + ["b"] * 4 + ["z"]})
    y = [0, 0, 0, 0, 1, 1, 1, 0, 0, 1]
    enc = WoEEncoder(min_bin_share=0.15, smoothing=0.5).fit(X, y)
    spec = enc.bins_["c"]
    assert spec["labels"] == ["a", "b", OTHER] and spec["rare_levels"] == ["z"]
    # goods 6, bads 4, k = 3: a 4g/1b, b 2g/2b, other 0g/1b
    expected = [_woe(4, 1, 6, 4, 3, 0.5), _woe(2, 2, 6, 4, 3, 0.5), _woe(0, 1, 6, 4, 3, 0.5)]
    assert spec["woe"] == pytest.approx(expected)
    out = enc.transform(pd.DataFrame({"c": ["b", "z", "never-seen", None]}))
    np.testing.assert_allclose(out[:, 0], [expected[1], expected[2], 0.0, 0.0])
    assert enc.iv_["c"] == pytest.approx(
        _iv(4, 1, 6, 4, 3, 0.5) + _iv(2, 2, 6, 4, 3, 0.5) + _iv(0, 1, 6, 4, 3, 0.5)
    )


def test_small_bins_are_merged() -> None:
    rng = np.random.default_rng(0)
    x = np.concatenate([np.zeros(900), rng.uniform(1, 100, 100)])  # 90% ties at zero
    y = (rng.random(1000) < 0.3).astype(int)
    enc = WoEEncoder(n_bins=10, min_bin_share=0.05).fit(pd.DataFrame({"x": x}), y)
    counts = enc.bins_["x"]["count"]
    assert sum(counts) == 1000 and min(counts) >= 50
    assert enc.bins_["x"]["edges"][0] == 0.0 and counts[0] == 900


def test_constant_and_single_level_columns_carry_no_information() -> None:
    X = pd.DataFrame({"k": [3.0] * 6, "s": ["u"] * 6})
    enc = WoEEncoder().fit(X, [0, 1, 0, 1, 1, 0])
    assert enc.iv_ == {"k": 0.0, "s": 0.0}
    assert (enc.transform(X) == 0).all()


def test_tables_and_strength_bands() -> None:
    X = pd.concat([X_HAND, pd.DataFrame({"c": list("aabbbbaa")})], axis=1)
    table = woe_table(X, Y_HAND, n_bins=2, min_bin_share=0.0)
    columns = ["feature", "bin", "count", "bad", "good", "bad_rate", "woe", "iv_contribution"]
    assert list(table.columns) == columns
    first = table.iloc[0]
    assert tuple(first[["feature", "bin", "count", "bad", "good"]]) == ("x", "(-inf, 4.5]", 4, 1, 3)
    assert first.bad_rate == 0.25
    ivs = iv_table(X, Y_HAND, n_bins=2, min_bin_share=0.0)
    assert list(ivs.feature) == ["x", "c"]  # highest IV first
    assert ivs.iv.iloc[0] == pytest.approx(table[table.feature == "x"].iv_contribution.sum())
    assert list(ivs.strength) == [iv_strength(v) for v in ivs.iv]
    bands = [iv_strength(v) for v in (0.0, 0.019, 0.02, 0.099, 0.1, 0.29, 0.3, 0.49, 0.5, 3.0)]
    assert bands == ["useless", "useless", "weak", "weak", "medium", "medium",
                     "strong", "strong", "suspicious", "suspicious"]  # fmt: skip


def test_input_validation() -> None:
    with pytest.raises(ValueError, match="both classes"):
        WoEEncoder().fit(X_HAND, [0] * 8)
    with pytest.raises(ValueError, match="binary"):
        WoEEncoder().fit(X_HAND, [0, 1, 2, 0, 1, 0, 1, 0])
    enc = WoEEncoder().fit(X_HAND, Y_HAND)
    with pytest.raises(ValueError):
        enc.transform(pd.DataFrame({"other": [1.0]}))


def test_sklearn_contract_output_and_persistence() -> None:
    rng = np.random.default_rng(1)
    n = 600
    X = pd.DataFrame(
        {
            "num": rng.normal(size=n),
            "gappy": np.where(rng.random(n) < 0.2, np.nan, rng.exponential(size=n)),
            "cat": rng.choice(["p", "q", "r"], n),
        }
    )
    y = (X["num"] + rng.normal(size=n) > 0.5).astype(int)
    enc = WoEEncoder(n_bins=5)
    assert clone(enc).get_params() == enc.get_params()
    enc.fit(X, y)
    assert list(enc.get_feature_names_out()) == ["num", "gappy", "cat"]
    frame = clone(enc).set_output(transform="pandas").fit(X, y).transform(X)
    assert list(frame.columns) == ["num", "gappy", "cat"] and frame.index.equals(X.index)
    assert enc.iv_["num"] > enc.iv_["cat"]  # the signal is in "num"

    # works on a numpy array too
    np.testing.assert_allclose(
        WoEEncoder(n_bins=5).fit(X[["num"]].to_numpy(), y).transform(X[["num"]].to_numpy()),
        enc.transform(X)[:, [0]],
    )

    pipe = Pipeline(
        [
            ("woe", ColumnTransformer([("woe", WoEEncoder(n_bins=5), ["num", "gappy", "cat"])])),
            ("lr", LogisticRegression()),
        ]
    ).fit(X, y)
    assert pipe.predict_proba(X).shape == (n, 2)

    restored = pickle.loads(pickle.dumps(enc))
    np.testing.assert_array_equal(restored.transform(X), enc.transform(X))
    import skops.io as sio  # a runtime dependency: never skipped

    blob = sio.dumps(pipe)
    untrusted = sio.get_untrusted_types(data=blob)
    assert set(untrusted) <= {"credit.woe.WoEEncoder"}
    again = sio.loads(blob, trusted=untrusted)
    np.testing.assert_allclose(again.predict_proba(X), pipe.predict_proba(X))
