"""Customer features: arithmetic on a hand-made frame, windows, fixed columns, snapshot schema."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pandera.errors
import pytest
from builders import cashback, clean_frame

from credit.features import (
    CATEGORICAL_FEATURES,
    FEATURE_COLUMNS,
    FEATURE_VERSION,
    NUMERIC_FEATURES,
    UNLISTED,
    align_features,
    build_customer_features,
    build_feature_snapshot,
    feature_columns,
    snapshot_as_of,
)
from schemas.features import validate_feature_snapshot
from schemas.vocab import CASHBACK_ACCOUNT

AS_OF = pd.Timestamp("2019-01-10T00:00:00Z")

# Local time is EAT (UTC+3). 2019-01-01 is a Tuesday.
HAND_ROWS = [
    # customer 1: three own transactions, one cash-back credit, one row at as_of (excluded)
    {
        "CustomerId": "CustomerId_1",
        "Amount": 1000.0,
        "TransactionStartTime": "2019-01-01T06:00:00Z",
    },
    cashback("CustomerId_1", "2019-01-01T06:00:30Z", 20.0),
    {
        "CustomerId": "CustomerId_1",
        "Amount": -500.0,
        "ProductCategory": "financial_services",
        "ProductId": "ProductId_15",
        "ChannelId": "ChannelId_2",
        "ProviderId": "ProviderId_4",
        "PricingStrategy": 4,
        "TransactionStartTime": "2019-01-03T18:00:00Z",
    },
    {
        "CustomerId": "CustomerId_1",
        "Amount": 20000.0,
        "Value": 21800.0,
        "ProductCategory": "utility_bill",
        "ProductId": "ProductId_21",
        "ProviderId": "ProviderId_1",
        "FraudResult": 1,
        "TransactionStartTime": "2019-01-05T00:00:00Z",
    },
    {"CustomerId": "CustomerId_1", "Amount": 7.0, "TransactionStartTime": "2019-01-10T00:00:00Z"},
    # customer 2: one transaction with levels outside the vocabularies
    {
        "CustomerId": "CustomerId_2",
        "AccountId": "AccountId_2",
        "Amount": 500.0,
        "ProductCategory": "tv",
        "ChannelId": "ChannelId_9",
        "ProviderId": "ProviderId_77",
        "PricingStrategy": 3,
        "TransactionStartTime": "2019-01-09T12:00:00Z",
    },
    # customer 3: active only long before the cutoff
    {
        "CustomerId": "CustomerId_3",
        "AccountId": "AccountId_3",
        "Amount": 300.0,
        "TransactionStartTime": "2018-12-01T10:00:00Z",
    },
    # customer 4: only cash-back rows (not customer activity)
    cashback("CustomerId_4", "2019-01-02T10:00:00Z", 5.0),
]


@pytest.fixture()
def hand() -> pd.DataFrame:
    return clean_frame(HAND_ROWS)


@pytest.fixture()
def feats(hand: pd.DataFrame) -> pd.DataFrame:
    return build_customer_features(hand, as_of=AS_OF)


def test_one_row_per_active_customer(feats: pd.DataFrame) -> None:
    assert list(feats.index) == ["CustomerId_1", "CustomerId_2", "CustomerId_3"]
    assert feats.index.name == "CustomerId"
    assert list(feats.columns) == list(FEATURE_COLUMNS)
    assert (feats.dtypes[list(NUMERIC_FEATURES)] == "float64").all()
    assert all(pd.api.types.is_string_dtype(feats[c]) for c in CATEGORICAL_FEATURES)


def test_counts_and_money(feats: pd.DataFrame) -> None:
    r = feats.loc["CustomerId_1"]
    amounts = np.array([1000.0, -500.0, 20000.0])
    values = np.array([1000.0, 500.0, 21800.0])
    assert (r.n_tx, r.n_debit, r.n_credit) == (3, 2, 1)
    assert r.share_credit_tx == pytest.approx(1 / 3)
    for name, arr in (("amount", amounts), ("value", values)):
        assert r[f"{name}_sum"] == pytest.approx(arr.sum())
        assert r[f"{name}_mean"] == pytest.approx(arr.mean())
        assert r[f"{name}_median"] == pytest.approx(np.median(arr))
        assert r[f"{name}_std"] == pytest.approx(arr.std(ddof=0))
        assert r[f"{name}_min"] == arr.min()
        assert r[f"{name}_max"] == arr.max()
    assert r.debit_sum == 21000 and r.debit_mean == 10500
    assert r.credit_sum == 500 and r.credit_mean == 500
    assert r.fee_count == 1 and r.fee_sum == 1800
    assert r.fraud_count == 1
    assert r.n_products == 3 and r.n_accounts == 1


def test_cashback_is_kept_apart(feats: pd.DataFrame) -> None:
    r = feats.loc["CustomerId_1"]
    assert r.cashback_count == 1 and r.cashback_sum == 20
    assert r.cashback_rate == pytest.approx(20 / 21000)
    # the cash-back credit is neither a credit nor a transaction of the customer
    assert r.n_credit == 1 and r.amount_min == -500
    assert "CustomerId_4" not in feats.index  # cash-back alone is not customer activity
    assert feats.loc["CustomerId_2", "cashback_count"] == 0


def test_timing(feats: pd.DataFrame) -> None:
    r = feats.loc["CustomerId_1"]
    assert r.recency_days == pytest.approx(5.0)  # last own tx 2019-01-05 00:00
    assert r.tenure_days == pytest.approx(8.75)  # first own tx 2019-01-01 06:00
    assert r.span_days == pytest.approx(3.75)
    assert r.active_days == 3 and r.tx_per_active_day == 1
    assert (r.n_tx_7d, r.n_tx_30d) == (2, 3)
    # one gap between the two purchases (debits): 2019-01-01 06:00 -> 2019-01-05 00:00
    assert r.gap_mean_days == pytest.approx(3.75) and r.gap_max_days == pytest.approx(3.75)
    assert r.gap_median_days == pytest.approx(3.75) and r.gap_std_days == 0
    assert math.isnan(feats.loc["CustomerId_2", "gap_mean_days"])  # a single purchase


def test_local_time_profile(feats: pd.DataFrame) -> None:
    r = feats.loc["CustomerId_1"]  # local 09:00 Tue, 21:00 Thu, 03:00 Sat
    assert r.share_tod_morning == pytest.approx(1 / 3)
    assert r.share_tod_evening == pytest.approx(1 / 3)
    assert r.share_tod_night == pytest.approx(1 / 3)
    assert r.share_tod_afternoon == 0
    assert r.share_dow_tue == r.share_dow_thu == r.share_dow_sat == pytest.approx(1 / 3)
    assert r.share_dow_mon == r.share_dow_wed == r.share_dow_fri == r.share_dow_sun == 0
    r2 = feats.loc["CustomerId_2"]  # 12:00 UTC = 15:00 EAT on Wednesday
    assert r2.share_tod_afternoon == 1 and r2.share_dow_wed == 1


def test_category_shares_and_top_levels(feats: pd.DataFrame) -> None:
    r = feats.loc["CustomerId_1"]
    assert r.share_category_airtime == pytest.approx(1 / 3)
    assert r.share_category_financial_services == pytest.approx(1 / 3)
    assert r.share_category_utility_bill == pytest.approx(1 / 3)
    assert r.share_channel_3 == pytest.approx(2 / 3) and r.share_channel_2 == pytest.approx(1 / 3)
    assert r.share_pricing_2 == pytest.approx(2 / 3) and r.share_pricing_4 == pytest.approx(1 / 3)
    assert r.top_channel == "ChannelId_3"
    assert r.top_category == "airtime"  # three-way tie: first level of the vocabulary
    assert r.top_provider == "ProviderId_1"
    for group in ("tod", "dow", "category", "channel", "provider", "pricing"):
        cols = [c for c in feats.columns if c.startswith(f"share_{group}_")]
        np.testing.assert_allclose(feats[cols].sum(axis=1), 1.0)


def test_unknown_levels_go_to_unlisted(feats: pd.DataFrame) -> None:
    r = feats.loc["CustomerId_2"]
    assert r.share_channel_unlisted == 1 and r.share_provider_unlisted == 1
    assert r.share_pricing_3 == 1 and r.share_category_tv == 1
    assert r.top_channel == UNLISTED and r.top_provider == UNLISTED
    assert r.top_category == "tv"


def test_window_bounds(hand: pd.DataFrame) -> None:
    week = build_customer_features(hand, as_of=AS_OF, window_days=7)
    assert "CustomerId_3" not in week.index  # only active 40 days earlier
    # window starts 2019-01-03 00:00: customer 1 keeps the credit and the utility bill
    assert week.loc["CustomerId_1", "n_tx"] == 2
    assert week.loc["CustomerId_1", "tenure_days"] == pytest.approx(6.25)
    # a transaction exactly at as_of is never used
    later = build_customer_features(hand, as_of=AS_OF + pd.Timedelta(seconds=1))
    assert later.loc["CustomerId_1", "n_tx"] == 4
    assert build_customer_features(hand, as_of=AS_OF).loc["CustomerId_1", "n_tx"] == 3


def test_rows_after_as_of_are_ignored(hand: pd.DataFrame) -> None:
    extra = clean_frame(
        HAND_ROWS
        + [
            {"CustomerId": "CustomerId_1", "Amount": 9e6, "TransactionStartTime": "2019-02-01"},
            {"CustomerId": "CustomerId_9", "Amount": 5.0, "TransactionStartTime": "2019-02-01"},
        ]
    )
    pd.testing.assert_frame_equal(
        build_customer_features(extra, as_of=AS_OF), build_customer_features(hand, as_of=AS_OF)
    )


def test_single_customer_matches_batch(hand: pd.DataFrame, feats: pd.DataFrame) -> None:
    """The API featurises one customer's rows with this code: same columns, same values."""
    for customer in feats.index:
        alone = build_customer_features(hand[hand["CustomerId"] == customer], as_of=AS_OF)
        pd.testing.assert_frame_equal(alone, feats.loc[[customer]])


def test_empty_window_gives_empty_frame_with_all_columns(hand: pd.DataFrame) -> None:
    empty = build_customer_features(hand, as_of=pd.Timestamp("2000-01-01", tz="UTC"))
    assert empty.empty and list(empty.columns) == list(FEATURE_COLUMNS)
    assert empty.index.name == "CustomerId"
    no_rows = build_customer_features(hand.iloc[:0], as_of=AS_OF)
    pd.testing.assert_frame_equal(no_rows, empty)
    validate_feature_snapshot(no_rows, columns=FEATURE_COLUMNS)


def test_order_and_time_unit_do_not_matter(hand: pd.DataFrame, feats: pd.DataFrame) -> None:
    shuffled = hand.sample(frac=1.0, random_state=3)
    pd.testing.assert_frame_equal(build_customer_features(shuffled, as_of=AS_OF), feats)
    ns = clean_frame(HAND_ROWS, unit="ns")
    pd.testing.assert_frame_equal(build_customer_features(ns, as_of=AS_OF), feats)
    naive_as_of = AS_OF.tz_localize(None)  # naive reference dates are read as UTC
    pd.testing.assert_frame_equal(build_customer_features(hand, as_of=naive_as_of), feats)


def test_missing_column_is_an_error(hand: pd.DataFrame) -> None:
    with pytest.raises(KeyError, match="Value"):
        build_customer_features(hand.drop(columns="Value"), as_of=AS_OF)
    with pytest.raises(ValueError):
        build_customer_features(hand, as_of=AS_OF, window_days=0)


def test_feature_columns_and_align(feats: pd.DataFrame) -> None:
    numeric, categorical = feature_columns(feats)
    assert numeric == list(NUMERIC_FEATURES) and categorical == list(CATEGORICAL_FEATURES)
    partial = feats[["n_tx", "recency_days", "extra"]] if "extra" in feats else feats[["n_tx"]]
    partial = partial.assign(junk=1.0)
    aligned = align_features(partial, ["recency_days", "share_dow_mon", "n_tx", "top_channel"])
    assert list(aligned.columns) == ["recency_days", "share_dow_mon", "n_tx", "top_channel"]
    assert aligned["recency_days"].isna().all()  # unknown: left to the fitted imputer
    assert (aligned["share_dow_mon"] == 0).all() and (aligned["top_channel"] == UNLISTED).all()
    pd.testing.assert_series_equal(aligned["n_tx"], feats["n_tx"])


def _random_clean(seed: int, n_customers: int = 40, n_rows: int = 1500) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    cats = ["airtime", "financial_services", "utility_bill", "tv", "movies"]
    rows = pd.DataFrame(
        {
            "CustomerId": [f"CustomerId_{i}" for i in rng.integers(0, n_customers, n_rows)],
            "AccountId": np.where(rng.random(n_rows) < 0.3, CASHBACK_ACCOUNT, "AccountId_7"),
            "Amount": np.round(rng.lognormal(7, 2, n_rows))
            * rng.choice([1, -1], n_rows, p=[0.7, 0.3]),
            "ProductCategory": rng.choice(cats, n_rows),
            "ChannelId": rng.choice(["ChannelId_1", "ChannelId_3", "ChannelId_8"], n_rows),
            "ProviderId": rng.choice(["ProviderId_1", "ProviderId_5", "ProviderId_9"], n_rows),
            "PricingStrategy": rng.choice([0, 2, 4, 7], n_rows),
            "FraudResult": (rng.random(n_rows) < 0.05).astype(int),
            "TransactionStartTime": pd.Timestamp("2019-01-01", tz="UTC")
            + pd.to_timedelta(rng.uniform(0, 60, n_rows), unit="D"),
        }
    )
    return clean_frame(rows.to_dict("records"))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_invariants_and_snapshot_schema_on_random_frames(seed: int) -> None:
    tx = _random_clean(seed)
    f = build_customer_features(tx, as_of=pd.Timestamp("2019-02-20", tz="UTC"), window_days=45)
    validate_feature_snapshot(f, columns=FEATURE_COLUMNS)
    assert (f.n_debit + f.n_credit <= f.n_tx).all()
    np.testing.assert_allclose(f.debit_sum - f.credit_sum, f.amount_sum, rtol=1e-9, atol=1e-6)
    assert (f.recency_days <= f.tenure_days).all() and (f.tenure_days <= 45).all()
    assert (f.active_days <= f.n_tx).all() and (f.amount_min <= f.amount_median).all()
    assert (f.n_tx_7d <= f.n_tx_30d).all() and (f.n_tx_30d <= f.n_tx).all()
    own = tx.loc[tx.AccountId != CASHBACK_ACCOUNT, "TransactionStartTime"]
    in_window = (own >= pd.Timestamp("2019-01-06", tz="UTC")) & (own < "2019-02-20")
    assert f.n_tx.sum() == in_window.sum()


def test_snapshot_schema_rejects_bad_rows(feats: pd.DataFrame) -> None:
    validate_feature_snapshot(feats)
    bad = feats.copy()
    bad.loc["CustomerId_1", "share_dow_mon"] = 1.5
    bad.loc["CustomerId_2", "n_tx"] = -1.0
    bad.loc["CustomerId_3", "amount_mean"] = np.inf
    bad = bad.rename(index={"CustomerId_3": "CustomerId_2"})
    with pytest.raises(pandera.errors.SchemaErrors) as err:
        validate_feature_snapshot(bad)
    failed = set(err.value.failure_cases["column"])
    assert {"share_dow_mon", "n_tx", "amount_mean", "CustomerId"} <= failed
    with pytest.raises(pandera.errors.SchemaErrors):  # a required column is missing
        validate_feature_snapshot(feats.drop(columns="recency_days"), columns=FEATURE_COLUMNS)
    with pytest.raises(pandera.errors.SchemaErrors):  # ids must be Xente customer ids
        validate_feature_snapshot(feats.rename(index={"CustomerId_1": "someone"}))


def test_feature_snapshot_as_of_the_day_after_the_data(hand: pd.DataFrame, tmp_path) -> None:
    assert snapshot_as_of(hand) == pd.Timestamp("2019-01-11T00:00:00Z")  # last row: Jan 10 00:00
    snap = build_feature_snapshot(hand, window_days=30)
    assert snap.attrs == {
        "as_of": "2019-01-11T00:00:00+00:00",
        "window_days": 30,
        "feature_version": FEATURE_VERSION,
    }
    assert snap.loc["CustomerId_1", "n_tx"] == 4  # the row at 2019-01-10 00:00 is included
    expected = build_customer_features(
        hand, as_of=pd.Timestamp(snap.attrs["as_of"]), window_days=30
    )
    pd.testing.assert_frame_equal(snap, expected)
    snap.to_parquet(tmp_path / "snapshot.parquet")  # the run also keeps it as Parquet
    back = pd.read_parquet(tmp_path / "snapshot.parquet")
    pd.testing.assert_frame_equal(validate_feature_snapshot(back, columns=FEATURE_COLUMNS), snap)
