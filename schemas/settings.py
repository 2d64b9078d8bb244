"""Settings of the flows, CLI and deployment processes (pydantic-settings, ``BATI_`` prefix).

Every ``BATI_*`` variable the flows read is a field of :class:`FlowSettings` (env ``BATI_`` +
upper-case field name): secrets (database, store and landing URLs, the alert webhook, the admin
token that signs report links) are ``SecretStr``, never shown in a repr or a dump. The entry
points (``flows.cli.cli_main``, ``flows.main``, ``deployments.serve``) call
:func:`load_flow_settings` at start-up, so a bad value exits at once with one line naming the
variable; code deeper down reads one field with :func:`setting`, which validates only that
variable (a bad value elsewhere never breaks an unrelated read). ``PREFECT_*`` stay Prefect's.
The API has its own settings (``api/config.py``).
"""

from __future__ import annotations

import functools
import math
import os
import re
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

ENV_PREFIX = "BATI_"
DEFAULT_API_URL = "http://127.0.0.1:8000"
DEFAULT_SCHEDULE_TZ = "Africa/Addis_Ababa"
DEFAULT_MAX_CSV_BYTES = 1024**3
DEFAULT_API_PORT = 8000
MIN_TOKEN_CHARS = 32  # as the API requires (api/config.py): a shorter token is refused there
DB_BACKENDS = ("sqlite", "postgresql")
DB_URL_EXAMPLES = "sqlite:///path/to/bati.db or postgresql+psycopg://user@host:5432/db"
_SECRETS = ("db_url", "store_url", "landing", "alert_webhook", "admin_token")
_local = threading.local()  # the environment one load reads (None: os.environ)

_URL_PASSWORD = re.compile(r"(?P<head>[A-Za-z][A-Za-z0-9+.\-]*://[^\s/@:]*:)[^\s@/]*@")


def mask_secrets(text: str) -> str:
    """``text`` with every URL password replaced by ``***`` (for parameters, logs, messages)."""
    return _URL_PASSWORD.sub(r"\g<head>***@", text)


class SettingError(ValueError):
    """One refused setting; ``str()`` is one line, ``BATI_<NAME>: problem`` (never the value)."""

    def __init__(self, variable: str, problem: str) -> None:
        super().__init__(f"{variable}: {problem}")
        self.variable = variable
        self.problem = problem


def env_var(field: str) -> str:
    """The environment variable of a field: ``db_url`` -> ``BATI_DB_URL``."""
    return ENV_PREFIX + field.upper()


class _Environment(EnvSettingsSource):
    """The ``BATI_*`` variables of this load (only the wanted fields'); empty means unset."""

    def _load_env_vars(self) -> Mapping[str, str | None]:
        source, wanted = getattr(_local, "load", (None, None))
        source = os.environ if source is None else source
        names = {env_var(f) for f in (FlowSettings.model_fields if wanted is None else wanted)}
        return {k.lower(): v for k, v in source.items() if k.upper() in names and v.strip()}


def _url(value: str, what: str) -> str:
    """``value`` when it parses as a SQLAlchemy URL (``ValueError`` otherwise, value unquoted)."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        make_url(value)
    except (ArgumentError, ValueError, TypeError):
        raise ValueError(f"not a {what} URL (expected {DB_URL_EXAMPLES})") from None
    return value


def _http_url(value: str) -> str:
    if not value.startswith(("http://", "https://")) or len(value.split("://", 1)[1]) == 0:
        raise ValueError("must be an http:// or https:// URL")
    return value


class FlowSettings(BaseSettings):
    """Everything the flows, their CLI and the deployments read from the environment.

    Fields left unset keep the flows' defaults: ``db_url`` None lets the registry use the
    Secret block named by ``db_url_secret``, else SQLite in ``var_dir`` (default
    ``<project>/var``); ``store_url`` None is ``<var>/store``; ``landing`` None falls back to the
    Prefect Variable ``bati-landing``; ``admin_token`` None turns report links off.
    """

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, frozen=True, extra="forbid", validate_default=False
    )

    db_url: SecretStr | None = Field(None, description="registry database URL")
    db_url_secret: str | None = Field(
        None, description="Prefect Secret block holding the database URL (when db_url is unset)"
    )
    store_url: SecretStr | None = Field(
        None, description="transaction store: Parquet folder or URL#table (default <var>/store)"
    )
    landing: SecretStr | None = Field(
        None, description="landing source of the nightly flow: folder or URL#table"
    )
    alert_webhook: SecretStr | None = Field(None, description="webhook URL the alerts post to")
    admin_token: SecretStr | None = Field(
        None, description="the API's admin token, signing report links (None: links off)"
    )
    api_url: str = Field(DEFAULT_API_URL, description="the API's base URL in report links")
    dask_address: str | None = Field(None, description="Dask scheduler the candidates run on")
    data: str | None = Field(None, description="transactions `make run` trains on")
    api_port: int = Field(DEFAULT_API_PORT, ge=1, le=65535, description="`make run`'s API port")
    var_dir: Path | None = Field(None, description="generated files (default <project>/var)")
    schedule_tz: str = Field(DEFAULT_SCHEDULE_TZ, description="IANA time zone of the schedule")
    max_csv_bytes: int = Field(
        DEFAULT_MAX_CSV_BYTES, ge=1, description="largest CSV read into memory, in bytes"
    )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        **_: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Keyword arguments, then this load's ``BATI_*`` variables (no .env, no secrets dir)."""
        return (init_settings, _Environment(settings_cls))

    @field_validator("*", mode="before")
    @classmethod
    def _strip(cls, value: Any) -> Any:
        return value.strip() if isinstance(value, str) else value

    @field_validator("db_url", mode="after")
    @classmethod
    def _db_url(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None:
            return None
        from sqlalchemy.engine import make_url

        backend = make_url(_url(value.get_secret_value(), "database")).get_backend_name()
        if backend not in DB_BACKENDS:
            raise ValueError(
                f"unsupported database backend {backend!r}: the registry runs on SQLite or "
                f"PostgreSQL ({DB_URL_EXAMPLES})"
            )
        return value

    @field_validator("store_url", "landing", mode="after")
    @classmethod
    def _source(cls, value: SecretStr | None) -> SecretStr | None:
        """A folder/file path, or a ``URL#table`` whose URL parses."""
        if value is not None and "://" in value.get_secret_value():
            url, _, table = value.get_secret_value().partition("#")
            _url(url, "database")
            if not table:
                raise ValueError("a database source needs its table: URL#table")
        return value

    @field_validator("alert_webhook", mode="after")
    @classmethod
    def _webhook(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            _http_url(value.get_secret_value())
        return value

    @field_validator("api_url")
    @classmethod
    def _api_url(cls, value: str) -> str:
        return _http_url(value).rstrip("/")

    @field_validator("admin_token", mode="after")
    @classmethod
    def _token(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < MIN_TOKEN_CHARS:
            n = len(value.get_secret_value())  # never quote the token, only its length
            raise ValueError(f"is {n} characters; use at least {MIN_TOKEN_CHARS}")
        return value

    @field_validator("schedule_tz")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"unknown time zone {value!r}: use an IANA name such as {DEFAULT_SCHEDULE_TZ}"
            ) from None
        return value

    @field_validator("max_csv_bytes", mode="before")
    @classmethod
    def _bytes(cls, value: Any) -> Any:
        """Also ``1e9`` (a float string), as before; not NaN, infinite or fractional."""
        if isinstance(value, str):
            try:
                number = float(value)
            except ValueError:
                raise ValueError("must be a whole number of bytes") from None
            if not math.isfinite(number) or number != int(number):
                raise ValueError("must be a whole number of bytes")
            return int(number)
        return value

    def secret(self, name: str) -> str | None:
        """The plain value of a secret field (``None`` when unset)."""
        value = getattr(self, name)
        return None if value is None else value.get_secret_value()


def _problem(err: Mapping[str, Any]) -> str:
    """One phrase for a pydantic error: our validators' text, else pydantic's first line."""
    error = (err.get("ctx") or {}).get("error")
    if error is not None:
        return str(error)
    return str(err["msg"]).splitlines()[0]


def load_flow_settings(
    env: Mapping[str, str] | None = None, *, only: tuple[str, ...] | None = None
) -> FlowSettings:
    """The settings from ``env`` (default ``os.environ``); ``only``: read just these fields
    (the others keep their defaults). :class:`SettingError` naming the variable of a bad value."""
    unknown = sorted(set(only or ()) - set(FlowSettings.model_fields))
    if unknown:
        raise ValueError(f"unknown flow setting(s) {unknown}")
    previous = getattr(_local, "load", None)
    _local.load = (env, only)
    try:
        return FlowSettings()
    except ValidationError as exc:
        err = exc.errors(include_input=False)[0]
        name = str(err["loc"][0]) if err["loc"] else "settings"
        raise SettingError(env_var(name), _problem(err)) from None
    finally:
        if previous is None:
            del _local.load
        else:
            _local.load = previous


def setting(name: str, env: Mapping[str, str] | None = None) -> Any:
    """One field, read and validated alone from ``env`` (default ``os.environ``); a secret's
    plain value. :class:`SettingError` names the variable when its value is bad."""
    if name not in FlowSettings.model_fields:
        raise ValueError(f"unknown flow setting {name!r}")
    return _one_setting(name, (os.environ if env is None else env).get(env_var(name)))


@functools.lru_cache(maxsize=256)
def _one_setting(name: str, raw: str | None) -> Any:
    """:func:`setting` of one raw value (cached: building the settings costs milliseconds)."""
    env = {} if raw is None else {env_var(name): raw}
    settings = load_flow_settings(env, only=(name,))
    return settings.secret(name) if name in _SECRETS else getattr(settings, name)


def check_flow_settings() -> str | None:
    """Validate every flow setting (start-up): ``None``, or the one-line error to print."""
    try:
        load_flow_settings()
    except SettingError as exc:
        return f"error: invalid setting {exc}"
    return None
