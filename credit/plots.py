"""PNG plots of a candidate's held-out performance (matplotlib, Agg backend, no display)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from sklearn.calibration import calibration_curve  # noqa: E402
from sklearn.metrics import (  # noqa: E402
    average_precision_score,
    precision_recall_curve,
    roc_auc_score,
    roc_curve,
)

_GOOD, _BAD = "#2b8cbe", "#e34a33"


def _save(fig, path: Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _unit_axes(ax, fig, path: Path, *, xlabel: str, ylabel: str, title: str, legend: str) -> Path:
    """Label a curve on the unit square (x in [0, 1], y in [0, 1.01]), add its legend, save."""
    ax.set(xlabel=xlabel, ylabel=ylabel, title=title.strip(), xlim=(0, 1), ylim=(0, 1.01))
    ax.legend(loc=legend)
    return _save(fig, path)


def plot_roc(y: np.ndarray, p: np.ndarray, path: Path, *, title: str = "") -> Path:
    """ROC curve with the AUC and Gini in the legend and the chance diagonal."""
    fpr, tpr, _ = roc_curve(y, p)
    auc = roc_auc_score(y, p)
    fig, ax = plt.subplots(figsize=(5, 4.5))
    ax.plot(fpr, tpr, color=_BAD, lw=2, label=f"model (AUC {auc:.3f}, Gini {2 * auc - 1:.3f})")
    ax.plot([0, 1], [0, 1], ls="--", color="grey", lw=1, label="chance")
    return _unit_axes(
        ax,
        fig,
        path,
        xlabel="False positive rate",
        ylabel="True positive rate (recall)",
        title=f"ROC curve {title}",
        legend="lower right",
    )


def plot_pr(y: np.ndarray, p: np.ndarray, path: Path, *, title: str = "") -> Path:
    """Precision-recall curve with average precision and the prevalence line."""
    precision, recall, _ = precision_recall_curve(y, p)
    ap = average_precision_score(y, p)
    fig, ax = plt.subplots(figsize=(5, 4.5))
    ax.step(recall, precision, where="post", color=_BAD, lw=2, label=f"model (AP {ap:.3f})")
    ax.axhline(np.mean(y), ls="--", color="grey", lw=1, label=f"prevalence {np.mean(y):.2f}")
    return _unit_axes(
        ax,
        fig,
        path,
        xlabel="Recall",
        ylabel="Precision",
        title=f"Precision-recall {title}",
        legend="upper right",
    )


def plot_calibration(
    y: np.ndarray, p: np.ndarray, path: Path, *, title: str = "", n_bins: int = 10
) -> Path:
    """Reliability diagram (quantile bins) above a histogram of the predicted probabilities."""
    frac_pos, mean_pred = calibration_curve(y, p, n_bins=n_bins, strategy="quantile")
    fig, (ax, axh) = plt.subplots(2, 1, figsize=(5, 5.5), height_ratios=[3, 1], sharex=True)
    ax.plot([0, 1], [0, 1], ls="--", color="grey", lw=1, label="perfectly calibrated")
    ax.plot(mean_pred, frac_pos, marker="o", color=_BAD, lw=2, label="model")
    ax.set(ylabel="Observed high-risk share", title=f"Calibration {title}".strip(), ylim=(0, 1))
    ax.legend(loc="upper left")
    axh.hist(p, bins=30, range=(0, 1), color="grey")
    axh.set(xlabel="Predicted probability of high risk", ylabel="customers", xlim=(0, 1))
    return _save(fig, path)


def plot_ks(y: np.ndarray, p: np.ndarray, path: Path, *, title: str = "") -> Path:
    """Cumulative distributions of the predicted probability per class and the KS gap."""
    grid = np.unique(p)
    bad = np.sort(p[y == 1])
    good = np.sort(p[y == 0])
    cdf_bad = np.searchsorted(bad, grid, side="right") / max(len(bad), 1)
    cdf_good = np.searchsorted(good, grid, side="right") / max(len(good), 1)
    gap = np.abs(cdf_good - cdf_bad)
    i = int(np.argmax(gap))
    fig, ax = plt.subplots(figsize=(5, 4.5))
    ax.step(grid, cdf_good, where="post", color=_GOOD, lw=2, label="low risk (y=0)")
    ax.step(grid, cdf_bad, where="post", color=_BAD, lw=2, label="high risk (y=1)")
    ax.vlines(
        grid[i],
        cdf_bad[i],
        cdf_good[i],
        color="black",
        lw=2,
        label=f"KS = {gap[i]:.3f} at p = {grid[i]:.2f}",
    )
    return _unit_axes(
        ax,
        fig,
        path,
        xlabel="Predicted probability of high risk",
        ylabel="Cumulative share of class",
        title=f"KS curve {title}",
        legend="lower right",
    )


def plot_score_distribution(
    y: np.ndarray,
    values: np.ndarray,
    path: Path,
    *,
    title: str = "",
    threshold: float | None = None,
    xlabel: str = "Predicted probability of high risk",
) -> Path:
    """Overlaid histograms of a score (default: the predicted probability) for each class."""
    lo, hi = float(np.min(values)), float(np.max(values))
    if xlabel.startswith("Predicted probability"):
        lo, hi = 0.0, 1.0
    bins = np.linspace(lo, hi if hi > lo else lo + 1, 31)
    fig, ax = plt.subplots(figsize=(5.5, 4.2))
    for cls, color, name in ((0, _GOOD, "low risk"), (1, _BAD, "high risk")):
        part = values[y == cls]
        ax.hist(
            part, bins=bins, alpha=0.6, color=color, density=True, label=f"{name} (n={len(part)})"
        )
    if threshold is not None:
        ax.axvline(threshold, color="black", ls="--", lw=1, label=f"threshold {threshold:.2f}")
    ax.set(xlabel=xlabel, ylabel="density", title=f"Score distribution {title}".strip())
    ax.legend(loc="best")
    return _save(fig, path)


def plot_importance(
    importance: pd.DataFrame, path: Path, *, title: str = "", top: int = 15
) -> Path:
    """Horizontal bars of permutation importance (drop in test ROC-AUC), top features."""
    data = importance.head(top).iloc[::-1]
    fig, ax = plt.subplots(figsize=(6.5, 0.32 * len(data) + 1.4))
    ax.barh(
        data["feature"].astype(str),
        data["importance_mean"],
        xerr=data["importance_std"],
        color=_BAD,
        alpha=0.85,
    )
    ax.axvline(0, color="grey", lw=1)
    ax.set(
        xlabel="Mean drop in ROC-AUC when shuffled", title=f"Permutation importance {title}".strip()
    )
    ax.tick_params(axis="y", labelsize=8)
    return _save(fig, path)
