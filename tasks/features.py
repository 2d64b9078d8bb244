"""Feature and label tasks: the customer snapshot for scoring, the out-of-time training table."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pandas as pd
from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from credit.csvsafe import write_csv
from credit.features import FEATURE_VERSION, build_feature_snapshot
from credit.label import TrainingTable, build_training_table
from credit.transactions import CustomerBuckets
from credit.woe import iv_table
from tasks.registry_handle import registry_for


def content_key(*parts: Any) -> str:
    """A stable cache key from JSON-able parts (the data fingerprint among them)."""
    blob = json.dumps(parts, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:32]


def _keyed(prefix: str):
    def key_fn(context: Any, parameters: dict[str, Any]) -> str:
        return f"{prefix}-{parameters['cache_key']}"

    return key_fn


@task(name="featurize", cache_policy=NO_CACHE)
def featurize(
    tx: CustomerBuckets,
    *,
    as_of: pd.Timestamp | None,
    window_days: int,
    out_dir: Path,
    run_id: str,
    db_url: str | None,
) -> pd.DataFrame:
    """The feature snapshot every known customer is scored from (Parquet + database).

    Same feature code and observation window as training; ``as_of`` defaults to the midnight
    after the data's last transaction. Built bucket by bucket: one bucket in memory, or many on
    disk out of core, with the same result.
    """
    from registry import write_feature_snapshot

    snapshot = build_feature_snapshot(tx, window_days=window_days, as_of=as_of)
    as_of = pd.Timestamp(snapshot.attrs["as_of"])
    out_dir.mkdir(parents=True, exist_ok=True)
    snapshot.to_parquet(out_dir / "feature_snapshot.parquet")
    # Unpublished: the run publishes it with its promotion decision when it completes.
    n = write_feature_snapshot(registry_for(db_url), snapshot, as_of, run_id, publish=False)
    get_run_logger().info(
        "feature snapshot v%s as of %s: %d customers x %d features (%d rows stored)",
        FEATURE_VERSION,
        as_of,
        len(snapshot),
        snapshot.shape[1],
        n,
    )
    return snapshot


@task(
    name="label",
    cache_key_fn=_keyed("label"),
    persist_result=True,
    timeout_seconds=1800,
)
def label(
    tx: CustomerBuckets,
    *,
    cache_key: str,
    as_of: pd.Timestamp | None,
    observation_days: int,
    performance_days: int,
    seed: int,
) -> TrainingTable:
    """Out-of-time training table: features before the cutoff, proxy label after it.

    Features and RFM are built bucket by bucket and the proxy label on the whole customer-level
    RFM table: out of core, the same table as in memory.
    """
    table = build_training_table(
        tx,
        as_of=as_of,
        observation_days=observation_days,
        performance_days=performance_days,
        seed=seed,
    )
    logger = get_run_logger()
    rep = table.report
    logger.info(
        "label: %d customers (%d excluded without history), high-risk share %.1f%%",
        rep["n_customers"],
        rep["excluded_no_history"],
        100 * float(table.y.mean()),
    )
    if rep["label"].get("warning"):
        logger.warning("label: %s", rep["label"]["warning"])
    return table


@task(name="information-value", cache_policy=NO_CACHE)
def information_value(X: pd.DataFrame, y: pd.Series, out_dir: Path) -> pd.DataFrame:
    """IV of every feature against the proxy label, written to the run's outputs."""
    table = iv_table(X, y)
    out_dir.mkdir(parents=True, exist_ok=True)
    write_csv(table, out_dir / "information_value.csv")
    get_run_logger().info("IV table: %d features, top %s", len(table), table.iloc[0].to_dict())
    return table
