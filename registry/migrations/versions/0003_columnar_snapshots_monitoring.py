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

from registry.migrations.guards import create_guards, drop_guards

revision: str = "0003_columnar_monitoring"
down_revision: str | Sequence[str] | None = "0002_append_only"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TS = sa.DateTime(timezone=True)
#: (trigger, table, event, message): row-level guards of the append-only tables added here.
GUARDS = (
    (
        "trg_promotion_decisions_no_update",
        "promotion_decisions",
        "UPDATE",
        "promotion_decisions are append-only",
    ),
    (
        "trg_promotion_decisions_no_delete",
        "promotion_decisions",
        "DELETE",
        "promotion_decisions are append-only",
    ),
    (
        "trg_model_references_no_update",
        "model_references",
        "UPDATE",
        "model_references are immutable",
    ),
    (
        "trg_model_references_no_delete",
        "model_references",
        "DELETE",
        "model_references are never deleted",
    ),
)
NO_TRUNCATE = ("promotion_decisions", "model_references")
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
    op.create_table(
        "snapshots",
        sa.Column("id", sa.Integer(), nullable=False),
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
        sa.PrimaryKeyConstraint("id", name="pk_snapshots"),
    )
    op.create_index("ix_snapshots_run_id", "snapshots", ["run_id"])
    op.create_index("ix_snapshots_as_of_published_at", "snapshots", ["as_of", "published_at"])
    op.create_table(
        "snapshot_parts",
        sa.Column("snapshot_id", sa.Integer(), nullable=False),
        sa.Column("part", sa.Integer(), nullable=False),
        sa.Column("n_rows", sa.Integer(), nullable=False),
        sa.Column("first_customer", sa.String(128), nullable=False),
        sa.Column("last_customer", sa.String(128), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("snapshot_id", "part", name="pk_snapshot_parts"),
        sa.ForeignKeyConstraint(
            ["snapshot_id"],
            ["snapshots.id"],
            name="fk_snapshot_parts_snapshot_id_snapshots",
            ondelete="CASCADE",
        ),
    )
    if dialect == "postgresql":
        # Parquet is compressed already: skip TOAST's pglz attempt on every part.
        op.execute("ALTER TABLE snapshot_parts ALTER COLUMN data SET STORAGE EXTERNAL")
    _convert_json_snapshots()
    op.drop_index("ix_feature_snapshots_as_of", table_name="feature_snapshots")
    op.drop_table("feature_snapshots")

    with op.batch_alter_table("scores") as batch:
        batch.add_column(sa.Column("approved", sa.Boolean(), nullable=True))
        batch.add_column(sa.Column("snapshot_id", sa.Integer(), nullable=True))
    # Keep the newest row of any (run, customer, model, version) stored twice before.
    op.execute(
        "DELETE FROM scores WHERE id NOT IN (SELECT max(id) FROM scores "
        "GROUP BY run_id, customer_id, model_name, model_version)"
    )
    op.drop_index("ix_scores_run_id", table_name="scores")
    op.create_index(
        "uq_scores_run_id_customer_id_model_name_model_version",
        "scores",
        ["run_id", "customer_id", "model_name", "model_version"],
        unique=True,
    )
    op.create_index(
        "ix_scores_model_name_model_version_as_of",
        "scores",
        ["model_name", "model_version", "as_of"],
    )

    with op.batch_alter_table("prediction_log") as batch:
        for column in PREDICTION_LOG_COLUMNS:
            batch.add_column(column.copy())

    op.create_table(
        "promotion_decisions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("model_id", sa.Integer(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("promoted", sa.Boolean(), nullable=False),
        sa.Column("champion_version", sa.Integer(), nullable=True),
        sa.Column("actor", sa.String(128), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("checks", sa.JSON(), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_promotion_decisions"),
        sa.ForeignKeyConstraint(
            ["model_id"],
            ["registered_models.id"],
            name="fk_promotion_decisions_model_id_registered_models",
        ),
    )
    op.create_index("ix_promotion_decisions_model_id", "promotion_decisions", ["model_id"])
    op.create_table(
        "model_references",
        sa.Column("version_id", sa.Integer(), nullable=False),
        sa.Column("distributions", sa.JSON(), nullable=False),
        sa.Column("holdout", sa.LargeBinary(), nullable=True),
        sa.Column("holdout_rows", sa.BigInteger(), nullable=True),
        sa.Column("holdout_sha256", sa.String(64), nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("version_id", name="pk_model_references"),
        sa.ForeignKeyConstraint(
            ["version_id"],
            ["model_versions.id"],
            name="fk_model_references_version_id_model_versions",
            ondelete="CASCADE",
        ),
    )
    op.create_table(
        "monitoring",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("as_of", TS, nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("model_name", sa.String(128), nullable=True),
        sa.Column("model_version", sa.Integer(), nullable=True),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("run_id", sa.String(64), nullable=True),
        sa.Column("figures", sa.JSON(), nullable=False),
        sa.Column("breaches", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_monitoring"),
    )
    op.create_index(
        "ix_monitoring_model_name_kind_created_at",
        "monitoring",
        ["model_name", "kind", "created_at"],
    )
    _create_guards(dialect)


def _create_guards(dialect: str) -> None:
    create_guards(dialect, GUARDS, NO_TRUNCATE)


def _drop_guards(dialect: str) -> None:
    drop_guards(dialect, GUARDS, NO_TRUNCATE)


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
    dialect = op.get_bind().dialect.name
    _drop_guards(dialect)
    op.drop_index("ix_monitoring_model_name_kind_created_at", table_name="monitoring")
    op.drop_table("monitoring")
    op.drop_table("model_references")
    op.drop_index("ix_promotion_decisions_model_id", table_name="promotion_decisions")
    op.drop_table("promotion_decisions")
    with op.batch_alter_table("prediction_log") as batch:
        for column in reversed(PREDICTION_LOG_COLUMNS):
            batch.drop_column(column.name)
    op.drop_index("ix_scores_model_name_model_version_as_of", table_name="scores")
    op.drop_index("uq_scores_run_id_customer_id_model_name_model_version", table_name="scores")
    op.create_index("ix_scores_run_id", "scores", ["run_id"])
    with op.batch_alter_table("scores") as batch:
        batch.drop_column("snapshot_id")
        batch.drop_column("approved")
    op.create_table(
        "feature_snapshots",
        sa.Column("customer_id", sa.String(128), nullable=False),
        sa.Column("as_of", TS, nullable=False),
        sa.Column("run_id", sa.String(64), nullable=False),
        sa.Column("model_name", sa.String(128), nullable=True),
        sa.Column("features", sa.Text(), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("customer_id", "as_of", name="pk_feature_snapshots"),
    )
    op.create_index("ix_feature_snapshots_as_of", "feature_snapshots", ["as_of"])
    _convert_back()
    op.drop_table("snapshot_parts")
    op.drop_index("ix_snapshots_as_of_published_at", table_name="snapshots")
    op.drop_index("ix_snapshots_run_id", table_name="snapshots")
    op.drop_table("snapshots")
