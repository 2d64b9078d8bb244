"""Request and response models (pydantic v2): they validate the traffic and generate the OpenAPI.

Requests are validated in strict mode (no "1000" for a number, no ``true`` for 0/1) with unknown
fields forbidden, so the JSON Schema published in ``/openapi.json`` is exactly what is accepted.
Closed vocabularies and id formats come from :mod:`schemas.vocab`, the one list the training
pipeline validates against; rules that need several fields (Value against Amount, timestamps not
in the future, conflicting transaction ids) are checked by the training ingestion code itself
(:func:`credit.ingest.validate_transactions`) and reported as 422 as well.

Limits that depend on the configuration (customers per batch, transactions per customer) are
checked before the items are validated, from the validation ``context``
(``{"max_batch": int, "max_transactions": int}``), and published as ``maxItems`` in the OpenAPI.
"""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal

import pandas as pd
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainValidator,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from schemas import vocab

RFC3339 = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,9})?(Z|[+-][0-9]{2}:[0-9]{2})$"
CUSTOMER_ID_PATTERN = r"^CustomerId_[0-9]{1,18}$"
#: The customer of the documented examples; ``/openapi.json`` and ``/docs`` replace it with a
#: customer of the served snapshot, so the default bodies work as they are.
EXAMPLE_CUSTOMER = "CustomerId_4406"
AS_OF_MIN = pd.Timestamp(vocab.EARLIEST_TIMESTAMP)
AS_OF_MAX = pd.Timestamp("2200-01-01T00:00:00Z")


def _id(column: str) -> Any:
    """An id field in the Xente format, e.g. ``ProviderId_6`` (ASCII digits only)."""
    assert column in vocab.ID_PATTERNS, column
    return Annotated[
        str, Field(pattern=rf"^{column}_[0-9]{{1,18}}$", max_length=40, examples=[f"{column}_1"])
    ]


def _not_bool(value: Any) -> Any:
    if isinstance(value, bool):  # JSON true is not the number 1
        raise PydanticCustomError("int_type", "Input should be a valid integer")
    return value


def _literal(values: Any) -> Any:
    """One of a closed vocabulary (``enum`` in the JSON Schema)."""
    allowed = tuple(sorted(values)) if isinstance(values, frozenset) else tuple(values)
    return Annotated[Literal[allowed], BeforeValidator(_not_bool)]


_STRICT_REQUEST = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)


MAX_CSV_TEXT = 40


def _csv_text(value: Any, kind: str) -> str:
    """A field's CSV text (checked later by file ingestion's own parsing), else a type error."""
    if isinstance(value, str) and len(value) <= MAX_CSV_TEXT:
        return value
    raise PydanticCustomError(
        f"{kind}_type",
        "Input should be a valid {what} or its text as in the CSV file",
        {"what": kind},
    )


def _number_or_text(lo: float, hi: float, description: str) -> Any:
    """A JSON number in [lo, hi], or the CSV file's text for it (``"1000"``): text is parsed and
    checked exactly as file ingestion parses it, with ingestion's check names."""

    def check(value: Any) -> float | str:
        if isinstance(value, int | float) and not isinstance(value, bool):
            if not math.isfinite(value):
                raise PydanticCustomError("finite_number", "Input should be a finite number")
            if value < lo:
                raise PydanticCustomError(
                    "greater_than_equal",
                    "Input should be greater than or equal to {ge}",
                    {"ge": lo},
                )
            if value > hi:
                raise PydanticCustomError(
                    "less_than_equal", "Input should be less than or equal to {le}", {"le": hi}
                )
            return float(value)
        return _csv_text(value, "number")

    schema = {
        "anyOf": [
            {"type": "number", "minimum": lo, "maximum": hi},
            {"type": "string", "maxLength": MAX_CSV_TEXT},
        ],
        "description": description,
    }
    return Annotated[float | str, PlainValidator(check), WithJsonSchema(schema)]


def _code_or_text(values: Any) -> Any:
    """One of a closed vocabulary of integers, or the CSV file's text for it (``"256"``)."""
    allowed = tuple(sorted(values))

    def check(value: Any) -> int | str:
        if isinstance(value, int) and not isinstance(value, bool):
            if value not in allowed:
                raise PydanticCustomError(
                    "literal_error", "Input should be one of {expected}", {"expected": allowed}
                )
            return value
        return _csv_text(value, "int")

    schema = {"anyOf": [{"enum": list(allowed)}, {"type": "string", "maxLength": MAX_CSV_TEXT}]}
    return Annotated[int | str, PlainValidator(check), WithJsonSchema(schema)]


class Transaction(BaseModel):
    """One raw Xente transaction, the 16 fields of the source file (same names and formats).

    Numbers may be JSON numbers or the CSV file's text (``"1000"``): text is parsed and checked
    exactly as file ingestion parses it, and a bad value fails with ingestion's check name.
    """

    model_config = _STRICT_REQUEST

    TransactionId: _id("TransactionId")
    BatchId: _id("BatchId")
    AccountId: _id("AccountId")
    SubscriptionId: _id("SubscriptionId")
    CustomerId: _id("CustomerId")
    CurrencyCode: _literal(vocab.CURRENCIES)
    CountryCode: _code_or_text(vocab.COUNTRIES)
    ProviderId: _id("ProviderId")
    ProductId: _id("ProductId")
    ProductCategory: _literal(vocab.PRODUCT_CATEGORIES)
    ChannelId: _literal(vocab.CHANNELS)
    Amount: _number_or_text(
        -vocab.MAX_ABS_AMOUNT,
        vocab.MAX_ABS_AMOUNT,
        "UGX; > 0 a debit (purchase), < 0 a credit into the account",
    )
    Value: _number_or_text(0, vocab.MAX_ABS_AMOUNT, "|Amount| plus any fee")
    TransactionStartTime: str = Field(
        max_length=40,
        json_schema_extra={"format": "date-time"},
        examples=["2018-11-15T02:18:49Z"],
        description="ISO-8601, parsed as file ingestion parses it (no offset: UTC)",
    )
    PricingStrategy: _code_or_text(vocab.PRICING_STRATEGIES)
    FraudResult: _code_or_text(vocab.FRAUD_FLAGS)


def _no_default(schema: dict[str, Any]) -> None:
    """Optional but not nullable: absent means "not given"; ``null`` is refused."""
    schema.pop("default", None)


def _check_count(value: Any, info: ValidationInfo, key: str, what: str) -> Any:
    limit = (info.context or {}).get(key)
    if limit is not None and isinstance(value, list) and len(value) > limit:
        raise PydanticCustomError(
            "too_long", "at most {limit} {what} per request", {"limit": limit, "what": what}
        )
    return value


#: The documented request bodies (by id; with the CSV's first row as a transaction).
_EXAMPLES: tuple[dict[str, Any], ...] = (
    {"customer_id": EXAMPLE_CUSTOMER},
    {
        "customer_id": EXAMPLE_CUSTOMER,
        "transactions": [
            {
                "TransactionId": "TransactionId_76871",
                "BatchId": "BatchId_36123",
                "AccountId": "AccountId_3957",
                "SubscriptionId": "SubscriptionId_887",
                "CustomerId": EXAMPLE_CUSTOMER,
                "CurrencyCode": "UGX",
                "CountryCode": 256,
                "ProviderId": "ProviderId_6",
                "ProductId": "ProductId_10",
                "ProductCategory": "airtime",
                "ChannelId": "ChannelId_3",
                "Amount": 1000.0,
                "Value": 1000.0,
                "TransactionStartTime": "2018-11-15T02:18:49Z",
                "PricingStrategy": 2,
                "FraudResult": 0,
            }
        ],
    },
)


class ScoreRequest(BaseModel):
    """One customer: by id (scored from the latest feature snapshot) or with raw transactions."""

    model_config = ConfigDict(
        **_STRICT_REQUEST,
        json_schema_extra={
            "dependentRequired": {"as_of": ["transactions"]},
            "examples": list(_EXAMPLES),
        },
    )

    customer_id: str = Field(
        pattern=CUSTOMER_ID_PATTERN, max_length=40, examples=[EXAMPLE_CUSTOMER]
    )
    transactions: list[Transaction] = Field(
        default=None,  # type: ignore[assignment]  # absent = score by id; null is refused
        min_length=1,
        json_schema_extra=_no_default,
        description="Raw transactions of this customer (every CustomerId must equal customer_id); "
        "featurised with the training code. Omit to score from the latest feature snapshot.",
    )
    as_of: str = Field(
        default=None,  # type: ignore[assignment]
        json_schema_extra=_no_default,
        pattern=RFC3339,
        max_length=40,
        description="Feature cutoff for transactions (only with transactions; default: one "
        "second after the customer's last transaction). Nothing at or after it is read.",
    )

    @model_validator(mode="after")
    def _as_of_needs_transactions(self) -> ScoreRequest:
        if self.as_of is not None and self.transactions is None:
            raise PydanticCustomError(
                "dependent_required",
                "as_of needs transactions (a snapshot has its own date)",
                {"field": "as_of"},
            )
        return self

    @field_validator("as_of")
    @classmethod
    def _parse_as_of(cls, value: str | None) -> str | None:
        if value is None:
            return value
        try:
            ts = pd.to_datetime(value, utc=True, format="ISO8601")
        except (ValueError, OverflowError):
            raise PydanticCustomError(
                "datetime_parsing", "Input should be a valid date-time"
            ) from None
        if not (AS_OF_MIN <= ts < AS_OF_MAX):
            raise PydanticCustomError(
                "datetime_range",
                "as_of must be between {lo} and {hi}",
                {"lo": AS_OF_MIN.date().isoformat(), "hi": AS_OF_MAX.date().isoformat()},
            )
        return value

    @field_validator("transactions", mode="before")
    @classmethod
    def _limit_transactions(cls, value: Any, info: ValidationInfo) -> Any:
        return _check_count(value, info, "max_transactions", "transactions per customer")


class BatchRequest(BaseModel):
    """Several customers in one call (by id, with transactions, or a mix): each item of
    ``customers`` has the shape of a ``ScoreRequest``."""

    model_config = ConfigDict(
        **_STRICT_REQUEST,
        json_schema_extra={"examples": [{"customers": list(_EXAMPLES)}]},
    )

    customers: list[ScoreRequest] = Field(min_length=1)

    @field_validator("customers", mode="before")
    @classmethod
    def _limit_customers(cls, value: Any, info: ValidationInfo) -> Any:
        return _check_count(value, info, "max_batch", "customers")


class AdminRequest(BaseModel):
    """Who changes the champion and why (kept in the registry's audit trail)."""

    model_config = _STRICT_REQUEST

    actor: str = Field(
        min_length=1, max_length=100, pattern=r"^[\w.@ -]+$", examples=["risk-officer@bati"]
    )
    reason: str = Field(min_length=3, max_length=500, examples=["monthly review"])


# -------------------------------------------------------------------------------------------
# Responses
# -------------------------------------------------------------------------------------------


class ReasonCode(BaseModel):
    """One reason behind a score: the feature, its value, the reference value and the impact."""

    feature: str
    value: float | str | None = None
    reference: float | str | None = None
    impact: float | None = Field(default=None, description="Contribution to risk (+ raises it)")
    text: str


class ScoreResult(BaseModel):
    """The decision for one customer and the model version that made it."""

    customer_id: str
    probability_of_default: float = Field(ge=0, le=1)
    risk_class: str
    score: float = Field(description="Credit score (higher is safer)")
    band: str
    approved: bool
    recommended_amount: float | None = Field(description="UGX; null when declined")
    recommended_duration_days: int | None
    expected_loss: float | None
    reasons: list[ReasonCode]
    model_name: str
    model_version: int
    source: Literal["snapshot", "transactions"]
    features_as_of: str | None = Field(description="Cutoff of the features that were scored")


class ScoreResponse(ScoreResult):
    """``ScoreResult`` plus the request id (also in the ``X-Request-ID`` header)."""

    request_id: str


class BatchItemError(BaseModel):
    """A customer of a batch that could not be scored (the others are)."""

    index: int
    customer_id: str
    code: str
    message: str


class BatchResponse(BaseModel):
    request_id: str
    model_name: str
    model_version: int
    count: int = Field(description="Customers scored")
    results: list[ScoreResult]
    errors: list[BatchItemError]


class ModelVersion(BaseModel):
    """One registered version: its stage, metrics and training parameters."""

    model_name: str
    version: int
    stage: str
    is_champion: bool
    created_at: str | None
    stage_changed_at: str | None = None
    decision_reason: str | None = None
    artifact_sha256: str | None
    data_fingerprint: str | None = None
    n_rows: int | None = None
    n_customers: int | None = None
    metrics: dict[str, Any]
    params: dict[str, Any]
    features: list[str]


class ModelList(BaseModel):
    model_name: str
    champion_version: int | None
    versions: list[ModelVersion]


class ServedInfo(BaseModel):
    """What this API process serves right now (may lag the registry by the reload interval)."""

    model_name: str
    model_version: int
    loaded_at: str
    snapshot_customers: int
    features_as_of: str | None
    snapshot_id: int | None = Field(
        default=None, description="The registry's id of the published feature snapshot served"
    )


class ChampionResponse(BaseModel):
    champion: ModelVersion
    served: ServedInfo | None


class AdminResponse(BaseModel):
    action: Literal["promote", "rollback"]
    champion: ModelVersion
    note: str


class PredictionLogStats(BaseModel):
    queued: int
    written: int
    dropped: int
    failed: int


class HealthResponse(BaseModel):
    status: Literal["ok"]
    pid: int
    model_name: str
    served_version: int | None
    served_snapshot_id: int | None = None
    reload: dict[str, Any]
    prediction_log: PredictionLogStats


class ReadyResponse(BaseModel):
    """A champion is served; ``registry_error`` names a registry problem the process is
    riding out with this model (database unavailable, schema not current), else null."""

    status: Literal["ready"]
    model_name: str
    model_version: int
    loaded_at: str
    registry_error: str | None = None


class ErrorDetail(BaseModel):
    """One failing field (``customers[0].transactions[2].Amount``) and why; never its value."""

    field: str | None
    type: str
    message: str


class ErrorBody(BaseModel):
    code: str
    message: str
    details: list[ErrorDetail]


class ErrorResponse(BaseModel):
    """The one error shape of every endpoint."""

    error: ErrorBody


class PointsRow(BaseModel):
    """One bin of one feature of a WoE scorecard."""

    feature: str
    bin: str
    count: float | None
    event_rate: float | None
    woe: float | None
    iv: float | None = Field(description="The bin's contribution to the feature's IV")
    points: float | None


class ScorecardResponse(BaseModel):
    """A scorecard version's points table: a customer's score is the sum of its bins' points."""

    model_name: str
    version: int
    rows: list[PointsRow]


class MonitoringRecord(BaseModel):
    """One monitoring run's figures (stability: PSI/CSI, approval rate...; decay: realized
    AUC, KS, Brier and band calibration of a matured score run) and its breaches."""

    id: int
    kind: str
    model_name: str | None
    model_version: int | None
    as_of: str | None
    created_at: str
    run_id: str | None
    figures: dict[str, Any]
    breaches: list[dict[str, Any]]


class OpenBreach(BaseModel):
    """A breach of the latest run of its kind (``level`` watch or act)."""

    kind: str
    metric: str
    value: float | None
    threshold: float | None
    level: str
    model_version: int | None
    as_of: str | None
    run_id: str | None


class MonitoringResponse(BaseModel):
    """The latest stability and decay figures of the served model name and their breaches."""

    model_name: str
    served_version: int | None
    stability: MonitoringRecord | None
    decay: MonitoringRecord | None
    open_breaches: list[OpenBreach]
    history: list[MonitoringRecord] = Field(description="The latest runs, newest first")
