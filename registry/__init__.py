"""Bati model registry: immutable, versioned models in SQL with safe artifacts.

Every trained model becomes an immutable version (metrics, lineage, skops artifact + sha256);
the API serves the champion. The same database (and Alembic chain) holds the operational
tables written by flows and the API. This package imports no pipeline code.
"""

from registry.artifacts import ARTIFACT_FORMAT, DEFAULT_TRUSTED_PREFIXES
from registry.core import DEFAULT_MODEL_NAME, EventInfo, Registry, VersionInfo
from registry.db import default_db_url
from registry.errors import (
    ArtifactMissing,
    ArtifactRefused,
    ArtifactTampered,
    ImmutableVersionError,
    PromotionError,
    RegistryError,
    VersionNotFound,
)
from registry.ops import (
    log_predictions,
    read_feature_snapshot,
    read_prediction_log,
    read_quarantine,
    read_scores,
    snapshot_dates,
    write_feature_snapshot,
    write_quarantine,
    write_scores,
)
from registry.policy import PromotionDecision, PromotionPolicy

__all__ = [
    "ARTIFACT_FORMAT",
    "DEFAULT_MODEL_NAME",
    "DEFAULT_TRUSTED_PREFIXES",
    "ArtifactMissing",
    "ArtifactRefused",
    "ArtifactTampered",
    "EventInfo",
    "ImmutableVersionError",
    "PromotionDecision",
    "PromotionError",
    "PromotionPolicy",
    "Registry",
    "RegistryError",
    "VersionInfo",
    "VersionNotFound",
    "default_db_url",
    "log_predictions",
    "read_feature_snapshot",
    "read_prediction_log",
    "read_quarantine",
    "read_scores",
    "snapshot_dates",
    "write_feature_snapshot",
    "write_quarantine",
    "write_scores",
]
