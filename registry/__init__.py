"""Bati model registry: immutable, versioned models in SQL with safe artifacts.

Every trained model becomes an immutable version (metrics, lineage, skops artifact + sha256);
the API serves the champion. The same database (and Alembic chain) holds the operational
tables written by flows and the API. This package imports no pipeline code.
"""

from registry.artifacts import ARTIFACT_FORMAT, DEFAULT_TRUSTED_PREFIXES
from registry.core import DEFAULT_MODEL_NAME, DecisionInfo, EventInfo, Registry, VersionInfo
from registry.db import SchemaState, default_db_url
from registry.errors import (
    ArtifactMissing,
    ArtifactRefused,
    ArtifactTampered,
    ArtifactVerificationFailed,
    ImmutableVersionError,
    InvalidDatabaseURL,
    PromotionError,
    RegistryClosed,
    RegistryError,
    SchemaMismatch,
    SchemaNotMigrated,
    SchemaTooNew,
    VersionNotFound,
)
from registry.monitoring import (
    MONITORING_KINDS,
    References,
    read_monitoring,
    read_references,
    write_monitoring,
    write_references,
)
from registry.ops import (
    log_predictions,
    read_prediction_log,
    read_quarantine,
    read_scores,
    score_runs,
    write_quarantine,
    write_scores,
)
from registry.policy import PromotionDecision, PromotionPolicy
from registry.snapshots import (
    SnapshotInfo,
    SnapshotNotFound,
    list_snapshots,
    prune_snapshots,
    publish_snapshot,
    read_feature_snapshot,
    read_snapshot,
    served_snapshot,
    served_snapshot_id,
    snapshot_dates,
    write_feature_snapshot,
    write_snapshot,
)

__all__ = [
    "ARTIFACT_FORMAT",
    "MONITORING_KINDS",
    "DecisionInfo",
    "References",
    "SnapshotInfo",
    "SnapshotNotFound",
    "list_snapshots",
    "prune_snapshots",
    "publish_snapshot",
    "read_monitoring",
    "read_references",
    "read_snapshot",
    "score_runs",
    "served_snapshot",
    "served_snapshot_id",
    "write_monitoring",
    "write_references",
    "write_snapshot",
    "DEFAULT_MODEL_NAME",
    "DEFAULT_TRUSTED_PREFIXES",
    "ArtifactMissing",
    "ArtifactRefused",
    "ArtifactTampered",
    "ArtifactVerificationFailed",
    "EventInfo",
    "ImmutableVersionError",
    "InvalidDatabaseURL",
    "PromotionDecision",
    "PromotionError",
    "PromotionPolicy",
    "Registry",
    "RegistryClosed",
    "RegistryError",
    "SchemaMismatch",
    "SchemaNotMigrated",
    "SchemaState",
    "SchemaTooNew",
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
