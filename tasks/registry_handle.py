"""One registry handle per flow run and database, closed when the flow ends.

A flow opens the handle with ``with open_registry(db_url):``; its tasks fetch it with
:func:`registry_for` (same URL, same flow run) instead of building a ``Registry`` (engine,
connection pool, migration check) on every call. Outside an open flow (a task run on its own,
``python -m tasks.ingest``) :func:`registry_for` keeps one handle per URL for the process,
closed at exit.
"""

from __future__ import annotations

import atexit
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TYPE_CHECKING

from schemas.settings import setting

if TYPE_CHECKING:
    from registry import Registry

#: Names a Prefect Secret block holding the database URL (used when ``BATI_DB_URL`` is unset).
DB_URL_SECRET_ENV = "BATI_DB_URL_SECRET"
_Key = tuple[str | None, str]
_handles: dict[_Key, Registry] = {}
_lock = threading.Lock()
#: The handles open in the enclosing flows (a subflow, e.g. ``monitor`` inside ``score``,
#: shares its parent's handle on the same URL instead of opening another).
_enclosing: ContextVar[dict[str, Registry] | None] = ContextVar(
    "bati_registry_handles", default=None
)


def database_url(db_url: str | None = None) -> str:
    """``db_url``, else ``BATI_DB_URL``, else the Prefect Secret block named by
    ``BATI_DB_URL_SECRET``, else the registry's default (SQLite in the var/ folder).

    Secrets reach the flow this way, never as flow-run parameters."""
    from registry.db import resolve_url

    name = setting("db_url_secret")
    if db_url or setting("db_url") or not name:
        return resolve_url(db_url)
    from prefect.blocks.system import Secret

    return str(Secret.load(name).get())


def _key(db_url: str | None) -> _Key:
    from prefect.runtime import flow_run

    return (flow_run.get_id(), db_url or "")  # the URL is resolved once, when a handle opens


@contextmanager
def open_registry(db_url: str | None) -> Iterator[Registry]:
    """The current flow run's handle on ``db_url``, closed when the block ends."""
    from registry import Registry

    key = _key(db_url)
    parent = (_enclosing.get() or {}).get(key[1])
    with _lock:
        outer = _handles.get(key)
        if outer is None and parent is not None and not parent.closed:
            _handles[key] = parent  # a subflow: its tasks find the parent's handle
        elif outer is None:
            handle = _handles[key] = Registry(database_url(db_url))
    if outer is not None:  # nested use in the same run: the outer block closes it
        yield outer
        return
    if parent is not None and not parent.closed:
        try:
            yield parent
        finally:
            with _lock:
                _handles.pop(key, None)  # the parent flow closes it
        return
    token = _enclosing.set({**(_enclosing.get() or {}), key[1]: handle})
    try:
        yield handle
    finally:
        _enclosing.reset(token)
        with _lock:
            _handles.pop(key, None)
        handle.close()


def registry_for(db_url: str | None) -> Registry:
    """The open handle of this flow run for ``db_url``; else one per process and URL."""
    from registry import Registry

    with _lock:
        handle = _handles.get(_key(db_url))
    if handle is not None:
        return handle
    url = database_url(db_url)
    with _lock:
        handle = _handles.get((None, url))
        if handle is None:
            handle = _handles[(None, url)] = Registry(url)
        return handle


@atexit.register
def _close_all() -> None:
    with _lock:
        handles = list(_handles.values())
        _handles.clear()
    for handle in handles:
        handle.close()
