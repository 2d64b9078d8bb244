"""Deterministic, vectorised generator of Xente-shaped transactions.

How a data set is made (every step is numpy on whole arrays; nothing loops per row or customer):

1. **Customers.** Each customer gets a latent *lapse propensity* ``z ~ N(0, 1)`` and, partly
   driven by it, a heavy-tailed activity rate, a log-normal spend scale, an amount irregularity,
   a night-time share, a credit (refund) affinity, a category tilt, favourite products and
   channels, and an engagement trajectory: a join day (some join late), a time trend (high
   propensity declines), busy and quiet weeks, and a lapse day (the lapse itself is random
   given the propensity). So a model of "inactive in the last 30 days" from features of the
   first 60 reaches ROC-AUC about 0.8 (logistic regression on simple aggregates), not ~1.
2. **Rows per customer.** The expected count is rate x active exposure; the exact total is split
   by a multinomial with at least one row each.
3. **Time.** A day per row from the customer's daily intensity (trajectory x a calendar profile
   calibrated so the monthly volumes match the real file), an hour from a day/night mixture, a
   second uniformly. Timestamps stay inside the real span; the first and last rows sit exactly on
   its ends.
4. **Attributes.** Own credits (refunds, deposits) vs purchases; product (hence category) and
   channel from a customer-favourite / population mixture whose population part is calibrated so
   the expected marginals equal the real ones; provider given product; pricing given provider.
   Amounts from product medians x spend scale, snapped to airtime denominations or rounded to
   "nice" figures; utility-bill fees make Value > Amount.
5. **Batches, cash-back, fraud.** A few purchases repeat within minutes in the same batch;
   cash-back credits of the platform account (AccountId_4841) follow chosen purchases by seconds
   and carry the buyer's CustomerId; fraud flags go preferentially to large purchases.

The calibration targets live in :mod:`sampledata.reference`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from sampledata import reference as ref

DEFAULT_ROWS = ref.REAL_ROWS
DEFAULT_CUSTOMERS = ref.REAL_CUSTOMERS
DEFAULT_SEED = 42
GENERATOR_VERSION = "1"
"""Bump when the same arguments would produce different data (invalidates cached demo files)."""

_DAY = 86_400
_T0 = int(ref.SPAN_START.timestamp())
_T1 = int(ref.SPAN_END.timestamp())
_DAY0 = int(ref.SPAN_START.normalize().timestamp())
N_DAYS = (_T1 - _DAY0) // _DAY + 1  # 91 calendar days, the first and last partial
_FIRST_WEEKDAY = ref.SPAN_START.dayofweek  # 2018-11-15 was a Thursday

# --------------------------------------------------------------------------------------------
# Vocabularies and the product table
# --------------------------------------------------------------------------------------------

CATEGORIES: tuple[str, ...] = (
    "financial_services",
    "airtime",
    "utility_bill",
    "data_bundles",
    "tv",
    "ticket",
    "movies",
    "transport",
    "other",
)
PROVIDERS: tuple[int, ...] = (1, 2, 3, 4, 5, 6)
CHANNELS: tuple[int, ...] = (1, 2, 3, 5)
PRICING: tuple[int, ...] = (0, 1, 2, 4)
CASHBACK_PROVIDER, CASHBACK_PRODUCT, CASHBACK_CHANNEL, CASHBACK_PRICING = 4, 6, 2, 2
CASHBACK_ACCOUNT, CASHBACK_SUBSCRIPTION = 4841, 3829  # AccountId_4841 / SubscriptionId_3829
# A few customers share an account, a few accounts a subscription (3,742 / 3,633 / 3,627 ids).
SHARED_ACCOUNT_SHARE = (ref.UNIQUE["CustomerId"] - ref.UNIQUE["AccountId"] + 1) / ref.UNIQUE[
    "CustomerId"
]
SHARED_SUBSCRIPTION_SHARE = (ref.UNIQUE["AccountId"] - ref.UNIQUE["SubscriptionId"]) / ref.UNIQUE[
    "AccountId"
]


@dataclass(frozen=True)
class Product:
    """A product as sold: its category, providers, typical purchase and cash-back eligibility."""

    number: int
    category: str
    rows: float  # purchases (Amount > 0) per 95,662 rows
    providers: dict[int, float]
    median: float  # typical purchase amount (UGX) for an average customer
    sigma: float  # log-scale spread of the product's amounts
    cashback: float  # relative chance that a purchase earns a platform cash-back credit
    airtime_like: bool = False  # amounts are denominations (500, 1000, 2000, ...)


# Purchase products: row counts reconstructed so that category, provider and the negative share
# all match REFERENCE.md (credits and cash-back are provider 4; purchases the other providers).
PURCHASE_PRODUCTS: tuple[Product, ...] = (
    Product(3, "airtime", 21_111, {6: 0.633, 5: 0.288, 1: 0.035, 3: 0.044}, 2_000, 0.6, 1.0, True),
    Product(10, "airtime", 13_600, {6: 1.0}, 1_500, 0.6, 1.0, True),
    Product(1, "airtime", 2_880, {6: 0.8, 1: 0.2}, 1_500, 0.6, 1.0, True),
    Product(4, "airtime", 2_400, {6: 0.9, 5: 0.1}, 2_000, 0.7, 1.0, True),
    Product(2, "airtime", 236, {6: 1.0}, 5_000, 0.7, 0.6, True),
    Product(15, "financial_services", 11_964, {5: 0.55, 1: 0.28, 3: 0.17}, 6_000, 1.35, 0.02),
    Product(7, "financial_services", 25, {4: 0.8, 3: 0.2}, 20_000, 1.2, 0.0),
    Product(9, "financial_services", 18, {2: 1.0}, 50_000, 1.0, 0.0),
    Product(16, "financial_services", 10, {1: 1.0}, 30_000, 1.0, 0.0),
    Product(23, "financial_services", 7, {3: 1.0}, 100_000, 1.0, 0.0),
    Product(8, "financial_services", 11, {1: 1.0}, 10_000, 1.0, 0.0),
    Product(21, "utility_bill", 1_512, {1: 0.6, 5: 0.4}, 15_000, 0.9, 1.0),
    Product(22, "utility_bill", 112, {1: 0.5, 5: 0.5}, 30_000, 0.9, 0.8),
    Product(13, "utility_bill", 296, {5: 1.0}, 20_000, 0.9, 0.8),
    Product(11, "data_bundles", 1_377, {6: 0.6, 5: 0.4}, 2_000, 0.7, 1.0),
    Product(14, "data_bundles", 236, {6: 1.0}, 5_000, 0.7, 0.8),
    Product(19, "tv", 965, {6: 1.0}, 10_000, 0.8, 1.0),
    Product(20, "tv", 314, {6: 0.64, 5: 0.36}, 25_000, 0.8, 0.8),
    Product(27, "ticket", 216, {6: 1.0}, 20_000, 0.8, 0.5),
    Product(24, "movies", 175, {3: 0.5, 6: 0.5}, 10_000, 0.6, 0.5),
    Product(5, "transport", 25, {5: 1.0}, 30_000, 0.7, 0.1),
    Product(12, "other", 2, {1: 1.0}, 50_000, 0.7, 0.0),
)
# Own-account credits (refunds, reversals, deposits) are provider 4: (product, category, share).
CREDIT_PRODUCTS: tuple[tuple[int, str, float], ...] = (
    (6, "financial_services", 0.34),
    (3, "airtime", 0.41),
    (10, "airtime", 0.25),
)
PRODUCT_NUMBERS: tuple[int, ...] = tuple(
    sorted({p.number for p in PURCHASE_PRODUCTS} | {c[0] for c in CREDIT_PRODUCTS})
)
_PRODUCT_INDEX = {n: i for i, n in enumerate(PRODUCT_NUMBERS)}
_PRODUCT_CATEGORY = np.array(
    [
        CATEGORIES.index(
            next(
                (p.category for p in PURCHASE_PRODUCTS if p.number == n),
                next((c[1] for c in CREDIT_PRODUCTS if c[0] == n), "other"),
            )
        )
        for n in PRODUCT_NUMBERS
    ],
    dtype=np.int8,
)

# Pricing strategy given the provider, as shares of (0, 1, 2, 4).
PRICING_BY_PROVIDER: dict[int, tuple[float, float, float, float]] = {
    1: (0.04, 0.0, 0.94, 0.02),
    2: (0.0, 0.0, 1.0, 0.0),
    3: (0.0, 0.60, 0.40, 0.0),
    4: (0.02, 0.0, 0.90, 0.08),
    5: (0.0, 0.0, 0.50, 0.50),
    6: (0.0, 0.0, 0.84, 0.16),
}
# Channel shares of purchases and of own credits (cash-back is always ChannelId_2).
PURCHASE_CHANNELS: dict[int, float] = {3: 0.971, 5: 0.018, 1: 0.0094, 2: 0.0016}
CREDIT_CHANNELS: dict[int, float] = {2: 0.85, 3: 0.15}

# Share of rows that are platform cash-back, and of the other rows that are own credits.
CASHBACK_SHARE = ref.CASHBACK_ROWS / ref.REAL_ROWS
OWN_CREDIT_SHARE = 7_270 / (ref.REAL_ROWS - ref.CASHBACK_ROWS)
FRAUD_SHARE = ref.FRAUD_ROWS / ref.REAL_ROWS
BATCH_REPEAT_PROB = 0.017  # chance a purchase repeats the previous one in the same batch
FRACTIONAL_CASHBACK_PROB = 0.024
UTILITY_FEE_PROB = 0.95
UTILITY_FEES = np.array([0.09, 0.12, 0.15])
CASHBACK_RATES = np.array([0.02, 0.025, 0.04, 0.05])
CASHBACK_RATE_P = np.array([0.40, 0.10, 0.20, 0.30])
LARGE_TRANSFER_PROB = 0.06  # times sigmoid(spend - 1): about 2% of finance purchases
LARGE_TRANSFER_MEDIAN = 300_000.0
AIRTIME_SPEND_ELASTICITY = 0.5
LARGE_CREDIT_PROB = 0.006  # finance credits that are deposits of a large transfer
LARGE_CREDIT_FACTOR = 60.0
MAX_AMOUNT = ref.AMOUNT["max"]
MIN_AMOUNT = ref.AMOUNT["min"]

AIRTIME_DENOMINATIONS = np.array(
    [50, 100, 200, 250, 300, 500, 700, 1_000, 1_500, 2_000, 2_500, 3_000, 4_000, 5_000]
    + [6_000, 7_000, 8_000, 10_000, 15_000, 20_000, 25_000, 30_000, 40_000, 50_000, 100_000]
    + [150_000, 200_000, 300_000, 500_000, 1_000_000],
    dtype=np.float64,
)

# Hour-of-day profile in UTC (East Africa Time is UTC+3): quiet at night, busy 8:00-18:00 local.
HOUR_WEIGHTS = np.array(
    [0.35, 0.2, 0.25, 0.6, 1.6, 2.8, 4.2, 5.4, 6.0, 6.3, 6.4, 6.4]
    + [6.3, 6.2, 6.0, 5.8, 5.5, 5.1, 4.6, 3.8, 2.7, 1.7, 1.0, 0.6]
)
NIGHT_HOURS = np.array([20, 21, 22, 23, 0, 1, 2])  # 23:00-05:59 local
WEEKDAY_FACTOR = np.array([1.02, 1.0, 1.0, 1.02, 1.08, 0.97, 0.88])  # Monday first

# Activity: the top customer holds about 1-5% of the rows (4.3% in the real file).
ACTIVITY_TAIL_SCALE = 0.12
ACTIVITY_TAIL_ALPHA = 1.4
# Engagement given the lapse propensity z: P(lapse) = sigmoid(a + b z); activity trend -c z.
LAPSE_INTERCEPT = -0.7
LAPSE_SLOPE = 1.3
TREND_SLOPE = 1.1
BURST_SHAPE = 0.5  # gamma shape of weekly activity multipliers (0 disables)

# Propensity groups (quintiles of z) used to tilt the population mixes.
_GROUP_EDGES = np.array([-0.8416, -0.2533, 0.2533, 0.8416])
_GROUP_CENTRES = np.array([-1.40, -0.53, 0.0, 0.53, 1.40])
# Log-tilt per unit propensity: higher propensity buys more airtime/data, less finance/bills.
CATEGORY_TILT: dict[str, float] = {
    "financial_services": -0.35,
    "airtime": 0.25,
    "utility_bill": -0.45,
    "data_bundles": 0.35,
    "tv": -0.25,
    "ticket": 0.2,
    "movies": 0.3,
    "transport": -0.2,
    "other": 0.0,
}
CHANNEL_TILT: dict[int, float] = {1: 0.5, 2: 0.3, 3: 0.0, 5: -0.4}


# --------------------------------------------------------------------------------------------
# Small vectorised helpers
# --------------------------------------------------------------------------------------------


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _cdf(p: np.ndarray) -> np.ndarray:
    """Row-wise cumulative distribution of non-negative weights, last column exactly 1."""
    c = np.cumsum(p, axis=-1, dtype=np.float64)
    c /= c[..., -1:]
    c[..., -1] = 1.0
    return c


def _sample_rows(cdf: np.ndarray, group: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Draw one category per row from the distribution ``cdf[group[row]]`` (inverse CDF).

    All groups are searched at once: offsetting each group's CDF by its index makes the
    concatenation monotone, so one ``searchsorted`` serves every row.
    """
    n_groups, k = cdf.shape
    flat = (cdf + np.arange(n_groups, dtype=np.float64)[:, None]).ravel()
    g = group.astype(np.int64)
    idx = np.searchsorted(flat, g + u, side="right") - g * k
    return np.clip(idx, 0, k - 1)


def _top_k(rng: np.random.Generator, weights: np.ndarray, k: int) -> np.ndarray:
    """Boolean mask of ``k`` items drawn without replacement with probability ~ ``weights``."""
    n = len(weights)
    mask = np.zeros(n, dtype=bool)
    if k <= 0 or n == 0:
        return mask
    if k >= n:
        mask[:] = True
        return mask
    # Efraimidis-Spirakis: the k largest u ** (1 / w).
    keys = np.log(rng.random(n) + 1e-300) / np.maximum(weights, 1e-12)
    mask[np.argpartition(-keys, k - 1)[:k]] = True
    return mask


def _round_nice(rng: np.random.Generator, x: np.ndarray) -> np.ndarray:
    """Round positive amounts the way people pay: mostly 1-2 significant figures."""
    x = np.maximum(x, 1.0)
    mag = np.power(10.0, np.floor(np.log10(x)) - 1.0)
    u = rng.random(len(x))
    step = np.where(u < 0.5, 5.0 * mag, np.where(u < 0.85, mag, mag / 10.0))
    step = np.maximum(step, 1.0)
    return np.maximum(np.round(x / step) * step, step)


def _snap(x: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """Nearest grid value in log space."""
    log_grid = np.log(grid)
    mids = (log_grid[1:] + log_grid[:-1]) / 2.0
    return grid[np.searchsorted(mids, np.log(np.maximum(x, 1e-9)))]


def _counts_to_rows(counts: np.ndarray) -> np.ndarray:
    """Owner index of every row, rows grouped by owner (``np.repeat`` of ``arange``)."""
    return np.repeat(np.arange(len(counts), dtype=np.int32), counts)


# --------------------------------------------------------------------------------------------
# Customers
# --------------------------------------------------------------------------------------------


@dataclass
class Customers:
    """Per-customer latent traits (arrays of length ``n``)."""

    z: np.ndarray  # lapse propensity
    group: np.ndarray  # propensity quintile 0..4
    rate: np.ndarray  # relative activity rate
    join: np.ndarray  # first active day
    lapse: np.ndarray  # first inactive day (N_DAYS when the customer never lapses)
    trend: np.ndarray  # log change of activity over the span
    spend: np.ndarray  # log spend scale
    amount_sigma: np.ndarray  # irregularity of amounts
    night: np.ndarray  # share of activity at night
    credit_affinity: np.ndarray
    cashback_affinity: np.ndarray

    @property
    def n(self) -> int:
        return len(self.z)


def draw_customers(rng: np.random.Generator, n: int) -> Customers:
    """Latent traits of ``n`` customers; many are (noisily) driven by the lapse propensity."""
    z = rng.standard_normal(n)
    e = rng.standard_normal((8, n))
    # Heavy-tailed activity: log-normal body with a (capped) Pareto tail of power users.
    tail = np.minimum(1.0 + ACTIVITY_TAIL_SCALE * rng.pareto(ACTIVITY_TAIL_ALPHA, n), 40.0)
    rate = np.exp(1.25 * e[0] - 0.45 * z) * tail
    join = np.where(rng.random(n) < 0.22, rng.integers(1, N_DAYS, n), 0)
    lapses = rng.random(n) < _sigmoid(LAPSE_INTERCEPT + LAPSE_SLOPE * z)
    lapse_day = join + 1 + np.floor(rng.random(n) * 125).astype(np.int64)
    lapse = np.where(lapses, np.minimum(lapse_day, N_DAYS), N_DAYS)
    return Customers(
        z=z,
        group=np.searchsorted(_GROUP_EDGES, z).astype(np.int8),
        rate=rate,
        join=join.astype(np.int64),
        lapse=lapse.astype(np.int64),
        trend=-TREND_SLOPE * z + 0.5 * e[1],
        spend=-0.35 * z + 0.9 * e[2],
        amount_sigma=0.3 + 0.5 * _sigmoid(0.9 * z + 0.7 * e[3]),
        night=_sigmoid(np.log(0.07 / 0.93) + 0.7 * z + 0.5 * e[4]),
        credit_affinity=np.exp(0.7 * z + 0.6 * e[5]),
        cashback_affinity=_sigmoid(1.0 + 1.2 * e[6] - 0.2 * z),
    )


def _activity(rng: np.random.Generator, c: Customers) -> np.ndarray:
    """Relative daily activity (customers x days): active window x trend x bursty weeks."""
    days = np.arange(N_DAYS, dtype=np.float64)
    active = (days[None, :] >= c.join[:, None]) & (days[None, :] < c.lapse[:, None])
    level = np.exp(c.trend[:, None] * (days[None, :] / (N_DAYS - 1) - 0.5))
    if BURST_SHAPE > 0:
        # Busy and quiet weeks (gamma, mean 1): history predicts the next month imperfectly.
        n_weeks = (N_DAYS + 6) // 7
        weeks = rng.gamma(BURST_SHAPE, 1.0 / BURST_SHAPE, (c.n, n_weeks))
        level *= np.repeat(weeks, 7, axis=1)[:, :N_DAYS]
    return np.where(active, level, 0.0)


def _hour_mass_fraction(start_s: int, end_s: int) -> float:
    """Share of the population's daily hour profile between two seconds-of-day."""
    w = HOUR_WEIGHTS / HOUR_WEIGHTS.sum()
    edges = np.concatenate([[0.0], np.cumsum(w)])

    def cum(sec: int) -> float:
        h, frac = divmod(sec / 3600.0, 1.0)
        h = int(h)
        return float(edges[h] + (w[h] * frac if h < 24 else 0.0))

    return cum(end_s) - cum(start_s)


def calendar_target(rng: np.random.Generator) -> np.ndarray:
    """Expected share of rows per day: monthly volumes of the real file, weekly rhythm, noise."""
    days = np.arange(N_DAYS)
    dates = pd.to_datetime(_DAY0 + days * _DAY, unit="s")
    month = dates.strftime("%Y-%m").to_numpy()
    weekday = (_FIRST_WEEKDAY + days) % 7
    t = WEEKDAY_FACTOR[weekday] * np.exp(0.08 * rng.standard_normal(N_DAYS))
    t[0] *= _hour_mass_fraction(_T0 - _DAY0, _DAY)
    t[-1] *= _hour_mass_fraction(0, _T1 - (_DAY0 + (N_DAYS - 1) * _DAY))
    total = sum(ref.MONTH_ROWS.values())
    for m, rows in ref.MONTH_ROWS.items():
        sel = month == m
        t[sel] *= rows / total / t[sel].sum()
    return t / t.sum()


def _calibrate_calendar(
    target: np.ndarray, activity: np.ndarray, counts: np.ndarray, iterations: int = 12
) -> np.ndarray:
    """Calendar weights g such that sum_c counts_c * g*a_c / sum(g*a_c) matches ``target``."""
    g = target.copy()
    want = target * counts.sum()
    for _ in range(iterations):
        norm = activity @ g
        got = (counts / norm) @ activity * g
        g *= np.where(got > 0, want / np.maximum(got, 1e-300), 1.0)
        g /= g.sum()
    return g


# --------------------------------------------------------------------------------------------
# Calibrated mixtures for categorical attributes
# --------------------------------------------------------------------------------------------


def _group_tilts(tilt: np.ndarray) -> np.ndarray:
    """(groups x categories) multiplicative tilt from per-category log-slopes."""
    return np.exp(_GROUP_CENTRES[:, None] * tilt[None, :])


def _mixture(
    rng: np.random.Generator,
    row_owner: np.ndarray,
    c: Customers,
    target: np.ndarray,
    tilt: np.ndarray,
    fav_weight: tuple[float, float],
) -> np.ndarray:
    """Per row: the customer's favourite (prob w_c) or a draw from the tilted population mix.

    The population mix of each propensity group is rescaled (iterative proportional fitting)
    so the expected overall shares equal ``target`` given who the rows belong to.
    """
    if len(row_owner) == 0:
        return np.zeros(0, dtype=np.int64)
    target = np.asarray(target, dtype=np.float64) / np.sum(target)
    k = len(target)
    tilts = _group_tilts(tilt)
    fav = _sample_rows(_cdf(target[None, :] * tilts), c.group, rng.random(c.n))
    w = rng.uniform(*fav_weight, c.n)
    n_rows = np.bincount(row_owner, minlength=c.n).astype(np.float64)
    fav_rows = np.bincount(fav, weights=n_rows * w, minlength=k)
    pop_rows = np.bincount(c.group, weights=n_rows * (1.0 - w), minlength=len(_GROUP_CENTRES))
    want = np.maximum(target * n_rows.sum() - fav_rows, 1e-3 * target * n_rows.sum())
    x = np.ones(k)
    for _ in range(30):
        base = tilts * x[None, :]
        base /= base.sum(axis=1, keepdims=True)
        got = pop_rows @ base
        x *= want / np.maximum(got, 1e-300)
    base = tilts * x[None, :]
    base /= base.sum(axis=1, keepdims=True)
    n = len(row_owner)
    out = _sample_rows(_cdf(base), c.group[row_owner], rng.random(n))
    use_fav = rng.random(n) < w[row_owner]
    out[use_fav] = fav[row_owner[use_fav]]
    return out


# --------------------------------------------------------------------------------------------
# The generator
# --------------------------------------------------------------------------------------------


def _check_args(rows: int, customers: int) -> None:
    if int(rows) != rows or int(customers) != customers:
        raise ValueError("rows and customers must be integers")
    if customers < 1:
        raise ValueError(f"customers must be at least 1, got {customers}")
    if rows < customers:
        raise ValueError(f"rows ({rows}) must be at least customers ({customers}): each transacts")


def _row_counts(
    rng: np.random.Generator, c: Customers, activity: np.ndarray, calendar: np.ndarray, total: int
) -> np.ndarray:
    """Own rows per customer: at least one each, the rest multinomial on rate x exposure."""
    expected = c.rate * (activity @ calendar)
    p = expected / expected.sum()
    return 1 + rng.multinomial(total - c.n, p)


def _times(
    rng: np.random.Generator, owner: np.ndarray, c: Customers, daily: np.ndarray
) -> np.ndarray:
    """Seconds since epoch of each row: a day from the customer's intensity, an hour, a second."""
    n = len(owner)
    cdf = _cdf(daily)
    day = _sample_rows(cdf, owner, np.minimum(rng.random(n), 1.0 - 1e-9))
    del cdf
    # Guard against float rounding: keep each row inside its customer's active days.
    positive = daily > 0
    first = np.argmax(positive, axis=1)
    last = N_DAYS - 1 - np.argmax(positive[:, ::-1], axis=1)
    day = np.clip(day, first[owner], last[owner])
    hour_w = HOUR_WEIGHTS.copy()
    night_w = np.zeros(24)
    night_w[NIGHT_HOURS] = hour_w[NIGHT_HOURS]
    day_w = hour_w - night_w
    hour_cdf = _cdf(np.stack([day_w, night_w]))
    night_row = c.night[owner]
    t = np.empty(n, dtype=np.int64)
    todo = np.arange(n)
    for _ in range(60):  # redraw the few rows that fall outside the span's partial end days
        is_night = (rng.random(len(todo)) < night_row[todo]).astype(np.int64)
        hour = _sample_rows(hour_cdf, is_night, rng.random(len(todo)))
        sec = rng.integers(0, 3600, len(todo))
        t[todo] = _DAY0 + day[todo] * _DAY + hour * 3600 + sec
        todo = todo[(t[todo] < _T0) | (t[todo] > _T1)]
        if len(todo) == 0:
            break
    return np.clip(t, _T0, _T1)


def _purchase_amounts(
    rng: np.random.Generator, owner: np.ndarray, c: Customers, product: np.ndarray
) -> np.ndarray:
    """Purchase amounts (> 0): product median x customer spend scale, rounded as people pay."""
    n = len(owner)
    idx = np.array([_PRODUCT_INDEX[p.number] for p in PURCHASE_PRODUCTS])
    log_median = np.zeros(len(PRODUCT_NUMBERS))
    sigma = np.ones(len(PRODUCT_NUMBERS))
    airtime = np.zeros(len(PRODUCT_NUMBERS), dtype=bool)
    log_median[idx] = np.log([p.median for p in PURCHASE_PRODUCTS])
    sigma[idx] = [p.sigma for p in PURCHASE_PRODUCTS]
    airtime[idx] = [p.airtime_like for p in PURCHASE_PRODUCTS]
    spend = c.spend[owner]
    eps = rng.standard_normal(n)
    is_air = airtime[product]
    # Airtime top-ups vary less between customers than bills and transfers do.
    elasticity = np.where(is_air, AIRTIME_SPEND_ELASTICITY, 1.0)
    amount = np.exp(
        log_median[product]
        + elasticity * spend
        + sigma[product] * c.amount_sigma[owner] * eps * 1.6
    )
    odd = rng.random(n) < 0.08  # an odd top-up (890, 1,450) now and then
    snap = np.flatnonzero(is_air & ~odd)
    amount[snap] = _snap(amount[snap], AIRTIME_DENOMINATIONS)
    # Now and then a large financial transfer (the real file reaches 9.88M UGX).
    finance = _PRODUCT_CATEGORY[product] == CATEGORIES.index("financial_services")
    large = finance & (rng.random(n) < LARGE_TRANSFER_PROB * _sigmoid(spend - 1.0))
    amount[large] = np.exp(np.log(LARGE_TRANSFER_MEDIAN) + 0.5 * spend[large] + 1.2 * eps[large])
    nice = np.flatnonzero(~is_air | odd | large)
    amount[nice] = _round_nice(rng, amount[nice])
    return np.minimum(amount, MAX_AMOUNT)


def _credit_amounts(
    rng: np.random.Generator, owner: np.ndarray, c: Customers, product: np.ndarray
) -> np.ndarray:
    """Own credits (< 0): airtime reversals near a purchase's size, finance credits wider."""
    n = len(owner)
    fin = product == _PRODUCT_INDEX[6]
    raw = np.exp(
        np.where(fin, np.log(2_500.0), np.log(1_000.0))
        + c.spend[owner]
        + np.where(fin, 1.5, 0.8) * rng.standard_normal(n)
    )
    raw[fin & (rng.random(n) < LARGE_CREDIT_PROB)] *= LARGE_CREDIT_FACTOR
    amount = _snap(raw, AIRTIME_DENOMINATIONS)
    amount[fin] = _round_nice(rng, raw[fin])
    return -np.minimum(amount, -MIN_AMOUNT)


def _batch_repeats(
    rng: np.random.Generator, owner: np.ndarray, is_credit: np.ndarray
) -> np.ndarray:
    """Head row of each row's batch: a few purchases repeat the previous one (same batch)."""
    n = len(owner)
    eligible = np.zeros(n, dtype=bool)
    if n > 1:
        eligible[1:] = (owner[1:] == owner[:-1]) & ~is_credit[1:] & ~is_credit[:-1]
    repeat = eligible & (rng.random(n) < BATCH_REPEAT_PROB)
    head = np.where(repeat, 0, np.arange(n))
    return np.maximum.accumulate(head)


@dataclass
class GeneratedArrays:
    """The generated rows as coded numpy arrays, in chronological order."""

    customers: Customers
    n_batches: int
    rng: np.random.Generator  # continues the seeded stream (used for the ids)
    owner: np.ndarray  # customer index
    cashback: np.ndarray  # platform cash-back credit
    batch: np.ndarray  # batch index
    provider: np.ndarray  # provider number
    product: np.ndarray  # index into PRODUCT_NUMBERS
    channel: np.ndarray  # channel number
    pricing: np.ndarray
    amount: np.ndarray
    value: np.ndarray
    fraud: np.ndarray
    t: np.ndarray  # seconds since the epoch (UTC)


def generate_arrays(rows: int, customers: int, seed: int) -> GeneratedArrays:
    """The generated data as coded numpy arrays (see :func:`generate` for the DataFrame)."""
    _check_args(rows, customers)
    rng = np.random.default_rng(seed)
    c = draw_customers(rng, customers)

    n_cashback = int(round(rows * CASHBACK_SHARE))
    n_own = max(customers, rows - n_cashback)
    n_cashback = rows - n_own
    n_credit = min(int(round(n_own * OWN_CREDIT_SHARE)), n_own - n_cashback)

    activity = _activity(rng, c)
    target = calendar_target(rng)
    counts = _row_counts(rng, c, activity, target, n_own)
    calendar = _calibrate_calendar(target, activity, counts)
    owner = _counts_to_rows(counts)
    t = _times(rng, owner, c, activity * calendar[None, :])
    del activity

    # Kind: own credits go preferentially to credit-prone customers.
    is_credit = _top_k(rng, c.credit_affinity[owner], n_credit)
    buy = np.flatnonzero(~is_credit)
    cred = np.flatnonzero(is_credit)

    product = np.empty(n_own, dtype=np.int64)
    channel = np.empty(n_own, dtype=np.int64)
    provider = np.empty(n_own, dtype=np.int64)
    p_target = np.array([p.rows for p in PURCHASE_PRODUCTS])
    p_tilt = np.array([CATEGORY_TILT[p.category] for p in PURCHASE_PRODUCTS])
    k = _mixture(rng, owner[buy], c, p_target, p_tilt, (0.2, 0.8))
    p_idx = np.array([_PRODUCT_INDEX[p.number] for p in PURCHASE_PRODUCTS])
    product[buy] = p_idx[k]
    prov_cdf = _cdf(
        np.array([[p.providers.get(v, 0.0) for v in PROVIDERS] for p in PURCHASE_PRODUCTS])
    )
    provider[buy] = np.asarray(PROVIDERS)[_sample_rows(prov_cdf, k, rng.random(len(buy)))]
    ch_keys = list(PURCHASE_CHANNELS)
    ch = _mixture(
        rng,
        owner[buy],
        c,
        np.array([PURCHASE_CHANNELS[x] for x in ch_keys]),
        np.array([CHANNEL_TILT[x] for x in ch_keys]),
        (0.5, 1.0),
    )
    channel[buy] = np.asarray(ch_keys)[ch]

    cp = _mixture(
        rng,
        owner[cred],
        c,
        np.array([x[2] for x in CREDIT_PRODUCTS]),
        np.array([0.3, -0.1, -0.1]),
        (0.0, 0.8),
    )
    product[cred] = np.array([_PRODUCT_INDEX[x[0]] for x in CREDIT_PRODUCTS])[cp]
    provider[cred] = CASHBACK_PROVIDER
    cc_keys = list(CREDIT_CHANNELS)
    cc = _mixture(
        rng,
        owner[cred],
        c,
        np.array([CREDIT_CHANNELS[x] for x in cc_keys]),
        np.zeros(len(cc_keys)),
        (0.3, 1.0),
    )
    channel[cred] = np.asarray(cc_keys)[cc]

    pricing_cdf = _cdf(np.array([PRICING_BY_PROVIDER[v] for v in PROVIDERS]))
    pricing = np.asarray(PRICING)[_sample_rows(pricing_cdf, provider - 1, rng.random(n_own))]
    amount = np.empty(n_own)
    amount[buy] = _purchase_amounts(rng, owner[buy], c, product[buy])
    amount[cred] = _credit_amounts(rng, owner[cred], c, product[cred])

    # Batches: sort each customer's rows by time, let a few purchases repeat the previous one.
    order = np.argsort((owner.astype(np.int64) << 24) | (t - _DAY0), kind="stable")
    owner, t, is_credit = owner[order], t[order], is_credit[order]
    product, provider, channel = product[order], provider[order], channel[order]
    pricing, amount = pricing[order], amount[order]
    head = _batch_repeats(rng, owner, is_credit)
    is_repeat = head != np.arange(n_own)
    rep = np.flatnonzero(is_repeat)
    if len(rep):
        gap = np.zeros(n_own, dtype=np.int64)
        gap[rep] = rng.integers(20, 400, len(rep))
        cum = np.cumsum(gap)
        src = head[rep]
        t[rep] = np.minimum(t[src] + cum[rep] - cum[src], _T1)
        for arr in (product, provider, channel, pricing, amount):
            arr[rep] = arr[src]
    batch_of_own = np.cumsum(~is_repeat) - 1

    # Value: fees on utility bills.
    is_utility = _PRODUCT_CATEGORY[product] == CATEGORIES.index("utility_bill")
    fee = UTILITY_FEES[rng.integers(0, len(UTILITY_FEES), n_own)]
    with_fee = is_utility & ~is_credit & (rng.random(n_own) < UTILITY_FEE_PROB)
    value = np.where(with_fee, np.round(amount * (1.0 + fee)), np.abs(amount))

    # Fraud: preferentially large purchases.
    n_fraud = min(int(round(rows * FRAUD_SHARE)), int((~is_credit).sum()))
    fraud_w = np.where(is_credit, 0.0, np.power(np.maximum(amount, 1.0) / 1e4, 1.5))
    fraud = _top_k(rng, fraud_w, n_fraud)

    # Cash-back: a platform credit a few seconds after chosen purchases.
    elig = np.zeros(len(PRODUCT_NUMBERS))
    elig[[_PRODUCT_INDEX[p.number] for p in PURCHASE_PRODUCTS]] = [
        p.cashback for p in PURCHASE_PRODUCTS
    ]
    cb_w = np.where(is_credit | fraud, 0.0, (elig[product] + 1e-4) * c.cashback_affinity[owner])
    parent = np.flatnonzero(_top_k(rng, cb_w, n_cashback))
    rate = rng.choice(CASHBACK_RATES, size=len(parent), p=CASHBACK_RATE_P)
    cb_raw = rate * value[parent] * rng.uniform(0.9, 1.1, len(parent))
    fractional = rng.random(len(parent)) < FRACTIONAL_CASHBACK_PROB
    quarter = np.round(cb_raw * 4.0) / 4.0
    quarter = np.where(quarter == np.round(quarter), quarter + 0.25, quarter)
    cb_amount = -np.where(fractional, quarter, np.maximum(np.round(cb_raw), 1.0))
    cb_value = np.ceil(-cb_amount)
    delay = 5 + np.round(rng.gamma(2.0, 11.0, len(parent))).astype(np.int64)
    cb_t = np.minimum(t[parent] + delay, _T1)

    n_batches = int(batch_of_own[-1]) + 1 + len(parent)
    n_cb = len(parent)
    i8 = np.int8
    data = {
        "owner": np.concatenate([owner, owner[parent]]).astype(np.int32),
        "cashback": np.concatenate([np.zeros(n_own, bool), np.ones(n_cb, bool)]),
        "batch": np.concatenate([batch_of_own, batch_of_own[-1] + 1 + np.arange(n_cb)]).astype(
            np.int32
        ),
        "provider": np.concatenate([provider, np.full(n_cb, CASHBACK_PROVIDER)]).astype(i8),
        "product": np.concatenate(
            [product, np.full(n_cb, _PRODUCT_INDEX[CASHBACK_PRODUCT])]
        ).astype(i8),
        "channel": np.concatenate([channel, np.full(n_cb, CASHBACK_CHANNEL)]).astype(i8),
        "pricing": np.concatenate([pricing, np.full(n_cb, CASHBACK_PRICING)]).astype(i8),
        "amount": np.concatenate([amount, cb_amount]),
        "value": np.concatenate([value, cb_value]),
        "fraud": np.concatenate([fraud, np.zeros(n_cb, bool)]),
        "t": np.concatenate([t, cb_t]),
    }
    # Chronological order; a cash-back never precedes its purchase.
    key = (data["t"] - _DAY0) * 2 + data["cashback"]
    order = np.argsort(key, kind="stable")
    data = {k: v[order] for k, v in data.items()}
    data["t"][0] = _T0
    if rows > 1:
        data["t"][-1] = _T1
    return GeneratedArrays(customers=c, n_batches=n_batches, rng=rng, **data)


# --------------------------------------------------------------------------------------------
# Identifiers and the table
# --------------------------------------------------------------------------------------------


def _unique_numbers(
    rng: np.random.Generator, n: int, span: int, exclude: int | None = None
) -> np.ndarray:
    """``n`` distinct positive integers below ``span`` (skipping ``exclude``), random order."""
    span = max(span, n + 2)
    nums = rng.permutation(span - 1)[:n] + 1
    if exclude is not None:
        nums = np.where(nums >= exclude, nums + 1, nums)
    return nums


def _shared_map(rng: np.random.Generator, n: int, n_distinct: int) -> np.ndarray:
    """Map ``n`` owners onto ``n_distinct`` ids: most have their own, a few share another's."""
    order = rng.permutation(n)
    out = np.empty(n, dtype=np.int64)
    out[order[:n_distinct]] = np.arange(n_distinct)
    out[order[n_distinct:]] = rng.integers(0, n_distinct, n - n_distinct)
    return out


def _labels(prefix: str, numbers: np.ndarray) -> pa.Array:
    return pc.binary_join_element_wise(prefix, pc.cast(pa.array(numbers), pa.string()), "")


def _take(labels: pa.Array | list[str], codes: np.ndarray) -> pa.Array:
    dictionary = labels if isinstance(labels, pa.Array) else pa.array(labels, pa.string())
    return pc.take(dictionary, pa.array(codes))


def to_table(g: GeneratedArrays) -> pa.Table:
    """The 16 Xente columns as an Arrow table (string ids, UTC timestamps)."""
    rng = g.rng
    c = g.customers
    rows = len(g.owner)
    # Customers, accounts (the platform account is one of the 3,633) and subscriptions.
    n_acc = max(c.n - int(round(c.n * SHARED_ACCOUNT_SHARE)), 1)
    n_sub = max(n_acc - int(round(n_acc * SHARED_SUBSCRIPTION_SHARE)), 1)
    account_of = _shared_map(rng, c.n, n_acc)
    sub_of_account = _shared_map(rng, n_acc, n_sub)
    cust_nums = _unique_numbers(rng, c.n, 2 * c.n + 10)
    acc_nums = _unique_numbers(rng, n_acc, int(1.4 * c.n) + 10, exclude=CASHBACK_ACCOUNT)
    sub_nums = _unique_numbers(rng, n_sub, int(1.35 * c.n) + 10, exclude=CASHBACK_SUBSCRIPTION)
    tx_nums = _unique_numbers(rng, rows, int(1.46 * rows) + 10)
    batch_nums = _unique_numbers(rng, g.n_batches, int(1.46 * rows) + 10)

    cb = g.cashback
    acc_code = np.where(cb, n_acc, account_of[g.owner]).astype(np.int32)
    sub_code = np.where(cb, n_sub, sub_of_account[account_of[g.owner]]).astype(np.int32)
    accounts = _labels("AccountId_", np.append(acc_nums, CASHBACK_ACCOUNT))
    subs = _labels("SubscriptionId_", np.append(sub_nums, CASHBACK_SUBSCRIPTION))
    provider_labels = [f"ProviderId_{p}" for p in range(max(PROVIDERS) + 1)]
    channel_labels = [f"ChannelId_{x}" for x in range(max(CHANNELS) + 1)]
    return pa.table(
        {
            "TransactionId": _labels("TransactionId_", tx_nums),
            "BatchId": _labels("BatchId_", batch_nums[g.batch]),
            "AccountId": _take(accounts, acc_code),
            "SubscriptionId": _take(subs, sub_code),
            "CustomerId": _take(_labels("CustomerId_", cust_nums), g.owner),
            "CurrencyCode": _take(["UGX"], np.zeros(rows, dtype=np.int8)),
            "CountryCode": pa.array(np.full(rows, 256, dtype=np.int64)),
            "ProviderId": _take(provider_labels, g.provider),
            "ProductId": _take([f"ProductId_{n}" for n in PRODUCT_NUMBERS], g.product),
            "ProductCategory": _take(list(CATEGORIES), _PRODUCT_CATEGORY[g.product]),
            "ChannelId": _take(channel_labels, g.channel),
            "Amount": pa.array(g.amount.astype(np.float64)),
            "Value": pa.array(g.value.astype(np.float64)),
            "TransactionStartTime": pa.array(
                g.t.astype(np.int64) * 1_000_000, type=pa.timestamp("us", tz="UTC")
            ),
            "PricingStrategy": pa.array(g.pricing.astype(np.int64)),
            "FraudResult": pa.array(g.fraud.astype(np.int64)),
        }
    )


def generate(
    rows: int = DEFAULT_ROWS, customers: int = DEFAULT_CUSTOMERS, seed: int = DEFAULT_SEED
) -> pd.DataFrame:
    """Deterministic Xente-shaped transactions, sorted by time.

    The 16 columns of the real file in its order: ids and categories as ``str``, ``Amount`` and
    ``Value`` float64, ``CountryCode``/``PricingStrategy``/``FraudResult`` int64 and
    ``TransactionStartTime`` tz-aware UTC (``datetime64[us, UTC]``). The same arguments always
    give the same rows; ``rows >= customers >= 1``.
    """
    return to_table(generate_arrays(rows, customers, seed)).to_pandas(split_blocks=True)
