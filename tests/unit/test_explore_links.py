"""The EDA report's link in the Prefect UI opens over http from the API, never file://."""

from __future__ import annotations

import logging
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest

import tasks.explore as explore


@pytest.fixture
def captured(monkeypatch: pytest.MonkeyPatch) -> list[dict]:
    links: list[dict] = []

    def fake_report(tx, out_path, **kwargs):
        Path(out_path).parent.mkdir(parents=True, exist_ok=True)
        Path(out_path).write_text("<html></html>")
        return Path(out_path)

    monkeypatch.setattr(explore, "build_eda_report", fake_report)
    monkeypatch.setattr(explore, "get_run_logger", lambda: logging.getLogger("test"))
    monkeypatch.setattr(
        explore, "create_link_artifact", lambda link, **kw: links.append({"link": link, **kw})
    )
    return links


def _sample() -> SimpleNamespace:
    return SimpleNamespace(sample=pd.DataFrame(), sampled=False, rows=0, report=None)


def test_eda_link_is_an_http_report_link(captured, monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("BATI_VAR_DIR", str(tmp_path / "var"))
    monkeypatch.setenv("BATI_API_URL", "http://reports.example:8000")
    from credit.paths import runs_dir

    out = runs_dir() / "run-42" / "eda_report.html"
    explore.eda.fn(_sample(), out)
    assert len(captured) == 1
    link = captured[0]["link"]
    assert link.startswith("http://reports.example:8000/reports/run-42/eda_report.html")
    assert "file:" not in link and str(tmp_path) not in captured[0]["description"]


def test_a_custom_out_dir_gets_no_dead_link(captured, tmp_path) -> None:
    explore.eda.fn(_sample(), tmp_path / "custom" / "eda_report.html")
    assert captured == []
