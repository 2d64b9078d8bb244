"""Probability of default -> 300-850 credit score by points-to-double-odds scaling.

``score = offset + factor * ln(odds)`` with ``odds = (1 - pd) / pd`` (good:bad),
``factor = pdo / ln 2`` and ``offset = base_score - factor * ln(base_odds)``.
Default anchor (credit/policy.toml): 600 points at 50:1 good:bad odds (PD 1/51), 20 points to
double the odds. Scores are rounded to integers and clipped to ``[min_score, max_score]``;
the mapping is monotone: a higher PD never gets a higher score.
Risk bands are score floors, best band first (configured in policy.toml ``[[bands]]``).
"""

from __future__ import annotations

import math
import tomllib
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

POLICY_PATH = Path(__file__).with_name("policy.toml")
PD_EPS = 1e-6

DEFAULT_BANDS: dict[str, float] = {"A": 580, "B": 550, "C": 520, "D": 490, "E": 300}


def read_policy_file(path: Path | None = None) -> dict[str, Any]:
    """The tables of policy.toml (``path``, default :data:`POLICY_PATH`)."""
    with open(path or POLICY_PATH, "rb") as fh:
        return tomllib.load(fh)


@dataclass
class Scorecard:
    """Points-to-double-odds score scaling plus score bands (``{band: min_score}``)."""

    base_score: float = 600
    base_odds: float = 50
    pdo: float = 20
    min_score: int = 300
    max_score: int = 850
    bands: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_BANDS))

    def __post_init__(self) -> None:
        if self.pdo <= 0 or self.base_odds <= 0:
            raise ValueError("pdo and base_odds must be positive")
        if self.min_score >= self.max_score:
            raise ValueError("min_score must be below max_score")
        floors = list(self.bands.values())
        if not floors or any(a <= b for a, b in zip(floors, floors[1:], strict=False)):
            raise ValueError("bands must be listed best first with strictly decreasing floors")
        if floors[-1] > self.min_score:
            raise ValueError("the last band's floor must be <= min_score so every score has a band")

    @property
    def factor(self) -> float:
        """Points per unit of log-odds: ``pdo / ln 2``."""
        return self.pdo / math.log(2)

    @property
    def offset(self) -> float:
        """Score at even (1:1) odds: ``base_score - factor * ln(base_odds)``."""
        return self.base_score - self.factor * math.log(self.base_odds)

    def raw_score(self, pd: np.ndarray | float) -> np.ndarray:
        """Unrounded, unclipped score of a PD (clipped to ``[1e-6, 1 - 1e-6]``)."""
        p = np.clip(np.asarray(pd, dtype=float), PD_EPS, 1 - PD_EPS)
        return self.offset + self.factor * np.log((1 - p) / p)

    def score(self, pd: np.ndarray | float) -> np.ndarray:
        """Integer score in ``[min_score, max_score]``; higher means lower risk."""
        raw = np.rint(self.raw_score(pd))
        return np.clip(raw, self.min_score, self.max_score).astype(np.int64)

    def pd_from_score(self, score: np.ndarray | float) -> np.ndarray:
        """Inverse mapping: the PD whose (unrounded) score is ``score``."""
        s = np.asarray(score, dtype=float)
        return 1.0 / (1.0 + np.exp((s - self.offset) / self.factor))

    def band(self, score: np.ndarray | float) -> np.ndarray | str:
        """Band name of each score (a str for a scalar, an object array otherwise)."""
        names = np.array(list(self.bands), dtype=object)
        floors = np.array(list(self.bands.values()), dtype=float)
        s = np.asarray(score, dtype=float)
        # floors are decreasing: the band is the first floor <= score
        idx = np.searchsorted(-floors, -s, side="left")
        idx = np.clip(idx, 0, len(floors) - 1)
        return str(names[int(idx)]) if s.ndim == 0 else names[idx]

    def to_dict(self) -> dict[str, Any]:
        """Plain-dict form (for skops-persisted models and JSON)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Scorecard:
        return cls(**data)

    @classmethod
    def from_toml(cls, path: Path | None = None) -> Scorecard:
        """Scaling from ``[scorecard]`` and band floors from ``[[bands]]`` of policy.toml."""
        cfg = read_policy_file(path)
        params = dict(cfg.get("scorecard", {}))
        if "bands" in cfg:
            params["bands"] = {b["name"]: float(b["min_score"]) for b in cfg["bands"]}
        return cls(**params)
