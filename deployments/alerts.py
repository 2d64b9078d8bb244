"""Prefect automations for the alert events (``python -m deployments.alerts``, ``make deploy``).

- ``bati-monitoring-breach``: every ``bati.monitoring.breach`` event (a stability or decay
  figure past its threshold) notifies through the notification block ``bati-alerts``;
- ``bati-promotion-held``: every challenger held for approval by the promotion gates;
- ``bati-flow-failed``: every failed or crashed flow (``bati.flow.failed`` / ``.crashed``);
- with ``--retrain-on-drift DEPLOYMENT_ID`` (or ``serve.py``, which knows the nightly's id),
  ``bati-input-drift-retrain`` also starts that deployment when an input-stability breach at the
  ``act`` level arrives (an out-of-schedule retrain on fresh data).

The block is a ``CustomWebhookNotificationBlock`` posting JSON (subject, body, and the event's
metric, value, threshold, level, model and version) to ``$BATI_ALERT_WEBHOOK``; without that
variable an existing ``bati-alerts`` block (any notification block, e.g. Slack or e-mail, saved
under that name) is used. Automations are replaced by name, so running this twice is harmless.
Needs a Prefect server (``PREFECT_API_URL``) whose services evaluate triggers.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from typing import Any
from uuid import UUID

from schemas.settings import check_flow_settings, setting
from tasks.alerts import (
    BREACH_EVENT,
    FLOW_CRASHED_EVENT,
    FLOW_FAILED_EVENT,
    HELD_EVENT,
)

ALERT_WEBHOOK_ENV = "BATI_ALERT_WEBHOOK"
BLOCK_NAME = "bati-alerts"
PREFIX = "bati-"

BREACH_BODY = (
    "{{ event.payload.kind }} breach on {{ event.payload.model_name }} "
    "v{{ event.payload.model_version }}: {{ event.payload.metric }} = {{ event.payload.value }} "
    "(threshold {{ event.payload.threshold }}, level {{ event.payload.level }}, "
    "as of {{ event.payload.as_of }})"
)
HELD_BODY = (
    "{{ event.payload.model_name }} v{{ event.payload.model_version }} held for approval "
    "(champion v{{ event.payload.champion_version }}): {{ event.payload.reason }}"
)
FAILED_BODY = (
    "flow {{ event.payload.flow }} run {{ event.payload.flow_run_id }} ended "
    "{{ event.payload.state }}: {{ event.payload.message }}"
)


def webhook_block(url: str) -> Any:
    """The webhook block posting each alert as JSON (event fields included)."""
    from prefect.blocks.notifications import CustomWebhookNotificationBlock

    return CustomWebhookNotificationBlock(
        name=BLOCK_NAME,
        url=url,
        json_data={"subject": "{{subject}}", "body": "{{body}}", "source": "bati"},
    )


def ensure_block(url: str | None = None) -> UUID:
    """Save (or replace) the webhook block from ``url`` / ``$BATI_ALERT_WEBHOOK``, or use the
    saved ``bati-alerts`` block; returns its document id."""
    from prefect.blocks.notifications import NotificationBlock

    url = url or setting("alert_webhook")
    if url:
        block = webhook_block(url)
        return block.save(BLOCK_NAME, overwrite=True)
    try:
        block = NotificationBlock.load(BLOCK_NAME)
    except ValueError as exc:
        raise RuntimeError(
            f"no alert destination: set {ALERT_WEBHOOK_ENV} to a webhook URL, or save a "
            f"notification block named {BLOCK_NAME!r}"
        ) from exc
    return block._block_document_id


def build_automations(block_id: UUID, retrain_deployment_id: UUID | None = None) -> list[Any]:
    """The automations (not yet created)."""
    from datetime import timedelta

    from prefect.automations import Automation, EventTrigger, RunDeployment, SendNotification

    def notify(subject: str, body: str) -> SendNotification:
        return SendNotification(block_document_id=block_id, subject=subject, body=body)

    def reactive(*events: str, **match: str) -> EventTrigger:
        return EventTrigger(
            expect=set(events),
            match=match or {},
            posture="Reactive",
            threshold=1,
            within=timedelta(0),
        )

    autos = [
        Automation(
            name=f"{PREFIX}monitoring-breach",
            description="A monitored figure past its threshold (stability or decay)",
            trigger=reactive(BREACH_EVENT, **{"prefect.resource.id": "bati.model.*"}),
            actions=[
                notify(
                    "Bati monitoring breach: {{ event.payload.metric }} "
                    "({{ event.payload.level }})",
                    BREACH_BODY,
                )
            ],
        ),
        Automation(
            name=f"{PREFIX}promotion-held",
            description="A challenger held for approval by the promotion gates",
            trigger=reactive(HELD_EVENT),
            actions=[notify("Bati challenger held for approval", HELD_BODY)],
        ),
        Automation(
            name=f"{PREFIX}flow-failed",
            description="A flow failed or crashed",
            trigger=reactive(FLOW_FAILED_EVENT, FLOW_CRASHED_EVENT),
            actions=[
                notify("Bati flow {{ event.payload.flow }} {{ event.payload.state }}", FAILED_BODY)
            ],
        ),
    ]
    if retrain_deployment_id is not None:
        autos.append(
            Automation(
                name=f"{PREFIX}input-drift-retrain",
                description="Input drift at the act level starts an out-of-schedule retrain",
                trigger=EventTrigger(
                    expect={BREACH_EVENT},
                    match_related={"prefect.resource.id": "bati.metric.feature_psi.*"},
                    posture="Reactive",
                    threshold=1,
                    within=timedelta(0),
                ),
                actions=[
                    RunDeployment(source="selected", deployment_id=retrain_deployment_id),
                    notify("Bati input drift: retrain started", BREACH_BODY),
                ],
            )
        )
    return autos


def ensure_automations(
    url: str | None = None, retrain_deployment_id: UUID | None = None
) -> list[str]:
    """Create (replacing same-named ones) the automations; returns their names."""
    from prefect.automations import Automation

    block_id = ensure_block(url)
    names = []
    for auto in build_automations(block_id, retrain_deployment_id):
        with contextlib.suppress(ValueError):  # not there yet
            Automation.read(name=auto.name).delete()
        auto.create()
        names.append(auto.name)
    return names


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m deployments.alerts", description=__doc__)
    parser.add_argument("--webhook", help=f"webhook URL (default ${ALERT_WEBHOOK_ENV})")
    parser.add_argument("--retrain-on-drift", metavar="DEPLOYMENT_ID", type=UUID)
    args = parser.parse_args(argv)
    refused = check_flow_settings()  # a bad BATI_* value: one line naming it, exit 2
    if refused:
        print(refused, file=sys.stderr)
        return 2
    try:
        names = ensure_automations(args.webhook, args.retrain_on_drift)
    except Exception as exc:
        print(f"error: alerts: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    print("automations: " + ", ".join(names))
    return 0


if __name__ == "__main__":
    sys.exit(main())
