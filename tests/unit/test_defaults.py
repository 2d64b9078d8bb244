"""One place per default: the model name, windows, margins, the var/ folder, the nightly cron."""

from __future__ import annotations

from pathlib import Path

import yaml

from schemas import defaults

ROOT = Path(__file__).resolve().parents[2]


def test_prefect_yaml_schedule_agrees_with_schedule_py():
    from deployments import schedule as s

    doc = yaml.safe_load((ROOT / "deployments" / "prefect.yaml").read_text())
    by_name = {d["name"]: d for d in doc["deployments"]}
    pool = (s.NIGHTLY_POOL_DEPLOYMENT, s.RETRAIN_POOL_DEPLOYMENT, s.SCORE_POOL_DEPLOYMENT)
    assert set(by_name) == set(pool)  # never the served names: no take-over either way
    (schedule,) = by_name[s.NIGHTLY_POOL_DEPLOYMENT]["schedules"]
    assert schedule["cron"] == s.NIGHTLY_CRON
    assert schedule["timezone"] == s.DEFAULT_TIMEZONE
    assert by_name[s.NIGHTLY_POOL_DEPLOYMENT]["entrypoint"] == "flows/nightly.py:nightly"
    assert "schedules" not in by_name[s.RETRAIN_POOL_DEPLOYMENT]  # the night retrains
    (trigger,) = by_name[s.SCORE_POOL_DEPLOYMENT]["triggers"]
    expected = s.score_after_retrain_trigger(s.RETRAIN_POOL_DEPLOYMENT)
    for key in ("name", "expect", "match", "match_related", "posture", "threshold"):
        assert trigger[key] == expected[key], key


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


def test_the_flow_settings_defaults_are_the_modules_defaults():
    """schemas/settings.py holds the BATI_* defaults; the modules' own constants agree."""
    from credit import report_links, sources
    from deployments import schedule
    from schemas import settings

    assert settings.DEFAULT_SCHEDULE_TZ == schedule.DEFAULT_TIMEZONE
    assert settings.DEFAULT_API_URL == report_links.DEFAULT_API_URL
    assert settings.DEFAULT_MAX_CSV_BYTES == sources.DEFAULT_MAX_CSV_BYTES


def test_var_path_reads_the_setting_and_ignores_other_bad_values(monkeypatch, tmp_path):
    monkeypatch.setenv("BATI_VAR_DIR", str(tmp_path / "v"))
    monkeypatch.setenv("BATI_MAX_CSV_BYTES", "abc")  # refused at start-up, not here
    assert defaults.var_path() == tmp_path / "v"
    monkeypatch.setenv("BATI_VAR_DIR", "")  # empty is unset
    assert defaults.var_path() == defaults.PROJECT_ROOT / "var"


def test_cached_task_results_follow_an_exported_prefect_home(tmp_path):
    """`PREFECT_HOME=/fresh python -m flows.retrain`: task results are cached under that home,
    not the project's var/prefect (before: a "fresh" home still found results cached by an
    earlier run there and skipped the grid searches)."""
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k != "PREFECT_RESULTS_LOCAL_STORAGE_PATH"}
    env["PREFECT_HOME"] = str(tmp_path / "home")
    code = "import os, flows; print(os.environ['PREFECT_RESULTS_LOCAL_STORAGE_PATH'])"
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert Path(out.stdout.strip()) == tmp_path / "home" / "results"


def test_an_exported_prefect_home_is_created_with_its_parents(tmp_path):
    """A fresh clone: `make run` exports PREFECT_HOME=var/prefect before var/ exists. Prefect
    creates only the last level, so it warned "Failed to create the Prefect home directory" and
    the temporary server started with the command failed to open its database."""
    import os
    import subprocess
    import sys

    home = tmp_path / "var" / "prefect"
    env = {**os.environ, "PREFECT_HOME": str(home)}
    code = "import flows, prefect.context"
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert home.is_dir()
    assert "Failed to create the Prefect home directory" not in out.stderr
