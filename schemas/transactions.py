"""pandera schemas for Xente transactions.

``TransactionsSchema`` validates the *typed* raw frame (after ingestion parsed strings into numbers
and timestamps; rows whose values cannot be parsed are quarantined before it runs).
``CleanTransactionsSchema`` validates what the cleaning step hands to feature engineering.
Both are run with ``lazy=True`` so every failure is reported at once.
"""

from __future__ import annotations

import pandas as pd
import pandera.pandas as pa
from pandera.typing import Series

from schemas import vocab

UTC_TIMESTAMP = pd.DatetimeTZDtype(unit="us", tz="UTC")


def _id_field(column: str, **kwargs: object) -> object:
    return pa.Field(str_matches=vocab.ID_PATTERNS[column], nullable=False, **kwargs)


class TransactionsSchema(pa.DataFrameModel):
    """The 16 raw Xente columns, typed."""

    TransactionId: Series[str] = _id_field("TransactionId")
    BatchId: Series[str] = _id_field("BatchId")
    AccountId: Series[str] = _id_field("AccountId")
    SubscriptionId: Series[str] = _id_field("SubscriptionId")
    CustomerId: Series[str] = _id_field("CustomerId")
    CurrencyCode: Series[str] = pa.Field(isin=sorted(vocab.CURRENCIES), nullable=False)
    CountryCode: Series[int] = pa.Field(isin=sorted(vocab.COUNTRIES), nullable=False)
    ProviderId: Series[str] = _id_field("ProviderId")
    ProductId: Series[str] = _id_field("ProductId")
    ProductCategory: Series[str] = pa.Field(isin=list(vocab.PRODUCT_CATEGORIES), nullable=False)
    ChannelId: Series[str] = pa.Field(isin=list(vocab.CHANNELS), nullable=False)
    Amount: Series[float] = pa.Field(
        ge=-vocab.MAX_ABS_AMOUNT, le=vocab.MAX_ABS_AMOUNT, nullable=False
    )
    Value: Series[float] = pa.Field(ge=0, le=vocab.MAX_ABS_AMOUNT, nullable=False)
    TransactionStartTime: Series[UTC_TIMESTAMP] = pa.Field(  # type: ignore[valid-type]
        ge=pd.Timestamp(vocab.EARLIEST_TIMESTAMP), nullable=False
    )
    PricingStrategy: Series[int] = pa.Field(isin=list(vocab.PRICING_STRATEGIES), nullable=False)
    FraudResult: Series[int] = pa.Field(isin=list(vocab.FRAUD_FLAGS), nullable=False)

    class Config:
        strict = False  # extra columns are reported by ingestion, not failed here
        coerce = False  # ingestion parses; a failed parse is a quarantined row, not a crash

    @pa.dataframe_check(name="value_not_below_abs_amount")
    def value_covers_amount(cls, df: pd.DataFrame) -> pd.Series:
        """Value is |Amount| plus fees: never below |Amount| by more than rounding."""
        return df["Value"] >= df["Amount"].abs() - vocab.VALUE_ROUNDING_TOLERANCE

    @pa.dataframe_check(name="transaction_id_conflict")
    def transaction_id_consistent(cls, df: pd.DataFrame) -> pd.Series:
        """A TransactionId may repeat only as an exact duplicate row (cleaning removes those)."""
        repeated = df["TransactionId"].duplicated(keep=False)
        if not repeated.any():  # the usual case: one cheap hash pass, no full-row hashing
            return pd.Series(True, index=df.index)
        distinct = df.loc[repeated].drop_duplicates()
        conflicting = distinct["TransactionId"][distinct["TransactionId"].duplicated(keep=False)]
        return ~df["TransactionId"].isin(conflicting.unique())


class CleanTransactionsSchema(pa.DataFrameModel):
    """Cleaned transactions: unique ids, UTC timestamps, numeric types, no nulls."""

    TransactionId: Series[str] = pa.Field(unique=True, nullable=False)
    BatchId: Series[str] = pa.Field(nullable=False)
    AccountId: Series[str] = pa.Field(nullable=False)
    SubscriptionId: Series[str] = pa.Field(nullable=False)
    CustomerId: Series[str] = pa.Field(nullable=False)
    ProviderId: Series[str] = pa.Field(nullable=False)
    ProductId: Series[str] = pa.Field(nullable=False)
    ProductCategory: Series[str] = pa.Field(nullable=False)
    ChannelId: Series[str] = pa.Field(nullable=False)
    Amount: Series[float] = pa.Field(nullable=False)
    Value: Series[float] = pa.Field(ge=0, nullable=False)
    TransactionStartTime: Series[UTC_TIMESTAMP] = pa.Field(nullable=False)  # type: ignore[valid-type]
    PricingStrategy: Series[int] = pa.Field(nullable=False)
    FraudResult: Series[int] = pa.Field(isin=list(vocab.FRAUD_FLAGS), nullable=False)

    class Config:
        strict = False
        coerce = False

    @pa.dataframe_check(name="sorted_by_time")
    def sorted_by_time(cls, df: pd.DataFrame) -> bool:
        return bool(df["TransactionStartTime"].is_monotonic_increasing)
