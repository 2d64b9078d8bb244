"""Registered versions, artifacts and promotion events can no longer be deleted (nor events
rewritten), and the prediction log keeps a client-sent request id apart from the server's.

Revision 0001 only refused UPDATEs, so an artifact could be replaced by DELETE + INSERT.

Revision ID: 0002_append_only
Revises: 0001_initial
Create Date: 2026-12-01 00:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002_append_only"
down_revision: str | Sequence[str] | None = "0001_initial"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

#: (trigger, table, event, message): every row-level guard this revision adds.
GUARDS = (
    (
        "trg_model_versions_no_delete",
        "model_versions",
        "DELETE",
        "model_versions are never deleted",
    ),
    (
        "trg_model_artifacts_no_delete",
        "model_artifacts",
        "DELETE",
        "model_artifacts are never deleted",
    ),
    (
        "trg_promotion_events_no_delete",
        "promotion_events",
        "DELETE",
        "promotion_events are append-only",
    ),
    (
        "trg_promotion_events_no_update",
        "promotion_events",
        "UPDATE",
        "promotion_events are append-only",
    ),
)
#: PostgreSQL: TRUNCATE skips row triggers, so it gets statement-level guards.
NO_TRUNCATE = ("model_versions", "model_artifacts", "promotion_events")


def upgrade() -> None:
    """Add ``prediction_log.client_request_id`` and the DELETE/TRUNCATE guards."""
    op.add_column("prediction_log", sa.Column("client_request_id", sa.String(128), nullable=True))
    op.create_index("ix_prediction_log_client_request_id", "prediction_log", ["client_request_id"])
    dialect = op.get_bind().dialect.name
    for trigger, table, event, message in GUARDS:
        if dialect == "sqlite":
            op.execute(
                f"CREATE TRIGGER {trigger} BEFORE {event} ON {table} "
                f"BEGIN SELECT RAISE(ABORT, '{message}'); END"
            )
        elif dialect == "postgresql":
            # bati_refuse_update (revision 0001) raises its argument as restrict_violation.
            op.execute(
                f"CREATE TRIGGER {trigger} BEFORE {event} ON {table} FOR EACH ROW "
                f"EXECUTE FUNCTION bati_refuse_update('{message}')"
            )
    if dialect == "postgresql":
        for table in NO_TRUNCATE:
            op.execute(
                f"CREATE TRIGGER trg_{table}_no_truncate BEFORE TRUNCATE ON {table} "
                f"FOR EACH STATEMENT EXECUTE FUNCTION bati_refuse_update('{table} are kept')"
            )


def downgrade() -> None:
    """Drop the guards and the column."""
    dialect = op.get_bind().dialect.name
    guards = [(trigger, table) for trigger, table, _, _ in GUARDS]
    if dialect == "postgresql":
        guards += [(f"trg_{table}_no_truncate", table) for table in NO_TRUNCATE]
    for trigger, table in guards:
        if dialect == "postgresql":
            op.execute(f"DROP TRIGGER IF EXISTS {trigger} ON {table}")
        elif dialect == "sqlite":
            op.execute(f"DROP TRIGGER IF EXISTS {trigger}")
    op.drop_index("ix_prediction_log_client_request_id", table_name="prediction_log")
    op.drop_column("prediction_log", "client_request_id")
