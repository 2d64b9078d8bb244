"""The shared pool's workers run at batch priority (issue 16): the command's own process and
Prefect's server get the CPU first when a 2-core machine is busy with fits."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

from credit.paths import PROJECT_ROOT
from credit.worker_start import WORKER_NICENESS


def _python(code: str) -> dict:
    """Run ``code`` in a fresh interpreter (niceness cannot be lowered back) and return the
    JSON object it prints last."""
    out = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_lower_priority_only_ever_raises_the_niceness():
    got = _python(
        """
        import json, os
        from credit.worker_start import lower_priority
        first = lower_priority(5)
        again = lower_priority(5)  # not 10: the niceness is set, not added
        os.setpriority(os.PRIO_PROCESS, 0, 12)
        kept = lower_priority(5)  # a process already nicer keeps its niceness
        print(json.dumps({"first": first, "again": again, "kept": kept}))
        """
    )
    assert got == {"first": 5, "again": 5, "kept": 12}


def test_shared_pool_workers_run_niced_and_the_command_does_not():
    assert WORKER_NICENESS > 0
    got = _python(
        """
        import json, os
        from joblib import Parallel, delayed
        from flows.candidates import shared_pool
        n = shared_pool(2)
        workers = Parallel(n_jobs=n)(
            delayed(os.getpriority)(os.PRIO_PROCESS, 0) for _ in range(8)
        )
        print(json.dumps({"n": n, "workers": workers, "main": os.getpriority(os.PRIO_PROCESS, 0)}))
        """
    )
    base = os.getpriority(os.PRIO_PROCESS, 0)
    assert got["n"] == 2
    assert got["main"] == base
    assert set(got["workers"]) == {max(base, WORKER_NICENESS)}


def test_a_pool_is_warmed_once_then_again_only_when_it_changes(monkeypatch):
    """The flow starts the pool (warm_retrain) and uses it (shared_pool) in one process: the
    second call must not queue another round of warm-up tasks (each waits 0.2 s) on the very
    pool it already warmed; another preload list, or a new pool after the old one was stopped,
    is warmed."""
    import joblib

    import flows.candidates as C
    from tasks.lifecycle import stop_worker_pool

    rounds: list[tuple[str, ...]] = []
    real = joblib.Parallel

    class Counting(real):
        def __call__(self, iterable):
            jobs = list(iterable)
            rounds.append(jobs[0][1][0] if jobs else ())
            return super().__call__(jobs)

    monkeypatch.setattr(joblib, "Parallel", Counting)
    stop_worker_pool()
    assert C.shared_pool(2) == 2 and C.shared_pool(2) == 2
    assert rounds == [()]
    C.shared_pool(2, preload=("json",))
    assert rounds == [(), ("json",)]
    stop_worker_pool()
    C.shared_pool(2, preload=("json",))
    assert rounds == [(), ("json",), ("json",)]
    stop_worker_pool()
