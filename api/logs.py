"""Structured logs: one JSON object per line.

Every line has ``ts`` (UTC, ISO-8601), ``level``, ``logger`` and ``message``; the access line
of each request (logger ``api.access``) adds ``request_id`` (the server's own id), ``route``
(the URL rule's template, never the raw path or query string), ``method``, ``status`` and
``duration_ms``. Messages are written by this code and never quote customer values, request
bodies or tokens; an exception adds its type and stack (``exc_type``, ``stack``), not its text.

``gunicorn.conf.py`` installs :data:`LOGCONFIG` (gunicorn's own lines included); elsewhere
:func:`install` puts the formatter on the app's loggers.
"""

from __future__ import annotations

import json
import logging
import sys
import traceback
from datetime import UTC, datetime
from typing import Any

#: Extra fields a record may carry into its JSON line (``log.info(..., extra={...})``).
FIELDS = ("request_id", "route", "method", "status", "duration_ms", "pid")
APP_LOGGERS = ("api", "registry", "credit")


class JsonFormatter(logging.Formatter):
    """A log record as one JSON object (no newline inside: stacks are escaped)."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key in FIELDS:
            value = record.__dict__.get(key)
            if value is not None:
                out[key] = value
        if record.exc_info and record.exc_info[0] is not None:
            out["exc_type"] = record.exc_info[0].__name__
            out["stack"] = "".join(traceback.format_tb(record.exc_info[2]))
        return json.dumps(out, default=str, ensure_ascii=False)


def _config(level: str) -> dict[str, Any]:
    handler = {"class": "logging.StreamHandler", "formatter": "json", "stream": "ext://sys.stderr"}
    app = {"handlers": ["json"], "level": level.upper(), "propagate": False}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": "api.logs.JsonFormatter"}},
        "handlers": {"json": handler, "console": handler, "error_console": handler},
        "root": {"level": level.upper(), "handlers": ["json"]},
        "loggers": {
            "gunicorn.error": dict(app),
            "gunicorn.access": dict(app),
            **{name: dict(app) for name in APP_LOGGERS},
        },
    }


def logconfig(level: str = "info") -> dict[str, Any]:
    """gunicorn's ``logconfig_dict``: every logger of the server as JSON lines on stderr."""
    return _config(level)


def install(level: int = logging.INFO) -> None:
    """JSON lines on stderr for the app's loggers (development server, scripts)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    for name in APP_LOGGERS:
        logger = logging.getLogger(name)
        logger.handlers = [handler]
        logger.setLevel(level)
        logger.propagate = False
