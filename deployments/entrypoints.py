"""The work-pool deployments' flows (deployments/prefect.yaml), on Dask when the worker's
environment names a cluster.

``retrain`` and ``score`` are the flows of :mod:`flows.retrain` and :mod:`flows.score` (same
names, parameters and hooks) with prefect-dask's task runner when ``BATI_DASK_ADDRESS`` is set
where the flow run starts (the worker's environment), so their per-bucket tasks and the grid
searches' fits go to the cluster. The nightly flow needs no wrapper: it passes the address to
its retrain and score subflows itself.
"""

from __future__ import annotations

from flows.cluster import on_cluster
from flows.retrain import retrain as _retrain
from flows.score import score as _score

retrain = on_cluster(_retrain)
score = on_cluster(_score)

__all__ = ["retrain", "score"]
