"""The data stages of the retrain flow, before training: ingest -> validate -> clean -> label
-> featurize -> EDA -> information value, or a bring-your-own-labels table; both give one
:class:`~credit.training.TrainingData`."""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
from prefect import get_run_logger

from credit.clean import sample_fraction
from credit.features import FEATURE_VERSION, snapshot_as_of
from credit.ingest import IngestReport, IngestResult
from credit.label import TrainingTable, label_windows
from credit.outofcore import Spill, SpillPlan, id_buckets
from credit.sources import RawTransactions
from credit.training import TrainingData, labelled_table_training
from credit.transactions import CustomerBuckets
from flows.cluster import run_each
from flows.config import RetrainConfig
from schemas.defaults import DEFAULT_MODEL_NAME
from tasks.clean import clean, clean_bucket_group
from tasks.explore import eda_in_background as eda  # runs beside training
from tasks.features import (
    content_key,
    featurize,
    featurize_bucket_group,
    information_value,
    label,
    label_bucket_group,
)
from tasks.ingest import check_id_bucket, ingest_source, validate, validate_part_group

__all__ = [
    "PreparedData",
    "demo_data",
    "labelled_table_training_data",
    "prepare",
    "transactions_training",
]


def _as_of(config: RetrainConfig) -> pd.Timestamp | None:
    as_of = pd.Timestamp(config.as_of) if config.as_of else None
    if as_of is not None and as_of.tzinfo is None:
        as_of = as_of.tz_localize("UTC")
    return as_of


def _key_parts(config: RetrainConfig, fingerprint: str, as_of: pd.Timestamp | None) -> list[Any]:
    return [
        fingerprint,
        FEATURE_VERSION,
        str(as_of),
        config.observation_days,
        config.performance_days,
        config.seed,
    ]


@dataclass
class PreparedData:
    """What the data stages hand to training: the labelled table, the stored snapshot, the EDA
    report, the ingestion report and the cache-key parts."""

    table: TrainingTable
    snapshot: pd.DataFrame
    eda: Path
    ingest_report: IngestReport
    fingerprint: str
    key_parts: list[Any]
    n_rows: int


def prepare(config: RetrainConfig, source: str, *, out_dir: Path, run_id: str) -> PreparedData:
    """ingest -> validate -> clean -> label -> featurize -> eda, on customer buckets: one in
    memory, or, for a Parquet folder or large file, many on disk (:mod:`credit.outofcore`).

    The partitioned stages are one task per part group (validation) or bucket group (cleaning,
    label features, snapshot features), mapped over the Dask cluster when the flow runs on
    one (:func:`flows.cluster.run_each`); the customer-level steps follow in this process."""
    raw = ingest_source(source, stream=config.out_of_core, min_stream_rows=config.out_of_core_rows)
    work_dir = out_dir / "spill"
    try:
        ingested = _validated(raw, config, work_dir=work_dir, out_dir=out_dir, run_id=run_id)
        del raw
        cleaned = _cleaned(ingested, config)
        as_of = _as_of(config)
        key_parts = _key_parts(config, ingested.report.fingerprint, as_of)
        groups = cleaned.groups()
        windows = label_windows(
            cleaned,
            as_of=as_of,
            observation_days=config.observation_days,
            performance_days=config.performance_days,
        )
        table = label(
            run_each(label_bucket_group, groups, windows=windows),
            windows=windows,
            cache_key=content_key(*key_parts),
            seed=config.seed,
        )
        snapshot_date = snapshot_as_of(cleaned) if as_of is None else as_of
        snapshot = featurize(
            run_each(
                featurize_bucket_group,
                groups,
                as_of=snapshot_date,
                window_days=config.observation_days,
            ),
            as_of=snapshot_date,
            window_days=config.observation_days,
            out_dir=out_dir,
            run_id=run_id,
            db_url=config.db_url,
        )
        report_path = eda(
            cleaned,
            out_dir / "eda_report.html",
            rfm=table.rfm,
            labels=table.y,
            ingest_report=ingested.report,
            features=table.X,
        )
    finally:
        shutil.rmtree(work_dir, ignore_errors=True)
    return PreparedData(
        table=table,
        snapshot=snapshot,
        eda=report_path,
        ingest_report=ingested.report,
        fingerprint=ingested.report.fingerprint,
        key_parts=key_parts,
        n_rows=cleaned.rows,
    )


def _validated(
    raw: RawTransactions, config: RetrainConfig, *, work_dir: Path, out_dir: Path, run_id: str
) -> IngestResult:
    """validate: in memory one task; streamed, one task per part group, one per id bucket,
    then the global quarantine and report."""
    options = {
        "work_dir": work_dir,
        "max_bad_share": config.max_bad_share,
        "out_dir": out_dir,
        "run_id": run_id,
        "db_url": config.db_url,
        "chunk_rows": config.chunk_rows,
        "bucket_rows": config.bucket_rows,
    }
    if not raw.streamed:
        return validate(raw, **options)
    started = time.perf_counter()
    plan = SpillPlan.of(raw, work_dir, options)
    groups = run_each(validate_part_group, range(len(plan.groups)), plan=plan)
    conflicts = (
        [] if any(g.stopped for g in groups) else run_each(check_id_bucket, id_buckets(groups))
    )
    return validate(raw, **options, spill=Spill(plan, groups, conflicts, started))


def _cleaned(ingested: IngestResult, config: RetrainConfig) -> CustomerBuckets:
    """clean: one task per bucket group, then the report of the whole."""
    started = time.perf_counter()
    buckets = ingested.buckets
    fraction = sample_fraction(buckets.rows, config.eda_sample_rows)
    groups = run_each(
        clean_bucket_group, buckets.groups(), sample_fraction=fraction, seed=config.seed
    )
    return clean(ingested, groups, started=started)


def transactions_training(config: RetrainConfig, *, run_id: str, out_dir: Path) -> TrainingData:
    """ingest -> validate -> clean -> label -> featurize -> EDA, then information value."""
    prepared = prepare(config, config.data or str(demo_data()), out_dir=out_dir, run_id=run_id)
    iv = information_value(prepared.table.X, prepared.table.y, out_dir)
    training = TrainingData.from_transactions(
        prepared.table,
        prepared.ingest_report,
        model_name=config.model_name or DEFAULT_MODEL_NAME,
        key_parts=prepared.key_parts,
        n_rows=prepared.n_rows,
        report={"snapshot_customers": len(prepared.snapshot), "eda_report": str(prepared.eda)},
    )
    training.snapshot = prepared.snapshot
    training.iv = {str(r.feature): float(r.iv) for r in iv.itertuples()}
    return training


def labelled_table_training_data(
    config: RetrainConfig, *, run_id: str, out_dir: Path
) -> TrainingData:
    """Bring your own labels (``--table PATH --target COLUMN``)."""
    training = labelled_table_training(
        config.table or "", config.target, seed=config.seed, model_name=config.model_name
    )
    get_run_logger().info("labelled table %s: %s", config.table, training.extra["table"])
    return training


def demo_data() -> Path:
    import sampledata

    return sampledata.ensure_demo_data()
