"""The nightly flow replayed night by night on a real Prefect server (the session harness).

The generated span is 91 days and one training window is 90 (60 observation + 30 performance):
the first night lands days 1-86 at once (a bank starting the service brings its history), then
one day per night, with one night without a new file. Small data (20,000 rows, 600 customers) and one candidate with a one-point
grid keep the test near a minute.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pytest

from flows.nightly import NightlyConfig, NoSourceError, nightly
from registry import Registry

MODEL = "nightly-replay"
FAST = {
    "candidates": ["logreg"],
    "grids": {"logreg": {"clf__C": [0.3], "prep__encoding": ["onehot"]}},
    "importance_repeats": 0,
    "n_jobs": 1,
    "model_name": MODEL,
}


def _flow_runs(flow_name: str, since: datetime) -> list:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        FlowFilter,
        FlowFilterName,
        FlowRunFilter,
        FlowRunFilterStartTime,
    )

    with get_client(sync_client=True) as client:
        return client.read_flow_runs(
            flow_filter=FlowFilter(name=FlowFilterName(any_=[flow_name])),
            flow_run_filter=FlowRunFilter(start_time=FlowRunFilterStartTime(after_=since)),
        )


@pytest.fixture()
def days(tmp_path: Path) -> list[Path]:
    out = tmp_path / "days"
    cmd = [sys.executable, "-m", "sampledata", "--rows", "20000", "--customers", "600"]
    subprocess.run([*cmd, "--seed", "3", "--daily", str(out)], check=True, capture_output=True)
    return sorted(out.glob("*.csv"))


def test_replay_nights_train_once_per_new_data_and_score_once_per_retrain(
    prefect_harness, tmp_path: Path, days: list[Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    from prefect.variables import Variable

    monkeypatch.setenv("BATI_DB_URL", f"sqlite:///{tmp_path / 'bati.db'}")
    monkeypatch.delenv("BATI_LANDING", raising=False)
    landing, store = tmp_path / "landing", str(tmp_path / "store")
    landing.mkdir()
    # A deployment run with no source fails at once, naming the settings.
    with pytest.raises(NoSourceError, match="BATI_LANDING.*bati-landing"):
        nightly(NightlyConfig(store=store, **FAST))
    since = datetime.now(UTC)
    nights = [days[:86], [days[86]], [days[87]], [], [days[88]]]  # five nights
    summaries = []
    for k, files in enumerate(nights):
        for f in files:
            shutil.copy(f, landing / f.name)
        if k == 1:  # the source as a Prefect Variable, as a deployment would find it
            Variable.set("bati-landing", str(landing), overwrite=True)
            config = NightlyConfig(store=store, **FAST)
        else:
            config = NightlyConfig(landing=str(landing), store=store, **FAST)
        summaries.append(nightly(config))
    Variable.unset("bati-landing")

    landed = pd.concat([pd.read_csv(f) for n in nights for f in n])
    assert sum(s["new_rows"] for s in summaries) == len(landed) == summaries[-1]["store_rows"]
    assert [s["new_files"] for s in summaries] == [86, 1, 1, 0, 1]
    assert [s["trained"] for s in summaries] == [True, True, True, False, True]
    assert [s["model_version"] for s in summaries] == [1, 2, 3, None, 4]
    skipped = summaries[3]
    assert "nothing new since nightly-replay v3" in skipped["skipped_reason"]
    assert skipped["scored"] == 0 and skipped["promoted"] is False
    with Registry(f"sqlite:///{tmp_path / 'bati.db'}") as registry:
        versions = registry.list_versions(MODEL)
    assert [v.version for v in versions] == [1, 2, 3, 4]  # none on the night without data
    assert len({v.data_fingerprint for v in versions}) == 4
    # Every completed retrain triggered exactly one score run, and only those did.
    retrains = [r for r in _flow_runs("retrain", since) if r.state and r.state.is_completed()]
    scores = _flow_runs("score", since)
    assert len(retrains) == len(scores) == 4
    assert {str(r.id) for r in scores} == {
        s["score"]["flow_run_id"] for s in summaries if s["score"]
    }
