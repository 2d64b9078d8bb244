"""Operational tables (quarantine, feature snapshots, scores, prediction log) round-trip
on SQLite and on the PostgreSQL named by BATI_TEST_PG_URL (skipped without it)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from registry.core import Registry
from registry.ops import (
    log_predictions,
    read_feature_snapshot,
    read_prediction_log,
    read_quarantine,
    read_scores,
    snapshot_dates,
    write_feature_snapshot,
    write_quarantine,
    write_scores,
)


# `db_url` and `reg` (each backend) come from tests/integration/conftest.py.
def features(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "recency_days": rng.integers(0, 90, n),
            "monetary_total": rng.lognormal(8, 1, n),
            "share_airtime": rng.random(n),
        },
        index=pd.Index([f"CustomerId_{i}" for i in range(n)], name="CustomerId"),
    )
    frame.iloc[0, 1] = np.nan
    frame.iloc[1, 2] = 0.1 + 0.2  # not representable in 15 digits: must round-trip exactly
    return frame


def test_quarantine_roundtrip(reg: Registry):
    bad = pd.DataFrame(
        {
            "row_number": np.array([3, 17, 17], dtype="int64"),
            "column": ["Amount", None, "CustomerId"],
            "check": ["greater_than(0)", "duplicate_row", "str_matches"],
            "value": [-5.0, None, "Cust 9"],
        }
    )
    assert write_quarantine(reg, "run-1", "xente.csv", bad) == 3
    assert write_quarantine(reg, "run-2", "xente.csv", bad.iloc[:1]) == 1
    assert write_quarantine(reg, "run-2", "xente.csv", bad.iloc[:0]) == 0
    got = read_quarantine(reg, "run-1")
    assert list(got["row_number"]) == [3, 17, 17]
    assert got["column"].isna().tolist() == [False, True, False]
    assert got["column"].iloc[[0, 2]].tolist() == ["Amount", "CustomerId"]
    assert list(got["check"]) == ["greater_than(0)", "duplicate_row", "str_matches"]
    assert got["value"].isna().tolist() == [False, True, False]
    assert got["value"].iloc[[0, 2]].tolist() == ["-5.0", "Cust 9"]
    assert set(got["source"]) == {"xente.csv"}
    assert len(read_quarantine(reg)) == 4


def test_feature_snapshot_roundtrip_replace_and_latest(reg: Registry):
    assert read_feature_snapshot(reg).empty
    first, second = features(50, 1), features(40, 2)
    assert write_feature_snapshot(reg, first, "2019-01-31", "run-a") == 50
    assert write_feature_snapshot(reg, second, pd.Timestamp("2019-02-13", tz="UTC"), "run-b") == 40

    latest = read_feature_snapshot(reg)
    assert latest.attrs["run_id"] == "run-b"
    assert latest.attrs["as_of"] == pd.Timestamp("2019-02-13", tz="UTC")
    pd.testing.assert_frame_equal(latest, second.sort_index(), check_dtype=False)
    assert latest.loc["CustomerId_1", "share_airtime"] == 0.1 + 0.2  # exact
    assert np.isnan(latest.loc["CustomerId_0", "monetary_total"])

    old = read_feature_snapshot(reg, as_of="2019-01-31")
    pd.testing.assert_frame_equal(old, first.sort_index(), check_dtype=False)

    # Writing the same as_of again replaces that snapshot (no merge with the old rows).
    write_feature_snapshot(reg, first.iloc[:5], "2019-01-31", "run-c")
    again = read_feature_snapshot(reg, as_of=pd.Timestamp("2019-01-31"))
    assert len(again) == 5 and again.attrs["run_id"] == "run-c"
    assert [d.date().isoformat() for d in snapshot_dates(reg)] == ["2019-01-31", "2019-02-13"]
    with pytest.raises(ValueError, match="duplicates"):
        write_feature_snapshot(reg, pd.concat([first, first]), "2019-03-01", "run-d")


def test_scores_roundtrip(reg: Registry):
    scores = pd.DataFrame(
        {
            "CustomerId": ["CustomerId_1", "CustomerId_2", "CustomerId_3"],
            "probability": np.array([0.02, 0.31, 0.77]),
            "score": np.array([742, 611, 455], dtype="int64"),
            "band": ["A", "C", "E"],
            "amount": [5000.0, 1500.0, np.nan],
            "duration_days": np.array([90, 30, 0], dtype="int64"),
        }
    )
    n = write_scores(
        reg,
        scores,
        "score-run",
        as_of="2019-02-13",
        model_name="bati-credit",
        model_version=np.int64(4),
    )
    assert n == 3
    got = read_scores(reg, run_id="score-run")
    assert list(got["customer_id"]) == list(scores["CustomerId"])
    np.testing.assert_array_equal(got["probability"], scores["probability"])
    assert list(got["score"]) == [742, 611, 455]
    assert got["amount"].isna().tolist() == [False, False, True]
    assert set(got["model_version"]) == {4} and set(got["model_name"]) == {"bati-credit"}
    assert pd.Timestamp(got["as_of"].iloc[0]) == pd.Timestamp("2019-02-13", tz="UTC")
    assert len(read_scores(reg, customer_id="CustomerId_2")) == 1


def test_prediction_log_bulk_insert(reg: Registry):
    rows = [
        {
            "request_id": f"req-{i}",
            "customer_id": f"CustomerId_{i}",
            "model_name": "bati-credit",
            "model_version": 1,
            "probability": i / 10,
            "score": 700 - i,
            "latency_ms": 1.5,
            "ignored_key": "dropped",
        }
        for i in range(25)
    ]
    assert log_predictions(reg, rows) == 25
    assert log_predictions(reg, []) == 0
    got = read_prediction_log(reg)
    assert len(got) == 25 and got["request_id"].iloc[0] == "req-24"  # newest first
    assert read_prediction_log(reg, limit=3)["score"].tolist() == [676, 677, 678]


def test_prediction_log_keeps_the_client_request_id_apart(reg: Registry):
    """Issue 15 #13: the audit key is the server's; a client's X-Request-ID has its own column."""
    forged = "same-forged-id"
    rows = [
        {"request_id": "srv-1", "client_request_id": forged, "probability": 0.1},
        {"request_id": "srv-2", "client_request_id": forged, "probability": 0.2},
        {"request_id": None, "client_request_id": "x" * 500, "probability": 0.3},
        {"request_id": "srv-4", "probability": 0.4},
    ]
    assert log_predictions(reg, rows) == 4
    got = read_prediction_log(reg).sort_values("probability")
    assert got["request_id"].iloc[:2].tolist() == ["srv-1", "srv-2"]
    assert got["client_request_id"].iloc[:2].tolist() == [forged, forged]
    generated = got["request_id"].iloc[2]
    assert isinstance(generated, str) and len(generated) == 32  # made by the server
    assert got["client_request_id"].iloc[2] == "x" * 128  # cut to the column, not refused
    assert pd.isna(got["client_request_id"].iloc[3])
    assert got["request_id"].is_unique


def test_ops_accept_a_bare_engine(reg: Registry):
    reg.migrate()
    assert log_predictions(reg.engine, [{"request_id": "r1", "probability": 0.5}]) == 1
    assert len(read_prediction_log(reg.engine)) == 1
