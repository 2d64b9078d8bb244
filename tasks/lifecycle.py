"""Process lifecycle: pool workers end with their parent; runs of a dead process are crashed.

* :func:`install_worker_reaper` makes every worker of joblib's loky pool ask the kernel for a
  signal when its parent dies (``prctl(PR_SET_PDEATHSIG)``, Linux only) and exit on it, so a
  ``kill -9`` of a flow leaves no worker behind. The kernel also signals when only the *thread*
  that spawned the worker exits (loky spawns from whichever thread submits), so the handler exits
  only when the parent process is really gone (``getppid()`` changed).
* :func:`stop_worker_pool` kills those workers when a command is done with them, so that its
  exit does not wait for each to tear its interpreter down.
* :func:`install_server_reaper` does the same for Prefect's temporary API server.
* :func:`record_run` notes the flow run id with this process's pid and start time under
  ``var/prefect/running/``; :func:`reap_dead_runs` (at the next CLI start) sets every recorded
  run whose process is gone, and which Prefect still shows RUNNING/PENDING, to Crashed.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import logging
import os
import signal
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from schemas.defaults import var_path

PR_SET_PDEATHSIG = 1
PARENT_DEATH_SIGNAL = signal.SIGUSR2
_parent_pid: int | None = None
log = logging.getLogger(__name__)


def _on_parent_death(signum: int, frame: Any) -> None:
    if os.getppid() != _parent_pid:  # the process died, not only the thread that spawned us
        os._exit(1)


def die_with_parent(parent_pid: int | None = None) -> None:
    """In a child process: exit when the parent process (``parent_pid``, default the current
    parent) dies. No-op off Linux."""
    global _parent_pid
    if not sys.platform.startswith("linux"):
        return
    _parent_pid = parent_pid or os.getppid()
    signal.signal(PARENT_DEATH_SIGNAL, _on_parent_death)
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, int(PARENT_DEATH_SIGNAL), 0, 0, 0)
    if os.getppid() != _parent_pid:  # the parent died before prctl: no signal will come
        os._exit(1)


def install_worker_reaper() -> None:
    """Make joblib's "loky" backend (the default) start workers with :func:`die_with_parent`.

    Process-wide (joblib's backend registry), so scikit-learn's own ``Parallel`` calls in any
    thread get the same executor settings and keep reusing one pool."""
    from joblib import parallel
    from joblib._parallel_backends import LokyBackend

    if getattr(parallel.BACKENDS["loky"], "dies_with_parent", False):
        return

    class DieWithParentLokyBackend(LokyBackend):
        dies_with_parent = True

        def configure(self, *args: Any, **kwargs: Any) -> int:
            kwargs.setdefault("initializer", die_with_parent)
            kwargs.setdefault("initargs", (os.getpid(),))
            return super().configure(*args, **kwargs)

    parallel.BACKENDS["loky"] = DieWithParentLokyBackend


#: Warm-ups of the pool still running: joblib's output generators (``Parallel`` with
#: ``return_as="generator_unordered"``), started in the thread that waits for them.
_warm_ups: list[Iterator[Any]] = []


def warming_up(results: Iterator[Any]) -> None:
    """Remember a pool warm-up started without waiting (:func:`await_warm_up` waits for it)."""
    _warm_ups.append(results)


def await_warm_up() -> None:
    """Wait for the pool's pending warm-ups to finish; a warm-up's error is raised here."""
    while _warm_ups:
        for _ in _warm_ups.pop(0):
            pass


def stop_worker_pool() -> None:
    """Kill the workers of joblib's process-wide loky pool, if one was started, and wait for
    them to be gone: at the end of a command, instead of letting the interpreter's exit wait
    while each tears itself down (~0.7 s on this machine). They hold no state by then: every
    ``Parallel`` call has returned, and a warm-up nobody waited for (a command that failed
    before its searches) is dropped without a word. A later ``Parallel`` call starts a new
    pool."""
    while _warm_ups:
        with warnings.catch_warnings():  # joblib warns of the warm-up tasks it cancels
            warnings.simplefilter("ignore")
            _warm_ups.pop().close()  # joblib stops the pool's workers
    executor = worker_pool()
    if executor is not None:
        executor.shutdown(wait=True, kill_workers=True)


def worker_pool() -> Any:
    """joblib's process-wide loky executor (the pool ``Parallel`` reuses), or None when there
    is none to reuse (none started yet, or shut down or broken: the next ``Parallel`` starts
    another)."""
    from joblib.externals.loky import reusable_executor

    executor = getattr(reusable_executor, "_executor", None)  # loky's one reusable executor
    flags = getattr(executor, "_flags", None)
    if flags is not None and (flags.shutdown or flags.broken):
        return None
    return executor


def install_server_reaper() -> None:
    """Make Prefect's temporary API server (started when no ``PREFECT_API_URL`` is set) end with
    this process: the kernel sends it SIGTERM when we die, even by ``kill -9``.

    Only for a server started from the main thread (the kernel signals when the spawning
    *thread* exits); the prctl call in the forked child uses a function resolved beforehand."""
    if not sys.platform.startswith("linux"):
        return
    import subprocess
    import threading
    import types

    from prefect.server.api import server

    if getattr(server.subprocess, "dies_with_parent", False):
        return
    prctl = ctypes.CDLL(None, use_errno=True).prctl

    def _die_with_parent() -> None:
        prctl(PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)

    def popen(*args: Any, **kwargs: Any) -> subprocess.Popen:
        if threading.current_thread() is threading.main_thread():
            kwargs.setdefault("preexec_fn", _die_with_parent)
        return subprocess.Popen(*args, **kwargs)

    module = types.SimpleNamespace(**vars(subprocess))  # only the server module sees the change
    module.Popen = popen
    module.dies_with_parent = True
    server.subprocess = module


def _running_dir() -> Path:
    return var_path() / "prefect" / "running"


def _start_time(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (``/proc/<pid>/stat`` field 22)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]


def _alive(pid: int, started: str | None) -> bool:
    """Is ``pid`` still the process that recorded the run?"""
    if Path("/proc").is_dir():
        now = _start_time(pid)
        return now is not None and (started is None or now == started)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def record_run(flow_run_id: Any = None) -> None:
    """Note that this process runs ``flow_run_id`` (default: the current flow run), so the next
    start can tell if it died (:func:`reap_dead_runs`); :func:`forget_runs` removes the note."""
    if flow_run_id is None:
        from prefect.runtime import flow_run

        flow_run_id = flow_run.get_id()
    if not flow_run_id:
        return
    folder = _running_dir()
    folder.mkdir(parents=True, exist_ok=True)
    pid = os.getpid()
    record = {"flow_run_id": str(flow_run_id), "pid": pid, "started": _start_time(pid)}
    (folder / f"{flow_run_id}.json").write_text(json.dumps(record))


def _records() -> list[tuple[Path, dict[str, Any]]]:
    folder = _running_dir()
    out = []
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        try:
            record = json.loads(path.read_text())
            pid, run_id = int(record["pid"]), str(record["flow_run_id"])
            out.append((path, {**record, "pid": pid, "flow_run_id": run_id}))
        except (OSError, ValueError, TypeError, KeyError):  # unreadable: nothing to go on
            path.unlink(missing_ok=True)
    return out


def forget_runs() -> None:
    """Remove this process's run records (its flows ended, in whatever state)."""
    pid = os.getpid()
    ours = (pid, _start_time(pid))
    for path, record in _records():
        if (record["pid"], record.get("started")) == ours:
            path.unlink(missing_ok=True)


def reap_dead_runs() -> list[str]:
    """Set to Crashed every recorded run whose process died while Prefect shows it
    RUNNING/PENDING; return their ids. Cheap when nothing is recorded (no server is asked)."""
    dead = [(p, r) for p, r in _records() if not _alive(r["pid"], r.get("started"))]
    if not dead:
        return []
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.objects import StateType
    from prefect.exceptions import ObjectNotFound
    from prefect.states import Crashed

    crashed = []
    with get_client(sync_client=True) as client:
        for path, record in dead:
            run_id = record["flow_run_id"]
            try:
                run = client.read_flow_run(run_id)
                if run.state is not None and run.state.type in (
                    StateType.RUNNING,
                    StateType.PENDING,
                ):
                    message = f"its process {record['pid']} died without reporting"
                    client.set_flow_run_state(run_id, Crashed(message=message), force=True)
                    crashed.append(run_id)
                    log.warning("flow run %s marked crashed: %s", run_id, message)
            except ObjectNotFound:
                pass  # recorded against another Prefect database: nothing to mark
            except Exception as exc:  # noqa: BLE001 - a stale record must never stop a run
                log.warning("could not check flow run %s: %s", run_id, exc)
                continue  # keep the record: the next start tries again
            path.unlink(missing_ok=True)
    return crashed


@contextlib.contextmanager
def tracked_process() -> Any:
    """Around a CLI run: crash the runs of dead processes first, forget our own at the end;
    a temporary Prefect server this run starts ends with it."""
    try:
        install_server_reaper()
    except Exception as exc:  # noqa: BLE001 - Prefect's internals moved: keep running
        log.warning("temporary Prefect server will not end with this process: %s", exc)
    try:
        reap_dead_runs()
    except Exception as exc:  # noqa: BLE001 - reaping is best effort
        log.warning("could not reap dead flow runs: %s", exc)
    try:
        yield
    finally:
        forget_runs()
