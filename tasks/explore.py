"""EDA report task, and its background submission (the report is written while the models
train: :func:`eda_in_background` submits it, :func:`wait_for_eda` collects it)."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
from prefect import get_run_logger, task
from prefect.artifacts import create_link_artifact
from prefect.cache_policies import NO_CACHE
from prefect.futures import PrefectFuture
from prefect.runtime import flow_run

from credit.eda import build_eda_report
from credit.ingest import IngestReport
from credit.paths import runs_dir
from credit.report_links import report_link
from credit.transactions import CustomerBuckets


@dataclass(frozen=True)
class CleanedSample:
    """What the report reads of :class:`CustomerBuckets`, read at submission time (out of
    core the sample lives in the spill folder, which is deleted before the report is done)."""

    sample: pd.DataFrame
    sampled: bool
    rows: int
    report: Any

    @classmethod
    def of(cls, cleaned: CustomerBuckets) -> CleanedSample:
        return cls(cleaned.sample, cleaned.sampled, cleaned.rows, cleaned.report)


_PENDING: dict[str, list[PrefectFuture]] = {}
_LOCK = threading.Lock()


def _run_key() -> str:
    return str(flow_run.get_id() or "local")


def eda_in_background(cleaned: CustomerBuckets, out_path: Path, **kwargs: Any) -> Path:
    """Submit :func:`eda` to run beside the next tasks (training) and return the report's path
    at once; the flow collects it with :func:`wait_for_eda` (failures raise there)."""
    future = eda.submit(CleanedSample.of(cleaned), out_path, **kwargs)
    with _LOCK:
        _PENDING.setdefault(_run_key(), []).append(future)
    return Path(out_path)


def wait_for_eda(*, discard: bool = False) -> list[Path]:
    """Wait for this flow run's background EDA reports and return their paths (raises if one
    failed); ``discard`` forgets them without waiting (the run failed anyway)."""
    with _LOCK:
        futures = _PENDING.pop(_run_key(), [])
    return [] if discard else [f.result() for f in futures]


@task(name="eda", cache_policy=NO_CACHE)  # submitted: no timeout (see tasks/train.py)
def eda(
    cleaned: CustomerBuckets | CleanedSample,
    out_path: Path,
    *,
    rfm: pd.DataFrame | None = None,
    labels: pd.Series | None = None,
    ingest_report: IngestReport | None = None,
    features: pd.DataFrame | None = None,
) -> Path:
    """Write the self-contained HTML EDA report of the cleaned transactions and link it as an
    artifact (out of core, of their uniform row sample, as the title says)."""
    tx = cleaned.sample
    extra = {}
    if cleaned.sampled:
        extra["title"] = (
            "Bati Bank credit scoring - exploratory data analysis of a uniform sample of "
            f"{len(tx):,} of {cleaned.rows:,} cleaned transactions"
        )
    quarantine = None
    if ingest_report is not None:
        cleaning = cleaned.report.to_dict() if cleaned.report else {}
        quarantine = {**ingest_report.to_dict(), "cleaning": cleaning}
    path = build_eda_report(
        tx, out_path, rfm=rfm, labels=labels, quarantine=quarantine, features=features, **extra
    )
    get_run_logger().info("EDA report: %s", path)
    if path.resolve().parent.parent != runs_dir().resolve():
        return path  # a custom --out-dir: the API does not serve it, the log names the file
    create_link_artifact(
        report_link(path.parent.name, path.name),
        link_text=f"EDA report ({path.name})",
        key="eda-report",
        description="Self-contained HTML report, served read-only by the API under /reports",
    )
    return path
