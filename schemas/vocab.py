"""The one place that lists the Xente data's allowed values and id formats.

Unknown-but-plausible values (a new provider or product id in the right format) pass validation;
values outside these sets for the closed vocabularies (currency, country, category, channel,
pricing strategy, fraud flag) are impossible and fail.
"""

from __future__ import annotations

RAW_COLUMNS: tuple[str, ...] = (
    "TransactionId",
    "BatchId",
    "AccountId",
    "SubscriptionId",
    "CustomerId",
    "CurrencyCode",
    "CountryCode",
    "ProviderId",
    "ProductId",
    "ProductCategory",
    "ChannelId",
    "Amount",
    "Value",
    "TransactionStartTime",
    "PricingStrategy",
    "FraudResult",
)

# ASCII digits and \Z: "\d" would accept other scripts' digits and "$" a trailing newline.
ID_PATTERNS: dict[str, str] = {
    "TransactionId": r"^TransactionId_[0-9]+\Z",
    "BatchId": r"^BatchId_[0-9]+\Z",
    "AccountId": r"^AccountId_[0-9]+\Z",
    "SubscriptionId": r"^SubscriptionId_[0-9]+\Z",
    "CustomerId": r"^CustomerId_[0-9]+\Z",
    "ProviderId": r"^ProviderId_[0-9]+\Z",
    "ProductId": r"^ProductId_[0-9]+\Z",
}

CURRENCIES: frozenset[str] = frozenset({"UGX"})
COUNTRIES: frozenset[int] = frozenset({256})
PRODUCT_CATEGORIES: tuple[str, ...] = (
    "airtime",
    "data_bundles",
    "financial_services",
    "movies",
    "other",
    "ticket",
    "transport",
    "tv",
    "utility_bill",
)
# The publisher names five channels: web, Android, IOS, pay later, checkout.
CHANNELS: tuple[str, ...] = (
    "ChannelId_1",
    "ChannelId_2",
    "ChannelId_3",
    "ChannelId_4",
    "ChannelId_5",
)
# Providers seen in the real file; others in the right format are accepted.
PROVIDERS: tuple[str, ...] = tuple(f"ProviderId_{i}" for i in range(1, 7))
PRICING_STRATEGIES: tuple[int, ...] = (0, 1, 2, 3, 4)
FRAUD_FLAGS: tuple[int, ...] = (0, 1)

# The platform account that carries cash-back credits (REFERENCE.md); not customer spending.
CASHBACK_ACCOUNT = "AccountId_4841"

# Amount bounds beyond which a value is impossible for a retail wallet (UGX).
MAX_ABS_AMOUNT = 1e9
# Value may exceed |Amount| (fees) but never falls below it by more than rounding.
VALUE_ROUNDING_TOLERANCE = 1.0
# Earliest plausible timestamp; the latest is "now" plus this allowance for clock skew.
EARLIEST_TIMESTAMP = "2000-01-01T00:00:00Z"
FUTURE_SKEW_HOURS = 24
