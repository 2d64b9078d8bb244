"""Loan recommendation: amount and duration from the score band and spending capacity.

For each customer (vectorised):

* band = first band (best first) whose ``min_score <= score``;
* monthly capacity = debit spending over the observation window scaled to 30 days
  (:func:`spending_capacity`);
* amount = ``min(spend_multiple[band] * capacity, max_amount[band])`` rounded down to
  ``rounding``; declined when the band does not approve or the amount is below ``min_amount``;
* duration = ``duration_days[band]`` when approved, else 0;
* expected loss = PD x LGD x EAD with EAD = the recommended amount.

All numbers come from credit/policy.toml. Loading checks the bands are monotone (multiples, caps
and durations never increase for riskier bands, approval never switches back on), which makes
the recommendation monotone: for equal spending, a lower score never gets a larger amount or a
longer duration.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from credit.scorecard import read_policy_file

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BandRule:
    """Lending terms of one risk band."""

    name: str
    min_score: float
    approve: bool
    spend_multiple: float
    max_amount: float
    duration_days: int


@dataclass(frozen=True)
class CapacityConfig:
    """Where the monthly spending capacity comes from in the customer table."""

    spend_columns: tuple[str, ...] = ("debit_sum",)
    window_column: str | None = "window_days"
    default_window_days: float = 60.0
    days_per_month: float = 30.0


def spending_capacity(X: pd.DataFrame, config: CapacityConfig | None = None) -> pd.Series:
    """Monthly spending capacity per customer (UGX / 30 days), >= 0, indexed like ``X``.

    Uses the first of ``config.spend_columns`` present in ``X`` (negative and missing values
    count as 0) divided by the window length (``config.window_column`` when present and
    positive, else ``default_window_days``) times ``days_per_month``. Without any spend column
    every capacity is 0 (so nobody is lent anything) and a warning is logged.
    """
    config = config or CapacityConfig()
    spend_col = next((c for c in config.spend_columns if c in X.columns), None)
    if spend_col is None:
        log.warning("no spend column among %s: spending capacity is 0", config.spend_columns)
        return pd.Series(0.0, index=X.index, name="monthly_capacity")
    spend = pd.to_numeric(X[spend_col], errors="coerce").astype(float).fillna(0.0).clip(lower=0)
    window = pd.Series(float(config.default_window_days), index=X.index)
    if config.window_column and config.window_column in X.columns:
        w = pd.to_numeric(X[config.window_column], errors="coerce").astype(float)
        window = w.where(w > 0, float(config.default_window_days))
    return (spend / window * config.days_per_month).rename("monthly_capacity")


@dataclass
class LoanPolicy:
    """Band-based lending policy (see the module docstring)."""

    bands: tuple[BandRule, ...]
    lgd: float = 0.65
    min_amount: float = 5000.0
    rounding: float = 1000.0
    currency: str = "UGX"
    capacity: CapacityConfig = field(default_factory=CapacityConfig)

    def __post_init__(self) -> None:
        self.bands = tuple(b if isinstance(b, BandRule) else BandRule(**b) for b in self.bands)
        if isinstance(self.capacity, dict):
            cap = dict(self.capacity)
            cap["spend_columns"] = tuple(cap.get("spend_columns", ("debit_sum",)))
            self.capacity = CapacityConfig(**cap)
        if not self.bands:
            raise ValueError("a policy needs at least one band")
        if not 0 <= self.lgd <= 1:
            raise ValueError("lgd must be in [0, 1]")
        if self.min_amount < 0 or self.rounding <= 0:
            raise ValueError("min_amount must be >= 0 and rounding > 0")
        for better, worse in zip(self.bands, self.bands[1:], strict=False):
            checks = {
                "min_score": worse.min_score < better.min_score,
                "spend_multiple": worse.spend_multiple <= better.spend_multiple,
                "max_amount": worse.max_amount <= better.max_amount,
                "duration_days": worse.duration_days <= better.duration_days,
                "approve": better.approve or not worse.approve,
            }
            bad = [k for k, ok in checks.items() if not ok]
            if bad:
                raise ValueError(
                    f"policy not monotone between bands {better.name} and {worse.name}: {bad}"
                )

    @property
    def band_floors(self) -> dict[str, float]:
        """``{band: min_score}`` best first (the Scorecard's ``bands``)."""
        return {b.name: float(b.min_score) for b in self.bands}

    def band_index(self, score: np.ndarray) -> np.ndarray:
        """Position in ``bands`` of each score (0 = best)."""
        floors = np.array([b.min_score for b in self.bands], dtype=float)
        idx = np.searchsorted(-floors, -np.asarray(score, dtype=float), side="left")
        return np.clip(idx, 0, len(floors) - 1)

    def recommend(
        self, pd_: np.ndarray, score: np.ndarray, monthly_spend: np.ndarray
    ) -> pd.DataFrame:
        """Columns band, approved, amount, duration_days, expected_loss (one row per customer)."""
        pd_ = np.asarray(pd_, dtype=float)
        spend = np.nan_to_num(np.asarray(monthly_spend, dtype=float), nan=0.0)
        spend = np.clip(spend, 0.0, None)
        idx = self.band_index(score)
        names = np.array([b.name for b in self.bands], dtype=object)
        approve = np.array([b.approve for b in self.bands], dtype=bool)[idx]
        multiple = np.array([b.spend_multiple for b in self.bands], dtype=float)[idx]
        cap = np.array([b.max_amount for b in self.bands], dtype=float)[idx]
        duration = np.array([b.duration_days for b in self.bands], dtype=np.int64)[idx]
        amount = np.floor(np.minimum(multiple * spend, cap) / self.rounding) * self.rounding
        approved = approve & (amount >= self.min_amount) & (amount > 0)
        amount = np.where(approved, amount, 0.0)
        return pd.DataFrame(
            {
                "band": names[idx],
                "approved": approved,
                "amount": amount,
                "duration_days": np.where(approved, duration, 0).astype(np.int64),
                "expected_loss": pd_ * self.lgd * amount,
            }
        )

    def to_dict(self) -> dict[str, Any]:
        """Plain nested dict (bands as a list of dicts; skops- and JSON-friendly)."""
        data = asdict(self)
        data["bands"] = [asdict(b) for b in self.bands]
        data["capacity"]["spend_columns"] = list(self.capacity.spend_columns)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LoanPolicy:
        data = dict(data)
        data["bands"] = tuple(BandRule(**b) for b in data["bands"])
        return cls(**data)

    @classmethod
    def from_toml(cls, path: Path | None = None) -> LoanPolicy:
        """Policy from ``[policy]``, ``[capacity]`` and ``[[bands]]`` of policy.toml."""
        cfg = read_policy_file(path)
        params = dict(cfg.get("policy", {}))
        params["bands"] = tuple(BandRule(**b) for b in cfg["bands"])
        if "capacity" in cfg:
            params["capacity"] = cfg["capacity"]
        return cls(**params)
