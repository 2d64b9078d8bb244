"""Feature snapshots as published Parquet parts, typed bulk scores, monitoring storage,
stored promotion decisions and a prediction log that keeps what was decided.

- ``snapshots`` + ``snapshot_parts`` replace ``feature_snapshots`` (one JSON text per
  customer); existing snapshots are converted (published) and converted back on downgrade.
- ``scores``: ``approved`` and ``snapshot_id`` columns; one row per (run, customer, model
  name, version), duplicates from before are dropped (the newest kept).
- ``prediction_log``: band, decision, amount, duration_days, reason_codes, snapshot_id.
- ``promotion_decisions`` (append-only), ``model_references`` (written once per version),
  ``monitoring`` (time series).

Revision ID: 0003_columnar_monitoring
Revises: 0002_append_only
Create Date: 2026-12-01 01:00:00
"""

from __future__ import annotations

import json
from collections.abc import Sequence

import pandas as pd
import sqlalchemy as sa
from alembic import op

from registry.migrations.ddl import (
    TS,
    create_audit_table,
    create_index,
    create_json_snapshots,
    create_table,
    drop_index,
)
from registry.migrations.guards import create_guards, drop_guards, refuse

revision: str = "0003_columnar_monitoring"
down_revision: str | Sequence[str] | None = "0002_append_only"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

#: (trigger, table, event, message): row-level guards of the append-only tables added here.
GUARDS = (
    refuse("promotion_decisions", "UPDATE", "promotion_decisions are append-only"),
    refuse("promotion_decisions", "DELETE", "promotion_decisions are append-only"),
    refuse("model_references", "UPDATE", "model_references are immutable"),
    refuse("model_references", "DELETE", "model_references are never deleted"),
)
NO_TRUNCATE = ("promotion_decisions", "model_references")
#: A customer is scored once per (run, model name, model version): the unique index's columns.
SCORE_KEY = ("run_id", "customer_id", "model_name", "model_version")
MONITORING_INDEX = ("model_name", "kind", "created_at")
PREDICTION_LOG_COLUMNS = (
    sa.Column("band", sa.String(32), nullable=True),
    sa.Column("decision", sa.String(16), nullable=True),
    sa.Column("amount", sa.Float(), nullable=True),
    sa.Column("duration_days", sa.Integer(), nullable=True),
    sa.Column("reason_codes", sa.JSON(), nullable=True),
    sa.Column("snapshot_id", sa.Integer(), nullable=True),
)


def upgrade() -> None:
    """Create the new tables, convert the JSON snapshots, extend scores and the log."""
    dialect = op.get_bind().dialect.name
    create_table(
        "snapshots",
        sa.Column("run_id", sa.String(64), nullable=False),
        sa.Column("as_of", TS, nullable=False),
        sa.Column("feature_version", sa.String(64), nullable=True),
        sa.Column("model_name", sa.String(128), nullable=True),
        sa.Column("n_customers", sa.BigInteger(), nullable=False),
        sa.Column("n_parts", sa.Integer(), nullable=False),
        sa.Column("columns", sa.JSON(), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("size_bytes", sa.BigInteger(), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("published_at", TS, nullable=True),
        indexes=[("run_id",), ("as_of", "published_at")],
    )
    create_table(
        "snapshot_parts",
        sa.Column("snapshot_id", sa.Integer(), nullable=False),
        sa.Column("part", sa.Integer(), nullable=False),
        sa.Column("n_rows", sa.Integer(), nullable=False),
        sa.Column("first_customer", sa.String(128), nullable=False),
        sa.Column("last_customer", sa.String(128), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        primary_key=("snapshot_id", "part"),
        references={"snapshot_id": "snapshots"},
        on_delete="CASCADE",
    )
    if dialect == "postgresql":
        # Parquet is compressed already: skip TOAST's pglz attempt on every part.
        op.execute("ALTER TABLE snapshot_parts ALTER COLUMN data SET STORAGE EXTERNAL")
    _convert_json_snapshots()
    drop_index("feature_snapshots", "as_of")
    op.drop_table("feature_snapshots")

    with op.batch_alter_table("scores") as batch:
        batch.add_column(sa.Column("approved", sa.Boolean(), nullable=True))
        batch.add_column(sa.Column("snapshot_id", sa.Integer(), nullable=True))
    # Keep the newest row of any (run, customer, model, version) stored twice before.
    op.execute(
        "DELETE FROM scores WHERE id NOT IN (SELECT max(id) FROM scores "
        "GROUP BY run_id, customer_id, model_name, model_version)"
    )
    drop_index("scores", "run_id")
    create_index("scores", *SCORE_KEY, unique=True)
    create_index("scores", "model_name", "model_version", "as_of")

    with op.batch_alter_table("prediction_log") as batch:
        for column in PREDICTION_LOG_COLUMNS:
            batch.add_column(column.copy())

    create_audit_table(
        "promotion_decisions",
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("promoted", sa.Boolean(), nullable=False),
        sa.Column("champion_version", sa.Integer(), nullable=True),
        evidence="checks",
    )
    create_table(
        "model_references",
        sa.Column("version_id", sa.Integer(), nullable=False),
        sa.Column("distributions", sa.JSON(), nullable=False),
        sa.Column("holdout", sa.LargeBinary(), nullable=True),
        sa.Column("holdout_rows", sa.BigInteger(), nullable=True),
        sa.Column("holdout_sha256", sa.String(64), nullable=True),
        sa.Column("created_at", TS, nullable=False),
        primary_key=("version_id",),
        references={"version_id": "model_versions"},
        on_delete="CASCADE",
    )
    create_table(
        "monitoring",
        sa.Column("as_of", TS, nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("model_name", sa.String(128), nullable=True),
        sa.Column("model_version", sa.Integer(), nullable=True),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("run_id", sa.String(64), nullable=True),
        sa.Column("figures", sa.JSON(), nullable=False),
        sa.Column("breaches", sa.JSON(), nullable=False),
        indexes=[MONITORING_INDEX],
    )
    create_guards(dialect, GUARDS, NO_TRUNCATE)


def _convert_json_snapshots() -> None:
    """Each ``as_of`` of the JSON table becomes one published columnar snapshot."""
    from registry.snapshots import insert_snapshot

    conn = op.get_bind()
    old = sa.table(  # as_of untyped: grouped by the stored value, whatever its text form
        "feature_snapshots",
        sa.column("customer_id"),
        sa.column("as_of"),
        sa.column("run_id"),
        sa.column("model_name"),
        sa.column("features"),
    )
    dates = conn.execute(sa.select(old.c.as_of).distinct().order_by(old.c.as_of)).scalars().all()
    for when in dates:
        rows = conn.execute(
            sa.select(old.c.customer_id, old.c.run_id, old.c.model_name, old.c.features)
            .where(old.c.as_of == when)
            .order_by(old.c.customer_id)
        ).all()
        frame = pd.DataFrame.from_records(
            [json.loads(r.features) for r in rows],
            index=pd.Index([r.customer_id for r in rows], name="CustomerId", dtype="str"),
        )
        insert_snapshot(
            conn,
            frame,
            as_of=pd.Timestamp(when).to_pydatetime(),  # naive text: UTC (how it was written)
            run_id=rows[0].run_id,
            model_name=rows[0].model_name,
            publish=True,
        )


def _convert_back() -> None:
    """The latest published snapshot of each ``as_of`` back to JSON rows."""
    conn = op.get_bind()
    new = sa.table(
        "snapshots",
        sa.column("id"),
        sa.column("as_of", TS),
        sa.column("published_at", TS),
        sa.column("run_id"),
        sa.column("model_name"),
    )
    old = sa.table(
        "feature_snapshots",
        sa.column("customer_id"),
        sa.column("as_of", TS),
        sa.column("run_id"),
        sa.column("model_name"),
        sa.column("features"),
        sa.column("created_at", TS),
    )
    latest: dict[object, object] = {}
    for row in conn.execute(
        sa.select(new).where(new.c.published_at.is_not(None)).order_by(new.c.published_at)
    ):
        latest[row.as_of] = row
    for when, row in latest.items():
        frame = _read_in(conn, row.id)
        records = frame.astype(object).where(frame.notna(), None).to_dict(orient="records")
        conn.execute(
            sa.insert(old),
            [
                {
                    "customer_id": cid,
                    "as_of": when,
                    "run_id": row.run_id,
                    "model_name": row.model_name,
                    "features": json.dumps(rec, default=str),
                    "created_at": row.published_at,
                }
                for cid, rec in zip(frame.index, records, strict=True)
            ],
        )


def _read_in(conn: sa.Connection, snapshot_id: int) -> pd.DataFrame:
    """One snapshot's frame read through the migration's own connection."""
    from registry.access import parquet_to_frame

    parts = conn.execute(
        sa.text("SELECT data FROM snapshot_parts WHERE snapshot_id = :s ORDER BY part"),
        {"s": snapshot_id},
    ).scalars()
    frames = [parquet_to_frame(bytes(blob)) for blob in parts]
    return pd.concat(frames) if frames else pd.DataFrame()


def downgrade() -> None:
    """Drop what this revision added; snapshots go back to JSON rows."""
    drop_guards(op.get_bind().dialect.name, GUARDS, NO_TRUNCATE)
    drop_index("monitoring", *MONITORING_INDEX)
    op.drop_table("monitoring")
    op.drop_table("model_references")
    drop_index("promotion_decisions", "model_id")
    op.drop_table("promotion_decisions")
    with op.batch_alter_table("prediction_log") as batch:
        for column in reversed(PREDICTION_LOG_COLUMNS):
            batch.drop_column(column.name)
    drop_index("scores", "model_name", "model_version", "as_of")
    drop_index("scores", *SCORE_KEY, unique=True)
    create_index("scores", "run_id")
    with op.batch_alter_table("scores") as batch:
        batch.drop_column("snapshot_id")
        batch.drop_column("approved")
    create_json_snapshots()
    _convert_back()
    op.drop_table("snapshot_parts")
    drop_index("snapshots", "as_of", "published_at")
    drop_index("snapshots", "run_id")
    op.drop_table("snapshots")
