"""The flows' command lines, generated from their configuration models."""

from __future__ import annotations

import ast
import json
import os

import pytest
from builders import ROOT
from fastapi.encoders import jsonable_encoder

from flows.cli import build_parser, parse_config, run_cli
from flows.config import RetrainConfig, ScoreConfig, mask_secrets

DOCUMENTED_FLAGS = [
    "--data",
    "--table",
    "--target",
    "--db-url",
    "--as-of",
    "--model-name",
    "--observation-days",
    "--performance-days",
    "--candidates",
    "--promotion-margin",
    "--max-bad-share",
    "--out-dir",
    "--dask-address",
    "--out-of-core",
    "--in-memory",
    "--search-max-rows",
    "--fit-max-rows",
]


def _parse(argv: list[str], model=RetrainConfig):
    return parse_config(model, argv, prog="test", description="test")


def test_every_documented_flag_exists_and_every_field_has_an_option():
    parser = build_parser(RetrainConfig, prog="test", description="test")
    options = {s for action in parser._actions for s in action.option_strings}
    assert set(DOCUMENTED_FLAGS) <= options
    for name, field in RetrainConfig.model_fields.items():
        hidden = (field.json_schema_extra or {}).get("cli_hidden")
        assert hidden or "--" + name.replace("_", "-") in options or name == "out_of_core", name


def test_defaults_come_from_the_model(monkeypatch):
    monkeypatch.delenv("BATI_DASK_ADDRESS", raising=False)
    assert _parse([]) == RetrainConfig()
    assert _parse([], ScoreConfig) == ScoreConfig()


def test_flags_parse_into_typed_fields(monkeypatch):
    monkeypatch.delenv("BATI_DB_URL", raising=False)
    config = _parse(
        [
            "--data", "tx.csv", "--as-of", "2019-02-01", "--observation-days", "90",
            "--performance-days", "20", "--candidates", "logreg,hist_gb",
            "--promotion-margin", "0.01", "--max-bad-share", "0.05", "--out-dir", "out",
            "--dask-address", "tcp://h:8786", "--search-max-rows", "500",
            "--fit-max-rows", "800", "--model-name", "m", "--table", "t.csv", "--target", "bad",
        ]
    )  # fmt: skip
    assert config.observation_days == 90 and config.performance_days == 20
    assert config.candidates == ["logreg", "hist_gb"]
    assert config.promotion_margin == 0.01 and config.max_bad_share == 0.05
    assert config.search_max_rows == 500 and config.fit_max_rows == 800
    assert config.as_of.year == 2019 and config.dask_address == "tcp://h:8786"
    assert (config.table, config.target, config.model_name) == ("t.csv", "bad", "m")
    assert _parse(["--out-of-core"]).out_of_core is True
    assert _parse(["--in-memory"]).out_of_core is False
    assert _parse([]).out_of_core is None
    assert _parse(["--candidates", ""]).candidates == RetrainConfig().candidates
    with pytest.raises(SystemExit):
        _parse(["--out-of-core", "--in-memory"])
    with pytest.raises(ValueError):
        _parse(["--candidates", "logreg,xgboost"])
    with pytest.raises(ValueError):
        _parse(["--observation-days", "3"])  # the model's bounds apply


def test_db_url_goes_to_the_environment_not_to_a_parameter(monkeypatch):
    monkeypatch.delenv("BATI_DB_URL", raising=False)
    url = "postgresql+psycopg://bati:Sup3rSecret@db.example:5432/bati"
    for model in (RetrainConfig, ScoreConfig):
        config = _parse(["--db-url", url], model)
        assert config.db_url is None
        assert os.environ["BATI_DB_URL"] == url


def test_urls_are_masked_when_the_config_is_serialised():
    config = RetrainConfig(
        db_url="postgresql+psycopg://bati:Sup3rSecret@db:5432/bati",
        data="postgresql+psycopg://reader:An0ther@db:5432/bati#transactions",
    )
    for dumped in (jsonable_encoder(config), json.loads(config.model_dump_json())):
        assert "Sup3rSecret" not in json.dumps(dumped) and "An0ther" not in json.dumps(dumped)
        assert dumped["db_url"] == "postgresql+psycopg://bati:***@db:5432/bati"
    assert config.db_url.endswith(":Sup3rSecret@db:5432/bati")  # the run itself keeps it
    assert mask_secrets("see /tmp/x.csv and sqlite:///var/bati.db") == (
        "see /tmp/x.csv and sqlite:///var/bati.db"
    )


def test_a_failed_run_names_its_flow(capsys):
    def boom():
        raise RuntimeError("no champion for postgresql://u:pw@h/db")

    assert run_cli(boom, flow_name="score") == 1
    out, err = capsys.readouterr()
    assert "error: score failed: RuntimeError" in err and "retrain" not in err
    assert "pw@" not in err and "pw@" not in out
    assert json.loads(out.strip().splitlines()[-1])["error"].startswith("RuntimeError")


def test_score_flow_does_not_import_the_retrain_module():
    tree = ast.parse((ROOT / "flows" / "score.py").read_text())
    imported = {
        node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module
    }
    assert "flows.retrain" not in imported and "flows.cli" in imported


def test_log_records_leave_with_passwords_masked():
    import logging

    from flows.config import install_secret_mask

    lines: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(self.format(record))

    logger, handler = logging.getLogger("prefect.h2-mask-test"), Keep()
    logger.addHandler(handler)
    try:
        install_secret_mask()
        logger.warning("cannot reach %s", "postgresql+psycopg://u:Sup3r@h:5432/db")
    finally:
        logger.removeHandler(handler)
    assert lines == ["cannot reach postgresql+psycopg://u:***@h:5432/db"]


def _pool_pids() -> set[int]:
    """Start joblib's process-wide pool (2 workers, as a flow does) and return its workers."""
    from joblib import Parallel, delayed

    from tasks.lifecycle import install_worker_reaper

    install_worker_reaper()
    return set(Parallel(n_jobs=2)(delayed(_slow_pid)() for _ in range(4)))


def _slow_pid() -> int:
    import time

    time.sleep(0.3)  # both workers get a share
    return os.getpid()


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    with open(f"/proc/{pid}/stat") as stat:  # a zombie has exited too
        return stat.read().split(")")[-1].split()[0] == "Z"


@pytest.mark.parametrize("fails", [False, True])
def test_a_command_kills_its_pool_workers_instead_of_waiting_for_their_exit(fails, capsys):
    """The workers hold nothing once the command is done: they are killed when it ends (failed
    or not), so the interpreter's exit does not wait for each to tear down; a later ``Parallel``
    starts a new pool."""
    from joblib import Parallel, delayed

    workers: set[int] = set()

    def command():
        workers.update(_pool_pids())
        if fails:
            raise RuntimeError("broken feed")
        return {"ok": True}

    assert run_cli(command, flow_name="retrain") == (1 if fails else 0)
    assert len(workers) == 2 and all(_gone(pid) for pid in workers)
    assert Parallel(n_jobs=2)(delayed(abs)(-i) for i in range(4)) == [0, 1, 2, 3]
    capsys.readouterr()
