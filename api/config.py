"""API settings: read from the environment, overridable by the ``create_app(config)`` dict."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any

from schemas import defaults

DEFAULT_MODEL_NAME = defaults.DEFAULT_MODEL_NAME
MIB = 1024 * 1024
MIN_TOKEN_CHARS = 32
MAX_SECONDS = 86_400.0  # a day: larger waits are a typo, and inf/nan break timers and JSON


class SettingError(ValueError):
    """One refused setting; ``str()`` is one line naming it (the env variable when known)."""

    def __init__(self, name: str, problem: str) -> None:
        super().__init__(f"{name}: {problem}")
        self.name = name
        self.problem = problem


@dataclass(frozen=True)
class Settings:
    """Everything the API is configured with (env name in brackets).

    ``db_url`` None lets :class:`registry.Registry` apply its own default (env ``BATI_DB_URL``,
    else the SQLite file ``var/bati.db``). ``admin_token`` None disables the admin endpoints.
    """

    db_url: str | None = None  # BATI_DB_URL
    model_name: str = DEFAULT_MODEL_NAME  # BATI_MODEL_NAME
    admin_token: str | None = field(default=None, repr=False)  # BATI_ADMIN_TOKEN
    reload_seconds: float = 30.0  # BATI_RELOAD_SECONDS
    max_batch: int = 1000  # BATI_MAX_BATCH
    max_body_bytes: int = 2 * MIB  # BATI_MAX_BODY_BYTES
    max_transactions: int = 5000  # BATI_MAX_TRANSACTIONS (per customer)
    request_timeout_seconds: float = 10.0  # BATI_REQUEST_TIMEOUT_SECONDS (body read + scoring)
    runs_dir: str | None = None  # BATI_RUNS_DIR (reports served; default BATI_VAR_DIR/runs)
    log_queue_size: int = 100_000  # BATI_LOG_QUEUE_SIZE (prediction-log rows waiting)
    log_flush_seconds: float = 0.5  # BATI_LOG_FLUSH_SECONDS
    log_batch_rows: int = 1000  # rows per write of the prediction log
    start_background: bool = True  # reload and log threads (tests may turn them off)
    load_on_start: bool = True  # try to load the champion inside create_app

    def __post_init__(self) -> None:
        for name in ("reload_seconds", "request_timeout_seconds", "log_flush_seconds"):
            value = getattr(self, name)
            if not (isinstance(value, int | float) and math.isfinite(value)):
                raise SettingError(name, "must be a finite number of seconds")
            if not 0 < value <= MAX_SECONDS:
                raise SettingError(name, f"must be more than 0 and at most {MAX_SECONDS:g} s")
        for name in ("max_batch", "max_body_bytes", "max_transactions", "log_queue_size"):
            if getattr(self, name) < 1:
                raise SettingError(name, "must be at least 1")
        token = self.admin_token.strip() if self.admin_token is not None else None
        if token is not None and token and len(token) < MIN_TOKEN_CHARS:
            # Never quote the token, only its length.
            raise SettingError(
                "admin_token",
                f"is {len(token)} characters; use at least {MIN_TOKEN_CHARS} (for example "
                "python -c 'import secrets; print(secrets.token_urlsafe(32))')",
            )
        object.__setattr__(self, "admin_token", token or None)

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
    "runs_dir": ("BATI_RUNS_DIR", str),
    "log_queue_size": ("BATI_LOG_QUEUE_SIZE", int),
    "log_flush_seconds": ("BATI_LOG_FLUSH_SECONDS", float),
}


_KIND = {int: "whole number", float: "number", str: "string"}


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
            raise SettingError(var, f"must be a {_KIND[kind]}") from None
    try:
        settings = replace(Settings(), **values)
    except SettingError as exc:  # name the environment variable that holds the bad value
        raise SettingError(_ENV[exc.name][0], exc.problem) from None
    if overrides:
        known = {f.name for f in fields(Settings)}
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise ValueError(f"unknown API setting(s) {unknown}; known: {sorted(known)}")
        settings = replace(settings, **dict(overrides))
    return settings
