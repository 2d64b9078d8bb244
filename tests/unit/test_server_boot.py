"""tasks.server_boot: the early server's SQLite database is migrated over the synchronous driver
before Prefect's app starts, to the very schema Prefect's own start-up migration builds."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from builders import ROOT
from prefect.settings import temporary_settings

from tasks import early_server, server_boot

# ``tasks.server_boot.main`` with uvicorn replaced by a stand-in that reports the database as
# it finds it: the migration must be done before the server starts
OURS = """
import json, sqlite3, sys, uvicorn.main
from prefect.settings import get_current_settings
def stand_in(args, prog_name):
    url = get_current_settings().server.database.connection_url.get_secret_value()
    path = url.split(":///", 1)[1]
    con = sqlite3.connect(path)
    print(json.dumps({"args": args, "version": con.execute("select * from alembic_version").fetchall()}))
uvicorn.main.main = stand_in
from tasks import server_boot
server_boot.main(sys.argv[1:])
"""
# Prefect's own start-up migration (what ``create_app``'s lifespan runs)
PREFECTS = """
import asyncio
from prefect.server.database import provide_database_interface
asyncio.run(provide_database_interface().create_db())
"""


def _env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    return {**env, "PREFECT_HOME": str(home), "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}


def _schema(database: Path) -> dict:
    """Tables, indexes and triggers with their SQL, the revision and every table's row count.
    A table's constraints are sorted: Alembic's batch copies write its foreign keys in the
    order of a set, which differs between two runs of Prefect's own migration."""
    con = sqlite3.connect(database)
    objects = {}
    for kind, name, sql in con.execute("select type, name, sql from sqlite_master"):
        parts = (sql or "").removesuffix("\n)").split(", \n")
        columns = [p for p in parts if not p.lstrip().startswith("CONSTRAINT")]
        objects[f"{kind} {name}"] = [*columns, *sorted(set(parts) - set(columns))]
    tables = [n for (n,) in con.execute("select name from sqlite_master where type = 'table'")]
    return {
        "objects": objects,
        "rows": {t: con.execute(f'select count(*) from "{t}"').fetchone()[0] for t in tables},
        "version": con.execute("select * from alembic_version").fetchall(),
        "journal": con.execute("pragma journal_mode").fetchone()[0],
    }


@pytest.mark.long
def test_migrated_before_the_server_starts_to_the_schema_prefect_builds(tmp_path):
    ours, prefects = tmp_path / "ours", tmp_path / "prefects"
    args = ["--app-dir", "x", "--port", "1"]
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code, *args],
            cwd=ROOT,
            env=_env(home),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        for code, home in ((OURS, ours), (PREFECTS, prefects))
    ]
    outputs = []
    for proc in procs:
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err
        outputs.append(out)
    report = json.loads(outputs[0].splitlines()[-1])
    assert report["args"] == args  # uvicorn gets the command line as is
    head = _schema(prefects / "prefect.db")
    assert report["version"] == [list(v) for v in head["version"]]  # at head before uvicorn
    assert _schema(ours / "prefect.db") == head


def test_a_failed_migration_is_left_to_prefect(monkeypatch, capsys):
    """Prefect's own start-up migration then runs as always (it resumes where this stopped)."""
    started = []

    def broken() -> bool:
        raise sqlite3.OperationalError(
            "disk I/O error\nfrom postgresql://bati:s3cret-pw@db.internal:5432/prefect"
        )

    monkeypatch.setattr(server_boot, "migrate_sqlite", broken)
    monkeypatch.setattr("uvicorn.main.main", lambda args, prog_name: started.append(args))
    server_boot.main(["--port", "1"])
    assert started == [["--port", "1"]]
    assert capsys.readouterr().err.strip() == (
        "Prefect database not migrated ahead (OperationalError: disk I/O error); "
        "Prefect migrates it at start-up"
    )  # one line: the rest of a message may hold anything


def test_a_password_in_the_reason_is_masked(monkeypatch, capsys):
    def broken() -> bool:
        raise ValueError("cannot reach postgresql://bati:s3cret-pw@db.internal:5432/prefect")

    monkeypatch.setattr(server_boot, "migrate_sqlite", broken)
    monkeypatch.setattr("uvicorn.main.main", lambda args, prog_name: None)
    server_boot.main([])
    err = capsys.readouterr().err
    assert "s3cret-pw" not in err
    assert "postgresql://bati:***@db.internal:5432/prefect" in err


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("sqlite+aiosqlite:////tmp/p/prefect.db", Path("/tmp/p/prefect.db")),
        ("sqlite+aiosqlite:///:memory:", None),
        ("sqlite+aiosqlite:///file:db?mode=memory&cache=shared&uri=true", None),
        ("sqlite+aiosqlite:///file::memory:?cache=shared&uri=true", None),  # Prefect's tests
        ("sqlite+aiosqlite:///file:/tmp/p/prefect.db?uri=true", None),
        ("postgresql+asyncpg://postgres@127.0.0.1:5432/prefect", None),
    ],
)
def test_only_a_sqlite_file_is_migrated_here(url, expected):
    assert server_boot.sqlite_database(url) == expected


def test_nothing_is_migrated_when_prefect_is_told_not_to(tmp_path):
    database = tmp_path / "prefect.db"
    with temporary_settings(
        updates={
            "server.database.migrate_on_start": False,
            "server.database.connection_url": f"sqlite+aiosqlite:///{database}",
        }
    ):
        assert server_boot.migrate_sqlite() is False
    assert not database.exists()


def test_the_early_server_boots_through_it_from_any_directory(tmp_path):
    """The command runs ``-m tasks.server_boot``: importable from another working directory."""
    cmd = early_server.command(8)
    assert cmd[1:3] == ["-m", "tasks.server_boot"]
    code = "import tasks.server_boot as b; print(b.__file__)"
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, env=early_server.server_env(),
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert Path(proc.stdout.strip()) == ROOT / "tasks" / "server_boot.py"
