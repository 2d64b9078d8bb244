"""GET /v1/monitoring (admin): the latest stability and decay figures and open breaches."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, request

from api import payloads as p
from api.blueprints.models import registry_errors
from api.contract import endpoint, reply
from api.errors import ApiError
from api.holder import json_safe
from api.http import require_admin
from api.state import get_state

bp = Blueprint("monitoring", __name__, url_prefix="/v1")
DEFAULT_HISTORY = 30
MAX_HISTORY = 500


def _record(row: dict[str, Any]) -> p.MonitoringRecord:
    return p.MonitoringRecord.model_validate(json_safe(dict(row)))


def _open(record: p.MonitoringRecord | None) -> list[p.OpenBreach]:
    if record is None:
        return []
    out = []
    for b in record.breaches:
        value, threshold = b.get("value"), b.get("threshold")
        out.append(
            p.OpenBreach(
                kind=record.kind,
                metric=str(b.get("metric", "")),
                value=value if isinstance(value, int | float) else None,
                threshold=threshold if isinstance(threshold, int | float) else None,
                level=str(b.get("level", "")),
                model_version=record.model_version,
                as_of=record.as_of,
                run_id=record.run_id,
            )
        )
    return out


@bp.get("/monitoring")
@endpoint(
    op="monitoring",
    tag="admin",
    ok=p.MonitoringResponse,
    admin=True,
    errors=(400, 503),
    summary="Latest stability and decay figures and open breaches (bearer token)",
)
def monitoring() -> Response:
    """The latest monitoring run of each kind, the breaches they raised and the recent history
    (``?limit=``, default 30)."""
    from registry import read_monitoring

    state = get_state()
    require_admin(state.settings.token())
    raw = request.args.get("limit", str(DEFAULT_HISTORY))
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_HISTORY:
        raise ApiError(400, "bad_limit", f"limit must be a whole number from 1 to {MAX_HISTORY}")
    name = state.settings.model_name
    with registry_errors():
        reg = state.registry()
        latest = {
            kind: next(iter(read_monitoring(reg, name, kind, limit=1)), None)
            for kind in ("stability", "decay")
        }
        history = read_monitoring(reg, name, None, limit=int(raw))
    stability = None if latest["stability"] is None else _record(latest["stability"])
    decay = None if latest["decay"] is None else _record(latest["decay"])
    served = state.holder.current
    return reply(
        p.MonitoringResponse(
            model_name=name,
            served_version=served.version if served else None,
            stability=stability,
            decay=decay,
            open_breaches=_open(stability) + _open(decay),
            history=[_record(r) for r in history],
        )
    )
