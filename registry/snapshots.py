"""Feature snapshots stored typed and columnar, and their publication.

A snapshot is a header row (``snapshots``) plus Parquet parts of up to :data:`PART_ROWS`
customers each (``snapshot_parts``), sorted by customer id. A run writes its snapshot
unpublished; :func:`publish_snapshot` (or ``Registry.promote_if_better(publish_snapshot=...)``,
in the promotion's own transaction) makes it the served one. Readers of "the" snapshot
(:func:`read_feature_snapshot`, :func:`served_snapshot_id`) only ever see published snapshots:
the latest ``as_of``, then the latest published. A killed or failed run's snapshot is never
served and :func:`prune_snapshots` removes it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from sqlalchemy import Connection, Engine, Select, and_, delete, insert, or_, select, update
from sqlalchemy.orm import Session

from registry.access import (
    as_utc,
    engine_of,
    fetch_blob,
    frame_to_parquet,
    parquet_table,
    write_connection,
)
from registry.errors import RegistryError
from registry.models import Snapshot, SnapshotPart, utcnow

if TYPE_CHECKING:
    from registry.core import Registry

SNAPSHOT_INDEX_NAME = "CustomerId"
#: Customers per Parquet part (about 30 MB for 80 float columns).
PART_ROWS = 50_000
#: Unpublished snapshots younger than this are assumed to belong to a running flow.
UNPUBLISHED_GRACE = timedelta(hours=24)

_S = Snapshot.__table__
_P = SnapshotPart.__table__
#: A date as the functions here accept it.
When = datetime | str | pd.Timestamp


class SnapshotNotFound(RegistryError, LookupError):
    """No snapshot with that id (or none for that run)."""


@dataclass(frozen=True)
class SnapshotInfo:
    """The header of one stored snapshot (never its data)."""

    id: int
    run_id: str
    as_of: datetime
    feature_version: str | None
    model_name: str | None
    n_customers: int
    n_parts: int
    columns: list[dict[str, str]]
    sha256: str
    size_bytes: int
    created_at: datetime
    published_at: datetime | None

    @property
    def published(self) -> bool:
        return self.published_at is not None

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly dict."""
        out = asdict(self)
        for key in ("as_of", "created_at", "published_at"):
            out[key] = None if out[key] is None else out[key].isoformat()
        return out


def _info(row: Any) -> SnapshotInfo:
    return SnapshotInfo(**{k: getattr(row, k) for k in SnapshotInfo.__dataclass_fields__})


# -- encoding ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class EncodedPart:
    """One Parquet part of a snapshot (a ``snapshot_parts`` row but its ``snapshot_id``)."""

    part: int
    n_rows: int
    first_customer: str
    last_customer: str
    data: bytes


def encode_parts(df: pd.DataFrame, part_rows: int = PART_ROWS) -> Iterator[EncodedPart]:
    """``df`` (indexed by customer id) sorted by customer id, as Parquet parts (lazily: one
    part's bytes in memory at a time)."""
    ids = df.index.astype("str")
    if ids.has_duplicates:
        raise ValueError("feature snapshot index (customer id) has duplicates")
    frame = df.set_axis(pd.Index(ids, name=SNAPSHOT_INDEX_NAME), axis=0, copy=False)
    order = None if ids.is_monotonic_increasing else np.argsort(ids.to_numpy(), kind="stable")
    for number, start in enumerate(range(0, len(frame), part_rows)):
        rows = slice(start, start + part_rows)
        part = frame.iloc[rows] if order is None else frame.iloc[order[rows]]
        yield EncodedPart(
            number, len(part), str(part.index[0]), str(part.index[-1]), frame_to_parquet(part)
        )


def column_types(df: pd.DataFrame) -> list[dict[str, str]]:
    """Name and dtype of every column (the header's ``columns``)."""
    return [{"name": str(c), "dtype": str(t)} for c, t in df.dtypes.items()]


def insert_snapshot(
    conn: Connection,
    df: pd.DataFrame,
    *,
    as_of: datetime,
    run_id: str,
    feature_version: str | None = None,
    model_name: str | None = None,
    publish: bool = False,
    part_rows: int = PART_ROWS,
) -> int:
    """Insert a snapshot in the caller's transaction; returns its id."""
    now = utcnow()
    snapshot_id = conn.execute(
        insert(_S)
        .values(
            run_id=str(run_id),
            as_of=as_of,
            feature_version=feature_version,
            model_name=model_name,
            n_customers=len(df),
            n_parts=0,
            columns=column_types(df),
            sha256="",
            size_bytes=0,
            created_at=now,
            published_at=now if publish else None,
        )
        .returning(_S.c.id)
    ).scalar_one()
    digest, size, n_parts = hashlib.sha256(), 0, 0
    for part in encode_parts(df, part_rows):
        conn.execute(insert(_P).values(snapshot_id=snapshot_id, **asdict(part)))
        digest.update(part.data)
        size += len(part.data)
        n_parts += 1
    conn.execute(
        update(_S)
        .where(_S.c.id == snapshot_id)
        .values(n_parts=n_parts, sha256=digest.hexdigest(), size_bytes=size)
    )
    return int(snapshot_id)


# -- writing and publishing ----------------------------------------------------------------------
def write_snapshot(
    target: Registry | Engine, df: pd.DataFrame, as_of: When, run_id: str, **options: Any
) -> SnapshotInfo:
    """Store one feature vector per customer (``df`` indexed by customer id) as Parquet parts,
    in one transaction; unpublished unless ``publish=True``. Returns its header. ``options``:
    those of :func:`insert_snapshot` (``feature_version``, ``model_name``, ``publish``,
    ``part_rows``)."""
    with write_connection(target) as conn, conn.begin():
        snapshot_id = insert_snapshot(conn, df, as_of=as_utc(as_of), run_id=run_id, **options)
        return _info(conn.execute(select(_S).where(_S.c.id == snapshot_id)).one())


def mark_published(conn: Connection | Session, snapshot: int | str) -> int:
    """Publish snapshot ``snapshot`` (an id, or a run id: that run's latest snapshot) in the
    caller's transaction; idempotent. Returns the snapshot id."""
    if isinstance(snapshot, bool) or not isinstance(snapshot, int | str | np.integer):
        raise TypeError("snapshot must be a snapshot id (int) or a run id (str)")
    if isinstance(snapshot, str):
        snapshot_id = conn.execute(
            select(_S.c.id).where(_S.c.run_id == snapshot).order_by(_S.c.id.desc()).limit(1)
        ).scalar_one_or_none()
        if snapshot_id is None:
            raise SnapshotNotFound(f"run {snapshot!r} stored no feature snapshot")
    else:
        snapshot_id = int(snapshot)
    done = conn.execute(
        update(_S)
        .where(_S.c.id == snapshot_id, _S.c.published_at.is_(None))
        .values(published_at=utcnow())
    )
    if (
        done.rowcount == 0
        and conn.execute(select(_S.c.id).where(_S.c.id == snapshot_id)).scalar_one_or_none() is None
    ):
        raise SnapshotNotFound(f"no feature snapshot {snapshot_id}")
    return int(snapshot_id)


def publish_snapshot(target: Registry | Engine, snapshot: int | str) -> SnapshotInfo:
    """Make a snapshot (an id, or a run id: that run's latest) servable, in one transaction."""
    with write_connection(target) as conn, conn.begin():
        snapshot_id = mark_published(conn, snapshot)
        return _info(conn.execute(select(_S).where(_S.c.id == snapshot_id)).one())


# -- reading -------------------------------------------------------------------------------------
def _served_query(as_of: datetime | None = None) -> Select[Any]:
    stmt = select(_S).where(_S.c.published_at.is_not(None))
    if as_of is not None:
        stmt = stmt.where(_S.c.as_of == as_of)
    return stmt.order_by(_S.c.as_of.desc(), _S.c.published_at.desc(), _S.c.id.desc()).limit(1)


def served_snapshot(
    target: Registry | Engine, as_of: datetime | str | pd.Timestamp | None = None
) -> SnapshotInfo | None:
    """The served snapshot's header: the published one with the latest ``as_of`` (then the
    latest published), or the latest published at ``as_of``; ``None`` when there is none."""
    when = None if as_of is None else as_utc(as_of)
    with engine_of(target).connect() as conn:
        row = conn.execute(_served_query(when)).one_or_none()
    return None if row is None else _info(row)


def served_snapshot_id(target: Registry | Engine) -> int | None:
    """The id of the served snapshot (one indexed query: the API's reload check)."""
    stmt = _served_query().with_only_columns(_S.c.id)
    with engine_of(target).connect() as conn:
        return conn.execute(stmt).scalar_one_or_none()


def list_snapshots(
    target: Registry | Engine, *, run_id: str | None = None, published: bool | None = None
) -> list[SnapshotInfo]:
    """Snapshot headers, oldest first (of one run; only published or unpublished ones)."""
    stmt = select(_S).order_by(_S.c.id)
    if run_id is not None:
        stmt = stmt.where(_S.c.run_id == run_id)
    if published is not None:
        stmt = stmt.where(
            _S.c.published_at.is_not(None) if published else _S.c.published_at.is_(None)
        )
    with engine_of(target).connect() as conn:
        return [_info(r) for r in conn.execute(stmt)]


def snapshot_dates(target: Registry | Engine) -> list[datetime]:
    """The distinct ``as_of`` dates of published snapshots, oldest first."""
    stmt = select(_S.c.as_of).where(_S.c.published_at.is_not(None)).distinct().order_by(_S.c.as_of)
    with engine_of(target).connect() as conn:
        return list(conn.scalars(stmt))


def _empty() -> pd.DataFrame:
    return pd.DataFrame(index=pd.Index([], name=SNAPSHOT_INDEX_NAME, dtype="str"))


def _read(
    conn: Connection,
    info: SnapshotInfo,
    customers: Iterable[str] | None,
    columns: list[str] | None,
    parts: Iterable[int] | None = None,
) -> pd.DataFrame:
    wanted = None if customers is None else sorted({str(c) for c in customers})
    stmt = select(_P.c.part).where(_P.c.snapshot_id == info.id).order_by(_P.c.part)
    if parts is not None:
        stmt = stmt.where(_P.c.part.in_([int(p) for p in parts]))
    if wanted is not None:
        if not wanted:
            return _empty()
        # A few customers: only the parts whose id range holds one; many: the overall range.
        stmt = stmt.where(
            or_(*(and_(_P.c.first_customer <= c, _P.c.last_customer >= c) for c in wanted))
            if len(wanted) <= 100
            else and_(_P.c.last_customer >= wanted[0], _P.c.first_customer <= wanted[-1])
        )
    tables = []
    for part in conn.scalars(stmt).all():
        blob = fetch_blob(
            conn,
            "SELECT data FROM snapshot_parts WHERE snapshot_id = :s AND part = :p",
            {"s": info.id, "p": part},
        )
        if blob is None:
            raise SnapshotNotFound(f"part {part} of feature snapshot {info.id} is missing")
        tables.append(parquet_table(blob, columns))
        del blob
    if not tables:
        return _empty()
    table = pa.concat_tables(tables, promote_options="permissive") if len(tables) > 1 else tables[0]
    del tables
    frame = table.to_pandas(self_destruct=True, split_blocks=True)
    del table
    pa.default_memory_pool().release_unused()  # decode buffers back to the OS (API workers)
    if wanted is not None:
        frame = frame.loc[frame.index.intersection(pd.Index(wanted, dtype="str"))]
    return frame


def read_snapshot(
    target: Registry | Engine,
    snapshot_id: int | None = None,
    *,
    customers: Iterable[str] | None = None,
    columns: list[str] | None = None,
    parts: Iterable[int] | None = None,
) -> pd.DataFrame:
    """One snapshot (the served one when ``snapshot_id`` is ``None``): index = customer id
    (sorted), typed columns as written; only ``customers`` (reading only the parts that can
    hold them), ``columns`` and the Parquet ``parts`` (numbers ``0 .. n_parts - 1``: a
    streaming reader's slice of :data:`PART_ROWS` customers each) when given.

    ``attrs``: ``as_of``, ``run_id``, ``snapshot_id``, ``feature_version``, ``published_at``.
    An empty frame when nothing is served.
    """
    with engine_of(target).connect() as conn:
        stmt = _served_query() if snapshot_id is None else select(_S).where(_S.c.id == snapshot_id)
        row = conn.execute(stmt).one_or_none()
        if row is None:
            if snapshot_id is not None:
                raise SnapshotNotFound(f"no feature snapshot {snapshot_id}")
            return _empty()
        info = _info(row)
        frame = _read(conn, info, customers, columns, parts)
    frame.attrs.update(
        as_of=pd.Timestamp(info.as_of),
        run_id=info.run_id,
        snapshot_id=info.id,
        feature_version=info.feature_version,
        published_at=None if info.published_at is None else pd.Timestamp(info.published_at),
    )
    return frame


def _part_frame(blob: bytes, columns: list[str]) -> pd.DataFrame:
    """One Parquet part as a frame of those of ``columns`` it holds (index = customer id)."""
    held = set(pq.ParquetFile(pa.BufferReader(blob)).schema_arrow.names)
    table = parquet_table(blob, [c for c in columns if c in held])
    return table.to_pandas(self_destruct=True, split_blocks=True)


def iter_snapshot_parts(
    target: Registry | Engine, snapshot_id: int | None = None, *, columns: list[str]
) -> Iterator[pd.DataFrame]:
    """The Parquet parts of one snapshot (the served one when ``snapshot_id`` is ``None``), one
    frame of at most :data:`PART_ROWS` customers at a time, holding those of ``columns`` the
    part has: what a reader that aggregates needs, without the whole snapshot in memory.
    :class:`SnapshotNotFound` (at the call) when ``snapshot_id`` does not exist; nothing when
    no snapshot is served."""
    engine = engine_of(target)
    with engine.connect() as conn:
        stmt = _served_query() if snapshot_id is None else select(_S).where(_S.c.id == snapshot_id)
        row = conn.execute(stmt).one_or_none()
        if row is None and snapshot_id is not None:
            raise SnapshotNotFound(f"no feature snapshot {snapshot_id}")
        parts = (
            []
            if row is None
            else list(
                conn.scalars(
                    select(_P.c.part).where(_P.c.snapshot_id == row.id).order_by(_P.c.part)
                )
            )
        )
    return _iter_parts(engine, None if row is None else int(row.id), parts, list(columns))


def _iter_parts(
    engine: Engine, snapshot_id: int | None, parts: list[int], columns: list[str]
) -> Iterator[pd.DataFrame]:
    for part in parts:
        with engine.connect() as conn:  # one short read per part, no connection held between
            blob = fetch_blob(
                conn,
                "SELECT data FROM snapshot_parts WHERE snapshot_id = :s AND part = :p",
                {"s": snapshot_id, "p": part},
            )
        if blob is None:
            raise SnapshotNotFound(f"part {part} of feature snapshot {snapshot_id} is missing")
        yield _part_frame(blob, columns)
        del blob


def prune_snapshots(
    target: Registry | Engine,
    *,
    keep_published: int = 7,
    unpublished_grace: timedelta = UNPUBLISHED_GRACE,
) -> int:
    """Delete unpublished snapshots older than ``unpublished_grace`` (killed or failed runs)
    and published ones beyond the newest ``keep_published`` (never the served one); returns
    how many were deleted."""
    cutoff = utcnow() - unpublished_grace
    with write_connection(target) as conn, conn.begin():
        served = conn.execute(_served_query().with_only_columns(_S.c.id)).scalar_one_or_none()
        published = conn.scalars(
            select(_S.c.id)
            .where(_S.c.published_at.is_not(None))
            .order_by(_S.c.published_at.desc(), _S.c.id.desc())
        ).all()
        stale = conn.scalars(
            select(_S.c.id).where(_S.c.published_at.is_(None), _S.c.created_at < cutoff)
        ).all()
        doomed = [i for i in [*stale, *published[max(keep_published, 1) :]] if i != served]
        if doomed:
            conn.execute(delete(_P).where(_P.c.snapshot_id.in_(doomed)))
            conn.execute(delete(_S).where(_S.c.id.in_(doomed)))
    return len(doomed)


# -- the interface used before revision 0003 ---------------------------------------------------
def write_feature_snapshot(
    target: Registry | Engine, df: pd.DataFrame, as_of: When, run_id: str, **options: Any
) -> int:
    """Store a snapshot (see :func:`write_snapshot`); returns the number of customers.

    ``publish=True`` (the default, today's behaviour) serves it at once; flows that publish on
    completion pass ``publish=False`` and call :func:`publish_snapshot`. ``options``:
    ``publish``, ``model_name`` and ``feature_version``.
    """
    options.setdefault("publish", True)
    return write_snapshot(target, df, as_of, run_id, **options).n_customers


def read_feature_snapshot(
    target: Registry | Engine, as_of: datetime | str | pd.Timestamp | None = None
) -> pd.DataFrame:
    """The served snapshot (or the latest published one as of ``as_of``): index = customer
    id, typed feature columns; ``attrs`` as :func:`read_snapshot`. Empty when none."""
    if as_of is None:
        return read_snapshot(target)
    info = served_snapshot(target, as_of)
    return _empty() if info is None else read_snapshot(target, info.id)
