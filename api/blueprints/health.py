"""Liveness and readiness."""

from __future__ import annotations

import os

from flask import Blueprint, Response, jsonify

from api.errors import ApiError
from api.state import get_state

bp = Blueprint("health", __name__)


@bp.get("/health")
def health() -> Response:
    """The process is alive (200 even without a model); counters for monitoring."""
    state = get_state()
    served = state.holder.current
    status = dict(state.holder.status)
    status["served_loaded_at"] = served.loaded_at if served else None
    return jsonify(
        {
            "status": "ok",
            "pid": os.getpid(),
            "model_name": state.settings.model_name,
            "served_version": served.version if served else None,
            "reload": status,
            "prediction_log": state.predlog.stats(),
        }
    )


@bp.get("/ready")
def ready() -> Response:
    """200 once a champion is loaded, 503 until then."""
    state = get_state()
    served = state.holder.current
    if served is None:
        raise ApiError(
            503,
            "no_champion",
            f"no champion of {state.settings.model_name!r} is loaded yet",
            headers={"Retry-After": str(max(1, int(state.settings.reload_seconds)))},
        )
    return jsonify(
        {
            "status": "ready",
            "model_name": served.name,
            "model_version": served.version,
            "loaded_at": served.loaded_at,
        }
    )
