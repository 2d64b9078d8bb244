"""Operational tables shared by flows and the API: quarantine, feature snapshots, scores,
prediction log. Bulk inserts in one transaction each; every function accepts a
:class:`~registry.core.Registry` (schema migrated on first use) or a bare SQLAlchemy Engine.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Callable, Iterable, Mapping
from datetime import date, datetime
from typing import TYPE_CHECKING, Any, TypedDict, Unpack

import numpy as np
import pandas as pd
from sqlalchemy import Connection, Engine, delete, func, insert, select
from sqlalchemy.exc import IntegrityError

from registry.access import as_utc, engine_of, write_connection
from registry.models import PredictionLog, QuarantineRow, Score, utcnow
from registry.snapshots import (  # noqa: F401 - the historical import path of these names
    SNAPSHOT_INDEX_NAME,
    read_feature_snapshot,
    snapshot_dates,
    write_feature_snapshot,
)

if TYPE_CHECKING:
    from registry.core import Registry


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
    with write_connection(target) as conn, conn.begin():
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
    with engine_of(target).connect() as conn:
        return pd.DataFrame(
            conn.execute(stmt).mappings().all(), columns=list(stmt.selected_columns.keys())
        )


# -- scores ------------------------------------------------------------------------------------
_S = Score.__table__
#: Columns of ``scores`` written by :func:`write_scores`, in COPY/INSERT order.
_SCORE_INSERT = (
    "run_id",
    "customer_id",
    "as_of",
    "model_name",
    "model_version",
    "snapshot_id",
    "probability",
    "score",
    "band",
    "amount",
    "duration_days",
    "approved",
    "created_at",
)
#: The typed columns among them: the frame's column, else the keyword fill-in, else null.
_SCORE_DTYPES = {
    "model_name": "str",
    "model_version": "Int64",
    "snapshot_id": "Int64",
    "probability": "float64",
    "score": "Int64",
    "band": "str",
    "amount": "Float64",
    "duration_days": "Int64",
    "approved": "boolean",
}
_COPY_CHUNK_ROWS = 100_000


def _typed(values: Any, dtype: str, index: pd.Index) -> pd.Series:
    """A column (or a scalar broadcast) as nullable ``dtype``; integers from floats rounded."""
    series = values if isinstance(values, pd.Series) else pd.Series(values, index=index)
    if dtype == "Int64" and pd.api.types.is_float_dtype(series):
        series = series.round()
    return series.astype(dtype)


class ScoreFill(TypedDict, total=False):
    """What fills the columns a scores frame lacks: :func:`write_scores`' keyword arguments."""

    as_of: datetime | str | pd.Timestamp | None
    model_name: str | None
    model_version: int | None
    snapshot_id: int | None


def score_frame(df: pd.DataFrame, run_id: str, **fill: Unpack[ScoreFill]) -> pd.DataFrame:
    """The typed rows :func:`write_scores` stores (columns :data:`_SCORE_INSERT`)."""
    defaults: dict[str, Any] = dict(fill)
    if "probability" not in df:
        raise ValueError("scores frame lacks a 'probability' column")
    idx = df.index
    if "customer_id" in df:
        customer = df["customer_id"]
    elif "CustomerId" in df:
        customer = df["CustomerId"]
    else:
        customer = pd.Series(idx, index=idx)
    if "as_of" in df:
        when = pd.to_datetime(df["as_of"], utc=True)
    else:
        as_of = defaults.get("as_of")
        value = pd.NaT if as_of is None else pd.Timestamp(as_utc(as_of))
        when = pd.Series(value, index=idx, dtype="datetime64[us, UTC]")
    frame = pd.DataFrame(
        {
            "run_id": str(run_id),
            "customer_id": customer.astype("str"),
            "as_of": when,
            **{
                column: _typed(df.get(column, defaults.get(column)), dtype, idx)
                for column, dtype in _SCORE_DTYPES.items()
            },
            "created_at": pd.Timestamp(utcnow()),
        },
        index=idx,
    )
    if frame["probability"].isna().any():
        raise ValueError("scores frame has missing probabilities")
    if not frame["customer_id"].is_monotonic_increasing:  # index order: appends, not seeks
        frame = frame.iloc[np.argsort(frame["customer_id"].to_numpy(), kind="stable")]
    return frame


def write_scores(
    target: Registry | Engine,
    df: pd.DataFrame,
    run_id: str,
    *,
    as_of: datetime | str | pd.Timestamp | None = None,
    model_name: str | None = None,
    model_version: int | None = None,
    snapshot_id: int | None = None,
    replace: bool = False,
    customer_range: tuple[str, str] | None = None,
) -> int:
    """Insert batch scores in bulk (PostgreSQL: COPY); returns the number of rows.

    ``df`` has ``customer_id`` (column, or ``CustomerId``, or the index) and ``probability``
    plus optional ``score, band, amount, duration_days, approved, as_of, model_name,
    model_version, snapshot_id`` (keyword arguments fill the columns that are absent).
    A customer is scored once per (run, model name, model version): ``replace=True`` first
    deletes what this run already stored for that model version (a retried write), only for
    customer ids in ``customer_range`` (first, last; inclusive) when given (a retried slice of
    a streamed run).
    """
    if len(df) == 0:
        return 0
    frame = score_frame(
        df,
        run_id,
        as_of=as_of,
        model_name=model_name,
        model_version=model_version,
        snapshot_id=snapshot_id,
    )
    with write_connection(target) as conn, conn.begin():
        if replace:
            for (name, version), _ in frame.groupby(
                ["model_name", "model_version"], dropna=False, sort=False
            ):
                stmt = delete(_S).where(
                    _S.c.run_id == str(run_id),
                    _S.c.model_name.is_(None) if pd.isna(name) else _S.c.model_name == name,
                    _S.c.model_version.is_(None)
                    if pd.isna(version)
                    else _S.c.model_version == int(version),
                )
                if customer_range is not None:
                    first, last = (str(c) for c in customer_range)
                    stmt = stmt.where(_S.c.customer_id.between(first, last))
                conn.execute(stmt)
        if conn.dialect.name == "postgresql" and conn.dialect.driver == "psycopg":
            _copy_rows(conn, "scores", frame)
        else:
            _insert_rows(conn, _S, frame)
    return len(frame)


def _copy_rows(conn: Connection, table: str, frame: pd.DataFrame) -> None:
    """PostgreSQL ``COPY ... FROM STDIN`` (CSV written by Arrow) of ``frame``, caller's tx."""
    import pyarrow as pa
    import pyarrow.csv as pa_csv

    columns = ", ".join(f'"{c}"' for c in frame.columns)
    options = pa_csv.WriteOptions(include_header=False, batch_size=_COPY_CHUNK_ROWS)
    statement = f"COPY {table} ({columns}) FROM STDIN (FORMAT csv)"
    raw = conn.connection.driver_connection
    try:
        with raw.cursor() as cur, cur.copy(statement) as cp:
            for start in range(0, len(frame), _COPY_CHUNK_ROWS):
                chunk = pa.Table.from_pandas(
                    frame.iloc[start : start + _COPY_CHUNK_ROWS], preserve_index=False
                )
                sink = pa.BufferOutputStream()
                pa_csv.write_csv(chunk, sink, options)
                cp.write(memoryview(sink.getvalue()))
    except raw.IntegrityError as exc:  # the same exception as through SQLAlchemy
        raise IntegrityError(statement, None, exc) from exc


def _per_distinct(col: pd.Series, convert: Any) -> np.ndarray:
    """``convert`` applied once per distinct timestamp of ``col`` (NaT -> None), as objects."""
    codes, uniques = pd.factorize(col)
    done = np.array([convert(v.to_pydatetime()) for v in uniques] + [None], dtype=object)
    return done[codes]  # code -1 (NaT) takes the trailing None


def _insert_rows(conn: Connection, table: Any, frame: pd.DataFrame) -> None:
    """``executemany`` of plain tuples (the dialect's own datetime binding), caller's tx."""
    unknown = [c for c in frame.columns if c not in table.c]
    if unknown:  # column names reach the SQL text: only the table's own are allowed
        raise ValueError(f"{table.name} has no columns {unknown}")
    columns = []
    for name in frame.columns:
        col = frame[name]
        if isinstance(col.dtype, pd.DatetimeTZDtype):  # bind each distinct value once
            kind = table.c[name].type.dialect_impl(conn.dialect)
            bind = kind.bind_processor(conn.dialect) or (lambda v: v)
            columns.append(_per_distinct(col, bind).tolist())
        else:
            columns.append(col.to_numpy(dtype=object, na_value=None).tolist())
    names = ", ".join(f'"{c}"' for c in frame.columns)
    marks = ", ".join("?" if conn.dialect.paramstyle == "qmark" else "%s" for _ in frame.columns)
    conn.exec_driver_sql(
        f"INSERT INTO {table.name} ({names}) VALUES ({marks})", list(zip(*columns, strict=True))
    )


def read_scores(
    target: Registry | Engine,
    run_id: str | None = None,
    customer_id: str | None = None,
    *,
    model_name: str | None = None,
    model_version: int | None = None,
) -> pd.DataFrame:
    """Stored scores (optionally of one run, customer, model name and/or version), oldest
    first."""
    cols = [c for c in _S.c if c.name != "id"]
    stmt = select(*cols).order_by(_S.c.id)
    for column, value in (
        (_S.c.run_id, run_id),
        (_S.c.customer_id, customer_id),
        (_S.c.model_name, model_name),
        (_S.c.model_version, model_version),
    ):
        if value is not None:
            stmt = stmt.where(column == value)
    with engine_of(target).connect() as conn:
        return pd.DataFrame(conn.execute(stmt).all(), columns=[c.name for c in cols])


#: Score columns :func:`read_score_columns` reads (plain numbers and text, no dates or JSON).
SCORE_VALUE_COLUMNS = (
    "customer_id",
    "model_version",
    "probability",
    "score",
    "band",
    "amount",
    "duration_days",
    "approved",
    "snapshot_id",
)
_FETCH_ROWS = 100_000


def _driver_frame(conn: Connection, stmt: Any, names: list[str]) -> pd.DataFrame:
    """The rows of ``stmt`` as a frame, straight from the DBAPI cursor in chunks: no SQLAlchemy
    row objects or result processors (for plain numbers and text only)."""
    compiled = stmt.compile(dialect=conn.dialect)
    params: Any = compiled.params
    if compiled.positional:
        params = tuple(params[k] for k in compiled.positiontup or ())
    cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
    try:
        cursor.execute(str(compiled), params)
        chunks = []
        while rows := cursor.fetchmany(_FETCH_ROWS):
            chunks.append(pd.DataFrame.from_records(rows, columns=names))
    finally:
        cursor.close()
    if not chunks:
        return pd.DataFrame(columns=names)
    return chunks[0] if len(chunks) == 1 else pd.concat(chunks, ignore_index=True)


def read_score_columns(
    target: Registry | Engine,
    columns: Iterable[str],
    *,
    run_id: str,
    model_name: str | None = None,
    model_version: int | None = None,
) -> pd.DataFrame:
    """Only ``columns`` (of :data:`SCORE_VALUE_COLUMNS`) of one run's scores, oldest first, read
    as columns (a few seconds and a few MB for 330,000 customers where :func:`read_scores`
    builds a Python row per score). Booleans come as stored (0/1 on SQLite)."""
    names = list(columns)
    unknown = [c for c in names if c not in SCORE_VALUE_COLUMNS]
    if unknown:
        raise ValueError(f"read_score_columns reads only {SCORE_VALUE_COLUMNS}, not {unknown}")
    stmt = select(*(_S.c[c] for c in names)).where(*_of_run(run_id, model_name, model_version))
    with engine_of(target).connect() as conn:
        return _driver_frame(conn, stmt.order_by(_S.c.id), names)


def _of_run(run_id: str, model_name: str | None, model_version: int | None) -> list[Any]:
    """Conditions for one run's scores (of a model and version) that reach them through the
    run-id index: SQLite, without statistics, otherwise walks the model's index, i.e. every
    score the model ever stored, so the cost would grow with each night kept."""
    where = [_S.c.run_id == run_id]
    if model_name is not None:
        where.append(func.coalesce(_S.c.model_name, "") == model_name)
    if model_version is not None:
        where.append(func.coalesce(_S.c.model_version, -1) == int(model_version))
    return where


def latest_score_run(
    target: Registry | Engine, model_name: str, run_id: str | None = None
) -> dict[str, Any] | None:
    """The newest score run of ``model_name`` (of ``run_id`` when given): run_id, as_of,
    model_name, model_version and snapshot_id of the newest stored score and the largest
    snapshot id of that run and version, or ``None``. Reads a handful of rows where
    :func:`score_runs` groups the whole table."""
    with engine_of(target).connect() as conn:
        last = None
        if run_id is None:  # the newest score overall is usually the model's: a primary-key look-up
            last = conn.execute(select(func.max(_S.c.id))).scalar_one_or_none()
            if last is not None:
                owner = conn.execute(select(_S.c.model_name).where(_S.c.id == last)).scalar()
                last = last if owner == model_name else None
        if last is None:
            where = (
                [_S.c.model_name == model_name]
                if run_id is None
                else _of_run(run_id, model_name, None)
            )
            last = conn.execute(select(func.max(_S.c.id)).where(*where)).scalar_one_or_none()
        if last is None:
            return None
        row = conn.execute(
            select(_S.c.run_id, _S.c.as_of, _S.c.model_name, _S.c.model_version).where(
                _S.c.id == last
            )
        ).one()
        where = _of_run(row.run_id, model_name, row.model_version)
        if row.model_version is None:
            where.append(_S.c.model_version.is_(None))
        snapshot_id = conn.execute(
            select(func.max(_S.c.snapshot_id)).where(*where)
        ).scalar_one_or_none()
    return {**row._asdict(), "snapshot_id": snapshot_id}


def score_run_ids(target: Registry | Engine) -> list[str]:
    """Every run id in the scores table, from the (run id first) unique index alone: cheap
    next to :func:`score_runs`, which groups every stored score."""
    with engine_of(target).connect() as conn:
        return list(conn.scalars(select(_S.c.run_id).distinct()))


def score_runs(
    target: Registry | Engine,
    model_name: str | None = None,
    *,
    run_ids: Iterable[str] | None = None,
) -> pd.DataFrame:
    """One row per stored score run: run_id, as_of, model_name, model_version, snapshot_id,
    customers, created_at (oldest first) - what decay monitoring looks back at. Only the runs
    ``run_ids`` when given (their scores alone are read)."""
    stmt = (
        select(
            _S.c.run_id,
            _S.c.as_of,
            _S.c.model_name,
            _S.c.model_version,
            func.max(_S.c.snapshot_id).label("snapshot_id"),
            func.count().label("customers"),
            func.min(_S.c.created_at).label("created_at"),
        )
        .group_by(_S.c.run_id, _S.c.as_of, _S.c.model_name, _S.c.model_version)
        .order_by(func.min(_S.c.id))
    )
    if model_name is not None:
        stmt = stmt.where(_S.c.model_name == model_name)
    if run_ids is not None:
        stmt = stmt.where(_S.c.run_id.in_(list(run_ids)))
    with engine_of(target).connect() as conn:
        return pd.DataFrame(conn.execute(stmt).all(), columns=list(stmt.selected_columns.keys()))


# -- prediction log ----------------------------------------------------------------------------
_LOG_FIELDS = tuple(c.name for c in PredictionLog.__table__.c if c.name not in ("id", "created_at"))
_CLIENT_ID_MAX = PredictionLog.__table__.c.client_request_id.type.length
#: Other names accepted for prediction-log keys (the API's payload names).
_LOG_ALIASES = {
    "latency_ms": "duration_ms",
    "reason_codes": "reasons",
    "amount": "recommended_amount",
    "duration_days": "recommended_duration_days",
}


def _plain_leaf(value: Any) -> Any:
    """Dates and times as ISO text, any other object as its ``str``."""
    if isinstance(value, datetime | date):
        return value.isoformat()
    return str(value)


def plain_json(value: Any, leaf: Callable[[Any], Any] = _plain_leaf) -> Any:
    """``value`` as strict JSON values: containers recursed, numpy scalars unwrapped, NaN/inf as
    null; any other object (dates, timestamps, ...) through ``leaf``."""
    if isinstance(value, Mapping):
        return {str(k): plain_json(v, leaf) for k, v in value.items()}
    if isinstance(value, list | tuple | np.ndarray):
        return [plain_json(v, leaf) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if value is None or isinstance(value, bool | int | str):
        return value
    return leaf(value)


def _decision(row: Mapping[str, Any]) -> str | None:
    decision = row.get("decision")
    if decision is None and row.get("approved") is not None:
        decision = "approved" if row["approved"] else "declined"
    return None if decision is None else str(decision)[:16]


def log_predictions(target: Registry | Engine, rows: Iterable[Mapping[str, Any]]) -> int:
    """Bulk insert online predictions.

    Keys: request_id, client_request_id, customer_id, model_name, model_version, probability,
    score, latency_ms (or duration_ms), band, decision (or approved: True/False), amount (or
    recommended_amount), duration_days (or recommended_duration_days), reason_codes (or
    reasons: a list, stored as JSON), snapshot_id; optional created_at. Missing keys are NULL.

    ``request_id`` is the server's id for the request (a random one is made when it is
    missing); ``client_request_id`` is whatever the caller sent (``X-Request-ID``), stored
    apart, cut to its column's length, never used as the audit key.
    """
    now = utcnow()
    payload = []
    for row in rows:
        record = {k: row.get(k) for k in _LOG_FIELDS}
        for key, alias in _LOG_ALIASES.items():
            if record[key] is None:
                record[key] = row.get(alias)
        record["request_id"] = record["request_id"] or uuid.uuid4().hex
        client = record["client_request_id"]
        record["client_request_id"] = None if client is None else str(client)[:_CLIENT_ID_MAX]
        record["decision"] = _decision(row)
        if record["reason_codes"] is not None:
            record["reason_codes"] = plain_json(record["reason_codes"])
        record["created_at"] = row.get("created_at") or now
        payload.append(record)
    if not payload:
        return 0
    with write_connection(target) as conn, conn.begin():
        conn.execute(insert(PredictionLog.__table__), payload)
    return len(payload)


def read_prediction_log(
    target: Registry | Engine,
    limit: int | None = None,
    *,
    since: datetime | str | pd.Timestamp | None = None,
) -> pd.DataFrame:
    """Most recent predictions first (only those logged at or after ``since``, when given)."""
    t = PredictionLog.__table__
    stmt = select(*[c for c in t.c]).order_by(t.c.id.desc())
    if since is not None:
        stmt = stmt.where(t.c.created_at >= as_utc(since))
    if limit is not None:
        stmt = stmt.limit(int(limit))
    with engine_of(target).connect() as conn:
        return pd.DataFrame(conn.execute(stmt).all(), columns=[c.name for c in t.c])
