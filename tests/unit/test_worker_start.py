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


def test_a_warm_up_not_waited_for_is_waited_for_before_the_pool_is_used():
    """warm_retrain starts the pool without waiting for its workers' imports (the flow begins
    as soon as its server answers); the flow's own call, before its searches, waits for that
    warm-up and raises its error; a warm-up that failed is not taken for done."""
    got = _python(
        """
        import json, os, time
        from flows.candidates import shared_pool
        from tasks import lifecycle
        from tasks.lifecycle import worker_pool
        t = time.perf_counter()
        shared_pool(2, preload=("time",), wait=False)
        started = worker_pool() is not None
        pending = len(lifecycle._warm_ups)
        shared_pool(2, preload=("time",))
        waited = len(lifecycle._warm_ups)
        shared_pool(2, preload=("no_such_module_here",), wait=False)
        try:
            shared_pool(2, preload=("no_such_module_here",))
            error = None
        except ModuleNotFoundError as exc:
            error = str(exc)
        try:
            shared_pool(2, preload=("no_such_module_here",))  # warmed again: fails again
            again = None
        except ModuleNotFoundError as exc:
            again = str(exc)
        print(json.dumps({"started": started, "pending": pending, "waited": waited,
                          "error": error, "again": again}))
        """
    )
    assert got == {
        "started": True,  # the workers are spawned by this thread (their reaper is its own)
        "pending": 1,
        "waited": 0,
        "error": "No module named 'no_such_module_here'",
        "again": "No module named 'no_such_module_here'",
    }


def test_a_command_that_stops_before_its_searches_drops_the_warm_up_quietly():
    """A command that fails before the flow waits for the pool (bad data) stops the pool at
    once: no joblib warning about cancelled tasks, no worker left."""
    got = _python(
        """
        import json, warnings
        warnings.simplefilter("always")
        from flows.candidates import shared_pool
        from tasks.lifecycle import stop_worker_pool, worker_pool
        shared_pool(2, preload=("sklearn.ensemble",), wait=False)
        pids = list(worker_pool()._processes)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            stop_worker_pool()
        import psutil
        alive = [p for p in pids if psutil.pid_exists(p) and
                 psutil.Process(p).status() != psutil.STATUS_ZOMBIE]
        print(json.dumps({"workers": len(pids), "alive": alive,
                          "warnings": [str(w.message) for w in caught],
                          "pool": worker_pool() is not None}))
        """
    )
    assert got == {"workers": 2, "alive": [], "warnings": [], "pool": False}
