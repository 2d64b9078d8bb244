"""One JSON error shape for every failure: ``{"error": {"code", "message", "details"}}``.

Messages name fields and limits, never the caller's values: a bank's logs and clients must not
receive customer data back in an error (unlike MLflow serving, mlflow#16537).
"""

from __future__ import annotations

import logging
import traceback
from typing import Any

from flask import Flask, Response, g, jsonify
from werkzeug.exceptions import HTTPException

log = logging.getLogger("api.errors")

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


def error_response(
    status: int,
    code: str,
    message: str,
    details: list[dict[str, Any]] | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    """The JSON error response (the request id travels in the ``X-Request-ID`` header)."""
    resp = jsonify({"error": {"code": code, "message": message, "details": details or []}})
    resp.status_code = status
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
