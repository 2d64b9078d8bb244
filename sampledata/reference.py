"""Calibration targets read from the real Xente file (``shared/data/xente/REFERENCE.md``).

The generator draws around these figures; the tests compare a generated set with them. Counts are
for the real 95,662 rows and are used as shares, so any ``rows`` scales them.
"""

from __future__ import annotations

import pandas as pd

from schemas.vocab import RAW_COLUMNS

COLUMNS: tuple[str, ...] = RAW_COLUMNS  # the real file's 16 columns, in order

REAL_ROWS = 95_662
REAL_CUSTOMERS = 3_742
SPAN_START = pd.Timestamp("2018-11-15T02:18:49Z")
SPAN_END = pd.Timestamp("2019-02-13T10:01:28Z")

MONTH_ROWS: dict[str, int] = {
    "2018-11": 12_472,
    "2018-12": 35_635,
    "2019-01": 31_783,
    "2019-02": 15_772,
}
PROVIDER_ROWS: dict[str, int] = {
    "ProviderId_4": 38_189,
    "ProviderId_6": 34_186,
    "ProviderId_5": 14_542,
    "ProviderId_1": 5_643,
    "ProviderId_3": 3_084,
    "ProviderId_2": 18,
}
CATEGORY_ROWS: dict[str, int] = {
    "financial_services": 45_405,
    "airtime": 45_027,
    "utility_bill": 1_920,
    "data_bundles": 1_613,
    "tv": 1_279,
    # REFERENCE.md gives these four only as "small" (418 rows together).
    "ticket": 216,
    "movies": 175,
    "transport": 25,
    "other": 2,
}
CHANNEL_ROWS: dict[str, int] = {
    "ChannelId_3": 56_935,
    "ChannelId_2": 37_141,
    "ChannelId_5": 1_048,
    "ChannelId_1": 538,
}
PRICING_ROWS: dict[int, int] = {2: 79_848, 4: 13_562, 1: 1_867, 0: 385}
FRAUD_ROWS = 193
NEGATIVE_SHARE = 0.399
CASHBACK_ROWS = 30_900
VALUE_DIFFERS_ROWS = 2_565
UNIQUE: dict[str, int] = {
    "TransactionId": 95_662,
    "BatchId": 94_809,
    "AccountId": 3_633,
    "SubscriptionId": 3_627,
    "CustomerId": 3_742,
}
AMOUNT: dict[str, float] = {
    "min": -1_000_000.0,
    "q1": -50.0,
    "median": 1_000.0,
    "mean": 6_717.8,
    "q3": 2_800.0,
    "max": 9_880_000.0,
}
N_PRODUCTS = 23

CASHBACK_ACCOUNT = "AccountId_4841"
CASHBACK_SUBSCRIPTION = "SubscriptionId_3829"
