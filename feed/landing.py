"""Landing sources: where the bank's new transactions arrive before the nightly ingestion.

- :class:`LandingFolder` (``BATI_LANDING`` or ``--landing DIR``): CSV or Parquet files under any
  names. A file is pending when its sha256 is not in the store's manifest; a known name with new
  content is pending too, and reported as changed. Files whose names begin with ``.`` or ``_``
  or end in ``.tmp``/``.part`` are still being written and wait for the next night; symbolic
  links are not followed (a link may point anywhere, or back into the folder), and are reported.
- :class:`SqlLanding` (``URL#table``): the rows of a source table from the last watermark on
  (the newest TransactionStartTime taken so far, inclusive: rows stamped in the same second as
  the watermark but landed later are not missed, and the store's TransactionId check makes the
  overlap harmless). A batch is known by the fingerprint of its rows.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
from sqlalchemy import DateTime, MetaData, Table, select
from sqlalchemy.engine import make_url

from credit.sources import fingerprint_file
from feed.manifest import Manifest
from registry.db import create_engine_for, safe_url

LANDING_ENV = "BATI_LANDING"
SUFFIXES = (".csv", ".parquet")  # what credit.sources reads
_WRITING = (".tmp", ".part", ".crdownload")


@dataclass(frozen=True)
class LandedFile:
    """One file waiting to be ingested."""

    path: Path
    sha256: str
    size: int
    changed: bool  # a name the manifest knows, with new content


@dataclass
class LandingScan:
    """What a look at the landing folder found."""

    pending: list[LandedFile] = field(default_factory=list)
    already_ingested: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)  # name -> why


class LandingFolder:
    """A folder new transaction files land in (searched recursively, links never followed)."""

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder).expanduser()
        if not self.folder.is_dir():
            raise FileNotFoundError(
                f"landing folder {self.folder} does not exist: set {LANDING_ENV} or --landing"
            )

    def scan(self, manifest: Manifest) -> LandingScan:
        """Pending files in name order, with what was skipped and why."""
        known = manifest.known_hashes()
        names = {Path(p).name for p in manifest.paths()}
        scan = LandingScan()
        for dirpath, dirnames, filenames in os.walk(self.folder, followlinks=False):
            base = Path(dirpath)
            for d in list(dirnames):
                if (base / d).is_symlink():
                    scan.skipped[str((base / d).relative_to(self.folder))] = "symbolic link"
                    dirnames.remove(d)
                elif d.startswith((".", "_")):
                    dirnames.remove(d)
            dirnames.sort()
            for name in sorted(filenames):
                path = base / name
                rel = str(path.relative_to(self.folder))
                if path.is_symlink():
                    scan.skipped[rel] = "symbolic link"
                elif name.startswith((".", "_")) or name.endswith(_WRITING):
                    scan.skipped[rel] = "still being written (hidden or temporary name)"
                elif not name.lower().endswith(SUFFIXES):
                    scan.skipped[rel] = "not a CSV or Parquet file"
                else:
                    digest = fingerprint_file(path)
                    if digest in known:
                        scan.already_ingested.append(rel)
                    else:
                        size = path.stat().st_size
                        scan.pending.append(LandedFile(path, digest, size, name in names))
        return scan


@dataclass(frozen=True)
class SqlBatch:
    """Rows read from a SQL source past the watermark."""

    source: str  # the URL (password masked) and table
    raw: pd.DataFrame
    since: str | None
    watermark: str | None  # the newest TransactionStartTime of ``raw`` (ISO text)


class SqlLanding:
    """A source table read past a watermark kept in the store's manifest."""

    TIME = "TransactionStartTime"

    def __init__(self, url: str) -> None:
        base, _, table = url.partition("#")
        make_url(base)  # a malformed URL fails here, with SQLAlchemy's message
        if not table:
            raise ValueError("a SQL landing source names its table after '#': URL#table")
        self.base, self.table_name = base, table
        self.source = f"{safe_url(base)}#{table}"

    def read(self, manifest: Manifest) -> SqlBatch:
        """The rows at or after the manifest's watermark for this source (all on the first run)."""
        since = manifest.last_watermark(self.source)
        engine = create_engine_for(self.base)
        try:
            table = Table(self.table_name, MetaData(), autoload_with=engine)
            column = table.c[self.TIME]
            stmt = select(table)
            typed = isinstance(column.type, DateTime)
            if since is not None:
                # Text stamps compare as text: from the watermark's day on ('2018-12-17 18:45'
                # sorts before '2018-12-17T17:37'), then exactly once parsed, below.
                bound = pd.Timestamp(since).to_pydatetime() if typed else since[:10]
                stmt = stmt.where(column >= bound)
            with engine.connect() as conn:
                raw = pd.read_sql(stmt, conn)
        finally:
            engine.dispose()
        if since is not None and not typed and len(raw):
            stamps = pd.to_datetime(raw[self.TIME], utc=True, errors="coerce", format="ISO8601")
            raw = raw.loc[stamps.isna() | (stamps >= pd.Timestamp(since))].reset_index(drop=True)
        watermark = None
        if len(raw):
            stamps = pd.to_datetime(raw[self.TIME], utc=True, errors="coerce").dropna()
            if len(stamps):
                watermark = stamps.max().strftime("%Y-%m-%dT%H:%M:%SZ")
        return SqlBatch(self.source, raw, since, watermark or since)
