"""Prediction log: every score is written to the database off the request path.

Requests append rows to a bounded in-memory buffer (constant time, never blocks on the
database); one daemon thread per process writes them in batches through
:func:`registry.log_predictions`. When the buffer is full, rows are dropped and counted rather
than slowing the request. While the database is unavailable (connection refused or lost: a
restart, a failover) batches wait in the buffer and are retried with capped back-off for as long
as it takes; a batch the database refuses (a data error) is retried a few times, then counted as
failed. The counters are published in ``/health``. ``close()`` (also run at interpreter exit and
by gunicorn's ``worker_exit`` hook) flushes what is left.
"""

from __future__ import annotations

import atexit
import logging
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable
from typing import Any

from api import metrics

log = logging.getLogger("api.predlog")

LOG_COLUMNS = (
    "request_id",  # the server's id (the audit key)
    "client_request_id",  # the caller's X-Request-ID, kept apart
    "customer_id",
    "model_name",
    "model_version",
    "probability",
    "score",
    "latency_ms",
    "band",
    "decision",  # approved / declined
    "amount",
    "duration_days",
    "reason_codes",  # feature, value, reference, impact of the three reasons
)
MAX_ATTEMPTS = 3


def database_unavailable(exc: BaseException) -> bool:
    """True for errors that mean "the database cannot be reached right now" (retry later), as
    opposed to the database refusing the rows (retrying the same batch cannot help)."""
    try:
        from sqlalchemy import exc as sa_exc
    except ImportError:  # pragma: no cover - SQLAlchemy is a dependency
        return False
    if isinstance(exc, sa_exc.DBAPIError) and exc.connection_invalidated:
        return True
    return isinstance(
        exc,
        sa_exc.OperationalError
        | sa_exc.InterfaceError
        | sa_exc.DisconnectionError
        | sa_exc.TimeoutError,
    )


class PredictionLogWriter:
    """Bounded buffer + background batch writer (one per process)."""

    def __init__(
        self,
        write: Callable[[list[dict[str, Any]]], None],
        *,
        max_rows: int = 100_000,
        batch_rows: int = 1000,
        flush_seconds: float = 0.5,
    ) -> None:
        self._write = write
        self.max_rows = int(max_rows)
        self.batch_rows = int(batch_rows)
        self.flush_seconds = float(flush_seconds)
        self._buf: deque[dict[str, Any]] = deque()
        self._cond = threading.Condition()
        self._write_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._closed = False
        self.written = 0
        self.dropped = 0
        self.failed = 0
        ref = weakref.ref(self)
        atexit.register(lambda: (w := ref()) is not None and w.close())

    # -- request side -------------------------------------------------------------------
    def submit(self, rows: list[dict[str, Any]]) -> int:
        """Queue ``rows`` without blocking; returns how many were dropped for lack of room."""
        with self._cond:
            if self._closed:
                self.dropped += len(rows)
                metrics.PREDLOG_DROPPED.inc(len(rows))
                return len(rows)
            room = self.max_rows - len(self._buf)
            dropped = max(0, len(rows) - room)
            self._buf.extend(rows[: len(rows) - dropped] if dropped else rows)
            if len(self._buf) >= self.batch_rows:
                self._cond.notify()
            self.dropped += dropped
            metrics.PREDLOG_QUEUE.set(len(self._buf))
        if dropped:
            metrics.PREDLOG_DROPPED.inc(dropped)
            log.warning("prediction log full: dropped %d row(s)", dropped)
        return dropped

    def stats(self) -> dict[str, int]:
        return {
            "queued": len(self._buf),
            "written": self.written,
            "dropped": self.dropped,
            "failed": self.failed,
        }

    # -- writer side --------------------------------------------------------------------
    def start(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            return
        self._thread = threading.Thread(target=self._run, name="bati-prediction-log", daemon=True)
        self._thread.start()

    def forget_thread(self) -> None:
        """After a fork: the parent's thread and lock states do not carry over."""
        self._thread = None
        self._cond = threading.Condition()
        self._write_lock = threading.Lock()

    def _take(self) -> list[dict[str, Any]]:
        with self._cond:
            n = min(self.batch_rows, len(self._buf))
            rows = [self._buf.popleft() for _ in range(n)]
            metrics.PREDLOG_QUEUE.set(len(self._buf))
            return rows

    def _run(self) -> None:
        backoff = self.flush_seconds
        while True:
            with self._cond:
                if not self._closed and len(self._buf) < self.batch_rows:
                    self._cond.wait(self.flush_seconds)
                if self._closed:
                    return
            if not self._buf:
                continue
            if self.flush_once():
                backoff = self.flush_seconds
            else:
                time.sleep(min(backoff, 10.0))
                backoff *= 2

    def flush_once(self, attempts: int = MAX_ATTEMPTS) -> bool:
        """Write one batch; on failure put it back (up to ``attempts``) and return False."""
        with self._write_lock:
            rows = self._take()
            if not rows:
                return True
            try:
                self._write(rows)
            except Exception as exc:
                # An unreachable database does not use up the batch's attempts: it waits.
                unavailable = database_unavailable(exc)
                tries = rows[0].get("_attempts", 0) + (0 if unavailable else 1)
                if tries >= attempts or (unavailable and attempts <= 1):
                    self.failed += len(rows)
                    metrics.PREDLOG_FAILED.inc(len(rows))
                    log.error(
                        "prediction log: %d row(s) lost after %d attempts (%s)",
                        len(rows),
                        tries,
                        type(exc).__name__,
                    )
                else:
                    rows[0]["_attempts"] = tries
                    with self._cond:
                        self._buf.extendleft(reversed(rows))
                        metrics.PREDLOG_QUEUE.set(len(self._buf))
                    log.warning(
                        "prediction log: write of %d row(s) failed (%s%s); will retry",
                        len(rows),
                        type(exc).__name__,
                        ", database unavailable" if unavailable else "",
                    )
                return False
            self.written += len(rows)
            metrics.PREDLOG_WRITTEN.inc(len(rows))
            return True

    def flush(self, timeout: float = 10.0) -> None:
        """Write everything buffered now (used at shutdown and by tests)."""
        deadline = time.monotonic() + timeout
        while self._buf and time.monotonic() < deadline:
            if not self.flush_once(attempts=1):
                break

    def close(self, timeout: float = 10.0) -> None:
        """Stop the thread and flush the rest (idempotent)."""
        with self._cond:
            if self._closed:
                return
            self._closed = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout)
        self.flush(timeout)
        if self._buf:
            self.failed += len(self._buf)
            metrics.PREDLOG_FAILED.inc(len(self._buf))
            log.error("prediction log: %d row(s) not written at shutdown", len(self._buf))
            self._buf.clear()


def clean_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The columns the registry stores (drops the retry counter)."""
    return [{k: row.get(k) for k in LOG_COLUMNS} for row in rows]
