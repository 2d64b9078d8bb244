"""The retrain and score flows, run for real on a Prefect test server."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from builders import flow_run_logs, last_json, run_python

from credit.ingest import IngestError
from flows.retrain import RetrainConfig, retrain
from flows.score import score
from registry import Registry, read_scores

# the holdout metrics every retrain summary reports
SUMMARY_METRICS = {"roc_auc", "ks", "brier", "accuracy", "precision", "recall", "f1"}
FAST_GRIDS = {
    "logreg": {"clf__C": [0.1]},
    "random_forest": {"clf__n_estimators": [60], "clf__max_depth": [8]},
    "hist_gb": {"clf__max_iter": [60], "clf__learning_rate": [0.1]},
}


def _config(tmp_path: Path, data: Path, **kw) -> RetrainConfig:
    return RetrainConfig(
        data=str(data),
        db_url=f"sqlite:///{tmp_path / 'reg.db'}",
        grids=FAST_GRIDS,
        importance_repeats=1,
        out_dir=str(tmp_path / "run"),
        **kw,
    )


@pytest.mark.e2e
def test_retrain_registers_promotes_and_score_writes(prefect_harness, tmp_path, small_path):
    config = _config(tmp_path, small_path)
    summary = retrain(config)
    assert summary["model_version"] == 1 and summary["champion"] == 1 and summary["promoted"]
    assert set(summary["metrics"]) >= SUMMARY_METRICS
    assert 0.6 < summary["metrics"]["roc_auc"] < 0.99
    out = Path(config.out_dir)
    for name in (
        "eda_report.html",
        "information_value.csv",
        "candidates.csv",
        "model_card.md",
        "feature_snapshot.parquet",
        "quarantine.csv",
    ):
        assert (out / name).exists(), name
    assert list((out / "evaluation").glob("*_roc.png"))
    reg = Registry(config.db_url)
    version = reg.get_version("bati-credit", 1)
    assert version.data_fingerprint == summary["data"]["fingerprint"]
    assert version.flow_run_id == summary["flow_run_id"]
    # a healthy run warns about nothing (before: every submitted task with a timeout warned
    # that Prefect cannot enforce it in a worker thread, five warnings every night)
    warnings = [
        log.message[:120] for log in flow_run_logs(summary["flow_run_id"]) if log.level >= 30
    ]
    assert warnings == []

    scored = score(db_url=config.db_url)
    assert scored["model_version"] == 1
    assert scored["customers"] == summary["snapshot_customers"] > 0
    scores = read_scores(reg)
    assert len(scores) == scored["customers"]
    assert scores["score"].between(300, 850).all()

    # Same data again: a new version, not promoted (no better than the champion).
    again = retrain(config)
    assert again["model_version"] == 2
    assert again["promoted"] is False and again["champion"] == 1
    assert reg.champion("bati-credit").version == 1
    assert "not promoted" in again["promotion_reason"] or again["promotion_reason"]


@pytest.mark.e2e
def test_transient_io_failure_is_retried(prefect_harness, tmp_path, small_path, monkeypatch):
    import tasks.ingest as ingest_tasks

    real = ingest_tasks.open_transactions
    calls = {"n": 0}

    def flaky(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 1:
            raise ConnectionError("transient: storage unavailable")
        return real(*args, **kwargs)

    monkeypatch.setattr(ingest_tasks, "open_transactions", flaky)
    summary = retrain(_config(tmp_path, small_path, candidates=["logreg"]))
    assert calls["n"] == 2
    assert summary["model_version"] == 1


@pytest.mark.e2e
def test_validation_failure_fails_clearly_and_registers_nothing(
    prefect_harness, tmp_path, small_raw
):
    bad = small_raw.copy()
    bad.loc[bad.index[:600], "CurrencyCode"] = "USD"  # 2% bad rows, above the 1% threshold
    path = tmp_path / "bad.parquet"
    bad.to_parquet(path)
    config = _config(tmp_path, path)
    with pytest.raises(IngestError, match=r"600 of 30000 rows .* above the 1\.00% threshold"):
        retrain(config)
    reg = Registry(config.db_url)
    assert reg.list_versions() == []
    quarantine = pd.read_csv(Path(config.out_dir) / "quarantine.csv")
    assert len(quarantine) == 600 and set(quarantine["column"]) == {"CurrencyCode"}


@pytest.mark.e2e
def test_cli_json_last_line_and_clear_failure(tmp_path, small_path):
    """`python -m flows.retrain` with its own temporary Prefect server."""
    import os

    env = {**os.environ, "BATI_DB_URL": f"sqlite:///{tmp_path / 'cli.db'}"}
    env.pop("PREFECT_API_URL", None)
    proc = run_python("-m", "flows.retrain", "--data", str(tmp_path / "missing.csv"), env=env)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    assert "does not exist" in last_json(proc)["error"]


@pytest.mark.e2e
def test_bring_your_own_labels_registers_under_its_own_name(prefect_harness, tmp_path):
    """`--table PATH --target COLUMN`: mixed types, string categories, missing values."""
    from credit.tabular import synthetic_customer_table

    X, y = synthetic_customer_table(600, n_noise=5, seed=3)
    table = X.assign(
        customer_ref=[f"C{i:05d}" for i in range(len(X))],  # id-like: dropped
        segment=pd.Series(["retail", "sme", None] * 200, index=X.index),
        defaulted=y.map({1: "yes", 0: "no"}),
    )
    path = tmp_path / "outcomes.csv"
    table.to_csv(path, index=False)
    config = RetrainConfig(
        table=str(path),
        target="defaulted",
        db_url=f"sqlite:///{tmp_path / 'byo.db'}",
        grids=FAST_GRIDS,
        candidates=["logreg", "hist_gb"],
        importance_repeats=1,
        out_dir=str(tmp_path / "byo"),
    )
    summary = retrain(config)
    assert summary["model_name"] == "bati-credit-outcomes"
    assert summary["model_version"] == 1 and summary["promoted"]
    assert 0.6 < summary["metrics"]["roc_auc"] < 0.99
    reg = Registry(config.db_url)
    version = reg.get_version("bati-credit-outcomes", 1)
    assert "customer_ref" not in version.features and "segment" in version.features
    assert reg.model_names() == ["bati-credit-outcomes"]


@pytest.mark.e2e
def test_cli_success_prints_the_json_contract(tmp_path):
    """`python -m flows.retrain --table ... --target ...` end to end in its own process."""
    import os

    from credit.tabular import synthetic_customer_table

    X, y = synthetic_customer_table(500, n_noise=3, seed=5)
    path = tmp_path / "labels.parquet"
    X.assign(bad=y).to_parquet(path)
    env = {**os.environ, "BATI_DB_URL": f"sqlite:///{tmp_path / 'cli-ok.db'}"}
    env.pop("PREFECT_API_URL", None)
    proc = run_python(
        "-m",
        "flows.retrain",
        *("--table", str(path), "--target", "bad", "--candidates", "logreg"),
        *("--out-dir", str(tmp_path / "out")),
        env=env,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    last = last_json(proc)
    assert {"flow_run_id", "model_version", "champion", "promoted", "metrics"} <= last.keys()
    assert set(last["metrics"]) == SUMMARY_METRICS
    assert last["model_version"] == 1 and last["champion"] == 1 and last["promoted"] is True
    # the temporary server was started with the command and handed to Prefect (issue 16)
    assert "(started with the command, ready after" in proc.stderr, proc.stderr[-3000:]
    assert "Starting temporary server" not in proc.stderr  # not a second one


def _labels_table(tmp_path: Path, rows: int = 500) -> Path:
    from credit.tabular import synthetic_customer_table

    X, y = synthetic_customer_table(rows, n_noise=3, seed=5)
    path = tmp_path / "labels.parquet"
    X.assign(bad=y).to_parquet(path)
    return path


@pytest.mark.e2e
def test_one_registry_handle_per_flow_run_closed_at_the_end(
    prefect_harness, tmp_path, small_raw, monkeypatch
):
    from registry.core import Registry as RegistryClass

    opened: list = []
    closed: list = []
    real_init, real_close = RegistryClass.__init__, RegistryClass.close

    def counting_init(self, *args, **kwargs):
        real_init(self, *args, **kwargs)
        opened.append(self)

    def counting_close(self):
        closed.append(self)
        real_close(self)

    monkeypatch.setattr(RegistryClass, "__init__", counting_init)
    monkeypatch.setattr(RegistryClass, "close", counting_close)
    bad = small_raw.copy()
    bad.loc[bad.index[:60], "CurrencyCode"] = "USD"  # 0.2%: quarantined, under the threshold
    path = tmp_path / "some_bad.parquet"
    bad.to_parquet(path)
    config = _config(tmp_path, path, candidates=["logreg"])
    summary = retrain(config)
    assert summary["model_version"] == 1
    assert summary["data"]["quarantined"] == 60  # quarantine rows went through the handle too
    ours = [r for r in opened if r.url == config.db_url]
    assert len(ours) == 1, f"{len(ours)} registry handles in one flow run"
    assert closed == ours

    opened.clear()
    closed.clear()
    scored = score(db_url=config.db_url)
    assert scored["customers"] == summary["snapshot_customers"]
    assert len(opened) == 1 and closed == opened


@pytest.mark.e2e
def test_database_password_never_reaches_prefect(prefect_harness, tmp_path):
    """A password in the registry URL is absent from the flow run's parameters, logs and
    artifacts as the Prefect API serves them (issue 15, item 2)."""
    import uuid

    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        ArtifactFilter,
        ArtifactFilterFlowRunId,
        LogFilter,
        LogFilterFlowRunId,
    )
    from prefect.logging.handlers import APILogWorker
    from sqlalchemy.engine import make_url

    from registry.testing import isolated_pg_url, pg_base_url

    base = pg_base_url()
    if base is None:
        pytest.skip("BATI_TEST_PG_URL is not set")
    secret = make_url(base).password or f"Pw-{uuid.uuid4().hex[:10]}"  # trust auth ignores it
    with_password = make_url(base).set(password=secret).render_as_string(hide_password=False)
    with isolated_pg_url(with_password) as db_url:
        assert secret in db_url
        summary = retrain(
            RetrainConfig(
                table=str(_labels_table(tmp_path)),
                target="bad",
                db_url=db_url,
                grids=FAST_GRIDS,
                candidates=["logreg"],
                importance_repeats=1,
                out_dir=str(tmp_path / "out"),
            )
        )
    assert summary["model_version"] == 1
    APILogWorker.drain_all(timeout=10)
    run_id = uuid.UUID(summary["flow_run_id"])
    with get_client(sync_client=True) as client:
        run = client.read_flow_run(run_id)
        logs = client.read_logs(LogFilter(flow_run_id=LogFilterFlowRunId(any_=[run_id])))
        artifacts = client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[run_id]))
        )
    parameters = json.dumps(run.parameters)
    assert "***@" in parameters and secret not in parameters
    assert logs and not [log.message for log in logs if secret in log.message]
    assert artifacts and not [a.key for a in artifacts if secret in json.dumps(a.data)]


@pytest.mark.e2e
def test_database_url_from_a_prefect_secret_block(prefect_harness, tmp_path, monkeypatch):
    """Deployments keep the URL in a Secret block: ``BATI_DB_URL_SECRET`` names it."""
    import uuid

    from prefect.blocks.system import Secret

    from tasks.registry_handle import database_url, registry_for

    url = f"sqlite:///{tmp_path / 'from-secret.db'}"
    name = f"bati-db-{uuid.uuid4().hex[:8]}"
    Secret(value=url).save(name)
    monkeypatch.delenv("BATI_DB_URL", raising=False)
    monkeypatch.setenv("BATI_DB_URL_SECRET", name)
    assert database_url() == url and database_url("sqlite:///other.db") == "sqlite:///other.db"
    assert registry_for(None).url == url
    monkeypatch.setenv("BATI_DB_URL", "sqlite:///env.db")
    assert database_url() == "sqlite:///env.db"  # the environment wins


@pytest.mark.e2e
def test_score_flow_streams_parts_with_the_whole_frame_result(
    prefect_harness, tmp_path, monkeypatch
):
    """The score flow reads the snapshot part by part (never whole), and stores and tallies
    exactly what scoring the whole snapshot at once gives."""
    import numpy as np
    from builders import MODEL_NAME, build_world

    import flows.score as score_module
    import registry
    from registry import write_snapshot

    url = f"sqlite:///{tmp_path / 'parts.db'}"
    world = build_world(url, snapshot=False)
    reg = Registry(url)
    info = write_snapshot(reg, world.snapshot, world.as_of, "parts-run", publish=True, part_rows=7)
    reg.close()
    assert info.n_parts >= 5
    reads = []
    original = registry.read_snapshot

    def counting(target, snapshot_id=None, **kw):
        reads.append(kw.get("parts"))
        return original(target, snapshot_id, **kw)

    monkeypatch.setattr(registry, "read_snapshot", counting)
    monkeypatch.setattr(score_module, "PARTS_PER_TASK", 2)
    scored = score(db_url=url, model_name=MODEL_NAME, monitor=False)
    assert reads == [[p] for p in range(info.n_parts)]  # one part per read, every part once
    whole = world.models[1].score_frame(world.snapshot, with_reasons=False)
    stored = read_scores(Registry(url), run_id=scored["flow_run_id"]).set_index("customer_id")
    assert len(stored) == scored["customers"] == scored["written"] == len(whole)
    stored = stored.loc[whole.index.astype(str)]
    np.testing.assert_allclose(stored["probability"], whole["probability"], rtol=0, atol=1e-12)
    assert (stored["band"].to_numpy() == whole["band"].to_numpy()).all()
    assert scored["bands"] == {str(k): int(v) for k, v in whole["band"].value_counts().items()}
    assert scored["approved"] == int(whole["approved"].sum())


def test_score_tally_adds_up_to_the_whole_run_tables():
    """Tallies of slices, added in any order, give the tables of the whole run: bins closed on
    the left (299, 860 and above fall outside, as with ``pd.cut``), band counts, mean PD and
    approvals."""
    import numpy as np

    from flows.score import ScoreTally, distribution_tables

    rng = np.random.default_rng(3)
    n = 1_000
    scores = pd.DataFrame(
        {
            "score": np.r_[[299, 300, 319, 320, 869, 870], rng.integers(300, 871, n - 6)],
            "probability": rng.random(n),
            "band": rng.choice(["A", "B", "C"], n),
            "approved": rng.random(n) < 0.5,
        }
    )
    tally = ScoreTally()
    for part in (scores.iloc[600:], scores.iloc[:250], scores.iloc[250:600]):
        tally.add(ScoreTally.of(part))
    dist, mix = tally.tables()
    assert (dist, mix) == distribution_tables(scores)
    binned = pd.cut(scores["score"].astype(float), list(range(300, 871, 20)), right=False)
    expected = {str(k): int(v) for k, v in binned.value_counts(sort=False).items() if v}
    assert {row["score"]: row["customers"] for row in dist} == expected
    assert sum(expected.values()) == int(scores["score"].between(300, 859).sum())
    for row in mix:
        rows = scores[scores["band"] == row["band"]]
        assert row["customers"] == len(rows)
        assert row["mean_pd"] == round(float(rows["probability"].mean()), 4)
        assert row["approved"] == int(rows["approved"].sum())


def test_retried_slice_replaces_only_its_customers(tmp_path):
    """A retried score-parts task (``replace=True`` with its customer range) replaces what it
    stored before and leaves the run's other slices alone."""
    from registry import write_scores

    reg = Registry(f"sqlite:///{tmp_path / 'retry.db'}")
    ids = [f"C{i:02d}" for i in range(10)]
    frame = pd.DataFrame({"probability": [0.1] * 10}, index=pd.Index(ids, name="CustomerId"))
    keys = {"model_name": "m", "model_version": 1}
    write_scores(reg, frame.iloc[:5], "run", **keys)
    write_scores(reg, frame.iloc[5:], "run", **keys)
    again = frame.iloc[5:].assign(probability=0.7)
    write_scores(reg, again, "run", replace=True, customer_range=("C05", "C09"), **keys)
    stored = read_scores(reg, run_id="run").set_index("customer_id")["probability"]
    reg.close()
    assert len(stored) == 10
    assert stored.loc[ids[:5]].eq(0.1).all() and stored.loc[ids[5:]].eq(0.7).all()
