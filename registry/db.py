"""Database URL resolution, engine creation and Alembic migrations.

One URL selects the database: the ``url`` argument, else ``BATI_DB_URL``, else a SQLite file at
``$BATI_VAR_DIR/bati.db`` (default ``<project>/var/bati.db``). SQLite connections run in WAL
mode with a busy timeout, so the API can read while a flow writes; write units of work start
with ``BEGIN IMMEDIATE`` (the SQLite equivalent of taking the write lock up front), read units
with a deferred ``BEGIN``.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util.exc import CommandError
from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

from registry.errors import InvalidDatabaseURL, SchemaTooNew
from schemas.defaults import var_path
from schemas.settings import setting

PACKAGE_DIR = Path(__file__).resolve().parent
MIGRATIONS_DIR = PACKAGE_DIR / "migrations"
ALEMBIC_INI = PACKAGE_DIR / "alembic.ini"
ENV_VAR = "BATI_DB_URL"
SUPPORTED_BACKENDS = ("sqlite", "postgresql")
URL_EXAMPLES = "sqlite:///path/to/bati.db or postgresql+psycopg://user@host:5432/db"
#: Execution option marking a connection that will write (SQLite: ``BEGIN IMMEDIATE``).
WRITE_OPTION = "bati_write"
SQLITE_BUSY_TIMEOUT_MS = 30_000
_PG_MIGRATION_LOCK = 0x0BA71_2E6  # pg_advisory_xact_lock key serialising concurrent migrations
# Alembic's `context` proxy is process-global: two threads must never migrate at once.
_MIGRATION_THREAD_LOCK = threading.Lock()


def default_db_url() -> str:
    """``BATI_DB_URL`` if set, else the SQLite file ``bati.db`` in the var/ folder
    (``$BATI_VAR_DIR`` or ``<project>/var``, as everywhere else)."""
    return setting("db_url") or f"sqlite:///{var_path() / 'bati.db'}"


def resolve_url(url: str | None = None) -> str:
    """The explicit ``url``, else :func:`default_db_url`."""
    return url or default_db_url()


def parse_url(
    url: str | None = None, *, backends: tuple[str, ...] | None = SUPPORTED_BACKENDS
) -> URL:
    """The resolved URL, parsed; :class:`InvalidDatabaseURL` (one line, no password) when it is
    not a URL, names a backend outside ``backends`` (``None``: any), or lacks its driver."""
    try:
        sa_url = make_url(resolve_url(url))
    except (ArgumentError, ValueError, TypeError):
        raise InvalidDatabaseURL(f"not a database URL (expected {URL_EXAMPLES})") from None
    backend = sa_url.get_backend_name()
    if backends is not None and backend not in backends:
        raise InvalidDatabaseURL(
            f"unsupported database backend {backend!r}: the registry runs on SQLite or "
            f"PostgreSQL ({URL_EXAMPLES})"
        )
    try:
        sa_url.get_dialect().import_dbapi()
    except ImportError as exc:
        raise InvalidDatabaseURL(
            f"the database driver for {sa_url.drivername!r} is not installed ({exc.name or exc})"
        ) from None
    except ArgumentError as exc:  # unknown driver name, e.g. postgresql+nope
        raise InvalidDatabaseURL(f"unknown database driver {sa_url.drivername!r}") from exc
    return sa_url


def safe_url(url: str | URL) -> str:
    """The URL with any password masked, for logs and messages (never raises)."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - an unparsable URL is never echoed (it may hold secrets)
        return "<invalid database URL>"


def create_engine_for(
    url: str | None = None, *, backends: tuple[str, ...] | None = None, **kwargs: Any
) -> Engine:
    """A SQLAlchemy engine for ``url`` with the registry's SQLite settings applied.

    ``backends`` limits the accepted database kinds (the registry passes SQLite and PostgreSQL);
    any bad URL is an :class:`InvalidDatabaseURL`, never a driver traceback.
    """
    sa_url = parse_url(url, backends=backends)
    if sa_url.get_backend_name() != "sqlite":
        kwargs.setdefault("pool_pre_ping", True)
        return create_engine(sa_url, **kwargs)

    database = sa_url.database or ""
    if database and database != ":memory:" and not database.startswith("file:"):
        Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(sa_url, **kwargs)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Let SQLAlchemy's "begin" event below control transactions (pysqlite's implicit
        # BEGIN would otherwise defer the write lock and skip transactional DDL).
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
        _enable_wal(cur)
        cur.execute("PRAGMA synchronous = NORMAL")
        cur.execute("PRAGMA foreign_keys = ON")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        write = conn.get_execution_options().get(WRITE_OPTION, False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")

    return engine


def _enable_wal(cursor: Any) -> None:
    """Switch the file to WAL (persistent). The switch ignores busy_timeout, so concurrent
    first connections to a new file retry for a while instead of failing "database is locked"."""
    deadline = time.monotonic() + SQLITE_BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            if cursor.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
                cursor.execute("PRAGMA journal_mode = WAL")  # ":memory:" stays "memory"
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.01)


def alembic_config(url: str | None = None) -> Config:
    """Alembic configuration pointing at ``registry/migrations`` (independent of the cwd)."""
    cfg = Config(str(ALEMBIC_INI)) if ALEMBIC_INI.exists() else Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    if url is not None:
        # ConfigParser interpolation: a literal % must be doubled.
        cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


@lru_cache(maxsize=1)
def _scripts() -> ScriptDirectory:
    """The migration scripts (parsed once per process: they do not change while it runs)."""
    return ScriptDirectory.from_config(alembic_config())


def head_revision() -> str | None:
    """The newest revision in the migration chain."""
    return _scripts().get_current_head()


def known_revision(revision: str) -> bool:
    """True when ``revision`` belongs to this code's migration chain."""
    try:
        return _scripts().get_revision(revision) is not None
    except CommandError:
        return False


def current_revision(engine: Engine) -> str | None:
    """The revision the database is at (``None`` for an empty database)."""
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


CURRENT, BEHIND, AHEAD = "current", "behind", "ahead"


@dataclass(frozen=True)
class SchemaState:
    """Where the database schema stands against this code's head revision.

    ``status``: ``current`` (at head), ``behind`` (empty or older: ``registry migrate``
    upgrades it) or ``ahead`` (a revision this code does not know: upgrade the code).
    """

    status: str
    database_revision: str | None
    code_revision: str | None

    @property
    def is_current(self) -> bool:
        return self.status == CURRENT


def schema_state_of(revision: str | None) -> SchemaState:
    """Classify a database revision against the head (pure; no database access)."""
    head = head_revision()
    if revision == head:
        status = CURRENT
    elif revision is None or known_revision(revision):
        status = BEHIND
    else:
        status = AHEAD
    return SchemaState(status, revision, head)


def schema_state(engine: Engine) -> SchemaState:
    """Read-only check of the database's schema revision (never creates or migrates)."""
    return schema_state_of(current_revision(engine))


def upgrade(engine: Engine, revision: str = "head") -> str | None:
    """Run ``alembic upgrade`` on ``engine`` in one transaction; returns the new revision.

    Concurrent first uses are serialised: PostgreSQL takes a transaction-level advisory lock,
    SQLite takes its write lock with ``BEGIN IMMEDIATE``; the second process then finds the
    schema at head and does nothing. A database at a revision this code does not know raises
    :class:`SchemaTooNew` and is left untouched. Threads of one process take turns (Alembic's
    ``context`` is a process-global proxy).
    """
    cfg = alembic_config()
    with (
        _MIGRATION_THREAD_LOCK,
        engine.connect().execution_options(**{WRITE_OPTION: True}) as conn,
        conn.begin(),
    ):
        if conn.dialect.name == "postgresql":
            conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_PG_MIGRATION_LOCK})")
        state = schema_state_of(MigrationContext.configure(conn).get_current_revision())
        if state.status == AHEAD:
            raise SchemaTooNew(str(state.database_revision), state.code_revision)
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)
        return MigrationContext.configure(conn).get_current_revision()
