"""Prometheus metrics of the API, aggregated across gunicorn workers.

Under gunicorn, ``gunicorn.conf.py`` sets ``PROMETHEUS_MULTIPROC_DIR`` (a fresh folder under
var/ when unset) before any worker imports ``prometheus_client``, so every worker writes its
values to memory-mapped files there and ``GET /metrics`` (answered by any one worker) reads
them all with ``MultiProcessCollector``; a worker that exits is marked dead (``child_exit``), so
its live gauges stop counting while its counters stay summed. Without the variable (tests, the
development server) the process's default registry is served.

Labels are bounded: the route is the URL rule's template (``/v1/models/<int:version>/promote``,
``unmatched`` for unknown paths), never the raw path; no customer value is ever a label.
"""

from __future__ import annotations

import os
from collections import Counter as Tally
from collections.abc import Iterable

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
CONTENT_TYPE = CONTENT_TYPE_LATEST
METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"})
# Seconds; by-id scoring is well under 5 ms, transaction scoring up to the request deadline.
BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

HTTP_REQUESTS = Counter(
    "bati_http_requests",
    "HTTP requests answered by the app, by route template, method and status",
    ["route", "method", "status"],
)
HTTP_DURATION = Histogram(
    "bati_http_request_duration_seconds",
    "Time from the app receiving a request to its response, by route, method and status",
    ["route", "method", "status"],
    buckets=BUCKETS,
)
SCORES = Counter(
    "bati_scores",
    "Customers scored (by id or transactions), by band and decision",
    ["band", "decision"],
)
SERVED_VERSION = Gauge(
    "bati_served_model_version",
    "Version of the champion served (the highest among live workers)",
    ["model_name"],
    multiprocess_mode="livemax",
)
SERVED_MIN_VERSION = Gauge(
    "bati_served_model_version_min",
    "Lowest version served among live workers (differs from the max during a reload)",
    ["model_name"],
    multiprocess_mode="livemin",
)
RELOADS = Counter("bati_model_reloads", "Champion or snapshot (re)loads completed")
RELOAD_FAILURES = Counter("bati_model_reload_failures", "Reload attempts that failed")
PREDLOG_QUEUE = Gauge(
    "bati_prediction_log_queue_depth",
    "Prediction-log rows waiting to be written (sum over live workers)",
    multiprocess_mode="livesum",
)
PREDLOG_DROPPED = Counter(
    "bati_prediction_log_dropped", "Prediction-log rows dropped because the queue was full"
)
PREDLOG_FAILED = Counter(
    "bati_prediction_log_failed", "Prediction-log rows the database refused (after retries)"
)
PREDLOG_WRITTEN = Counter("bati_prediction_log_written", "Prediction-log rows written")


def observe_request(route: str, method: str, status: int, seconds: float) -> None:
    """Count one answered request."""
    labels = (route, method if method in METHODS else "other", str(status))
    HTTP_REQUESTS.labels(*labels).inc()
    HTTP_DURATION.labels(*labels).observe(seconds)


def count_scores(pairs: Iterable[tuple[str, str]]) -> None:
    """Count scored customers by (band, decision), one increment per distinct pair."""
    for (band, decision), n in Tally(pairs).items():
        SCORES.labels(band, decision).inc(n)


def served(model_name: str, version: int) -> None:
    """Record the version this worker now serves."""
    SERVED_VERSION.labels(model_name).set(version)
    SERVED_MIN_VERSION.labels(model_name).set(version)


def exposition() -> bytes:
    """The text exposition: every worker's values in multiprocess mode, else this process's."""
    directory = os.environ.get(MULTIPROC_ENV)
    if not directory:
        return generate_latest(REGISTRY)
    from prometheus_client import multiprocess

    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path=directory)
    return generate_latest(registry)
