"""API settings: read from the environment, overridable by the ``create_app(config)`` dict."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from typing import Any

DEFAULT_MODEL_NAME = "bati-credit"
MIB = 1024 * 1024


@dataclass(frozen=True)
class Settings:
    """Everything the API is configured with (env name in brackets).

    ``db_url`` None lets :class:`registry.Registry` apply its own default (env ``BATI_DB_URL``,
    else the SQLite file ``var/bati.db``). ``admin_token`` None disables the admin endpoints.
    """

    db_url: str | None = None  # BATI_DB_URL
    model_name: str = DEFAULT_MODEL_NAME  # BATI_MODEL_NAME
    admin_token: str | None = None  # BATI_ADMIN_TOKEN
    reload_seconds: float = 30.0  # BATI_RELOAD_SECONDS
    max_batch: int = 1000  # BATI_MAX_BATCH
    max_body_bytes: int = 2 * MIB  # BATI_MAX_BODY_BYTES
    max_transactions: int = 5000  # BATI_MAX_TRANSACTIONS (per customer)
    request_timeout_seconds: float = 10.0  # BATI_REQUEST_TIMEOUT_SECONDS (body read + scoring)
    log_queue_size: int = 100_000  # BATI_LOG_QUEUE_SIZE (prediction-log rows waiting)
    log_flush_seconds: float = 0.5  # BATI_LOG_FLUSH_SECONDS
    log_batch_rows: int = 1000  # rows per write of the prediction log
    start_background: bool = True  # reload and log threads (tests may turn them off)
    load_on_start: bool = True  # try to load the champion inside create_app

    def __post_init__(self) -> None:
        if self.reload_seconds <= 0:
            raise ValueError("reload_seconds must be positive")
        if self.request_timeout_seconds <= 0:
            raise ValueError("request_timeout_seconds must be positive")
        for name in ("max_batch", "max_body_bytes", "max_transactions", "log_queue_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")
        if self.admin_token is not None and not self.admin_token.strip():
            object.__setattr__(self, "admin_token", None)

    def public(self) -> dict[str, Any]:
        """The settings safe to show (the token and the database URL are not)."""
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        out["admin_enabled"] = out.pop("admin_token") is not None
        out.pop("db_url")
        return out


_ENV: dict[str, tuple[str, type]] = {
    "db_url": ("BATI_DB_URL", str),
    "model_name": ("BATI_MODEL_NAME", str),
    "admin_token": ("BATI_ADMIN_TOKEN", str),
    "reload_seconds": ("BATI_RELOAD_SECONDS", float),
    "max_batch": ("BATI_MAX_BATCH", int),
    "max_body_bytes": ("BATI_MAX_BODY_BYTES", int),
    "max_transactions": ("BATI_MAX_TRANSACTIONS", int),
    "request_timeout_seconds": ("BATI_REQUEST_TIMEOUT_SECONDS", float),
    "log_queue_size": ("BATI_LOG_QUEUE_SIZE", int),
    "log_flush_seconds": ("BATI_LOG_FLUSH_SECONDS", float),
}


def load_settings(
    overrides: Mapping[str, Any] | None = None, env: Mapping[str, str] | None = None
) -> Settings:
    """Settings from ``env`` (default ``os.environ``), then ``overrides`` (keys = field names)."""
    env = os.environ if env is None else env
    values: dict[str, Any] = {}
    for name, (var, kind) in _ENV.items():
        raw = env.get(var)
        if raw is None or raw == "":
            continue
        try:
            values[name] = kind(raw)
        except ValueError:
            raise ValueError(f"environment variable {var} must be a {kind.__name__}") from None
    settings = replace(Settings(), **values)
    if overrides:
        known = {f.name for f in fields(Settings)}
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise ValueError(f"unknown API setting(s) {unknown}; known: {sorted(known)}")
        settings = replace(settings, **dict(overrides))
    return settings
