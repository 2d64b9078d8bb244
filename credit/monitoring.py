"""Model monitoring: population stability (PSI/CSI) against stored references, and decay.

References are made once, when a version is registered, from the data the model was built on:
numeric inputs get quantile bins (edges from the reference only, a separate bin for missing
values), categorical inputs one bin per level seen plus ``other``. Every later comparison uses
the stored edges and proportions, so the figures of different nights are comparable.

PSI = sum((actual - expected) * ln(actual / expected)) over the bins, with empty bins floored at
``PSI_FLOOR``. Reading (Siddiqi): < 0.10 stable, 0.10-0.25 watch, > 0.25 act.

Decay (:func:`decay_report`): once the performance window of a past score run has matured, the
realized label of the customers scored then gives the realized ROC-AUC, KS and Brier, and per
band the realized default rate against the band's mean predicted PD.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd
from sklearn.metrics import brier_score_loss, roc_auc_score

from credit.evaluate import ks_statistic

PSI_FLOOR = 1e-4
WATCH = 0.10
ACT = 0.25
DEFAULT_BINS = 10
MAX_LEVELS = 30
AUC_DROP = 0.05
Level = Literal["watch", "act"]


@dataclass(frozen=True)
class BinnedReference:
    """The bins of one variable on the reference population, and its share in each bin.

    Numeric: ``edges`` are the interior cut points; bin i holds edges[i-1] < x <= edges[i], and a
    last bin holds missing values. Categorical: one bin per level in ``levels``, then ``other``
    (levels unseen in the reference), then missing.
    """

    name: str
    kind: Literal["numeric", "categorical"]
    proportions: tuple[float, ...]
    n: int
    edges: tuple[float, ...] = ()
    levels: tuple[str, ...] = ()

    def bin_labels(self) -> list[str]:
        if self.kind == "categorical":
            return [*self.levels, "other", "missing"]
        bounds = ["-inf", *(f"{e:.6g}" for e in self.edges), "inf"]
        return [f"({a}, {b}]" for a, b in zip(bounds[:-1], bounds[1:], strict=True)] + ["missing"]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> BinnedReference:
        return cls(
            name=data["name"],
            kind=data["kind"],
            proportions=tuple(data["proportions"]),
            n=int(data["n"]),
            edges=tuple(data.get("edges", ())),
            levels=tuple(data.get("levels", ())),
        )


def _is_numeric(values: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values)


def bin_reference(
    values: pd.Series, name: str | None = None, n_bins: int = DEFAULT_BINS
) -> BinnedReference:
    """Bins and proportions of ``values`` (the reference population)."""
    name = str(name or values.name)
    if _is_numeric(values):
        x = values.to_numpy(dtype=np.float64)
        finite = x[np.isfinite(x)]
        qs = np.quantile(finite, np.linspace(0, 1, n_bins + 1)[1:-1]) if len(finite) else []
        edges = tuple(float(e) for e in np.unique(qs))
        ref = BinnedReference(name, "numeric", (), len(x), edges=edges)
    else:
        counts = values.dropna().astype(str).value_counts()
        levels = tuple(sorted(counts.index[:MAX_LEVELS]))
        ref = BinnedReference(name, "categorical", (), len(values), levels=levels)
    props = tuple(float(p) for p in bin_shares(ref, values))
    return BinnedReference(ref.name, ref.kind, props, ref.n, ref.edges, ref.levels)


def bin_counts(ref: BinnedReference, values: pd.Series) -> np.ndarray:
    """How many of ``values`` fall in each of ``ref``'s bins."""
    if ref.kind == "numeric":
        x = pd.to_numeric(values, errors="coerce").to_numpy(dtype=np.float64)
        missing = ~np.isfinite(x) & ~np.isinf(x)  # NaN only; +-inf fall in the end bins
        idx = np.searchsorted(np.asarray(ref.edges, dtype=np.float64), x, side="left")
        idx[missing] = len(ref.edges) + 1
        return np.bincount(idx, minlength=len(ref.edges) + 2).astype(np.int64)
    text = values.astype("string")
    codes = pd.Categorical(text, categories=list(ref.levels)).codes.astype(np.int64)
    codes[codes < 0] = len(ref.levels)  # other
    codes[text.isna().to_numpy()] = len(ref.levels) + 1  # missing
    return np.bincount(codes, minlength=len(ref.levels) + 2).astype(np.int64)


def bin_shares(ref: BinnedReference, values: pd.Series) -> np.ndarray:
    counts = bin_counts(ref, values)
    total = counts.sum()
    return counts / total if total else np.zeros(len(counts))


def psi(expected: np.ndarray, actual: np.ndarray, floor: float = PSI_FLOOR) -> float:
    """Population stability index of two share vectors over the same bins."""
    e = np.maximum(np.asarray(expected, dtype=np.float64), floor)
    a = np.maximum(np.asarray(actual, dtype=np.float64), floor)
    return float(np.sum((a - e) * np.log(a / e)))


def stability(ref: BinnedReference, values: pd.Series) -> float:
    """PSI of ``values`` against the stored reference."""
    return psi(np.asarray(ref.proportions), bin_shares(ref, values))


def build_references(frame: pd.DataFrame, n_bins: int = DEFAULT_BINS) -> dict[str, BinnedReference]:
    """A reference per column of ``frame``."""
    return {str(c): bin_reference(frame[c], str(c), n_bins) for c in frame.columns}


def feature_stability(
    references: Mapping[str, BinnedReference], frame: pd.DataFrame
) -> dict[str, float]:
    """PSI (CSI) of every referenced input present in ``frame``; absent inputs are left out."""
    return {
        name: round(stability(ref, frame[name]), 6)
        for name, ref in references.items()
        if name in frame.columns
    }


@dataclass(frozen=True)
class Breach:
    """A monitored figure past its threshold."""

    metric: str
    value: float
    threshold: float
    level: Level

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Thresholds:
    """PSI thresholds: at or above ``watch`` a watch, at or above ``act`` an action."""

    watch: float = WATCH
    act: float = ACT

    def judge(self, metric: str, value: float | None) -> Breach | None:
        if value is None or not np.isfinite(value):
            return None
        if value >= self.act:
            return Breach(metric, float(value), self.act, "act")
        if value >= self.watch:
            return Breach(metric, float(value), self.watch, "watch")
        return None


def psi_breaches(figures: Mapping[str, float | None], thresholds: Thresholds) -> list[Breach]:
    """Every figure of ``figures`` (metric -> PSI) at or past a threshold, worst first."""
    found = [b for m, v in figures.items() if (b := thresholds.judge(m, v)) is not None]
    return sorted(found, key=lambda b: -b.value)


@dataclass
class DecayReport:
    """Realized performance of a past score run on its matured labels."""

    n: int
    defaults: int
    roc_auc: float | None
    ks: float | None
    brier: float
    bands: list[dict[str, Any]] = field(default_factory=list)
    breaches: list[Breach] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["breaches"] = [b.to_dict() for b in self.breaches]
        return out


def decay_report(
    pd_hat: np.ndarray,
    realized: np.ndarray,
    bands: np.ndarray,
    *,
    holdout_auc: float | None,
    band_pd_ranges: Mapping[str, tuple[float, float]] | None = None,
    auc_drop: float = AUC_DROP,
) -> DecayReport:
    """Realized ROC-AUC/KS/Brier and per-band realized vs predicted default rates.

    A breach when the AUC falls ``auc_drop`` or more below ``holdout_auc``, or when a band's
    realized default rate leaves the band's PD range (``band_pd_ranges``: band -> (low, high)).
    """
    p = np.asarray(pd_hat, dtype=np.float64)
    y = np.asarray(realized, dtype=np.int64)
    both = len(np.unique(y)) == 2
    auc = float(roc_auc_score(y, p)) if both else None
    report = DecayReport(
        n=len(y),
        defaults=int(y.sum()),
        roc_auc=auc,
        ks=float(ks_statistic(y, p)) if both else None,
        brier=float(brier_score_loss(y, p, pos_label=1)) if len(y) else float("nan"),
    )
    if auc is not None and holdout_auc is not None and auc <= holdout_auc - auc_drop:
        report.breaches.append(Breach("realized_roc_auc", auc, holdout_auc - auc_drop, "act"))
    frame = pd.DataFrame({"band": np.asarray(bands).astype(str), "p": p, "y": y})
    for band, rows in frame.groupby("band", sort=True):
        rate = float(rows["y"].mean())
        entry = {
            "band": band,
            "customers": len(rows),
            "mean_pd": round(float(rows["p"].mean()), 6),
            "realized_rate": round(rate, 6),
        }
        if band_pd_ranges and band in band_pd_ranges:
            low, high = band_pd_ranges[band]
            entry["pd_range"] = [low, high]
            if not low <= rate <= high:
                bound = low if rate < low else high
                report.breaches.append(Breach(f"band_{band}_default_rate", rate, bound, "act"))
        report.bands.append(entry)
    return report
