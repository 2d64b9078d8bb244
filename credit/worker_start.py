"""The first task of each worker of the retrain's shared joblib pool.

This module imports nothing heavy, so that unpickling :func:`warm_worker` in a new worker does
not import scikit-learn before the worker has lowered its priority.
"""

from __future__ import annotations

import importlib
import os
import time
from collections.abc import Sequence

#: Niceness of the pool's workers: fits are batch work. On a machine with few cores the
#: command's own process (task orchestration, evaluation, plots) and Prefect's server then get
#: the CPU first when they need it, instead of sharing it equally with the fits.
WORKER_NICENESS = 5


def lower_priority(niceness: int = WORKER_NICENESS) -> int:
    """Set this process's niceness to at least ``niceness`` (never raised back); returns it."""
    current = os.getpriority(os.PRIO_PROCESS, 0)
    if current < niceness:
        os.setpriority(os.PRIO_PROCESS, 0, niceness)
    return os.getpriority(os.PRIO_PROCESS, 0)


def warm_worker(modules: Sequence[str] = (), niceness: int = WORKER_NICENESS) -> int:
    """Lower this worker's priority, then import the fitting code (and ``modules``); returns
    the worker's pid.

    loky measures a worker's reference memory after its first task and replaces the worker
    when it later grows by 300 MB ("memory leak"); importing pandas, scikit-learn and
    optbinning (cvxpy, ortools) in the first real fit crossed that and restarted workers
    mid-search, each restart paying the imports again. Run as the first task, it puts the
    imports inside the reference."""
    lower_priority(niceness)
    for name in ("credit.preprocess", "sklearn.ensemble", *modules):
        importlib.import_module(name)
    time.sleep(0.2)  # so that each idle worker takes one warm-up task
    return os.getpid()
