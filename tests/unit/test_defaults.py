"""One place per default: the model name, windows, margins, the var/ folder, the nightly cron."""

from __future__ import annotations

from pathlib import Path

import yaml

from schemas import defaults

ROOT = Path(__file__).resolve().parents[2]


def test_prefect_yaml_schedule_agrees_with_schedule_py():
    from deployments.schedule import DEFAULT_TIMEZONE, RETRAIN_CRON, RETRAIN_DEPLOYMENT

    doc = yaml.safe_load((ROOT / "deployments" / "prefect.yaml").read_text())
    by_name = {d["name"]: d for d in doc["deployments"]}
    assert set(by_name) == {RETRAIN_DEPLOYMENT, "nightly-score"}
    (schedule,) = by_name[RETRAIN_DEPLOYMENT]["schedules"]
    assert schedule["cron"] == RETRAIN_CRON
    assert schedule["timezone"] == DEFAULT_TIMEZONE
    assert by_name[RETRAIN_DEPLOYMENT]["entrypoint"] == "flows/retrain.py:retrain"


def test_the_registry_default_database_honours_bati_var_dir(monkeypatch, tmp_path):
    from credit.paths import var_dir
    from registry import default_db_url

    monkeypatch.delenv("BATI_DB_URL", raising=False)
    monkeypatch.setenv("BATI_VAR_DIR", str(tmp_path / "elsewhere"))
    assert var_dir() == tmp_path / "elsewhere"
    assert default_db_url() == f"sqlite:///{tmp_path / 'elsewhere' / 'bati.db'}"


def test_flow_defaults_come_from_the_shared_module():
    from flows.config import RetrainConfig, ScoreConfig

    config = RetrainConfig()
    assert config.observation_days == defaults.OBSERVATION_DAYS
    assert config.performance_days == defaults.PERFORMANCE_DAYS
    policy = config.promotion_policy()
    assert (policy.min_auc_gain, policy.max_ks_loss, policy.max_brier_increase) == (
        defaults.MIN_AUC_GAIN,
        defaults.MAX_KS_LOSS,
        defaults.MAX_BRIER_INCREASE,
    )
    assert ScoreConfig().model_name == defaults.DEFAULT_MODEL_NAME
