"""Model monitoring: population stability (PSI/CSI) against stored references, and decay.

References are made once, when a version is registered, from the data the model was built on:
numeric inputs get quantile bins (edges from the reference only, a separate bin for missing
values), categorical inputs one bin per level seen plus ``other``. Every later comparison uses
the stored edges and proportions, so the figures of different nights are comparable.

PSI = sum((actual - expected) * ln(actual / expected)) over the bins, with empty bins floored at
``PSI_FLOOR``. Reading (Siddiqi): < 0.10 stable, 0.10-0.25 watch, > 0.25 act.

Decay (:func:`decay_report`): once the performance window of a past score run has matured, the
realized label of the customers scored then gives the realized ROC-AUC, KS and Brier, and per
band the realized default rate against the band's mean predicted PD. A band breaches only when
its exact (Clopper-Pearson) interval lies wholly outside its PD range, so the false-alarm rate
of a calibrated band stays at the nominal level however few customers it holds.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd
from scipy.stats import beta, norm
from sklearn.metrics import brier_score_loss, roc_auc_score

from credit.evaluate import ks_statistic

PSI_FLOOR = 1e-4
WATCH = 0.10
ACT = 0.25
DEFAULT_BINS = 10
MAX_LEVELS = 30
AUC_DROP = 0.05
BAND_CONFIDENCE = 0.95
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


def feature_stability_parts(
    references: Mapping[str, BinnedReference], parts: Iterable[pd.DataFrame]
) -> dict[str, float]:
    """:func:`feature_stability` of the concatenation of ``parts`` (a snapshot read one Parquet
    part at a time), without concatenating: bin counts add up part by part, so the PSI is the
    same to the last bit. An input a part lacks counts as missing there (as a concatenation
    fills it); inputs no part holds are left out, and so is everything when no part has rows."""
    counts: dict[str, np.ndarray] = {}
    seen: dict[str, int] = {}
    total = 0
    for part in parts:
        total += len(part)
        for name, ref in references.items():
            if name in part.columns:
                found = bin_counts(ref, part[name])
                counts[name] = found if name not in counts else counts[name] + found
                seen[name] = seen.get(name, 0) + len(part)
    if total == 0:
        return {}
    out = {}
    for name, ref in references.items():
        if name not in counts:
            continue
        binned = counts[name].copy()
        binned[-1] += total - seen[name]  # rows of parts without the input: missing
        shares = binned / binned.sum() if binned.sum() else np.zeros(len(binned))
        out[name] = round(psi(np.asarray(ref.proportions), shares), 6)
    return out


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


def rate_interval(events: int, n: int, confidence: float = BAND_CONFIDENCE) -> tuple[float, float]:
    """Exact (Clopper-Pearson) interval of a rate ``events / n`` (``confidence`` 0: the rate).

    Exact, not Wilson: Wilson's lower limit for one event is too high when n is small (1 of 3
    gives 0.061), so a calibrated band with a PD ceiling of 4 % would breach 11 % of the time
    instead of at most 2.5 %. Each tail of this interval holds at most ``(1 - confidence) / 2``.
    """
    if n == 0:
        return 0.0, 1.0
    if confidence <= 0:
        return events / n, events / n
    tail = (1 - confidence) / 2
    low = 0.0 if events == 0 else float(beta.ppf(tail, events, n - events + 1))
    high = 1.0 if events == n else float(beta.ppf(1 - tail, events + 1, n - events))
    return low, high


def auc_standard_error(auc: float, positives: int, negatives: int) -> float:
    """Hanley & McNeil (1982) standard error of a ROC-AUC on ``positives`` and ``negatives``."""
    if positives == 0 or negatives == 0:
        return float("nan")
    q1, q2 = auc / (2 - auc), 2 * auc * auc / (1 + auc)
    var = (
        auc * (1 - auc) + (positives - 1) * (q1 - auc * auc) + (negatives - 1) * (q2 - auc * auc)
    ) / (positives * negatives)
    return float(np.sqrt(max(var, 0.0)))


def holdout_auc_se(metrics: Mapping[str, Any]) -> float | None:
    """The standard error of a version's holdout ROC-AUC, from its stored bootstrap 95 %
    interval (``roc_auc_ci_low``/``high``), else None."""
    low, high = metrics.get("roc_auc_ci_low"), metrics.get("roc_auc_ci_high")
    if low is None or high is None or not np.isfinite([low, high]).all():
        return None
    return float(high - low) / (2 * 1.959964)


def decay_report(
    pd_hat: np.ndarray,
    realized: np.ndarray,
    bands: np.ndarray,
    *,
    holdout_auc: float | None,
    holdout_se: float | None = None,
    band_pd_ranges: Mapping[str, tuple[float, float]] | None = None,
    auc_drop: float = AUC_DROP,
    band_confidence: float = BAND_CONFIDENCE,
) -> DecayReport:
    """Realized ROC-AUC/KS/Brier and per-band realized vs predicted default rates.

    A breach when the AUC falls ``auc_drop`` or more below ``holdout_auc`` and the fall is
    beyond the sampling error of the two AUCs (``holdout_se``, the holdout's standard error,
    and the realized AUC's Hanley-McNeil one, at ``band_confidence``): a holdout of 175
    customers measures an AUC to +-0.07, and the champion is the version whose holdout AUC came
    out high, so a 0.05 fall from it alone is no evidence of decay. Or when a band's
    realized default rate leaves the band's PD range (``band_pd_ranges``: band -> (low, high))
    by more than its sampling error: the band's exact interval at ``band_confidence`` (0: the
    rate itself, :func:`rate_interval`) lies wholly outside the range.
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
        se = auc_standard_error(auc, int(y.sum()), int(len(y) - y.sum()))
        se = float(np.hypot(se, holdout_se or 0.0))
        z = float(norm.ppf(0.5 + band_confidence / 2)) if band_confidence > 0 else 0.0
        if not np.isfinite(se) or holdout_auc - auc > z * se:
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
            lo_ci, hi_ci = rate_interval(int(rows["y"].sum()), len(rows), band_confidence)
            entry["rate_interval"] = [round(lo_ci, 6), round(hi_ci, 6)]
            if hi_ci < low or lo_ci > high:
                bound = low if rate < low else high
                report.breaches.append(Breach(f"band_{band}_default_rate", rate, bound, "act"))
        report.bands.append(entry)
    return report


# -- references stored with a version, and the figures computed against them ------------------
#: Version of the layout of :func:`model_references` (stored with the bins).
REFERENCE_FORMAT = 1
#: Extra columns of the reference holdout (beside the model's inputs).
LABEL_COLUMN = "_label"
PD_COLUMN = "_pd"


def categorical_reference(values: pd.Series, name: str, levels: list[str]) -> BinnedReference:
    """A categorical reference over fixed ``levels`` (e.g. every band of the policy)."""
    ref = BinnedReference(name, "categorical", (), len(values), levels=tuple(levels))
    props = tuple(float(p) for p in bin_shares(ref, values))
    return BinnedReference(name, "categorical", props, ref.n, levels=ref.levels)


def band_pd_ranges(band_floors: Mapping[str, float], pd_from_score: Any) -> dict[str, list[float]]:
    """Each band's PD range from its score floors (best band first; higher score, lower PD)."""
    names, floors = list(band_floors), [float(v) for v in band_floors.values()]
    ranges: dict[str, list[float]] = {}
    for i, name in enumerate(names):
        high = 1.0 if i == len(names) - 1 else float(pd_from_score(floors[i]))
        low = 0.0 if i == 0 else float(pd_from_score(floors[i - 1]))
        ranges[name] = [round(low, 6), round(high, 6)]
    return ranges


def population_reference(
    scored: pd.DataFrame, inputs: pd.DataFrame | None, bands: list[str], n_bins: int = DEFAULT_BINS
) -> dict[str, Any]:
    """Bins of one scored population: score, band mix, approval rate, mean PD and (when
    ``inputs`` is given) every input. ``scored`` has probability, score, band, approved."""
    out: dict[str, Any] = {
        "n": len(scored),
        "score": bin_reference(scored["score"].astype("float64"), "score", n_bins).to_dict(),
        "band": categorical_reference(scored["band"], "band", bands).to_dict(),
        "approval_rate": float(scored["approved"].astype(float).mean()) if len(scored) else None,
        "mean_pd": float(scored["probability"].mean()) if len(scored) else None,
    }
    if inputs is not None:
        out["inputs"] = {k: v.to_dict() for k, v in build_references(inputs, n_bins).items()}
    return out


def model_references(
    model: Any,
    X_train: pd.DataFrame,
    y_train: pd.Series,
    X_test: pd.DataFrame,
    y_test: pd.Series,
    *,
    snapshot: pd.DataFrame | None = None,
    iv: Mapping[str, float] | None = None,
    n_bins: int = DEFAULT_BINS,
) -> tuple[dict[str, Any], pd.DataFrame]:
    """What a version stores for monitoring: ``(distributions, reference holdout)``.

    - ``training``: every model input's bins on the training data (the promotion gates compare
      a challenger's training inputs with these), with each input's IV;
    - ``holdout``: score bins and band mix of the model's scores on its holdout;
    - ``scored`` (when the run built the night's ``snapshot``): inputs, score and band mix of
      the population the model scores on its registration night (the stability reference);
    - ``band_pd_ranges`` from the model's scorecard and policy.
    The reference holdout holds the holdout customers' inputs, label (``_label``) and
    predicted PD (``_pd``), indexed by customer id.
    """
    inputs = list(model.feature_names_)
    bands = list(model.get_policy().band_floors)
    card = model.get_scorecard()
    holdout_scores = model.score_frame(X_test, with_reasons=False)
    training = {k: v.to_dict() for k, v in build_references(X_train[inputs], n_bins).items()}
    distributions: dict[str, Any] = {
        "format": REFERENCE_FORMAT,
        "inputs": inputs,
        "training": {
            "n": len(X_train),
            "default_rate": float(np.mean(y_train)),
            "inputs": training,
        },
        "iv": {k: float(v) for k, v in (iv or {}).items() if k in inputs},
        "holdout": population_reference(holdout_scores, None, bands, n_bins),
        "band_pd_ranges": band_pd_ranges(card.bands, card.pd_from_score),
    }
    if snapshot is not None and len(snapshot):
        night = model.score_frame(snapshot, with_reasons=False)
        scored = population_reference(night, snapshot.reindex(columns=inputs), bands, n_bins)
        scored["as_of"] = str(snapshot.attrs.get("as_of")) if snapshot.attrs else None
        distributions["scored"] = scored
    holdout = X_test[inputs].copy()
    holdout[LABEL_COLUMN] = np.asarray(y_test, dtype=np.int64)
    holdout[PD_COLUMN] = holdout_scores["probability"].to_numpy(dtype=np.float64)
    holdout.index = holdout.index.astype(str)
    return distributions, holdout


def stored_reference(data: Mapping[str, Any] | None) -> BinnedReference | None:
    return None if not data else BinnedReference.from_dict(data)


@dataclass
class StabilityReport:
    """Tonight's scored population against a version's reference."""

    reference: str
    score_psi: float | None
    band_psi: float | None
    feature_psi: dict[str, float]
    approval_rate: float | None
    mean_pd: float | None
    n: int
    reference_n: int | None
    breaches: list[Breach] = field(default_factory=list)

    @property
    def max_feature_psi(self) -> float | None:
        return max(self.feature_psi.values()) if self.feature_psi else None

    def figures(self) -> dict[str, Any]:
        return {
            "reference": self.reference,
            "score_psi": self.score_psi,
            "band_psi": self.band_psi,
            "max_feature_psi": self.max_feature_psi,
            "feature_psi": self.feature_psi,
            "approval_rate": self.approval_rate,
            "mean_pd": self.mean_pd,
            "customers": self.n,
            "reference_customers": self.reference_n,
        }


def choose_reference(distributions: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    """The stability reference: the population the version scored on its registration night
    (``scored``) when stored, else its holdout scores with its training inputs."""
    if distributions.get("scored"):
        return "scored", dict(distributions["scored"])
    holdout = dict(distributions.get("holdout") or {})
    holdout["inputs"] = (distributions.get("training") or {}).get("inputs", {})
    return "holdout+training", holdout


def population_stability(
    distributions: Mapping[str, Any],
    scored: pd.DataFrame,
    inputs: pd.DataFrame | Iterable[pd.DataFrame] | None,
    thresholds: Thresholds | None = None,
) -> StabilityReport:
    """PSI of the score, band mix and every input of ``scored``/``inputs`` against the stored
    reference (:func:`choose_reference`); breaches past ``thresholds``. ``inputs`` may come in
    parts (:func:`feature_stability_parts`)."""
    thresholds = thresholds or Thresholds()
    name, ref = choose_reference(distributions)
    score_ref, band_ref = stored_reference(ref.get("score")), stored_reference(ref.get("band"))
    input_refs = {k: BinnedReference.from_dict(v) for k, v in (ref.get("inputs") or {}).items()}
    if inputs is None:
        feature_psi: dict[str, float] = {}
    elif isinstance(inputs, pd.DataFrame):
        feature_psi = feature_stability(input_refs, inputs)
    else:
        feature_psi = feature_stability_parts(input_refs, inputs)
    report = StabilityReport(
        reference=name,
        score_psi=None if score_ref is None else round(stability(score_ref, scored["score"]), 6),
        band_psi=None if band_ref is None else round(stability(band_ref, scored["band"]), 6),
        feature_psi=feature_psi,
        approval_rate=float(scored["approved"].astype(float).mean()) if len(scored) else None,
        mean_pd=float(scored["probability"].mean()) if len(scored) else None,
        n=len(scored),
        reference_n=ref.get("n"),
    )
    figures = {"score_psi": report.score_psi, "band_psi": report.band_psi}
    figures.update({f"feature_psi.{k}": v for k, v in feature_psi.items()})
    report.breaches = psi_breaches(figures, thresholds)
    return report


# -- realized outcomes for decay ---------------------------------------------------------------
def typed_transactions(raw: pd.DataFrame) -> pd.DataFrame:
    """The columns the realized label needs, typed (raw CSV strings or the store's frame)."""
    out = pd.DataFrame(
        {
            "CustomerId": raw["CustomerId"].astype(str),
            "AccountId": raw["AccountId"].astype(str),
            "Amount": pd.to_numeric(raw["Amount"], errors="coerce"),
            "TransactionStartTime": pd.to_datetime(
                raw["TransactionStartTime"], utc=True, errors="coerce", format="mixed"
            ),
        }
    )
    return out.dropna(subset=["Amount", "TransactionStartTime"])


def realized_proxy_label(
    tx: pd.DataFrame,
    customers: pd.Index,
    as_of: pd.Timestamp,
    performance_days: int,
    *,
    seed: int = 42,
) -> pd.Series:
    """The proxy label (credit.label: KMeans on RFM) of ``customers`` over their transactions
    in ``[as_of, as_of + performance_days]``: what their score at ``as_of`` predicted.

    The windows of the training label (:func:`credit.label.build_training_table` with
    ``cutoff`` = ``as_of``): the snapshot's features use transactions strictly before
    ``as_of``, the label those from ``as_of`` on, so for the customers a model scored at
    ``as_of`` this is the label a retrain ``performance_days`` later gives them."""
    from credit.label import proxy_label, rfm_table

    as_of = pd.Timestamp(as_of)
    as_of = as_of.tz_localize("UTC") if as_of.tzinfo is None else as_of
    end = as_of + pd.Timedelta(days=performance_days)
    rfm = rfm_table(tx, start=as_of, end=end, customers=pd.Index(customers, dtype="str"))
    return proxy_label(rfm, seed=seed, stability_seeds=()).labels


def realized_outcomes(
    outcomes: pd.DataFrame,
    customers: pd.Index,
    as_of: pd.Timestamp,
    performance_days: int,
) -> pd.Series:
    """Real outcomes (columns customer id, date, defaulted) of ``customers``: 1 when a default
    is dated in ``(as_of, as_of + performance_days]``; customers the table does not name are
    left out (no outcome known)."""
    cols = {c.lower().replace("_", ""): c for c in outcomes.columns}
    cid = cols.get("customerid")
    if cid is None or "date" not in cols or "defaulted" not in cols:
        raise ValueError("outcomes need the columns customer_id, date, defaulted")
    frame = pd.DataFrame(
        {
            "customer": outcomes[cid].astype(str),
            "date": pd.to_datetime(outcomes[cols["date"]], utc=True, format="mixed"),
            "defaulted": pd.to_numeric(outcomes[cols["defaulted"]]).astype(int),
        }
    )
    as_of = pd.Timestamp(as_of)
    as_of = as_of.tz_localize("UTC") if as_of.tzinfo is None else as_of
    end = as_of + pd.Timedelta(days=performance_days)
    known = frame[frame["customer"].isin(pd.Index(customers, dtype="str"))]
    inside = known[(known["date"] > as_of) & (known["date"] <= end)]
    realized = pd.Series(0, index=pd.Index(known["customer"].unique(), name="CustomerId"))
    hit = inside.loc[inside["defaulted"] == 1, "customer"].unique()
    realized[realized.index.isin(hit)] = 1
    return realized.astype(np.int64)
