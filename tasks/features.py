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
from credit.features import FEATURE_VERSION, bucket_features, finish_feature_snapshot
from credit.label import (
    BucketLabelParts,
    LabelWindows,
    TrainingTable,
    finish_training_table,
    label_parts,
)
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


@task(name="featurize-buckets", cache_policy=NO_CACHE)
def featurize_bucket_group(
    group: CustomerBuckets, *, as_of: pd.Timestamp, window_days: int
) -> list[pd.DataFrame]:
    """The snapshot features of one bucket group's customers (one task per group)."""
    return bucket_features(group, as_of=as_of, window_days=window_days)


@task(name="featurize", cache_policy=NO_CACHE)
def featurize(
    groups: list[list[pd.DataFrame]],
    *,
    as_of: pd.Timestamp,
    window_days: int,
    out_dir: Path,
    run_id: str,
    db_url: str | None,
) -> pd.DataFrame:
    """The feature snapshot every known customer is scored from (Parquet + database), from
    every bucket group's features (:func:`featurize_bucket_group`).

    Same feature code and observation window as training; ``as_of`` is the snapshot's date
    (:func:`credit.features.snapshot_as_of` by default).
    """
    from registry import write_feature_snapshot

    frames = [frame for group in groups for frame in group]
    groups.clear()  # the frames are released as they are copied
    snapshot = finish_feature_snapshot(frames, as_of=as_of, window_days=window_days)
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


@task(name="label-buckets", cache_policy=NO_CACHE)
def label_bucket_group(group: CustomerBuckets, *, windows: LabelWindows) -> BucketLabelParts:
    """Features, RFM and first-seen counts of one bucket group's customers (one task each)."""
    return label_parts(group, windows)


@task(
    name="label",
    cache_key_fn=_keyed("label"),
    persist_result=True,
    timeout_seconds=1800,
)
def label(
    parts: list[BucketLabelParts], *, windows: LabelWindows, cache_key: str, seed: int
) -> TrainingTable:
    """Out-of-time training table: features before the cutoff, proxy label after it.

    Features and RFM come bucket by bucket (:func:`label_bucket_group`); the proxy label runs
    on the whole customer-level RFM table: out of core, the same table as in memory.
    """
    table = finish_training_table(parts, windows, seed=seed)
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
