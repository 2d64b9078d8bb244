"""Settings of the flows/CLI/deployment processes (schemas/settings.py, issue #17 item 5)."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest
from builders import ROOT

from schemas.settings import (
    FlowSettings,
    SettingError,
    env_var,
    load_flow_settings,
    setting,
)

SECRET = "S3cret-4242"
SECRETS_ENV = {
    "BATI_DB_URL": f"postgresql+psycopg://bati:{SECRET}@db.bank/bati",
    "BATI_STORE_URL": f"postgresql+psycopg://bati:{SECRET}@db.bank/bati#transactions",
    "BATI_LANDING": f"postgresql+psycopg://bati:{SECRET}@db.bank/core#xente",
    "BATI_ALERT_WEBHOOK": f"https://hooks.example/{SECRET}",
    "BATI_ADMIN_TOKEN": SECRET * 4,
}
BAD_VALUES = [
    ("BATI_MAX_CSV_BYTES", "abc", "whole number of bytes"),
    ("BATI_MAX_CSV_BYTES", "0", "greater than or equal to 1"),
    ("BATI_SCHEDULE_TZ", "Mars/Phobos", "unknown time zone"),
    ("BATI_DB_URL", f"postgresql+psycopg://bati:{SECRET}@db:notaport/bati", "not a database URL"),
    ("BATI_DB_URL", f"mysql://bati:{SECRET}@db/bati", "unsupported database backend 'mysql'"),
    ("BATI_STORE_URL", f"postgresql+psycopg://bati:{SECRET}@db/bati", "URL#table"),
    ("BATI_API_URL", "127.0.0.1:8000", "http"),
    ("BATI_API_PORT", "eighty", "integer"),
    ("BATI_ALERT_WEBHOOK", f"hooks.example/{SECRET}", "http"),
    ("BATI_ADMIN_TOKEN", SECRET, "at least 32"),
]
#: Documented BATI_* variables that are no field of either settings class, and why.
NOT_SETTINGS = {
    "BATI_API_BIND": "gunicorn.conf.py (the API server's own configuration)",
    "BATI_API_THREADS": "gunicorn.conf.py",
    "BATI_API_TIMEOUT": "gunicorn.conf.py",
    "BATI_API_ACCESSLOG": "gunicorn.conf.py",
    "BATI_API_LOGLEVEL": "gunicorn.conf.py",
    "BATI_PROJECT_DIR": "templated into deployments/prefect.yaml by Prefect, read by no code",
    "BATI_TEST_PG_URL": "the test suite's PostgreSQL server",
}


def test_defaults_without_environment() -> None:
    settings = load_flow_settings({})
    assert settings.api_url == "http://127.0.0.1:8000"
    assert settings.schedule_tz == "Africa/Addis_Ababa"
    assert settings.max_csv_bytes == 1024**3 and settings.api_port == 8000
    assert settings.db_url is None and settings.var_dir is None and settings.landing is None


def test_values_are_typed_and_empty_means_unset() -> None:
    env = {**SECRETS_ENV, "BATI_MAX_CSV_BYTES": " 1e9 ", "BATI_API_PORT": "8080"}
    env.update(BATI_VAR_DIR="/tmp/v", BATI_SCHEDULE_TZ="", BATI_API_URL="https://api.bank/")
    settings = load_flow_settings(env)
    assert settings.max_csv_bytes == 10**9 and settings.api_port == 8080
    assert str(settings.var_dir) == "/tmp/v" and settings.schedule_tz == "Africa/Addis_Ababa"
    assert settings.api_url == "https://api.bank"
    assert settings.secret("db_url") == SECRETS_ENV["BATI_DB_URL"]
    assert setting("landing", env) == SECRETS_ENV["BATI_LANDING"]  # plain value for the code


@pytest.mark.parametrize(("variable", "value", "problem"), BAD_VALUES)
def test_a_bad_value_is_one_line_naming_the_variable(variable, value, problem) -> None:
    with pytest.raises(SettingError) as caught:
        load_flow_settings({variable: value})
    message = str(caught.value)
    assert message.startswith(f"{variable}: ") and problem in message
    assert "\n" not in message and SECRET not in message


def test_one_setting_is_validated_alone() -> None:
    env = {"BATI_MAX_CSV_BYTES": "abc", "BATI_VAR_DIR": "/tmp/v"}
    assert str(setting("var_dir", env)) == "/tmp/v"  # another variable's bad value: no matter
    with pytest.raises(SettingError, match="^BATI_MAX_CSV_BYTES: "):
        setting("max_csv_bytes", env)


def test_secrets_never_print() -> None:
    settings = load_flow_settings(SECRETS_ENV)
    for shown in (
        repr(settings),
        str(settings),
        settings.model_dump_json(),
        str(settings.model_dump()),
    ):
        assert SECRET not in shown
    for field in ("db_url", "store_url", "landing", "alert_webhook", "admin_token"):
        assert settings.secret(field) is not None  # set, but masked above


def test_every_bati_variable_the_readme_documents_is_a_setting() -> None:
    from api.config import ENV_FIELDS

    documented = set(re.findall(r"\bBATI_[A-Z0-9_]*[A-Z0-9]", (ROOT / "README.md").read_text()))
    fields = {env_var(f) for f in FlowSettings.model_fields} | {env_var(f) for f in ENV_FIELDS}
    assert documented - fields - set(NOT_SETTINGS) == set()
    assert set(NOT_SETTINGS) <= documented  # no stale exemption


def test_every_bati_variable_the_flows_read_is_a_setting() -> None:
    """No ad-hoc ``os.environ`` read of a BATI_* variable is left in the flows' layers."""
    # a quoted BATI_* name, or a constant naming one (LANDING_ENV, ENV_VAR, ...)
    pattern = re.compile(r"""(os\.environ(\.get)?[\[(]|getenv\()\s*(["']BATI_|[A-Z][A-Z0-9_]*\b)""")
    found = []
    for package in ("schemas", "credit", "registry", "feed", "tasks", "flows", "deployments"):
        for path in (ROOT / package).rglob("*.py"):
            if path.name == "testing.py":  # registry/testing.py: BATI_TEST_PG_URL, tests only
                continue
            for n, line in enumerate(path.read_text().splitlines(), 1):
                if pattern.search(line) and "os.environ[env] =" not in line:
                    found.append(f"{path.relative_to(ROOT)}:{n}: {line.strip()}")
    assert found == []


def _run(module: str, variable: str, value: str, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, variable: value, "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def _entry_points() -> dict[str, object]:
    """Each entry point called in-process; returns its exit code."""
    from deployments import alerts, serve
    from flows import main as make_run
    from flows.cli import cli_main
    from flows.config import RetrainConfig

    def served() -> int:
        with pytest.raises(SystemExit) as stopped:
            serve.main()
        return int(stopped.value.code)

    def ran(config: RetrainConfig) -> None:
        raise AssertionError("the flow ran despite a bad setting")

    return {
        "cli_main": lambda: cli_main(RetrainConfig, [], ran, flow_name="retrain", description="x"),
        "flows.main": lambda: make_run.main(["--no-serve"]),
        "deployments.serve": served,
        "deployments.alerts": lambda: alerts.main([]),
    }


@pytest.mark.parametrize(
    "entry", ["cli_main", "flows.main", "deployments.serve", "deployments.alerts"]
)
@pytest.mark.parametrize(("variable", "value", "problem"), BAD_VALUES)
def test_entry_points_refuse_a_bad_value_at_start_up(
    entry, variable, value, problem, monkeypatch, capsys
) -> None:
    monkeypatch.setenv(variable, value)
    assert _entry_points()[entry]() == 2
    out, err = capsys.readouterr()
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: invalid setting {variable}: ")
    assert problem in lines[0] and SECRET not in out + err


@pytest.mark.parametrize(
    ("module", "args", "variable", "value"),
    [
        ("flows.retrain", ("--help",), "BATI_MAX_CSV_BYTES", "abc"),
        ("flows.main", ("--help",), "BATI_SCHEDULE_TZ", "Mars/Phobos"),
        ("deployments.serve", (), "BATI_DB_URL", f"postgresql://u:{SECRET}@h:port/db"),
    ],
)
def test_a_bad_value_exits_the_process_with_one_line(module, args, variable, value) -> None:
    """The real process: exit code 2, one stderr line naming the variable, no traceback."""
    done = _run(module, variable, value, *args)
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2, done.stderr
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    assert lines[0].startswith(f"error: invalid setting {variable}: ")
    assert SECRET not in done.stderr + done.stdout
