"""Nightly replay on generated data: retrain -> score (-> monitor subflow) per night."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

FAST_GRID = {"logreg": {"clf__C": [0.1]}}
#: Nights (days after the first transaction) and the night the upstream unit change starts.
NIGHTS = (50, 57, 64, 71, 78)
CHANGE_NIGHT = 64


def replay_data(rows: int = 20_000, customers: int = 600, seed: int = 11) -> pd.DataFrame:
    import sampledata

    return sampledata.generate(rows=rows, customers=customers, seed=seed)


def run_replay(tmp: Path, *, factor: float = 1.0, raw: pd.DataFrame | None = None) -> list[dict]:
    """Per night: the history up to that night (amounts x ``factor`` from ``CHANGE_NIGHT`` on)
    -> retrain (logreg) -> score, whose monitor subflow checks stability. Returns per night the
    retrain decision, its gates and the monitor's figures and breaches."""
    from flows.config import RetrainConfig
    from flows.retrain import retrain
    from flows.score import score

    raw = replay_data() if raw is None else raw
    t = raw["TransactionStartTime"]
    start = t.min().normalize()
    changed = t >= start + pd.Timedelta(days=CHANGE_NIGHT - 1)
    data = raw.copy()
    if factor != 1.0:
        data.loc[changed, "Amount"] *= factor
        data.loc[changed, "Value"] *= factor
    db_url = f"sqlite:///{tmp / 'reg.db'}"
    nights: list[dict[str, Any]] = []
    for night in NIGHTS:
        path = tmp / f"night{night}.parquet"
        data[t < start + pd.Timedelta(days=night)].to_parquet(path)
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
        nights.append(
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
    return nights
