"""Proxy default label from customer engagement (RFM), designed out of time.

Xente's data has no loan outcomes, so the label is a proxy. Basel II (paragraph 452) calls an
obligor in default when it is unlikely to pay, or more than 90 days past due; the nearest observable
behaviour here is disengagement: a customer who stops transacting is the one a buy-now-pay-later
lender cannot expect to see again. Customers are segmented on Recency, Frequency and Monetary value
(log-scaled, standardised, KMeans with a fixed seed) and the least engaged segment is "high risk".

The trap this module designs out: if the label's RFM and the model's features come from the same
period, a model simply re-learns the clustering (ROC-AUC near 1.0) and predicts nothing. The default
mode is therefore *out of time*::

    |<-- observation window (features) -->|<-- performance window (label) -->|
    cutoff - observation_days           cutoff                             as_of

Features use only transactions strictly before ``cutoff``; the label uses only those in
``[cutoff, as_of]``. Customers with no activity in the observation window cannot be scored from
history and are excluded (and counted). The naive ``same_window`` mode is kept for comparison only.

Cash-back credits of the platform account are not customer spending: they are left out of RFM.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from sklearn.cluster import KMeans
from sklearn.metrics import adjusted_rand_score
from sklearn.model_selection import train_test_split
from threadpoolctl import threadpool_limits

from credit.features import (
    FEATURE_INPUT_COLUMNS,
    INDEX_NAME,
    build_customer_features,
    concat_customer_frames,
)
from credit.transactions import CustomerBuckets, own_mask, time_ns, to_utc
from schemas.defaults import OBSERVATION_DAYS, PERFORMANCE_DAYS

LABEL_NAME = "is_high_risk"
MODES = ("out_of_time", "same_window")
HIGH_RISK_SHARE_BOUNDS = (0.05, 0.60)
_NS_PER_DAY = 86_400 * 10**9


@dataclass
class LabelResult:
    """Proxy label of each customer, their RFM segment and a JSON-ready report."""

    labels: pd.Series
    segments: pd.Series
    report: dict = field(default_factory=dict)


@dataclass
class TrainingTable:
    """Features ``X`` and label ``y`` (one row per customer) with the windows that produced them."""

    X: pd.DataFrame
    y: pd.Series
    cutoff: pd.Timestamp
    as_of: pd.Timestamp
    report: dict
    rfm: pd.DataFrame


def rfm_table(
    tx: pd.DataFrame,
    *,
    start: pd.Timestamp,
    end: pd.Timestamp,
    customers: pd.Index | None = None,
) -> pd.DataFrame:
    """Recency, frequency and monetary value of own transactions with ``start <= t <= end``.

    ``recency_days`` is measured to ``end``; ``frequency`` counts own transactions; ``monetary``
    sums debits (purchases), cash-back excluded. With ``customers`` the result has exactly those
    rows, and a customer absent from the window gets recency = the window length, frequency 0 and
    monetary 0.
    """
    start_ns, end_ns = (int(to_utc(x).as_unit("ns").value) for x in (start, end))
    if end_ns < start_ns:
        raise ValueError("end precedes start")
    t = time_ns(tx)
    mask = own_mask(tx) & (t >= start_ns) & (t <= end_ns)
    codes, ids = pd.factorize(tx.loc[mask, "CustomerId"], sort=True)
    n = len(ids)
    amount = tx.loc[mask, "Amount"].to_numpy(dtype=np.float64)
    last = pd.Series(t[mask]).groupby(codes).max().to_numpy(dtype=np.int64)
    window_days = (end_ns - start_ns) / _NS_PER_DAY
    rfm = pd.DataFrame(
        {
            "recency_days": (end_ns - last) / _NS_PER_DAY,
            "frequency": np.bincount(codes, minlength=n).astype(np.float64),
            "monetary": np.bincount(codes, weights=np.clip(amount, 0, None), minlength=n),
        },
        index=pd.Index(ids, dtype="str", name=INDEX_NAME),
    )
    if customers is not None:
        rfm = rfm.reindex(pd.Index(customers, dtype="str", name=INDEX_NAME))
        rfm = rfm.fillna({"recency_days": window_days, "frequency": 0.0, "monetary": 0.0})
    return rfm


def _rfm_matrix(rfm: pd.DataFrame) -> np.ndarray:
    """Recency as is, frequency and monetary log1p-scaled; every column standardised."""
    z = np.column_stack(
        [
            rfm["recency_days"].to_numpy(dtype=np.float64),
            np.log1p(rfm["frequency"].to_numpy(dtype=np.float64)),
            np.log1p(np.clip(rfm["monetary"].to_numpy(dtype=np.float64), 0, None)),
        ]
    )
    sd = z.std(axis=0)
    return (z - z.mean(axis=0)) / np.where(sd > 0, sd, 1.0)


def _segment(z: np.ndarray, n_clusters: int, seed: int) -> np.ndarray:
    """KMeans segments renumbered by disengagement: 0 most engaged, ``n_clusters - 1`` least."""
    # One thread: on small inputs KMeans' OpenMP workers spin (100x slower on a 2-core machine).
    with threadpool_limits(limits=1):
        km = KMeans(n_clusters=n_clusters, n_init=10, random_state=seed).fit(z)
    c = km.cluster_centers_
    disengagement = c[:, 0] - c[:, 1] - c[:, 2]  # late, rare and small
    rank = np.empty(n_clusters, dtype=np.int64)
    rank[np.argsort(disengagement, kind="stable")] = np.arange(n_clusters)
    return rank[km.labels_]


def proxy_label(
    rfm: pd.DataFrame,
    *,
    n_clusters: int = 3,
    seed: int = 42,
    stability_seeds: tuple[int, ...] = (0, 1, 2, 3, 4),
) -> LabelResult:
    """Cluster customers on RFM and label the least engaged segment ``is_high_risk = 1``.

    The report holds segment sizes and mean RFM, the high-risk share (flagged outside 5%-60%) and
    the segments' agreement with runs under ``stability_seeds`` (adjusted Rand index).
    """
    if len(rfm) < n_clusters:
        raise ValueError(f"{len(rfm)} customers cannot form {n_clusters} segments")
    z = _rfm_matrix(rfm)
    if len(np.unique(z, axis=0)) < n_clusters:
        raise ValueError(f"fewer than {n_clusters} distinct RFM profiles: cannot segment")
    segments = _segment(z, n_clusters, seed)
    high = n_clusters - 1
    labels = (segments == high).astype(np.int64)

    aris, high_aris = [], []
    for s in stability_seeds:
        other = _segment(z, n_clusters, s)
        aris.append(adjusted_rand_score(segments, other))
        high_aris.append(adjusted_rand_score(labels, (other == high).astype(np.int64)))

    share = float(labels.mean())
    low, up = HIGH_RISK_SHARE_BOUNDS
    flagged = not (low <= share <= up)
    profile = rfm.assign(segment=segments).groupby("segment")[list(rfm.columns[:3])].mean()
    sizes = np.bincount(segments, minlength=n_clusters)
    report = {
        "method": "KMeans on standardised [recency, log1p(frequency), log1p(monetary)]",
        "n_customers": len(rfm),
        "n_clusters": n_clusters,
        "seed": seed,
        "high_risk_segment": high,
        "segment_sizes": {str(k): int(v) for k, v in enumerate(sizes)},
        "segment_profile": {
            str(k): {c: float(v) for c, v in row.items()} for k, row in profile.iterrows()
        },
        "high_risk_share": share,
        "high_risk_share_flag": flagged,
        "warning": (
            f"high-risk share {share:.1%} outside [{low:.0%}, {up:.0%}]" if flagged else None
        ),
        "stability": {
            "seeds": [int(s) for s in stability_seeds],
            "ari_mean": float(np.mean(aris)) if aris else None,
            "ari_min": float(np.min(aris)) if aris else None,
            "high_risk_ari_min": float(np.min(high_aris)) if high_aris else None,
        },
    }
    index = pd.Index(rfm.index, name=INDEX_NAME)
    return LabelResult(
        labels=pd.Series(labels, index=index, name=LABEL_NAME),
        segments=pd.Series(segments, index=index, name="segment"),
        report=report,
    )


def _iso(ts: pd.Timestamp) -> str:
    return to_utc(ts).isoformat()


@dataclass
class LabelWindows:
    """The windows of a training table (:func:`label_windows`): what every bucket needs."""

    mode: str
    as_of: pd.Timestamp
    cutoff: pd.Timestamp
    features_as_of: pd.Timestamp
    window_days: int | None
    rfm_start: pd.Timestamp
    report: dict


@dataclass
class BucketLabelParts:
    """One bucket group's customer-level pieces of the training table (:func:`label_parts`)."""

    features: list[pd.DataFrame]
    rfms: list[pd.DataFrame]
    seen: int
    excluded_new: int


def label_windows(
    buckets: CustomerBuckets,
    *,
    as_of: pd.Timestamp | None = None,
    observation_days: int = OBSERVATION_DAYS,
    performance_days: int = PERFORMANCE_DAYS,
    mode: str = "out_of_time",
) -> LabelWindows:
    """Check the options and place the windows (see :func:`build_training_table`)."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}")
    if observation_days <= 0 or performance_days <= 0:
        raise ValueError("window lengths must be positive")
    if buckets.last is None or buckets.first is None:
        raise ValueError("no transactions")
    as_of = buckets.last if as_of is None else to_utc(as_of)
    if mode == "out_of_time":
        cutoff = as_of - pd.Timedelta(days=performance_days)
        obs_start = cutoff - pd.Timedelta(days=observation_days)
        features_as_of, window_days, rfm_start = cutoff, observation_days, cutoff
        windows: dict = {
            "observation": [_iso(obs_start), _iso(cutoff)],
            "performance": [_iso(cutoff), _iso(as_of)],
            "observation_days": observation_days,
            "performance_days": performance_days,
        }
    else:
        cutoff, rfm_start = as_of, buckets.first
        features_as_of, window_days = as_of + pd.Timedelta(microseconds=1), None
        windows = {"features_and_label": [_iso(rfm_start), _iso(as_of)]}
    return LabelWindows(mode, as_of, cutoff, features_as_of, window_days, rfm_start, windows)


def label_parts(group: CustomerBuckets, w: LabelWindows) -> BucketLabelParts:
    """Features, RFM and first-seen counts of each bucket of a group (one task per group)."""
    as_of_ns, cutoff_ns = (int(x.as_unit("ns").value) for x in (w.as_of, w.cutoff))
    features, rfms = [], []
    seen = excluded_new = 0
    for frame in group.frames(FEATURE_INPUT_COLUMNS):
        t = time_ns(frame)
        own = own_mask(frame) & (t <= as_of_ns)
        first_seen = pd.Series(t[own]).groupby(frame.loc[own, "CustomerId"].to_numpy()).min()
        seen += len(first_seen)
        if w.mode == "out_of_time":
            excluded_new += int((first_seen >= cutoff_ns).sum())
        X = build_customer_features(frame, as_of=w.features_as_of, window_days=w.window_days)
        features.append(X)
        rfms.append(rfm_table(frame, start=w.rfm_start, end=w.as_of, customers=X.index))
    return BucketLabelParts(features, rfms, seen, excluded_new)


def finish_training_table(
    parts: list[BucketLabelParts], w: LabelWindows, *, seed: int = 42
) -> TrainingTable:
    """The training table from every bucket group's parts: features and RFM concatenated,
    then the KMeans proxy label on the whole customer-level RFM table."""
    features = [f for p in parts for f in p.features]
    rfms = [r for p in parts for r in p.rfms]
    seen = sum(p.seen for p in parts)
    excluded_new = sum(p.excluded_new for p in parts)
    X = concat_customer_frames(features)
    rfm = pd.concat(rfms).reindex(X.index) if len(rfms) > 1 else rfms[0]
    rfm.index.name = INDEX_NAME

    result = proxy_label(rfm, seed=seed)
    report = {
        "mode": w.mode,
        "windows": w.report,
        "as_of": _iso(w.as_of),
        "cutoff": _iso(w.cutoff),
        "n_customers_seen": int(seen),
        "n_customers": int(len(X)),
        "excluded_no_history": excluded_new,
        "excluded_dormant": int(seen - len(X) - excluded_new) if w.mode == "out_of_time" else 0,
        "label": result.report,
    }
    rfm = rfm.assign(segment=result.segments, **{LABEL_NAME: result.labels})
    return TrainingTable(
        X=X, y=result.labels, cutoff=w.cutoff, as_of=w.as_of, report=report, rfm=rfm
    )


def build_training_table(
    tx: pd.DataFrame | CustomerBuckets,
    *,
    as_of: pd.Timestamp | None = None,
    observation_days: int = OBSERVATION_DAYS,
    performance_days: int = PERFORMANCE_DAYS,
    mode: str = "out_of_time",
    seed: int = 42,
) -> TrainingTable:
    """Customer features and proxy label, out of time by default.

    ``tx``: clean transactions, as a frame or as customer buckets (features, first-seen dates and
    RFM are computed bucket by bucket (:func:`label_parts`; the flow runs one task per bucket
    group); the KMeans label runs on the whole customer-level RFM table, so the result is the
    same). ``as_of`` defaults to the data's last timestamp.
    ``out_of_time``: cutoff = as_of - performance_days; features from ``[cutoff -
    observation_days, cutoff)``, label from the RFM of ``[cutoff, as_of]``. ``same_window``
    (naive, for comparison only): features and label RFM from all data up to ``as_of``.
    """
    buckets = CustomerBuckets.of(tx)
    w = label_windows(
        buckets,
        as_of=as_of,
        observation_days=observation_days,
        performance_days=performance_days,
        mode=mode,
    )
    parts = [label_parts(g, w) for g in buckets.groups()]
    return finish_training_table(parts, w, seed=seed)


def split_customers(
    X: pd.DataFrame, y: pd.Series, *, test_size: float = 0.2, seed: int = 42
) -> tuple[pd.DataFrame, pd.DataFrame, pd.Series, pd.Series]:
    """Stratified customer-level split; each customer is one row, on exactly one side."""
    if not X.index.is_unique:
        raise ValueError("X must have one row per customer")
    if not X.index.equals(y.index):
        raise ValueError("X and y must share the customer index")
    stratify = y if y.value_counts().min() >= 2 else None
    X_train, X_test, y_train, y_test = train_test_split(
        X, y, test_size=test_size, random_state=seed, stratify=stratify
    )
    assert X_train.index.intersection(X_test.index).empty, "a customer is on both sides"
    return X_train, X_test, y_train, y_test
