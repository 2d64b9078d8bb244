"""One declaration per endpoint: the view function carries its contract.

``@endpoint(...)`` records the request model, the 200 response model, the error statuses, the
auth and the summary on the view function; handlers return instances of the response model
(:func:`reply` serialises them); :func:`api.openapi.build_openapi` walks ``app.url_map`` and
reads these declarations, so a route without one cannot be published (it is an error).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any, TypeVar

from flask import Response
from pydantic import BaseModel

F = TypeVar("F", bound=Callable[..., Any])
SPEC_ATTR = "__api_endpoint__"
JSON_ERRORS_IN = (400, 413, 415, 422)  # what any endpoint taking a JSON body may answer
ADMIN_ERRORS = (401, 403)  # what any admin endpoint may answer (no token, wrong token)


@dataclass(frozen=True)
class Endpoint:
    """The contract of one route (what the OpenAPI document publishes for it)."""

    op: str
    tag: str
    summary: str
    ok: type[BaseModel] | None
    body: type[BaseModel] | None = None
    errors: tuple[int, ...] = ()
    admin: bool = False
    media: str = "application/json"
    ok_schema: dict[str, Any] | None = None  # when ``ok`` is not a model (docs, openapi.json)


def endpoint(
    *,
    op: str,
    tag: str,
    summary: str,
    ok: type[BaseModel] | None,
    body: type[BaseModel] | None = None,
    errors: tuple[int, ...] = (),
    admin: bool = False,
    media: str = "application/json",
    ok_schema: dict[str, Any] | None = None,
) -> Callable[[F], F]:
    """Declare a view's contract (apply it under the blueprint's route decorator).

    ``errors`` are the statuses of the view itself: a ``body`` adds :data:`JSON_ERRORS_IN`,
    ``admin`` adds :data:`ADMIN_ERRORS`."""
    implied = (*(JSON_ERRORS_IN if body else ()), *(ADMIN_ERRORS if admin else ()))
    spec = Endpoint(op, tag, summary, ok, body, (*implied, *errors), admin, media, ok_schema)

    def mark(view: F) -> F:
        setattr(view, SPEC_ATTR, spec)
        return view

    return mark


def spec_of(view: Callable[..., Any]) -> Endpoint | None:
    return getattr(view, SPEC_ATTR, None)


def endpoints(**shared: Any) -> Callable[..., Callable[[F], F]]:
    """:func:`endpoint` with the keyword arguments a group of routes shares (its tag, ...)."""
    return partial(endpoint, **shared)


def reply(model: BaseModel, status: int = 200) -> Response:
    """The JSON response of a response model (field order kept, NaN/inf as null)."""
    return Response(model.model_dump_json(), status=status, mimetype="application/json")
