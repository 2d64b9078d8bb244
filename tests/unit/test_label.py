"""Proxy label: RFM arithmetic, segmentation, the out-of-time window split and the leak guard."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from builders import cashback, clean_frame
from builders import tx as _tx
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.metrics import roc_auc_score
from threadpoolctl import threadpool_limits

from credit.features import build_customer_features
from credit.label import (
    LABEL_NAME,
    build_training_table,
    proxy_label,
    rfm_table,
    split_customers,
)
from schemas.vocab import CASHBACK_ACCOUNT

AS_OF = pd.Timestamp("2019-03-01T00:00:00Z")  # the last transaction of the hand frame
CUTOFF = AS_OF - pd.Timedelta(days=30)  # 2019-01-30


def _window_rows() -> list[dict]:
    rows = [
        # A: engaged before and after the cutoff
        _tx("CustomerId_1", "2018-12-10T10:00:00Z", 5000),
        _tx("CustomerId_1", "2019-01-20T10:00:00Z", 7000),
        _tx("CustomerId_1", "2019-02-05T10:00:00Z", 2000),
        cashback("CustomerId_1", "2019-02-05T10:00:20Z", 40),
        _tx("CustomerId_1", "2019-02-20T12:00:00Z", -300),
        _tx("CustomerId_1", "2019-02-25T00:00:00Z", 4000),
        # B: active before the cutoff only (silent in the performance window)
        _tx("CustomerId_2", "2019-01-10T08:00:00Z", 800),
        _tx("CustomerId_2", "2019-01-25T08:00:00Z", 800),
        # C: new after the cutoff: no history, excluded
        _tx("CustomerId_3", "2019-02-10T08:00:00Z", 50_000),
        # D: active only before the observation window (starts 2018-12-01): dormant, excluded
        _tx("CustomerId_4", "2018-11-20T08:00:00Z", 900),
        _tx("CustomerId_4", "2019-02-15T08:00:00Z", 900),
        # E, F: more customers so three segments exist
        _tx("CustomerId_5", "2019-01-29T23:59:59Z", 300),
        _tx("CustomerId_5", "2019-01-30T00:00:00Z", 300),  # exactly at the cutoff: label side
        _tx("CustomerId_6", "2018-12-30T08:00:00Z", 100_000),
        _tx("CustomerId_6", "2019-02-27T08:00:00Z", 100_000),
        _tx("CustomerId_6", "2019-02-28T08:00:00Z", 100_000),
        _tx("CustomerId_6", "2019-03-01T00:00:00Z", 100_000),
    ]
    return rows


@pytest.fixture()
def window_tx() -> pd.DataFrame:
    return clean_frame(_window_rows())


def test_rfm_table_arithmetic(window_tx: pd.DataFrame) -> None:
    rfm = rfm_table(window_tx, start=CUTOFF, end=AS_OF)
    a = rfm.loc["CustomerId_1"]
    # own rows in [cutoff, as_of]: 2000 (Feb 5), -300 (Feb 20), 4000 (Feb 25); cash-back excluded
    assert a.frequency == 3 and a.monetary == 6000
    assert a.recency_days == pytest.approx(4.0)
    assert rfm.loc["CustomerId_6"].recency_days == 0  # the end is inclusive
    assert rfm.loc["CustomerId_5"].frequency == 1  # the start is inclusive
    assert "CustomerId_2" not in rfm.index
    both = rfm_table(
        window_tx, start=CUTOFF, end=AS_OF, customers=pd.Index(["CustomerId_2", "CustomerId_1"])
    )
    assert list(both.index) == ["CustomerId_2", "CustomerId_1"]
    assert tuple(both.loc["CustomerId_2"]) == (30.0, 0.0, 0.0)  # absent: window length, 0, 0


def test_out_of_time_windows(window_tx: pd.DataFrame) -> None:
    table = build_training_table(window_tx, observation_days=60, performance_days=30)
    assert table.as_of == AS_OF  # from the data's last timestamp, not the clock
    assert table.cutoff == CUTOFF
    assert list(table.X.index) == ["CustomerId_1", "CustomerId_2", "CustomerId_5", "CustomerId_6"]
    assert table.report["excluded_no_history"] == 1  # CustomerId_3
    assert table.report["excluded_dormant"] == 1  # CustomerId_4
    assert table.report["n_customers"] == 4 and table.report["n_customers_seen"] == 6
    assert table.report["windows"]["observation"][0].startswith("2018-12-01")
    # features only from before the cutoff: A has two purchases then, E one (23:59:59)
    assert table.X.loc["CustomerId_1", "n_tx"] == 2
    assert table.X.loc["CustomerId_5", "n_tx"] == 1
    assert table.X.loc["CustomerId_6", "recency_days"] == pytest.approx(30 + 16 / 24)
    # the label comes from the performance window only
    assert tuple(table.rfm.loc["CustomerId_2", ["recency_days", "frequency", "monetary"]]) == (
        30.0,
        0.0,
        0.0,
    )
    assert table.y.name == LABEL_NAME and table.y.index.equals(table.X.index)
    assert table.y.loc["CustomerId_2"] == 1 and table.y.loc["CustomerId_6"] == 0
    assert set(table.rfm.columns) >= {"segment", LABEL_NAME}


def test_same_window_mode_uses_everything(window_tx: pd.DataFrame) -> None:
    table = build_training_table(window_tx, mode="same_window")
    assert len(table.X) == 6 and table.report["excluded_no_history"] == 0
    assert table.X.loc["CustomerId_6", "n_tx"] == 4  # includes the last transaction
    with pytest.raises(ValueError):
        build_training_table(window_tx, mode="peeking")


def test_window_lengths_are_parameters(window_tx: pd.DataFrame) -> None:
    table = build_training_table(window_tx, observation_days=50, performance_days=20)
    assert table.cutoff == AS_OF - pd.Timedelta(days=20)
    assert table.report["windows"]["observation_days"] == 50
    assert list(table.X.index) == ["CustomerId_1", "CustomerId_2", "CustomerId_5", "CustomerId_6"]
    assert table.X["tenure_days"].max() <= 50
    with pytest.raises(ValueError, match="distinct"):  # two RFM profiles cannot make 3 segments
        build_training_table(window_tx, observation_days=40, performance_days=20)


def _rfm_groups(sizes: tuple[int, int, int], seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    parts = []
    for size, (r, f, m) in zip(sizes, ((1, 40, 2e5), (10, 6, 2e4), (29, 0.3, 50)), strict=True):
        parts.append(
            pd.DataFrame(
                {
                    "recency_days": np.clip(rng.normal(r, 1, size), 0, 30),
                    "frequency": rng.poisson(f, size).astype(float),
                    "monetary": m * rng.lognormal(0, 0.2, size),
                }
            )
        )
    rfm = pd.concat(parts, ignore_index=True)
    rfm.index = pd.Index([f"CustomerId_{i}" for i in range(len(rfm))], name="CustomerId")
    return rfm


def test_proxy_label_picks_the_least_engaged_segment() -> None:
    rfm = _rfm_groups((50, 30, 20))
    res = proxy_label(rfm, seed=42)
    assert res.labels.name == LABEL_NAME and res.labels.dtype == np.int64
    assert res.labels.iloc[80:].eq(1).all() and res.labels.iloc[:80].eq(0).all()
    assert res.report["segment_sizes"] == {"0": 50, "1": 30, "2": 20}
    assert res.report["high_risk_share"] == pytest.approx(0.2)
    assert not res.report["high_risk_share_flag"]
    assert res.report["stability"]["ari_min"] == pytest.approx(1.0)
    profile = res.report["segment_profile"]
    assert (
        profile["2"]["recency_days"] > profile["1"]["recency_days"] > profile["0"]["recency_days"]
    )
    again = proxy_label(rfm, seed=42)
    pd.testing.assert_series_equal(res.labels, again.labels)


def test_proxy_label_flags_extreme_shares() -> None:
    small = proxy_label(_rfm_groups((80, 40, 4)))
    assert small.report["high_risk_share"] < 0.05 and small.report["high_risk_share_flag"]
    assert "outside" in small.report["warning"]
    with pytest.raises(ValueError):
        proxy_label(_rfm_groups((1, 1, 0)))


def test_split_customers_is_disjoint_and_stratified() -> None:
    X = pd.DataFrame({"f": np.arange(200.0)}, index=[f"CustomerId_{i}" for i in range(200)])
    y = pd.Series((np.arange(200) % 4 == 0).astype(int), index=X.index)
    X_tr, X_te, y_tr, y_te = split_customers(X, y, test_size=0.2, seed=1)
    assert X_tr.index.intersection(X_te.index).empty
    assert len(X_te) == 40 and y_te.mean() == pytest.approx(0.25)
    assert y_tr.index.equals(X_tr.index)
    with pytest.raises(ValueError):
        split_customers(pd.concat([X, X.iloc[:1]]), pd.concat([y, y.iloc[:1]]))


def test_no_feature_reads_the_performance_window(demo_raw: pd.DataFrame) -> None:
    """Rewrite everything at or after the cutoff: features must not move, labels must."""
    as_of = demo_raw["TransactionStartTime"].max()
    base = build_training_table(demo_raw, as_of=as_of)
    after = demo_raw["TransactionStartTime"] >= base.cutoff
    rng = np.random.default_rng(0)
    changed = demo_raw.copy()
    changed.loc[after, ["Amount", "Value"]] *= 7.0
    changed.loc[after, "ProductCategory"] = "tv"
    changed.loc[after, "FraudResult"] = 1
    drop = after.to_numpy() & (rng.random(len(changed)) < 0.5)
    changed = changed.loc[~drop]
    newcomer = changed.loc[changed["TransactionStartTime"] >= base.cutoff].head(200).copy()
    newcomer["CustomerId"] = base.X.index[:200].to_numpy()  # existing customers, new activity
    changed = pd.concat([changed, newcomer]).sort_values("TransactionStartTime", kind="stable")
    perturbed = build_training_table(changed, as_of=as_of)
    pd.testing.assert_frame_equal(perturbed.X, base.X)
    assert not perturbed.y.equals(base.y)  # the label does come from after the cutoff
    # and the features equal those computed on the pre-cutoff rows alone
    before = demo_raw.loc[~after.to_numpy()]
    alone = build_customer_features(before, as_of=base.cutoff, window_days=60)
    pd.testing.assert_frame_equal(alone, base.X)
    assert not (demo_raw.loc[after.to_numpy(), "AccountId"] == CASHBACK_ACCOUNT).all()


def _auc(table) -> float:
    X = pd.get_dummies(
        table.X, columns=["top_category", "top_channel", "top_provider"], dtype=float
    )
    X_tr, X_te, y_tr, y_te = split_customers(X, table.y, seed=0)
    with threadpool_limits(limits=1):
        model = HistGradientBoostingClassifier(random_state=0).fit(X_tr, y_tr)
        return float(roc_auc_score(y_te, model.predict_proba(X_te)[:, 1]))


def test_leak_guard_on_the_demo_set(demo_raw: pd.DataFrame) -> None:
    """Out-of-time features predict the next month's disengagement; they must not recite it."""
    oot = build_training_table(demo_raw)
    naive = build_training_table(demo_raw, mode="same_window")
    auc_oot, auc_naive = _auc(oot), _auc(naive)
    print(
        f"\nROC-AUC on held-out customers: out_of_time={auc_oot:.4f} "
        f"(n={len(oot.X)}, high-risk {oot.y.mean():.1%}); "
        f"naive same_window={auc_naive:.4f} (n={len(naive.X)}, high-risk {naive.y.mean():.1%})"
    )
    assert auc_oot < 0.99, "the default label is being relearned from its own inputs"
    assert auc_oot > 0.6, "the out-of-time label should still be learnable"
    assert auc_naive > auc_oot  # the naive design scores higher because it leaks
    assert 0.05 <= oot.y.mean() <= 0.60 and not oot.report["label"]["high_risk_share_flag"]
    assert oot.report["excluded_no_history"] > 0
