"""Operational tables shared by flows and the API: quarantine, feature snapshots, scores,
prediction log. Bulk inserts in one transaction each; every function accepts a
:class:`~registry.core.Registry` (schema migrated on first use) or a bare SQLAlchemy Engine.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from sqlalchemy import Connection, Engine, delete, func, insert, select

from registry import db
from registry.models import FeatureSnapshot, PredictionLog, QuarantineRow, Score, utcnow

if TYPE_CHECKING:
    from registry.core import Registry

SNAPSHOT_INDEX_NAME = "CustomerId"


def _engine(target: Registry | Engine) -> Engine:
    if isinstance(target, Engine):
        return target
    target.ensure_schema()
    return target.engine


def _write_conn(target: Registry | Engine) -> Connection:
    return _engine(target).connect().execution_options(**{db.WRITE_OPTION: True})


def _as_utc(value: Any) -> datetime:
    ts = pd.Timestamp(value)
    ts = ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
    return ts.to_pydatetime()


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, datetime | date | pd.Timestamp):
        return value.isoformat()
    return str(value)


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows as dicts of plain Python values, NaN/NaT as None."""
    obj = frame.astype(object)
    return obj.where(frame.notna(), None).to_dict(orient="records")


# -- quarantine ------------------------------------------------------------------------------
def write_quarantine(target: Registry | Engine, run_id: str, source: str, df: pd.DataFrame) -> int:
    """Insert rejected rows/cells (columns ``row_number, column, check, value``); returns count."""
    if df is None or len(df) == 0:
        return 0
    missing = {"row_number", "check"} - set(df.columns)
    if missing:
        raise ValueError(f"quarantine frame lacks columns {sorted(missing)}")
    frame = pd.DataFrame(
        {
            "row_number": pd.to_numeric(df["row_number"], errors="coerce").astype("Int64"),
            "column": df["column"].astype("string") if "column" in df else pd.NA,
            "check": df["check"].astype("string"),
            "value": df["value"].astype("string") if "value" in df else pd.NA,
        },
        index=df.index,
    )
    rows = _records(frame)
    now = utcnow()
    for row in rows:
        row.update(run_id=str(run_id), source=str(source), created_at=now)
    with _write_conn(target) as conn, conn.begin():
        conn.execute(insert(QuarantineRow.__table__), rows)
    return len(rows)


def read_quarantine(target: Registry | Engine, run_id: str | None = None) -> pd.DataFrame:
    """Quarantined rows (of one run), columns run_id, source, row_number, column, check, value."""
    t = QuarantineRow.__table__
    stmt = select(
        t.c.run_id, t.c.source, t.c.row_number, t.c.column, t.c.check, t.c.value, t.c.created_at
    ).order_by(t.c.id)
    if run_id is not None:
        stmt = stmt.where(t.c.run_id == run_id)
    with _engine(target).connect() as conn:
        return pd.DataFrame(
            conn.execute(stmt).mappings().all(), columns=list(stmt.selected_columns.keys())
        )


# -- feature snapshots -------------------------------------------------------------------------
def write_feature_snapshot(
    target: Registry | Engine,
    df: pd.DataFrame,
    as_of: datetime | str | pd.Timestamp,
    run_id: str,
    *,
    model_name: str | None = None,
) -> int:
    """Store one feature vector per customer (``df`` indexed by customer id) as of ``as_of``.

    Rows previously stored for the same ``as_of`` are replaced in the same transaction.
    Values are stored as exact JSON (NaN -> null).
    """
    when = _as_utc(as_of)
    ids = df.index.astype(str)
    if ids.has_duplicates:
        raise ValueError("feature snapshot index (customer id) has duplicates")
    payloads = [json.dumps(r, default=_json_default, allow_nan=False) for r in _records(df)]
    now = utcnow()
    rows = [
        {
            "customer_id": cid,
            "as_of": when,
            "run_id": str(run_id),
            "model_name": model_name,
            "features": payload,
            "created_at": now,
        }
        for cid, payload in zip(ids, payloads, strict=True)
    ]
    t = FeatureSnapshot.__table__
    with _write_conn(target) as conn, conn.begin():
        conn.execute(delete(t).where(t.c.as_of == when))
        if rows:
            conn.execute(insert(t), rows)
    return len(rows)


def snapshot_dates(target: Registry | Engine) -> list[datetime]:
    """The distinct ``as_of`` dates stored, oldest first."""
    t = FeatureSnapshot.__table__
    with _engine(target).connect() as conn:
        return list(conn.scalars(select(t.c.as_of).distinct().order_by(t.c.as_of)))


def read_feature_snapshot(
    target: Registry | Engine, as_of: datetime | str | pd.Timestamp | None = None
) -> pd.DataFrame:
    """Features as of ``as_of`` (latest when ``None``): index = customer id, columns = features.

    ``attrs`` carries ``as_of`` and ``run_id``; an empty frame when there is no snapshot.
    """
    t = FeatureSnapshot.__table__
    with _engine(target).connect() as conn:
        when = conn.scalar(select(func.max(t.c.as_of))) if as_of is None else _as_utc(as_of)
        if when is None:
            return pd.DataFrame(index=pd.Index([], name=SNAPSHOT_INDEX_NAME, dtype="str"))
        rows = conn.execute(
            select(t.c.customer_id, t.c.features, t.c.run_id)
            .where(t.c.as_of == when)
            .order_by(t.c.customer_id)
        ).all()
    index = pd.Index([r.customer_id for r in rows], name=SNAPSHOT_INDEX_NAME, dtype="str")
    frame = pd.DataFrame.from_records([json.loads(r.features) for r in rows], index=index)
    frame.attrs.update(as_of=pd.Timestamp(when), run_id=rows[0].run_id if rows else None)
    return frame


# -- scores ------------------------------------------------------------------------------------
_SCORE_COLUMNS = ("probability", "score", "band", "amount", "duration_days")


def write_scores(
    target: Registry | Engine,
    df: pd.DataFrame,
    run_id: str,
    *,
    as_of: datetime | str | pd.Timestamp | None = None,
    model_name: str | None = None,
    model_version: int | None = None,
) -> int:
    """Insert batch scores; ``df`` has ``customer_id`` (column, or ``CustomerId``, or the index)
    and ``probability`` plus optional ``score, band, amount, duration_days, as_of,
    model_name, model_version`` (keyword arguments fill the columns that are absent)."""
    if len(df) == 0:
        return 0
    if "probability" not in df:
        raise ValueError("scores frame lacks a 'probability' column")
    if "customer_id" in df:
        customer = df["customer_id"]
    elif "CustomerId" in df:
        customer = df["CustomerId"]
    else:
        customer = pd.Series(df.index, index=df.index)
    frame = pd.DataFrame({"customer_id": customer.astype(str)}, index=df.index)
    for col in _SCORE_COLUMNS:
        frame[col] = df.get(col)
    frame["as_of"] = (
        pd.to_datetime(df["as_of"], utc=True)
        if "as_of" in df
        else (None if as_of is None else _as_utc(as_of))
    )
    frame["model_name"] = df.get("model_name", model_name)
    frame["model_version"] = df.get("model_version", model_version)
    rows = _records(frame)
    now = utcnow()
    for row in rows:
        row["run_id"] = str(run_id)
        row["created_at"] = now
        for key in ("score", "duration_days", "model_version"):
            if row[key] is not None:
                row[key] = int(row[key])
        for key in ("probability", "amount"):
            if row[key] is not None:
                row[key] = float(row[key])
        if isinstance(row["as_of"], pd.Timestamp):
            row["as_of"] = row["as_of"].to_pydatetime()
    with _write_conn(target) as conn, conn.begin():
        conn.execute(insert(Score.__table__), rows)
    return len(rows)


def read_scores(
    target: Registry | Engine, run_id: str | None = None, customer_id: str | None = None
) -> pd.DataFrame:
    """Stored scores (optionally of one run and/or customer), oldest first."""
    t = Score.__table__
    cols = [c for c in t.c if c.name != "id"]
    stmt = select(*cols).order_by(t.c.id)
    if run_id is not None:
        stmt = stmt.where(t.c.run_id == run_id)
    if customer_id is not None:
        stmt = stmt.where(t.c.customer_id == customer_id)
    with _engine(target).connect() as conn:
        return pd.DataFrame(conn.execute(stmt).all(), columns=[c.name for c in cols])


# -- prediction log ----------------------------------------------------------------------------
_LOG_FIELDS = tuple(c.name for c in PredictionLog.__table__.c if c.name not in ("id", "created_at"))


def log_predictions(target: Registry | Engine, rows: Iterable[Mapping[str, Any]]) -> int:
    """Bulk insert online predictions (keys: request_id, customer_id, model_name,
    model_version, probability, score, latency_ms; optional created_at)."""
    now = utcnow()
    payload = [
        {**{k: row.get(k) for k in _LOG_FIELDS}, "created_at": row.get("created_at") or now}
        for row in rows
    ]
    if not payload:
        return 0
    with _write_conn(target) as conn, conn.begin():
        conn.execute(insert(PredictionLog.__table__), payload)
    return len(payload)


def read_prediction_log(target: Registry | Engine, limit: int | None = None) -> pd.DataFrame:
    """Most recent predictions first."""
    t = PredictionLog.__table__
    stmt = select(*[c for c in t.c]).order_by(t.c.id.desc())
    if limit is not None:
        stmt = stmt.limit(int(limit))
    with _engine(target).connect() as conn:
        return pd.DataFrame(conn.execute(stmt).all(), columns=[c.name for c in t.c])
