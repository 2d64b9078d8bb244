"""Model registry: schema/migrations, atomic immutable versions, safe artifacts, promotion.

Every test runs on SQLite and on the PostgreSQL named by BATI_TEST_PG_URL (skipped without it).
"""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
import textwrap
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
from builders import ROOT, run_python
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler
from sqlalchemy import create_engine, event, text
from sqlalchemy.exc import IntegrityError

from registry import errors

# Submodule imports: they also work when an editable install exposes `registry` as a
# namespace package (package-level names are checked in a subprocess below).
from registry.artifacts import DEFAULT_TRUSTED_PREFIXES
from registry.core import Registry, RegistrySession, champion_lineage
from registry.db import default_db_url, head_revision
from registry.models import Base, ModelVersion
from registry.policy import PromotionPolicy, compare
from registry.testing import flip_one_byte, replace_artifact

MODEL = "bati-credit"


# `db_url` and `reg` (each backend) come from tests/integration/conftest.py.
@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(7)
    X = rng.normal(size=(300, 5))
    y = (X[:, 0] - 0.5 * X[:, 1] + rng.normal(scale=0.8, size=300) > 0).astype(int)
    return X, y


@pytest.fixture(scope="module")
def model(data):
    X, y = data
    return make_pipeline(StandardScaler(), LogisticRegression()).fit(X, y)


def metrics(auc: float, ks: float = 0.40, brier: float = 0.15) -> dict[str, float]:
    return {"roc_auc": auc, "ks": ks, "brier": brier}


def register(reg: Registry, obj, name: str = MODEL, **overrides):
    kwargs = {
        "metrics": metrics(0.75),
        "params": {"C": 1.0, "missing": np.nan, "klass": LogisticRegression},
        "features": ["f0", "f1", "f2", "f3", "f4"],
        "input_schema": {f"f{i}": "float64" for i in range(5)},
        "data_fingerprint": "sha256:abc",
        "n_rows": 300,
        "n_customers": 120,
        "window_start": datetime(2018, 11, 15, tzinfo=UTC),
        "window_end": datetime(2019, 2, 13, 10, 1, 40, tzinfo=UTC),
        "code_version": "deadbeef",
        "flow_run_id": "run-1",
    }
    kwargs.update(overrides)
    return reg.register(name, obj, **kwargs)


def count(reg: Registry, sql: str, **params) -> int:
    with reg.engine.connect() as conn:
        return conn.execute(text(sql), params).scalar_one()


def tamper(reg: Registry, version_id: int) -> None:
    """Replace the stored bytes of a version (one flipped byte) behind the registry's back
    (switching the database's guards off, as only someone with DDL rights could)."""
    replace_artifact(reg.url, version_id, flip_one_byte)


class NotTrusted:
    """Defined in the test module: not under any trusted prefix."""

    def __init__(self) -> None:
        self.weights = [1.0, 2.0]


# -- URL, engine, migrations -------------------------------------------------------------------
def test_default_url_is_sqlite_under_project_var(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    monkeypatch.delenv("BATI_DB_URL", raising=False)
    monkeypatch.delenv("BATI_VAR_DIR", raising=False)
    assert default_db_url() == f"sqlite:///{ROOT / 'var' / 'bati.db'}"
    # BATI_VAR_DIR moves the default database with every other generated file (issue 12).
    monkeypatch.setenv("BATI_VAR_DIR", str(tmp_path / "elsewhere"))
    assert default_db_url() == f"sqlite:///{tmp_path / 'elsewhere' / 'bati.db'}"
    out = run_cli("migrate", env={"BATI_DB_URL": "", "BATI_VAR_DIR": str(tmp_path / "cli-var")})
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "cli-var" / "bati.db").is_file()
    url = f"sqlite:///{tmp_path / 'sub' / 'env.db'}"
    monkeypatch.setenv("BATI_DB_URL", url)
    reg = Registry()
    try:
        assert reg.url == url
        assert (tmp_path / "sub").is_dir()  # folder created for the SQLite file
    finally:
        reg.close()


def test_sqlite_runs_in_wal_mode_with_busy_timeout(tmp_path: Path):
    reg = Registry(f"sqlite:///{tmp_path / 'w.db'}")
    try:
        with reg.engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() >= 5000
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    finally:
        reg.close()


def test_migrates_on_first_use_and_is_idempotent(reg: Registry):
    assert reg.schema_revision() is None
    assert reg.list_versions() == []  # first use creates the schema
    assert reg.schema_revision() == head_revision()
    assert reg.migrate() == head_revision()  # running it again is a no-op


def test_concurrent_first_use_migrates_once(db_url: str):
    regs = [Registry(db_url) for _ in range(4)]
    failures: list[BaseException] = []
    start = threading.Barrier(len(regs))

    def first_use(r: Registry) -> None:
        try:
            start.wait()
            r.model_names()
        except BaseException as exc:  # noqa: BLE001 - collected for the assertion
            failures.append(exc)

    threads = [threading.Thread(target=first_use, args=(r,)) for r in regs]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    try:
        assert failures == []
        assert all(r.schema_revision() == head_revision() for r in regs)
    finally:
        for r in regs:
            r.close()


def test_migrations_match_orm_and_downgrade(reg: Registry):
    from alembic import command
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    from registry.db import alembic_config

    reg.migrate()
    with reg.engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"compare_type": True})
        assert compare_metadata(ctx, Base.metadata) == []
    cfg = alembic_config()
    with reg.engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "base")
    assert reg.schema_revision() is None
    assert reg.migrate() == head_revision()


# -- registration ------------------------------------------------------------------------------
def test_versions_autoincrement_per_model_and_roundtrip(reg: Registry, model):
    a = [register(reg, model, "a").version for _ in range(3)]
    b = [register(reg, model, "b").version for _ in range(2)]
    assert a == [1, 2, 3] and b == [1, 2]
    assert reg.model_names() == ["a", "b"]

    info = reg.get_version("a", 2)
    assert info.stage == "candidate" and info.model_name == "a"
    assert info.metrics == metrics(0.75)
    assert info.params["C"] == 1.0 and info.params["missing"] == "nan"  # strict JSON
    assert info.features == ["f0", "f1", "f2", "f3", "f4"]
    assert info.window_end == datetime(2019, 2, 13, 10, 1, 40, tzinfo=UTC)
    assert info.created_at.tzinfo is not None
    assert (info.n_rows, info.n_customers, info.flow_run_id) == (300, 120, "run-1")
    assert info.artifact_format == "skops"
    with reg.engine.connect() as conn:
        blob = conn.execute(
            text("SELECT data FROM model_artifacts WHERE version_id = :v"), {"v": info.id}
        ).scalar_one()
    assert hashlib.sha256(bytes(blob)).hexdigest() == info.artifact_sha256
    assert len(blob) == info.artifact_size
    assert [v.version for v in reg.list_versions("a")] == [1, 2, 3]
    assert len(reg.list_versions()) == 5
    d = info.to_dict()
    assert isinstance(d["created_at"], str) and d["version"] == 2


def test_concurrent_registrations_get_distinct_versions(reg: Registry, model):
    reg.migrate()
    got: list[int] = []
    lock = threading.Lock()

    def worker() -> None:
        for _ in range(4):
            v = register(reg, model, "race").version
            with lock:
                got.append(v)

    threads = [threading.Thread(target=worker) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(got) == list(range(1, 13))


def test_failure_at_commit_leaves_no_partial_version(reg: Registry, model, monkeypatch):
    register(reg, model)  # v1 exists

    def boom(self) -> None:
        raise RuntimeError("database went away at commit")

    monkeypatch.setattr(RegistrySession, "commit", boom)
    with pytest.raises(RuntimeError, match="went away"):
        register(reg, model)  # artifact and version already flushed when commit fails
    with pytest.raises(RuntimeError):
        register(reg, model, "brand-new")
    monkeypatch.undo()

    assert count(reg, "SELECT count(*) FROM model_versions") == 1
    assert count(reg, "SELECT count(*) FROM model_artifacts") == 1
    assert reg.model_names() == [MODEL]
    assert register(reg, model).version == 2  # no number was consumed


def test_database_error_on_artifact_insert_rolls_back_version(reg: Registry, model):
    reg.migrate()

    def fail_artifact(conn, cursor, statement, params, context, executemany):
        if statement.lstrip().upper().startswith("INSERT INTO MODEL_ARTIFACTS"):
            raise RuntimeError("disk full while writing the artifact")

    event.listen(reg.engine, "before_cursor_execute", fail_artifact)
    try:
        with pytest.raises(RuntimeError, match="disk full"):
            register(reg, model)
    finally:
        event.remove(reg.engine, "before_cursor_execute", fail_artifact)
    assert count(reg, "SELECT count(*) FROM model_versions") == 0
    assert count(reg, "SELECT count(*) FROM model_artifacts") == 0


def test_process_crash_midway_leaves_nothing(reg: Registry):
    reg.migrate()
    script = textwrap.dedent(
        """
        import os, sys
        from registry import Registry
        from registry.core import RegistrySession
        RegistrySession.commit = lambda self: os._exit(17)  # die with the transaction open
        reg = Registry(sys.argv[1])
        reg.register("crash", {"w": [1.0, 2.0]}, metrics={"roc_auc": 0.7}, params={},
                     features=["a"], input_schema={}, data_fingerprint="x", n_rows=1)
        """
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [sys.executable, "-c", script, reg.url], env=env, capture_output=True, timeout=120
    )
    assert proc.returncode == 17, proc.stderr.decode()
    assert count(reg, "SELECT count(*) FROM model_versions") == 0
    assert count(reg, "SELECT count(*) FROM model_artifacts") == 0
    assert reg.model_names() == []


def test_versions_are_immutable(reg: Registry, model):
    info = register(reg, model)
    with pytest.raises(errors.ImmutableVersionError, match="metrics"), reg.session(write=True) as s:
        s.get(ModelVersion, info.id).metrics = {"roc_auc": 0.99}
    with pytest.raises(errors.ImmutableVersionError), reg.session(write=True) as s:
        s.delete(s.get(ModelVersion, info.id))
    # The database refuses too (triggers), whatever client writes.
    for sql in (
        "UPDATE model_versions SET data_fingerprint = 'forged' WHERE id = :v",
        "UPDATE model_versions SET artifact_sha256 = 'forged' WHERE id = :v",
        "UPDATE model_artifacts SET data = :blob WHERE version_id = :v",
    ):
        with pytest.raises(IntegrityError, match="immutable"), reg.engine.begin() as conn:
            conn.execute(text(sql), {"v": info.id, "blob": b"evil"})
    assert reg.get_version(MODEL, 1) == info
    assert reg.load_model(MODEL, 1, use_cache=False) is not None


def test_unserialisable_model_is_a_registry_error(reg: Registry):
    with pytest.raises(errors.RegistryError, match="skops"):
        register(reg, (i for i in range(3)))
    with pytest.raises(errors.RegistryError, match="not finite"):
        register(reg, {"a": 1}, metrics={"roc_auc": float("nan")})


# -- artifacts ---------------------------------------------------------------------------------
def test_load_model_verifies_and_caches(reg: Registry, model, data):
    X, _ = data
    register(reg, model)
    loaded = reg.load_model(MODEL, 1)
    np.testing.assert_array_equal(loaded.predict_proba(X), model.predict_proba(X))
    assert reg.load_model(MODEL, 1) is loaded  # cached by (id, sha256)
    assert reg.load_model(MODEL, 1, use_cache=False) is not loaded
    with pytest.raises(errors.VersionNotFound, match="no version 9"):
        reg.load_model(MODEL, 9)
    with pytest.raises(errors.VersionNotFound, match="no model named"):
        reg.get_version("nope", 1)


def test_tampered_artifact_refused_and_api_keeps_last_good(reg: Registry, model, data):
    X, _ = data
    register(reg, model)
    reg.promote_if_better(MODEL, 1)
    served_info, served = reg.load_champion(MODEL, fallback_to_cache=True)
    assert served_info.version == 1

    v2 = register(reg, model, metrics=metrics(0.80))
    assert reg.promote_if_better(MODEL, 2).promoted
    tamper(reg, v2.id)

    with pytest.raises(errors.ArtifactTampered, match="sha256"):
        reg.load_model(MODEL, 2)
    with pytest.raises(errors.ArtifactTampered):
        reg.load_champion(MODEL)
    info, still = reg.load_champion(MODEL, fallback_to_cache=True)
    assert info.version == 1 and still is served
    np.testing.assert_array_equal(still.predict_proba(X), model.predict_proba(X))
    assert "sha256" in reg.last_errors[MODEL]

    # A fresh process with no good model in memory cannot fall back: it must fail loudly.
    other = Registry(reg.url)
    try:
        with pytest.raises(errors.ArtifactTampered):
            other.load_champion(MODEL, fallback_to_cache=True)
    finally:
        other.close()

    # Tampering with an already-served champion: memory copy stays, a reload is refused.
    reg.rollback(MODEL, actor="ops", reason="v2 artifact corrupt")
    tamper(reg, served_info.id)
    info, model_again = reg.load_champion(MODEL, fallback_to_cache=True)
    assert info.version == 1 and model_again is served
    with pytest.raises(errors.ArtifactTampered):
        reg.load_model(MODEL, 1, use_cache=False)


def test_missing_artifact(reg: Registry, model):
    info = register(reg, model)
    replace_artifact(reg.url, info.id, lambda _: None)
    with pytest.raises(errors.ArtifactMissing):
        reg.load_model(MODEL, 1)


def test_untrusted_types_are_refused(reg: Registry):
    register(reg, NotTrusted(), "custom")
    with pytest.raises(errors.ArtifactRefused, match="NotTrusted"):
        reg.load_model("custom", 1)
    # Dangerous callables are refused even under a trusted prefix (builtins., numpy.).
    register(reg, FunctionTransformer(func=eval), "evil")
    with pytest.raises(errors.ArtifactRefused, match="builtins.eval"):
        reg.load_model("evil", 1)
    register(reg, FunctionTransformer(func=np.load), "evil2")
    with pytest.raises(errors.ArtifactRefused, match="numpy.load"):
        reg.load_model("evil2", 1)
    # The prefixes are a parameter: trusting this module's code makes it loadable.
    trusting = Registry(
        reg.url, trusted_prefixes=(*DEFAULT_TRUSTED_PREFIXES, NotTrusted.__module__)
    )
    try:
        assert trusting.load_model("custom", 1).weights == [1.0, 2.0]
    finally:
        trusting.close()


# -- promotion ---------------------------------------------------------------------------------
def test_compare_uses_aliases_and_margins():
    ok, findings, checks = compare(
        {"auc": 0.80, "ks_statistic": 0.40, "brier_score": 0.150},
        {"roc_auc": 0.79, "ks": 0.41, "brier": 0.152},
        PromotionPolicy(),
    )
    assert ok and checks["roc_auc"]["gain"] == pytest.approx(0.01)
    ok, findings, _ = compare(metrics(0.80), metrics(0.79), PromotionPolicy(min_auc_gain=0.02))
    assert not ok and "ROC-AUC" in findings[0]
    ok, findings, _ = compare({"roc_auc": 0.9}, metrics(0.7), PromotionPolicy())
    assert not ok and "candidate lacks ks" in findings[0]


def test_first_version_becomes_champion(reg: Registry, model):
    register(reg, model)
    d = reg.promote_if_better(MODEL, 1)
    assert d.promoted and d.champion_version == 1 and d.previous_champion is None
    assert reg.champion(MODEL).version == 1
    assert reg.champion("unknown") is None
    assert reg.load_champion("unknown") is None
    assert [e.action for e in reg.events(MODEL)] == ["auto_promote"]
    again = reg.promote_if_better(MODEL, 1)
    assert not again.promoted and "already the champion" in again.reason


def test_better_by_margin_is_promoted(reg: Registry, model):
    register(reg, model, metrics=metrics(0.750))
    reg.promote_if_better(MODEL, 1)
    register(reg, model, metrics=metrics(0.762, ks=0.39, brier=0.152))
    d = reg.promote_if_better(MODEL, 2, actor="retrain-flow")
    assert d.promoted and (d.champion_version, d.previous_champion) == (2, 1)
    assert [(v.version, v.stage) for v in reg.list_versions(MODEL)] == [
        (1, "archived"),
        (2, "champion"),
    ]
    event_ = reg.events(MODEL)[-1]
    assert (event_.from_version, event_.to_version, event_.actor) == (1, 2, "retrain-flow")
    assert "ROC-AUC" in event_.reason and event_.details["roc_auc"]["gain"] > 0.005
    assert reg.get_version(MODEL, 2).decision_reason == d.reason


def test_not_better_stays_candidate_with_reason(reg: Registry, model):
    register(reg, model, metrics=metrics(0.750))
    reg.promote_if_better(MODEL, 1)
    register(reg, model, metrics=metrics(0.752))
    preview = reg.evaluate_promotion(MODEL, 2, policy=PromotionPolicy())
    d = reg.promote_if_better(MODEL, 2)
    assert not d.promoted and d.reason == preview.reason
    assert d.champion_version == 1
    assert "gain +0.0020" in d.reason and "required 0.0050" in d.reason
    v2 = reg.get_version(MODEL, 2)
    assert v2.stage == "candidate" and v2.decision_reason == d.reason
    assert len(reg.events(MODEL)) == 1  # only the first auto-promotion
    # The margin is configurable: the same comparison passes with a smaller margin.
    assert reg.promote_if_better(MODEL, 2, policy=PromotionPolicy(min_auc_gain=0.001)).promoted


def test_ks_or_brier_loss_beyond_tolerance_is_refused(reg: Registry, model):
    register(reg, model, metrics=metrics(0.75, ks=0.40, brier=0.150))
    reg.promote_if_better(MODEL, 1)
    register(reg, model, metrics=metrics(0.78, ks=0.35, brier=0.150))  # KS -0.05
    d = reg.promote_if_better(MODEL, 2)
    assert not d.promoted and "KS" in d.reason and "beyond tolerance 0.0200" in d.reason
    register(reg, model, metrics=metrics(0.78, ks=0.40, brier=0.160))  # Brier +0.01
    d = reg.promote_if_better(MODEL, 3)
    assert not d.promoted and "Brier" in d.reason and "beyond tolerance 0.0050" in d.reason
    assert reg.promote_if_better(MODEL, 3, policy=PromotionPolicy(max_brier_increase=0.02)).promoted


def test_different_holdouts_need_reevaluated_champion_metrics(reg: Registry, model):
    register(reg, model, metrics=metrics(0.75), holdout_fingerprint="holdout-A")
    reg.promote_if_better(MODEL, 1)
    register(reg, model, metrics=metrics(0.80), extra={"holdout_fingerprint": "holdout-B"})
    d = reg.promote_if_better(MODEL, 2)
    assert not d.promoted and "different held-out set" in d.reason
    d = reg.promote_if_better(MODEL, 2, champion_metrics=metrics(0.70))
    assert d.promoted and d.checks["champion_metrics_source"].startswith("re-evaluated")


def test_manual_promote_and_rollback(reg: Registry, model):
    for auc in (0.75, 0.77, 0.70):
        register(reg, model, metrics=metrics(auc))
    reg.promote_if_better(MODEL, 1)
    reg.promote_if_better(MODEL, 2)
    d = reg.promote(MODEL, 3, actor="alice", reason="business override")
    assert (d.champion_version, d.previous_champion) == (3, 2)
    with pytest.raises(errors.PromotionError, match="already the champion"):
        reg.promote(MODEL, 3, actor="alice", reason="again")
    with pytest.raises(errors.PromotionError, match="reason"):
        reg.promote(MODEL, 1, actor="alice", reason=" ")
    with pytest.raises(errors.VersionNotFound):
        reg.promote(MODEL, 42, actor="alice", reason="typo")

    d = reg.rollback(MODEL, actor="bob", reason="v3 rejects too many")
    assert (d.champion_version, d.previous_champion) == (2, 3)
    assert reg.get_version(MODEL, 3).stage == "archived"
    assert reg.rollback(MODEL, actor="bob", reason="again").champion_version == 1
    with pytest.raises(errors.PromotionError, match="no previous champion"):
        reg.rollback(MODEL, actor="bob", reason="nothing left")
    history = [(e.action, e.from_version, e.to_version, e.actor) for e in reg.events(MODEL)]
    assert history == [
        ("auto_promote", None, 1, "flow"),
        ("auto_promote", 1, 2, "flow"),
        ("promote", 2, 3, "alice"),
        ("rollback", 3, 2, "bob"),
        ("rollback", 2, 1, "bob"),
    ]
    assert [v.stage for v in reg.list_versions(MODEL)] == ["champion", "archived", "archived"]


def test_champion_lineage():
    assert champion_lineage([("auto_promote", 1), ("auto_promote", 2), ("promote", 3)]) == [1, 2, 3]
    assert champion_lineage([("promote", 1), ("promote", 2), ("rollback", 1)]) == [1]
    assert champion_lineage([("promote", 1), ("promote", 2), ("promote", 1), ("rollback", 2)]) == [
        1,
        2,
    ]


def test_database_enforces_one_champion(reg: Registry, model):
    register(reg, model)
    register(reg, model)
    reg.promote_if_better(MODEL, 1)
    with pytest.raises(IntegrityError), reg.engine.begin() as conn:
        conn.execute(text("UPDATE model_versions SET stage = 'champion' WHERE version = 2"))
    assert count(reg, "SELECT count(*) FROM model_versions WHERE stage = 'champion'") == 1
    with pytest.raises(IntegrityError), reg.engine.begin() as conn:
        conn.execute(text("UPDATE model_versions SET stage = 'retired' WHERE version = 2"))


def test_readers_never_see_zero_or_two_champions(reg: Registry, model):
    register(reg, model)
    register(reg, model)
    reg.promote_if_better(MODEL, 1)
    model_id = count(reg, "SELECT id FROM registered_models WHERE name = :n", n=MODEL)
    stop = threading.Event()
    seen: list[int] = []
    failures: list[BaseException] = []
    lock = threading.Lock()

    def reader() -> None:
        local = []
        try:
            while not stop.is_set():
                with reg.engine.connect() as conn:
                    local.append(
                        conn.execute(
                            text(
                                "SELECT count(*) FROM model_versions "
                                "WHERE model_id = :m AND stage = 'champion'"
                            ),
                            {"m": model_id},
                        ).scalar_one()
                    )
                champ = reg.champion(MODEL)
                local.append(1 if champ is not None else 0)
        except BaseException as exc:  # noqa: BLE001 - reported below
            failures.append(exc)
        with lock:
            seen.extend(local)

    readers = [threading.Thread(target=reader) for _ in range(4)]
    for t in readers:
        t.start()
    try:
        for i in range(50):
            reg.promote(MODEL, 2 if i % 2 == 0 else 1, actor="test", reason=f"flip {i}")
    finally:
        time.sleep(0.05)
        stop.set()
        for t in readers:
            t.join()
    assert failures == []
    assert len(seen) > 50
    assert set(seen) == {1}
    assert reg.champion(MODEL).version == 1  # 50 flips end where they started
    assert len(reg.events(MODEL)) == 51


# -- command line ------------------------------------------------------------------------------
def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    return run_python("-m", "registry", *args, env=env, timeout=120)


def test_cli_list_json_promote_rollback(reg: Registry, model):
    import json

    register(reg, model, metrics=metrics(0.75))
    register(reg, model, metrics=metrics(0.76))
    reg.promote_if_better(MODEL, 1)

    out = run_cli("--db-url", reg.url, "list", "--json")
    assert out.returncode == 0, out.stderr
    rows = json.loads(out.stdout)
    assert isinstance(rows, list) and len(rows) == 2
    for row in rows:
        assert {"version", "model_name", "stage", "metrics", "created_at"} <= row.keys()
    assert [(r["version"], r["stage"]) for r in rows] == [(1, "champion"), (2, "candidate")]

    out = run_cli(
        "promote", "2", "--reason", "manual check", "--actor", "carol", "--db-url", reg.url
    )
    assert out.returncode == 0, out.stderr
    assert "champion is now v2" in out.stdout
    assert reg.champion(MODEL).version == 2
    assert reg.events(MODEL)[-1].actor == "carol"


def test_cli_in_process_commands(reg: Registry, model, capsys):
    import json

    from registry.cli import main

    register(reg, model)
    reg.promote_if_better(MODEL, 1)
    assert main(["--db-url", reg.url, "show", "champion", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["version"] == 1
    assert main(["--db-url", reg.url, "list"]) == 0
    assert "champion" in capsys.readouterr().out
    assert main(["--db-url", reg.url, "history", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["to_version"] == 1
    assert main(["--db-url", reg.url, "migrate"]) == 0
    assert head_revision() in capsys.readouterr().out
    assert main(["--db-url", reg.url, "show", "v1"]) == 1
    assert capsys.readouterr().err.startswith("error: version must be a number")
    assert main(["--db-url", reg.url, "rollback", "--reason", "x"]) == 1
    assert "no previous champion" in capsys.readouterr().err
    register(reg, model)
    assert main(["--db-url", reg.url, "promote", "2", "--reason", "ok", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["champion_version"] == 2
    assert main(["rollback", "--reason", "oops", "--db-url", reg.url]) == 0
    assert "champion is now v1 (was v2)" in capsys.readouterr().out
    assert reg.events(MODEL)[-1].actor.startswith("cli")
    with pytest.raises(SystemExit) as usage:  # --reason missing: argparse usage error
        main(["--db-url", reg.url, "promote", "1"])
    assert usage.value.code == 2


def test_cli_errors_are_one_line_without_traceback(reg: Registry, model):
    register(reg, model)
    out = run_cli("--db-url", reg.url, "show", "99")
    assert out.returncode == 1
    assert out.stderr.startswith("error:") and "no version 99" in out.stderr
    assert "Traceback" not in out.stderr and out.stderr.count("\n") == 1


def test_cli_unreachable_database(tmp_path: Path):
    url = "postgresql+psycopg://nobody@127.0.0.1:1/none?connect_timeout=2"
    out = run_cli("--db-url", url, "list")
    assert out.returncode == 1
    assert out.stderr.startswith("error: database") and "Traceback" not in out.stderr
    assert out.stderr.count("\n") == 1


def test_package_api_and_no_pipeline_imports():
    code = (
        "import sys, registry, registry.cli, registry.testing; "
        "missing = [n for n in registry.__all__ if not hasattr(registry, n)]; "
        "assert not missing and {'Registry', 'VersionInfo', 'PromotionPolicy', 'write_scores',"
        " 'ArtifactTampered'} <= set(registry.__all__), missing; "
        "bad = [m for m in sys.modules if m.split('.')[0] in ('credit', 'tasks', 'flows', 'api')]; "
        "print(bad); sys.exit(1 if bad else 0)"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


def test_sqlite_reader_not_blocked_by_open_write(tmp_path: Path, model):
    """WAL: the API can read the champion while a flow holds the write lock."""
    reg = Registry(f"sqlite:///{tmp_path / 'wal.db'}")
    try:
        register(reg, model)
        reg.promote_if_better(MODEL, 1)
        writer = create_engine(reg.url)
        with writer.connect() as conn:
            conn.exec_driver_sql("BEGIN IMMEDIATE")
            conn.exec_driver_sql("UPDATE model_versions SET decision_reason = 'busy'")
            started = time.perf_counter()
            assert reg.champion(MODEL).version == 1
            assert time.perf_counter() - started < 1.0
            conn.exec_driver_sql("ROLLBACK")
        writer.dispose()
    finally:
        reg.close()


# -- schema state: never migrated behind the operator's back -----------------------------------
def set_revision(reg: Registry, revision: str) -> None:
    with reg.engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = :r"), {"r": revision})


def test_schema_newer_than_code_is_one_clear_line(reg: Registry):
    """Issue 15 #5: alembic_version ahead of the code's head: no traceback, no migration."""
    reg.migrate()
    set_revision(reg, "0099_future")
    state = reg.check_schema()
    assert (state.status, state.database_revision, state.code_revision) == (
        "ahead",
        "0099_future",
        head_revision(),
    )
    expected = (
        f"the database schema is newer than this code (0099_future > {head_revision()}): "
        "upgrade the code"
    )
    for migrate in (True, False):
        other = Registry(reg.url, auto_migrate=migrate)
        try:
            with pytest.raises(errors.SchemaTooNew) as err:
                other.list_versions()
        finally:
            other.close()
        assert str(err.value) == expected
        assert (err.value.database_revision, err.value.code_revision) == (
            "0099_future",
            head_revision(),
        )
    with pytest.raises(errors.SchemaTooNew):
        reg.migrate()
    for command in ("list", "migrate"):
        out = run_cli("--db-url", reg.url, command)
        assert out.returncode == 2, out.stderr
        assert out.stderr == f"error: {expected}\n"
    assert reg.schema_revision() == "0099_future"  # untouched


def test_non_migrating_registry_never_creates_or_migrates(reg: Registry, db_url: str):
    """The API's mode (issue 15 #4): an empty or emptied database is reported, not migrated."""
    api = Registry(db_url, auto_migrate=False)
    try:
        state = api.check_schema()
        assert (state.status, state.database_revision) == ("behind", None)
        with pytest.raises(errors.SchemaNotMigrated, match="registry migrate") as err:
            api.champion(MODEL)
        assert err.value.database_revision is None
        assert reg.schema_revision() is None  # nothing was created
        reg.migrate()  # the operator migrates: picked up without a new handle
        assert api.check_schema().is_current and api.champion(MODEL) is None

        from alembic import command

        from registry.db import alembic_config

        cfg = alembic_config()
        with reg.engine.begin() as conn:  # the database is emptied while serving
            cfg.attributes["connection"] = conn
            command.downgrade(cfg, "base")
        assert api.check_schema().status == "behind"
        with pytest.raises(errors.SchemaNotMigrated):
            api.list_versions()
        assert reg.schema_revision() is None  # still not migrated by the reader
    finally:
        api.close()


def test_upgrade_from_0001_keeps_rows_and_adds_the_guards(db_url: str, model):
    from registry.db import upgrade

    reg = Registry(db_url)
    try:
        upgrade(reg.engine, "0001_initial")
        assert reg.check_schema().status == "behind"
        with reg.engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO prediction_log (request_id, created_at) "
                    "VALUES ('old', CURRENT_TIMESTAMP)"
                )
            )
        info = register(reg, model)  # migrates on write (the flows' behaviour)
        assert reg.schema_revision() == head_revision()
        assert (
            count(reg, "SELECT count(*) FROM prediction_log WHERE client_request_id IS NULL") == 1
        )
        with pytest.raises(IntegrityError, match="never deleted"), reg.engine.begin() as conn:
            conn.execute(text("DELETE FROM model_artifacts WHERE version_id = :v"), {"v": info.id})
    finally:
        reg.close()


# -- append-only versions, verified promotions (issue 15 #6) ------------------------------------
def test_versions_artifacts_and_events_cannot_be_deleted(reg: Registry, model):
    info = register(reg, model)
    reg.promote_if_better(MODEL, 1)
    for sql, message in (
        ("DELETE FROM model_artifacts WHERE version_id = :v", "never deleted"),
        ("DELETE FROM model_versions WHERE id = :v", "never deleted"),
        ("DELETE FROM promotion_events", "append-only"),
        ("UPDATE promotion_events SET reason = 'rewritten'", "append-only"),
    ):
        with pytest.raises(IntegrityError, match=message), reg.engine.begin() as conn:
            conn.execute(text(sql), {"v": info.id})
    if reg.engine.dialect.name == "postgresql":  # TRUNCATE skips row triggers
        for table in ("model_artifacts", "model_versions", "promotion_events"):
            with pytest.raises(IntegrityError, match="kept"), reg.engine.begin() as conn:
                conn.execute(text(f"TRUNCATE {table} CASCADE"))
    assert count(reg, "SELECT count(*) FROM model_artifacts") == 1
    assert reg.events(MODEL)[0].reason.startswith("v1 promoted")
    assert reg.load_model(MODEL, 1, use_cache=False) is not None


@pytest.mark.parametrize(
    ("change", "cause"),
    [
        (flip_one_byte, errors.ArtifactTampered),
        (lambda _: None, errors.ArtifactMissing),
        (lambda b: b"PK\x03\x04 forged", errors.ArtifactTampered),
    ],
    ids=["flipped-byte", "row-deleted", "replaced"],
)
def test_promotion_of_a_tampered_version_is_refused(reg: Registry, model, change, cause):
    register(reg, model, metrics=metrics(0.75))
    reg.promote_if_better(MODEL, 1)
    v2 = register(reg, model, metrics=metrics(0.80))
    replace_artifact(reg.url, v2.id, change)

    for attempt in (
        lambda: reg.promote(MODEL, 2, actor="attacker", reason="swap"),
        lambda: reg.promote_if_better(MODEL, 2),
    ):
        with pytest.raises(errors.ArtifactVerificationFailed) as err:
            attempt()
        assert isinstance(err.value, errors.PromotionError)  # the API's 409
        assert isinstance(err.value.cause, cause) and err.value.version == 2
        assert f"{MODEL} v2 refused: {cause.__name__}" in str(err.value)
    assert reg.champion(MODEL).version == 1
    assert reg.get_version(MODEL, 2).stage == "candidate"
    assert len(reg.events(MODEL)) == 1


def test_rollback_to_a_tampered_version_is_refused(reg: Registry, model):
    register(reg, model, metrics=metrics(0.75))
    register(reg, model, metrics=metrics(0.80))
    reg.promote_if_better(MODEL, 1)
    reg.promote_if_better(MODEL, 2)
    tamper(reg, reg.get_version(MODEL, 1).id)
    with pytest.raises(
        errors.ArtifactVerificationFailed, match="rollback of bati-credit v1 refused"
    ):
        reg.rollback(MODEL, actor="ops", reason="back")
    assert reg.champion(MODEL).version == 2
    assert [e.action for e in reg.events(MODEL)] == ["auto_promote", "auto_promote"]


def test_verified_promotion_still_switches_and_reuses_the_loaded_model(reg: Registry, model):
    register(reg, model)
    register(reg, model)
    reg.promote_if_better(MODEL, 1)
    loaded = reg.load_model(MODEL, 2)
    assert reg.promote(MODEL, 2, actor="ops", reason="ok").champion_version == 2
    assert reg.load_champion(MODEL)[1] is loaded  # verified bytes, same cached object
    assert reg.rollback(MODEL, actor="ops", reason="undo").champion_version == 1


# -- handle life cycle (issue 12 #5) ------------------------------------------------------------
def test_closed_registry_fails_clearly(db_url: str, model):
    from registry import log_predictions

    reg = Registry(db_url)
    register(reg, model)
    engine = reg.engine
    assert engine.pool.checkedin() >= 1
    reg.close()
    assert reg.closed and engine.pool.checkedin() == 0  # pooled connections released
    for use in (
        lambda: reg.list_versions(),
        lambda: reg.load_model(MODEL, 1),
        lambda: reg.check_schema(),
        lambda: reg.engine,
        lambda: log_predictions(reg, [{"request_id": "r"}]),
    ):
        with pytest.raises(errors.RegistryClosed, match="is closed"):
            use()
    reg.close()  # idempotent


# -- command line: bad URLs (issue 15 #14) ------------------------------------------------------
@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("mysql://bati:S3cret-77@db.example/bati", "unsupported database backend 'mysql'"),
        ("not a url", "not a database URL"),
        ("postgresql+pg8000://bati:S3cret-77@h/db", "driver for 'postgresql+pg8000'"),
        ("postgresql+nodriver://bati:S3cret-77@h/db", "unknown database driver"),
    ],
)
def test_cli_bad_database_url_is_one_line_exit_2(url: str, message: str):
    for args in (("--db-url", url, "list"), ("migrate", "--db-url", url)):
        out = run_cli(*args)
        assert out.returncode == 2, out.stderr
        assert out.stderr.startswith("error: ") and message in out.stderr
        assert out.stderr.count("\n") == 1 and "Traceback" not in out.stderr
        assert "S3cret-77" not in out.stderr
    with pytest.raises(errors.RegistryError, match=re.escape(message)):
        Registry(url)
