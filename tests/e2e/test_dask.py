"""Scale-out: the retrain flow on a local multi-process Dask cluster (prefect-dask + joblib)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import distributed
import pandas as pd
import pytest

from flows.retrain import DASK_ADDRESS_ENV, RetrainConfig, run_retrain
from registry import Registry


@contextlib.contextmanager
def _local_cluster() -> Iterator[tuple[Any, Any, Any]]:
    """A 2-process LocalCluster, a client watching it, and its task stream."""
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
        yield cluster, observer, stream


def test_dask_address_comes_from_the_environment(monkeypatch) -> None:
    monkeypatch.setenv(DASK_ADDRESS_ENV, "tcp://10.0.0.5:8786")
    assert RetrainConfig().dask_address == "tcp://10.0.0.5:8786"
    assert RetrainConfig(dask_address=None).dask_address is None
    monkeypatch.delenv(DASK_ADDRESS_ENV)
    assert RetrainConfig().dask_address is None


#: prefect-dask keys a task run by its function's name: the per-group tasks of the data stages.
BUCKET_TASKS = (
    "validate_part_group",  # task validate-parts: one per part group
    "check_id_bucket",  # validate-ids: one per id bucket
    "clean_bucket_group",  # clean-buckets
    "label_bucket_group",  # label-buckets
    "featurize_bucket_group",  # featurize-buckets
)


@pytest.mark.e2e
def test_data_stages_map_over_the_cluster_with_the_single_process_result(
    prefect_harness, tmp_path: Path, small_raw
) -> None:
    """Issue 16.5: out of core, each part group and bucket group is one Prefect task on a Dask
    worker, the candidates' tasks and their cross-validation fits (joblib's Dask backend) run
    there too, and the run gives exactly what the same flow gives in one process."""
    from prefect.settings import PREFECT_TASKS_REFRESH_CACHE, temporary_settings

    import sampledata
    from flows.retrain import retrain

    folder = tmp_path / "parts"
    sampledata.write_partitioned(small_raw, folder, 3)  # 3 parts of 10,000 rows

    def config(name: str, address: str | None) -> RetrainConfig:
        return RetrainConfig(
            data=str(folder),
            db_url=f"sqlite:///{tmp_path / f'{name}.db'}",
            candidates=["logreg"],
            grids={"logreg": {"clf__C": [1.0]}},
            importance_repeats=1,
            out_dir=str(tmp_path / name),
            chunk_rows=4_000,
            bucket_rows=8_000,  # 4 buckets; each part is its own group
            eda_sample_rows=5_000,
            dask_address=address,
        )

    # The label task is cached on the data fingerprint: both runs really compute it.
    with temporary_settings({PREFECT_TASKS_REFRESH_CACHE: True}):
        single = retrain(config("single", None))
        with _local_cluster() as (cluster, _, stream):
            clustered = run_retrain(config("cluster", cluster.scheduler_address))

    # One task per part group (3) and per bucket (4) ran on the workers, on both of them.
    ran = [(str(t["key"]), t["worker"]) for t in stream.data]
    counts = {n: sum(k.startswith(f"{n}-") for k, _ in ran) for n in BUCKET_TASKS}
    assert list(counts.values()) == [3, 4, 4, 4, 4], counts
    data_workers = {w for k, w in ran if k.startswith(tuple(f"{n}-" for n in BUCKET_TASKS))}
    assert len(data_workers) == 2
    # The candidates' Prefect tasks ran on the cluster (prefect-dask), and the CV fits inside
    # the grid search went through joblib's Dask backend.
    keys = [k for k, _ in ran]
    for name in ("train", "evaluate"):
        assert len([k for k in keys if k.startswith(f"{name}-")]) == 1, (name, keys[:20])
    assert any("fit_and_score" in k for k in keys), keys[:20]
    assert clustered["model_version"] == 1 and clustered["promoted"]
    assert 0.6 < clustered["metrics"]["roc_auc"] < 0.99
    assert (Path(clustered["out_dir"]) / "evaluation").is_dir()

    # Exactly the single-process result: data, features, labels (the held-out split's
    # fingerprint covers X and y), information value and metrics.
    assert clustered["data"] == single["data"]
    assert clustered["metrics"] == single["metrics"]
    assert clustered["candidates"] == single["candidates"]
    a, b = Path(single["out_dir"]), Path(clustered["out_dir"])
    pd.testing.assert_frame_equal(
        pd.read_parquet(b / "feature_snapshot.parquet"),
        pd.read_parquet(a / "feature_snapshot.parquet"),
        check_exact=True,
    )
    assert (b / "information_value.csv").read_bytes() == (a / "information_value.csv").read_bytes()
    va = Registry(config("single", None).db_url).get_version("bati-credit", 1)
    vb = Registry(config("cluster", None).db_url).get_version("bati-credit", 1)
    assert vb.data_fingerprint == va.data_fingerprint
    assert vb.holdout_fingerprint == va.holdout_fingerprint is not None
    assert vb.n_rows == va.n_rows == len(small_raw)
    assert single["data"]["path"] == "out_of_core"
