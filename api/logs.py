"""Structured logs: one JSON object per line.

Every line has ``ts`` (UTC, ISO-8601), ``level``, ``logger`` and ``message``; the access line
of each request (logger ``api.access``) adds ``request_id`` (the server's own id), ``route``
(the URL rule's template, never the raw path or query string), ``method``, ``status`` and
``duration_ms``. Messages are written by this code and never quote customer values, request
bodies or tokens; an exception adds its type and stack (``exc_type``, ``stack``), not its text.

``gunicorn.conf.py`` sets ``logger_class`` to :class:`GunicornJsonLogger` (gunicorn's own
lines, access log included, wherever they are configured to go) and sends the app's loggers to
the same handlers (:func:`attach_app_loggers`); elsewhere :func:`install` does it on stderr.
"""

from __future__ import annotations

import json
import logging
import sys
import traceback
from datetime import UTC, datetime
from typing import Any

from gunicorn import glogging

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


class GunicornJsonLogger(glogging.Logger):
    """gunicorn's logger with every handler it sets up (error log, access log, files or
    stderr, as configured) writing :class:`JsonFormatter` lines (``logger_class`` setting)."""

    def setup(self, cfg: Any) -> None:
        super().setup(cfg)
        for log in (self.error_log, self.access_log):
            for handler in log.handlers:
                handler.setFormatter(JsonFormatter())


def attach_app_loggers() -> None:
    """Send the app's loggers to gunicorn's error log handlers (JSON lines), in a worker."""
    error_log = logging.getLogger("gunicorn.error")
    for name in APP_LOGGERS:
        logger = logging.getLogger(name)
        logger.handlers = list(error_log.handlers)
        logger.setLevel(error_log.level)
        logger.propagate = False


def install(level: int = logging.INFO) -> None:
    """JSON lines on stderr for the app's loggers (development server, scripts)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    for name in APP_LOGGERS:
        logger = logging.getLogger(name)
        logger.handlers = [handler]
        logger.setLevel(level)
        logger.propagate = False
