"""Scale-out: the retrain flow on a local multi-process Dask cluster (prefect-dask + joblib)."""

from __future__ import annotations

from pathlib import Path

import distributed
import pytest

from flows.retrain import DASK_ADDRESS_ENV, RetrainConfig, run_retrain
from registry import Registry

FAST_GRIDS = {
    "logreg": {"clf__C": [0.1, 1.0]},
    "random_forest": {"clf__n_estimators": [40], "clf__max_depth": [6]},
    "hist_gb": {"clf__max_iter": [40], "clf__learning_rate": [0.1]},
}


@pytest.mark.e2e
def test_retrain_runs_on_a_dask_cluster(prefect_harness, tmp_path: Path, small_path: Path) -> None:
    with (
        distributed.LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            processes=True,
            dashboard_address=None,
            silence_logs=40,
        ) as cluster,
        distributed.Client(cluster, set_as_default=False) as observer,
        distributed.get_task_stream(client=observer) as stream,
    ):
        config = RetrainConfig(
            data=str(small_path),
            db_url=f"sqlite:///{tmp_path / 'reg.db'}",
            grids=FAST_GRIDS,
            importance_repeats=1,
            out_dir=str(tmp_path / "run"),
            dask_address=cluster.scheduler_address,
        )
        summary = run_retrain(config)
        workers = {w["id"] for w in observer.scheduler_info()["workers"].values()}

    assert summary["model_version"] == 1 and summary["promoted"]
    assert 0.6 < summary["metrics"]["roc_auc"] < 0.99
    assert (
        Registry(config.db_url).get_version("bati-credit", 1).flow_run_id == summary["flow_run_id"]
    )
    keys = [str(t["key"]) for t in stream.data]
    # Prefect tasks ran on the cluster (prefect-dask) ...
    for name in ("train", "evaluate"):
        started = [k for k in keys if k.startswith(f"{name}-")]
        assert len(started) == len(config.candidates), (name, started)
    # ... and the cross-validation fits inside the grid searches went through joblib's backend.
    assert any("fit_and_score" in k for k in keys), keys[:20]
    assert len({t["worker"] for t in stream.data}) == len(workers) == 2
    assert (Path(config.out_dir) / "evaluation").is_dir()


def test_dask_address_comes_from_the_environment(monkeypatch) -> None:
    monkeypatch.setenv(DASK_ADDRESS_ENV, "tcp://10.0.0.5:8786")
    assert RetrainConfig().dask_address == "tcp://10.0.0.5:8786"
    assert RetrainConfig(dask_address=None).dask_address is None
    monkeypatch.delenv(DASK_ADDRESS_ENV)
    assert RetrainConfig().dask_address is None
