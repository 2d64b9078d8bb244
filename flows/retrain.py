"""The nightly retraining flow.

ingest -> validate -> clean -> EDA -> featurize -> label -> train (candidates concurrently) ->
evaluate -> register -> promote. From a shell::

    python -m flows.retrain --data PATH [--db-url URL] [--as-of DATE]
    python -m flows.retrain --table PATH --target COLUMN      # bring your own labels
    python -m flows.retrain --data FOLDER --dask-address tcp://HOST:8786

A Parquet folder (or a Parquet file of at least ``out_of_core_rows`` rows) is processed out of
core, partition by partition (:mod:`credit.outofcore`), with the same features and labels as in
memory. Large training tables are searched on a stratified sample (``search_max_rows``) and fitted
on at most ``fit_max_rows`` customers; the model card says what was sampled. With a Dask scheduler
address (``--dask-address`` or ``BATI_DASK_ADDRESS``) the candidates' tasks run on prefect-dask's
task runner and the grid searches' fits on the cluster through joblib's Dask backend.

The last stdout line is one JSON object: ``flow_run_id``, ``model_version``, ``champion``,
``promoted``, ``metrics`` (held-out ``roc_auc``, ``ks``, ``brier``, ``accuracy``, ``precision``,
``recall``, ``f1``) and more. Failures exit non-zero with one clear message.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

import pandas as pd
from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.runtime import flow_run
from pydantic import BaseModel, Field

from credit.features import FEATURE_VERSION
from credit.label import split_customers
from credit.models import CANDIDATES, load_grids
from credit.outofcore import (
    DEFAULT_BUCKET_ROWS,
    DEFAULT_CHUNK_ROWS,
    DEFAULT_OUT_OF_CORE_ROWS,
    DEFAULT_SAMPLE_ROWS,
    should_stream,
)
from credit.paths import PROJECT_ROOT, runs_dir
from credit.training import CandidateOutcome, headline_metrics, select_best
from tasks.clean import clean
from tasks.explore import eda
from tasks.features import content_key, featurize, information_value, label
from tasks.ingest import ingest_partitioned, ingest_source, validate
from tasks.register import holdout_fingerprint, promote, register
from tasks.train import evaluate, train

DEFAULT_MODEL_NAME = "bati-credit"
DASK_ADDRESS_ENV = "BATI_DASK_ADDRESS"
CandidateName = Literal["logreg", "random_forest", "hist_gb"]


def _env_dask_address() -> str | None:
    return os.environ.get(DASK_ADDRESS_ENV) or None


class RetrainConfig(BaseModel):
    """Everything a retrain run can be told; every field has a sensible default."""

    data: str | None = Field(
        None,
        description="Transactions: CSV/Parquet path, Parquet folder or SQLAlchemy URL#table. "
        "None: the generated demo set (var/data/xente_demo.parquet).",
    )
    table: str | None = Field(None, description="A labelled customer table (bring your own labels)")
    target: str | None = Field(None, description="The label column of --table")
    db_url: str | None = Field(None, description="Registry database (default BATI_DB_URL)")
    model_name: str | None = Field(None, description="Registry model name")
    as_of: datetime | None = Field(None, description="Reference date; default: the data's last")
    observation_days: int = Field(60, ge=7, le=730)
    performance_days: int = Field(30, ge=7, le=365)
    candidates: list[CandidateName] = Field(default_factory=lambda: list(CANDIDATES))
    grids: dict[str, dict[str, list]] | None = Field(
        None, description="Per-candidate grid overrides (default credit/grids.toml)"
    )
    promotion_margin: float = Field(0.005, ge=0, description="Minimum ROC-AUC gain to promote")
    max_ks_loss: float = Field(0.02, ge=0)
    max_brier_increase: float = Field(0.005, ge=0)
    max_bad_share: float = Field(0.01, ge=0, le=1)
    test_size: float = Field(0.2, gt=0.05, lt=0.5)
    seed: int = 42
    n_jobs: int | None = Field(None, description="Parallel jobs per grid search (default: cores)")
    importance_repeats: int = Field(5, ge=0)
    out_dir: str | None = Field(None, description="Run outputs (default var/runs/<flow run id>)")
    out_of_core: bool | None = Field(
        None,
        description="Stream the input partition by partition; None: automatic (a Parquet "
        "folder, or a Parquet file of at least out_of_core_rows rows)",
    )
    out_of_core_rows: int = Field(DEFAULT_OUT_OF_CORE_ROWS, ge=1)
    chunk_rows: int = Field(DEFAULT_CHUNK_ROWS, ge=100, description="Rows validated at a time")
    bucket_rows: int = Field(DEFAULT_BUCKET_ROWS, ge=100, description="Target rows per bucket")
    eda_sample_rows: int = Field(
        DEFAULT_SAMPLE_ROWS, ge=100, description="Out of core: cleaned rows the EDA report shows"
    )
    search_max_rows: int | None = Field(
        10_000,
        ge=100,
        description="Customers the grid searches use (stratified sample of the training "
        "split when it is larger); None: all",
    )
    fit_max_rows: int | None = Field(
        50_000,
        ge=100,
        description="Customers the chosen model is fitted and calibrated on (stratified "
        "sample when the training split is larger); None: all",
    )
    importance_max_rows: int | None = Field(
        2_000, ge=100, description="Test customers permutation importance uses; None: all"
    )
    dask_address: str | None = Field(
        default_factory=_env_dask_address,
        description="Dask scheduler (e.g. tcp://10.0.0.5:8786): candidates' tasks on "
        "prefect-dask's task runner, grid-search fits through joblib's Dask backend "
        "(default BATI_DASK_ADDRESS)",
    )


def code_version() -> str | None:
    """The git commit the code runs from, when it is a checkout."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=PROJECT_ROOT,
            capture_output=True,
            text=True,
            timeout=5,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def _run_id() -> str:
    return str(flow_run.get_id() or f"local-{int(time.time())}")


def _grids(config: RetrainConfig) -> dict[str, dict[str, list] | None]:
    grids = load_grids()
    return {c: (config.grids or {}).get(c) or grids.get(c) for c in config.candidates}


def stratified_sample(
    X: pd.DataFrame, y: pd.Series, max_rows: int | None, seed: int
) -> tuple[pd.DataFrame, pd.Series]:
    """At most ``max_rows`` customers, stratified on ``y`` (seeded); everything if fewer."""
    if max_rows is None or len(X) <= max_rows:
        return X, y
    from sklearn.model_selection import train_test_split

    stratify = y if y.value_counts().min() >= 2 else None
    X_s, _, y_s, _ = train_test_split(
        X, y, train_size=max_rows, stratify=stratify, random_state=seed
    )
    return X_s, y_s


def sampling_report(
    config: RetrainConfig, n_train: int, n_test: int
) -> dict[str, dict[str, int | None]]:
    """What each training step used, of how many (JSON for the registry and the model card)."""

    def used(cap: int | None, n: int) -> int:
        return n if cap is None else min(cap, n)

    return {
        "grid_search": {"rows": used(config.search_max_rows, n_train), "of": n_train},
        "final_fit": {"rows": used(config.fit_max_rows, n_train), "of": n_train},
        "test_metrics": {"rows": n_test, "of": n_test},
        "permutation_importance": {
            "rows": used(config.importance_max_rows, n_test) if config.importance_repeats else 0,
            "of": n_test,
        },
    }


def _train_and_evaluate(
    config: RetrainConfig,
    X: pd.DataFrame,
    y: pd.Series,
    *,
    key_parts: list[Any],
    model_name: str,
    out_dir: Path,
) -> tuple[list[CandidateOutcome], tuple[pd.DataFrame, pd.DataFrame, pd.Series, pd.Series]]:
    X_train, X_test, y_train, y_test = split_customers(
        X, y, test_size=config.test_size, seed=config.seed
    )
    grids = _grids(config)
    # Large tables: the searches see a stratified sample, the chosen model is refitted on a
    # larger one (or all of TRAIN); test metrics always use the whole test split.
    X_search, y_search = stratified_sample(X_train, y_train, config.search_max_rows, config.seed)
    X_fit, y_fit = stratified_sample(X_train, y_train, config.fit_max_rows, config.seed)
    sampled = len(X_search) < len(X_train)
    sample_key = [len(X_search)] if sampled else []  # unchanged keys when nothing is sampled
    refit = not X_fit.index.equals(X_search.index)
    searches = [
        train.submit(
            name,
            X_search,
            y_search,
            cache_key=content_key(
                *key_parts, name, grids[name], config.seed, config.test_size, *sample_key
            ),
            grid=grids[name],
            n_jobs=config.n_jobs,
            seed=config.seed,
            dask_address=config.dask_address,
        )
        for name in config.candidates
    ]
    evaluations = [
        evaluate.submit(
            s,
            X_fit,
            y_fit,
            X_test,
            y_test,
            model_name=model_name,
            out_dir=out_dir / "evaluation",
            seed=config.seed,
            n_jobs=config.n_jobs,
            importance_repeats=config.importance_repeats,
            importance_max_rows=config.importance_max_rows,
            refit=refit,
            dask_address=config.dask_address,
        )
        for s in searches
    ]
    outcomes = [e.result() for e in evaluations]
    for o in outcomes:
        o.search.cv_results.to_csv(out_dir / f"search_{o.name}.csv", index=False)
    return outcomes, (X_train, X_test, y_train, y_test)


def _publish(
    outcomes: list[CandidateOutcome],
    best: CandidateOutcome,
    registered: dict[str, Any],
    decision: dict[str, Any],
    *,
    data: dict[str, Any],
    out_dir: Path,
    sampling: dict[str, dict[str, int | None]] | None = None,
) -> None:
    """Candidate table and model card, as Prefect artifacts and files in the run folder."""
    rows = [o.summary() for o in outcomes]
    pd.DataFrame(rows).to_csv(out_dir / "candidates.csv", index=False)
    table = [{k: v for k, v in r.items() if k != "best_params"} for r in rows]
    create_table_artifact(
        table, key="candidate-metrics", description="Held-out metrics of every candidate"
    )
    m = best.metrics
    lines = [
        f"# Model card: {registered['model_name']} v{registered['version']}",
        "",
        f"**Candidate** `{best.name}` chosen by cross-validated ROC-AUC "
        f"({best.search.best_cv_auc:.4f}); calibration: {best.calibration.get('method')}.",
        "",
        "## Data",
        f"- source: `{data['source']}`",
        f"- fingerprint (sha256): `{data['fingerprint']}`",
        f"- rows: {data['rows']:,} ({data['quarantined']:,} quarantined)",
        f"- customers: {data['customers']:,}",
        f"- windows: `{json.dumps(data['windows'])}`",
    ]
    if data.get("path") == "out_of_core":
        lines.append("- processed out of core (partition by partition; the EDA shows a sample)")
    if sampling and any(v["rows"] < v["of"] for v in sampling.values()):
        lines += [
            "",
            "## Sampling (large training table)",
            "| step | customers used | of |",
            "|---|---|---|",
        ]
        for step, v in sampling.items():
            lines.append(f"| {step.replace('_', ' ')} | {v['rows']:,} | {v['of']:,} |")
        lines.append(
            "Samples are stratified on the label and seeded; held-out metrics use every test "
            "customer."
        )
    lines += [
        "",
        "## Held-out metrics",
        "| metric | value |",
        "|---|---|",
    ]
    for key in (
        "roc_auc",
        "roc_auc_ci_low",
        "roc_auc_ci_high",
        "gini",
        "ks",
        "brier",
        "pr_auc",
        "accuracy",
        "precision",
        "recall",
        "f1",
        "threshold",
    ):
        if m.get(key) is not None:
            lines.append(f"| {key} | {m[key]:.4f} |")
    lines += [
        f"| dummy ROC-AUC | {best.evaluation.baseline_metrics['roc_auc']:.4f} |",
        "",
        "## Champion decision",
        f"- promoted: **{decision['promoted']}**",
        f"- champion after this run: v{decision.get('champion_version')}",
        f"- why: {decision['reason']}",
        "",
        f"Best parameters: `{json.dumps(best.summary()['best_params'])}`",
    ]
    card = "\n".join(lines)
    (out_dir / "model_card.md").write_text(card)
    create_markdown_artifact(card, key="model-card", description="Registered model card")


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


def _prepare_in_memory(
    config: RetrainConfig, source: str, *, out_dir: Path, run_id: str, work_dir: Path
) -> dict[str, Any]:
    """Ingest, validate, clean, label, featurize and explore with every row in memory."""
    raw, fingerprint = ingest_source(source)
    ingested = validate(
        raw,
        source=source,
        fingerprint=fingerprint,
        max_bad_share=config.max_bad_share,
        out_dir=out_dir,
        run_id=run_id,
        db_url=config.db_url,
    )
    del raw
    cleaned = clean(ingested.data)
    tx = cleaned.data
    as_of = _as_of(config)
    key_parts = _key_parts(config, fingerprint, as_of)
    table = label(
        tx,
        cache_key=content_key(*key_parts),
        as_of=as_of,
        observation_days=config.observation_days,
        performance_days=config.performance_days,
        seed=config.seed,
    )
    snapshot = featurize(
        tx,
        as_of=as_of,
        window_days=config.observation_days,
        out_dir=out_dir,
        run_id=run_id,
        db_url=config.db_url,
    )
    report_path = eda(
        tx,
        out_dir / "eda_report.html",
        rfm=table.rfm,
        labels=table.y,
        quarantine={**ingested.report, "cleaning": cleaned.report},
        features=table.X,
    )
    return {
        "table": table,
        "snapshot": snapshot,
        "eda": report_path,
        "ingest_report": ingested.report,
        "fingerprint": fingerprint,
        "key_parts": key_parts,
        "n_rows": len(tx),
    }


def _prepare_out_of_core(
    config: RetrainConfig, source: str, *, out_dir: Path, run_id: str, work_dir: Path
) -> dict[str, Any]:
    """The same steps partition by partition: memory holds one chunk or one customer bucket
    (plus customer-level tables), never the whole history (see :mod:`credit.outofcore`)."""
    spilled = ingest_partitioned(
        source,
        work_dir=work_dir,
        max_bad_share=config.max_bad_share,
        out_dir=out_dir,
        run_id=run_id,
        db_url=config.db_url,
        chunk_rows=config.chunk_rows,
        bucket_rows=config.bucket_rows,
    )
    fingerprint = spilled.report["fingerprint"]
    buckets = clean(spilled, sample_rows=config.eda_sample_rows, seed=config.seed)
    as_of = _as_of(config)
    key_parts = _key_parts(config, fingerprint, as_of)
    table = label(
        buckets,
        cache_key=content_key(*key_parts),
        as_of=as_of,
        observation_days=config.observation_days,
        performance_days=config.performance_days,
        seed=config.seed,
    )
    snapshot = featurize(
        buckets,
        as_of=as_of,
        window_days=config.observation_days,
        out_dir=out_dir,
        run_id=run_id,
        db_url=config.db_url,
    )
    sample = buckets.sample
    report_path = eda(
        sample,
        out_dir / "eda_report.html",
        rfm=table.rfm,
        labels=table.y,
        quarantine={**spilled.report, "cleaning": buckets.report},
        features=table.X,
        title=(
            "Bati Bank credit scoring - exploratory data analysis of a uniform sample of "
            f"{len(sample):,} of {buckets.rows:,} cleaned transactions"
        ),
    )
    return {
        "table": table,
        "snapshot": snapshot,
        "eda": report_path,
        "ingest_report": spilled.report,
        "fingerprint": fingerprint,
        "key_parts": key_parts,
        "n_rows": buckets.rows,
    }


@flow(name="retrain", log_prints=True)
def retrain(config: RetrainConfig | None = None) -> dict[str, Any]:
    """Retrain the credit-risk model on the latest transactions and promote it if it is better."""
    config = config or RetrainConfig()
    from registry import PromotionPolicy

    logger = get_run_logger()
    run_id = _run_id()
    out_dir = Path(config.out_dir) if config.out_dir else runs_dir() / run_id
    out_dir.mkdir(parents=True, exist_ok=True)
    policy = PromotionPolicy(
        min_auc_gain=config.promotion_margin,
        max_ks_loss=config.max_ks_loss,
        max_brier_increase=config.max_brier_increase,
    )
    if config.table:
        return _retrain_table(config, run_id=run_id, out_dir=out_dir, policy=policy)

    source = config.data or str(_demo_data())
    streamed = (
        config.out_of_core
        if config.out_of_core is not None
        else should_stream(source, min_rows=config.out_of_core_rows)
    )
    work_dir = out_dir / "spill"
    try:
        data_stage = _prepare_out_of_core if streamed else _prepare_in_memory
        prepared = data_stage(config, source, out_dir=out_dir, run_id=run_id, work_dir=work_dir)
    finally:
        shutil.rmtree(work_dir, ignore_errors=True)
    table, snapshot, report_path = prepared["table"], prepared["snapshot"], prepared["eda"]
    ingest_report, fingerprint = prepared["ingest_report"], prepared["fingerprint"]
    key_parts = prepared["key_parts"]
    information_value(table.X, table.y, out_dir)
    model_name = config.model_name or DEFAULT_MODEL_NAME
    outcomes, (X_train, X_test, y_train, y_test) = _train_and_evaluate(
        config, table.X, table.y, key_parts=key_parts, model_name=model_name, out_dir=out_dir
    )
    best = select_best(outcomes)
    windows = table.report["windows"]
    sampling = sampling_report(config, len(X_train), len(X_test))
    registered = register(
        best,
        db_url=config.db_url,
        model_name=model_name,
        params={
            "candidate": best.name,
            "observation_days": config.observation_days,
            "performance_days": config.performance_days,
            "as_of": table.as_of.isoformat(),
            "cutoff": table.cutoff.isoformat(),
            "feature_version": FEATURE_VERSION,
            "seed": config.seed,
            "calibration": best.calibration,
            "threshold": best.model.threshold,
            "scorecard": best.model.scorecard_,
            "policy": best.model.policy_,
            "sampling": sampling,
            "data_path": "out_of_core" if streamed else "in_memory",
        },
        data_fingerprint=fingerprint,
        n_rows=prepared["n_rows"],
        n_customers=len(table.X),
        window_start=pd.Timestamp(windows["observation"][0]).to_pydatetime(),
        window_end=table.as_of.to_pydatetime(),
        holdout=holdout_fingerprint(X_test, y_test),
        code_version=code_version(),
        flow_run_id=run_id,
        extra={
            "candidates": [o.summary() for o in outcomes],
            "label": table.report,
            "quarantined": ingest_report["quarantined"],
            "eda_report": str(report_path),
        },
    )
    decision = promote(
        db_url=config.db_url,
        model_name=model_name,
        version=registered["version"],
        policy=policy,
        X_test=X_test,
        y_test=y_test,
    )
    data = {
        "source": ingest_report["source"],
        "fingerprint": fingerprint,
        "rows": ingest_report["rows"],
        "quarantined": ingest_report["quarantined"],
        "customers": len(table.X),
        "windows": windows,
        "path": "out_of_core" if streamed else "in_memory",
    }
    _publish(outcomes, best, registered, decision, data=data, out_dir=out_dir, sampling=sampling)
    summary = _summary(run_id, registered, decision, best, outcomes, out_dir)
    summary.update(
        {
            "data": data,
            "sampling": sampling,
            "snapshot_customers": len(snapshot),
            "eda_report": str(report_path),
            "label_report": {
                k: table.report[k] for k in ("n_customers", "excluded_no_history", "cutoff")
            },
        }
    )
    logger.info("retrain done: %s", json.dumps(summary["metrics"]))
    return summary


def run_retrain(config: RetrainConfig | None = None) -> dict[str, Any]:
    """Run the retrain flow, on prefect-dask's task runner when ``config.dask_address`` is set.

    The candidates' search and evaluation tasks then run on the cluster's workers, and their
    cross-validation fits through joblib's Dask backend; everything else runs in this process.
    """
    config = config or RetrainConfig()
    if not config.dask_address:
        return retrain(config)
    from prefect_dask import DaskTaskRunner

    runner = DaskTaskRunner(address=config.dask_address)
    return retrain.with_options(task_runner=runner)(config)


def _summary(
    run_id: str,
    registered: dict[str, Any],
    decision: dict[str, Any],
    best: CandidateOutcome,
    outcomes: list[CandidateOutcome],
    out_dir: Path,
) -> dict[str, Any]:
    return {
        "flow_run_id": run_id,
        "model_name": registered["model_name"],
        "model_version": registered["version"],
        "champion": decision.get("champion_version"),
        "promoted": bool(decision["promoted"]),
        "promotion_reason": decision["reason"],
        "candidate": best.name,
        "metrics": headline_metrics(best.metrics),
        "candidates": {o.name: headline_metrics(o.metrics) for o in outcomes},
        "out_dir": str(out_dir),
    }


def _retrain_table(
    config: RetrainConfig, *, run_id: str, out_dir: Path, policy: Any
) -> dict[str, Any]:
    """Bring your own labels: the same training, evaluation and registration on any table."""
    from credit.ingest import fingerprint_file
    from credit.tabular import load_table, prepare_labelled_table

    if not config.target:
        raise ValueError("--table needs --target COLUMN (the label column)")
    path = Path(config.table)
    if not path.exists():
        raise FileNotFoundError(f"labelled table {path} does not exist")
    X, y, info = prepare_labelled_table(load_table(path), config.target)
    fingerprint = fingerprint_file(path)
    model_name = config.model_name or f"{DEFAULT_MODEL_NAME}-{path.stem}"
    get_run_logger().info("labelled table %s: %s", path, json.dumps(info, default=str))
    key_parts = [fingerprint, config.target, config.seed]
    outcomes, (X_train, X_test, y_train, y_test) = _train_and_evaluate(
        config, X, y, key_parts=key_parts, model_name=model_name, out_dir=out_dir
    )
    best = select_best(outcomes)
    registered = register(
        best,
        db_url=config.db_url,
        model_name=model_name,
        params={
            "candidate": best.name,
            "table": str(path),
            "target": config.target,
            "seed": config.seed,
            "sampling": sampling_report(config, len(X_train), len(X_test)),
            "calibration": best.calibration,
            "threshold": best.model.threshold,
        },
        data_fingerprint=fingerprint,
        n_rows=len(X),
        n_customers=len(X),
        window_start=None,
        window_end=None,
        holdout=holdout_fingerprint(X_test, y_test),
        code_version=code_version(),
        flow_run_id=run_id,
        extra={"candidates": [o.summary() for o in outcomes], "table": info},
    )
    decision = promote(
        db_url=config.db_url,
        model_name=model_name,
        version=registered["version"],
        policy=policy,
        X_test=X_test,
        y_test=y_test,
    )
    data = {
        "source": str(path),
        "fingerprint": fingerprint,
        "rows": len(X),
        "quarantined": 0,
        "customers": len(X),
        "windows": {"target": config.target},
    }
    _publish(
        outcomes,
        best,
        registered,
        decision,
        data=data,
        out_dir=out_dir,
        sampling=sampling_report(config, len(X_train), len(X_test)),
    )
    return _summary(run_id, registered, decision, best, outcomes, out_dir)


def _demo_data() -> Path:
    import sampledata

    return sampledata.ensure_demo_data()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m flows.retrain", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--data", help="transactions (default: the generated demo set)")
    parser.add_argument("--table", help="a labelled customer table (CSV/Parquet)")
    parser.add_argument("--target", help="the label column of --table")
    parser.add_argument("--db-url", help="registry database URL (default BATI_DB_URL)")
    parser.add_argument("--as-of", help="reference date (ISO); default: the data's last timestamp")
    parser.add_argument("--model-name", help="registry model name")
    parser.add_argument("--observation-days", type=int, default=60)
    parser.add_argument("--performance-days", type=int, default=30)
    parser.add_argument("--candidates", help="comma-separated subset of " + ",".join(CANDIDATES))
    parser.add_argument("--promotion-margin", type=float, default=0.005)
    parser.add_argument("--max-bad-share", type=float, default=0.01)
    parser.add_argument("--out-dir", help="run outputs folder")
    parser.add_argument(
        "--dask-address",
        help=f"Dask scheduler to run the candidates on (default ${DASK_ADDRESS_ENV})",
    )
    streaming = parser.add_mutually_exclusive_group()
    streaming.add_argument(
        "--out-of-core",
        dest="out_of_core",
        action="store_const",
        const=True,
        help="stream a Parquet file/folder partition by partition (automatic for folders)",
    )
    streaming.add_argument(
        "--in-memory", dest="out_of_core", action="store_const", const=False, help="never stream"
    )
    parser.add_argument("--search-max-rows", type=int, help="customers the grid searches use")
    parser.add_argument("--fit-max-rows", type=int, help="customers the final model is fitted on")
    args = parser.parse_args(argv)
    optional = {
        k: v
        for k, v in {
            "dask_address": args.dask_address,
            "out_of_core": args.out_of_core,
            "search_max_rows": args.search_max_rows,
            "fit_max_rows": args.fit_max_rows,
        }.items()
        if v is not None
    }
    try:
        config = RetrainConfig(
            data=args.data,
            table=args.table,
            target=args.target,
            db_url=args.db_url,
            as_of=args.as_of,
            model_name=args.model_name,
            observation_days=args.observation_days,
            performance_days=args.performance_days,
            candidates=args.candidates.split(",") if args.candidates else list(CANDIDATES),
            promotion_margin=args.promotion_margin,
            max_bad_share=args.max_bad_share,
            out_dir=args.out_dir,
            **optional,
        )
    except ValueError as exc:
        print(f"error: invalid arguments: {exc}", file=sys.stderr)
        return 2
    return run_cli(lambda: run_retrain(config), precheck=config.data)


class _NoTraceback(logging.Filter):
    """Console logs keep the error message but drop the traceback (the UI keeps it)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info:
            exc = record.exc_info[1]
            record.msg = f"{record.getMessage()} ({type(exc).__name__}: {exc})"
            record.args = None
            record.exc_info = None
            record.exc_text = None
        return True


def quiet_console_tracebacks() -> None:
    """Operators get one clear message on the terminal, not Prefect's tracebacks."""
    from prefect.logging.configuration import setup_logging
    from prefect.logging.handlers import PrefectConsoleHandler

    setup_logging()
    loggers = [logging.getLogger()] + [
        logging.getLogger(name)
        for name in list(logging.root.manager.loggerDict)
        if name.startswith("prefect")
    ]
    for logger in loggers:
        for handler in logger.handlers:
            if isinstance(handler, PrefectConsoleHandler | logging.StreamHandler) and not any(
                isinstance(f, _NoTraceback) for f in handler.filters
            ):
                handler.addFilter(_NoTraceback())


def run_cli(call: Any, *, precheck: str | None = None) -> int:
    """Run a flow for the shell: JSON summary last on stdout, or one clear error line.

    ``precheck``: a data path checked before any server starts (a typo fails in a second).
    """
    from credit.ingest import IngestError, check_source

    quiet_console_tracebacks()
    try:
        if precheck:
            check_source(precheck)
        summary = call()
    except IngestError as exc:
        print(f"error: {exc}", file=sys.stderr)
        print(json.dumps({"error": str(exc)}))
        return 2
    except Exception as exc:
        message = f"{type(exc).__name__}: {exc}".splitlines()[0]
        print(f"error: retrain failed: {message}", file=sys.stderr)
        print(json.dumps({"error": message}))
        return 1
    print(json.dumps(summary, default=str))
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    sys.exit(main())
