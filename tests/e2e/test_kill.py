"""``kill -9`` of a retrain: its pool workers and temporary Prefect server die with it, and the next start marks its flow run
Crashed instead of leaving it RUNNING forever."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import psutil  # a dev dependency (pyproject): never skipped
import pytest
from builders import ROOT, run_python, wait_until

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="prctl is Linux-only"),
]


def _children(pid: int, command: str) -> list:
    """``pid``'s descendants whose command line contains ``command``."""
    try:
        children = psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []
    out = []
    for child in children:
        try:
            if command in " ".join(child.cmdline()):
                out.append(child)
        except psutil.Error:
            pass
    return out


def _alive(proc) -> bool:
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _state_type(prefect_home: Path, flow_run_id: str) -> str | None:
    with sqlite3.connect(prefect_home / "prefect.db") as db:
        row = db.execute("SELECT state_type FROM flow_run WHERE id = ?", (flow_run_id,)).fetchone()
    return row[0] if row else None


def test_kill_9_retrain_ends_workers_and_marks_run_crashed(tmp_path):
    import sampledata

    data = tmp_path / "tx.parquet"
    sampledata.generate(rows=20_000, customers=600).to_parquet(data)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_API_")}
    prefect_home = tmp_path / "prefect"
    env.update(
        PREFECT_HOME=str(prefect_home),
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        DO_NOT_TRACK="1",
        BATI_DB_URL=f"sqlite:///{tmp_path / 'reg.db'}",
        BATI_VAR_DIR=str(tmp_path / "var"),
    )
    running = tmp_path / "var" / "prefect" / "running"
    log = (tmp_path / "retrain.log").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "flows.retrain", "--data", str(data)]
        + ["--candidates", "random_forest", "--n-jobs", "2"],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        started = time.monotonic()
        assert wait_until(
            lambda: bool(list(running.glob("*.json"))) and len(_children(proc.pid, "loky")) >= 2,
            90,
            proc=proc,
        ), (tmp_path / "retrain.log").read_text()[-3000:]
        workers = _children(proc.pid, "loky")
        workers += _children(proc.pid, "uvicorn")  # Prefect's temporary server
        assert len(workers) >= 3
        (record,) = [json.loads(p.read_text()) for p in running.glob("*.json")]
        assert record["pid"] == proc.pid
        assert _state_type(prefect_home, record["flow_run_id"]) == "RUNNING"

        os.kill(proc.pid, signal.SIGKILL)  # the main process only
        proc.wait(10)
        killed = time.monotonic()
        assert wait_until(lambda: not any(_alive(w) for w in workers), 10), [
            w.pid for w in workers if _alive(w)
        ]
        workers_gone_after = time.monotonic() - killed

        # the next start of any flow command notices the dead run (this one then fails: no data)
        missing = str(tmp_path / "missing.parquet")
        second = run_python("-m", "flows.retrain", "--data", missing, env=env, timeout=60)
        assert second.returncode == 2, second.stderr
        assert _state_type(prefect_home, record["flow_run_id"]) == "CRASHED", second.stderr
        assert not list(running.glob("*.json"))
        print(
            f"pool ready after {killed - started:.1f}s, workers gone "
            f"{workers_gone_after:.1f}s after kill -9, total {time.monotonic() - started:.1f}s"
        )
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)  # whatever is left of the session
        log.close()


_SPAWNER = """
import multiprocessing as mp, os, threading, time
from tasks.lifecycle import die_with_parent

def work(parent):
    die_with_parent(parent)
    time.sleep(120)

def spawn():
    p = mp.get_context("fork").Process(target=work, args=(os.getpid(),))
    p.start()
    print(p.pid, flush=True)

thread = threading.Thread(target=spawn)
thread.start()
thread.join()  # the thread that started the first child has ended: the child stays
spawn()
time.sleep(120)
"""


def test_children_outlive_their_spawning_thread_but_not_their_process():
    proc = subprocess.Popen(
        [sys.executable, "-c", _SPAWNER], cwd=ROOT, stdout=subprocess.PIPE, text=True
    )
    children: list = []
    try:
        children = [psutil.Process(int(proc.stdout.readline())) for _ in range(2)]
        time.sleep(1)
        assert all(_alive(c) for c in children)
        os.kill(proc.pid, signal.SIGKILL)
        assert wait_until(lambda: not any(_alive(c) for c in children), 10)
    finally:
        for process in [*children, proc]:
            with contextlib.suppress(psutil.Error, OSError):
                process.kill()
        proc.wait()
