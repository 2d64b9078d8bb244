"""Registration and promotion tasks (the registry's I/O is retried)."""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from credit.evaluate import classification_metrics
from credit.paths import code_version
from credit.training import CandidateOutcome, TrainingData, registry_metrics
from tasks.registry_handle import registry_for

if TYPE_CHECKING:
    from registry import PromotionDecision, PromotionPolicy, VersionInfo


def holdout_fingerprint(X_test: pd.DataFrame, y_test: pd.Series) -> str:
    """Identifies the held-out evaluation: its customers and their labels."""
    digest = hashlib.sha256()
    digest.update("\n".join(map(str, X_test.index)).encode())
    digest.update(np.asarray(y_test, dtype=np.int8).tobytes())
    return digest.hexdigest()


@task(name="register", retries=2, retry_delay_seconds=[2, 10], cache_policy=NO_CACHE)
def register(
    outcome: CandidateOutcome,
    training: TrainingData,
    *,
    db_url: str | None,
    holdout: str,
    flow_run_id: str | None,
    params: dict[str, Any],
    extra: dict[str, Any],
) -> VersionInfo:
    """Write the chosen model as a new immutable version (artifact + metadata, one transaction).

    ``params`` and ``extra`` (JSON columns) add to what ``training`` records for its entry."""
    model = outcome.model
    info = registry_for(db_url).register(
        training.model_name,
        model,
        metrics=registry_metrics(outcome.metrics),
        params={
            "best_params": outcome.search.best_params,
            "candidate": outcome.name,
            "calibration": outcome.calibration,
            "threshold": model.threshold,
            "scorecard": model.scorecard_,
            "policy": model.policy_,
            **params,
            **training.params,
        },
        features=list(model.feature_names_),
        input_schema={"numeric": list(model.numeric_), "categorical": list(model.categorical_)},
        data_fingerprint=training.data.fingerprint,
        n_rows=training.n_rows,
        n_customers=len(training.X),
        window_start=training.window_start,
        window_end=training.window_end,
        code_version=code_version(),
        flow_run_id=flow_run_id,
        description=f"{outcome.name} ({outcome.calibration.get('method')} calibration)",
        holdout_fingerprint=holdout,
        extra={**extra, **training.extra},
    )
    get_run_logger().info(
        "registered %s version %d (%s)", training.model_name, info.version, outcome.name
    )
    return info


def champion_on_holdout(
    champion_model: Any, X_test: pd.DataFrame, y_test: pd.Series
) -> dict[str, Any] | None:
    """The champion re-scored on the candidate's held-out split, or None if it cannot be."""
    try:
        p = champion_model.predict_pd(X_test)
    except Exception:
        return None
    threshold = float(getattr(champion_model, "threshold", 0.5))
    return classification_metrics(y_test, p, threshold, n_boot=100)


@task(name="promote", retries=2, retry_delay_seconds=[2, 10], cache_policy=NO_CACHE)
def promote(
    *,
    db_url: str | None,
    model_name: str,
    version: int,
    policy: PromotionPolicy,
    X_test: pd.DataFrame,
    y_test: pd.Series,
) -> PromotionDecision:
    """Champion/challenger: promote only when the new version beats the champion on the same
    held-out evaluation (the champion is re-scored on this run's test split)."""
    reg = registry_for(db_url)
    champion_metrics = None
    current = reg.champion(model_name)
    if current is not None and current.version != version:
        try:
            loaded = reg.load_champion(model_name)
        except Exception as exc:  # a tampered or refused champion must not block the flow
            get_run_logger().warning("cannot load champion v%d: %s", current.version, exc)
            loaded = None
        if loaded is not None:
            champion_metrics = champion_on_holdout(loaded[1], X_test, y_test)
    decision = reg.promote_if_better(
        model_name, version, policy=policy, actor="retrain-flow", champion_metrics=champion_metrics
    )
    get_run_logger().info("promotion of v%d: %s - %s", version, decision.promoted, decision.reason)
    return decision
