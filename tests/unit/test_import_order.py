"""The flow commands import ``scipy.special`` before anything heavy (issue 16): skops, imported
at registration or at the champion's load, names each SciPy ufunc by scanning ``sys.modules``
in import order, so the registration at the end of a cold retrain paid ~1 s for the scan when
pandas, Prefect and scikit-learn came first."""

from __future__ import annotations

import subprocess
import sys

import pytest

from credit.paths import PROJECT_ROOT


def _import_order(module: str) -> list[str]:
    """Top-level modules in the order ``python -m <module> --help`` first imports them."""
    out = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", module, "--help"],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    order = []
    for line in out.stderr.splitlines():
        if line.startswith("import time:") and "|" in line:
            name = line.rsplit("|", 1)[1].strip()
            if name not in order:
                order.append(name)
    return order


@pytest.mark.parametrize("module", ["flows.retrain", "flows.nightly", "flows.score"])
def test_flow_commands_import_scipy_special_first(module):
    order = _import_order(module)
    assert "scipy.special" in order and "skops" not in order  # skops: only when it is used
    first = order.index("scipy.special")
    assert {"pandas", "prefect", "sklearn", "sqlalchemy"} <= set(order)
    for heavy in ("pandas", "prefect", "sklearn", "sqlalchemy", "matplotlib", "pandera"):
        assert heavy not in order or first < order.index(heavy), heavy
