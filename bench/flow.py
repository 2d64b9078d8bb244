"""Stage benchmark of the whole retrain flow at one data size (``python -m bench`` runs the sizes).

    python -m bench.flow --rows 95662                 # the default demo set (one file, in memory)
    python -m bench.flow --rows 10000000              # partitioned Parquet: out of core
    python -m bench.flow --rows 50000000 --data-only  # ingestion + features only, no training

1. **generate**: ``sampledata`` rows written to Parquet in a subprocess (its own peak memory):
   the demo set as one file, larger sets as a folder of ~1,000,000-row parts (the shape a
   partner platform delivers), made in slices of at most 10,000,000 rows with ids renumbered per
   slice so the slices are distinct customers and transactions.
2. **the retrain flow** on a temporary Prefect server (or ``PREFECT_API_URL``), with a temporary
   SQLite registry. Per stage, wall seconds come from the flow's task runs as Prefect recorded
   them (concurrent tasks: the union of their intervals on the timeline) and peak memory from a
   sampler of this process and its workers (the Prefect server excluded) every 50 ms. The
   orchestration overhead is the flow run's duration minus the union of all its task runs.
3. **batch scoring**: the champion's ``score_frame`` over the run's feature snapshot
   (:mod:`bench.score`), then the score flow end to end (snapshot from the database, scores back).

``--data-only`` runs the out-of-core functions themselves (no Prefect, no training). One JSON
object per stage is printed; the last stdout line is the JSON list of them.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

DEMO_ROWS = 95_662
REAL_RATIO = 3_742 / 95_662
PART_ROWS = 1_000_000
SLICE_ROWS = 10_000_000
FLOW_TARGETS = {DEMO_ROWS: 25.0, 10_000_000: 300.0}  # issue 16, items 1 and 4
PEAK_TARGETS_MIB = {10_000_000: 4 * 1024, 50_000_000: 4 * 1024}
OVERHEAD_TARGET = 0.15

# stage name -> task-run name prefixes (matched in order; the first match wins)
STAGES: list[tuple[str, tuple[str, ...]]] = [
    ("ingest+validate", ("ingest-validate", "ingest", "validate")),
    ("clean", ("clean",)),
    ("label", ("label",)),
    ("features", ("featurize",)),
    ("EDA report", ("eda",)),
    ("information value", ("information-value",)),
    ("grid search logreg", ("train-logreg",)),
    ("grid search random_forest", ("train-random_forest",)),
    ("grid search hist_gb", ("train-hist_gb",)),
    ("grid search scorecard", ("train-scorecard",)),
    ("evaluation (every candidate)", ("evaluate",)),
    ("permutation importance (chosen)", ("importance",)),
    ("registration + promotion", ("register", "promote")),
]


# -------------------------------------------------------------------------------------------
# Memory
# -------------------------------------------------------------------------------------------


class MemorySampler:
    """Resident memory and CPU seconds of this process plus its children (minus ``exclude``),
    every ``interval``. CPU counts a worker that exited with its last sampled figure."""

    def __init__(self, interval: float = 0.05) -> None:
        import psutil

        self._psutil = psutil
        self.me = psutil.Process()
        self.interval = interval
        self.exclude: set[int] = set()
        self.samples: list[tuple[float, float]] = []
        self.cpu_samples: list[tuple[float, float]] = []
        self._cpu_by_pid: dict[int, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def exclude_children(self) -> None:
        """Leave out the processes that are children now (e.g. the Prefect server)."""
        for child in self.me.children(recursive=True):
            self.exclude.add(child.pid)

    def rss_mib(self) -> float:
        total = self.me.memory_info().rss
        for child in self.me.children(recursive=True):
            if child.pid in self.exclude:
                continue
            with contextlib.suppress(self._psutil.Error):
                total += child.memory_info().rss
        return total / 2**20

    def cpu_seconds(self) -> float:
        """User + system CPU seconds of this process and its (past and present) workers."""
        for proc in [self.me, *self.me.children(recursive=True)]:
            if proc.pid in self.exclude:
                continue
            with contextlib.suppress(self._psutil.Error):
                t = proc.cpu_times()
                self._cpu_by_pid[proc.pid] = t.user + t.system
        return sum(self._cpu_by_pid.values())

    def _run(self) -> None:
        while not self._stop.is_set():
            now = time.time()
            self.samples.append((now, self.rss_mib()))
            self.cpu_samples.append((now, self.cpu_seconds()))
            self._stop.wait(self.interval)

    def cpu(self, start: float, end: float) -> float:
        """CPU seconds spent between ``start`` and ``end`` (epoch seconds), all threads and
        workers: for concurrent stages the figures overlap."""

        def at(t: float) -> float:
            before = [c for ts, c in self.cpu_samples if ts <= t]
            return before[-1] if before else 0.0

        return round(at(end + self.interval) - at(start), 2)

    def __enter__(self) -> MemorySampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def peak(self, start: float | None = None, end: float | None = None) -> float:
        """Highest sample in ``[start, end]`` (epoch seconds); the whole run by default."""
        values = [
            m
            for t, m in self.samples
            if (start is None or t >= start - self.interval)
            and (end is None or t <= end + self.interval)
        ]
        if not values:  # a stage shorter than the sampling interval: the nearest sample
            earlier = [m for t, m in self.samples if end is None or t <= end + self.interval]
            values = earlier[-1:] or [m for _, m in self.samples[:1]]
        return round(max(values), 1) if values else float("nan")


# -------------------------------------------------------------------------------------------
# Data
# -------------------------------------------------------------------------------------------


def _customers(rows: int) -> int:
    return max(1, round(rows * REAL_RATIO))


def _renumber(table: Any, column: str, offset: int) -> Any:
    """``Prefix_<n>`` ids shifted by ``offset`` (distinct ids for each generated slice)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    col = table.column(column)
    prefix = column + "_"
    numbers = pc.cast(pc.utf8_slice_codeunits(col, len(prefix)), pa.int64())
    text = pc.binary_join_element_wise(prefix, pc.cast(pc.add(numbers, offset), pa.string()), "")
    return table.set_column(table.schema.get_field_index(column), column, text)


def write_slice(rows: int, folder: Path, slice_no: int, seed: int = 42) -> int:
    """Generate ``rows`` rows (slice ``slice_no``) into ~1M-row parts of ``folder``."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    import sampledata

    df = sampledata.generate(rows=rows, customers=_customers(rows), seed=seed + slice_no)
    table = pa.Table.from_pandas(df, preserve_index=False)
    del df
    if slice_no:
        for column in ("TransactionId", "CustomerId", "BatchId"):
            table = _renumber(table, column, slice_no * 1_000_000_000)
    parts = max(1, math.ceil(rows / PART_ROWS))
    bounds = [round(i * rows / parts) for i in range(parts + 1)]
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(parts):
        path = folder / f"part-{slice_no:03d}-{i:05d}.parquet"
        pq.write_table(table.slice(bounds[i], bounds[i + 1] - bounds[i]), path)
    return parts


def generate(rows: int, dest: Path) -> dict[str, Any]:
    """Generate the data set in subprocesses: seconds and the largest subprocess peak."""
    t0 = time.perf_counter()
    peaks = []
    slices = [SLICE_ROWS] * (rows // SLICE_ROWS) + (
        [rows % SLICE_ROWS] if rows % SLICE_ROWS else []
    )
    if rows <= DEMO_ROWS:
        slices = [rows]
    for i, n in enumerate(slices):
        out = subprocess.run(
            [sys.executable, "-m", "bench.flow", "--_slice", str(n), str(dest), str(i)],
            check=True,
            capture_output=True,
            text=True,
            cwd=ROOT,
        )
        peaks.append(json.loads(out.stdout.strip().splitlines()[-1])["peak_mib"])
    seconds = time.perf_counter() - t0
    return _row("generate", rows, "tx", seconds, max(peaks))


def _slice_main(rows: int, dest: str, slice_no: int) -> None:
    if rows <= DEMO_ROWS:
        import sampledata

        sampledata.write(sampledata.generate(rows, _customers(rows)), Path(dest))
    else:
        write_slice(rows, Path(dest), slice_no)
    print(json.dumps({"peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))


# -------------------------------------------------------------------------------------------
# Rows of the table
# -------------------------------------------------------------------------------------------


def _row(
    stage: str, rows: int, unit: str, seconds: float, peak: float, **extra: Any
) -> dict[str, Any]:
    return {
        "stage": stage,
        "rows": int(rows),
        "unit": unit,
        "seconds": round(seconds, 2),
        "rows_per_s": round(rows / seconds) if seconds > 0 else None,
        "peak_mib": None if math.isnan(peak) else round(peak),
        **extra,
    }


def _union(intervals: list[tuple[float, float]]) -> float:
    """Length of the union of ``intervals``."""
    total, end = 0.0, -math.inf
    for a, b in sorted(intervals):
        if b <= end:
            continue
        total += b - max(a, end)
        end = b
    return total


def _span(intervals: list[tuple[float, float]]) -> tuple[float, float]:
    return min(a for a, _ in intervals), max(b for _, b in intervals)


def _task_runs(flow_run_id: str) -> tuple[Any, list[Any]]:
    from prefect import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    with get_client(sync_client=True) as client:
        flow_run = client.read_flow_run(flow_run_id)
        runs = client.read_task_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id]))
        )
    return flow_run, runs


def flow_rows(
    summary: dict[str, Any], sampler: MemorySampler, rows: int, wall: float
) -> list[dict[str, Any]]:
    """Per-stage rows from the flow run's task runs, the whole flow and its overhead."""
    flow_run, runs = _task_runs(summary["flow_run_id"])
    intervals: dict[str, list[tuple[float, float]]] = {}
    every = []
    for run in runs:
        if run.start_time is None or run.end_time is None:
            continue
        iv = (run.start_time.timestamp(), run.end_time.timestamp())
        every.append(iv)
        for stage, prefixes in STAGES:
            if run.name.startswith(prefixes):
                intervals.setdefault(stage, []).append(iv)
                break
    data = summary["data"]
    customers = data["customers"]
    sampling = summary.get("sampling") or {}
    n_search = sampling.get("grid_search", {}).get("rows", customers)
    n_fit = sampling.get("final_fit", {}).get("rows", customers)
    out = []
    for stage, _ in STAGES:
        ivs = intervals.get(stage)
        if not ivs:
            continue
        start, end = _span(ivs)
        if stage.startswith("grid search"):
            n, unit = n_search, "customers"
        elif stage.startswith(("evaluation", "permutation")):
            n, unit = n_fit, "customers"
        elif stage.startswith("registration"):
            n, unit = 1, "model"
        elif stage in ("information value",):
            n, unit = customers, "customers"
        else:
            n, unit = rows, "tx"
        out.append(
            _row(
                stage, n, unit, _union(ivs), sampler.peak(start, end), cpu_s=sampler.cpu(start, end)
            )
        )
    f_start, f_end = flow_run.start_time.timestamp(), flow_run.end_time.timestamp()
    flow_seconds = f_end - f_start
    tasks_seconds = _union(every)
    overhead = flow_seconds - tasks_seconds
    out.append(
        _row(
            "retrain flow (whole)",
            rows,
            "tx",
            flow_seconds,
            sampler.peak(f_start, f_end),
            wall_with_client=round(wall, 2),
            cpu_s=sampler.cpu(f_start, f_end),
            path=data.get("path"),
            customers=customers,
            candidate=summary.get("candidate"),
            roc_auc=round(summary["metrics"]["roc_auc"], 4),
            target_s=FLOW_TARGETS.get(rows),
        )
    )
    out.append(
        {
            **_row("orchestration overhead", rows, "tx", overhead, sampler.peak(f_start, f_end)),
            "share_of_flow": round(overhead / flow_seconds, 4),
            "target_share": OVERHEAD_TARGET,
            "tasks_union_s": round(tasks_seconds, 2),
        }
    )
    return out


# -------------------------------------------------------------------------------------------
# Runs
# -------------------------------------------------------------------------------------------


def _prefect_server():
    """A temporary Prefect server unless ``PREFECT_API_URL`` names one."""
    from contextlib import nullcontext

    if os.environ.get("PREFECT_API_URL"):
        return nullcontext()
    from prefect.testing.utilities import prefect_test_harness

    return prefect_test_harness(server_startup_timeout=120)


def run_flow(rows: int, tmp: Path, *, repeats: int = 3) -> list[dict[str, Any]]:
    """Generate, retrain, score: the table rows of one size."""
    data = tmp / ("demo.parquet" if rows <= DEMO_ROWS else "parts")
    out = [generate(rows, data)]
    _emit(out[-1])
    from flows.retrain import RetrainConfig, run_retrain
    from flows.score import score
    from registry import Registry

    db_url = f"sqlite:///{tmp / 'registry.db'}"
    with MemorySampler() as sampler, _prefect_server():
        sampler.exclude_children()
        config = RetrainConfig(data=str(data), db_url=db_url, out_dir=str(tmp / "run"))
        t0 = time.perf_counter()
        summary = run_retrain(config)
        wall = time.perf_counter() - t0
        rows_ = flow_rows(summary, sampler, rows, wall)
        for r in rows_:
            _emit(r)
        out += rows_

        import pandas as pd

        from bench.score import measure_scoring
        from schemas.defaults import DEFAULT_MODEL_NAME

        snapshot = pd.read_parquet(tmp / "run" / "feature_snapshot.parquet")
        model = Registry(db_url).load_champion(DEFAULT_MODEL_NAME)[1]
        t1 = time.time()
        scoring = measure_scoring(model, snapshot, repeats=repeats)
        out.append(
            _row(
                "batch scoring (score_frame)",
                scoring["customers"],
                "customers",
                scoring["seconds"],
                sampler.peak(t1, time.time()),
                target_per_s=scoring["target_per_s"],
                model=summary.get("candidate"),
            )
        )
        _emit(out[-1])
        del snapshot
        t1, p0 = time.time(), time.perf_counter()
        scored = score(db_url=db_url)
        out.append(
            _row(
                "score flow (DB read + score + DB write)",
                scored["customers"],
                "customers",
                time.perf_counter() - p0,
                sampler.peak(t1, time.time()),
            )
        )
        _emit(out[-1])
    return out


def run_data_only(rows: int, tmp: Path) -> list[dict[str, Any]]:
    """Generate partitioned Parquet, then ingest, clean, label and featurize it out of core."""
    from credit import outofcore
    from credit.clean import clean_buckets
    from credit.features import build_feature_snapshot
    from credit.label import build_training_table

    data = tmp / "parts"
    out = [generate(rows, data)]
    _emit(out[-1])
    with MemorySampler() as sampler:
        steps: list[tuple[str, Any]] = []
        t = time.time()
        spilled = outofcore.spill_transactions(data, tmp / "spill")
        steps.append(("ingest+validate", (t, time.time())))
        t = time.time()
        buckets = clean_buckets(spilled.buckets)
        steps.append(("clean", (t, time.time())))
        t = time.time()
        snapshot = build_feature_snapshot(buckets, window_days=60)
        steps.append(("features", (t, time.time())))
        n_snapshot = len(snapshot)
        del snapshot
        t = time.time()
        table = build_training_table(buckets)
        steps.append(("label", (t, time.time())))
        n_table = len(table.X)
        del table
        buckets.cleanup()
    for stage, (a, b) in steps:
        extra = {"customers": n_snapshot} if stage == "features" else {}
        if stage == "label":
            extra = {"customers": n_table}
        out.append(_row(stage, rows, "tx", b - a, sampler.peak(a, b), **extra))
        _emit(out[-1])
    a, b = steps[0][1][0], steps[-1][1][1]
    out.append(
        _row(
            "ingestion + features (whole, out of core)",
            rows,
            "tx",
            b - a,
            sampler.peak(a, b),
            target_peak_mib=PEAK_TARGETS_MIB.get(rows),
        )
    )
    _emit(out[-1])
    return out


def _emit(row: dict[str, Any]) -> None:
    print(json.dumps(row), flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=DEMO_ROWS)
    parser.add_argument("--data-only", action="store_true", help="ingestion + features only")
    parser.add_argument("--repeats", type=int, default=3, help="batch-scoring passes")
    parser.add_argument("--tmp", type=Path, help="work folder (default: a temporary one)")
    parser.add_argument("--_slice", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args._slice:
        rows, dest, slice_no = args._slice
        _slice_main(int(rows), dest, int(slice_no))
        return 0
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("DO_NOT_TRACK", "1")
    (ROOT / "var").mkdir(exist_ok=True)
    base = args.tmp or Path(tempfile.mkdtemp(prefix="bati-bench-", dir=ROOT / "var"))
    base.mkdir(parents=True, exist_ok=True)
    # Prefect state under the project; results in a fresh folder so no cached task result from
    # an earlier run on the same (deterministic) data is reused: every stage really runs.
    os.environ.setdefault("PREFECT_HOME", str(ROOT / "var" / "prefect"))
    os.environ["PREFECT_RESULTS_LOCAL_STORAGE_PATH"] = str(base / "results")
    try:
        with tempfile.TemporaryDirectory(dir=base) as tmp:
            runner = run_data_only if args.data_only else run_flow
            kwargs = {} if args.data_only else {"repeats": args.repeats}
            rows = runner(args.rows, Path(tmp), **kwargs)
    finally:
        if args.tmp is None:
            import shutil

            shutil.rmtree(base, ignore_errors=True)
    print(json.dumps(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
