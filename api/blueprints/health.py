"""Liveness and readiness."""

from __future__ import annotations

import os

from flask import Blueprint, Response

from api import metrics
from api import payloads as p
from api.contract import endpoints, reply
from api.errors import ApiError
from api.state import get_state

bp = Blueprint("health", __name__)
health_endpoint = endpoints(tag="health")  # every route of this blueprint


@bp.get("/health")
@health_endpoint(
    op="health",
    ok=p.HealthResponse,
    summary="Liveness: the process answers (no model needed)",
)
def health() -> Response:
    """The process is alive (200 even without a model); counters for monitoring."""
    state = get_state()
    served = state.holder.current
    status = dict(state.holder.status)
    status["served_loaded_at"] = served.loaded_at if served else None
    return reply(
        p.HealthResponse(
            status="ok",
            pid=os.getpid(),
            model_name=state.settings.model_name,
            served_version=served.version if served else None,
            served_snapshot_id=served.snapshot_id if served else None,
            reload=status,
            prediction_log=p.PredictionLogStats(**state.predlog.stats()),
        )
    )


@bp.get("/ready")
@health_endpoint(
    op="ready",
    ok=p.ReadyResponse,
    errors=(503,),
    summary="Readiness: 200 once a champion that fits the API's inputs is loaded, else 503",
)
def ready() -> Response:
    """200 once a champion is loaded (a registry problem is reported beside it), 503 until then
    or when the champion cannot score what the API serves."""
    state = get_state()
    served = state.holder.current
    retry = {"Retry-After": str(max(1, int(state.settings.reload_seconds)))}
    if served is None:
        problem = state.holder.status.get("last_error")
        raise ApiError(
            503,
            "no_champion",
            f"no champion of {state.settings.model_name!r} is loaded yet"
            + (f" ({problem})" if problem else ""),
            headers=retry,
        )
    if served.input_problem:
        raise ApiError(503, "input_schema_mismatch", served.input_problem, headers=retry)
    return reply(
        p.ReadyResponse(
            status="ready",
            model_name=served.name,
            model_version=served.version,
            loaded_at=served.loaded_at,
            registry_error=state.holder.status.get("last_error"),
        )
    )


@bp.get("/metrics")
@health_endpoint(
    op="metrics",
    ok=None,
    media="text/plain",
    ok_schema={"type": "string"},
    summary="Prometheus metrics (text format), summed over every worker of the server",
)
def prometheus_metrics() -> Response:
    """Requests, latency, scores by band and decision, served version, reloads, prediction log."""
    return Response(metrics.exposition(), mimetype=None, content_type=metrics.CONTENT_TYPE)
