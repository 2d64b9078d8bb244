"""Revision 0003 storage: columnar published feature snapshots, typed bulk scores, the
prediction log's decision columns, monitoring references and time series, recorded promotion
decisions and `registry list` across models.

Every test runs on SQLite and on the PostgreSQL named by BATI_TEST_PG_URL (skipped without it).
"""

from __future__ import annotations

import json
from datetime import timedelta

import numpy as np
import pandas as pd
import pytest
from builders import score_rows
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from registry import snapshots
from registry.core import Registry
from registry.errors import ImmutableVersionError, VersionNotFound
from registry.monitoring import (
    read_monitoring,
    read_references,
    write_monitoring,
    write_references,
)
from registry.ops import log_predictions, read_prediction_log, read_scores, score_runs, write_scores

MODEL = "bati-credit"


@pytest.fixture(scope="module")
def model():
    rng = np.random.default_rng(3)
    X = rng.normal(size=(200, 3))
    y = (X[:, 0] + rng.normal(scale=0.5, size=200) > 0).astype(int)
    return make_pipeline(StandardScaler(), LogisticRegression()).fit(X, y)


def register(reg: Registry, obj, name: str = MODEL, auc: float = 0.75, **overrides):
    kwargs = {
        "metrics": {"roc_auc": auc, "ks": 0.4, "brier": 0.15},
        "params": {},
        "features": ["a", "b", "c"],
        "input_schema": {},
        "data_fingerprint": "sha256:x",
        "n_rows": 200,
        "holdout_fingerprint": "holdout-1",
    }
    kwargs.update(overrides)
    return reg.register(name, obj, **kwargs)


def features(n: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    ids = [f"CustomerId_{i}" for i in rng.permutation(n)]  # unsorted on purpose
    frame = pd.DataFrame(
        {
            "recency_days": rng.integers(0, 90, n),
            "monetary_total": rng.lognormal(8, 1, n),
            "top_channel": pd.Series(rng.choice(["ChannelId_1", "ChannelId_3"], n), dtype="str"),
        },
        index=pd.Index(ids, name="CustomerId"),
    )
    frame.iloc[0, 1] = np.nan
    frame.iloc[1, 1] = 0.1 + 0.2  # must round-trip exactly
    return frame


def count(reg: Registry, sql: str) -> int:
    with reg.engine.connect() as conn:
        return conn.execute(text(sql)).scalar_one()


# -- feature snapshots ---------------------------------------------------------------------------
def test_snapshot_is_typed_columnar_and_read_by_part(reg: Registry):
    frame = features(230)
    info = snapshots.write_snapshot(
        reg, frame, "2019-02-13", "run-a", feature_version="1.0.0", part_rows=50
    )
    assert (info.n_customers, info.n_parts, info.published) == (230, 5, False)
    assert count(reg, "SELECT count(*) FROM snapshot_parts") == 5
    got = snapshots.read_snapshot(reg, info.id)
    assert got.index.is_monotonic_increasing and got.index.name == "CustomerId"
    pd.testing.assert_frame_equal(got, frame.sort_index())  # dtypes and values exact
    assert got.attrs["snapshot_id"] == info.id and got.attrs["feature_version"] == "1.0.0"
    assert got.attrs["as_of"] == pd.Timestamp("2019-02-13", tz="UTC")
    wanted = ["CustomerId_7", "CustomerId_150", "CustomerId_nope"]
    some = snapshots.read_snapshot(reg, info.id, customers=wanted, columns=["monetary_total"])
    assert sorted(some.index) == ["CustomerId_150", "CustomerId_7"]
    assert list(some.columns) == ["monetary_total"]
    assert some.loc["CustomerId_7", "monetary_total"] == frame.loc["CustomerId_7", "monetary_total"]
    with pytest.raises(snapshots.SnapshotNotFound):
        snapshots.read_snapshot(reg, info.id + 100)


def test_unpublished_snapshot_is_never_served(reg: Registry):
    """Issue 13 #5: a run's snapshot is served only once published (a killed or failed run
    leaves the served one as it was)."""
    assert snapshots.read_feature_snapshot(reg).empty and snapshots.served_snapshot_id(reg) is None
    first = features(40)
    assert snapshots.write_feature_snapshot(reg, first, "2019-01-31", "old-run") == 40  # publishes
    served = snapshots.served_snapshot_id(reg)
    later = snapshots.write_snapshot(reg, features(10, seed=1), "2019-02-13", "killed-run")
    assert snapshots.served_snapshot_id(reg) == served
    assert len(snapshots.read_feature_snapshot(reg)) == 40
    assert [d.date().isoformat() for d in snapshots.snapshot_dates(reg)] == ["2019-01-31"]
    snapshots.publish_snapshot(reg, "killed-run")  # a run id publishes that run's latest snapshot
    assert snapshots.served_snapshot_id(reg) == later.id
    assert len(snapshots.read_feature_snapshot(reg)) == 10
    assert len(snapshots.read_feature_snapshot(reg, as_of="2019-01-31")) == 40
    with pytest.raises(snapshots.SnapshotNotFound):
        snapshots.publish_snapshot(reg, "no-such-run")


def test_same_date_republished_changes_the_served_id(reg: Registry):
    """The API's reload check must see a newer snapshot even with the same as_of."""
    snapshots.write_feature_snapshot(reg, features(20), "2019-02-13", "run-1")
    first = snapshots.served_snapshot_id(reg)
    snapshots.write_feature_snapshot(reg, features(5, seed=2), "2019-02-13", "run-2")
    assert snapshots.served_snapshot_id(reg) != first
    assert snapshots.read_feature_snapshot(reg).attrs["run_id"] == "run-2"


def test_failed_snapshot_write_leaves_nothing(reg: Registry, monkeypatch: pytest.MonkeyPatch):
    real = snapshots.encode_parts

    def broken(df, part_rows):
        for part in real(df, part_rows):
            yield part
            raise OSError("disk full")

    monkeypatch.setattr(snapshots, "encode_parts", broken)
    with pytest.raises(OSError):
        snapshots.write_snapshot(reg, features(30), "2019-02-13", "run-x", part_rows=10)
    assert count(reg, "SELECT count(*) FROM snapshots") == 0
    assert count(reg, "SELECT count(*) FROM snapshot_parts") == 0


def test_prune_keeps_the_served_and_recent_unpublished(reg: Registry):
    for k in range(3):
        snapshots.write_feature_snapshot(reg, features(5, seed=k), f"2019-02-1{k}", f"run-{k}")
    stale = snapshots.write_snapshot(reg, features(5), "2019-03-01", "killed")
    assert (
        snapshots.prune_snapshots(reg, keep_published=1) == 2
    )  # the killed run's is still in grace
    served = snapshots.served_snapshot_id(reg)
    assert snapshots.prune_snapshots(reg, keep_published=1, unpublished_grace=timedelta(0)) == 1
    assert [s.id for s in snapshots.list_snapshots(reg)] == [served]
    assert stale.id not in [s.id for s in snapshots.list_snapshots(reg)]
    assert count(reg, "SELECT count(*) FROM snapshot_parts") == 1


def test_promotion_publishes_the_snapshot_in_its_transaction(reg: Registry, model):
    register(reg, model)
    snap = snapshots.write_snapshot(reg, features(8), "2019-02-13", "run-1")
    decision = reg.promote_if_better(MODEL, 1, publish_snapshot=snap.id)
    assert decision.promoted and snapshots.served_snapshot_id(reg) == snap.id
    # A failing publication rolls the whole decision back.
    register(reg, model, auc=0.80)
    with pytest.raises(snapshots.SnapshotNotFound):
        reg.promote_if_better(MODEL, 2, publish_snapshot="unknown-run")
    assert reg.champion(MODEL).version == 1
    assert [d.version for d in reg.decisions(MODEL)] == [1]
    # A kept challenger's completed run still publishes its snapshot.
    register(reg, model, auc=0.75)
    fresh = snapshots.write_snapshot(reg, features(9), "2019-02-14", "run-3")
    kept = reg.promote_if_better(MODEL, 3, publish_snapshot="run-3")
    assert not kept.promoted and snapshots.served_snapshot_id(reg) == fresh.id


# -- scores --------------------------------------------------------------------------------------
def scores(n: int) -> pd.DataFrame:
    p = np.linspace(0.01, 0.9, n)
    return score_rows(p, [f"CustomerId_{n - i}" for i in range(n)], decisions=True)


def test_scores_are_typed_keyed_and_bulk(reg: Registry):
    frame = scores(40)
    kw = {"as_of": "2019-02-13", "model_name": MODEL, "model_version": 2, "snapshot_id": 7}
    assert write_scores(reg, frame, "score-1", **kw) == 40
    got = read_scores(reg, run_id="score-1").set_index("customer_id")
    assert len(got) == 40 and got.index.is_monotonic_increasing
    row = got.loc["CustomerId_40"]
    assert (row["band"], bool(row["approved"]), int(row["snapshot_id"])) == ("A", True, 7)
    assert row["probability"] == frame.loc["CustomerId_40", "probability"]
    assert row["as_of"] == pd.Timestamp("2019-02-13", tz="UTC")
    assert pd.isna(got.loc["CustomerId_1", "amount"])
    with pytest.raises(IntegrityError):  # one score per customer, run and model version
        write_scores(reg, frame.iloc[:3], "score-1", **kw)
    assert write_scores(reg, frame.iloc[:3], "score-1", replace=True, **kw) == 3
    assert len(read_scores(reg, run_id="score-1")) == 3
    write_scores(reg, frame.iloc[3:10], "score-1", **kw)  # chunked writes add up
    write_scores(reg, frame, "score-2", **{**kw, "model_version": 3})
    runs = score_runs(reg, MODEL)
    assert runs[["run_id", "model_version", "customers"]].values.tolist() == [
        ["score-1", 2, 10],
        ["score-2", 3, 40],
    ]
    assert len(read_scores(reg, model_name=MODEL, model_version=3)) == 40


# -- prediction log ------------------------------------------------------------------------------
def test_prediction_log_keeps_the_decision(reg: Registry):
    """Issue 17 #7: band, decision, amount, duration and reason codes are kept."""
    reasons = [{"feature": "recency_days", "impact": np.float64(0.2), "value": np.nan}]
    rows = [
        {
            "request_id": "r1",
            "probability": 0.1,
            "band": "A",
            "approved": True,
            "recommended_amount": 50_000.0,
            "recommended_duration_days": 30,
            "duration_ms": 1.5,
            "reasons": reasons,
            "snapshot_id": 4,
        },
        {"request_id": "r2", "band": "E", "decision": "declined", "reason_codes": ["x"]},
    ]
    assert log_predictions(reg, rows) == 2
    got = read_prediction_log(reg).set_index("request_id")
    r1 = got.loc["r1"]
    assert (r1["band"], r1["decision"], r1["amount"], r1["duration_days"]) == (
        "A",
        "approved",
        50_000.0,
        30,
    )
    assert r1["latency_ms"] == 1.5 and r1["snapshot_id"] == 4
    assert r1["reason_codes"] == [{"feature": "recency_days", "impact": 0.2, "value": None}]
    assert got.loc["r2", "decision"] == "declined" and got.loc["r2", "reason_codes"] == ["x"]
    log_predictions(
        reg, [{"request_id": "old", "created_at": pd.Timestamp("2019-01-01", tz="UTC")}]
    )
    recent = read_prediction_log(reg, since=pd.Timestamp.now(tz="UTC") - pd.Timedelta(days=1))
    assert sorted(recent["request_id"]) == ["r1", "r2"]


# -- monitoring ----------------------------------------------------------------------------------
def test_references_are_stored_with_the_version_and_immutable(reg: Registry, model):
    refs = {
        "score": {
            "name": "score",
            "kind": "numeric",
            "proportions": [0.5, 0.5, 0.0],
            "n": 10,
            "edges": [600.0],
            "levels": [],
        },
        "band_mix": {"A": 0.7, "E": 0.3},
        "inputs": {"recency_days": {"kind": "numeric", "proportions": [1.0], "edges": []}},
    }
    holdout = pd.DataFrame(
        {"recency_days": [1.0, np.nan], "label": [0, 1], "pd": [0.1, 0.7]},
        index=pd.Index(["CustomerId_1", "CustomerId_2"], name="CustomerId"),
    )
    info = register(reg, model, references=refs, reference_holdout=holdout)
    got = read_references(reg, MODEL, info.version)
    assert got is not None and got.distributions == refs and got.holdout_rows == 2
    pd.testing.assert_frame_equal(got.holdout, holdout)
    assert read_references(reg, MODEL, info.version, with_holdout=False).holdout is None
    with pytest.raises(ImmutableVersionError):
        write_references(reg, MODEL, info.version, {"other": 1})
    later = register(reg, model)
    assert read_references(reg, MODEL, later.version) is None
    write_references(reg, MODEL, later.version, refs)  # append-only: once, after the fact
    assert read_references(reg, MODEL, later.version).holdout is None
    with pytest.raises(VersionNotFound):
        write_references(reg, MODEL, 99, refs)
    with pytest.raises(IntegrityError), reg.engine.begin() as conn:
        conn.execute(text("UPDATE model_references SET holdout_rows = 5"))
    with pytest.raises(IntegrityError), reg.engine.begin() as conn:
        conn.execute(text("DELETE FROM model_references"))


def test_monitoring_time_series(reg: Registry):
    for k in range(3):
        write_monitoring(
            reg,
            kind="stability",
            figures={"score_psi": np.float64(0.01 * k), "feature_psi": {"a": np.nan}},
            breaches=[{"metric": "score_psi", "value": 0.3, "threshold": 0.25, "level": "act"}]
            if k == 2
            else [],
            model_name=MODEL,
            model_version=1,
            as_of=f"2019-02-1{k}",
            run_id=f"mon-{k}",
        )
    write_monitoring(reg, kind="decay", figures={"roc_auc": 0.7}, model_name="other")
    latest = read_monitoring(reg, MODEL, kind="stability", limit=2)
    assert [r["run_id"] for r in latest] == ["mon-2", "mon-1"]
    assert latest[0]["breaches"][0]["level"] == "act"
    assert latest[1]["figures"] == {"score_psi": 0.01, "feature_psi": {"a": None}}
    assert latest[0]["as_of"].startswith("2019-02-12")
    assert [r["kind"] for r in read_monitoring(reg)] == [
        "decay",
        "stability",
        "stability",
        "stability",
    ]
    json.dumps(read_monitoring(reg))
    with pytest.raises(ValueError):
        write_monitoring(reg, kind="vibes", figures={})


# -- decisions and `registry list` (issue 17 #7) -------------------------------------------------
def test_decisions_are_recorded_and_holds_keep_a_candidate(reg: Registry, model):
    register(reg, model)
    reg.promote_if_better(MODEL, 1)
    register(reg, model, auc=0.70)
    kept = reg.promote_if_better(
        MODEL, 2, champion_metrics={"roc_auc": 0.78, "ks": 0.4, "brier": 0.15}
    )
    register(reg, model, auc=0.90)
    held = reg.promote_if_better(
        MODEL,
        3,
        hold="input drift on recency_days (PSI 0.4)",
        extra_checks={"reference_holdout": {"psi": 0.4}},
    )
    assert not kept.promoted and not held.promoted and reg.champion(MODEL).version == 1
    assert held.reason.startswith("held for approval: input drift")
    assert reg.get_version(MODEL, 3).stage == "candidate"
    decisions = reg.decisions(MODEL)
    assert [(d.version, d.promoted, d.champion_version) for d in decisions] == [
        (1, True, None),
        (2, False, 1),
        (3, False, 1),
    ]
    assert decisions[1].checks["roc_auc"] == {
        "candidate": 0.70,
        "champion": 0.78,
        "gain": pytest.approx(-0.08),
    }
    assert decisions[2].checks["reference_holdout"] == {"psi": 0.4}
    with pytest.raises(IntegrityError), reg.engine.begin() as conn:
        conn.execute(text("DELETE FROM promotion_decisions"))


def test_cli_list_shows_every_model_and_the_decision(reg: Registry, model, capsys):
    """Issue 17 #7: `registry list` hid other model names and put metrics from different test
    sets side by side, so a losing challenger looked better than the champion."""
    from registry.cli import main

    register(reg, model, auc=0.77)
    reg.promote_if_better(MODEL, 1)
    register(reg, model, auc=0.85, holdout_fingerprint="holdout-garbage")
    reg.promote_if_better(MODEL, 2, champion_metrics={"roc_auc": 0.90, "ks": 0.5, "brier": 0.1})
    register(reg, model, name="german-credit", auc=0.79)

    assert main(["--db-url", reg.url, "list"]) == 0
    out = capsys.readouterr().out
    assert "german-credit" in out and "holdout-garb" in out
    assert "own test split" in out
    assert (
        "bati-credit v2 vs champion v1 (champion re-evaluated on v2's test split): "
        "ROC-AUC 0.8500 vs 0.9000" in out
    )
    assert "-> kept" in out
    assert main(["--db-url", reg.url, "list", "--model", MODEL, "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert {r["model_name"] for r in rows} == {MODEL}
    assert rows[1]["decision"]["checks"]["roc_auc"]["champion"] == 0.90
    assert rows[1]["metrics_measured_on"]["holdout_fingerprint"] == "holdout-garbage"


# -- migration -----------------------------------------------------------------------------------
def test_upgrade_from_0002_converts_json_snapshots_and_dedupes_scores(db_url: str):
    from alembic import command

    from registry.db import alembic_config, head_revision, upgrade

    reg = Registry(db_url)
    try:
        upgrade(reg.engine, "0002_append_only")
        with reg.engine.begin() as conn:
            for cid, feats in (
                ("CustomerId_2", {"a": 1.5, "c": "x"}),
                ("CustomerId_1", {"a": None, "c": "y"}),
            ):
                conn.execute(
                    text(
                        "INSERT INTO feature_snapshots (customer_id, as_of, run_id, features, "
                        "created_at) VALUES (:c, :d, 'old', :f, CURRENT_TIMESTAMP)"
                    ),
                    {
                        "c": cid,
                        "d": pd.Timestamp("2019-02-13", tz="UTC").to_pydatetime(),
                        "f": json.dumps(feats),
                    },
                )
            for _ in range(2):
                conn.execute(
                    text(
                        "INSERT INTO scores (run_id, customer_id, probability, created_at) "
                        "VALUES ('s', 'CustomerId_1', 0.5, CURRENT_TIMESTAMP)"
                    )
                )
        reg.migrate()
        assert reg.schema_revision() == head_revision()
        snap = snapshots.read_feature_snapshot(reg)
        assert list(snap.index) == ["CustomerId_1", "CustomerId_2"]
        assert snap.loc["CustomerId_2", "a"] == 1.5 and pd.isna(snap.loc["CustomerId_1", "a"])
        assert snap.attrs["run_id"] == "old" and snapshots.served_snapshot_id(reg) is not None
        assert count(reg, "SELECT count(*) FROM scores") == 1
        cfg = alembic_config()
        with reg.engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.downgrade(cfg, "0002_append_only")
        assert count(reg, "SELECT count(*) FROM feature_snapshots") == 2
    finally:
        reg.close()


def test_scores_without_optional_fields_store_nulls(reg: Registry):
    frame = pd.DataFrame({"probability": [0.2, 0.4]}, index=["CustomerId_b", "CustomerId_a"])
    assert write_scores(reg, frame, "bare") == 2
    got = read_scores(reg, run_id="bare")
    assert got["customer_id"].tolist() == ["CustomerId_a", "CustomerId_b"]
    assert (
        got[["as_of", "model_name", "model_version", "band", "score", "approved"]]
        .isna()
        .all()
        .all()
    )
