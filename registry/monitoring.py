"""Monitoring storage: each version's references (plain JSON bins and its reference holdout
as Parquet, written once) and the ``monitoring`` time series (stability and decay figures).

The registry stores what it is given: the bins are whatever JSON the caller builds (for example
``credit.monitoring.BinnedReference.to_dict()``); nothing here imports the pipeline.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

import pandas as pd
from sqlalchemy import Connection, Engine, insert, select
from sqlalchemy.exc import IntegrityError

from registry.access import (
    as_utc,
    engine_of,
    fetch_blob,
    frame_to_parquet,
    parquet_to_frame,
    write_connection,
)
from registry.artifacts import sha256_hex
from registry.errors import ImmutableVersionError, RegistryError, VersionNotFound
from registry.models import (
    ModelReference,
    ModelVersion,
    MonitoringRecord,
    RegisteredModel,
    utcnow,
)
from registry.ops import plain_json

if TYPE_CHECKING:
    from registry.core import Registry

#: Kinds of monitoring records.
MONITORING_KINDS = ("stability", "decay")

_R = ModelReference.__table__
_M = MonitoringRecord.__table__


@dataclass(frozen=True)
class References:
    """A version's monitoring references: ``distributions`` (the JSON given at write time) and
    its reference ``holdout`` (customer ids, features, labels, predicted PD), or ``None`` when
    not stored or not asked for."""

    model_name: str
    version: int
    distributions: dict[str, Any]
    holdout: pd.DataFrame | None
    holdout_rows: int | None
    holdout_sha256: str | None
    created_at: datetime


def reference_row(
    version_id: int, references: Mapping[str, Any], holdout: pd.DataFrame | None
) -> dict[str, Any]:
    """The ``model_references`` row for a version (the holdout encoded as Parquet)."""
    blob = None if holdout is None else frame_to_parquet(holdout)
    return {
        "version_id": int(version_id),
        "distributions": plain_json(dict(references)),
        "holdout": blob,
        "holdout_rows": None if holdout is None else len(holdout),
        "holdout_sha256": None if blob is None else sha256_hex(blob),
        "created_at": utcnow(),
    }


def _version_id(conn: Connection, model_name: str, version: int) -> int:
    version_id = conn.execute(
        select(ModelVersion.id)
        .join(RegisteredModel, RegisteredModel.id == ModelVersion.model_id)
        .where(RegisteredModel.name == model_name, ModelVersion.version == int(version))
    ).scalar_one_or_none()
    if version_id is None:
        raise VersionNotFound(f"model {model_name!r} has no version {version}")
    return int(version_id)


def write_references(
    target: Registry | Engine,
    model_name: str,
    version: int,
    references: Mapping[str, Any],
    holdout: pd.DataFrame | None = None,
) -> None:
    """Store the references of a version registered without them (``Registry.register(...,
    references=..., reference_holdout=...)`` stores them with the version). Written once:
    :class:`ImmutableVersionError` when the version already has references."""
    with write_connection(target) as conn:
        try:
            with conn.begin():
                version_id = _version_id(conn, model_name, version)
                conn.execute(insert(_R).values(**reference_row(version_id, references, holdout)))
        except IntegrityError as exc:
            raise ImmutableVersionError(
                f"{model_name} v{version} already has references; they are never replaced"
            ) from exc


def read_references(
    target: Registry | Engine, model_name: str, version: int, *, with_holdout: bool = True
) -> References | None:
    """A version's references (its holdout decoded unless ``with_holdout=False``), or ``None``
    when it has none; :class:`VersionNotFound` when the version does not exist."""
    cols = [_R.c.distributions, _R.c.holdout_rows, _R.c.holdout_sha256, _R.c.created_at]
    with engine_of(target).connect() as conn:
        version_id = _version_id(conn, model_name, version)
        row = conn.execute(select(*cols).where(_R.c.version_id == version_id)).one_or_none()
        if row is None:
            return None
        blob = (
            fetch_blob(
                conn,
                "SELECT holdout FROM model_references WHERE version_id = :v",
                {"v": version_id},
            )
            if with_holdout and row.holdout_rows is not None
            else None
        )
    if blob is not None and sha256_hex(blob) != row.holdout_sha256:
        raise RegistryError(f"reference holdout of {model_name} v{version} fails its sha256")
    return References(
        model_name=model_name,
        version=int(version),
        distributions=dict(row.distributions or {}),
        holdout=None if blob is None else parquet_to_frame(blob),
        holdout_rows=row.holdout_rows,
        holdout_sha256=row.holdout_sha256,
        created_at=row.created_at,
    )


def write_monitoring(
    target: Registry | Engine,
    *,
    kind: str,
    figures: Mapping[str, Any],
    breaches: Iterable[Mapping[str, Any]] = (),
    model_name: str | None = None,
    model_version: int | None = None,
    as_of: datetime | str | pd.Timestamp | None = None,
    run_id: str | None = None,
) -> int:
    """Append one monitoring run's figures and breaches; returns the record id."""
    if kind not in MONITORING_KINDS:
        raise ValueError(f"monitoring kind must be one of {MONITORING_KINDS}, not {kind!r}")
    row = {
        "kind": kind,
        "figures": plain_json(dict(figures)),
        "breaches": plain_json([dict(b) for b in breaches]),
        "model_name": model_name,
        "model_version": None if model_version is None else int(model_version),
        "as_of": None if as_of is None else as_utc(as_of),
        "run_id": None if run_id is None else str(run_id),
        "created_at": utcnow(),
    }
    with write_connection(target) as conn, conn.begin():
        return int(conn.execute(insert(_M).values(**row).returning(_M.c.id)).scalar_one())


def read_monitoring(
    target: Registry | Engine,
    model_name: str | None = None,
    kind: str | None = None,
    limit: int | None = 30,
) -> list[dict[str, Any]]:
    """The latest ``limit`` monitoring records (of one model and/or kind), newest first, as
    JSON-friendly dicts (id, as_of, created_at, model_name, model_version, kind, run_id,
    figures, breaches)."""
    stmt = select(_M).order_by(_M.c.created_at.desc(), _M.c.id.desc())
    if model_name is not None:
        stmt = stmt.where(_M.c.model_name == model_name)
    if kind is not None:
        stmt = stmt.where(_M.c.kind == kind)
    if limit is not None:
        stmt = stmt.limit(int(limit))
    with engine_of(target).connect() as conn:
        rows = conn.execute(stmt).mappings().all()
    return [
        {
            **row,
            "as_of": None if row["as_of"] is None else row["as_of"].isoformat(),
            "created_at": row["created_at"].isoformat(),
            "figures": dict(row["figures"] or {}),
            "breaches": list(row["breaches"] or []),
        }
        for row in rows
    ]
