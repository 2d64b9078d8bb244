"""SQLAlchemy 2.0 typed ORM for the registry and the operational tables.

The Alembic chain in ``registry/migrations`` creates exactly these tables (a test compares the
two); change both together.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy import (
    JSON,
    BigInteger,
    CheckConstraint,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

STAGES = ("candidate", "champion", "archived")
CANDIDATE, CHAMPION, ARCHIVED = STAGES

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    """Current time, timezone-aware UTC (record timestamps only, never domain dates)."""
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite stores naive UTC text)."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if hasattr(value, "to_pydatetime"):  # pandas Timestamp
            value = value.to_pydatetime()
        value = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    """Declarative base with a stable constraint naming convention."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {
        datetime: UTCDateTime(),
        dict[str, Any]: JSON,
        list[str]: JSON,
        list[Any]: JSON,
    }


class RegisteredModel(Base):
    """A model name; its row is the lock taken by registrations and promotions."""

    __tablename__ = "registered_models"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ModelVersion(Base):
    """One immutable trained model; only ``stage`` (and its decision note) ever changes."""

    __tablename__ = "model_versions"
    __table_args__ = (
        UniqueConstraint("model_id", "version"),
        CheckConstraint("stage IN ('candidate', 'champion', 'archived')", name="stage"),
        CheckConstraint("version >= 1", name="version_positive"),
        Index(
            "uq_model_versions_one_champion",
            "model_id",
            unique=True,
            sqlite_where=sa.text("stage = 'champion'"),
            postgresql_where=sa.text("stage = 'champion'"),
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("registered_models.id"), index=True)
    version: Mapped[int] = mapped_column(Integer)
    stage: Mapped[str] = mapped_column(String(16), default=CANDIDATE)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    stage_changed_at: Mapped[datetime] = mapped_column(default=utcnow)
    metrics: Mapped[dict[str, Any]] = mapped_column(JSON)
    params: Mapped[dict[str, Any]] = mapped_column(JSON)
    features: Mapped[list[str]] = mapped_column(JSON)
    input_schema: Mapped[dict[str, Any]] = mapped_column(JSON)
    data_fingerprint: Mapped[str] = mapped_column(String(128))
    holdout_fingerprint: Mapped[str | None] = mapped_column(String(128))
    n_rows: Mapped[int] = mapped_column(BigInteger)
    n_customers: Mapped[int | None] = mapped_column(BigInteger)
    window_start: Mapped[datetime | None] = mapped_column()
    window_end: Mapped[datetime | None] = mapped_column()
    code_version: Mapped[str | None] = mapped_column(String(64))
    flow_run_id: Mapped[str | None] = mapped_column(String(64))
    description: Mapped[str | None] = mapped_column(Text)
    extra: Mapped[dict[str, Any]] = mapped_column(JSON)
    artifact_sha256: Mapped[str] = mapped_column(String(64))
    artifact_size: Mapped[int] = mapped_column(BigInteger)
    artifact_format: Mapped[str] = mapped_column(String(32))
    decision_reason: Mapped[str | None] = mapped_column(Text)


#: Columns of ``model_versions`` that may change after registration.
MUTABLE_VERSION_COLUMNS = frozenset({"stage", "stage_changed_at", "decision_reason"})
IMMUTABLE_VERSION_COLUMNS = tuple(
    c.name for c in ModelVersion.__table__.columns if c.name not in MUTABLE_VERSION_COLUMNS
)


class ModelArtifact(Base):
    """The serialised model bytes, one row per version (kept apart so listings never load it)."""

    __tablename__ = "model_artifacts"

    version_id: Mapped[int] = mapped_column(
        ForeignKey("model_versions.id", ondelete="CASCADE"), primary_key=True
    )
    data: Mapped[bytes] = mapped_column(LargeBinary)


class PromotionEvent(Base):
    """Audit trail of champion changes: from, to, when, by whom and why."""

    __tablename__ = "promotion_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("registered_models.id"), index=True)
    action: Mapped[str] = mapped_column(String(16))
    from_version: Mapped[int | None] = mapped_column(Integer)
    to_version: Mapped[int] = mapped_column(Integer)
    actor: Mapped[str] = mapped_column(String(128))
    reason: Mapped[str] = mapped_column(Text)
    details: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class QuarantineRow(Base):
    """A source row (or cell) rejected by a data-quality check."""

    __tablename__ = "quarantine_rows"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[str] = mapped_column(String(64), index=True)
    source: Mapped[str] = mapped_column(String(256))
    row_number: Mapped[int | None] = mapped_column(BigInteger)
    column_name: Mapped[str | None] = mapped_column("column", String(128))
    check_name: Mapped[str] = mapped_column("check", String(256))
    value: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Snapshot(Base):
    """Header of one feature snapshot: its customers' features are Parquet parts
    (``snapshot_parts``). Written unpublished; ``published_at`` marks it servable (revision 0003).
    """

    __tablename__ = "snapshots"
    __table_args__ = (Index("ix_snapshots_as_of_published_at", "as_of", "published_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[str] = mapped_column(String(64), index=True)
    as_of: Mapped[datetime] = mapped_column()
    feature_version: Mapped[str | None] = mapped_column(String(64))
    model_name: Mapped[str | None] = mapped_column(String(128))
    n_customers: Mapped[int] = mapped_column(BigInteger)
    n_parts: Mapped[int] = mapped_column(Integer)
    columns: Mapped[list[str]] = mapped_column(JSON)
    sha256: Mapped[str] = mapped_column(String(64))
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    published_at: Mapped[datetime | None] = mapped_column()


class SnapshotPart(Base):
    """Up to ``PART_ROWS`` customers of a snapshot as one Parquet file (sorted by customer id;
    ``first_customer``/``last_customer`` let a lookup read one part)."""

    __tablename__ = "snapshot_parts"

    snapshot_id: Mapped[int] = mapped_column(
        ForeignKey("snapshots.id", ondelete="CASCADE"), primary_key=True
    )
    part: Mapped[int] = mapped_column(Integer, primary_key=True)
    n_rows: Mapped[int] = mapped_column(Integer)
    first_customer: Mapped[str] = mapped_column(String(128))
    last_customer: Mapped[str] = mapped_column(String(128))
    data: Mapped[bytes] = mapped_column(LargeBinary)


class Score(Base):
    """A batch credit score for one customer."""

    __tablename__ = "scores"
    __table_args__ = (
        Index("ix_scores_customer_id_as_of", "customer_id", "as_of"),
        # One score per customer, run and model version (revision 0003): decay joins on it.
        Index(
            "uq_scores_run_id_customer_id_model_name_model_version",
            "run_id",
            "customer_id",
            "model_name",
            "model_version",
            unique=True,
        ),
        Index("ix_scores_model_name_model_version_as_of", "model_name", "model_version", "as_of"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[str] = mapped_column(String(64))
    customer_id: Mapped[str] = mapped_column(String(128))
    as_of: Mapped[datetime | None] = mapped_column()
    model_name: Mapped[str | None] = mapped_column(String(128))
    model_version: Mapped[int | None] = mapped_column(Integer)
    probability: Mapped[float] = mapped_column(Float)
    score: Mapped[int | None] = mapped_column(Integer)
    band: Mapped[str | None] = mapped_column(String(32))
    amount: Mapped[float | None] = mapped_column(Float)
    duration_days: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    approved: Mapped[bool | None] = mapped_column(sa.Boolean)
    snapshot_id: Mapped[int | None] = mapped_column(Integer)


class PredictionLog(Base):
    """One online prediction served by the API.

    ``request_id`` is generated by the server (the audit key); an ``X-Request-ID`` sent by the
    client is kept apart in ``client_request_id`` (revision 0002).
    """

    __tablename__ = "prediction_log"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    request_id: Mapped[str] = mapped_column(String(64), index=True)
    client_request_id: Mapped[str | None] = mapped_column(String(128), index=True)
    customer_id: Mapped[str | None] = mapped_column(String(128))
    model_name: Mapped[str | None] = mapped_column(String(128))
    model_version: Mapped[int | None] = mapped_column(Integer)
    probability: Mapped[float | None] = mapped_column(Float)
    score: Mapped[int | None] = mapped_column(Integer)
    latency_ms: Mapped[float | None] = mapped_column(Float)
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    # Revision 0003: what was decided, not only the PD and score.
    band: Mapped[str | None] = mapped_column(String(32))
    decision: Mapped[str | None] = mapped_column(String(16))
    amount: Mapped[float | None] = mapped_column(Float)
    duration_days: Mapped[int | None] = mapped_column(Integer)
    reason_codes: Mapped[list[Any] | None] = mapped_column(JSON)
    snapshot_id: Mapped[int | None] = mapped_column(Integer)


class PromotionDecisionRow(Base):
    """Every champion/challenger decision, promoted or not, with its numeric checks
    (append-only, revision 0003): ``registry list`` shows the comparison from here."""

    __tablename__ = "promotion_decisions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("registered_models.id"), index=True)
    version: Mapped[int] = mapped_column(Integer)
    promoted: Mapped[bool] = mapped_column(sa.Boolean)
    champion_version: Mapped[int | None] = mapped_column(Integer)
    actor: Mapped[str] = mapped_column(String(128))
    reason: Mapped[str] = mapped_column(Text)
    checks: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ModelReference(Base):
    """A version's monitoring references (plain JSON bins) and its reference holdout (Parquet):
    written once, with the version or after it, never changed (revision 0003)."""

    __tablename__ = "model_references"

    version_id: Mapped[int] = mapped_column(
        ForeignKey("model_versions.id", ondelete="CASCADE"), primary_key=True
    )
    distributions: Mapped[dict[str, Any]] = mapped_column(JSON)
    holdout: Mapped[bytes | None] = mapped_column(LargeBinary)
    holdout_rows: Mapped[int | None] = mapped_column(BigInteger)
    holdout_sha256: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class MonitoringRecord(Base):
    """One monitoring run's figures and breaches (a time series; revision 0003)."""

    __tablename__ = "monitoring"
    __table_args__ = (
        Index("ix_monitoring_model_name_kind_created_at", "model_name", "kind", "created_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    as_of: Mapped[datetime | None] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    model_name: Mapped[str | None] = mapped_column(String(128))
    model_version: Mapped[int | None] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(32))
    run_id: Mapped[str | None] = mapped_column(String(64))
    figures: Mapped[dict[str, Any]] = mapped_column(JSON)
    breaches: Mapped[list[Any]] = mapped_column(JSON)
