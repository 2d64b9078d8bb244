"""Issue 14 in the flows: references at registration, the promotion gates against broken feeds,
the monitor subflow after scoring and ``python -m flows.monitor``'s JSON contract."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from builders import last_json, run_python

from flows.config import RetrainConfig
from flows.retrain import retrain
from flows.score import score
from registry import Registry, read_monitoring, read_references

GRID = {"logreg": {"clf__C": [0.1]}}


def _config(tmp_path: Path, data: Path, run: str) -> RetrainConfig:
    return RetrainConfig(
        data=str(data),
        db_url=f"sqlite:///{tmp_path / 'reg.db'}",
        candidates=["logreg"],
        grids=GRID,
        importance_repeats=0,
        out_dir=str(tmp_path / run),
    )


def _broken_copies(raw: pd.DataFrame, tmp_path: Path) -> dict[str, Path]:
    shuffled = raw.copy()
    for col in ("CustomerId", "TransactionStartTime"):  # independently, as in the issue
        shuffled[col] = raw[col].sample(frac=1, random_state=len(col)).to_numpy()
    x5 = raw.copy()
    x5["Amount"] *= 5
    x5["Value"] *= 5
    paths = {}
    for name, frame in (("shuffled", shuffled), ("x5", x5)):
        paths[name] = tmp_path / f"{name}.parquet"
        frame.sort_values("TransactionStartTime").to_parquet(paths[name])
    return paths


@pytest.mark.e2e
def test_broken_feeds_are_held_and_scoring_is_monitored(
    prefect_harness, tmp_path, small_raw, small_path
) -> None:
    first = retrain(_config(tmp_path, small_path, "real"))
    assert first["promoted"] and first["gates"] is None
    reg = Registry(f"sqlite:///{tmp_path / 'reg.db'}")
    refs = read_references(reg, "bati-credit", 1)
    assert refs is not None and refs.holdout_rows == len(refs.holdout) > 100
    assert {"training", "holdout", "scored", "iv", "band_pd_ranges"} <= set(refs.distributions)
    assert set(refs.distributions["training"]["inputs"]) == set(refs.distributions["inputs"])

    # Every score run is followed by a monitor run; the same night against itself is stable.
    scored = score(db_url=f"sqlite:///{tmp_path / 'reg.db'}")
    monitored = scored["monitor"]
    for key in ("as_of", "model_version", "score_psi", "max_feature_psi", "feature_psi"):
        assert key in monitored
    assert monitored["model_version"] == 1 and monitored["breaches"] == []
    assert monitored["score_psi"] == 0 and monitored["reference"] == "scored"
    assert 0 < monitored["approval_rate"] < 1
    assert read_monitoring(reg, "bati-credit", kind="stability")[0]["figures"]["score_psi"] == 0

    # Broken feeds: the shuffled file and amounts x5 are held for approval, the champion stays.
    for name, path in _broken_copies(small_raw, tmp_path).items():
        held = retrain(_config(tmp_path, path, name))
        assert held["held"] and not held["promoted"] and held["champion"] == 1, name
        assert "held for approval" in held["promotion_reason"] or "kept" in held["promotion_reason"]
        failures = " ".join(held["gates"]["failures"])
        assert "training inputs differ from champion v1's reference" in failures, name
        decision = reg.decisions("bati-credit", held["model_version"])[-1]
        assert decision.checks["gates"]["drifted_inputs"], name
        # Both models were also compared on the champion's reference holdout.
        assert set(decision.checks["gates"]["reference_holdout"]["champion"]) == {
            "roc_auc",
            "ks",
            "brier",
        }
    assert reg.champion("bati-credit").version == 1
    # The human path stays: promote with an actor and a reason.
    manual = reg.promote("bati-credit", 2, actor="risk-officer", reason="reviewed the hold")
    assert manual.promoted and reg.champion("bati-credit").version == 2


@pytest.mark.e2e
def test_monitor_cli_prints_the_json_contract_last(prefect_harness, tmp_path, small_path) -> None:
    retrain(_config(tmp_path, small_path, "real"))
    score(db_url=f"sqlite:///{tmp_path / 'reg.db'}", monitor=False)
    env = {**os.environ, "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
    env.pop("PREFECT_API_URL", None)
    db_url = f"sqlite:///{tmp_path / 'reg.db'}"
    done = run_python(
        *("-m", "flows.monitor", "--db-url", db_url, "--watch", "0.05", "--act", "0.2"), env=env
    )
    assert done.returncode == 0, done.stderr[-2000:]
    summary = last_json(done)
    for key in (
        "as_of",
        "model_version",
        "score_psi",
        "max_feature_psi",
        "feature_psi",
        "approval_rate",
        "breaches",
    ):
        assert key in summary, key
    assert summary["thresholds"] == {"watch": 0.05, "act": 0.2}
    assert summary["model_version"] == 1 and isinstance(summary["feature_psi"], dict)
    assert np.isclose(summary["max_feature_psi"], max(summary["feature_psi"].values()))
    assert "sqlite" not in json.dumps(summary.get("flow_run_id"))
    # every flow command starts its temporary Prefect server with its first line (issue 16)
    assert "(started with the command, ready after" in done.stderr, done.stderr[-2000:]
