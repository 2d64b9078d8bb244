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

if __name__ == "__main__":  # Prefect's temporary server boots while the imports below run
    from tasks import early_server, quick_exit

    quick_exit.install()  # first: its exit handler runs last
    early_server.start()
    import scipy.special  # noqa: F401  # before the rest: see registry.artifacts.serialise

import json
import os
import time
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger
from prefect.runtime import flow_run

from credit.paths import runs_dir
from credit.training import TrainingData, select_best, stratified_sample
from flows.candidates import train_and_evaluate, warm_retrain
from flows.cli import cli_main
from flows.config import DASK_ADDRESS_ENV, RetrainConfig, install_secret_mask
from flows.prepare import labelled_table_training_data, transactions_training
from flows.report import RetrainSummary, publish
from tasks.alerts import ALERT_HOOKS, emit_held
from tasks.explore import wait_for_eda
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
        prepare = labelled_table_training_data if config.table else transactions_training
        try:
            training = prepare(config, run_id=run_id, out_dir=out_dir)
            summary = _train_register_promote(config, training, run_id=run_id, out_dir=out_dir)
        except BaseException:
            wait_for_eda(discard=True)
            raise
    result = summary.to_dict()
    get_run_logger().info("retrain done: %s", json.dumps(result["metrics"]))
    return result


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
    wait_for_eda()  # the EDA report, written while the candidates trained
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


def main(argv: list[str] | None = None) -> int:
    return cli_main(
        RetrainConfig,
        argv,
        run_retrain,
        flow_name="retrain",
        description=__doc__.split("\n")[0],
        precheck=lambda config: config.data,
        warm=warm_retrain,
    )


if __name__ == "__main__":
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    quick_exit.finish(main())  # imported with early_server above
