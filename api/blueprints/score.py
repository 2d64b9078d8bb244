"""POST /v1/score and /v1/score/batch."""

from __future__ import annotations

import time
from typing import Any

from flask import Blueprint, Response, g
from pydantic import BaseModel

from api import metrics
from api import payloads as p
from api.contract import endpoints, reply
from api.errors import ApiError
from api.holder import ServedModel
from api.http import read_json, validate
from api.scoring import score_requests
from api.state import BatiState, get_state

bp = Blueprint("score", __name__, url_prefix="/v1")
scoring_endpoint = endpoints(tag="scoring")  # every route of this blueprint

_ITEM_STATUS = {"unknown_customer": 404}


def require_served(state: BatiState) -> ServedModel:
    """The model to use for this whole request (read once), or 503 when none is loaded."""
    served = state.holder.current
    if served is None:
        raise ApiError(
            503,
            "no_champion",
            f"no champion of {state.settings.model_name!r} is loaded yet; retry later",
            headers={"Retry-After": str(max(1, int(state.settings.reload_seconds)))},
        )
    if served.input_problem:
        raise ApiError(409, "input_schema_mismatch", served.input_problem)
    return served


def _scoring_request(model: type[BaseModel]) -> tuple[BatiState, dict[str, Any], ServedModel]:
    """The app state, the request body validated against ``model`` (and the configured
    limits), and the model that serves this whole request."""
    state = get_state()
    body = read_json()
    limits = state.settings
    context = {"max_batch": limits.max_batch, "max_transactions": limits.max_transactions}
    validate(model, body, context)
    return state, body, require_served(state)


def _log(state: BatiState, results: list[p.ScoreResult]) -> None:
    latency = round((time.perf_counter() - g.t0) * 1000.0, 3)
    metrics.count_scores((r.band, "approved" if r.approved else "declined") for r in results)
    client_id = g.get("client_request_id")
    state.predlog.submit(
        [
            {
                "request_id": g.request_id,
                "client_request_id": client_id,
                "customer_id": r.customer_id,
                "model_name": r.model_name,
                "model_version": r.model_version,
                "probability": r.probability_of_default,
                "score": int(round(r.score)),
                "latency_ms": latency,
                "band": r.band,
                "decision": "approved" if r.approved else "declined",
                "amount": r.recommended_amount,
                "duration_days": r.recommended_duration_days,
                "reason_codes": [c.model_dump(exclude={"text"}) for c in r.reasons],
            }
            for r in results
        ]
    )


@bp.post("/score")
@scoring_endpoint(
    op="score",
    body=p.ScoreRequest,
    ok=p.ScoreResponse,
    errors=(404, 409, 503),
    summary="Score one customer (by id from the latest snapshot, or from raw transactions)",
)
def score() -> Response:
    """Score one customer, by id (snapshot) or from raw transactions."""
    state, body, served = _scoring_request(p.ScoreRequest)
    scored = score_requests(served, [body], batch=False, deadline=g.get("deadline"))
    if 0 in scored.errors:
        code, message = scored.errors[0]
        raise ApiError(_ITEM_STATUS.get(code, 422), code, message)
    result = scored.results[0]
    _log(state, [result])
    return reply(p.ScoreResponse.model_construct(**dict(result), request_id=g.request_id))


@bp.post("/score/batch")
@scoring_endpoint(
    op="scoreBatch",
    body=p.BatchRequest,
    ok=p.BatchResponse,
    errors=(409, 503),
    summary="Score many customers in one call; unknown ones are listed in errors",
)
def score_batch() -> Response:
    """Score up to ``max_batch`` customers; unknown ones are listed in ``errors``."""
    state, body, served = _scoring_request(p.BatchRequest)
    items = body["customers"]
    scored = score_requests(served, items, batch=True, deadline=g.get("deadline"))
    results = [scored.results[i] for i in range(len(items)) if i in scored.results]
    errors = [
        p.BatchItemError(index=i, customer_id=items[i]["customer_id"], code=c, message=m)
        for i, (c, m) in sorted(scored.errors.items())
    ]
    _log(state, results)
    return reply(
        p.BatchResponse(
            request_id=g.request_id,
            model_name=served.name,
            model_version=served.version,
            count=len(results),
            results=results,
            errors=errors,
        )
    )
