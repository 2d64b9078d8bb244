"""EDA report task."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from prefect import get_run_logger, task
from prefect.artifacts import create_link_artifact
from prefect.cache_policies import NO_CACHE

from credit.eda import build_eda_report


@task(name="eda", cache_policy=NO_CACHE, timeout_seconds=900)
def eda(
    tx: pd.DataFrame,
    out_path: Path,
    *,
    rfm: pd.DataFrame | None = None,
    labels: pd.Series | None = None,
    quarantine: dict | None = None,
    features: pd.DataFrame | None = None,
    title: str | None = None,
) -> Path:
    """Write the self-contained HTML EDA report and link it as an artifact.

    ``title`` replaces the default title (the out-of-core path says the report describes a
    row sample).
    """
    extra = {"title": title} if title else {}
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
