"""The early Prefect server's process: its SQLite database migrated first, then Prefect's own app.

``python -m tasks.server_boot <uvicorn arguments>`` is the command :mod:`tasks.early_server`
spawns. It brings Prefect's SQLite database to Prefect's head revision with Prefect's own
Alembic migration scripts, over the synchronous ``sqlite3`` driver, then runs uvicorn exactly as
``python -m uvicorn <uvicorn arguments>`` would.

Why: Prefect migrates at start-up through ``aiosqlite``, which sends every statement to a
thread of its own and waits for the answer on the event loop. A fresh database takes ~110
migrations of SQLite "batch" table copies, each reflecting its table: tens of thousands of
statements, so the migrations took ~5 s on this 2-core machine against ~1.6 s over the
synchronous driver, on the critical path of every cold command. The result is the same
schema (:func:`migrate_sqlite` runs the same scripts with the same options and pragmas as
Prefect's ``env.py``); Prefect's own start-up migration then finds the database at its head
revision and does nothing (~0.04 s).

Nothing is migrated here for another database (PostgreSQL: Prefect migrates it), an in-memory
one, or with ``PREFECT_API_DATABASE_MIGRATE_ON_START`` off. If the migration fails, one line
says so on stderr and Prefect migrates at start-up as it always does (each migration is its own
transaction, so it resumes where this stopped).
"""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

# the reflection warning Prefect's own ``alembic_upgrade`` silences
_REFLECTION_WARNING = "Skipped unsupported reflection of expression-based index"


def sqlite_database(url: str) -> Path | None:
    """The file of a SQLite database URL; ``None`` for another database, an in-memory one or a
    ``file:`` URI (left to Prefect as it is)."""
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    database = parsed.database or ""
    if parsed.get_backend_name() != "sqlite" or not database or database == ":memory:":
        return None
    if database.startswith("file:") or parsed.query.get("mode") == "memory":
        return None
    return Path(database).expanduser()


def migrate_sqlite() -> bool:
    """Upgrade Prefect's SQLite database to head over ``sqlite3``, as Prefect's ``env.py`` does
    over ``aiosqlite``. Returns whether it migrated (``False``: not Prefect's to do here)."""
    import sqlalchemy as sa
    from alembic.runtime.environment import EnvironmentContext
    from alembic.script import ScriptDirectory
    from prefect.server.database import provide_database_interface
    from prefect.server.database.alembic_commands import alembic_config
    from prefect.server.database.configurations import SQLITE_BEGIN_MODE
    from prefect.settings import get_current_settings

    if not get_current_settings().server.database.migrate_on_start:
        return False
    db = provide_database_interface()
    database = sqlite_database(db.database_config.connection_url)
    if database is None:
        return False
    database.parent.mkdir(parents=True, exist_ok=True)
    url = sa.engine.make_url(db.database_config.connection_url).set(drivername="sqlite")
    timeout = db.database_config.timeout
    engine = sa.create_engine(
        url,
        poolclass=sa.pool.NullPool,
        paramstyle="named",
        connect_args={} if timeout is None else {"timeout": timeout},
    )

    @sa.event.listens_for(engine, "connect")
    def _connect(connection, record) -> None:  # type: ignore[no-untyped-def]
        connection.isolation_level = None  # Prefect's own BEGIN (as for aiosqlite)
        db.database_config.setup_sqlite(connection, record)  # Prefect's pragmas

    sa.event.listen(engine, "begin", db.database_config.begin_sqlite_stmt)

    config = alembic_config()
    script = ScriptDirectory.from_config(config)
    script.version_locations = [db.orm.versions_dir]

    def upgrade(revision, context):  # type: ignore[no-untyped-def]
        return script._upgrade_revs("head", revision)

    token = SQLITE_BEGIN_MODE.set("IMMEDIATE")
    try:
        with (
            warnings.catch_warnings(),
            EnvironmentContext(config, script, fn=upgrade, destination_rev="head") as context,
            engine.connect() as connection,
        ):
            warnings.filterwarnings(
                "ignore", message=_REFLECTION_WARNING, category=sa.exc.SAWarning
            )
            context.configure(
                connection=connection,
                target_metadata=db.Base.metadata,
                include_schemas=True,
                render_as_batch=True,
                transaction_per_migration=True,
                template_args={"dialect": "sqlite"},
            )
            # Prefect's ``disable_sqlite_foreign_keys``: batch copies drop and rename tables
            context.execute("COMMIT")
            context.execute("PRAGMA foreign_keys=OFF")
            context.execute("BEGIN IMMEDIATE")
            with context.begin_transaction():
                context.run_migrations()
            context.execute("END")
            context.execute("PRAGMA foreign_keys=ON")
            context.execute("BEGIN IMMEDIATE")
    finally:
        SQLITE_BEGIN_MODE.reset(token)
        engine.dispose()
    return True


def main(argv: list[str] | None = None) -> None:
    """Migrate (see the module docstring), then ``uvicorn <argv>``."""
    args = sys.argv[1:] if argv is None else argv
    try:
        migrate_sqlite()
    except Exception as exc:  # noqa: BLE001 - Prefect migrates at start-up instead
        from schemas.settings import mask_secrets

        reason = mask_secrets(f"{type(exc).__name__}: {exc}".splitlines()[0])
        print(
            f"Prefect database not migrated ahead ({reason}); Prefect migrates it at start-up",
            file=sys.stderr,
        )
    from uvicorn.main import main as uvicorn

    uvicorn(args, prog_name="uvicorn")


if __name__ == "__main__":
    main()
