"""Customer features as of a cutoff, computed from clean transactions.

One row per customer with at least one customer-initiated transaction in the window
``as_of - window_days <= TransactionStartTime < as_of``. Nothing at or after ``as_of`` is read, so
features built at a cutoff never see the period that defines the label (see :mod:`credit.label`).

Everything is vectorised over integer codes (``np.bincount`` and pandas group-by built-ins): no
Python loop runs per customer or per row. Category shares use the fixed vocabularies of
:mod:`schemas.vocab` plus one ``*_unlisted`` share, so the same columns come out whatever data is
featurised: the whole history at training time, or one customer's transactions in the API.

Conventions
-----------
* Own transactions are the customer's rows outside the platform cash-back account
  (``schemas.vocab.CASHBACK_ACCOUNT``). Cash-back credits are not customer spending: they are kept
  out of every own-activity aggregate and summarised as ``cashback_*``.
* ``Amount > 0`` is a debit (a purchase), ``Amount < 0`` a credit; ``credit_*`` sums are magnitudes.
* Standard deviations are population ones (``ddof=0``): a single transaction has spread 0.
* Time-of-day and day-of-week use East Africa Time (UTC+3, no daylight saving), the customers'
  local clock; durations are in days.
* Statistics that need a second observation (gaps between purchases) or a debit (mean debit,
  cash-back rate) are NaN when undefined; imputation is a fitted step of the model pipeline.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from credit.transactions import CustomerBuckets, time_ns, to_utc
from schemas import vocab

FEATURE_VERSION = "1.0.0"
"""Bump when a column is added, removed or computed differently."""

INDEX_NAME = "CustomerId"
UNLISTED = "unlisted"
"""Name of the level and share that collect values outside a fixed vocabulary."""

LOCAL_UTC_OFFSET_HOURS = 3  # East Africa Time, no DST
_NS_PER_HOUR = 3_600 * 10**9
_NS_PER_DAY = 24 * _NS_PER_HOUR
_FEE_TOLERANCE = vocab.VALUE_ROUNDING_TOLERANCE

_DOW = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_TOD = ("night", "morning", "afternoon", "evening")  # 0-5, 6-11, 12-17, 18-23 local
_RECENT_WINDOWS = (7, 30)

# column -> (share prefix, vocabulary, suffix of a level in the column name)
_CATEGORICALS: dict[str, tuple[str, tuple, tuple[str, ...]]] = {
    "ProductCategory": ("category", vocab.PRODUCT_CATEGORIES, vocab.PRODUCT_CATEGORIES),
    "ChannelId": ("channel", vocab.CHANNELS, tuple(c.rsplit("_", 1)[-1] for c in vocab.CHANNELS)),
    "ProviderId": (
        "provider",
        vocab.PROVIDERS,
        tuple(p.rsplit("_", 1)[-1] for p in vocab.PROVIDERS),
    ),
    "PricingStrategy": (
        "pricing",
        vocab.PRICING_STRATEGIES,
        tuple(str(p) for p in vocab.PRICING_STRATEGIES),
    ),
}
# categorical feature -> source column (the customer's most frequent level, "unlisted" if unknown)
TOP_LEVEL_COLUMNS: dict[str, str] = {
    "top_category": "ProductCategory",
    "top_channel": "ChannelId",
    "top_provider": "ProviderId",
}

_STATS = ("sum", "mean", "median", "std", "min", "max")
_GAP_STATS = ("mean", "median", "std", "max")


def _numeric_feature_names() -> list[str]:
    names = [
        "n_tx",
        "n_debit",
        "n_credit",
        "share_credit_tx",
        "active_days",
        "tx_per_active_day",
        "recency_days",
        "tenure_days",
        "span_days",
        *(f"n_tx_{d}d" for d in _RECENT_WINDOWS),
        *(f"gap_{s}_days" for s in _GAP_STATS),
        *(f"amount_{s}" for s in _STATS),
        *(f"value_{s}" for s in _STATS),
        "debit_sum",
        "debit_mean",
        "credit_sum",
        "credit_mean",
        "fee_count",
        "fee_sum",
        "fraud_count",
        "n_products",
        "n_accounts",
        "cashback_count",
        "cashback_sum",
        "cashback_rate",
        *(f"share_tod_{t}" for t in _TOD),
        *(f"share_dow_{d}" for d in _DOW),
    ]
    for prefix, _levels, suffixes in _CATEGORICALS.values():
        names += [f"share_{prefix}_{s}" for s in suffixes] + [f"share_{prefix}_{UNLISTED}"]
    return names


NUMERIC_FEATURES: tuple[str, ...] = tuple(_numeric_feature_names())
CATEGORICAL_FEATURES: tuple[str, ...] = tuple(TOP_LEVEL_COLUMNS)
FEATURE_COLUMNS: tuple[str, ...] = NUMERIC_FEATURES + CATEGORICAL_FEATURES

FEATURE_INPUT_COLUMNS = (
    "CustomerId",
    "AccountId",
    "ProductId",
    "ProductCategory",
    "ChannelId",
    "ProviderId",
    "PricingStrategy",
    "Amount",
    "Value",
    "TransactionStartTime",
    "FraudResult",
)


def _ns(ts: pd.Timestamp) -> int:
    return int(to_utc(ts).as_unit("ns").value)


def _level_codes(values: pd.Series, levels: tuple) -> np.ndarray:
    """Index of each value in ``levels``; ``len(levels)`` for anything else (the unlisted level)."""
    codes, uniques = pd.factorize(values)
    position = {level: i for i, level in enumerate(levels)}
    lookup = np.array([position.get(u, len(levels)) for u in uniques.tolist()] + [len(levels)])
    return lookup[codes]  # factorize codes NaN as -1 -> the last entry: unlisted


def _empty_features() -> pd.DataFrame:
    frame = pd.DataFrame({c: pd.Series(dtype="float64") for c in NUMERIC_FEATURES})
    for c in CATEGORICAL_FEATURES:
        frame[c] = pd.Series(dtype="str")
    frame.index = pd.Index([], dtype="str", name=INDEX_NAME)
    return frame


def _grouped(codes: np.ndarray, n: int, values: dict[str, np.ndarray], stats) -> pd.DataFrame:
    """Group-by built-in statistics of ``values`` per code, reindexed to ``range(n)``."""
    grouped = pd.DataFrame(values).groupby(codes, sort=True)
    parts = {}
    for col in values:
        g = grouped[col]
        for stat in stats:
            parts[f"{col}_{stat}"] = g.std(ddof=0) if stat == "std" else getattr(g, stat)()
    return pd.DataFrame(parts).reindex(range(n))


def build_customer_features(
    tx: pd.DataFrame, *, as_of: pd.Timestamp, window_days: int | None = None
) -> pd.DataFrame:
    """Customer features from transactions in ``[as_of - window_days, as_of)``.

    ``tx`` is a clean-transactions frame (see the common contract); extra columns are ignored.
    Returns one row per customer with an own transaction in the window, indexed by ``CustomerId``
    (sorted), with the float64 columns of :data:`NUMERIC_FEATURES` followed by the string columns
    of :data:`CATEGORICAL_FEATURES`.
    """
    missing = [c for c in FEATURE_INPUT_COLUMNS if c not in tx.columns]
    if missing:
        raise KeyError(f"transactions lack columns {missing}")
    if window_days is not None and window_days <= 0:
        raise ValueError("window_days must be positive")
    as_of_ns = _ns(as_of)

    t_all = time_ns(tx)
    in_window = t_all < as_of_ns
    if window_days is not None:
        in_window &= t_all >= as_of_ns - int(window_days) * _NS_PER_DAY
    if in_window.size and in_window.mean() < 0.5:
        # a short window over a long history: copy its rows rather than code the whole history
        tx = tx.loc[in_window, list(FEATURE_INPUT_COLUMNS)]
        t_all, in_window = t_all[in_window], np.ones(int(in_window.sum()), dtype=bool)
    is_cashback = (tx["AccountId"] == vocab.CASHBACK_ACCOUNT).to_numpy(dtype=bool, na_value=False)
    own_mask = in_window & ~is_cashback
    if not own_mask.any():
        return _empty_features()
    # Work on integer codes of whole columns, subset by the mask: no row copy of string columns.
    full_codes, all_ids = pd.factorize(tx["CustomerId"], sort=True)  # sorted ids: sorted codes
    own_mask &= full_codes >= 0  # a missing id (-1) belongs to nobody
    if not own_mask.any():
        return _empty_features()
    own_codes = full_codes[own_mask]
    present = np.flatnonzero(np.bincount(own_codes, minlength=len(all_ids)))
    position = np.full(len(all_ids) + 1, -1, dtype=np.int64)  # [-1] stays -1: missing ids
    position[present] = np.arange(len(present))
    c = position[own_codes]
    del own_codes
    customers = all_ids[present]
    n = len(customers)
    t = t_all[own_mask]
    del t_all

    amount_all = tx["Amount"].to_numpy(dtype=np.float64)
    amount = amount_all[own_mask]
    value = tx["Value"].to_numpy(dtype=np.float64)[own_mask]
    debit = amount > 0
    credit = amount < 0

    def count(weights: np.ndarray | None = None, codes: np.ndarray = c) -> np.ndarray:
        return np.bincount(codes, weights=weights, minlength=n).astype(np.float64)

    out: dict[str, np.ndarray] = {}
    n_tx = count()
    out["n_tx"] = n_tx
    out["n_debit"] = count(debit)
    out["n_credit"] = count(credit)
    out["share_credit_tx"] = out["n_credit"] / n_tx

    # Order rows by (customer, time). The contract sorts by time, so a stable sort on the customer
    # code suffices; otherwise fall back to a two-key sort.
    if t.size < 2 or bool(np.all(t[1:] >= t[:-1])):
        order = np.argsort(c, kind="stable")
    else:
        order = np.lexsort((t, c))
    c_s, t_s = c[order], t[order]
    new_customer = np.empty(c_s.size, dtype=bool)
    new_customer[0] = True
    np.not_equal(c_s[1:], c_s[:-1], out=new_customer[1:])
    starts = np.flatnonzero(new_customer)
    ends = np.append(starts[1:], c_s.size) - 1
    first_t, last_t = t_s[starts], t_s[ends]

    local_t = t + LOCAL_UTC_OFFSET_HOURS * _NS_PER_HOUR
    day_s = local_t[order] // _NS_PER_DAY
    new_day = new_customer
    new_day[1:] |= day_s[1:] != day_s[:-1]
    del day_s
    out["active_days"] = count(codes=c_s[new_day])
    del new_day, new_customer
    out["tx_per_active_day"] = n_tx / out["active_days"]
    out["recency_days"] = (as_of_ns - last_t) / _NS_PER_DAY
    out["tenure_days"] = (as_of_ns - first_t) / _NS_PER_DAY
    out["span_days"] = (last_t - first_t) / _NS_PER_DAY
    for d in _RECENT_WINDOWS:
        out[f"n_tx_{d}d"] = count(t >= as_of_ns - d * _NS_PER_DAY)
    del t

    # Gaps between consecutive purchases (debits) of the same customer, in days.
    debit_s = debit[order]
    del order
    cd, td = c_s[debit_s], t_s[debit_s]
    del c_s, t_s, debit_s
    same = cd[1:] == cd[:-1]
    gaps = _grouped(cd[1:][same], n, {"gap": np.diff(td)[same] / _NS_PER_DAY}, _GAP_STATS)
    del cd, td, same
    for s in _GAP_STATS:
        out[f"gap_{s}_days"] = gaps[f"gap_{s}"].to_numpy()

    money = _grouped(c, n, {"amount": amount, "value": value}, _STATS)
    for col in money.columns:
        out[col] = money[col].to_numpy()
    del money
    out["debit_sum"] = count(np.where(debit, amount, 0.0))
    out["credit_sum"] = count(np.where(credit, -amount, 0.0))
    with np.errstate(divide="ignore", invalid="ignore"):  # no debit (credit): NaN mean
        out["debit_mean"] = out["debit_sum"] / out["n_debit"]
        out["credit_mean"] = out["credit_sum"] / out["n_credit"]
    fee = value - np.abs(amount)
    is_fee = fee > _FEE_TOLERANCE
    out["fee_count"] = count(is_fee)
    out["fee_sum"] = count(np.where(is_fee, fee, 0.0))
    del fee, is_fee, amount, value, debit, credit
    out["fraud_count"] = count(tx["FraudResult"].to_numpy(dtype=np.float64)[own_mask])
    for name, col in (("n_products", "ProductId"), ("n_accounts", "AccountId")):
        codes, uniques = pd.factorize(tx[col])
        width = len(uniques) + 1
        pairs = pd.unique(c * width + codes[own_mask])  # hash-based distinct (customer, level)
        out[name] = count(codes=pairs // width)
        del codes, pairs

    # Cash-back credits of the platform account, for the customers featurised here.
    cb_mask = in_window & is_cashback
    cb_codes = position[full_codes[cb_mask]]
    keep = cb_codes >= 0
    out["cashback_count"] = count(codes=cb_codes[keep])
    out["cashback_sum"] = count(np.abs(amount_all[cb_mask][keep]), codes=cb_codes[keep])
    del full_codes, cb_codes, keep, amount_all
    with np.errstate(divide="ignore", invalid="ignore"):
        out["cashback_rate"] = np.where(
            out["debit_sum"] > 0, out["cashback_sum"] / out["debit_sum"], np.nan
        )

    # Local time-of-day and day-of-week profile (1970-01-01 was a Thursday: Monday = 0).
    hour = (local_t // _NS_PER_HOUR) % 24
    _shares(out, "tod", c, hour // 6, len(_TOD), n, n_tx, _TOD)
    dow = ((local_t // _NS_PER_DAY) + 3) % 7
    _shares(out, "dow", c, dow, len(_DOW), n, n_tx, _DOW)

    top: dict[str, np.ndarray] = {}
    for column, (prefix, levels, suffixes) in _CATEGORICALS.items():
        codes = _level_codes(tx[column], levels)[own_mask]
        counts = _shares(out, prefix, c, codes, len(levels) + 1, n, n_tx, (*suffixes, UNLISTED))
        for feature, source in TOP_LEVEL_COLUMNS.items():
            if source == column:
                names = np.array([str(v) for v in levels] + [UNLISTED], dtype=object)
                top[feature] = names[counts.argmax(axis=1)]  # ties: the first level listed

    frame = pd.DataFrame(
        {name: np.asarray(out[name], dtype=np.float64) for name in NUMERIC_FEATURES},
        index=pd.Index(customers, dtype="str", name=INDEX_NAME),
    )
    for feature in CATEGORICAL_FEATURES:
        frame[feature] = pd.array(top[feature], dtype="str")
    return frame


def snapshot_as_of(tx: pd.DataFrame | CustomerBuckets) -> pd.Timestamp:
    """A snapshot's reference date, from the data: the UTC midnight after its last transaction."""
    last = CustomerBuckets.of(tx).last
    if last is None:
        raise ValueError("no transactions")
    return last.floor("D") + pd.Timedelta(days=1)


def customer_features(
    tx: pd.DataFrame | CustomerBuckets, *, as_of: pd.Timestamp, window_days: int | None = None
) -> pd.DataFrame:
    """:func:`build_customer_features` bucket by bucket (the same rows in the same order)."""
    return concat_customer_frames(
        bucket_features(CustomerBuckets.of(tx), as_of=as_of, window_days=window_days)
    )


def bucket_features(
    group: CustomerBuckets, *, as_of: pd.Timestamp, window_days: int | None = None
) -> list[pd.DataFrame]:
    """:func:`build_customer_features` of each bucket of a group (one task per group)."""
    return [
        build_customer_features(frame, as_of=as_of, window_days=window_days)
        for frame in group.frames(FEATURE_INPUT_COLUMNS)
    ]


def concat_customer_frames(frames: list[pd.DataFrame]) -> pd.DataFrame:
    """``pd.concat(frames).sort_index()`` for disjoint customer frames, in about half the memory.

    The sorted result is allocated once and filled bucket by bucket, each bucket's frame being
    released as soon as it is copied (``frames`` is emptied): float64 columns go into one
    column-major block, other columns (the ``top_*`` strings) through integer codes of their few
    levels. Values, dtypes, index and column order are those of the one-shot version.
    """
    frames = [f for f in frames if len(f)] or frames[:1]
    if len(frames) == 1:
        out = frames.pop()
        return out if out.index.is_monotonic_increasing else out.sort_index(kind="stable")
    first = frames[0]
    columns, dtypes = list(first.columns), first.dtypes
    numeric = [c for c in columns if dtypes[c] == np.float64]
    other = [c for c in columns if c not in set(numeric)]
    if [c for c in columns if c in set(numeric)] + other != columns:
        # numeric columns not all first: the simple way
        out = pd.concat(frames).sort_index(kind="stable")
        frames.clear()
        return out
    index = pd.Index(
        np.concatenate([f.index.to_numpy(dtype=object) for f in frames]),
        dtype=first.index.dtype,
        name=first.index.name,
    )
    order = index.argsort()
    position = np.empty(len(index), dtype=np.int64)
    position[order] = np.arange(len(index))
    index = index.take(order)
    del order
    block = np.empty((len(numeric), len(index)), dtype=np.float64)
    codes = {c: np.empty(len(index), dtype=np.int64) for c in other}
    levels: dict[str, dict[Any, int]] = {c: {} for c in other}
    start = 0
    while frames:
        f = frames.pop(0)
        rows = position[start : start + len(f)]
        start += len(f)
        block[:, rows] = f[numeric].to_numpy(dtype=np.float64).T
        for c in other:
            level_codes, uniques = pd.factorize(f[c], use_na_sentinel=False)
            lookup = np.array([levels[c].setdefault(u, len(levels[c])) for u in uniques])
            codes[c][rows] = lookup[level_codes] if len(uniques) else level_codes
        del f
    out = pd.DataFrame(block.T, index=index, columns=numeric, copy=False)
    for c in other:
        names = np.array(list(levels[c]), dtype=object)
        out[c] = pd.array(names[codes[c]], dtype=dtypes[c])
    return out


def build_feature_snapshot(
    tx: pd.DataFrame | CustomerBuckets,
    *,
    window_days: int | None,
    as_of: pd.Timestamp | None = None,
) -> pd.DataFrame:
    """The validated feature table of every customer as of ``as_of`` (default
    :func:`snapshot_as_of`), for storage and for scoring known customers by id.

    ``tx`` is a clean-transactions frame or customer buckets (built bucket by bucket, the same
    table). ``window_days`` must be the training observation window, so that served features are
    computed exactly as the model's training features were. ``attrs`` carries ``as_of`` (ISO
    string), ``window_days`` and ``feature_version`` (JSON-ready, so Parquet keeps them).
    """

    buckets = CustomerBuckets.of(tx)
    as_of = snapshot_as_of(buckets) if as_of is None else to_utc(as_of)
    frames = [
        f
        for g in buckets.groups()
        for f in bucket_features(g, as_of=as_of, window_days=window_days)
    ]
    return finish_feature_snapshot(frames, as_of=as_of, window_days=window_days)


def finish_feature_snapshot(
    frames: list[pd.DataFrame], *, as_of: pd.Timestamp, window_days: int | None
) -> pd.DataFrame:
    """The validated snapshot from every bucket's features (:func:`bucket_features`), with the
    ``attrs`` of :func:`build_feature_snapshot`; ``frames`` is emptied."""
    from schemas.features import validate_feature_snapshot

    frame = validate_feature_snapshot(concat_customer_frames(frames), columns=FEATURE_COLUMNS)
    frame.attrs.update(
        as_of=as_of.isoformat(), window_days=window_days, feature_version=FEATURE_VERSION
    )
    return frame


def _shares(
    out: dict,
    prefix: str,
    c: np.ndarray,
    level: np.ndarray,
    k: int,
    n: int,
    n_tx: np.ndarray,
    suffixes: tuple[str, ...],
) -> np.ndarray:
    """Write ``share_{prefix}_{suffix}`` columns (share of own transactions); return the counts."""
    counts = np.bincount(c * k + level, minlength=n * k).reshape(n, k)
    shares = counts / n_tx[:, None]
    for j, suffix in enumerate(suffixes):
        out[f"share_{prefix}_{suffix}"] = shares[:, j]
    return counts


def feature_columns(df: pd.DataFrame) -> tuple[list[str], list[str]]:
    """Split the columns of a feature frame into (numeric, categorical), in frame order."""
    numeric = [c for c in df.columns if pd.api.types.is_numeric_dtype(df[c])]
    categorical = [c for c in df.columns if c not in numeric]
    return numeric, categorical


def _fill_for(column: str) -> float | str:
    if column in CATEGORICAL_FEATURES or column.startswith("top_"):
        return UNLISTED
    if column.startswith(("share_", "n_")) or column.endswith(("_count", "_sum")):
        return 0.0
    return np.nan


def align_features(df: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """Reorder ``df`` to ``columns`` for scoring: extra columns dropped, missing ones added.

    Missing counts, sums and shares are 0, missing categorical levels are ``"unlisted"`` and any
    other missing numeric column is NaN (left to the model's fitted imputer).
    """
    aligned = df.reindex(columns=list(columns))
    for column in columns:
        if column not in df.columns:
            fill = _fill_for(column)
            aligned[column] = (
                pd.Series(fill, index=df.index, dtype="str")
                if isinstance(fill, str)
                else pd.Series(fill, index=df.index, dtype="float64")
            )
    return aligned
