"""Serve the deployments from one process: ``python -m deployments.serve`` (``make serve``).

``nightly`` runs the night at 02:00 (``BATI_SCHEDULE_TZ``, default Africa/Addis_Ababa): ingest
what landed -> retrain on the store's window -> score -> monitor. Its source: the parameter
``config.landing``, else ``BATI_LANDING`` in this process's environment, else the Prefect Variable
``bati-landing``; a run without one fails at once naming them (the demo only with ``demo: true``).
``nightly-retrain`` retrains by hand and ``nightly-score`` scores after each of its completed
runs. Needs a Prefect server (``PREFECT_API_URL``). With ``BATI_DASK_ADDRESS`` set for this
process, every deployment runs its data stages, fits and scoring on that Dask cluster. The
work-pool deployments of prefect.yaml have other names (``*-pool``), so the two ways never take
over each other's deployments.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from prefect import serve
from prefect.events.schemas.deployment_triggers import DeploymentEventTrigger
from prefect.schedules import Cron

from deployments import entrypoints
from deployments.schedule import (
    NIGHTLY_CRON,
    NIGHTLY_DEPLOYMENT,
    RETRAIN_DEPLOYMENT,
    SCORE_DEPLOYMENT,
    schedule_timezone,
    score_after_retrain_trigger,
)
from flows.nightly import nightly
from schemas.settings import check_flow_settings


def build_deployments() -> list:
    """The runner deployments, ready for ``prefect.serve``."""
    night = nightly.to_deployment(
        name=NIGHTLY_DEPLOYMENT,
        schedule=Cron(NIGHTLY_CRON, timezone=schedule_timezone()),
        tags=["bati", "nightly"],
        description="The night: ingest new landed files into the transaction store, retrain on "
        "its rolling window, score, monitor. Source: config.landing, BATI_LANDING or the "
        "Variable bati-landing.",
    )
    retraining = entrypoints.retrain.to_deployment(
        name=RETRAIN_DEPLOYMENT,
        tags=["bati"],
        description="A retrain by hand (config.data: a file, folder or URL#table); the nightly "
        "deployment retrains every night.",
    )
    scoring = entrypoints.score.to_deployment(
        name=SCORE_DEPLOYMENT,
        triggers=[DeploymentEventTrigger(**score_after_retrain_trigger(RETRAIN_DEPLOYMENT))],
        tags=["bati", "nightly"],
        description="Batch-score every customer of the latest feature snapshot with the champion.",
    )
    # A served run is started from its entrypoint in a new process: the one that picks the
    # Dask task runner from that process's BATI_DASK_ADDRESS.
    retraining.entrypoint = _entrypoint("retrain")
    scoring.entrypoint = _entrypoint("score")
    return [night, retraining, scoring]


def _entrypoint(name: str) -> str:
    """``deployments/entrypoints.py:NAME``, relative to the serving process's folder."""
    path = Path(entrypoints.__file__).resolve()
    try:
        relative = path.relative_to(Path.cwd().resolve())
    except ValueError:
        relative = Path(os.path.relpath(path, Path.cwd()))
    return f"{relative}:{name}"


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
    refused = check_flow_settings()  # a bad BATI_* value: one line naming it, exit 2
    if refused:
        print(refused, file=sys.stderr)
        raise SystemExit(2)
    deployments = build_deployments()
    setup_alerts(deployments)
    serve(*deployments, pause_on_shutdown=False)


if __name__ == "__main__":
    main()
