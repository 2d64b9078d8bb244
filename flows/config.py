"""What the flows can be told: one field per option, with its default, type and help text.

The command lines (:mod:`flows.cli`) are generated from these fields, so a default lives here
once. Secrets never become readable flow-run parameters: URLs are masked when the configuration
is serialised (Prefect stores parameters as JSON), and the CLI hands ``--db-url`` to the flow
through ``BATI_DB_URL`` instead of a parameter.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, Field, SerializerFunctionWrapHandler, field_serializer

from credit import gates
from credit.ingest import DEFAULT_MAX_BAD_SHARE
from credit.models import CANDIDATES
from credit.monitoring import ACT, AUC_DROP, WATCH, Thresholds
from credit.outofcore import (
    DEFAULT_BUCKET_ROWS,
    DEFAULT_CHUNK_ROWS,
    DEFAULT_OUT_OF_CORE_ROWS,
    DEFAULT_SAMPLE_ROWS,
)
from credit.training import SamplingCaps
from schemas.defaults import (
    DB_URL_ENV,
    DEFAULT_MODEL_NAME,
    MAX_BRIER_INCREASE,
    MAX_KS_LOSS,
    MIN_AUC_GAIN,
    OBSERVATION_DAYS,
    PERFORMANCE_DAYS,
)
from schemas.settings import mask_secrets, setting

if TYPE_CHECKING:
    from registry import PromotionPolicy

DASK_ADDRESS_ENV = "BATI_DASK_ADDRESS"
CandidateName = Literal[CANDIDATES]  # type: ignore[valid-type]

#: ``json_schema_extra`` markers read by :mod:`flows.cli`.
CLI_ENV = "cli_env"  # the CLI puts the value in this environment variable, not in a parameter
CLI_HIDDEN = "cli_hidden"  # no command-line option
CLI_FLAGS = "cli_flags"  # a bool | None field: (flag for True, flag for False)


class _MaskSecrets(logging.Filter):
    """Log records leave the process with URL passwords masked (console and Prefect's API)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        masked = mask_secrets(message)
        if masked != message:
            record.msg, record.args = masked, None
        return True


def log_handlers() -> list[logging.Handler]:
    """The handlers of the root and Prefect loggers (console and Prefect's API)."""
    loggers = [logging.getLogger()] + [
        logging.getLogger(name)
        for name in list(logging.root.manager.loggerDict)
        if name.startswith("prefect")
    ]
    return [handler for logger in loggers for handler in logger.handlers]


def install_secret_mask() -> None:
    """Mask URL passwords in every log handler (idempotent)."""
    for handler in log_handlers():
        if not any(isinstance(f, _MaskSecrets) for f in handler.filters):
            handler.addFilter(_MaskSecrets())


def _env_dask_address() -> str | None:
    return setting("dask_address") or None


def _db_url_field() -> Any:
    return Field(
        None,
        description=f"registry database URL (default ${DB_URL_ENV}, else the Prefect Secret "
        "block named by $BATI_DB_URL_SECRET); the CLI passes it through the environment",
        json_schema_extra={CLI_ENV: DB_URL_ENV},
    )


def _gate_field(default: float, description: str) -> Any:
    """A promotion-gate tolerance: non-negative, its help text prefixed "promotion gate:"."""
    return Field(default, ge=0, description=f"promotion gate: {description}")


class _MaskedConfig(BaseModel):
    """Serialises (``mode="json"``: Prefect's parameters, artifacts) with URL passwords masked."""

    @field_serializer("*", mode="wrap", when_used="json")
    def _mask(self, value: Any, handler: SerializerFunctionWrapHandler) -> Any:
        out = handler(value)
        return mask_secrets(out) if isinstance(out, str) else out


class RetrainConfig(_MaskedConfig):
    """Everything a retrain run can be told; every field has a sensible default."""

    data: str | None = Field(
        None,
        description="transactions: CSV/Parquet path, Parquet folder or SQLAlchemy URL#table "
        "(default: the generated demo set, var/data/xente_demo.parquet)",
    )
    table: str | None = Field(
        None, description="a labelled customer table, CSV/Parquet (bring your own labels)"
    )
    target: str | None = Field(None, description="the label column of --table")
    db_url: str | None = _db_url_field()
    model_name: str | None = Field(
        None,
        description=f"registry model name (default {DEFAULT_MODEL_NAME}; "
        f"{DEFAULT_MODEL_NAME}-<table name> for --table)",
    )
    as_of: datetime | None = Field(
        None, description="reference date (ISO); default: the data's last timestamp"
    )
    observation_days: int = Field(
        OBSERVATION_DAYS, ge=7, le=730, description="days of history the features use"
    )
    performance_days: int = Field(
        PERFORMANCE_DAYS, ge=7, le=365, description="days after the cutoff the label looks at"
    )
    candidates: list[CandidateName] = Field(
        default_factory=lambda: list(CANDIDATES),
        description="comma-separated subset of " + ",".join(CANDIDATES),
    )
    grids: dict[str, dict[str, list]] | None = Field(
        None,
        description="per-candidate grid overrides (default credit/grids.toml)",
        json_schema_extra={CLI_HIDDEN: True},
    )
    promotion_margin: float = Field(
        MIN_AUC_GAIN, ge=0, description="minimum ROC-AUC gain over the champion to promote"
    )
    max_ks_loss: float = Field(MAX_KS_LOSS, ge=0, description="KS the champion may lose")
    max_brier_increase: float = Field(
        MAX_BRIER_INCREASE, ge=0, description="Brier score the champion may gain"
    )
    max_bad_share: float = Field(
        DEFAULT_MAX_BAD_SHARE, ge=0, le=1, description="share of invalid rows that fails a run"
    )
    test_size: float = Field(0.2, gt=0.05, lt=0.5, description="held-out share of customers")
    seed: int = Field(42, description="random seed of splits, samples and searches")
    n_jobs: int | None = Field(None, description="parallel jobs per grid search (default: cores)")
    importance_repeats: int = Field(5, ge=0, description="permutation-importance repeats")
    out_dir: str | None = Field(
        None, description="run outputs folder (default var/runs/<flow run id>)"
    )
    out_of_core: bool | None = Field(
        None,
        description="stream a Parquet file/folder partition by partition; default: automatic "
        "(a Parquet folder, or a Parquet file of at least out_of_core_rows rows)",
        json_schema_extra={CLI_FLAGS: ["--out-of-core", "--in-memory"]},
    )
    out_of_core_rows: int = Field(
        DEFAULT_OUT_OF_CORE_ROWS, ge=1, description="rows from which a Parquet file is streamed"
    )
    chunk_rows: int = Field(DEFAULT_CHUNK_ROWS, ge=100, description="rows validated at a time")
    bucket_rows: int = Field(DEFAULT_BUCKET_ROWS, ge=100, description="target rows per bucket")
    eda_sample_rows: int = Field(
        DEFAULT_SAMPLE_ROWS, ge=100, description="out of core: cleaned rows the EDA report shows"
    )
    search_max_rows: int | None = Field(
        10_000,
        ge=100,
        description="customers the grid searches use (stratified sample of the training "
        "split when it is larger)",
    )
    fit_max_rows: int | None = Field(
        50_000,
        ge=100,
        description="customers the chosen model is fitted and calibrated on (stratified "
        "sample when the training split is larger)",
    )
    importance_max_rows: int | None = Field(
        2_000, ge=100, description="test customers permutation importance uses"
    )
    gate_max_input_psi: float = _gate_field(
        gates.MAX_INPUT_PSI,
        "PSI of a training input against the champion's reference above which (on an input "
        "with IV >= gate_min_iv) the challenger is held for approval",
    )
    gate_min_iv: float = _gate_field(gates.MIN_IV, "IV from which an input counts")
    gate_max_score_psi: float = _gate_field(
        gates.MAX_SCORE_PSI,
        "PSI of the challenger's scores on the champion's reference holdout against the "
        "champion's, above which it is held",
    )
    gate_max_auc_loss: float = _gate_field(
        gates.MAX_REFERENCE_AUC_LOSS,
        "ROC-AUC the challenger may lose on the champion's reference holdout",
    )
    dask_address: str | None = Field(
        default_factory=_env_dask_address,
        description="Dask scheduler (e.g. tcp://10.0.0.5:8786) to run the candidates on: "
        "their tasks on prefect-dask's task runner, the grid-search fits through joblib's "
        f"Dask backend (default ${DASK_ADDRESS_ENV})",
    )

    def sampling(self) -> SamplingCaps:
        """How many customers each training step may use."""
        return SamplingCaps(
            self.search_max_rows,
            self.fit_max_rows,
            self.importance_max_rows,
            self.importance_repeats,
        )

    def gate_policy(self) -> gates.GatePolicy:
        """The promotion gates' tolerances of this run."""
        return gates.GatePolicy(
            max_input_psi=self.gate_max_input_psi,
            min_iv=self.gate_min_iv,
            max_score_psi=self.gate_max_score_psi,
            max_auc_loss=self.gate_max_auc_loss,
            max_ks_loss=max(self.max_ks_loss, gates.MAX_REFERENCE_KS_LOSS),
            max_brier_increase=max(self.max_brier_increase, gates.MAX_REFERENCE_BRIER_INCREASE),
        )

    def promotion_policy(self) -> PromotionPolicy:
        """The champion/challenger margins of this run."""
        from registry import PromotionPolicy

        return PromotionPolicy(
            min_auc_gain=self.promotion_margin,
            max_ks_loss=self.max_ks_loss,
            max_brier_increase=self.max_brier_increase,
        )


class ScoreConfig(_MaskedConfig):
    """What a batch-scoring run can be told."""

    db_url: str | None = _db_url_field()
    model_name: str = Field(DEFAULT_MODEL_NAME, description="registry model name")
    monitor: bool | None = Field(
        None,
        description="run the monitor flow after scoring (default: yes)",
        json_schema_extra={CLI_FLAGS: ["--monitor", "--no-monitor"]},
    )


class MonitorConfig(_MaskedConfig):
    """What a monitoring run can be told."""

    db_url: str | None = _db_url_field()
    model_name: str = Field(DEFAULT_MODEL_NAME, description="registry model name")
    watch: float = Field(WATCH, ge=0, description="PSI from which a figure is a 'watch' breach")
    act: float = Field(ACT, ge=0, description="PSI from which a figure is an 'act' breach")
    auc_drop: float = Field(
        AUC_DROP,
        ge=0,
        description="decay: realized ROC-AUC this far below the version's holdout AUC breaches",
    )
    performance_days: int | None = Field(
        None,
        ge=1,
        le=365,
        description="decay: days after a score run's as-of date the realized label looks at "
        "(default: the scoring version's performance window)",
    )
    transactions: str | None = Field(
        None,
        description="decay: transactions to build the realized label from (CSV/Parquet path or "
        "folder, or URL#table; default: the nightly transaction store when present)",
    )
    outcomes: str | None = Field(
        None,
        description="decay: the bank's real outcomes, CSV/Parquet with customer id, date and "
        "defaulted columns (used instead of the proxy label)",
    )
    latency_window_hours: float = Field(
        24, gt=0, description="hours of the prediction log the volume and latency cover"
    )
    score_run_id: str | None = Field(
        None, description="the score run to monitor (default: the latest)"
    )

    def thresholds(self) -> Thresholds:
        if self.act < self.watch:
            raise ValueError("act must be >= watch")
        return Thresholds(watch=self.watch, act=self.act)
