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

from registry.migrations.ddl import create_index, drop_index
from registry.migrations.guards import create_guards, drop_guards, refuse

revision: str = "0002_append_only"
down_revision: str | Sequence[str] | None = "0001_initial"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

#: (trigger, table, event, message): every row-level guard this revision adds.
GUARDS = (
    refuse("model_versions", "DELETE", "model_versions are never deleted"),
    refuse("model_artifacts", "DELETE", "model_artifacts are never deleted"),
    refuse("promotion_events", "DELETE", "promotion_events are append-only"),
    refuse("promotion_events", "UPDATE", "promotion_events are append-only"),
)
#: PostgreSQL: TRUNCATE skips row triggers, so it gets statement-level guards.
NO_TRUNCATE = ("model_versions", "model_artifacts", "promotion_events")


def upgrade() -> None:
    """Add ``prediction_log.client_request_id`` and the DELETE/TRUNCATE guards."""
    op.add_column("prediction_log", sa.Column("client_request_id", sa.String(128), nullable=True))
    create_index("prediction_log", "client_request_id")
    create_guards(op.get_bind().dialect.name, GUARDS, NO_TRUNCATE)


def downgrade() -> None:
    """Drop the guards and the column."""
    drop_guards(op.get_bind().dialect.name, GUARDS, NO_TRUNCATE)
    drop_index("prediction_log", "client_request_id")
    op.drop_column("prediction_log", "client_request_id")
