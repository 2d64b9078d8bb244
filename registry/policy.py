"""Champion/challenger rule: beat the champion on ROC-AUC by a margin without losing KS/Brier.

Metric names are looked up with a few aliases (``roc_auc``/``auc``, ``ks``/``ks_statistic``,
``brier``/``brier_score``), so the evaluation code can keep its own naming.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from schemas import defaults

METRIC_ALIASES: dict[str, tuple[str, ...]] = {
    "roc_auc": ("roc_auc", "auc", "test_roc_auc", "holdout_roc_auc"),
    "ks": ("ks", "ks_statistic", "test_ks", "holdout_ks"),
    "brier": ("brier", "brier_score", "test_brier", "holdout_brier"),
}


@dataclass(frozen=True)
class PromotionPolicy:
    """Margins for automatic promotion (all on the same held-out evaluation).

    A candidate is promoted when ``auc - champion_auc >= min_auc_gain`` and
    ``champion_ks - ks <= max_ks_loss`` and ``brier - champion_brier <= max_brier_increase``.
    With ``require_same_holdout`` the champion's stored metrics are only compared when both
    versions record the same holdout fingerprint (or the caller passes champion metrics
    re-computed on the candidate's holdout).
    """

    min_auc_gain: float = defaults.MIN_AUC_GAIN
    max_ks_loss: float = defaults.MAX_KS_LOSS
    max_brier_increase: float = defaults.MAX_BRIER_INCREASE
    require_same_holdout: bool = True


@dataclass(frozen=True)
class PromotionDecision:
    """Outcome of an automatic, manual or rollback promotion request."""

    promoted: bool
    reason: str
    champion_version: int | None
    previous_champion: int | None
    model_name: str = ""
    version: int | None = None
    checks: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly dict."""
        return asdict(self)


def metric(metrics: Mapping[str, Any], name: str) -> float | None:
    """The value of canonical metric ``name`` (via its aliases), or ``None`` if absent/NaN."""
    for key in METRIC_ALIASES.get(name, (name,)):
        value = metrics.get(key)
        if value is not None:
            try:
                value = float(value)
            except (TypeError, ValueError):
                return None
            return None if math.isnan(value) else value
    return None


def compare(
    candidate: Mapping[str, Any], champion: Mapping[str, Any], policy: PromotionPolicy
) -> tuple[bool, list[str], dict[str, Any]]:
    """Apply ``policy``: returns (passes, human-readable findings, numeric checks)."""
    values = {name: (metric(candidate, name), metric(champion, name)) for name in METRIC_ALIASES}
    missing = [
        f"{who} lacks {name}"
        for name, pair in values.items()
        for who, value in zip(("candidate", "champion"), pair, strict=True)
        if value is None
    ]
    if missing:
        return False, [f"cannot compare: {', '.join(missing)}"], {"missing": missing}

    (auc, c_auc), (ks, c_ks), (brier, c_brier) = (
        values["roc_auc"],
        values["ks"],
        values["brier"],
    )
    auc_gain, ks_loss, brier_increase = auc - c_auc, c_ks - ks, brier - c_brier
    checks = {
        "roc_auc": {"candidate": auc, "champion": c_auc, "gain": auc_gain},
        "ks": {"candidate": ks, "champion": c_ks, "loss": ks_loss},
        "brier": {"candidate": brier, "champion": c_brier, "increase": brier_increase},
        "policy": asdict(policy),
    }
    eps = 1e-12  # float noise must not flip a decision sitting exactly on a margin
    auc_ok = auc_gain >= policy.min_auc_gain - eps
    ks_ok = ks_loss <= policy.max_ks_loss + eps
    brier_ok = brier_increase <= policy.max_brier_increase + eps
    findings = [
        f"ROC-AUC {auc:.4f} vs {c_auc:.4f} (gain {auc_gain:+.4f}, "
        f"{'>=' if auc_ok else '<'} required {policy.min_auc_gain:.4f})",
        f"KS {ks:.4f} vs {c_ks:.4f} (loss {ks_loss:+.4f}, "
        f"{'within' if ks_ok else 'beyond'} tolerance {policy.max_ks_loss:.4f})",
        f"Brier {brier:.4f} vs {c_brier:.4f} (increase {brier_increase:+.4f}, "
        f"{'within' if brier_ok else 'beyond'} tolerance {policy.max_brier_increase:.4f})",
    ]
    checks.update(auc_ok=auc_ok, ks_ok=ks_ok, brier_ok=brier_ok)
    return auc_ok and ks_ok and brier_ok, findings, checks
