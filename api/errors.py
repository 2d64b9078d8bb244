"""One JSON error shape for every failure: ``{"error": {"code", "message", "details"}}``.

Messages name fields and limits, never the caller's values: a bank's logs and clients must not
receive customer data back in an error (unlike MLflow serving, mlflow#16537).
"""

from __future__ import annotations

import logging
import traceback
from typing import Any

from flask import Flask, Response, g
from werkzeug.exceptions import HTTPException

log = logging.getLogger("api.errors")
MAX_DETAILS = 200  # field errors listed in one error body; the rest are counted
MAX_MESSAGE = 500
TRUNCATED = "details_truncated"

# Default machine-readable code of each HTTP status the API can answer with.
STATUS_CODES: dict[int, str] = {
    400: "malformed_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "validation_error",
    500: "internal_error",
    503: "service_unavailable",
}


class ApiError(Exception):
    """An error the API answers with on purpose (status, code, message, field details)."""

    def __init__(
        self,
        status: int,
        code: str | None = None,
        message: str = "",
        details: list[dict[str, Any]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code or STATUS_CODES.get(status, "error")
        self.message = message
        self.details = details or []
        self.headers = headers or {}


def field_error(field: str | None, type_: str, message: str) -> dict[str, Any]:
    """One entry of ``details``: which field failed, the kind of failure and why."""
    return {"field": field, "type": type_, "message": message}


def capped(details: list[dict[str, Any]], total: int | None = None) -> list[dict[str, Any]]:
    """At most :data:`MAX_DETAILS` details; a last entry says how many were left out.

    ``total`` is the full count when ``details`` was already cut by the caller.
    """
    if len(details) == MAX_DETAILS + 1 and details[-1].get("type") == TRUNCATED:
        return details  # already capped by the caller
    total = len(details) if total is None else total
    if total <= MAX_DETAILS:
        return details
    left = total - MAX_DETAILS
    note = field_error(None, TRUNCATED, f"{left} more error(s) left out of {total}")
    return [*details[:MAX_DETAILS], note]


def error_response(
    status: int,
    code: str,
    message: str,
    details: list[dict[str, Any]] | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    """The JSON error response (the request id travels in the ``X-Request-ID`` header).

    Bounded whatever the request: at most :data:`MAX_DETAILS` details (plus one counting
    the rest) and messages of at most :data:`MAX_MESSAGE` characters.
    """
    from api.payloads import ErrorBody, ErrorDetail, ErrorResponse

    short = message if len(message) <= MAX_MESSAGE else message[: MAX_MESSAGE - 3] + "..."
    body = ErrorResponse(
        error=ErrorBody(
            code=code,
            message=short,
            details=[ErrorDetail.model_validate(d) for d in capped(list(details or []))],
        )
    )
    resp = Response(body.model_dump_json(), status=status, mimetype="application/json")
    for key, value in (headers or {}).items():
        resp.headers[key] = value
    return resp


def _http_message(exc: HTTPException) -> str:
    messages = {
        400: "the request could not be understood",
        404: "no such endpoint",
        405: "method not allowed on this endpoint",
        413: "the request body is too large",
        415: "the request body must be JSON (Content-Type: application/json)",
    }
    return messages.get(exc.code or 500, exc.name)


def register_error_handlers(app: Flask) -> None:
    """JSON handlers for :class:`ApiError`, every ``HTTPException`` and anything unexpected."""

    @app.errorhandler(ApiError)
    def _api_error(exc: ApiError) -> Response:
        if exc.status >= 500 and exc.code != "no_champion":
            log.warning("request %s: %s %s", g.get("request_id"), exc.status, exc.code)
        return error_response(exc.status, exc.code, exc.message, exc.details, exc.headers)

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException) -> Response:
        status = exc.code or 500
        # Keep protocol headers (Allow on 405, WWW-Authenticate...), not the HTML content type.
        headers = {k: v for k, v in exc.get_headers() if k.lower() != "content-type"}
        return error_response(
            status, STATUS_CODES.get(status, "http_error"), _http_message(exc), None, headers
        )

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception) -> Response:
        # The server log gets the request id, the type and the stack, not the exception's text
        # (which may quote request data).
        stack = "".join(traceback.format_tb(exc.__traceback__))
        log.error("request %s: unexpected %s\n%s", g.get("request_id"), type(exc).__name__, stack)
        return error_response(
            500,
            "internal_error",
            f"internal error; quote request id {g.get('request_id', '-')} to the operator",
        )
