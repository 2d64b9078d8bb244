"""Fixtures of the registry's integration tests: an empty database on each backend."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from registry.core import Registry
from registry.testing import PG_ENV, database_url


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path):
    """An empty database URL on each backend (fresh PG schema per test; PostgreSQL is skipped
    without BATI_TEST_PG_URL)."""
    if request.param == "postgres" and not os.environ.get(PG_ENV):
        pytest.skip(f"PostgreSQL registry tests need {PG_ENV} (e.g. postgresql+psycopg://...)")
    with database_url(request.param, tmp_path) as url:
        yield url


@pytest.fixture
def reg(db_url: str):
    """A :class:`Registry` on :func:`db_url`, closed afterwards."""
    registry = Registry(db_url)
    yield registry
    registry.close()
