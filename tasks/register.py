"""Registration and promotion tasks (the registry's I/O is retried)."""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from credit.evaluate import classification_metrics
from credit.gates import GatePolicy, GateResult, evaluate_gates, paired_loss_se, reference_metrics
from credit.monitoring import (
    LABEL_COLUMN,
    PD_COLUMN,
    BinnedReference,
    feature_stability,
    model_references,
    stability,
)
from credit.paths import code_version
from credit.training import CandidateOutcome, TrainingData, points_records, registry_metrics
from tasks.registry_handle import registry_for

if TYPE_CHECKING:
    from registry import PromotionDecision, PromotionPolicy, VersionInfo


def holdout_fingerprint(X_test: pd.DataFrame, y_test: pd.Series) -> str:
    """Identifies the held-out evaluation: its customers and their labels."""
    digest = hashlib.sha256()
    digest.update("\n".join(map(str, X_test.index)).encode())
    digest.update(np.asarray(y_test, dtype=np.int8).tobytes())
    return digest.hexdigest()


def _points_extra(model: Any) -> dict[str, Any]:
    """``{"points_table": records}`` for a WoE scorecard (what the API's
    ``GET /v1/models/<version>/scorecard`` serves), else nothing."""
    records = points_records(model)
    return {} if records is None else {"points_table": records}


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
    references: dict[str, Any] | None = None,
    reference_holdout: pd.DataFrame | None = None,
) -> VersionInfo:
    """Write the chosen model as a new immutable version (artifact + metadata, one transaction).

    ``params`` and ``extra`` (JSON columns) add to what ``training`` records for its entry;
    ``references`` and ``reference_holdout`` (:func:`build_references`) are stored with it."""
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
        extra={**extra, **training.extra, **_points_extra(model)},
        references=references,
        reference_holdout=reference_holdout,
    )
    get_run_logger().info(
        "registered %s version %d (%s)", training.model_name, info.version, outcome.name
    )
    return info


@task(name="build-references", cache_policy=NO_CACHE)
def build_references(
    outcome: CandidateOutcome,
    training: TrainingData,
    X_train: pd.DataFrame,
    y_train: pd.Series,
    X_test: pd.DataFrame,
    y_test: pd.Series,
) -> tuple[dict[str, Any], pd.DataFrame]:
    """The monitoring references a version is registered with (:func:`credit.monitoring.
    model_references`): its training inputs' bins, its holdout's score bins and band mix, the
    night's scored population, and its reference holdout (inputs, labels, predicted PD)."""
    distributions, holdout = model_references(
        outcome.model,
        X_train,
        y_train,
        X_test,
        y_test,
        snapshot=training.snapshot,
        iv=training.iv,
    )
    get_run_logger().info(
        "references: %d inputs, holdout of %d customers%s",
        len(distributions["inputs"]),
        len(holdout),
        f", scored population of {distributions['scored']['n']}"
        if "scored" in distributions
        else "",
    )
    return distributions, holdout


@task(name="promotion-gates", retries=2, retry_delay_seconds=[2, 10], cache_policy=NO_CACHE)
def promotion_gates(
    *,
    db_url: str | None,
    model_name: str,
    version: int,
    model: Any,
    X_train: pd.DataFrame,
    iv: dict[str, float],
    policy: GatePolicy,
) -> GateResult | None:
    """The challenger against the champion's stored references (:mod:`credit.gates`); ``None``
    when there is no other champion, or it has no references (registered before them)."""
    from registry import read_references

    reg = registry_for(db_url)
    champ = reg.champion(model_name)
    if champ is None or champ.version == version:
        return None
    refs = read_references(reg, model_name, champ.version)
    if refs is None or refs.holdout is None:
        get_run_logger().warning("champion v%d has no references: gates skipped", champ.version)
        return None
    dist = refs.distributions
    training_refs = {
        k: BinnedReference.from_dict(v)
        for k, v in (dist.get("training") or {}).get("inputs", {}).items()
    }
    input_psi = feature_stability(training_refs, X_train)
    both_iv = {k: max(v, iv.get(k, 0.0)) for k, v in (dist.get("iv") or {}).items()}
    both_iv.update({k: v for k, v in iv.items() if k not in both_iv})
    holdout = refs.holdout
    y = holdout[LABEL_COLUMN].to_numpy(dtype=np.int64)
    champion_pd = holdout[PD_COLUMN].to_numpy(dtype=np.float64)
    champion_metrics = reference_metrics(y, champion_pd)
    challenger_metrics, score_psi, loss_se = None, None, None
    try:
        inputs = holdout.drop(columns=[LABEL_COLUMN, PD_COLUMN])
        scored = model.score_frame(inputs, with_reasons=False)
        challenger_pd = scored["probability"].to_numpy(dtype=np.float64)
        challenger_metrics = reference_metrics(y, challenger_pd)
        loss_se = paired_loss_se(y, champion_pd, challenger_pd)
        score_ref = (dist.get("holdout") or {}).get("score")
        if score_ref:
            score_psi = round(stability(BinnedReference.from_dict(score_ref), scored["score"]), 6)
    except Exception as exc:  # a challenger that cannot score the reference is held
        get_run_logger().warning("challenger cannot score the reference holdout: %s", exc)
    result = evaluate_gates(
        input_psi=input_psi,
        iv=both_iv,
        score_psi=score_psi,
        challenger_metrics=challenger_metrics,
        champion_metrics=champion_metrics,
        champion_version=champ.version,
        policy=policy,
        loss_se=loss_se,
        reference_customers=len(holdout),
    )
    result.checks["champion_version"] = champ.version
    result.checks["input_psi"] = input_psi
    log = get_run_logger()
    if result.passed:
        log.info("promotion gates passed against champion v%d", champ.version)
    else:
        log.warning("promotion gates failed: %s", result.hold)
    return result


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
    gates: GateResult | None = None,
    publish_snapshot: str | None = None,
) -> PromotionDecision:
    """Champion/challenger: promote only when the new version beats the champion on the same
    held-out evaluation (the champion is re-scored on this run's test split) and passes the
    ``gates`` (a failed gate holds it for approval, with the reason). ``publish_snapshot`` (a
    run id) makes that run's feature snapshot the served one in the decision's transaction."""
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
        model_name,
        version,
        policy=policy,
        actor="retrain-flow",
        champion_metrics=champion_metrics,
        hold=None if gates is None else gates.hold,
        extra_checks=None if gates is None else {"gates": gates.checks},
        publish_snapshot=publish_snapshot,
    )
    get_run_logger().info("promotion of v%d: %s - %s", version, decision.promoted, decision.reason)
    return decision
