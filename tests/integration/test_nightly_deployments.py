"""The served deployments (deployments/serve.py) and the work-pool ones (deployments/prefect.yaml)
registered on one Prefect server keep their own names, entrypoints and pools: neither takes over
the other, whichever is registered last."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from builders import ROOT

PREFECT = str(Path(sys.executable).parent / "prefect")


def _pool_deploy(env: dict[str, str]) -> None:
    subprocess.run(
        [PREFECT, "work-pool", "create", "bati-process", "--type", "process"],
        env=env,
        capture_output=True,  # already there on a second run: fine
    )
    proc = subprocess.run(
        [PREFECT, "--no-prompt", "deploy", "--all", "--prefect-file", "deployments/prefect.yaml"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]


def test_served_and_work_pool_deployments_do_not_take_over_each_other(prefect_harness) -> None:
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL

    from deployments.schedule import (
        NIGHTLY_DEPLOYMENT,
        NIGHTLY_POOL_DEPLOYMENT,
        NIGHTLY_RETRAIN_RUNS,
        SCORE_DEPLOYMENT,
        SCORE_POOL_DEPLOYMENT,
    )
    from deployments.serve import build_deployments
    from flows.nightly import NIGHTLY_RETRAIN_RUN

    # The score triggers leave out the nightly's own retrain runs (it scores them itself).
    assert NIGHTLY_RETRAIN_RUN == NIGHTLY_RETRAIN_RUNS
    env = {**os.environ, "PREFECT_API_URL": str(PREFECT_API_URL.value())}
    env["BATI_PROJECT_DIR"] = str(ROOT)
    for deployment in build_deployments():
        deployment.apply()
    _pool_deploy(env)
    for deployment in build_deployments():  # served again, after the pool's
        deployment.apply()
    with get_client(sync_client=True) as client:
        served = client.read_deployment_by_name(f"nightly/{NIGHTLY_DEPLOYMENT}")
        pooled = client.read_deployment_by_name(f"nightly/{NIGHTLY_POOL_DEPLOYMENT}")
        score_served = client.read_deployment_by_name(f"score/{SCORE_DEPLOYMENT}")
        score_pooled = client.read_deployment_by_name(f"score/{SCORE_POOL_DEPLOYMENT}")
    assert served.id != pooled.id and score_served.id != score_pooled.id
    assert served.entrypoint.endswith("flows/nightly.py:nightly")
    assert pooled.entrypoint == "flows/nightly.py:nightly"
    assert served.work_pool_name is None and pooled.work_pool_name == "bati-process"
    assert score_served.work_pool_name is None and score_pooled.work_pool_name == "bati-process"
    # The nightly runs are scheduled in both; no deployment has a source or the demo baked in.
    assert served.schedules and pooled.schedules
    for deployment in (served, pooled):
        config = (deployment.parameters or {}).get("config") or {}
        assert not config.get("demo") and not config.get("landing")
