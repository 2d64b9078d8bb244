"""Request plumbing: request ids, JSON bodies, validation errors and the admin bearer token."""

from __future__ import annotations

import contextlib
import hmac
import json
import re
import time
import uuid
from collections.abc import Sequence
from typing import Any, TypeVar

from flask import g, request
from pydantic import BaseModel, ValidationError
from werkzeug.exceptions import ClientDisconnected, HTTPException

from api.errors import MAX_DETAILS, ApiError, capped, field_error

M = TypeVar("M", bound=BaseModel)
REQUEST_ID_HEADER = "X-Request-ID"
CLIENT_REQUEST_ID_HEADER = "X-Client-Request-ID"
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")
_MAX_KEY = 64
_READ_CHUNK = 64 * 1024
UNKNOWN_FIELD = "unknown field (this object accepts only the fields of its schema)"


def client_request_id() -> str | None:
    """The caller's ``X-Request-ID`` when it is a safe token (<= 64 chars), else ``None``.

    It is kept beside the server's own id (prediction log, ``X-Client-Request-ID``), never
    used as the audit key: two callers could send the same one.
    """
    given = request.headers.get(REQUEST_ID_HEADER, "")
    return given if _REQUEST_ID.match(given) else None


def _malformed_body(exc: BaseException) -> bool:
    """A body the HTTP layer cannot decode (bad chunk size, missing terminator, cut short)."""
    module = type(exc).__module__ or ""
    return module.startswith("gunicorn.http") or module.startswith("werkzeug")


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def read_json() -> Any:
    """The JSON body: 415 unless JSON, 413 over the size limit, 400 if it does not parse."""
    if not request.is_json:
        raise ApiError(
            415,
            "unsupported_media_type",
            "the request body must be JSON (Content-Type: application/json)",
        )
    data = _read_body()  # werkzeug raises 413 past MAX_CONTENT_LENGTH
    if not data.strip():
        raise ApiError(400, "malformed_json", "the request body is empty; send a JSON object")
    try:
        return json.loads(data, parse_constant=_reject_constant)
    except RecursionError:
        raise ApiError(400, "malformed_json", "the JSON body is nested too deeply") from None
    except ValueError as exc:  # includes UnicodeDecodeError and JSONDecodeError
        where = f" (line {exc.lineno}, column {exc.colno})" if hasattr(exc, "lineno") else ""
        raise ApiError(400, "malformed_json", f"the body is not valid JSON{where}") from None


def _read_body() -> bytes:
    """The raw body, read before the request's deadline (``g.deadline``).

    The project's gunicorn worker (:mod:`api.worker`) hands over only requests whose body is
    already buffered; under other gunicorn workers the client socket gets a timeout equal to
    the time left before every read, so a client that stalls or trickles its body is answered
    400 ``body_timeout``; elsewhere (test client, development server) a plain read. Broken
    framing (a chunk size that is not hex, a body cut short) is 400 ``malformed_body``.
    """
    try:
        return _read_body_until_deadline()
    except ApiError:
        raise
    except Exception as exc:
        if isinstance(exc, HTTPException) or not _malformed_body(exc):
            raise
        raise ApiError(
            400, "malformed_body", "the request body is not valid HTTP framing"
        ) from None


def _read_body_until_deadline() -> bytes:
    sock = request.environ.get("gunicorn.socket")
    deadline = g.get("deadline")
    if sock is None or deadline is None:
        return request.get_data(cache=False)
    stream = request.stream
    chunks: list[bytes] = []
    try:
        while True:
            left = deadline - time.perf_counter()
            if left <= 0:
                raise TimeoutError
            sock.settimeout(left)
            chunk = stream.read(_READ_CHUNK)
            if not chunk:
                break
            chunks.append(chunk)
    except (OSError, ClientDisconnected) as exc:  # werkzeug wraps the socket's TimeoutError
        timed_out = isinstance(exc, TimeoutError) or isinstance(exc.__context__, TimeoutError)
        if not timed_out:
            if isinstance(exc, ClientDisconnected) or _malformed_body(exc):
                raise ApiError(400, "malformed_body", "the request body ended early") from None
            raise
        raise ApiError(
            400,
            "body_timeout",
            f"the request body did not arrive within {g.get('request_timeout', 0):g} s",
        ) from None
    finally:
        # Writing the response gets the full budget again (a bound on slow readers).
        with contextlib.suppress(OSError):  # a socket the peer already reset
            sock.settimeout(g.get("request_timeout"))
    return b"".join(chunks)


def field_path(loc: Sequence[Any], prefix: str = "") -> str | None:
    """``("customers", 0, "transactions", 2, "Amount")`` -> ``customers[0].transactions[2].Amount``."""
    out = prefix
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            name = str(part)
            name = name if len(name) <= _MAX_KEY else name[:_MAX_KEY] + "..."
            out += f".{name}" if out else name
    return out or None


def validation_details(exc: ValidationError) -> list[dict[str, Any]]:
    """Pydantic errors as field details, without the offending input values or keys.

    An unknown key is the caller's text: its detail names the object that holds it, never the
    key itself. At most :data:`api.errors.MAX_DETAILS` details, plus one counting the rest.
    """
    errors = exc.errors(include_input=False, include_url=False, include_context=True)
    details = []
    for err in errors[:MAX_DETAILS]:
        loc = list(err["loc"])
        message = err["msg"]
        if err["type"] == "extra_forbidden":
            loc, message = loc[:-1], UNKNOWN_FIELD
        named = (err.get("ctx") or {}).get("field")  # model-level rules name their field
        if isinstance(named, str):
            loc.append(named)
        details.append(field_error(field_path(loc), err["type"], message))
    return capped(details, total=len(errors))


def validate(model: type[M], data: Any, context: dict[str, Any] | None = None) -> M:
    """``model`` from decoded JSON, or a 422 naming every bad field."""
    try:
        return model.model_validate(data, context=context)
    except ValidationError as exc:
        details = validation_details(exc)
        fields = sorted({d["field"] for d in details if d["field"]})
        named = ", ".join(fields[:5]) + (" ..." if len(fields) > 5 else "")
        message = f"{exc.error_count()} invalid field(s)" + (f": {named}" if named else "")
        raise ApiError(422, "validation_error", message, details) from None


def require_admin(token: str | None) -> None:
    """401 without a ``Bearer`` token; 403 when admin is disabled or the token is wrong.

    The comparison takes constant time (``hmac.compare_digest``); the token is never logged.
    """
    header = request.headers.get("Authorization", "")
    scheme, _, given = header.partition(" ")
    given = given.strip()
    if scheme.lower() != "bearer" or not given:
        raise ApiError(
            401,
            "unauthorized",
            "this endpoint needs an 'Authorization: Bearer <token>' header",
            headers={"WWW-Authenticate": 'Bearer realm="bati-admin"'},
        )
    if token is None:
        raise ApiError(403, "admin_disabled", "admin endpoints are disabled (no BATI_ADMIN_TOKEN)")
    if not hmac.compare_digest(given.encode("utf-8", "replace"), token.encode("utf-8")):
        raise ApiError(403, "forbidden", "the bearer token is not valid for admin endpoints")


def set_request_id() -> str:
    """The server's id of this request (the audit key) and the caller's own id, if any."""
    rid = uuid.uuid4().hex
    g.request_id = rid
    g.client_request_id = client_request_id()
    return rid
