"""API settings (pydantic-settings): read from ``BATI_*`` environment variables, overridable by
the ``create_app(config)`` dict; a bad value is refused at start-up with one line naming it."""

from __future__ import annotations

import contextvars
import math
import os
from collections.abc import Mapping
from typing import Any

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from schemas import defaults

DEFAULT_MODEL_NAME = defaults.DEFAULT_MODEL_NAME
MIB = 1024 * 1024
MIN_TOKEN_CHARS = 32
MAX_SECONDS = 86_400.0  # a day: larger waits are a typo, and inf/nan break timers and JSON
ENV_PREFIX = "BATI_"
#: Fields read from the environment (``BATI_`` + upper-case name); the others are code-only.
ENV_FIELDS = (
    "db_url",
    "model_name",
    "admin_token",
    "reload_seconds",
    "max_batch",
    "max_body_bytes",
    "max_transactions",
    "request_timeout_seconds",
    "runs_dir",
    "log_queue_size",
    "log_flush_seconds",
)
_ENV_VARS = {ENV_PREFIX + name.upper(): name for name in ENV_FIELDS}
_env_override: contextvars.ContextVar[Mapping[str, str] | None] = contextvars.ContextVar(
    "bati_api_env", default=None
)


class SettingError(ValueError):
    """One refused setting; ``str()`` is one line naming it (the env variable when known)."""

    def __init__(self, name: str, problem: str) -> None:
        super().__init__(f"{name}: {problem}")
        self.name = name
        self.problem = problem


class _Environment(EnvSettingsSource):
    """``BATI_*`` variables of :data:`ENV_FIELDS` only (of ``load_settings(env=...)`` when
    given, else ``os.environ``)."""

    def _load_env_vars(self) -> Mapping[str, str | None]:
        source = _env_override.get()
        source = os.environ if source is None else source
        # Case-insensitive names (lower-cased, as the base class expects); empty means unset.
        return {k.lower(): v for k, v in source.items() if k.upper() in _ENV_VARS and v != ""}


class Settings(BaseSettings):
    """Everything the API is configured with (env ``BATI_<NAME>`` for :data:`ENV_FIELDS`).

    ``db_url`` None lets :class:`registry.Registry` apply its own default (env ``BATI_DB_URL``,
    else the SQLite file ``var/bati.db``). ``admin_token`` None disables the admin endpoints;
    it is a ``SecretStr`` (never shown in a repr or a dump): :meth:`token` gives its value.
    """

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, frozen=True, extra="forbid", validate_default=False
    )

    db_url: str | None = None
    model_name: str = DEFAULT_MODEL_NAME
    admin_token: SecretStr | None = None
    reload_seconds: float = 30.0
    max_batch: int = 1000
    max_body_bytes: int = 2 * MIB
    max_transactions: int = 5000  # per customer
    request_timeout_seconds: float = 10.0  # body read + scoring
    runs_dir: str | None = None  # reports served (default BATI_VAR_DIR/runs)
    log_queue_size: int = 100_000  # prediction-log rows waiting
    log_flush_seconds: float = 0.5
    log_batch_rows: int = Field(default=1000, ge=1)  # rows per write of the prediction log
    start_background: bool = True  # reload and log threads (tests may turn them off)
    load_on_start: bool = True  # try to load the champion inside create_app

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, _Environment(settings_cls))

    @field_validator("reload_seconds", "request_timeout_seconds", "log_flush_seconds")
    @classmethod
    def _seconds(cls, value: float) -> float:
        if not math.isfinite(value):
            raise ValueError("must be a finite number of seconds")
        if not 0 < value <= MAX_SECONDS:
            raise ValueError(f"must be more than 0 and at most {MAX_SECONDS:g} s")
        return value

    @field_validator("max_batch", "max_body_bytes", "max_transactions", "log_queue_size")
    @classmethod
    def _count(cls, value: int) -> int:
        if value < 1:
            raise ValueError("must be at least 1")
        return value

    @field_validator("admin_token", mode="before")
    @classmethod
    def _token(cls, value: Any) -> Any:
        if isinstance(value, SecretStr):
            value = value.get_secret_value()
        if value is None:
            return None
        token = str(value).strip()
        if not token:
            return None
        if len(token) < MIN_TOKEN_CHARS:  # never quote the token, only its length
            raise ValueError(
                f"is {len(token)} characters; use at least {MIN_TOKEN_CHARS} (for example "
                "python -c 'import secrets; print(secrets.token_urlsafe(32))')"
            )
        return SecretStr(token)

    def token(self) -> str | None:
        """The admin token's value (``None``: admin endpoints disabled)."""
        return None if self.admin_token is None else self.admin_token.get_secret_value()

    def public(self) -> dict[str, Any]:
        """The settings safe to show (the token and the database URL are not)."""
        out = self.model_dump(exclude={"admin_token", "db_url"})
        out["admin_enabled"] = self.admin_token is not None
        return out


_KIND = {"int": "whole number", "float": "number", "bool": "boolean", "string": "string"}


def _problem(err: Mapping[str, Any]) -> str:
    """One phrase for a pydantic error (our validators' own text, else the expected kind)."""
    error = (err.get("ctx") or {}).get("error")
    if error is not None:
        return str(error)
    kind = str(err["type"]).split("_")[0]
    return f"must be a {_KIND[kind]}" if kind in _KIND else str(err["msg"]).splitlines()[0]


def load_settings(
    overrides: Mapping[str, Any] | None = None, env: Mapping[str, str] | None = None
) -> Settings:
    """Settings from ``env`` (default ``os.environ``), then ``overrides`` (keys = field names).

    :class:`SettingError` (one line naming the environment variable, or the override's key)
    for a bad value; ``ValueError`` for an unknown override.
    """
    overrides = dict(overrides or {})
    unknown = sorted(set(overrides) - set(Settings.model_fields))
    if unknown:
        raise ValueError(
            f"unknown API setting(s) {unknown}; known: {sorted(Settings.model_fields)}"
        )
    mark = _env_override.set(env)
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        err = exc.errors(include_input=False)[0]
        name = str(err["loc"][0]) if err["loc"] else "settings"
        shown = name if name in overrides else ENV_PREFIX + name.upper()
        raise SettingError(shown, _problem(err)) from None
    finally:
        _env_override.reset(mark)
