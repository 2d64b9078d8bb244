"""Model versions (read) and champion changes (admin, bearer token)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from flask import Blueprint, Response

from api import payloads as p
from api.contract import endpoints, reply
from api.errors import ApiError
from api.holder import json_safe, utc_iso
from api.http import read_json, require_admin, validate
from api.state import BatiState, get_state

bp = Blueprint("models", __name__, url_prefix="/v1/models")
models_endpoint = endpoints(tag="models")  # the read-only routes
#: The contract promote and rollback share: an audited change of the champion.
admin_action = endpoints(tag="admin", body=p.AdminRequest, ok=p.AdminResponse, admin=True)
MAX_VERSION = 2**31 - 1


def version_model(info: Any) -> p.ModelVersion:
    """A registry ``VersionInfo`` as the ``ModelVersion`` response."""
    return p.ModelVersion(
        model_name=str(info.model_name),
        version=int(info.version),
        stage=str(info.stage),
        is_champion=info.stage == "champion",
        created_at=utc_iso(info.created_at),
        stage_changed_at=utc_iso(getattr(info, "stage_changed_at", None)),
        decision_reason=getattr(info, "decision_reason", None),
        artifact_sha256=info.artifact_sha256,
        data_fingerprint=getattr(info, "data_fingerprint", None),
        n_rows=getattr(info, "n_rows", None),
        n_customers=getattr(info, "n_customers", None),
        metrics=json_safe(dict(info.metrics or {})),
        params=json_safe(dict(info.params or {})),
        features=[str(f) for f in info.features or []],
    )


@contextmanager
def registry_errors() -> Iterator[None]:
    """Registry and database failures as API errors (never a 500)."""
    from sqlalchemy.exc import SQLAlchemyError

    from registry.errors import (
        PromotionError,
        RegistryError,
        SchemaNotMigrated,
        SchemaTooNew,
        VersionNotFound,
    )

    try:
        yield
    except VersionNotFound as exc:
        raise ApiError(404, "unknown_version", str(exc)) from None
    except PromotionError as exc:
        raise ApiError(409, "promotion_refused", str(exc)) from None
    except (SchemaTooNew, SchemaNotMigrated) as exc:
        raise ApiError(503, "schema_not_current", str(exc), headers={"Retry-After": "30"}) from None
    except (SQLAlchemyError, OSError) as exc:
        get_state().registry_failed()  # a recreated database: check its schema next time
        raise ApiError(
            503,
            "database_unavailable",
            f"the model registry database is unavailable ({type(exc).__name__}); retry later",
            headers={"Retry-After": "5"},
        ) from None
    except RegistryError as exc:
        raise ApiError(503, "registry_error", str(exc)[:300]) from None


def _champion(state: BatiState) -> Any:
    with registry_errors():
        champ = state.registry().champion(state.settings.model_name)
    if champ is None:
        raise ApiError(
            503, "no_champion", f"model {state.settings.model_name!r} has no champion yet"
        )
    return champ


@bp.get("")
@models_endpoint(
    op="listModels",
    ok=p.ModelList,
    errors=(503,),
    summary="Registered versions of the served model and their metrics",
)
def list_models() -> Response:
    """Every registered version of the served model name, with metrics."""
    state = get_state()
    name = state.settings.model_name
    with registry_errors():
        versions = state.registry().list_versions(name)
    champion = next((v.version for v in versions if v.stage == "champion"), None)
    return reply(
        p.ModelList(
            model_name=name,
            champion_version=champion,
            versions=[version_model(v) for v in versions],
        )
    )


@bp.get("/champion")
@models_endpoint(
    op="champion",
    ok=p.ChampionResponse,
    errors=(503,),
    summary="The registry's champion and the version this process serves",
)
def champion() -> Response:
    """The registry's champion and what this process serves (they differ during a reload)."""
    state = get_state()
    champ = _champion(state)
    served = state.holder.current
    return reply(
        p.ChampionResponse(
            champion=version_model(champ),
            served=None
            if served is None
            else p.ServedInfo(
                model_name=served.name,
                model_version=served.version,
                loaded_at=served.loaded_at,
                snapshot_customers=len(served.table),
                features_as_of=served.snapshot_as_of,
                snapshot_id=served.snapshot_id,
            ),
        )
    )


def _admin_change(state: BatiState, action: str, version: int | None) -> Response:
    require_admin(state.settings.token())
    body = validate(p.AdminRequest, read_json())
    name = state.settings.model_name
    with registry_errors():
        reg = state.registry()
        if action == "promote":
            assert version is not None
            if not 1 <= version <= MAX_VERSION:
                raise ApiError(404, "unknown_version", f"model {name!r} has no version {version}")
            reg.promote(name, version, actor=body.actor, reason=body.reason)
        else:
            reg.rollback(name, actor=body.actor, reason=body.reason)
        champ = reg.champion(name)
    if champ is None:  # pragma: no cover - the registry just set one
        raise ApiError(503, "no_champion", "the champion disappeared; retry")
    state.holder.wake()
    return reply(
        p.AdminResponse(
            action="promote" if action == "promote" else "rollback",
            champion=version_model(champ),
            note="this process reloads now; every API process serves it within "
            f"{state.settings.reload_seconds:g} s",
        )
    )


@bp.post("/<int:version>/promote")
@admin_action(
    op="promote",
    errors=(404, 409, 503),
    summary="Make a version the champion (bearer token; audited)",
)
def promote(version: int) -> Response:
    """Make ``version`` the champion (audited: actor and reason are stored)."""
    return _admin_change(get_state(), "promote", version)


@bp.post("/rollback")
@admin_action(
    op="rollback",
    errors=(409, 503),
    summary="Re-instate the previous champion (bearer token; audited)",
)
def rollback() -> Response:
    """Re-instate the previous champion (audited)."""
    return _admin_change(get_state(), "rollback", None)


def points_rows(info: Any, model: Any | None) -> list[dict[str, Any]] | None:
    """A version's points table: stored with the version (``extra["points_table"]``), else
    from the model object (``points_table()``); ``None`` when it is not a scorecard."""
    stored = (getattr(info, "extra", None) or {}).get("points_table")
    if isinstance(stored, list):
        return stored
    table = getattr(model, "points_table", lambda: None)() if model is not None else None
    return None if table is None else table.to_dict("records")


@bp.get("/<int:version>/scorecard")
@models_endpoint(
    op="scorecard",
    ok=p.ScorecardResponse,
    errors=(404, 503),
    summary="A scorecard version's points table (feature, bin, count, event rate, WoE, IV, points)",
)
def scorecard(version: int) -> Response:
    """The points table of ``version`` (404 ``not_a_scorecard`` for other model families)."""
    state = get_state()
    name = state.settings.model_name
    if not 1 <= version <= MAX_VERSION:
        raise ApiError(404, "unknown_version", f"model {name!r} has no version {version}")
    served = state.holder.current
    with registry_errors():
        reg = state.registry()
        info = reg.get_version(name, version)
        rows = points_rows(info, None)
        if rows is None:
            same = served is not None and served.info.artifact_sha256 == info.artifact_sha256
            rows = points_rows(info, served.model if same else reg.load_model(name, version))
    if rows is None:
        raise ApiError(
            404, "not_a_scorecard", f"{name} v{version} is not a WoE scorecard (no points table)"
        )
    return reply(
        p.ScorecardResponse(
            model_name=name,
            version=version,
            rows=[p.PointsRow.model_validate(json_safe({**r, "bin": str(r["bin"])})) for r in rows],
        )
    )
