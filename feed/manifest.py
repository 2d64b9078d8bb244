"""The ingestion manifest: one row per landed file (or SQL batch) the feed has taken in.

A file is known by the sha256 of its content: a file whose hash is in the manifest is skipped,
whatever its name; a known name with new content is a new file. The manifest lives with the
transaction store it describes (the same database for a SQL store, ``_manifest.sqlite`` inside a
Parquet store), so the two cannot drift apart: deleting the store forgets what it ingested.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    Column,
    DateTime,
    Engine,
    Integer,
    MetaData,
    String,
    Table,
    insert,
    select,
)

from registry.db import WRITE_OPTION


@dataclass(frozen=True)
class ManifestEntry:
    """What one landed file (or one SQL batch) contributed to the store."""

    path: str
    sha256: str
    size: int
    rows: int
    valid: int
    quarantined: int
    new: int
    duplicates: int
    conflicts: int
    run_id: str
    ingested_at: datetime
    watermark: str | None = None

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["ingested_at"] = self.ingested_at.isoformat()
        return out


def manifest_table(metadata: MetaData, name: str) -> Table:
    """The manifest's table definition under ``name``."""
    return Table(
        name,
        metadata,
        Column("id", Integer, primary_key=True, autoincrement=True),
        Column("path", String(1024), nullable=False, index=True),
        Column("sha256", String(64), nullable=False, unique=True),
        Column("size", Integer, nullable=False),
        Column("rows", Integer, nullable=False),
        Column("valid", Integer, nullable=False),
        Column("quarantined", Integer, nullable=False),
        Column("new", Integer, nullable=False),
        Column("duplicates", Integer, nullable=False),
        Column("conflicts", Integer, nullable=False),
        Column("run_id", String(64), nullable=False),
        Column("ingested_at", DateTime(timezone=True), nullable=False),
        Column("watermark", String(64), nullable=True),
    )


class Manifest:
    """Read and append manifest rows; ``record`` may share a caller's transaction."""

    def __init__(self, engine: Engine, table_name: str = "ingest_manifest") -> None:
        self.engine = engine
        self.metadata = MetaData()
        self.table = manifest_table(self.metadata, table_name)
        self.metadata.create_all(engine, checkfirst=True)

    def known_hashes(self) -> set[str]:
        with self.engine.connect() as conn:
            return set(conn.execute(select(self.table.c.sha256)).scalars())

    def entries(self) -> list[ManifestEntry]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(self.table).order_by(self.table.c.id)).mappings().all()
        return [self._entry(r) for r in rows]

    def paths(self) -> set[str]:
        with self.engine.connect() as conn:
            return set(conn.execute(select(self.table.c.path)).scalars())

    def last_watermark(self, path: str) -> str | None:
        """The newest watermark recorded for a SQL source (``path`` names it)."""
        stmt = (
            select(self.table.c.watermark)
            .where(self.table.c.path == path, self.table.c.watermark.is_not(None))
            .order_by(self.table.c.id.desc())
            .limit(1)
        )
        with self.engine.connect() as conn:
            return conn.execute(stmt).scalar()

    def record(self, entry: ManifestEntry, conn: Any | None = None) -> None:
        """Append ``entry``; inside ``conn``'s transaction when given (atomic with the rows)."""
        values = asdict(entry)
        if conn is not None:
            conn.execute(insert(self.table).values(**values))
            return
        with self.engine.connect().execution_options(**{WRITE_OPTION: True}) as c, c.begin():
            c.execute(insert(self.table).values(**values))

    @staticmethod
    def _entry(row: Any) -> ManifestEntry:
        data = {k: row[k] for k in ManifestEntry.__dataclass_fields__}
        if data["ingested_at"].tzinfo is None:
            data["ingested_at"] = data["ingested_at"].replace(tzinfo=UTC)
        return ManifestEntry(**data)


def now() -> datetime:
    return datetime.now(UTC)
