"""The monitor's column reads (issue 14 #9, 13 #8): the same figures as the row readers.

Scores by column, the latest score run without grouping the table, and a snapshot's inputs
one Parquet part at a time, each checked against the reader it replaces; on SQLite and on the
PostgreSQL named by BATI_TEST_PG_URL (skipped without it).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from builders import score_rows

from credit.monitoring import bin_reference, feature_stability, feature_stability_parts
from registry import snapshots
from registry.core import Registry
from registry.ops import (
    latest_score_run,
    read_score_columns,
    read_scores,
    score_run_ids,
    score_runs,
    write_scores,
)

MODEL = "bati-credit"


def scores(n: int, seed: int) -> pd.DataFrame:
    p = np.random.default_rng(seed).uniform(0.01, 0.9, n)
    return score_rows(p, [f"CustomerId_{i}" for i in range(n)])


def test_score_columns_and_latest_run_match_the_row_readers(reg: Registry) -> None:
    kw = {"as_of": "2019-02-13", "model_name": MODEL}
    write_scores(reg, scores(30, 1), "run-1", model_version=1, snapshot_id=4, **kw)
    write_scores(reg, scores(25, 2), "run-2", model_version=2, snapshot_id=5, **kw)
    write_scores(reg, scores(5, 3), "other", model_name="other-model", model_version=9)
    cols = ["probability", "score", "band", "approved"]
    got = read_score_columns(reg, cols, run_id="run-2", model_name=MODEL, model_version=2)
    rows = read_scores(reg, run_id="run-2", model_name=MODEL)
    assert list(got.columns) == cols and len(got) == 25
    np.testing.assert_array_equal(got["probability"].to_numpy(), rows["probability"].to_numpy())
    assert got["score"].astype(float).tolist() == rows["score"].astype(float).tolist()
    assert got["band"].tolist() == rows["band"].tolist()
    assert got["approved"].astype(float).tolist() == rows["approved"].astype(float).tolist()
    assert read_score_columns(reg, cols, run_id="run-2", model_version=1).empty
    decay = read_score_columns(  # what the decay check reads: keyed as read_scores keys it
        reg, ["customer_id", "probability", "band"], run_id="run-1", model_name=MODEL
    ).set_index("customer_id")
    old = read_scores(reg, run_id="run-1", model_name=MODEL).set_index("customer_id")
    pd.testing.assert_index_equal(decay.index, old.index)
    pd.testing.assert_series_equal(decay["probability"], old["probability"])
    with pytest.raises(ValueError, match="reads only"):
        read_score_columns(reg, ["as_of"], run_id="run-2")

    keys = ["run_id", "as_of", "model_version", "snapshot_id"]
    latest = latest_score_run(reg, MODEL)  # the newest score overall is another model's
    assert latest is not None
    expected = score_runs(reg, MODEL).iloc[-1]
    assert [latest[k] for k in keys] == [expected[k] for k in keys]
    first = latest_score_run(reg, MODEL, "run-1")
    assert first is not None and (first["run_id"], first["snapshot_id"]) == ("run-1", 4)
    assert latest_score_run(reg, MODEL, "nope") is None
    assert latest_score_run(reg, "no-model") is None

    assert sorted(score_run_ids(reg)) == ["other", "run-1", "run-2"]
    some = score_runs(reg, MODEL, run_ids=["run-2", "other"])
    pd.testing.assert_frame_equal(some, score_runs(reg, MODEL).iloc[[1]].reset_index(drop=True))
    assert score_runs(reg, MODEL, run_ids=[]).empty


def test_snapshot_parts_hold_the_inputs_read_snapshot_gives(reg: Registry) -> None:
    rng = np.random.default_rng(0)
    n = 230
    frame = pd.DataFrame(
        {
            "recency_days": rng.integers(0, 90, n),
            "monetary_total": rng.lognormal(8, 1, n),
            "top_channel": pd.Series(rng.choice(["ChannelId_1", "ChannelId_3"], n), dtype="str"),
        },
        index=pd.Index([f"CustomerId_{i:03d}" for i in range(n)], name="CustomerId"),
    )
    info = snapshots.write_snapshot(reg, frame, "2019-02-13", "run-a", part_rows=50)
    wanted = ["top_channel", "monetary_total", "not_stored"]
    parts = list(snapshots.iter_snapshot_parts(reg, info.id, columns=wanted))
    assert [len(p) for p in parts] == [50, 50, 50, 50, 30]
    whole = snapshots.read_snapshot(reg, info.id, columns=["top_channel", "monetary_total"])
    pd.testing.assert_frame_equal(pd.concat(parts), whole)
    with pytest.raises(snapshots.SnapshotNotFound):  # at the call, not at the first part
        snapshots.iter_snapshot_parts(reg, info.id + 100, columns=wanted)
    assert list(snapshots.iter_snapshot_parts(reg, columns=wanted)) == []  # none served


def test_psi_by_parts_is_the_psi_of_the_whole_frame() -> None:
    rng = np.random.default_rng(7)
    ref_frame = pd.DataFrame(
        {
            "amount": rng.lognormal(7, 1, 5_000),
            "channel": rng.choice(["a", "b", "c"], 5_000),
            "late": rng.normal(0, 1, 5_000),
        }
    )
    refs = {c: bin_reference(ref_frame[c], c) for c in ref_frame.columns}
    night = pd.DataFrame(
        {
            "amount": rng.lognormal(7.3, 1.2, 3_001),  # drifted
            "channel": rng.choice(["a", "b", "d", None], 3_001),  # an unseen level, missing
            "late": rng.normal(0.5, 1, 3_001),
        }
    )
    night.loc[::17, "amount"] = np.nan
    cuts = [0, 1_000, 1_001, 2_500, 3_001]
    parts = [night.iloc[a:b] for a, b in zip(cuts[:-1], cuts[1:], strict=True)]
    parts[1] = parts[1].drop(columns="late")  # a part without an input: missing there
    whole = pd.concat(parts)  # fills the part's "late" with NaN, as a snapshot read does
    expected = feature_stability(refs, whole)
    assert expected["amount"] > 0.01 and expected["channel"] > 0.01  # not a trivial 0 == 0
    assert feature_stability_parts(refs, iter(parts)) == expected  # bit for bit
    assert feature_stability_parts(refs, []) == {}
    only = feature_stability_parts({"gone": refs["amount"]}, parts)
    assert only == {}  # an input no part holds is left out, as the whole frame leaves it out
