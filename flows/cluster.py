"""Scale-out: the flows' task runner, and one Prefect task per bucket group on it.

With ``BATI_DASK_ADDRESS`` (or ``--dask-address``) a flow runs on prefect-dask's
``DaskTaskRunner``: the partitioned data stages map their per-group tasks over the cluster
(:func:`run_each`), so the workers share the reading, cleaning, labelling and featurising,
not only the grid-search fits. The workers must see the run folder at the same path (a shared
filesystem): the customer buckets are Parquet files in it. Without a cluster the same tasks
run one after the other in the flow's process, so memory stays that of one bucket at a time.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, TypeVar

from prefect import Flow, Task, unmapped
from prefect.context import FlowRunContext
from prefect.task_runners import TaskRunner, ThreadPoolTaskRunner

from schemas.settings import setting

__all__ = ["cluster_task_runner", "distributed", "on_cluster", "run_each"]

R = TypeVar("R")
FROM_ENV = "$BATI_DASK_ADDRESS"
"""The default address: the ``BATI_DASK_ADDRESS`` setting (None means no cluster)."""


def cluster_task_runner(address: str | None = FROM_ENV) -> TaskRunner | None:
    """prefect-dask's runner on ``address`` (default ``$BATI_DASK_ADDRESS``), else None."""
    if address == FROM_ENV:
        address = setting("dask_address")
    if not address:
        return None
    from prefect_dask import DaskTaskRunner

    return DaskTaskRunner(address=address)


def on_cluster(flow: Flow, address: str | None = FROM_ENV, **options: Any) -> Flow:
    """``flow`` on the Dask cluster at ``address`` (default ``$BATI_DASK_ADDRESS``; None: no
    cluster), with ``options`` (``Flow.with_options``) either way."""
    runner = cluster_task_runner(address)
    if runner is not None:
        options["task_runner"] = runner
    return flow.with_options(**options) if options else flow


def distributed() -> bool:
    """True inside a flow run whose tasks go to another process pool (Dask), not threads."""
    ctx = FlowRunContext.get()
    return ctx is not None and not isinstance(ctx.task_runner, ThreadPoolTaskRunner)


def run_each(task: Task[..., R], items: Iterable[Any], **shared: Any) -> list[R]:
    """``task(item, **shared)`` for each item: one task run per item, their results in order.

    On a distributed task runner the runs are mapped (``task.map``) and run concurrently on
    the cluster; otherwise they run one after the other in this process (at most one bucket
    group in memory at a time).
    """
    items = list(items)
    if not items:
        return []
    if distributed():
        futures = task.map(items, **{k: unmapped(v) for k, v in shared.items()})
        return list(futures.result())
    return [task(item, **shared) for item in items]
