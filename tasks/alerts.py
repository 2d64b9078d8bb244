"""Prefect events for alerts: monitoring breaches, held promotions, failed or crashed flows.

Events carry figures and model versions, never customer data. A Prefect automation
(:mod:`deployments.alerts`) turns them into notifications (a webhook block by default) and, for
input drift, can start an out-of-schedule retrain.

- ``bati.monitoring.breach``: resource ``bati.model.<name>.v<version>``, related resource
  ``bati.metric.<metric>``; payload metric, value, threshold, level, kind, as_of, run_id.
- ``bati.promotion.held``: a challenger held for approval by the promotion gates; payload the
  reason, the champion version and the drifted inputs (name -> PSI).
- ``bati.flow.failed`` / ``bati.flow.crashed``: from the flows' ``on_failure``/``on_crashed``
  hooks; resource ``prefect.flow-run.<id>``; payload flow name, state, message.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import Any

BREACH_EVENT = "bati.monitoring.breach"
HELD_EVENT = "bati.promotion.held"
FLOW_FAILED_EVENT = "bati.flow.failed"
FLOW_CRASHED_EVENT = "bati.flow.crashed"

log = logging.getLogger(__name__)


def model_resource(model_name: str, version: int | None) -> dict[str, str]:
    """The event resource naming one model version."""
    return {
        "prefect.resource.id": f"bati.model.{model_name}.v{version}",
        "prefect.resource.name": f"{model_name} v{version}",
        "bati.model": str(model_name),
        "bati.version": str(version),
    }


def _emit(event: str, resource: dict[str, str], payload: dict[str, Any], **kw: Any) -> bool:
    """Emit one event; never fails the caller (alerts must not break a run)."""
    from prefect.events import emit_event

    try:
        return emit_event(event=event, resource=resource, payload=payload, **kw) is not None
    except Exception as exc:  # pragma: no cover - an events client problem is only logged
        log.warning("could not emit %s: %s", event, exc)
        return False


def emit_breaches(
    model_name: str,
    version: int | None,
    breaches: Iterable[Mapping[str, Any]],
    *,
    kind: str,
    as_of: Any = None,
    run_id: str | None = None,
) -> int:
    """One ``bati.monitoring.breach`` event per breach; returns how many were emitted."""
    sent = 0
    for breach in breaches:
        metric = str(breach["metric"])
        payload = {
            "metric": metric,
            "value": breach["value"],
            "threshold": breach["threshold"],
            "level": breach["level"],
            "kind": kind,
            "model_name": model_name,
            "model_version": version,
            "as_of": None if as_of is None else str(as_of),
            "run_id": run_id,
        }
        related = [
            {
                "prefect.resource.id": f"bati.metric.{metric}",
                "prefect.resource.role": "metric",
            }
        ]
        sent += _emit(BREACH_EVENT, model_resource(model_name, version), payload, related=related)
    return sent


def emit_held(
    model_name: str,
    version: int,
    *,
    reason: str,
    champion_version: int | None,
    drifted_inputs: Mapping[str, float],
) -> bool:
    """A challenger held for approval by the promotion gates."""
    payload = {
        "model_name": model_name,
        "model_version": version,
        "champion_version": champion_version,
        "reason": reason,
        "drifted_inputs": {k: round(float(v), 4) for k, v in drifted_inputs.items()},
        "input_drift": bool(drifted_inputs),
    }
    return _emit(HELD_EVENT, model_resource(model_name, version), payload)


def _flow_state_event(event: str, flow: Any, flow_run: Any, state: Any) -> None:
    resource = {
        "prefect.resource.id": f"prefect.flow-run.{flow_run.id}",
        "prefect.resource.name": str(getattr(flow_run, "name", "")),
    }
    payload = {
        "flow": getattr(flow, "name", str(flow)),
        "flow_run_id": str(flow_run.id),
        "state": getattr(state, "name", str(state)),
        "message": str(getattr(state, "message", "") or "")[:500],
    }
    _emit(event, resource, payload)


def on_flow_failure(flow: Any, flow_run: Any, state: Any) -> None:
    """``on_failure`` hook: a ``bati.flow.failed`` event."""
    _flow_state_event(FLOW_FAILED_EVENT, flow, flow_run, state)


def on_flow_crashed(flow: Any, flow_run: Any, state: Any) -> None:
    """``on_crashed`` hook: a ``bati.flow.crashed`` event."""
    _flow_state_event(FLOW_CRASHED_EVENT, flow, flow_run, state)


#: Keyword arguments for ``@flow``: both hooks.
ALERT_HOOKS: dict[str, list[Any]] = {
    "on_failure": [on_flow_failure],
    "on_crashed": [on_flow_crashed],
}
