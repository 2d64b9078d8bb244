"""The nightly retraining flow: the pipeline of the README, one task per arrow.

    python -m flows.retrain --data PATH [--db-url URL] [--as-of DATE]
    python -m flows.retrain --table PATH --target COLUMN      # bring your own labels
    python -m flows.retrain --data FOLDER --dask-address tcp://HOST:8786

Transactions (or a labelled table) become a :class:`~credit.training.TrainingData`; then one
sequence serves both: train x N -> evaluate x N -> register -> promote -> model card. Options:
:mod:`flows.config` (``--help`` lists them); the last stdout line is the JSON summary
(:class:`flows.report.RetrainSummary`). Failures exit non-zero with one clear message.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
from prefect import flow, get_run_logger
from prefect.runtime import flow_run

from credit.features import FEATURE_VERSION
from credit.ingest import IngestReport
from credit.label import TrainingTable
from credit.paths import runs_dir
from credit.training import (
    TrainingData,
    labelled_table_training,
    select_best,
    stratified_sample,
)
from flows.candidates import train_and_evaluate
from flows.cli import cli_main
from flows.config import DASK_ADDRESS_ENV, RetrainConfig, install_secret_mask
from flows.report import RetrainSummary, publish
from schemas.defaults import DEFAULT_MODEL_NAME
from tasks.alerts import ALERT_HOOKS, emit_held
from tasks.clean import clean
from tasks.explore import eda
from tasks.features import content_key, featurize, information_value, label
from tasks.ingest import ingest_source, validate
from tasks.lifecycle import record_run
from tasks.register import (
    build_references,
    holdout_fingerprint,
    promote,
    promotion_gates,
    register,
)
from tasks.registry_handle import open_registry

__all__ = ["DASK_ADDRESS_ENV", "RetrainConfig", "retrain", "run_retrain", "stratified_sample"]


def _run_id() -> str:
    return str(flow_run.get_id() or f"local-{int(time.time())}")


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


def _prepare(config: RetrainConfig, source: str, *, out_dir: Path, run_id: str) -> PreparedData:
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


@flow(name="retrain", log_prints=True, **ALERT_HOOKS)
def retrain(config: RetrainConfig | None = None) -> dict[str, Any]:
    """Retrain the credit-risk model on the latest transactions and promote it if it is better."""
    config = config or RetrainConfig()
    record_run()
    install_secret_mask()
    run_id = _run_id()
    out_dir = Path(config.out_dir) if config.out_dir else runs_dir() / run_id
    out_dir.mkdir(parents=True, exist_ok=True)
    with open_registry(config.db_url):
        prepare = _labelled_table if config.table else _transactions
        training = prepare(config, run_id=run_id, out_dir=out_dir)
        summary = _train_register_promote(config, training, run_id=run_id, out_dir=out_dir)
    result = summary.to_dict()
    get_run_logger().info("retrain done: %s", json.dumps(result["metrics"]))
    return result


def _transactions(config: RetrainConfig, *, run_id: str, out_dir: Path) -> TrainingData:
    """ingest -> validate -> clean -> label -> featurize -> EDA, then information value."""
    prepared = _prepare(config, config.data or str(_demo_data()), out_dir=out_dir, run_id=run_id)
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


def _labelled_table(config: RetrainConfig, *, run_id: str, out_dir: Path) -> TrainingData:
    """Bring your own labels (``--table PATH --target COLUMN``)."""
    training = labelled_table_training(
        config.table or "", config.target, seed=config.seed, model_name=config.model_name
    )
    get_run_logger().info("labelled table %s: %s", config.table, training.extra["table"])
    return training


def _train_register_promote(
    config: RetrainConfig, training: TrainingData, *, run_id: str, out_dir: Path
) -> RetrainSummary:
    """train x N -> evaluate x N -> select -> references -> register -> gates -> promote ->
    model card."""
    trained = train_and_evaluate(config, training, out_dir=out_dir)
    best = select_best(trained.outcomes)
    references, reference_holdout = build_references(
        best, training, trained.X_train, trained.y_train, trained.X_test, trained.y_test
    )
    registered = register(
        best,
        training,
        db_url=config.db_url,
        holdout=holdout_fingerprint(trained.X_test, trained.y_test),
        flow_run_id=run_id,
        params={"seed": config.seed, "sampling": trained.sampling},
        extra={"candidates": [o.summary() for o in trained.outcomes]},
        references=references,
        reference_holdout=reference_holdout,
    )
    gates = promotion_gates(
        db_url=config.db_url,
        model_name=training.model_name,
        version=registered.version,
        model=best.model,
        X_train=trained.X_train,
        iv=training.iv,
        policy=config.gate_policy(),
    )
    decision = promote(
        db_url=config.db_url,
        model_name=training.model_name,
        version=registered.version,
        policy=config.promotion_policy(),
        X_test=trained.X_test,
        y_test=trained.y_test,
        gates=gates,
        publish_snapshot=run_id if training.snapshot is not None else None,
    )
    if gates is not None and not gates.passed:
        emit_held(
            training.model_name,
            registered.version,
            reason=gates.hold or "",
            champion_version=decision.champion_version,
            drifted_inputs=gates.drifted_inputs,
        )
    summary = RetrainSummary(
        run_id, registered, decision, best, trained, training, out_dir, gates=gates
    )
    publish(summary)
    return summary


def run_retrain(config: RetrainConfig | None = None) -> dict[str, Any]:
    """The retrain flow; with ``config.dask_address`` the candidates' tasks and their CV fits
    run on that Dask cluster (prefect-dask's task runner, joblib's Dask backend)."""
    config = config or RetrainConfig()
    if not config.dask_address:
        return retrain(config)
    from prefect_dask import DaskTaskRunner

    runner = DaskTaskRunner(address=config.dask_address)
    return retrain.with_options(task_runner=runner)(config)


def _demo_data() -> Path:
    import sampledata

    return sampledata.ensure_demo_data()


def main(argv: list[str] | None = None) -> int:
    return cli_main(
        RetrainConfig,
        argv,
        run_retrain,
        flow_name="retrain",
        description=__doc__.split("\n")[0],
        precheck=lambda config: config.data,
    )


if __name__ == "__main__":
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    sys.exit(main())
