"""Per-app state kept on ``app.extensions["bati"]`` (no module-level globals hold a model).

Threads are started lazily in the process that serves (first request), never in a gunicorn
master before it forks; after a fork the registry's pooled connections are discarded and fresh
threads are started.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import weakref
from typing import Any

from flask import Flask, current_app

from api.config import Settings
from api.holder import ModelHolder
from api.predlog import PredictionLogWriter, clean_rows
from registry.errors import SchemaNotMigrated, SchemaTooNew

log = logging.getLogger("api.state")
EXTENSION = "bati"


def check_schema(reg: Any) -> None:
    """Raise unless the registry's schema is this code's (read-only: the API never creates or
    migrates schema; ``python -m registry migrate`` does). Messages name no host or path."""
    from registry import db

    state = reg.check_schema()
    if state.status == db.AHEAD:
        raise SchemaTooNew(str(state.database_revision), state.code_revision)
    if not state.is_current:
        raise SchemaNotMigrated(state.database_revision, state.code_revision, "(BATI_DB_URL)")


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


def _snapshot_version(reg: Any) -> int | None:
    """The id of the served (published) feature snapshot: a new one triggers a reload, even
    with the same date and the same champion."""
    from registry import served_snapshot_id

    return served_snapshot_id(reg)


class BatiState:
    """Settings, the app's one registry handle, the model holder and the prediction log.

    The registry is created on first use, never migrates (``auto_migrate=False``) and is closed
    by :meth:`close` (run at interpreter exit as well). :meth:`registry` hands it out only once
    its schema is verified to be this code's; a failure resets the check.
    """

    def __init__(self, settings: Settings, registry: Any | None = None) -> None:
        self.settings = settings
        self._registry = registry
        self._owns_registry = registry is None
        self._registry_lock = threading.Lock()
        self._schema_ok = False
        self._pid: int | None = None
        self._start_lock = threading.Lock()
        self.holder = ModelHolder(
            self.verified_registry,
            settings.model_name,
            settings.reload_seconds,
            snapshot_reader=_read_snapshot,
            snapshot_version=_snapshot_version,
            on_failure=self.explain_failure,
        )
        self.predlog = PredictionLogWriter(
            self._write_predictions,
            max_rows=settings.log_queue_size,
            batch_rows=settings.log_batch_rows,
            flush_seconds=settings.log_flush_seconds,
        )

        ref = weakref.ref(self)
        atexit.register(lambda: (s := ref()) is not None and s.close())

    def _handle(self) -> Any:
        """The registry handle (created on first use; the URL is never logged)."""
        if self._registry is None:
            with self._registry_lock:
                if self._registry is None:
                    from registry import Registry

                    self._registry = Registry(self.settings.db_url, auto_migrate=False)
        return self._registry

    def verified_registry(self) -> Any:
        """The registry once its schema is this code's (``SchemaTooNew`` or
        ``SchemaNotMigrated`` otherwise; checked again after :meth:`registry_failed`)."""
        reg = self._handle()
        if not self._schema_ok and hasattr(reg, "check_schema"):
            check_schema(reg)
            self._schema_ok = True
        return reg

    def registry(self) -> Any:
        """The :class:`registry.Registry` for a request (schema verified)."""
        return self.verified_registry()

    def registry_failed(self) -> None:
        """Check the schema again on next use (the database may have been recreated)."""
        self._schema_ok = False

    def explain_failure(self, exc: BaseException) -> str | None:
        """After a failed reload: a schema problem behind it (one line), else ``None``."""
        self.registry_failed()
        if isinstance(exc, SchemaNotMigrated | SchemaTooNew):
            return None
        try:
            self.verified_registry()
        except (SchemaNotMigrated, SchemaTooNew) as schema:
            return f"{type(schema).__name__}: {schema}"
        except Exception:  # the database is unreachable: the original error says it
            return None
        return None

    def _write_predictions(self, rows: list[dict[str, Any]]) -> None:
        from registry import log_predictions

        log_predictions(self._handle(), clean_rows(rows))

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
        """Stop the threads, flush the prediction log, close the registry (idempotent)."""
        self.holder.stop()
        self.predlog.close()
        reg = self._registry
        if reg is not None and self._owns_registry and hasattr(reg, "close"):
            try:
                reg.close()
            except Exception:  # pragma: no cover - closing a dead pool
                log.debug("registry close failed", exc_info=True)


def get_state(app: Flask | None = None) -> BatiState:
    return (app or current_app).extensions[EXTENSION]
