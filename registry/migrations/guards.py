"""Row and statement guards the migrations create: refuse UPDATE (of some columns), DELETE
or TRUNCATE of a table.

Shared by every revision that guards a table, so each states only *which* guards it adds.
Every name here comes from a revision's own constant tuples, never from input.
"""

from __future__ import annotations

from collections.abc import Iterable

from alembic import op

#: (trigger, table, event, message)
Guard = tuple[str, str, str, str]


def refuse(table: str, event: str, message: str) -> Guard:
    """The guard named ``trg_<table>_no_<event>`` that refuses ``event`` (DELETE, UPDATE)."""
    return (f"trg_{table}_no_{event.lower()}", table, event, message)


def create_guards(dialect: str, guards: Iterable[Guard], no_truncate: Iterable[str] = ()) -> None:
    """Row-level triggers raising ``message`` (PostgreSQL: ``bati_refuse_update`` of 0001);
    ``event`` is ``UPDATE``, ``UPDATE OF <columns>`` or ``DELETE``."""
    for trigger, table, event, message in guards:
        if dialect == "sqlite":
            op.execute(
                f"CREATE TRIGGER {trigger} BEFORE {event} ON {table} "
                f"BEGIN SELECT RAISE(ABORT, '{message}'); END"
            )
        elif dialect == "postgresql":
            op.execute(
                f"CREATE TRIGGER {trigger} BEFORE {event} ON {table} FOR EACH ROW "
                f"EXECUTE FUNCTION bati_refuse_update('{message}')"
            )
    if dialect == "postgresql":  # TRUNCATE skips row triggers
        for table in no_truncate:
            op.execute(
                f"CREATE TRIGGER trg_{table}_no_truncate BEFORE TRUNCATE ON {table} "
                f"FOR EACH STATEMENT EXECUTE FUNCTION bati_refuse_update('{table} are kept')"
            )


def drop_guards(dialect: str, guards: Iterable[Guard], no_truncate: Iterable[str] = ()) -> None:
    """Drop what :func:`create_guards` made."""
    pairs = [(trigger, table) for trigger, table, _, _ in guards]
    if dialect == "postgresql":
        pairs += [(f"trg_{table}_no_truncate", table) for table in no_truncate]
    for trigger, table in pairs:
        if dialect == "postgresql":
            op.execute(f"DROP TRIGGER IF EXISTS {trigger} ON {table}")
        elif dialect == "sqlite":
            op.execute(f"DROP TRIGGER IF EXISTS {trigger}")
