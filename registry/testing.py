"""Throw-away registry databases for tests (any test suite may use these).

PostgreSQL tests read the server URL from ``BATI_TEST_PG_URL`` and get a fresh schema each
(dropped afterwards), so reruns and parallel suites never see each other's rows.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

PG_ENV = "BATI_TEST_PG_URL"


def pg_base_url() -> str | None:
    """The PostgreSQL URL for tests, or ``None`` when ``BATI_TEST_PG_URL`` is unset."""
    return os.environ.get(PG_ENV) or None


def sqlite_url(directory: str | Path, name: str = "bati.db") -> str:
    """A SQLite URL for a file inside ``directory``."""
    return f"sqlite:///{Path(directory) / name}"


@contextmanager
def isolated_pg_url(base_url: str, prefix: str = "bati_test") -> Iterator[str]:
    """Yield ``base_url`` pointed at a brand-new schema (``search_path``); drop it on exit."""
    schema = f"{prefix}_{uuid.uuid4().hex[:12]}"
    admin = create_engine(base_url, pool_pre_ping=True)
    try:
        with admin.begin() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
        url = make_url(base_url).update_query_dict({"options": f"-csearch_path={schema}"})
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        admin.dispose()


def replace_artifact(url: str, version_id: int, change: Callable[[bytes], bytes | None]) -> None:
    """Tamper with a stored artifact the way an attacker with DDL rights could: switch the
    immutability triggers off, replace the bytes with ``change(old)`` (delete the row when it
    returns None), switch them back on, all in one transaction."""
    from registry.db import WRITE_OPTION, create_engine_for

    engine = create_engine_for(url)
    v = {"v": version_id}
    try:
        with engine.connect().execution_options(**{WRITE_OPTION: True}) as conn, conn.begin():
            select_data = "SELECT data FROM model_artifacts WHERE version_id = :v"
            old = bytes(conn.execute(text(select_data), v).scalar_one())
            if conn.dialect.name == "postgresql":
                conn.execute(text("ALTER TABLE model_artifacts DISABLE TRIGGER USER"))
                triggers = []
            else:
                triggers = conn.execute(
                    text(
                        "SELECT name, sql FROM sqlite_master "
                        "WHERE type = 'trigger' AND tbl_name = 'model_artifacts'"
                    )
                ).all()
                for name, _ in triggers:
                    conn.execute(text(f'DROP TRIGGER "{name}"'))
            conn.execute(text("DELETE FROM model_artifacts WHERE version_id = :v"), v)
            new = change(old)
            if new is not None:
                conn.execute(
                    text("INSERT INTO model_artifacts (version_id, data) VALUES (:v, :d)"),
                    {**v, "d": new},
                )
            if conn.dialect.name == "postgresql":
                conn.execute(text("ALTER TABLE model_artifacts ENABLE TRIGGER USER"))
            for _, sql in triggers:
                conn.exec_driver_sql(sql)
    finally:
        engine.dispose()


def flip_one_byte(blob: bytes) -> bytes:
    """``blob`` with its middle byte inverted (a tampered artifact)."""
    out = bytearray(blob)
    out[len(out) // 2] ^= 0xFF
    return bytes(out)


@contextmanager
def database_url(backend: str, tmp_dir: str | Path) -> Iterator[str]:
    """URL of an empty database on ``backend`` ("sqlite" or "postgres").

    Raises ``LookupError`` for "postgres" when ``BATI_TEST_PG_URL`` is unset (callers skip).
    """
    if backend == "sqlite":
        yield sqlite_url(tmp_dir)
    elif backend == "postgres":
        base = pg_base_url()
        if base is None:
            raise LookupError(f"{PG_ENV} is not set")
        with isolated_pg_url(base) as url:
            yield url
    else:
        raise ValueError(f"unknown backend {backend!r}")
