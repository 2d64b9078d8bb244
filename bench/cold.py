"""Cold whole retrain on the demo set, timed from outside (issue 16, item 1).

    python -m bench.cold                  # 3 cold runs of the default demo set
    python -m bench.cold --runs 5 --data var/data/xente_demo.parquet

Each run is ``python -m flows.retrain --data <demo parquet>`` in a fresh subprocess with a fresh
``PREFECT_HOME`` (so a fresh temporary Prefect server and database, no cached task result), an
empty SQLite registry and ``PREFECT_API_URL`` unset. Per run it prints:

* ``command_wall_s``: the command's wall time, interpreter start, imports and the temporary
  Prefect server included. **The 25 s target applies to this figure** (the median of the runs);
* ``flow_run_wall_s``: the flow run's own duration as Prefect recorded it (start to end time in
  the run's Prefect database), i.e. without interpreter start, imports and server start-up;
* ``cpu_s``: user + system CPU seconds of the command and every process it waited for (its
  worker processes and the Prefect server), from ``getrusage(RUSAGE_CHILDREN)``;
* ``peak_rss_mib``: the largest sum of resident memory of the command's whole process tree
  (sampled every 50 ms), and ``max_process_rss_mib``, the largest single process so far
  (``ru_maxrss`` of the children, a running maximum over the runs);
* the 1-minute load average before and after: on a shared machine figures rise with it.

The last stdout line is a JSON object with the runs and their medians.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
TARGET_S = 25.0


class TreeMemory:
    """Peak of the summed resident memory of a process and all its descendants."""

    def __init__(self, pid: int, interval: float = 0.05) -> None:
        import psutil

        self._psutil = psutil
        self.root = psutil.Process(pid)
        self.interval = interval
        self.peak_mib = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _sample(self) -> float:
        total = 0
        with contextlib.suppress(self._psutil.Error):
            for proc in [self.root, *self.root.children(recursive=True)]:
                with contextlib.suppress(self._psutil.Error):
                    total += proc.memory_info().rss
        return total / 2**20

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak_mib = max(self.peak_mib, self._sample())
            self._stop.wait(self.interval)

    def __enter__(self) -> TreeMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def _seconds(value: Any) -> float:
    return datetime.fromisoformat(str(value)).timestamp()


def flow_run_wall(prefect_home: Path, flow_run_id: str) -> float | None:
    """The flow run's start-to-end seconds from the run's own Prefect database (SQLite)."""
    db = prefect_home / "prefect.db"
    if not db.exists():
        return None
    with contextlib.closing(sqlite3.connect(db)) as con:
        row = con.execute(
            "SELECT start_time, end_time FROM flow_run WHERE id = ? OR replace(id, '-', '') = ?",
            (flow_run_id, flow_run_id.replace("-", "")),
        ).fetchone()
    if not row or row[0] is None or row[1] is None:
        return None
    return round(_seconds(row[1]) - _seconds(row[0]), 2)


def cold_env(home: Path, registry: Path) -> dict[str, str]:
    """The environment of one cold run: fresh Prefect state, empty registry, no API URL."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update(
        PREFECT_HOME=str(home),
        PREFECT_RESULTS_LOCAL_STORAGE_PATH=str(home / "results"),
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        DO_NOT_TRACK="1",
        BATI_DB_URL=f"sqlite:///{registry}",
    )
    env.pop("BATI_DASK_ADDRESS", None)
    return env


def run_once(data: Path, base: Path, index: int) -> dict[str, Any]:
    """One cold ``python -m flows.retrain`` run: the figures of the module docstring."""
    work = base / f"run{index}"
    home = work / "prefect"
    home.mkdir(parents=True)
    cmd = [sys.executable, "-m", "flows.retrain", "--data", str(data)]
    cmd += ["--out-dir", str(work / "out")]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    load_before = os.getloadavg()[0]
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        cmd,
        cwd=ROOT,
        env=cold_env(home, work / "registry.db"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    with TreeMemory(proc.pid) as memory:
        stdout, stderr = proc.communicate()
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        sys.stderr.write(stderr[-4000:])
        raise SystemExit(f"run {index} failed with exit code {proc.returncode}")
    summary = json.loads(stdout.strip().splitlines()[-1])
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {
        "run": index,
        "command_wall_s": round(wall, 2),
        "flow_run_wall_s": flow_run_wall(home, str(summary["flow_run_id"])),
        "cpu_s": round(cpu, 1),
        "peak_rss_mib": round(memory.peak_mib),
        "max_process_rss_mib": round(after.ru_maxrss / 1024),
        "load_before": round(load_before, 2),
        "load_after": round(os.getloadavg()[0], 2),
        "candidate": summary.get("candidate"),
        "roc_auc": round(summary["metrics"]["roc_auc"], 4),
        "customers": summary["data"]["customers"],
    }


def medians(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Median of every numeric figure over the runs."""
    keys = ("command_wall_s", "flow_run_wall_s", "cpu_s", "peak_rss_mib", "max_process_rss_mib")
    out: dict[str, Any] = {}
    for key in keys:
        values = [r[key] for r in runs if r.get(key) is not None]
        out[key] = round(statistics.median(values), 2) if values else None
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, help="transactions (default: the demo parquet)")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args(argv)
    if args.data is None:
        sys.path.insert(0, str(ROOT))
        import sampledata

        args.data = sampledata.ensure_demo_data()  # generated before timing, not part of it
    (ROOT / "var").mkdir(exist_ok=True)
    runs = []
    with tempfile.TemporaryDirectory(prefix="bati-cold-", dir=ROOT / "var") as tmp:
        for i in range(1, args.runs + 1):
            runs.append(run_once(args.data.resolve(), Path(tmp), i))
            print(json.dumps(runs[-1]), flush=True)
    median = medians(runs)
    verdict = "met" if median["command_wall_s"] <= TARGET_S else "missed"
    print(
        f"median of {len(runs)} cold runs: command wall {median['command_wall_s']} s "
        f"(the figure the {TARGET_S:.0f} s target applies to: {verdict}), flow-run wall "
        f"{median['flow_run_wall_s']} s, CPU {median['cpu_s']} s, peak RSS "
        f"{median['peak_rss_mib']} MiB (tree), {median['max_process_rss_mib']} MiB (one process)"
    )
    print(
        json.dumps(
            {"runs": runs, "median": median, "target_s": TARGET_S, "target_on": "command_wall_s"}
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
