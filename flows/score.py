"""Batch scoring flow: every customer of the latest feature snapshot, scored by the champion.

``python -m flows.score [--db-url URL] [--model-name NAME] [--no-monitor]`` prints a JSON
summary as its last stdout line. Scores (probability, score, band, recommendation, model
version, snapshot) go to the ``scores`` table; the ``score-distribution`` and ``band-mix``
table artifacts show them; then the ``monitor`` flow runs as a subflow (so every score run is
followed by a monitoring run; its summary is the ``monitor`` field).
"""

from __future__ import annotations

import sys
import time
from typing import TYPE_CHECKING, Any

import pandas as pd
from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.runtime import flow_run

from flows.cli import cli_main
from flows.config import MonitorConfig, ScoreConfig, install_secret_mask
from flows.monitor import monitor as monitor_flow
from schemas.defaults import DEFAULT_MODEL_NAME
from tasks.alerts import ALERT_HOOKS
from tasks.lifecycle import record_run
from tasks.registry_handle import open_registry, registry_for

if TYPE_CHECKING:
    from registry import VersionInfo


@task(name="load-champion", retries=2, retry_delay_seconds=[2, 10], cache_policy=NO_CACHE)
def load_champion(db_url: str | None, model_name: str) -> tuple[VersionInfo, Any]:
    """The champion version and its verified model."""
    loaded = registry_for(db_url).load_champion(model_name)
    if loaded is None:
        raise LookupError(f"no champion for model {model_name!r}: run the retrain flow first")
    return loaded


@task(name="load-snapshot", retries=2, retry_delay_seconds=[2, 10], cache_policy=NO_CACHE)
def load_snapshot(db_url: str | None) -> pd.DataFrame:
    """The latest customer feature snapshot."""
    from registry import read_feature_snapshot

    snapshot = read_feature_snapshot(registry_for(db_url))
    if snapshot is None or len(snapshot) == 0:
        raise LookupError("no feature snapshot: run the retrain flow first")
    return snapshot


@task(name="score-customers", cache_policy=NO_CACHE)
def score_customers(model: Any, snapshot: pd.DataFrame, chunk: int = 50_000) -> pd.DataFrame:
    """Probability, score, band and loan offer for every customer (chunked, vectorised)."""
    parts = [
        model.score_frame(snapshot.iloc[i : i + chunk], with_reasons=False)
        for i in range(0, len(snapshot), chunk)
    ]
    return pd.concat(parts) if parts else pd.DataFrame()


@task(name="write-scores", retries=2, retry_delay_seconds=[2, 10], cache_policy=NO_CACHE)
def write_scores(
    scores: pd.DataFrame,
    *,
    db_url: str | None,
    run_id: str,
    info: VersionInfo,
    as_of: Any,
    snapshot_id: int | None = None,
) -> int:
    from registry import write_scores as db_write_scores

    return db_write_scores(
        registry_for(db_url),
        scores.drop(columns=["reasons"], errors="ignore"),
        run_id,
        as_of=as_of,
        model_name=info.model_name,
        model_version=info.version,
        snapshot_id=snapshot_id,
    )


def distribution_tables(scores: pd.DataFrame) -> tuple[list[dict], list[dict]]:
    """Score distribution (20-point bins) and band mix of a score run, as artifact rows."""
    if scores.empty:
        return [], []
    edges = list(range(300, 871, 20))
    binned = pd.cut(scores["score"].astype(float), edges, right=False)
    counts = binned.value_counts(sort=False)
    total = len(scores)
    dist = [
        {"score": str(k), "customers": int(v), "share": round(v / total, 4)}
        for k, v in counts.items()
        if v
    ]
    mix = []
    for band, rows in scores.groupby("band", sort=True):
        mix.append(
            {
                "band": str(band),
                "customers": len(rows),
                "share": round(len(rows) / total, 4),
                "mean_pd": round(float(rows["probability"].mean()), 4),
                "approved": int(rows["approved"].sum()),
            }
        )
    return dist, mix


def _publish_distribution(scores: pd.DataFrame) -> None:
    from prefect.artifacts import create_table_artifact

    dist, mix = distribution_tables(scores)
    create_table_artifact(dist, key="score-distribution", description="Scores of this run")
    create_table_artifact(mix, key="band-mix", description="Band mix of this run")


@flow(name="score", log_prints=True, **ALERT_HOOKS)
def score(
    db_url: str | None = None, model_name: str = DEFAULT_MODEL_NAME, monitor: bool = True
) -> dict[str, Any]:
    """Score the latest feature snapshot with the champion, store the scores, then monitor.

    ``db_url``: better left out (``BATI_DB_URL``), so no password becomes a flow-run parameter.
    ``monitor``: run the ``monitor`` subflow after scoring (default).
    """
    record_run()
    install_secret_mask()
    logger = get_run_logger()
    run_id = str(flow_run.get_id() or f"local-{int(time.time())}")
    with open_registry(db_url):
        info, model = load_champion(db_url, model_name)
        snapshot = load_snapshot(db_url)
        t0 = time.perf_counter()
        scores = score_customers(model, snapshot)
        seconds = time.perf_counter() - t0
        as_of = snapshot.attrs.get("as_of")
        snapshot_id = snapshot.attrs.get("snapshot_id")
        written = write_scores(
            scores,
            db_url=db_url,
            run_id=run_id,
            info=info,
            as_of=as_of,
            snapshot_id=None if snapshot_id is None else int(snapshot_id),
        )
        _publish_distribution(scores)
        bands = scores["band"].value_counts().sort_index().to_dict() if len(scores) else {}
        logger.info(
            "scored %d customers with %s v%d in %.2f s; bands %s",
            len(scores),
            model_name,
            info.version,
            seconds,
            bands,
        )
        # inside the block: the monitor subflow shares this run's registry handle
        monitored = _monitor_after(db_url, model_name) if monitor else None
    return {
        "flow_run_id": run_id,
        "monitor": monitored,
        "model_name": model_name,
        "model_version": info.version,
        "customers": len(scores),
        "written": written,
        "seconds": round(seconds, 3),
        "bands": {str(k): int(v) for k, v in bands.items()},
        "approved": int(scores["approved"].sum()) if len(scores) else 0,
    }


def _monitor_after(db_url: str | None, model_name: str) -> dict[str, Any] | None:
    """The monitor subflow; its failure is logged (and alerted by its own hooks), the scores
    stay."""
    try:
        return monitor_flow(MonitorConfig(db_url=db_url, model_name=model_name))
    except Exception as exc:
        get_run_logger().warning("monitoring after scoring failed: %s", exc)
        return {"error": f"{type(exc).__name__}: {exc}"}


def main(argv: list[str] | None = None) -> int:
    return cli_main(
        ScoreConfig,
        argv,
        lambda config: score(
            db_url=config.db_url, model_name=config.model_name, monitor=config.monitor is not False
        ),
        flow_name="score",
        description=__doc__,
    )


if __name__ == "__main__":
    sys.exit(main())
