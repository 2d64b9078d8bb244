"""gunicorn settings for the scoring API: ``gunicorn "api:create_app()"`` reads this file.

Overrides come from the environment: ``BATI_API_BIND`` (default 127.0.0.1:8000),
``WEB_CONCURRENCY`` (workers, default 2 x cores), ``BATI_API_THREADS`` (threads per worker,
default 4), ``BATI_API_TIMEOUT`` (seconds, default 120), ``BATI_API_ACCESSLOG`` (a path or "-";
off by default). Each worker loads the champion itself: ``preload_app`` stays off, so no
thread or database connection is created in the master before the fork.

Logs: every line (gunicorn's and the app's) is one JSON object on stderr (:mod:`api.logs`).
Metrics: ``PROMETHEUS_MULTIPROC_DIR`` (a fresh folder under var/metrics when unset, removed at
exit; its ``*.db`` files are cleared at start when set) lets ``GET /metrics`` sum every worker.

The API's settings (``BATI_*``, :mod:`api.config`) are validated here, in the master, so a bad
value stops the server at start-up with one line naming the variable.

Slow clients: the worker (:mod:`api.worker`) is gunicorn's gthread worker with each request's
headers and body read in its selector loop under one deadline (``BATI_REQUEST_TIMEOUT_SECONDS``),
so a client that trickles bytes holds no thread and is answered 400 when the deadline passes.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

from api.config import load_settings
from schemas.defaults import var_path

try:
    load_settings()
except ValueError as _exc:
    sys.exit(f"bati api: refused setting {_exc}")

# Before any worker imports prometheus_client: its multiprocess mode reads this at import.
_METRICS_ENV = "PROMETHEUS_MULTIPROC_DIR"
_OWN_METRICS_DIR = not os.environ.get(_METRICS_ENV)
if _OWN_METRICS_DIR:
    (var_path() / "metrics").mkdir(parents=True, exist_ok=True)
    os.environ[_METRICS_ENV] = tempfile.mkdtemp(prefix="api-", dir=var_path() / "metrics")

bind = os.environ.get("BATI_API_BIND", "127.0.0.1:8000")
workers = int(os.environ.get("WEB_CONCURRENCY", str(2 * (os.cpu_count() or 1))))
worker_class = "api.worker.BufferingThreadWorker"  # gthread + whole-request deadline
threads = int(os.environ.get("BATI_API_THREADS", "4"))
keepalive = 5
# Generous: a worker loads the champion and scores the whole snapshot before it serves (a few
# seconds per worker; gunicorn counts boot time against this timeout).
timeout = int(os.environ.get("BATI_API_TIMEOUT", "120"))
graceful_timeout = 30
preload_app = False
# Headers and request line limits (gunicorn's defaults are generous; the body limit is the app's).
limit_request_line = 4096
limit_request_fields = 50
accesslog = os.environ.get("BATI_API_ACCESSLOG") or None
# Request id and latency in the access log; never bodies (they hold customer data).
# The path without its query string: a signed report link's signature is not logged.
access_log_format = '%(h)s "%(m)s %(U)s" %(s)s %(b)s %(M)sms rid=%({x-request-id}o)s'
# gunicorn >= 24 opens a control socket under $HOME by default: shared by every instance on
# the machine, so two servers (tests, bench) would collide; the API needs none.
control_socket_disable = True
loglevel = os.environ.get("BATI_API_LOGLEVEL", "info")
# JSON lines for gunicorn's own loggers (error and access logs, wherever they go).
logger_class = "api.logs.GunicornJsonLogger"


def post_fork(server, worker):  # noqa: ANN001 - gunicorn hook signature
    """Send the app's loggers ("api", "registry", "credit") to gunicorn's error log (JSON)."""
    from api.logs import attach_app_loggers

    attach_app_loggers()


def on_starting(server):  # noqa: ANN001 - gunicorn hook signature
    """Start from empty metrics: values of a previous server in a given folder are cleared."""
    folder = Path(os.environ[_METRICS_ENV])
    folder.mkdir(parents=True, exist_ok=True)
    for stale in folder.glob("*.db"):
        stale.unlink(missing_ok=True)


def child_exit(server, worker):  # noqa: ANN001 - gunicorn hook signature
    """A worker is gone: its live gauges (queue depth, served version) stop counting."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


def on_exit(server):  # noqa: ANN001 - gunicorn hook signature
    """Remove the metrics folder this server created."""
    if _OWN_METRICS_DIR:
        import shutil

        shutil.rmtree(os.environ.get(_METRICS_ENV, ""), ignore_errors=True)


def worker_exit(server, worker):  # noqa: ANN001 - gunicorn hook signature
    """Flush the prediction log and stop the reload thread when a worker stops."""
    app = getattr(worker, "wsgi", None)
    state = getattr(app, "extensions", {}).get("bati") if app is not None else None
    if state is not None:
        state.close()


def post_worker_init(worker):  # noqa: ANN001 - gunicorn hook signature
    """Start the worker's model-reload and prediction-log threads (after the fork, not before)."""
    state = getattr(getattr(worker, "wsgi", None), "extensions", {}).get("bati")
    if state is not None:
        state.ensure_started()
