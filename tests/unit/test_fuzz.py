"""Property-based tests (hypothesis) of the two pieces every input goes through: ingestion and the
feature code. Deterministic (``derandomize=True``, no example database) and bounded
(``max_examples``); the API's own fuzzing is schemathesis in tests/integration/test_api_schemathesis.py.

Ingestion: files mixing real rows with corrupted cells (and shuffled or extra columns) never
raise (a missing column raises ``IngestError`` and nothing else), every row ends up exactly once
among the valid or the quarantined ones, each corrupted row is quarantined and every untouched row
comes out valid and unchanged.

Features: small random clean transaction frames give one row per customer with an own
transaction in the window, shares in [0, 1] summing to 1 per vocabulary, non-negative integer
counts, no infinity, counts equal to an independent count, and the same result for the same input
and for any order of its rows.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from builders import SAMPLE_HEAD
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from credit.clean import STRING_COLUMNS
from credit.features import (
    CATEGORICAL_FEATURES,
    NUMERIC_FEATURES,
    build_customer_features,
)
from credit.ingest import IngestError, ingest
from schemas import vocab

SETTINGS = {
    "derandomize": True,
    "database": None,
    "deadline": None,
    "suppress_health_check": [HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
}

# =============================================================================================
# Ingestion
# =============================================================================================

# Values no column accepts (numbers, timestamps, ids and categories alike), so a corrupted row is
# certainly bad and an untouched one certainly good.
BAD_VALUES = (
    "",
    "   ",
    "abc",
    "NaN",
    "inf",
    "-1e99",
    "1e12",
    "1,5",
    "0x1F",
    "null",
    "2099-01-01T00:00:00Z",
    "1970-01-01T00:00:00Z",
    "'; DROP TABLE model_versions;--",
    "<script>alert(1)</script>",
    "=cmd|' /C calc'!A0",
    "CustomerId_12\u202e",
    "\u0664\u0662",
    "ÿ\u00e9\u4e2d\U0001f4b0",
    '"quoted, with comma"',
    "line\nbreak",
)


@pytest.fixture(scope="module")
def pool() -> tuple[pd.DataFrame, pd.DataFrame]:
    """The 54 real rows as strings, and their typed form by TransactionId (the reference)."""
    raw = pd.read_csv(SAMPLE_HEAD, dtype=str, keep_default_na=False)
    return raw, ingest(SAMPLE_HEAD).data.set_index("TransactionId")


@st.composite
def corrupted_files(draw: st.DrawFn) -> dict:
    """Which real rows, which cells broken (with what), which column layout."""
    rows = draw(st.lists(st.integers(0, 53), min_size=1, max_size=30, unique=True))
    cells = draw(
        st.lists(
            st.tuples(
                st.integers(0, len(rows) - 1),
                st.sampled_from(vocab.RAW_COLUMNS),
                st.sampled_from(BAD_VALUES),
            ),
            max_size=12,
        )
    )
    order = draw(st.permutations(vocab.RAW_COLUMNS))
    extra = draw(st.booleans())
    drop = (
        draw(st.one_of(st.none(), st.sampled_from(vocab.RAW_COLUMNS)))
        if draw(st.integers(0, 9)) == 0
        else None
    )
    return {"rows": rows, "cells": cells, "order": list(order), "extra": extra, "drop": drop}


@settings(max_examples=70, **SETTINGS)
@given(spec=corrupted_files())
def test_ingestion_keeps_every_row_exactly_once(
    pool: tuple[pd.DataFrame, pd.DataFrame], spec: dict
) -> None:
    raw, reference = pool
    frame = raw.iloc[spec["rows"]].reset_index(drop=True)
    for pos, column, value in spec["cells"]:
        frame.loc[pos, column] = value
    frame = frame[spec["order"]]
    if spec["extra"]:
        frame["Comment"] = "free text, ignored"
    if spec["drop"]:
        frame = frame.drop(columns=[spec["drop"]])
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "fuzz.csv"
        frame.to_csv(path, index=False)
        if spec["drop"]:
            with pytest.raises(IngestError, match="required column"):
                ingest(path, max_bad_share=1.0)
            return
        result = ingest(path, max_bad_share=1.0)
    n = len(frame)
    broken = {pos for pos, _, _ in spec["cells"]}
    assert result.report.rows == n
    assert result.report.valid + result.report.quarantined == n
    assert sorted(result.quarantined_rows["row_number"]) == sorted(p + 1 for p in broken)
    assert set(result.quarantine["row_number"]) == {p + 1 for p in broken}
    untouched = [raw.loc[r, "TransactionId"] for i, r in enumerate(spec["rows"]) if i not in broken]
    got = result.data.set_index("TransactionId")
    assert sorted(got.index) == sorted(untouched)
    pd.testing.assert_frame_equal(got.loc[untouched], reference.loc[untouched])


# =============================================================================================
# Features
# =============================================================================================

AS_OF = pd.Timestamp("2019-02-13T00:00:00Z")
_SHARE_GROUPS = ("tod", "dow", "category", "channel", "provider", "pricing")
_STRINGS = STRING_COLUMNS


@st.composite
def transactions(draw: st.DrawFn) -> tuple[pd.DataFrame, int | None]:
    """A clean-transactions frame (the common contract) of 1-4 customers, and a window."""
    n_customers = draw(st.integers(1, 4))
    n = draw(st.integers(1, 25))
    records = []
    for i in range(n):
        customer = draw(st.integers(0, n_customers - 1))
        cashback = draw(st.integers(0, 5)) == 0
        amount = draw(
            st.one_of(
                st.just(0.0),
                st.floats(-5e4, 5e4, allow_nan=False, allow_infinity=False).map(
                    lambda v: round(v, 2)
                ),
            )
        )
        fee = draw(st.sampled_from([0.0, 0.0, 0.0, 0.5, 250.0]))
        seconds = draw(st.integers(-200 * 86_400, 86_400))  # some after as_of: never read
        records.append(
            {
                "TransactionId": f"TransactionId_{i}",
                "BatchId": f"BatchId_{i}",
                "AccountId": vocab.CASHBACK_ACCOUNT if cashback else f"AccountId_{customer}",
                "SubscriptionId": f"SubscriptionId_{customer}",
                "CustomerId": f"CustomerId_{customer}",
                "ProviderId": f"ProviderId_{draw(st.integers(1, 9))}",
                "ProductId": f"ProductId_{draw(st.integers(1, 25))}",
                "ProductCategory": draw(st.sampled_from(vocab.PRODUCT_CATEGORIES)),
                "ChannelId": draw(st.sampled_from(vocab.CHANNELS)),
                "Amount": amount,
                "Value": abs(amount) + fee,
                "TransactionStartTime": AS_OF + pd.Timedelta(seconds=seconds),
                "PricingStrategy": draw(st.sampled_from(vocab.PRICING_STRATEGIES)),
                "FraudResult": draw(st.sampled_from(vocab.FRAUD_FLAGS)),
            }
        )
    df = pd.DataFrame(records)
    df[list(_STRINGS)] = df[list(_STRINGS)].astype("str")
    df[["Amount", "Value"]] = df[["Amount", "Value"]].astype("float64")
    df[["PricingStrategy", "FraudResult"]] = df[["PricingStrategy", "FraudResult"]].astype("int64")
    df["TransactionStartTime"] = df["TransactionStartTime"].astype("datetime64[us, UTC]")
    df = df.sort_values("TransactionStartTime", kind="stable", ignore_index=True)
    window = draw(st.sampled_from([None, 7, 30, 60, 90]))
    return df, window


@settings(max_examples=120, **SETTINGS)
@given(case=transactions(), seed=st.integers(0, 2**32 - 1))
def test_customer_features_invariants(case: tuple[pd.DataFrame, int | None], seed: int) -> None:
    tx, window = case
    features = build_customer_features(tx, as_of=AS_OF, window_days=window)

    # One row per customer with an own transaction in the window, counted independently.
    t = tx["TransactionStartTime"]
    in_window = t < AS_OF
    if window is not None:
        in_window &= t >= AS_OF - pd.Timedelta(days=window)
    own = tx[in_window & (tx["AccountId"] != vocab.CASHBACK_ACCOUNT)]
    expected = own.groupby("CustomerId").size().sort_index()
    assert list(features.columns) == [*NUMERIC_FEATURES, *CATEGORICAL_FEATURES]
    assert features.index.is_unique and features.index.is_monotonic_increasing
    assert list(features.index) == list(expected.index)
    np.testing.assert_array_equal(features["n_tx"].to_numpy(), expected.to_numpy(dtype=float))
    if features.empty:
        return

    numeric = features[list(NUMERIC_FEATURES)].to_numpy(dtype=float)
    assert not np.isinf(numeric).any()
    for group in _SHARE_GROUPS:
        shares = features[[c for c in features.columns if c.startswith(f"share_{group}_")]]
        assert ((shares >= 0) & (shares <= 1)).all().all(), group
        np.testing.assert_allclose(shares.sum(axis=1), 1.0, atol=1e-9, err_msg=group)
    counts = [c for c in NUMERIC_FEATURES if c.startswith("n_") or c.endswith("_count")]
    values = features[counts].to_numpy(dtype=float)
    assert (values >= 0).all() and (values == np.round(values)).all()
    assert (features["n_debit"] + features["n_credit"] <= features["n_tx"]).all()
    assert (features["n_tx_7d"] <= features["n_tx_30d"]).all()
    assert (features["n_tx_30d"] <= features["n_tx"]).all()
    assert (features["recency_days"] <= features["tenure_days"]).all()
    assert (features["recency_days"] > 0).all()  # nothing at or after as_of is read
    np.testing.assert_allclose(
        features["span_days"], features["tenure_days"] - features["recency_days"], atol=1e-9
    )
    for column in CATEGORICAL_FEATURES:
        assert features[column].notna().all()

    # Deterministic, and blind to the order of the rows.
    pd.testing.assert_frame_equal(
        build_customer_features(tx, as_of=AS_OF, window_days=window), features
    )
    shuffled = tx.sample(frac=1.0, random_state=np.random.RandomState(seed % 2**32))
    pd.testing.assert_frame_equal(
        build_customer_features(shuffled, as_of=AS_OF, window_days=window),
        features,
        check_exact=False,
        rtol=1e-9,
        atol=1e-9,
    )
