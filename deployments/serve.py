"""Serve both deployments from one process: ``python -m deployments.serve``.

``retrain`` runs nightly at 02:00 (``BATI_SCHEDULE_TZ``, default Africa/Addis_Ababa); ``score`` runs
after every completed ``retrain`` (an event trigger). Needs a Prefect server (``PREFECT_API_URL``).
"""

from __future__ import annotations

from prefect import serve
from prefect.events.schemas.deployment_triggers import DeploymentEventTrigger
from prefect.schedules import Cron

from deployments.schedule import (
    RETRAIN_CRON,
    RETRAIN_DEPLOYMENT,
    SCORE_DEPLOYMENT,
    schedule_timezone,
    score_after_retrain_trigger,
)
from flows.retrain import retrain
from flows.score import score


def build_deployments() -> list:
    """The two runner deployments, ready for ``prefect.serve``."""
    nightly = retrain.to_deployment(
        name=RETRAIN_DEPLOYMENT,
        schedule=Cron(RETRAIN_CRON, timezone=schedule_timezone()),
        tags=["bati", "nightly"],
        description="Nightly retrain: ingest, validate, clean, EDA, features, label, train, "
        "evaluate, register, promote.",
    )
    scoring = score.to_deployment(
        name=SCORE_DEPLOYMENT,
        triggers=[DeploymentEventTrigger(**score_after_retrain_trigger())],
        tags=["bati", "nightly"],
        description="Batch-score every customer of the latest feature snapshot with the champion.",
    )
    return [nightly, scoring]


def setup_alerts(deployments: list) -> None:
    """The alert automations (:mod:`deployments.alerts`); input drift starts the first
    (nightly) deployment. Skipped with a warning when no alert destination is configured."""
    import sys

    from deployments.alerts import ensure_automations

    try:
        names = ensure_automations(retrain_deployment_id=deployments[0].apply())
        print("alert automations: " + ", ".join(names))
    except Exception as exc:  # alerts must not stop the deployments from serving
        print(f"warning: alert automations not set up: {exc}", file=sys.stderr)


def main() -> None:
    deployments = build_deployments()
    setup_alerts(deployments)
    serve(*deployments, pause_on_shutdown=False)


if __name__ == "__main__":
    main()
