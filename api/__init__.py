"""Bati Bank real-time scoring API (Flask), serving the model registry's champion.

Production: ``gunicorn "api:create_app()"`` (settings in ``gunicorn.conf.py`` at the project
root). Development: ``flask --app api run``. Configuration comes from the environment
(``BATI_DB_URL``, ``BATI_MODEL_NAME``, ``BATI_ADMIN_TOKEN``, ``BATI_RELOAD_SECONDS``,
``BATI_MAX_BATCH``, ``BATI_MAX_BODY_BYTES``, ``BATI_MAX_TRANSACTIONS``,
``BATI_REQUEST_TIMEOUT_SECONDS``, ``BATI_RUNS_DIR``, ``BATI_LOG_QUEUE_SIZE``,
``BATI_LOG_FLUSH_SECONDS``; see :mod:`api.config`, pydantic-settings), overridden by the dict
given to :func:`create_app`. ``bati-api`` (:mod:`api.serve`) runs gunicorn with the project's
``gunicorn.conf.py``: JSON log lines (:mod:`api.logs`), Prometheus metrics summed over the
workers at ``/metrics`` (:mod:`api.metrics`).

Importing the package is cheap (``gunicorn.conf.py`` validates the settings with it in the
master); the app's modules are imported by :func:`create_app`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from api.config import Settings, load_settings

if TYPE_CHECKING:
    from flask import Flask

    from api.errors import ApiError
    from api.state import BatiState, get_state

__all__ = ["ApiError", "BatiState", "Settings", "create_app", "get_state"]


def __getattr__(name: str) -> Any:
    """Lazy exports (``api.ApiError``, ``api.BatiState``, ``api.get_state``)."""
    if name == "ApiError":
        from api.errors import ApiError

        return ApiError
    if name in ("BatiState", "get_state"):
        from api import state

        return getattr(state, name)
    raise AttributeError(name)


def create_app(config: Mapping[str, Any] | None = None) -> Flask:
    """Build the app.

    ``config`` keys are :class:`api.config.Settings` field names (``db_url``, ``model_name``,
    ``admin_token``, ``reload_seconds``, ``max_batch``, ``max_body_bytes``,
    ``max_transactions``, ``start_background``, ``load_on_start`` ...) and win over the
    environment; ``registry`` may pass a ready :class:`registry.Registry` instance.
    The champion is loaded here when possible (a failure only leaves ``/ready`` at 503);
    the reload and prediction-log threads start with the first request of each process.
    ``app.extensions["bati"].close()`` (also run at interpreter exit and by gunicorn's
    ``worker_exit``) stops them and closes the app's one registry handle.
    """
    from flask import Flask, Response, g, request

    from api import metrics
    from api.blueprints import health, models, monitoring, reports, score
    from api.errors import register_error_handlers
    from api.http import CLIENT_REQUEST_ID_HEADER, REQUEST_ID_HEADER, set_request_id
    from api.openapi import OPENAPI_KEY, build_openapi
    from api.openapi import bp as docs_bp
    from api.state import EXTENSION, BatiState

    options = dict(config or {})
    registry = options.pop("registry", None)
    settings = load_settings(options)

    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes
    app.json.sort_keys = False  # type: ignore[attr-defined]
    app.json.compact = True  # type: ignore[attr-defined]
    state = BatiState(settings, registry)
    app.extensions[EXTENSION] = state

    register_error_handlers(app)
    for bp in (health.bp, score.bp, models.bp, monitoring.bp, reports.bp, docs_bp):
        app.register_blueprint(bp)
    app.extensions[OPENAPI_KEY] = build_openapi(app, settings)

    @app.before_request
    def _start_request() -> None:
        g.t0 = time.perf_counter()
        g.request_timeout = settings.request_timeout_seconds
        g.deadline = g.t0 + settings.request_timeout_seconds
        set_request_id()
        state.ensure_started()

    access = logging.getLogger("api.access")

    @app.after_request
    def _finish_request(response: Response) -> Response:
        # Metrics and the JSON access line: the route template, never the path or query.
        rule = request.url_rule
        route = rule.rule if rule is not None else "unmatched"
        seconds = time.perf_counter() - g.get("t0", time.perf_counter())
        metrics.observe_request(route, request.method, response.status_code, seconds)
        if access.isEnabledFor(logging.INFO):
            access.info(
                "%s %s %d",
                request.method if request.method in metrics.METHODS else "other",
                route,
                response.status_code,
                extra={
                    "request_id": g.get("request_id"),
                    "route": route,
                    "method": request.method if request.method in metrics.METHODS else "other",
                    "status": response.status_code,
                    "duration_ms": round(seconds * 1000.0, 3),
                },
            )
        rid = g.get("request_id")
        if rid:
            response.headers[REQUEST_ID_HEADER] = rid
        client_id = g.get("client_request_id")
        if client_id:
            response.headers[CLIENT_REQUEST_ID_HEADER] = client_id
        response.headers.setdefault("Cache-Control", "no-store")
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        return response

    if settings.load_on_start:
        state.holder.refresh()
    return app
