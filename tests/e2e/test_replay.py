"""Nightly replay on generated data: retrain -> score (-> monitor subflow) per night, with and
without an upstream unit change (amounts x5)."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

FAST_GRID = {"logreg": {"clf__C": [0.1]}}
#: Nights (days after the first transaction) and the night the upstream unit change starts.
NIGHTS = (50, 57, 64, 71, 78)
CHANGE_NIGHT = 64


def replay_data(rows: int = 40_000, customers: int = 1_500, seed: int = 11) -> pd.DataFrame:
    import sampledata

    return sampledata.generate(rows=rows, customers=customers, seed=seed)


def _history(raw: pd.DataFrame, factor: float) -> tuple[pd.DataFrame, pd.Timestamp]:
    """The generated history with amounts x ``factor`` from ``CHANGE_NIGHT`` on."""
    t = raw["TransactionStartTime"]
    start = t.min().normalize()
    data = raw.copy()
    if factor != 1.0:
        changed = t >= start + pd.Timedelta(days=CHANGE_NIGHT - 1)
        data.loc[changed, "Amount"] *= factor
        data.loc[changed, "Value"] *= factor
    return data, start


def run_nights(tmp: Path, data: pd.DataFrame, start: pd.Timestamp, nights: tuple[int, ...]):
    """Per night: the history up to that night -> retrain (logreg) -> score, whose monitor
    subflow checks stability. Returns per night the retrain's decision and gates and the
    monitor's figures and breaches."""
    from flows.config import RetrainConfig
    from flows.retrain import retrain
    from flows.score import score

    db_url = f"sqlite:///{tmp / 'reg.db'}"
    out: list[dict[str, Any]] = []
    for night in nights:
        path = tmp / f"night{night}.parquet"
        data[data["TransactionStartTime"] < start + pd.Timedelta(days=night)].to_parquet(path)
        config = RetrainConfig(
            data=str(path),
            db_url=db_url,
            candidates=["logreg"],
            grids=FAST_GRID,
            observation_days=21,
            performance_days=7,
            importance_repeats=0,
            out_dir=str(tmp / f"run{night}"),
        )
        retrained = retrain(config)
        scored = score(db_url=db_url)
        out.append(
            {
                "night": night,
                "version": retrained["model_version"],
                "promoted": retrained["promoted"],
                "champion": retrained["champion"],
                "held": retrained["held"],
                "gates": retrained["gates"],
                "reason": retrained["promotion_reason"],
                "monitor": scored["monitor"],
            }
        )
    return out


def run_replay(tmp: Path, *, factor: float = 1.0, raw: pd.DataFrame | None = None) -> list[dict]:
    """The whole replay in ``tmp`` (amounts x ``factor`` from ``CHANGE_NIGHT`` on)."""
    data, start = _history(replay_data() if raw is None else raw, factor)
    return run_nights(tmp, data, start, NIGHTS)


def _breaches(night: dict) -> list[dict]:
    """Stability breaches (score, band mix, inputs) of the night's monitor run."""
    return night["monitor"]["breaches"]


def _decay_breaches(night: dict) -> list[dict]:
    """Decay breaches (realized AUC, band default rates) of the score runs judged that night."""
    return [b for d in night["monitor"]["decay"] for b in d["breaches"]]


@pytest.mark.e2e
def test_replay_holds_a_unit_change_and_promotes_normally_without_it(
    prefect_harness, tmp_path: Path
) -> None:
    """Issue 14, item 8: five nights with and without amounts x5 from night 3 on. The two
    replays share their first nights (same data), then branch from a copy of the registry."""
    raw = replay_data()
    before = tuple(n for n in NIGHTS if n < CHANGE_NIGHT)
    after = tuple(n for n in NIGHTS if n >= CHANGE_NIGHT)
    common = tmp_path / "common"
    common.mkdir()
    data, start = _history(raw, 1.0)
    shared = run_nights(common, data, start, before)
    results = {}
    for factor in (1.0, 5.0):
        branch = tmp_path / f"x{factor:g}"
        branch.mkdir()
        shutil.copy(common / "reg.db", branch / "reg.db")
        data, start = _history(raw, factor)
        results[factor] = shared + run_nights(branch, data, start, after)

    normal, changed = results[1.0], results[5.0]
    assert len(normal) == len(changed) == len(NIGHTS) >= 5
    # Without the change: no breach of any kind on any night, no challenger held, promotions
    # as usual. Decay is judged once a score run's 7-day window has matured: on >= 2 nights.
    assert [b for night in normal for b in _breaches(night)] == []
    assert sum(1 for night in normal if night["monitor"]["decay"]) >= 2
    assert [b for night in normal for b in _decay_breaches(night)] == []
    assert not any(night["held"] for night in normal)
    assert normal[0]["promoted"] and all(n["gates"]["passed"] for n in normal[1:])

    # With it: input stability breaches at the act level, and a challenger that would have been
    # promoted is held, the champion stays a model of the unchanged data.
    acted = [
        b
        for night in changed
        for b in _breaches(night)
        if b["metric"].startswith("feature_psi.") and b["level"] == "act"
    ]
    assert acted, [night["monitor"]["max_feature_psi"] for night in changed]
    assert {"feature_psi.amount_mean", "feature_psi.value_mean"} & {b["metric"] for b in acted}
    held = [n for n in changed if n["held"]]
    assert held and any("training inputs differ" in f for f in held[-1]["gates"]["failures"])
    assert "held for approval" in held[-1]["reason"]
    assert all(not n["promoted"] for n in held)
    assert changed[-1]["champion"] not in {n["version"] for n in held}
