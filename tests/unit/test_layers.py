"""The layer rules the README states, checked on every module's imports."""

from __future__ import annotations

import ast

import pytest
from builders import ROOT

PACKAGES = ("schemas", "registry", "credit", "feed", "tasks", "flows", "api", "deployments")
# What each layer may import of the project (itself always allowed).
ALLOWED: dict[str, set[str]] = {
    "schemas": set(),
    "registry": {"schemas"},
    "credit": {"schemas"},
    "feed": {"schemas", "credit", "registry"},
    "tasks": {"schemas", "credit", "registry", "feed"},
    "flows": {"schemas", "credit", "registry", "feed", "tasks", "sampledata"},
    "api": {"schemas", "credit", "registry"},
    "deployments": {"schemas", "tasks", "flows"},
}
PREFECT_FREE = ("schemas", "registry", "credit", "feed", "api")


def _imports(package: str) -> list[tuple[str, int, str]]:
    found = []
    for path in sorted((ROOT / package).rglob("*.py")):
        if "migrations" in path.parts:
            continue
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            found += [(str(path.relative_to(ROOT)), node.lineno, n) for n in names]
    return found


@pytest.mark.parametrize("package", PACKAGES)
def test_each_layer_imports_only_what_the_readme_allows(package: str) -> None:
    project = {*PACKAGES, "sampledata", "bench", "tests"}
    bad = [
        f"{where}:{line} imports {name}"
        for where, line, name in _imports(package)
        if (top := name.split(".")[0]) in project and top != package and top not in ALLOWED[package]
    ]
    assert bad == []


@pytest.mark.parametrize("package", PREFECT_FREE)
def test_domain_registry_and_api_never_import_prefect(package: str) -> None:
    bad = [f"{w}:{n}" for w, n, name in _imports(package) if name.split(".")[0] == "prefect"]
    assert bad == []


def test_the_retrain_flow_file_reads_like_the_pipeline() -> None:
    """flows/retrain.py holds the flow only (issue #12: at most 250 lines); the data stages,
    the config, the CLI and the model card live in modules named for them."""
    source = (ROOT / "flows" / "retrain.py").read_text()
    assert len(source.splitlines()) <= 250
    for name in ("flows.prepare", "flows.config", "flows.cli", "flows.report", "flows.candidates"):
        assert name in source, f"retrain.py no longer uses {name}"
