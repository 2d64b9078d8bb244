"""The data stages of the retrain flow, before training: ingest -> validate -> clean -> label
-> featurize -> EDA -> information value, or a bring-your-own-labels table; both give one
:class:`~credit.training.TrainingData`."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
from prefect import get_run_logger

from credit.features import FEATURE_VERSION
from credit.ingest import IngestReport
from credit.label import TrainingTable
from credit.training import TrainingData, labelled_table_training
from flows.config import RetrainConfig
from schemas.defaults import DEFAULT_MODEL_NAME
from tasks.clean import clean
from tasks.explore import eda
from tasks.features import content_key, featurize, information_value, label
from tasks.ingest import ingest_source, validate

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
    memory, or, for a Parquet folder or large file, many on disk (:mod:`credit.outofcore`)."""
    raw = ingest_source(source, stream=config.out_of_core, min_stream_rows=config.out_of_core_rows)
    work_dir = out_dir / "spill"
    try:
        ingested = validate(
            raw,
            work_dir=work_dir,
            chunk_rows=config.chunk_rows,
            bucket_rows=config.bucket_rows,
            max_bad_share=config.max_bad_share,
            out_dir=out_dir,
            run_id=run_id,
            db_url=config.db_url,
        )
        del raw
        cleaned = clean(ingested, sample_rows=config.eda_sample_rows, seed=config.seed)
        as_of = _as_of(config)
        key_parts = _key_parts(config, ingested.report.fingerprint, as_of)
        table = label(
            cleaned,
            cache_key=content_key(*key_parts),
            as_of=as_of,
            observation_days=config.observation_days,
            performance_days=config.performance_days,
            seed=config.seed,
        )
        snapshot = featurize(
            cleaned,
            as_of=as_of,
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
