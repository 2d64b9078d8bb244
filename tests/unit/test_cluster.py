"""Scale-out by default (issue 16.5): every way a flow starts picks the Dask task runner from
BATI_DASK_ADDRESS; without it, nothing changes."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest
from prefect.flows import load_flow_from_entrypoint
from prefect_dask import DaskTaskRunner

from flows.cluster import cluster_task_runner, on_cluster
from flows.config import DASK_ADDRESS_ENV
from flows.retrain import retrain

ROOT = Path(__file__).resolve().parents[2]
ADDRESS = "tcp://10.0.0.5:8786"


def test_on_cluster_reads_the_address_or_the_environment(monkeypatch) -> None:
    monkeypatch.delenv(DASK_ADDRESS_ENV, raising=False)
    assert cluster_task_runner() is None
    assert on_cluster(retrain) is retrain
    explicit = on_cluster(retrain, ADDRESS).task_runner
    assert isinstance(explicit, DaskTaskRunner) and explicit.address == ADDRESS
    monkeypatch.setenv(DASK_ADDRESS_ENV, ADDRESS)
    from_env = on_cluster(retrain, flow_run_name="x")
    assert isinstance(from_env.task_runner, DaskTaskRunner) and from_env.name == "retrain"
    assert on_cluster(retrain, None) is retrain  # an explicit None: no cluster


def test_pool_deployment_entrypoints_run_on_dask_from_the_environment(monkeypatch) -> None:
    """deployments/prefect.yaml's retrain and score entrypoints (a worker imports them in the
    flow run's process, with the worker's environment)."""
    import yaml

    spec = yaml.safe_load((ROOT / "deployments" / "prefect.yaml").read_text())
    entry = {d["name"]: d["entrypoint"] for d in spec["deployments"]}
    assert entry["nightly-retrain-pool"] == "deployments/entrypoints.py:retrain"
    assert entry["nightly-score-pool"] == "deployments/entrypoints.py:score"
    monkeypatch.chdir(ROOT)
    monkeypatch.setenv(DASK_ADDRESS_ENV, ADDRESS)
    for name in ("retrain", "score"):
        flow = load_flow_from_entrypoint(entry[f"nightly-{name}-pool"])
        assert flow.name == name
        assert isinstance(flow.task_runner, DaskTaskRunner), name
        assert flow.task_runner.address == ADDRESS
    monkeypatch.delenv(DASK_ADDRESS_ENV)
    import deployments.entrypoints as entrypoints

    importlib.reload(entrypoints)
    assert not isinstance(entrypoints.retrain.task_runner, DaskTaskRunner)


def test_served_deployments_start_from_the_dask_aware_entrypoints(monkeypatch) -> None:
    """Before issue 16.5 the served retrain and score ran flows/retrain.py and flows/score.py
    as decorated: BATI_DASK_ADDRESS reached no data stage."""
    from deployments.serve import build_deployments

    monkeypatch.chdir(ROOT)
    night, retraining, scoring = build_deployments()
    assert night.entrypoint.endswith("flows/nightly.py:nightly")
    assert retraining.entrypoint == "deployments/entrypoints.py:retrain"
    assert scoring.entrypoint == "deployments/entrypoints.py:score"
    monkeypatch.setenv(DASK_ADDRESS_ENV, ADDRESS)
    assert isinstance(load_flow_from_entrypoint(retraining.entrypoint).task_runner, DaskTaskRunner)


@pytest.mark.parametrize("module", ["flows/main.py", "flows/nightly.py"])
def test_make_targets_retrain_and_score_through_the_cluster_path(module: str) -> None:
    """``make run`` (flows.main) and ``make nightly`` never call retrain() or score() bare."""
    import ast

    tree = ast.parse((ROOT / module).read_text())
    bare = [
        node.lineno
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id in ("retrain", "score")
    ]
    assert bare == [], f"{module}: retrain()/score() called without on_cluster at {bare}"
    assert "on_cluster" in (ROOT / module).read_text()
