"""The model registry: immutable versions, safe artifacts, champion/challenger promotion."""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, fields, replace
from datetime import date, datetime
from typing import Any, TypeVar

import numpy as np
import pandas as pd
from sqlalchemy import Engine, Select, event, func, insert, select, update
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from registry import artifacts, db
from registry.access import fetch_blob
from registry.errors import (
    ArtifactMissing,
    ArtifactVerificationFailed,
    ImmutableVersionError,
    PromotionError,
    RegistryClosed,
    RegistryError,
    SchemaNotMigrated,
    SchemaTooNew,
    VersionNotFound,
)
from registry.models import (
    ARCHIVED,
    CANDIDATE,
    CHAMPION,
    MUTABLE_VERSION_COLUMNS,
    ModelArtifact,
    ModelReference,
    ModelVersion,
    PromotionDecisionRow,
    PromotionEvent,
    RegisteredModel,
    utcnow,
)
from registry.policy import PromotionDecision, PromotionPolicy, compare
from schemas import defaults

log = logging.getLogger(__name__)

DEFAULT_MODEL_NAME = defaults.DEFAULT_MODEL_NAME
_V = TypeVar("_V")


class _JsonView:
    """Gives a dataclass view ``to_dict``."""

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly dict (datetimes as ISO-8601 strings)."""
        return {k: _iso(v) for k, v in asdict(self).items()}


@dataclass(frozen=True)
class VersionInfo(_JsonView):
    """Read-only view of one registered model version (never holds the artifact bytes)."""

    id: int
    model_name: str
    version: int
    stage: str
    created_at: datetime
    metrics: dict[str, Any]
    params: dict[str, Any]
    features: list[str]
    input_schema: dict[str, Any]
    data_fingerprint: str
    n_rows: int
    n_customers: int | None
    window_start: datetime | None
    window_end: datetime | None
    code_version: str | None
    flow_run_id: str | None
    artifact_sha256: str
    artifact_size: int
    artifact_format: str
    decision_reason: str | None
    description: str | None = None
    holdout_fingerprint: str | None = None
    stage_changed_at: datetime | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def is_champion(self) -> bool:
        return self.stage == CHAMPION


@dataclass(frozen=True)
class EventInfo(_JsonView):
    """One champion change: from, to, when, by whom and why."""

    id: int
    model_name: str
    action: str
    from_version: int | None
    to_version: int
    actor: str
    reason: str
    created_at: datetime
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class DecisionInfo(_JsonView):
    """One champion/challenger decision on a version, promoted or not, with its checks (the
    numbers compared, and on which holdout: ``checks["champion_metrics_source"]``)."""

    id: int
    model_name: str
    version: int
    promoted: bool
    champion_version: int | None
    actor: str
    reason: str
    created_at: datetime
    checks: dict[str, Any] = field(default_factory=dict)


def _view(cls: type[_V], row: Any, model_name: str, **converted: Any) -> _V:
    """A frozen view ``cls`` of an ORM ``row``: same-named attributes, plus ``converted``."""
    taken = {"model_name", *converted}
    plain = {f.name: getattr(row, f.name) for f in fields(cls) if f.name not in taken}
    return cls(model_name=model_name, **plain, **converted)


def _iso(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime | date) else value


def _jsonable(value: Any) -> Any:
    """Coerce params/schemas to strict JSON (PostgreSQL refuses NaN; objects become repr)."""
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, np.ndarray):
        return [_jsonable(v) for v in value.tolist()]
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, type):
        return f"{value.__module__}.{value.__qualname__}"
    return repr(value)


def _clean_metrics(metrics: Mapping[str, Any]) -> dict[str, float]:
    out: dict[str, float] = {}
    for key, value in metrics.items():
        try:
            number = float(value)
        except (TypeError, ValueError) as exc:
            raise RegistryError(f"metric {key!r} is not a number: {value!r}") from exc
        if not math.isfinite(number):
            raise RegistryError(f"metric {key!r} is not finite: {value!r}")
        out[str(key)] = number
    return out


class RegistrySession(Session):
    """Session class whose flushes refuse content changes to registered versions."""


@event.listens_for(RegistrySession, "before_flush")
def _guard_immutability(session: Session, _ctx: Any, _instances: Any) -> None:
    """ORM-level guard (the database has triggers too): content never changes, never deleted."""
    for obj in session.deleted:
        if isinstance(obj, ModelVersion | ModelArtifact):
            raise ImmutableVersionError("registered versions and artifacts are never deleted")
    for obj in session.dirty:
        if isinstance(obj, ModelArtifact) and session.is_modified(obj):
            raise ImmutableVersionError("model artifacts are immutable")
        if isinstance(obj, ModelVersion):
            state = sa_inspect(obj)
            changed = sorted(
                attr.key
                for attr in state.mapper.column_attrs
                if attr.key not in MUTABLE_VERSION_COLUMNS
                and state.attrs[attr.key].history.has_changes()
            )
            if changed:
                raise ImmutableVersionError(
                    f"model versions are immutable; refused change to {changed}"
                )


class Registry:
    """Versioned, immutable model records in one SQL database (SQLite or PostgreSQL).

    ``Registry(url)``: ``url`` else ``BATI_DB_URL`` else ``sqlite:///<var>/bati.db``.
    The schema is migrated (Alembic) on first use; ``auto_migrate=False`` (what the API uses)
    never creates or migrates it and raises :class:`SchemaNotMigrated` instead. A schema newer
    than this code raises :class:`SchemaTooNew` either way. Thread-safe; one instance per
    process (or per flow run), closed by its owner: a closed registry raises
    :class:`RegistryClosed`.
    """

    def __init__(
        self,
        url: str | None = None,
        *,
        trusted_prefixes: tuple[str, ...] = artifacts.DEFAULT_TRUSTED_PREFIXES,
        cache_size: int = 8,
        auto_migrate: bool = True,
    ) -> None:
        self.url = db.resolve_url(url)
        self._engine: Engine | None = db.create_engine_for(self.url, backends=db.SUPPORTED_BACKENDS)
        self.trusted_prefixes = tuple(trusted_prefixes)
        self.auto_migrate = auto_migrate
        self.cache = artifacts.ModelCache(cache_size)
        self._sessions = sessionmaker(
            bind=self._engine, class_=RegistrySession, expire_on_commit=False
        )
        self._schema_ready = False
        self._schema_lock = threading.Lock()
        self._last_good: dict[str, tuple[VersionInfo, Any]] = {}
        #: Last load failure per model name when a fallback model was served instead.
        self.last_errors: dict[str, str] = {}

    def __repr__(self) -> str:
        return f"Registry({db.safe_url(self.url)!r})"

    @property
    def engine(self) -> Engine:
        """The SQLAlchemy engine; :class:`RegistryClosed` after :meth:`close`."""
        engine = self._engine
        if engine is None:
            raise RegistryClosed(f"{self!r} is closed; open a new Registry")
        return engine

    @property
    def closed(self) -> bool:
        return self._engine is None

    def close(self) -> None:
        """Dispose of the engine (every pooled connection) and drop cached models; idempotent.

        Any later use raises :class:`RegistryClosed` instead of silently reconnecting.
        """
        engine, self._engine = self._engine, None
        if engine is not None:
            engine.dispose()
        self.cache.clear()
        self._last_good.clear()

    def __enter__(self) -> Registry:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- schema -------------------------------------------------------------------------
    def migrate(self) -> str | None:
        """Upgrade the schema to the newest revision (idempotent); returns that revision."""
        revision = db.upgrade(self.engine)
        self._schema_ready = True
        return revision

    def schema_revision(self) -> str | None:
        """The revision the database is currently at."""
        return db.current_revision(self.engine)

    def check_schema(self) -> db.SchemaState:
        """Read-only check of the schema against this code: ``current``, ``behind`` (empty or
        older) or ``ahead`` (newer than the code). Never creates or migrates anything.

        A schema found not current is checked again on the next use (so a database that was
        emptied, then migrated by ``registry migrate``, is picked up without a restart).
        """
        state = db.schema_state(self.engine)
        self._schema_ready = state.is_current
        return state

    def ensure_schema(self) -> None:
        """Check the schema once per instance; migrate it when behind (``auto_migrate``)."""
        engine = self.engine  # RegistryClosed after close()
        if self._schema_ready:
            return
        with self._schema_lock:
            if self._schema_ready:
                return
            state = db.schema_state(engine)
            if state.status == db.AHEAD:
                raise SchemaTooNew(str(state.database_revision), state.code_revision)
            if state.status == db.BEHIND:
                if not self.auto_migrate:
                    # No URL in the message: the API may publish it (hosts and paths stay out).
                    raise SchemaNotMigrated(state.database_revision, state.code_revision)
                db.upgrade(engine)
            self._schema_ready = True

    @contextmanager
    def session(self, *, write: bool = False) -> Iterator[Session]:
        """One unit of work: commits on success, rolls back on any error.

        ``write=True`` takes the SQLite write lock up front (``BEGIN IMMEDIATE``).
        """
        self.ensure_schema()
        options = {db.WRITE_OPTION: True} if write else {}
        with self._sessions(execution_options=options) as session:
            try:
                yield session
                session.commit()
            except BaseException:
                session.rollback()
                raise

    # -- helpers ------------------------------------------------------------------------
    @staticmethod
    def _version_query() -> Select[tuple[ModelVersion, str]]:
        return select(ModelVersion, RegisteredModel.name).join(
            RegisteredModel, RegisteredModel.id == ModelVersion.model_id
        )

    @staticmethod
    def _info(row: ModelVersion, name: str) -> VersionInfo:
        return _view(
            VersionInfo,
            row,
            name,
            metrics=dict(row.metrics or {}),
            params=dict(row.params or {}),
            features=list(row.features or []),
            input_schema=dict(row.input_schema or {}),
            extra=dict(row.extra or {}),
        )

    @staticmethod
    def _lock_model(
        session: Session, name: str, *, create: bool = False, lock: bool = True
    ) -> RegisteredModel:
        """The model row, locked for the rest of the transaction unless ``lock=False``
        (created if asked); :class:`VersionNotFound` when there is no such model."""
        dialect = session.get_bind().dialect.name
        if create:
            if dialect in ("postgresql", "sqlite"):
                if dialect == "postgresql":
                    from sqlalchemy.dialects.postgresql import insert as dialect_insert
                else:
                    from sqlalchemy.dialects.sqlite import insert as dialect_insert
                session.execute(
                    dialect_insert(RegisteredModel)
                    .values(name=name, created_at=utcnow())
                    .on_conflict_do_nothing(index_elements=["name"])
                )
            elif (
                session.scalar(select(RegisteredModel.id).where(RegisteredModel.name == name))
                is None
            ):
                session.add(RegisteredModel(name=name))
                session.flush()
        stmt = select(RegisteredModel).where(RegisteredModel.name == name)
        if lock and dialect != "sqlite":  # SQLite: BEGIN IMMEDIATE already holds the lock
            stmt = stmt.with_for_update()
        model = session.scalars(stmt).one_or_none()
        if model is None:
            raise VersionNotFound(f"no model named {name!r} in the registry")
        return model

    @staticmethod
    def _version_row(session: Session, model: RegisteredModel, version: int) -> ModelVersion:
        row = session.scalars(
            select(ModelVersion).where(
                ModelVersion.model_id == model.id, ModelVersion.version == int(version)
            )
        ).one_or_none()
        if row is None:
            raise VersionNotFound(f"model {model.name!r} has no version {version}")
        return row

    @staticmethod
    def _champion_row(session: Session, model_id: int) -> ModelVersion | None:
        return session.scalars(
            select(ModelVersion).where(
                ModelVersion.model_id == model_id, ModelVersion.stage == CHAMPION
            )
        ).one_or_none()

    @staticmethod
    def _switch_champion(
        session: Session,
        model: RegisteredModel,
        old: ModelVersion | None,
        new: ModelVersion,
        *,
        action: str,
        actor: str,
        reason: str,
        details: dict[str, Any],
    ) -> None:
        """Demote ``old`` then promote ``new`` and record the event, in the caller's tx."""
        now = utcnow()
        if old is not None:
            session.execute(
                update(ModelVersion)
                .where(ModelVersion.id == old.id)
                .values(stage=ARCHIVED, stage_changed_at=now)
                .execution_options(synchronize_session=False)
            )
        session.execute(
            update(ModelVersion)
            .where(ModelVersion.id == new.id)
            .values(stage=CHAMPION, stage_changed_at=now, decision_reason=reason)
            .execution_options(synchronize_session=False)
        )
        session.add(
            PromotionEvent(
                model_id=model.id,
                action=action,
                from_version=old.version if old is not None else None,
                to_version=new.version,
                actor=actor,
                reason=reason,
                details=_jsonable(details),
                created_at=now,
            )
        )
        session.flush()

    # -- registration -------------------------------------------------------------------
    def register(
        self,
        model_name: str,
        model: object,
        *,
        metrics: dict[str, float],
        params: dict,
        features: list[str],
        input_schema: dict,
        data_fingerprint: str,
        n_rows: int,
        n_customers: int | None = None,
        window_start: datetime | None = None,
        window_end: datetime | None = None,
        code_version: str | None = None,
        flow_run_id: str | None = None,
        description: str | None = None,
        extra: dict | None = None,
        holdout_fingerprint: str | None = None,
        references: Mapping[str, Any] | None = None,
        reference_holdout: pd.DataFrame | None = None,
    ) -> VersionInfo:
        """Store ``model`` (skops) and its metadata as the next version, stage ``candidate``.

        Artifact and metadata commit in one transaction: any failure leaves no trace.
        ``holdout_fingerprint`` (or ``extra["holdout_fingerprint"]``) identifies the held-out
        set the metrics were computed on, used by the promotion policy. ``references`` (plain
        JSON monitoring bins) and ``reference_holdout`` (customer ids, features, labels,
        predicted PD) are stored with the version, in the same transaction
        (:func:`registry.read_references` reads them back).
        """
        if not model_name or not isinstance(model_name, str):
            raise RegistryError("model_name must be a non-empty string")
        data = artifacts.serialise(model)  # slow part, outside the transaction
        sha = artifacts.sha256_hex(data)
        extra = _jsonable(dict(extra or {}))
        holdout = holdout_fingerprint or extra.get("holdout_fingerprint")
        fields = {
            "metrics": _clean_metrics(metrics),
            "params": _jsonable(dict(params)),
            "features": [str(f) for f in features],
            "input_schema": _jsonable(dict(input_schema)),
            "data_fingerprint": str(data_fingerprint),
            "holdout_fingerprint": None if holdout is None else str(holdout),
            "n_rows": int(n_rows),
            "n_customers": None if n_customers is None else int(n_customers),
            "window_start": window_start,
            "window_end": window_end,
            "code_version": code_version,
            "flow_run_id": None if flow_run_id is None else str(flow_run_id),
            "description": description,
            "extra": extra,
            "artifact_sha256": sha,
            "artifact_size": len(data),
            "artifact_format": artifacts.ARTIFACT_FORMAT,
        }
        reference_row = None
        if references is not None or reference_holdout is not None:
            from registry.monitoring import reference_row as build_reference

            encoded = build_reference(0, references or {}, reference_holdout)  # outside the tx

            def reference_row(version_id: int) -> dict[str, Any]:
                return {**encoded, "version_id": version_id}

        with self.session(write=True) as session:
            model_row = self._lock_model(session, model_name, create=True)
            last = session.scalar(
                select(func.max(ModelVersion.version)).where(ModelVersion.model_id == model_row.id)
            )
            now = utcnow()
            row = ModelVersion(
                model_id=model_row.id,
                version=(last or 0) + 1,
                stage=CANDIDATE,
                created_at=now,
                stage_changed_at=now,
                **fields,
            )
            session.add(row)
            session.flush()
            session.execute(insert(ModelArtifact).values(version_id=row.id, data=data))
            if reference_row is not None:
                session.execute(insert(ModelReference).values(**reference_row(row.id)))
            info = self._info(row, model_name)
        log.info(
            "registered %s v%d (%d bytes, sha256 %s)", model_name, info.version, len(data), sha[:12]
        )
        return info

    # -- reads --------------------------------------------------------------------------
    def model_names(self) -> list[str]:
        """All registered model names, sorted."""
        with self.session() as session:
            return list(
                session.scalars(select(RegisteredModel.name).order_by(RegisteredModel.name))
            )

    def list_versions(self, model_name: str | None = None) -> list[VersionInfo]:
        """Versions of one model (or all models), by name then version."""
        stmt = self._version_query().order_by(RegisteredModel.name, ModelVersion.version)
        if model_name is not None:
            stmt = stmt.where(RegisteredModel.name == model_name)
        with self.session() as session:
            return [self._info(row, name) for row, name in session.execute(stmt)]

    def get_version(self, model_name: str, version: int) -> VersionInfo:
        """One version; :class:`VersionNotFound` if the model or version does not exist."""
        stmt = self._version_query().where(
            RegisteredModel.name == model_name, ModelVersion.version == int(version)
        )
        with self.session() as session:
            found = session.execute(stmt).one_or_none()
            if found is None:
                exists = session.scalar(
                    select(RegisteredModel.id).where(RegisteredModel.name == model_name)
                )
                if exists is None:
                    raise VersionNotFound(f"no model named {model_name!r} in the registry")
                raise VersionNotFound(f"model {model_name!r} has no version {version}")
            return self._info(*found)

    def champion(self, model_name: str) -> VersionInfo | None:
        """The current champion (one consistent read), or ``None``."""
        stmt = self._version_query().where(
            RegisteredModel.name == model_name, ModelVersion.stage == CHAMPION
        )
        with self.session() as session:
            found = session.execute(stmt).one_or_none()
            return None if found is None else self._info(*found)

    def events(self, model_name: str) -> list[EventInfo]:
        """Promotion/rollback history of a model, oldest first."""
        stmt = (
            select(PromotionEvent, RegisteredModel.name)
            .join(RegisteredModel, RegisteredModel.id == PromotionEvent.model_id)
            .where(RegisteredModel.name == model_name)
            .order_by(PromotionEvent.id)
        )
        with self.session() as session:
            return [
                _view(EventInfo, e, name, details=dict(e.details or {}))
                for e, name in session.execute(stmt)
            ]

    def decisions(self, model_name: str, version: int | None = None) -> list[DecisionInfo]:
        """Champion/challenger decisions of a model (or one version), oldest first."""
        stmt = (
            select(PromotionDecisionRow, RegisteredModel.name)
            .join(RegisteredModel, RegisteredModel.id == PromotionDecisionRow.model_id)
            .where(RegisteredModel.name == model_name)
            .order_by(PromotionDecisionRow.id)
        )
        if version is not None:
            stmt = stmt.where(PromotionDecisionRow.version == int(version))
        with self.session() as session:
            return [
                _view(DecisionInfo, d, name, checks=dict(d.checks or {}))
                for d, name in session.execute(stmt)
            ]

    # -- artifacts ----------------------------------------------------------------------
    @staticmethod
    def _fetch_artifact(session: Session, version_id: int) -> bytes | None:
        return fetch_blob(
            session.connection(),
            "SELECT data FROM model_artifacts WHERE version_id = :v",
            {"v": version_id},
        )

    def _deserialise(self, info: VersionInfo, data: bytes | None, *, cache: bool = True) -> Any:
        """Checksum, audit and deserialise fetched bytes (outside any transaction); the model
        joins the cache unless ``cache=False``."""
        label = f"{info.model_name} v{info.version}"
        if data is None:
            raise ArtifactMissing(f"artifact of {label} is missing from the database")
        model = artifacts.load_artifact(
            data,
            expected_sha256=info.artifact_sha256,
            trusted_prefixes=self.trusted_prefixes,
            label=label,
        )
        if cache:
            self.cache.put((info.id, info.artifact_sha256), model)
        return model

    def load_model(self, model_name: str, version: int, *, use_cache: bool = True) -> Any:
        """Deserialise one version after verifying its sha256 and types."""
        info = self.get_version(model_name, version)
        if use_cache and (cached := self.cache.get((info.id, info.artifact_sha256))) is not None:
            return cached
        with self.session() as session:
            data = self._fetch_artifact(session, info.id)
        return self._deserialise(info, data)

    def verify_artifact(self, info: VersionInfo, *, action: str = "load") -> None:
        """Check that ``info``'s stored bytes match its sha256 and deserialise with trusted
        types only; :class:`ArtifactVerificationFailed` (a :class:`PromotionError`) if not.

        Bytes identical to a model this process already loaded are not deserialised again; a
        model deserialised here is not cached (loading for serving reads the bytes again).
        """
        try:
            with self.session() as session:
                data = self._fetch_artifact(session, info.id)
            key = (info.id, info.artifact_sha256)
            if (
                data is None
                or self.cache.get(key) is None
                or artifacts.sha256_hex(data) != info.artifact_sha256
            ):
                self._deserialise(info, data, cache=False)
        except RegistryError as exc:
            raise ArtifactVerificationFailed(info.model_name, info.version, action, exc) from exc

    def load_champion(
        self, model_name: str, *, fallback_to_cache: bool = False, use_cache: bool = True
    ) -> tuple[VersionInfo, Any] | None:
        """(info, model) of the champion, or ``None`` when there is none.

        With ``fallback_to_cache=True`` (what a serving API wants) a champion that cannot be
        loaded (tampered, refused, missing, database down) is logged and the last good
        champion this process loaded is returned instead; the error stays in
        ``last_errors[model_name]``. Without a last good model the error is raised.
        """
        try:
            stmt = self._version_query().where(
                RegisteredModel.name == model_name, ModelVersion.stage == CHAMPION
            )
            with self.session() as session:
                found = session.execute(stmt).one_or_none()
                if found is None:
                    return None
                info = self._info(*found)
                model = self.cache.get((info.id, info.artifact_sha256)) if use_cache else None
                # Same snapshot as the metadata; deserialisation happens after the tx ends.
                data = None if model is not None else self._fetch_artifact(session, info.id)
            if model is None:
                model = self._deserialise(info, data)
        except (RegistryError, SQLAlchemyError) as exc:
            good = self._last_good.get(model_name)
            if not fallback_to_cache or good is None:
                raise
            self.last_errors[model_name] = str(exc)
            log.error(
                "cannot load champion of %s (%s); still serving v%d",
                model_name,
                exc,
                good[0].version,
            )
            return good
        self._last_good[model_name] = (info, model)
        self.last_errors.pop(model_name, None)
        return info, model

    # -- promotion ----------------------------------------------------------------------
    def _decide(
        self,
        session: Session,
        model: RegisteredModel,
        target: ModelVersion,
        policy: PromotionPolicy,
        champion_metrics: Mapping[str, Any] | None,
    ) -> tuple[PromotionDecision, ModelVersion | None]:
        champ = self._champion_row(session, model.id)
        base = {"model_name": model.name, "version": target.version}
        current = champ.version if champ is not None else None

        def no(reason: str, checks: dict[str, Any] | None = None) -> PromotionDecision:
            return PromotionDecision(False, reason, current, current, checks=checks or {}, **base)

        if target.stage == CHAMPION:
            return no(f"v{target.version} is already the champion"), champ
        if target.stage != CANDIDATE:
            return no(
                f"v{target.version} is {target.stage}; automatic promotion only considers "
                "candidates (use a manual promote)"
            ), champ
        if champ is None:
            reason = f"v{target.version} promoted: no current champion for {model.name!r}"
            return PromotionDecision(True, reason, target.version, None, **base), champ

        if champion_metrics is None:
            if (
                policy.require_same_holdout
                and target.holdout_fingerprint
                and champ.holdout_fingerprint
                and target.holdout_fingerprint != champ.holdout_fingerprint
            ):
                return no(
                    f"kept as candidate: champion v{champ.version} was evaluated on a different "
                    f"held-out set ({champ.holdout_fingerprint[:12]} vs "
                    f"{target.holdout_fingerprint[:12]}); re-evaluate the champion on this "
                    "holdout and pass champion_metrics"
                ), champ
            champion_metrics, source = champ.metrics, "stored"
        else:
            source = "re-evaluated on the candidate's holdout"
        passed, findings, checks = compare(target.metrics, champion_metrics, policy)
        checks["champion_metrics_source"] = source
        summary = "; ".join(findings)
        if passed:
            reason = f"v{target.version} promoted over champion v{champ.version}: {summary}"
            return PromotionDecision(
                True, reason, target.version, champ.version, checks=checks, **base
            ), champ
        return no(f"kept as candidate against champion v{champ.version}: {summary}", checks), champ

    @staticmethod
    def _held(
        decision: PromotionDecision, hold: str | None, extra_checks: Mapping[str, Any] | None
    ) -> PromotionDecision:
        """``decision`` with the caller's extra checks, and not promoted when ``hold`` names a
        reason (a gate asks for human approval: ``promote`` with an actor stays the path)."""
        checks = {**decision.checks, **_jsonable(dict(extra_checks or {}))}
        if hold and decision.promoted:
            checks["held"] = str(hold)
            reason = f"held for approval: {hold} (would have been: {decision.reason})"
            current = decision.previous_champion
            return replace(
                decision, promoted=False, reason=reason, champion_version=current, checks=checks
            )
        return replace(decision, checks=checks)

    def evaluate_promotion(
        self,
        model_name: str,
        version: int,
        *,
        policy: PromotionPolicy | None = None,
        champion_metrics: Mapping[str, Any] | None = None,
        hold: str | None = None,
    ) -> PromotionDecision:
        """What :meth:`promote_if_better` would decide, without changing anything."""
        with self.session() as session:
            model = self._lock_model(session, model_name, lock=False)
            target = self._version_row(session, model, version)
            decision, _ = self._decide(
                session, model, target, policy or PromotionPolicy(), champion_metrics
            )
            return self._held(decision, hold, None)

    @staticmethod
    def _record_decision(
        session: Session,
        model: RegisteredModel,
        decision: PromotionDecision,
        champion_version: int | None,
        actor: str,
        publish_snapshot: int | str | None,
    ) -> None:
        """Append the decision (and publish the run's snapshot) in the caller's transaction."""
        session.add(
            PromotionDecisionRow(
                model_id=model.id,
                version=int(decision.version or 0),
                promoted=decision.promoted,
                champion_version=champion_version,
                actor=actor,
                reason=decision.reason,
                checks=_jsonable(decision.checks),
                created_at=utcnow(),
            )
        )
        if publish_snapshot is not None:
            from registry.snapshots import mark_published

            mark_published(session, publish_snapshot)
        session.flush()

    def promote_if_better(
        self,
        model_name: str,
        version: int,
        *,
        policy: PromotionPolicy | None = None,
        actor: str = "flow",
        champion_metrics: Mapping[str, Any] | None = None,
        publish_snapshot: int | str | None = None,
        hold: str | None = None,
        extra_checks: Mapping[str, Any] | None = None,
    ) -> PromotionDecision:
        """Promote ``version`` if it beats the champion under ``policy`` (first one always does).

        Runs under the model's row lock, so the champion cannot change between the
        comparison and the switch. The reason is stored on the version; every decision is
        recorded with its checks (:meth:`decisions`), a promotion also writes an event.
        ``champion_metrics`` = the champion re-scored on the candidate's holdout (preferred
        when holdouts differ between trainings). A version is promoted only after its artifact
        is verified (:meth:`verify_artifact`, outside the write lock).

        ``publish_snapshot`` (a snapshot id, or a run id) publishes that feature snapshot in
        the same transaction as the decision, whatever it is (the run has completed).
        ``hold`` (a reason) keeps a version that would be promoted as a candidate pending
        approval; ``extra_checks`` (e.g. gates on the champion's reference holdout) are stored
        with the decision.
        """
        policy = policy or PromotionPolicy()
        preview = self.evaluate_promotion(
            model_name, version, policy=policy, champion_metrics=champion_metrics, hold=hold
        )
        if preview.promoted:
            self.verify_artifact(self.get_version(model_name, version), action="promotion")
        with self.session(write=True) as session:
            model = self._lock_model(session, model_name)
            target = self._version_row(session, model, version)
            decision, champ = self._decide(session, model, target, policy, champion_metrics)
            decision = self._held(decision, hold, extra_checks)
            if decision.promoted:
                if not preview.promoted:  # the champion changed since the preview
                    self.verify_artifact(self._info(target, model_name), action="promotion")
                self._switch_champion(
                    session,
                    model,
                    champ,
                    target,
                    action="auto_promote",
                    actor=actor,
                    reason=decision.reason,
                    details={"policy": asdict(policy), **decision.checks},
                )
            elif target.stage == CANDIDATE:
                session.execute(
                    update(ModelVersion)
                    .where(ModelVersion.id == target.id)
                    .values(decision_reason=decision.reason)
                    .execution_options(synchronize_session=False)
                )
            champion_version = champ.version if champ is not None else None
            self._record_decision(
                session, model, decision, champion_version, actor, publish_snapshot
            )
        log.info("%s v%s: %s", model_name, version, decision.reason)
        return decision

    def promote(
        self,
        model_name: str,
        version: int,
        *,
        actor: str,
        reason: str,
        publish_snapshot: int | str | None = None,
    ) -> PromotionDecision:
        """Manually make ``version`` the champion (the old champion becomes archived).

        Refused with :class:`ArtifactVerificationFailed` when its artifact fails verification.
        ``publish_snapshot`` as in :meth:`promote_if_better`.
        """
        _require_actor_reason(actor, reason)
        self.verify_artifact(self.get_version(model_name, version), action="promotion")
        with self.session(write=True) as session:
            model = self._lock_model(session, model_name)
            target = self._version_row(session, model, version)
            champ = self._champion_row(session, model.id)
            if champ is not None and champ.id == target.id:
                raise PromotionError(f"{model_name} v{version} is already the champion")
            previous = champ.version if champ is not None else None
            self._switch_champion(
                session,
                model,
                champ,
                target,
                action="promote",
                actor=actor,
                reason=reason,
                details={},
            )
            decision = PromotionDecision(
                True, reason, int(version), previous, model_name, int(version), {"manual": True}
            )
            self._record_decision(session, model, decision, previous, actor, publish_snapshot)
        return decision

    def rollback(self, model_name: str, *, actor: str, reason: str) -> PromotionDecision:
        """Re-instate the previous champion (from the event history); the current is archived.

        Refused with :class:`ArtifactVerificationFailed` when the previous champion's artifact
        fails verification (the current champion stays).
        """
        _require_actor_reason(actor, reason)
        with self.session() as session:
            *_, planned = self._rollback_pair(session, model_name, lock=False)
            planned_info = self._info(planned, model_name)
        self.verify_artifact(planned_info, action="rollback")
        with self.session(write=True) as session:
            model, champ, target = self._rollback_pair(session, model_name, lock=True)
            if target.id != planned_info.id:  # history changed meanwhile: verify the new target
                self.verify_artifact(self._info(target, model_name), action="rollback")
            self._switch_champion(
                session,
                model,
                champ,
                target,
                action="rollback",
                actor=actor,
                reason=reason,
                details={},
            )
        return PromotionDecision(
            True, reason, target.version, champ.version, model_name, target.version
        )

    def _rollback_pair(
        self, session: Session, model_name: str, *, lock: bool
    ) -> tuple[RegisteredModel, ModelVersion, ModelVersion]:
        """(model, current champion, previous champion) from the event history."""
        model = self._lock_model(session, model_name, lock=lock)
        champ = self._champion_row(session, model.id)
        if champ is None:
            raise PromotionError(f"{model_name} has no champion to roll back")
        history = session.execute(
            select(PromotionEvent.action, PromotionEvent.to_version)
            .where(PromotionEvent.model_id == model.id)
            .order_by(PromotionEvent.id)
        ).all()
        lineage = champion_lineage(history)
        if len(lineage) < 2 or lineage[-1] != champ.version:
            raise PromotionError(
                f"{model_name} has no previous champion to roll back to (champion v{champ.version})"
            )
        return model, champ, self._version_row(session, model, lineage[-2])


def champion_lineage(history: list[Any]) -> list[int]:
    """Stack of champions implied by (action, to_version) events; a rollback pops one."""
    stack: list[int] = []
    for action, to_version in history:
        if action == "rollback":
            if stack:
                stack.pop()
            if not stack or stack[-1] != to_version:
                stack.append(to_version)
        else:
            stack.append(to_version)
    return stack


def _require_actor_reason(actor: str, reason: str) -> None:
    if not (actor and str(actor).strip()):
        raise PromotionError("an actor is required")
    if not (reason and str(reason).strip()):
        raise PromotionError("a reason is required")
