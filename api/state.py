"""Per-app state kept on ``app.extensions["bati"]`` (no module-level globals hold a model).

Threads are started lazily in the process that serves (first request), never in a gunicorn
master before it forks; after a fork the registry's pooled connections are discarded and fresh
threads are started.
"""

from __future__ import annotations

import logging
import os
import threading
from typing import Any

from flask import Flask, current_app

from api.config import Settings
from api.holder import ModelHolder
from api.predlog import PredictionLogWriter, clean_rows

log = logging.getLogger("api.state")
EXTENSION = "bati"


def _read_snapshot(reg: Any) -> Any:
    """The latest feature snapshot, numeric feature columns as float64 (JSON nulls -> NaN)."""
    from credit.features import NUMERIC_FEATURES
    from registry import read_feature_snapshot

    snapshot = read_feature_snapshot(reg)
    numeric = [c for c in NUMERIC_FEATURES if c in snapshot.columns]
    if numeric:
        attrs = dict(snapshot.attrs)
        snapshot[numeric] = snapshot[numeric].astype("float64")
        snapshot.attrs.update(attrs)
    return snapshot


def _snapshot_version(reg: Any) -> Any:
    """The date of the latest feature snapshot (a new one triggers a reload)."""
    from registry import snapshot_dates

    dates = snapshot_dates(reg)
    return dates[-1] if dates else None


class BatiState:
    """Settings, the lazily created registry, the model holder and the prediction log."""

    def __init__(self, settings: Settings, registry: Any | None = None) -> None:
        self.settings = settings
        self._registry = registry
        self._registry_lock = threading.Lock()
        self._pid: int | None = None
        self._start_lock = threading.Lock()
        self.holder = ModelHolder(
            self.registry,
            settings.model_name,
            settings.reload_seconds,
            snapshot_reader=_read_snapshot,
            snapshot_version=_snapshot_version,
        )
        self.predlog = PredictionLogWriter(
            self._write_predictions,
            max_rows=settings.log_queue_size,
            batch_rows=settings.log_batch_rows,
            flush_seconds=settings.log_flush_seconds,
        )

    def registry(self) -> Any:
        """The :class:`registry.Registry` (created on first use; the URL is never logged)."""
        if self._registry is None:
            with self._registry_lock:
                if self._registry is None:
                    from registry import Registry

                    self._registry = Registry(self.settings.db_url)
        return self._registry

    def _write_predictions(self, rows: list[dict[str, Any]]) -> None:
        from registry import log_predictions

        log_predictions(self.registry(), clean_rows(rows))

    def ensure_started(self) -> None:
        """Start the reload and log threads once per process (cheap when already running)."""
        pid = os.getpid()
        if self._pid == pid or not self.settings.start_background:
            return
        with self._start_lock:
            if self._pid == pid:
                return
            if self._pid is not None:  # forked after start: parent threads are gone
                self.holder.forget_thread()
                self.predlog.forget_thread()
                reg = self._registry
                if reg is not None and hasattr(reg, "engine"):
                    reg.engine.dispose(close=False)
            self.holder.start()
            self.predlog.start()
            self._pid = pid

    def close(self) -> None:
        """Stop the threads, flush the prediction log, release connections."""
        self.holder.stop()
        self.predlog.close()
        reg = self._registry
        if reg is not None and hasattr(reg, "close"):
            try:
                reg.close()
            except Exception:  # pragma: no cover - closing a dead pool
                log.debug("registry close failed", exc_info=True)


def get_state(app: Flask | None = None) -> BatiState:
    return (app or current_app).extensions[EXTENSION]
