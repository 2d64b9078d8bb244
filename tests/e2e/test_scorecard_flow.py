"""The scorecard candidate through a real retrain: uncalibrated, points table in the run folder,
as a Prefect artifact, stored with the registered version and served by the API (issue 17.1)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from credit.woe_scorecard import POINTS_COLUMNS
from flows.retrain import RetrainConfig, retrain
from registry import Registry

SCORECARD_GRID = {"scorecard": {"clf__C": [1.0]}}


@pytest.mark.e2e
def test_scorecard_retrain_publishes_stores_and_serves_the_points_table(
    prefect_harness, tmp_path, small_path, monkeypatch
):
    from prefect.artifacts import Artifact

    from api import create_app
    from credit.scoring import CreditRiskModel

    config = RetrainConfig(
        data=str(small_path),
        db_url=f"sqlite:///{tmp_path / 'reg.db'}",
        grids=SCORECARD_GRID,
        candidates=["scorecard"],
        importance_repeats=1,
        out_dir=str(tmp_path / "run"),
    )
    summary = retrain(config)
    assert summary["candidate"] == "scorecard" and summary["model_version"] == 1

    csv = pd.read_csv(Path(config.out_dir) / "scorecard.csv")
    assert list(csv.columns) == list(POINTS_COLUMNS) and len(csv) > 0
    artifact = Artifact.get("scorecard")
    assert artifact is not None and str(artifact.flow_run_id) == summary["flow_run_id"]
    # what a person reads in the UI: 4 decimals, no 16-digit floats nor -3.3e-16 for a 0 WoE
    shown = json.loads(artifact.data) if isinstance(artifact.data, str) else artifact.data
    assert [r["feature"] for r in shown] == list(csv["feature"])
    floats = [v for r in shown for v in r.values() if isinstance(v, float) and v == v]
    assert floats and all(round(v, 4) == v and str(v) != "-0.0" for v in floats)
    assert [r["points"] for r in shown] == pytest.approx(list(csv["points"]), abs=5e-5)

    reg = Registry(config.db_url)
    info = reg.get_version("bati-credit", 1)
    stored = info.extra["points_table"]
    assert [r["feature"] for r in stored] == list(csv["feature"])
    assert [r["points"] for r in stored] == pytest.approx(list(csv["points"]))
    # never calibrated: the PD is the one the points add up to
    assert info.params["calibration"]["method"] == "none"
    model = reg.load_model("bati-credit", 1)
    X = pd.read_parquet(Path(config.out_dir) / "feature_snapshot.parquet")
    card = model.estimator_.steps[-1][1]
    np.testing.assert_allclose(
        card.total_points(X), model.get_scorecard().raw_score(model.predict_pd(X)), atol=1e-6
    )

    # the API serves the stored table (the model object is not asked for it)
    def no_table(self):
        raise AssertionError("the API should serve the stored points table")

    monkeypatch.setattr(CreditRiskModel, "points_table", no_table)
    app = create_app({"db_url": config.db_url, "start_background": False})
    try:
        resp = app.test_client().get("/v1/models/1/scorecard")
    finally:
        app.extensions["bati"].close()
    assert resp.status_code == 200, resp.get_data(as_text=True)
    rows = resp.get_json()["rows"]
    assert [r["bin"] for r in rows] == [str(b) for b in csv["bin"]]
    assert [r["points"] for r in rows] == pytest.approx(list(csv["points"]))
