"""EDA report task."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from prefect import get_run_logger, task
from prefect.artifacts import create_link_artifact
from prefect.cache_policies import NO_CACHE

from credit.eda import build_eda_report
from credit.ingest import IngestReport
from credit.transactions import CustomerBuckets


@task(name="eda", cache_policy=NO_CACHE, timeout_seconds=900)
def eda(
    cleaned: CustomerBuckets,
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
    create_link_artifact(
        path.resolve().as_uri(),
        link_text=f"EDA report ({path.name})",
        key="eda-report",
        description=f"Self-contained HTML report at {path.resolve()}",
    )
    return path
