"""Table and index DDL the revisions share: the naming convention is stated once, here.

``pk_<table>``, ``fk_<table>_<column>_<referred table>``, ``ix_<table>_<columns>`` and
``uq_<table>_<columns>``: every name is built from a revision's own constants, never from input.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

TS = sa.DateTime(timezone=True)


def index_name(table: str, columns: Sequence[str], *, unique: bool = False) -> str:
    """``ix_<table>_<columns>`` (``uq_`` when unique)."""
    return f"{'uq' if unique else 'ix'}_{table}_{'_'.join(columns)}"


def create_index(table: str, *columns: str, unique: bool = False) -> None:
    """An index named by :func:`index_name`."""
    op.create_index(index_name(table, columns, unique=unique), table, list(columns), unique=unique)


def drop_index(table: str, *columns: str, unique: bool = False) -> None:
    """Drop what :func:`create_index` made."""
    op.drop_index(index_name(table, columns, unique=unique), table_name=table)


def foreign_key(
    table: str, column: str, target: str, on_delete: str | None = None
) -> sa.ForeignKeyConstraint:
    """``table.column`` referring to ``target.id``, named ``fk_<table>_<column>_<target>``."""
    return sa.ForeignKeyConstraint(
        [column], [f"{target}.id"], name=f"fk_{table}_{column}_{target}", ondelete=on_delete
    )


def create_table(
    name: str,
    *columns: sa.Column[Any],
    primary_key: Sequence[str] = ("id",),
    references: Mapping[str, str] | None = None,
    on_delete: str | None = None,
    constraints: Iterable[sa.Constraint] = (),
    indexes: Iterable[Sequence[str]] = (),
) -> None:
    """``CREATE TABLE`` with the named primary key (``id``: an integer column put first), a
    foreign key per ``references`` item (column -> referred table, on its ``id``;
    ``on_delete`` for every one of them), ``constraints``, then one index per ``indexes`` item.

    SQLAlchemy emits constraints in the order they were *made*: a table whose foreign key
    must come before constraints the caller makes passes :func:`foreign_key` among them."""
    if tuple(primary_key) == ("id",):  # a surrogate key
        columns = (sa.Column("id", sa.Integer(), nullable=False), *columns)
    keys = [
        foreign_key(name, column, target, on_delete)
        for column, target in (references or {}).items()
    ]
    op.create_table(
        name,
        *columns,
        sa.PrimaryKeyConstraint(*primary_key, name=f"pk_{name}"),
        *keys,
        *constraints,
    )
    for index in indexes:
        create_index(name, *index)


def create_audit_table(name: str, *columns: sa.Column[Any], evidence: str) -> None:
    """An append-only record of what was decided about a registered model: ``id``,
    ``model_id`` (indexed), ``columns``, then who (``actor``), why (``reason``), the JSON
    ``evidence`` and when (``created_at``)."""
    create_table(
        name,
        sa.Column("model_id", sa.Integer(), nullable=False),
        *columns,
        sa.Column("actor", sa.String(128), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column(evidence, sa.JSON(), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        references={"model_id": "registered_models"},
        indexes=[("model_id",)],
    )


def create_json_snapshots() -> None:
    """Revision 0001's ``feature_snapshots`` (one JSON text per customer and date); revision
    0003 replaces it with columnar snapshots and re-creates it on downgrade."""
    create_table(
        "feature_snapshots",
        sa.Column("customer_id", sa.String(128), nullable=False),
        sa.Column("as_of", TS, nullable=False),
        sa.Column("run_id", sa.String(64), nullable=False),
        sa.Column("model_name", sa.String(128), nullable=True),
        sa.Column("features", sa.Text(), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        primary_key=("customer_id", "as_of"),
        indexes=[("as_of",)],
    )
