"""Promotion gates: what a challenger must also pass, beyond beating the champion on its own
holdout, before it is promoted without a human.

A challenger's own held-out AUC cannot tell a good model from a broken feed: the proxy label is
learnable from almost any data (a file whose CustomerId and TransactionStartTime columns were
shuffled scored 0.85 on its own test split). So, against the champion's stored references:

1. **performance on the champion's reference holdout** (the champion's holdout customers, their
   inputs and labels as registered): the challenger must not lose beyond the tolerances
   (ROC-AUC, KS, Brier) against the champion's own predictions on them;
2. **score stability on that holdout**: PSI of the challenger's scores against the champion's
   score bins on the same customers must stay <= ``max_score_psi``;
3. **input stability**: PSI of every training input against the champion's training bins must
   stay <= ``max_input_psi`` for every input that carries information (IV >= ``min_iv``).

Any failure holds the challenger for approval with the reasons; a human promotes it with an
actor and a reason (``python -m registry promote``). Pure functions: no Prefect, no registry.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from credit.monitoring import ACT

#: Defaults of the gates (flows.config exposes them as retrain options).
MAX_INPUT_PSI = ACT
MIN_IV = 0.02
MAX_SCORE_PSI = ACT
MAX_REFERENCE_AUC_LOSS = 0.02
MAX_REFERENCE_KS_LOSS = 0.05
MAX_REFERENCE_BRIER_INCREASE = 0.01
#: A loss counts only beyond this many standard errors of its paired bootstrap (small holdouts
#: are noisy: 80 customers give an AUC difference a standard error of about 0.03).
NOISE_Z = 2.0
#: Fewest reference-holdout customers for the score-PSI gate (10 bins need a few per bin).
MIN_SCORE_PSI_CUSTOMERS = 200


@dataclass(frozen=True)
class GatePolicy:
    """Tolerances of the gates."""

    max_input_psi: float = MAX_INPUT_PSI
    min_iv: float = MIN_IV
    max_score_psi: float = MAX_SCORE_PSI
    max_auc_loss: float = MAX_REFERENCE_AUC_LOSS
    max_ks_loss: float = MAX_REFERENCE_KS_LOSS
    max_brier_increase: float = MAX_REFERENCE_BRIER_INCREASE
    noise_z: float = NOISE_Z
    min_score_psi_customers: int = MIN_SCORE_PSI_CUSTOMERS


def reference_metrics(y: np.ndarray, p: np.ndarray) -> dict[str, float] | None:
    """ROC-AUC, KS and Brier of ``p`` against ``y`` (None when ``y`` has one class)."""
    from sklearn.metrics import brier_score_loss, roc_auc_score

    from credit.evaluate import ks_statistic

    y, p = np.asarray(y, dtype=np.int64), np.asarray(p, dtype=np.float64)
    if len(np.unique(y)) < 2:
        return None
    return {
        "roc_auc": float(roc_auc_score(y, p)),
        "ks": float(ks_statistic(y, p)),
        "brier": float(brier_score_loss(y, p)),
    }


def paired_loss_se(
    y: np.ndarray,
    p_champion: np.ndarray,
    p_challenger: np.ndarray,
    n_boot: int = 200,
    seed: int = 0,
) -> dict[str, float]:
    """Standard errors of the challenger's losses (AUC, KS, Brier) against the champion on
    the same customers, by a paired bootstrap (both models on the same resamples)."""
    y = np.asarray(y, dtype=np.int64)
    rng = np.random.default_rng(seed)
    losses: dict[str, list[float]] = {"auc_loss": [], "ks_loss": [], "brier_increase": []}
    for _ in range(n_boot):
        idx = rng.integers(0, len(y), len(y))
        champ = reference_metrics(y[idx], np.asarray(p_champion)[idx])
        chall = reference_metrics(y[idx], np.asarray(p_challenger)[idx])
        if champ is None or chall is None:
            continue
        losses["auc_loss"].append(champ["roc_auc"] - chall["roc_auc"])
        losses["ks_loss"].append(champ["ks"] - chall["ks"])
        losses["brier_increase"].append(chall["brier"] - champ["brier"])
    return {k: float(np.std(v)) if v else 0.0 for k, v in losses.items()}


@dataclass
class GateResult:
    """The gates' verdict: ``failures`` (one sentence each; empty = passed) and the numbers."""

    failures: list[str] = field(default_factory=list)
    checks: dict[str, Any] = field(default_factory=dict)
    drifted_inputs: dict[str, float] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return not self.failures

    @property
    def hold(self) -> str | None:
        """The hold reason for the registry (``None`` when every gate passed)."""
        return "; ".join(self.failures) if self.failures else None


def drifted_inputs(
    input_psi: Mapping[str, float], iv: Mapping[str, float], policy: GatePolicy
) -> dict[str, float]:
    """Inputs with PSI above ``max_input_psi`` that carry information (IV >= ``min_iv``; an
    input without an IV counts as informative), worst first."""
    found = {
        name: float(value)
        for name, value in input_psi.items()
        if value > policy.max_input_psi and iv.get(name, float("inf")) >= policy.min_iv
    }
    return dict(sorted(found.items(), key=lambda kv: -kv[1]))


def _loss_findings(
    challenger: Mapping[str, float],
    champion: Mapping[str, float],
    policy: GatePolicy,
    loss_se: Mapping[str, float],
) -> tuple[list[str], dict[str, Any]]:
    """Where the challenger loses on the reference holdout beyond the tolerances (each at
    least ``noise_z`` standard errors of its paired bootstrap)."""
    tol = {
        "auc_loss": max(policy.max_auc_loss, policy.noise_z * loss_se.get("auc_loss", 0.0)),
        "ks_loss": max(policy.max_ks_loss, policy.noise_z * loss_se.get("ks_loss", 0.0)),
        "brier_increase": max(
            policy.max_brier_increase, policy.noise_z * loss_se.get("brier_increase", 0.0)
        ),
    }
    auc_loss = champion["roc_auc"] - challenger["roc_auc"]
    ks_loss = champion["ks"] - challenger["ks"]
    brier_increase = challenger["brier"] - champion["brier"]
    checks = {
        "challenger": dict(challenger),
        "champion": dict(champion),
        "auc_loss": auc_loss,
        "ks_loss": ks_loss,
        "brier_increase": brier_increase,
        "tolerances": tol,
        "loss_se": dict(loss_se),
    }
    found = []
    eps = 1e-12
    if auc_loss > tol["auc_loss"] + eps:
        found.append(
            f"ROC-AUC {challenger['roc_auc']:.4f} vs champion {champion['roc_auc']:.4f} "
            f"(loss {auc_loss:.4f} > {tol['auc_loss']:.4f})"
        )
    if ks_loss > tol["ks_loss"] + eps:
        found.append(
            f"KS {challenger['ks']:.4f} vs {champion['ks']:.4f} "
            f"(loss {ks_loss:.4f} > {tol['ks_loss']:.4f})"
        )
    if brier_increase > tol["brier_increase"] + eps:
        found.append(
            f"Brier {challenger['brier']:.4f} vs {champion['brier']:.4f} "
            f"(increase {brier_increase:.4f} > {tol['brier_increase']:.4f})"
        )
    return found, checks


def evaluate_gates(
    *,
    input_psi: Mapping[str, float],
    iv: Mapping[str, float],
    score_psi: float | None,
    challenger_metrics: Mapping[str, float] | None,
    champion_metrics: Mapping[str, float] | None,
    champion_version: int | None = None,
    policy: GatePolicy | None = None,
    loss_se: Mapping[str, float] | None = None,
    reference_customers: int | None = None,
) -> GateResult:
    """Apply the gates to figures computed against the champion's references.

    ``*_metrics`` (roc_auc, ks, brier) are both models' metrics on the champion's reference
    holdout; ``None`` when the challenger could not score it (a failure: nothing vouches for it).
    ``loss_se``: the losses' standard errors (:func:`paired_loss_se`); ``reference_customers``:
    the holdout's size (the score-PSI gate needs ``min_score_psi_customers``).
    """
    policy = policy or GatePolicy()
    champ = f"champion v{champion_version}" if champion_version is not None else "the champion"
    result = GateResult(checks={"policy": asdict(policy), "score_psi": score_psi})
    result.checks["input_psi_max"] = max(input_psi.values()) if input_psi else None
    if challenger_metrics is None or champion_metrics is None:
        result.failures.append(
            f"the challenger could not be evaluated on {champ}'s reference holdout"
        )
    else:
        found, checks = _loss_findings(challenger_metrics, champion_metrics, policy, loss_se or {})
        result.checks["reference_holdout"] = checks
        if found:
            result.failures.append(f"loses on {champ}'s reference holdout: " + ", ".join(found))
    enough = reference_customers is None or reference_customers >= policy.min_score_psi_customers
    result.checks["reference_customers"] = reference_customers
    result.checks["score_psi_judged"] = enough
    if score_psi is not None and enough and score_psi > policy.max_score_psi:
        result.failures.append(
            f"its scores on {champ}'s reference holdout differ from the champion's "
            f"(PSI {score_psi:.3f} > {policy.max_score_psi})"
        )
    result.drifted_inputs = drifted_inputs(input_psi, iv, policy)
    result.checks["drifted_inputs"] = result.drifted_inputs
    if result.drifted_inputs:
        top = ", ".join(f"{k} {v:.2f}" for k, v in list(result.drifted_inputs.items())[:5])
        more = len(result.drifted_inputs) - 5
        result.failures.append(
            f"training inputs differ from {champ}'s reference (PSI > {policy.max_input_psi} "
            f"on {len(result.drifted_inputs)} informative inputs: {top}"
            + (f", +{more} more" if more > 0 else "")
            + ")"
        )
    return result
