"""Shared fixtures. Every test runs with generated files and Prefect state under a temp folder."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

_SESSION_TMP = Path(tempfile.mkdtemp(prefix="bati-tests-"))
# Set before any test module imports prefect or the registry, and set unconditionally: `make`
# exports the project's own var/prefect for `make run` and `make server`, which the tests must
# neither write into nor read from.
os.environ["PREFECT_HOME"] = str(_SESSION_TMP / "prefect")
os.environ["PREFECT_RESULTS_LOCAL_STORAGE_PATH"] = str(_SESSION_TMP / "prefect/results")
os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
os.environ["DO_NOT_TRACK"] = "1"
os.environ["BATI_VAR_DIR"] = str(_SESSION_TMP / "var")
os.environ["BATI_DB_URL"] = f"sqlite:///{_SESSION_TMP / 'var' / 'bati.db'}"

from builders import SAMPLE_HEAD, SHARED  # noqa: E402  (after the environment is set)

REFERENCE = SHARED / "data" / "xente" / "REFERENCE.md"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests marked ``long`` first (the order is otherwise kept): xdist hands tests out in
    collection order, and a long test started last keeps one worker busy after the other one
    has run out of tests."""
    items.sort(key=lambda item: item.get_closest_marker("long") is None)


@pytest.fixture(scope="session")
def sample_head_path() -> Path:
    """The 54 real Xente rows (../shared beside the checkout, as CI lays it out)."""
    if not SAMPLE_HEAD.exists():
        pytest.fail(f"{SAMPLE_HEAD} is missing: tests expect ../shared beside the checkout")
    return SAMPLE_HEAD


@pytest.fixture(scope="session")
def demo_raw():
    """The default generated demo set (95,662 rows), raw 16 columns."""
    import sampledata

    return sampledata.generate()


@pytest.fixture(scope="session")
def demo_path(tmp_path_factory, demo_raw) -> Path:
    """The default demo set written as Parquet once per session."""
    import sampledata

    path = tmp_path_factory.mktemp("demo") / "xente_demo.parquet"
    sampledata.write(demo_raw, path)
    return path


@pytest.fixture(scope="session")
def prefect_harness():
    """One Prefect test server for the whole session (generous start-up on 2 cores)."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=90):
        yield


@pytest.fixture(scope="session")
def small_raw():
    """A small generated set (fast flows in tests): 30,000 rows, 900 customers."""
    import sampledata

    return sampledata.generate(rows=30_000, customers=900, seed=7)


@pytest.fixture(scope="session")
def small_path(tmp_path_factory, small_raw) -> Path:
    import sampledata

    path = tmp_path_factory.mktemp("small") / "xente_small.parquet"
    sampledata.write(small_raw, path)
    return path
