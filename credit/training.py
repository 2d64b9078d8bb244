"""From a labelled customer table to evaluated candidates and the model worth registering.

The steps the flow runs as separate tasks, as plain functions:
``search_candidate`` (grid search on TRAIN) -> ``finalize_candidate`` (calibrate if it helps, pick
the threshold on validation data carved from TRAIN, evaluate once on TEST beside a dummy
baseline) -> ``select_best`` (by cross-validated ROC-AUC, never by the test split) ->
``CreditRiskModel`` (the object the registry stores and the API serves).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from credit.evaluate import (
    Evaluation,
    calibrate_from_oof,
    calibrate_if_better,
    calibrate_on_holdout,
    evaluate_candidate,
)
from credit.features import FEATURE_VERSION
from credit.ingest import IngestReport
from credit.label import TrainingTable
from credit.models import SearchResult
from credit.scoring import CreditRiskModel, scorecard_estimator

METRIC_KEYS = ("roc_auc", "ks", "brier", "accuracy", "precision", "recall", "f1")
CALIBRATIONS = ("sigmoid", "isotonic")
#: From this many customers a refit (search on a sample) is calibrated on a held-out 20 %
#: with one fit (:func:`credit.evaluate.calibrate_on_holdout`) instead of cross-validated fits.
HOLDOUT_CALIBRATION_ROWS = 20_000


@dataclass
class CandidateOutcome:
    """One candidate after search, calibration and held-out evaluation."""

    name: str
    search: SearchResult
    model: CreditRiskModel
    calibration: dict[str, Any]
    evaluation: Evaluation
    seconds: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def metrics(self) -> dict[str, Any]:
        return self.evaluation.metrics

    def summary(self) -> dict[str, Any]:
        """One row of the candidates table (JSON-friendly)."""
        m, b = self.evaluation.metrics, self.evaluation.baseline_metrics
        row: dict[str, Any] = {"candidate": self.name, "cv_roc_auc": self.search.best_cv_auc}
        for key in ("roc_auc", "roc_auc_ci_low", "roc_auc_ci_high", "pr_auc", "gini", "ks"):
            row[key] = m.get(key)
        for key in ("brier", "accuracy", "precision", "recall", "f1", "threshold"):
            row[key] = m.get(key)
        row["dummy_roc_auc"] = b.get("roc_auc")
        row["dummy_brier"] = b.get("brier")
        row["calibration"] = self.calibration.get("method")
        row["search_seconds"] = round(self.search.seconds, 2)
        row["best_params"] = _plain(self.search.best_params)
        return {k: _plain(v) for k, v in row.items()}


def _plain(value: Any) -> Any:
    """numpy scalars and nested containers as plain JSON types."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        return _plain(value.item())
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value


@dataclass(frozen=True)
class Split:
    """The customers a candidate is fitted on (train) and evaluated on once (test)."""

    X_train: pd.DataFrame
    y_train: pd.Series
    X_test: pd.DataFrame
    y_test: pd.Series


def finalize_candidate(
    search: SearchResult,
    split: Split,
    *,
    model_name: str,
    out_dir: Path | None = None,
    seed: int = 42,
    n_jobs: int | None = None,
    importance_repeats: int = 5,
) -> CandidateOutcome:
    """Calibrate if it lowers validation Brier (never a WoE scorecard: its PD is the sum of its
    points), then evaluate once on the held-out test split.

    Validation data, cheapest first: the search's out-of-fold predictions of exactly
    ``split.X_train`` (no fit at all), else for a large refit a held-out 20 % (one fit), else
    :func:`credit.evaluate.calibrate_if_better`'s fit / calibration / validation split."""
    t0 = time.perf_counter()
    X_train, y_train = split.X_train, split.y_train
    # a scorecard is never calibrated: its PD must stay the sum of its points (and its reason
    # codes the points lost); the threshold is still chosen on validation data
    methods = () if scorecard_estimator(search.best_estimator) is not None else CALIBRATIONS
    if _has_oof(search, X_train):
        # the search's own out-of-fold predictions: no fit needed to decide or calibrate
        fitted, calibration = calibrate_from_oof(
            search.best_estimator, search.oof, y_train, seed=seed, methods=methods
        )
    elif not _is_fitted(search.best_estimator) and len(X_train) >= HOLDOUT_CALIBRATION_ROWS:
        # a large refit (the search ran on a sample): one fit, calibrated on a held-out part
        fitted, calibration = calibrate_on_holdout(
            search.best_estimator, X_train, y_train, seed=seed, methods=methods
        )
    else:
        fitted, calibration = calibrate_if_better(
            search.best_estimator, X_train, y_train, seed=seed, n_jobs=n_jobs, methods=methods
        )
    threshold = float(calibration["threshold"])
    model = CreditRiskModel.from_search(fitted, X_train, y_train, threshold, model_name=model_name)
    evaluation = evaluate_candidate(
        model,
        split.X_test,
        split.y_test,
        threshold=threshold,
        out_dir=out_dir,
        name=search.name,
        X_train=X_train,
        y_train=y_train,
        seed=seed,
        importance_repeats=importance_repeats,
        n_jobs=n_jobs,
    )
    return CandidateOutcome(
        name=search.name,
        search=search,
        model=model,
        calibration=_plain(calibration),
        evaluation=evaluation,
        seconds=time.perf_counter() - t0,
    )


def _has_oof(search: SearchResult, X_train: pd.DataFrame) -> bool:
    """True when the search recorded out-of-fold predictions of exactly ``X_train`` and its
    best estimator is the one fitted on them (not a clone to refit on other rows)."""
    oof = getattr(search, "oof", None)
    return oof is not None and oof.index.equals(X_train.index) and _is_fitted(search.best_estimator)


def _is_fitted(estimator: Any) -> bool:
    from sklearn.exceptions import NotFittedError
    from sklearn.utils.validation import check_is_fitted

    try:
        check_is_fitted(estimator)
    except NotFittedError:
        return False
    return True


def points_records(model: CreditRiskModel) -> list[dict[str, Any]] | None:
    """The model's scorecard points table as JSON-safe records (NaN as None), or None when it
    is not a WoE scorecard."""
    table = model.points_table()
    return None if table is None else _plain(table.to_dict("records"))


def select_best(outcomes: list[CandidateOutcome]) -> CandidateOutcome:
    """The candidate with the best cross-validated ROC-AUC (the test split does not choose)."""
    if not outcomes:
        raise ValueError("no candidates were trained")
    return max(outcomes, key=lambda o: (o.search.best_cv_auc, -len(o.name)))


def headline_metrics(metrics: dict[str, Any]) -> dict[str, float]:
    """The metrics every report and the CLI's JSON line carry, by name."""
    return {k: float(metrics[k]) for k in METRIC_KEYS if metrics.get(k) is not None}


def registry_metrics(metrics: dict[str, Any]) -> dict[str, float]:
    """All scalar metrics (confusion counts flattened) for the registry."""
    out: dict[str, float] = {}
    for key, value in metrics.items():
        if isinstance(value, dict):
            out.update({f"{key}_{k}": float(v) for k, v in value.items()})
        elif isinstance(value, int | float | np.number) and np.isfinite(value):
            out[key] = float(value)
    return out


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


@dataclass(frozen=True)
class SamplingCaps:
    """Customers each training step may use (``None``: all)."""

    search_max_rows: int | None
    fit_max_rows: int | None
    importance_max_rows: int | None
    importance_repeats: int

    def report(self, n_train: int, n_test: int) -> dict[str, dict[str, int]]:
        """What each step used, of how many (JSON for the registry and the model card)."""

        def used(cap: int | None, n: int) -> int:
            return n if cap is None else min(cap, n)

        importance = used(self.importance_max_rows, n_test) if self.importance_repeats else 0
        return {
            "grid_search": {"rows": used(self.search_max_rows, n_train), "of": n_train},
            "final_fit": {"rows": used(self.fit_max_rows, n_train), "of": n_train},
            "test_metrics": {"rows": n_test, "of": n_test},
            "permutation_importance": {"rows": importance, "of": n_test},
        }


@dataclass(frozen=True)
class DataSummary:
    """Where a model's training data came from (the model card's and the summary's data)."""

    source: str
    fingerprint: str
    rows: int
    quarantined: int
    customers: int
    windows: dict[str, Any]
    path: str | None = None  # "in_memory" / "out_of_core"; None for a labelled table

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        return out if self.path is not None else {k: v for k, v in out.items() if k != "path"}


@dataclass
class TrainingData:
    """A labelled customer table ready for training, from either entry of the retrain flow.

    ``params`` and ``extra`` are what this entry adds to the registry's JSON columns, ``report``
    what it adds to the run summary.
    """

    X: pd.DataFrame
    y: pd.Series
    model_name: str
    key_parts: list[Any]
    n_rows: int  # transactions (or table rows) the customers were built from
    data: DataSummary
    params: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    report: dict[str, Any] = field(default_factory=dict)
    window_start: datetime | None = None
    window_end: datetime | None = None
    #: The night's feature snapshot (the population the model will score), when one was built.
    snapshot: pd.DataFrame | None = None
    #: Information value of each input against the label, when computed.
    iv: dict[str, float] = field(default_factory=dict)

    @classmethod
    def from_transactions(
        cls,
        table: TrainingTable,
        ingest: IngestReport,
        *,
        model_name: str,
        key_parts: list[Any],
        n_rows: int,
        report: dict[str, Any],
    ) -> TrainingData:
        """The labelled table built from transactions, with its windows and data lineage."""
        windows = table.report["windows"]
        data_path = ingest.mode or "in_memory"
        eda = report.get("eda_report")
        return cls(
            X=table.X,
            y=table.y,
            model_name=model_name,
            key_parts=key_parts,
            n_rows=n_rows,
            data=DataSummary(
                ingest.source,
                ingest.fingerprint,
                ingest.rows,
                ingest.quarantined,
                len(table.X),
                windows,
                data_path,
            ),
            params={
                "observation_days": windows.get("observation_days"),
                "performance_days": windows.get("performance_days"),
                "as_of": table.as_of.isoformat(),
                "cutoff": table.cutoff.isoformat(),
                "feature_version": FEATURE_VERSION,
                "data_path": data_path,
                # where decay monitoring finds the transactions (never a URL: no password)
                "data_source": None if "://" in str(ingest.source) else str(ingest.source),
            },
            extra={"label": table.report, "quarantined": ingest.quarantined, "eda_report": eda},
            report={
                **report,
                "label_report": {
                    k: table.report[k] for k in ("n_customers", "excluded_no_history", "cutoff")
                },
            },
            window_start=pd.Timestamp(windows["observation"][0]).to_pydatetime(),
            window_end=table.as_of.to_pydatetime(),
        )


def labelled_table_training(
    path: str | Path, target: str | None, *, seed: int, model_name: str | None
) -> TrainingData:
    """Bring your own labels: a customer table with a label column, trained the same way.

    The model is registered as ``model_name``, else ``<default name>-<file stem>``."""
    from credit.ingest import fingerprint_file
    from credit.tabular import load_table, prepare_labelled_table
    from schemas.defaults import DEFAULT_MODEL_NAME

    if not target:
        raise ValueError("--table needs --target COLUMN (the label column)")
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"labelled table {path} does not exist")
    X, y, info = prepare_labelled_table(load_table(path), target)
    fingerprint = fingerprint_file(path)
    return TrainingData(
        X=X,
        y=y,
        model_name=model_name or f"{DEFAULT_MODEL_NAME}-{path.stem}",
        key_parts=[fingerprint, target, seed],
        n_rows=len(X),
        data=DataSummary(str(path), fingerprint, len(X), 0, len(X), {"target": target}),
        params={"table": str(path), "target": target},
        extra={"table": info},
    )
