"""The transaction store: the system of record of cleaned, validated transactions.

Each night's ingestion appends to it; the retrain reads its rolling window from it. Two kinds:

- :class:`ParquetStore` (the embedded default, ``var/store``): a Parquet dataset partitioned by
  transaction date (``tx_date=YYYY-MM-DD/part-*.parquet``), each part written under a temporary
  name and renamed into place, with its manifest in ``_manifest.sqlite`` inside the folder;
- :class:`SqlStore` (``postgresql+psycopg://.../db#table``): one table keyed by TransactionId,
  rows and manifest entry committed in one transaction.

A TransactionId is stored once. A repeat with the same content (the same :func:`row_hashes`) is a
duplicate and is skipped; a repeat with other content is a conflict, returned with its reason for
quarantine and never stored. A rerun after a crash at any point therefore leaves every valid row
in the store exactly once: what was written before the crash is found again as duplicates.
"""

from __future__ import annotations

import os
import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq
from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Engine,
    Float,
    MetaData,
    String,
    Table,
    func,
    insert,
    select,
)
from sqlalchemy.engine import make_url

from credit.clean import FLOAT_COLUMNS, INT_COLUMNS, STRING_COLUMNS, TIME_COLUMN
from credit.paths import var_dir
from feed.manifest import Manifest, ManifestEntry
from registry.db import WRITE_OPTION, create_engine_for, safe_url
from schemas.settings import setting
from schemas.transactions import UTC_TIMESTAMP

STORE_ENV = "BATI_STORE_URL"
STORE_COLUMNS: tuple[str, ...] = (*STRING_COLUMNS, *FLOAT_COLUMNS, *INT_COLUMNS, TIME_COLUMN)
HASH_COLUMN = "row_hash"
PARTITION = "tx_date"
CONFLICT_REASON = "TransactionId already stored with different content"
BATCH_CONFLICT_REASON = "TransactionId repeated in the batch with different content"
_LOOKUP_CHUNK = 5_000


class StoreError(Exception):
    """The store cannot be opened or read."""


@dataclass(frozen=True)
class AppendResult:
    """What one append did: new rows stored, duplicates skipped, conflicts refused."""

    rows: int
    new: int
    duplicates: int
    conflicts: pd.DataFrame  # the refused rows, with a ``reason`` column

    @property
    def n_conflicts(self) -> int:
        return len(self.conflicts)


EntryFor = Callable[[AppendResult], ManifestEntry]


def canonical(tx: pd.DataFrame) -> pd.DataFrame:
    """The store's columns in its order and dtypes (str, float64, int64, UTC microseconds)."""
    missing = [c for c in STORE_COLUMNS if c not in tx.columns]
    if missing:
        raise StoreError(f"transactions lack the store's columns {missing}")
    out = tx.loc[:, list(STORE_COLUMNS)].copy()
    out[list(STRING_COLUMNS)] = out[list(STRING_COLUMNS)].astype("str")
    out[list(FLOAT_COLUMNS)] = out[list(FLOAT_COLUMNS)].astype("float64")
    out[list(INT_COLUMNS)] = out[list(INT_COLUMNS)].astype("int64")
    out[TIME_COLUMN] = pd.to_datetime(out[TIME_COLUMN], utc=True).astype(UTC_TIMESTAMP)
    return out.reset_index(drop=True)


def row_hashes(tx: pd.DataFrame) -> np.ndarray:
    """A 64-bit content hash per row of a :func:`canonical` frame (as int64)."""
    parts = {c: tx[c].to_numpy(dtype=object) for c in STRING_COLUMNS}
    parts.update({c: tx[c].to_numpy() for c in (*FLOAT_COLUMNS, *INT_COLUMNS)})
    parts[TIME_COLUMN] = tx[TIME_COLUMN].dt.as_unit("us").astype("int64").to_numpy()
    hashed = pd.util.hash_pandas_object(pd.DataFrame(parts), index=False)
    return hashed.to_numpy().view(np.int64)


class TransactionStore(ABC):
    """Append-once storage of transactions keyed by TransactionId, with its manifest."""

    manifest: Manifest

    @abstractmethod
    def describe(self) -> str:
        """Where the store is (passwords masked)."""

    @abstractmethod
    def _stored_hashes(self, ids: np.ndarray) -> pd.Series:
        """Stored ``row_hash`` by TransactionId for those of ``ids`` already stored."""

    @abstractmethod
    def _write(self, new: pd.DataFrame, entry: ManifestEntry | None) -> None:
        """Store ``new`` (canonical + hash) and record ``entry``, as atomically as the kind can."""

    @abstractmethod
    def read(
        self, start: pd.Timestamp | None = None, end: pd.Timestamp | None = None
    ) -> pd.DataFrame:
        """Stored transactions with ``start <= time < end``, sorted by time (canonical)."""

    def read_table(
        self, start: pd.Timestamp | None = None, end: pd.Timestamp | None = None
    ) -> pa.Table:
        """:meth:`read` as an Arrow table (the store's columns; order not guaranteed)."""
        return pa.Table.from_pandas(self.read(start, end), preserve_index=False)

    @abstractmethod
    def count(self) -> int:
        """Rows stored."""

    @abstractmethod
    def newest(self) -> pd.Timestamp | None:
        """The newest transaction time stored (None when empty)."""

    def append(self, tx: pd.DataFrame, entry_for: EntryFor | None = None) -> AppendResult:
        """Store the rows of ``tx`` not stored yet; record ``entry_for(result)`` with them."""
        frame = canonical(tx)
        frame[HASH_COLUMN] = row_hashes(frame)
        # Exact repeats inside the batch are duplicates; other repeats of an id conflict.
        exact = frame.duplicated(["TransactionId", HASH_COLUMN])
        batch = frame.loc[~exact]
        repeated = batch["TransactionId"].duplicated(keep=False)
        conflicts = [batch.loc[repeated].assign(reason=BATCH_CONFLICT_REASON)]
        batch = batch.loc[~repeated]
        stored = self._stored_hashes(batch["TransactionId"].to_numpy(dtype=object))
        known = batch["TransactionId"].map(stored)
        same = known.notna() & (known == batch[HASH_COLUMN])
        other = known.notna() & ~same
        conflicts.append(batch.loc[other].assign(reason=CONFLICT_REASON))
        new = batch.loc[known.isna()].reset_index(drop=True)
        refused = pd.concat(conflicts, ignore_index=True).drop(columns=[HASH_COLUMN])
        result = AppendResult(
            rows=len(frame),
            new=len(new),
            duplicates=int(exact.sum() + same.sum()),
            conflicts=refused,
        )
        self._write(new, entry_for(result) if entry_for else None)
        return result


# --------------------------------------------------------------------------------- Parquet ---


class ParquetStore(TransactionStore):
    """A Parquet dataset partitioned by transaction date, manifest inside the folder."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root).expanduser().resolve()
        if self.root.exists() and not self.root.is_dir():
            raise StoreError(f"store {self.root} is not a folder")
        self.root.mkdir(parents=True, exist_ok=True)
        engine = create_engine_for(f"sqlite:///{self.root / '_manifest.sqlite'}")
        self.manifest = Manifest(engine)

    def describe(self) -> str:
        return str(self.root)

    def _dataset(self) -> ds.Dataset | None:
        if not any(self.root.glob(f"{PARTITION}=*/part-*.parquet")):
            return None
        part = ds.partitioning(pa.schema([(PARTITION, pa.string())]), flavor="hive")
        return ds.dataset(self.root, format="parquet", partitioning=part)

    def _stored_hashes(self, ids: np.ndarray) -> pd.Series:
        dataset = self._dataset()
        if dataset is None or len(ids) == 0:
            return pd.Series(dtype="int64")
        wanted = pc.field("TransactionId").isin(pa.array(ids, type=pa.string()))
        table = dataset.to_table(columns=["TransactionId", HASH_COLUMN], filter=wanted)
        return pd.Series(
            table.column(HASH_COLUMN).to_numpy(),
            index=table.column("TransactionId").to_numpy(zero_copy_only=False),
        )

    def _write(self, new: pd.DataFrame, entry: ManifestEntry | None) -> None:
        if len(new):
            batch = uuid.uuid4().hex[:12]  # unique per attempt: a rerun never overwrites a part
            dates = new[TIME_COLUMN].dt.strftime("%Y-%m-%d")
            for day, rows in new.groupby(dates, sort=True):
                folder = self.root / f"{PARTITION}={day}"
                folder.mkdir(exist_ok=True)
                tmp = folder / f".tmp-{batch}.parquet"
                table = pa.Table.from_pandas(rows.reset_index(drop=True), preserve_index=False)
                pq.write_table(table, tmp)
                os.replace(tmp, folder / f"part-{batch}.parquet")
        if entry is not None:
            self.manifest.record(entry)

    def read(
        self, start: pd.Timestamp | None = None, end: pd.Timestamp | None = None
    ) -> pd.DataFrame:
        frame = self.read_table(start, end).to_pandas()
        return canonical(frame).sort_values(TIME_COLUMN, kind="stable", ignore_index=True)

    def read_table(
        self, start: pd.Timestamp | None = None, end: pd.Timestamp | None = None
    ) -> pa.Table:
        dataset = self._dataset()
        if dataset is None:
            empty = canonical(pd.DataFrame(columns=list(STORE_COLUMNS)))
            return pa.Table.from_pandas(empty, preserve_index=False)
        cond = None
        for bound, op in ((start, "ge"), (end, "lt")):
            if bound is None:
                continue
            ts = pd.Timestamp(bound)
            ts = ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
            day = ts.strftime("%Y-%m-%d")
            # The partition test prunes folders; the time test is exact.
            part = pc.field(PARTITION) >= day if op == "ge" else pc.field(PARTITION) <= day
            time = getattr(pc.field(TIME_COLUMN), f"__{op}__")(
                pa.scalar(ts, pa.timestamp("us", "UTC"))
            )
            test = part & time
            cond = test if cond is None else cond & test
        return dataset.to_table(columns=list(STORE_COLUMNS), filter=cond)

    def count(self) -> int:
        dataset = self._dataset()
        return 0 if dataset is None else dataset.count_rows()

    def newest(self) -> pd.Timestamp | None:
        days = sorted(p.name for p in self.root.glob(f"{PARTITION}=*") if any(p.glob("part-*")))
        if not days:
            return None
        last = self.root / days[-1]
        times = [
            pq.read_table(f, columns=[TIME_COLUMN]).column(TIME_COLUMN) for f in last.glob("part-*")
        ]
        return max(pd.Timestamp(pc.max(t).as_py()) for t in times)


# ------------------------------------------------------------------------------------- SQL ---


def _sql_table(metadata: MetaData, name: str) -> Table:
    cols = [Column("TransactionId", String(64), primary_key=True)]
    cols += [Column(c, String(64), nullable=False) for c in STRING_COLUMNS[1:]]
    cols += [Column(c, Float, nullable=False) for c in FLOAT_COLUMNS]
    cols += [Column(c, BigInteger, nullable=False) for c in INT_COLUMNS]
    cols += [
        Column(TIME_COLUMN, DateTime(timezone=True), nullable=False, index=True),
        Column(HASH_COLUMN, BigInteger, nullable=False),
    ]
    return Table(name, metadata, *cols)


class SqlStore(TransactionStore):
    """One table keyed by TransactionId; rows and manifest entry committed together."""

    def __init__(self, url: str, table: str = "transactions") -> None:
        self.url = url
        self.engine: Engine = create_engine_for(url)
        self.metadata = MetaData()
        self.table = _sql_table(self.metadata, table)
        self.metadata.create_all(self.engine, checkfirst=True)
        self.manifest = Manifest(self.engine, f"{table}_manifest")

    def describe(self) -> str:
        return f"{safe_url(self.url)}#{self.table.name}"

    def _stored_hashes(self, ids: np.ndarray) -> pd.Series:
        t = self.table
        found: dict[str, int] = {}
        with self.engine.connect() as conn:
            for i in range(0, len(ids), _LOOKUP_CHUNK):
                chunk = [str(x) for x in ids[i : i + _LOOKUP_CHUNK]]
                stmt = select(t.c.TransactionId, t.c[HASH_COLUMN]).where(
                    t.c.TransactionId.in_(chunk)
                )
                found.update(((str(k), int(v)) for k, v in conn.execute(stmt)))
        return pd.Series(found, dtype="int64")

    def _write(self, new: pd.DataFrame, entry: ManifestEntry | None) -> None:
        records = new.assign(**{TIME_COLUMN: new[TIME_COLUMN].dt.to_pydatetime()})
        rows = records.to_dict("records")
        writer = self.engine.connect().execution_options(**{WRITE_OPTION: True})
        with writer as conn, conn.begin():
            for i in range(0, len(rows), 10_000):
                conn.execute(insert(self.table), rows[i : i + 10_000])
            if entry is not None:
                self.manifest.record(entry, conn)

    def read(
        self, start: pd.Timestamp | None = None, end: pd.Timestamp | None = None
    ) -> pd.DataFrame:
        t = self.table
        stmt = select(*[t.c[c] for c in STORE_COLUMNS])
        if start is not None:
            stmt = stmt.where(t.c[TIME_COLUMN] >= pd.Timestamp(start).to_pydatetime())
        if end is not None:
            stmt = stmt.where(t.c[TIME_COLUMN] < pd.Timestamp(end).to_pydatetime())
        with self.engine.connect() as conn:
            frame = pd.DataFrame(conn.execute(stmt).all(), columns=list(STORE_COLUMNS))
        return canonical(frame).sort_values(TIME_COLUMN, kind="stable", ignore_index=True)

    def count(self) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(self.table)).scalar())

    def newest(self) -> pd.Timestamp | None:
        with self.engine.connect() as conn:
            value = conn.execute(select(func.max(self.table.c[TIME_COLUMN]))).scalar()
        if value is None:
            return None
        ts = pd.Timestamp(value)
        return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")


# ----------------------------------------------------------------------------------- open ---


def default_store_url() -> str:
    """``BATI_STORE_URL`` if set, else the Parquet folder ``<var>/store``."""
    return setting("store_url") or str(var_dir() / "store")


def open_store(url: str | None = None) -> TransactionStore:
    """A folder path opens a :class:`ParquetStore`; ``dialect://...#table`` a :class:`SqlStore`."""
    url = url or default_store_url()
    if "://" not in url:
        return ParquetStore(url)
    base, _, table = url.partition("#")
    try:
        make_url(base)
    except Exception as exc:  # noqa: BLE001 - any parse failure is the same user error
        raise StoreError(f"store URL is not a folder or a SQLAlchemy URL: {exc}") from None
    if not table or not table.isidentifier():
        raise StoreError("a SQL store URL names its table after '#': URL#table")
    return SqlStore(base, table)
