"""Batch scoring flow: every customer of the latest feature snapshot, scored by the champion.

``python -m flows.score [--db-url URL] [--model-name NAME]`` prints a JSON summary as its last
stdout line. Scores (probability, score, band, recommendation, model version) go to the
``scores`` table.
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
from flows.config import ScoreConfig, install_secret_mask
from schemas.defaults import DEFAULT_MODEL_NAME
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
    scores: pd.DataFrame, *, db_url: str | None, run_id: str, info: VersionInfo, as_of: Any
) -> int:
    from registry import write_scores as db_write_scores

    return db_write_scores(
        registry_for(db_url),
        scores.drop(columns=["reasons"], errors="ignore"),
        run_id,
        as_of=as_of,
        model_name=info.model_name,
        model_version=info.version,
    )


@flow(name="score", log_prints=True)
def score(db_url: str | None = None, model_name: str = DEFAULT_MODEL_NAME) -> dict[str, Any]:
    """Score the latest feature snapshot with the champion and store the scores.

    ``db_url``: better left out (``BATI_DB_URL``), so no password becomes a flow-run parameter.
    """
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
        written = write_scores(scores, db_url=db_url, run_id=run_id, info=info, as_of=as_of)
    bands = scores["band"].value_counts().sort_index().to_dict() if len(scores) else {}
    logger.info(
        "scored %d customers with %s v%d in %.2f s; bands %s",
        len(scores),
        model_name,
        info.version,
        seconds,
        bands,
    )
    return {
        "flow_run_id": run_id,
        "model_name": model_name,
        "model_version": info.version,
        "customers": len(scores),
        "written": written,
        "seconds": round(seconds, 3),
        "bands": {str(k): int(v) for k, v in bands.items()},
        "approved": int(scores["approved"].sum()) if len(scores) else 0,
    }


def main(argv: list[str] | None = None) -> int:
    return cli_main(
        ScoreConfig,
        argv,
        lambda config: score(db_url=config.db_url, model_name=config.model_name),
        flow_name="score",
        description=__doc__.split("\n")[0],
    )


if __name__ == "__main__":
    sys.exit(main())
