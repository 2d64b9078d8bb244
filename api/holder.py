"""The served model: an immutable snapshot swapped atomically when the champion changes.

:class:`ServedModel` bundles the champion's :class:`registry.VersionInfo`, the deserialised
``CreditRiskModel`` and a score table precomputed at load time for every customer of the latest
feature snapshot (so scoring by id is a dict lookup). :class:`ModelHolder` owns the current one:
a background thread polls the registry every ``reload_seconds``; a new champion is loaded and
scored *completely* before a single reference assignment publishes it, so a request (which reads
``holder.current`` once) never sees a half-loaded model. A failed load (tampered or refused
artifact, database down) keeps the last good model and records why.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pandas as pd

from api import metrics
from api.payloads import ScoreResult
from registry.ops import plain_json

log = logging.getLogger("api.holder")

# score_frame column -> response field
RESULT_FIELDS: dict[str, str] = {
    "probability": "probability_of_default",
    "risk_class": "risk_class",
    "score": "score",
    "band": "band",
    "approved": "approved",
    "amount": "recommended_amount",
    "duration_days": "recommended_duration_days",
    "expected_loss": "expected_loss",
}
_INT_FIELDS = frozenset({"recommended_duration_days"})


def utc_iso(value: Any) -> str | None:
    """ISO-8601 text of a timestamp (UTC), ``None`` for missing."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    ts = pd.Timestamp(value)
    if ts is pd.NaT:
        return None
    ts = ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
    return ts.isoformat()


def _api_leaf(value: Any) -> Any:
    if value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, datetime | pd.Timestamp):
        return utc_iso(value)
    return str(value)


def json_safe(value: Any) -> Any:
    """Plain JSON values (:func:`registry.ops.plain_json`): numpy scalars unwrapped, NaN/inf and
    pandas' missing markers -> ``None``, times as UTC ISO text, containers recursed."""
    return plain_json(value, _api_leaf)


def _reason(item: Mapping[str, Any]) -> dict[str, Any]:
    out = {
        "feature": str(item.get("feature", "")),
        "value": json_safe(item.get("value")),
        "reference": json_safe(item.get("reference")),
        "impact": json_safe(item.get("impact")),
        "text": str(item.get("text", "")),
    }
    for key in ("value", "reference"):
        if not isinstance(out[key], float | int | str | type(None)) or isinstance(out[key], bool):
            out[key] = str(out[key])
    if isinstance(out["impact"], bool | str):
        out["impact"] = None
    return out


def result_records(
    frame: pd.DataFrame,
    *,
    model_name: str,
    model_version: int,
    source: str,
    as_of: dict[str, str | None] | str | None,
) -> dict[str, ScoreResult]:
    """``score_frame`` output -> {customer id: validated :class:`ScoreResult`}."""
    out: dict[str, ScoreResult] = {}
    if frame.empty:
        return out
    columns = {src: dst for src, dst in RESULT_FIELDS.items() if src in frame.columns}
    plain = frame[list(columns)].rename(columns=columns).astype(object)
    plain = plain.where(plain.notna(), None)
    reasons = frame["reasons"] if "reasons" in frame.columns else None
    for pos, (customer, row) in enumerate(zip(frame.index, plain.to_dict("records"), strict=True)):
        record = {"customer_id": str(customer)}
        for key, value in row.items():
            value = json_safe(value)
            if key in _INT_FIELDS and isinstance(value, float):
                value = int(round(value))
            record[key] = value
        record["approved"] = bool(record.get("approved", False))
        items = reasons.iloc[pos] if reasons is not None else None
        record["reasons"] = [_reason(r) for r in items] if isinstance(items, list | tuple) else []
        record["model_name"] = model_name
        record["model_version"] = int(model_version)
        record["source"] = source
        record["features_as_of"] = as_of.get(str(customer)) if isinstance(as_of, dict) else as_of
        out[str(customer)] = ScoreResult.model_validate(record)
    return out


def input_problem(features: tuple[str, ...], model_name: str, version: int) -> str | None:
    """Why the model cannot score the customer features this API builds, or ``None``.

    The API serves the transaction features of :mod:`credit.features` (the snapshot and the
    on-the-fly featuriser); a model trained on other columns (bring-your-own-labels) would be
    scored on filler values, so it is refused instead.
    """
    from credit.features import FEATURE_COLUMNS

    if not features:
        return f"{model_name} v{version} declares no input features; the API cannot score it"
    missing = [f for f in features if f not in FEATURE_COLUMNS]
    if not missing:
        return None
    shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
    return (
        f"{model_name} v{version} needs {len(missing)} input(s) the API does not build from "
        f"transactions ({shown}); serve a model trained on the transaction features "
        "(BATI_MODEL_NAME) or score it offline"
    )


@dataclass(frozen=True)
class ServedModel:
    """Everything needed to answer a score request, built completely before it is published."""

    info: Any  # registry.VersionInfo
    model: Any  # credit.scoring.CreditRiskModel
    features: tuple[str, ...]
    snapshot_as_of: str | None
    table: Mapping[str, ScoreResult] = field(repr=False)
    loaded_at: str
    load_seconds: float
    input_problem: str | None = None  # the champion cannot score what the API serves
    snapshot_id: int | None = None  # the registry's id of the published snapshot scored

    @property
    def name(self) -> str:
        return str(self.info.model_name)

    @property
    def version(self) -> int:
        return int(self.info.version)

    @property
    def window_days(self) -> int | None:
        """The version's observation window (``params["observation_days"]``), when recorded."""
        window = (self.info.params or {}).get("observation_days")
        return int(window) if window is not None else None

    def key(self) -> tuple[int, str, int | None]:
        """What identifies the content: version, artifact digest and snapshot id."""
        return (self.version, str(self.info.artifact_sha256), self.snapshot_id)


def snapshot_as_of(snapshot: pd.DataFrame) -> str | None:
    """The reference date of a feature snapshot (``attrs["as_of"]`` or an ``as_of`` column)."""
    value = snapshot.attrs.get("as_of")
    if value is None and "as_of" in snapshot.columns and len(snapshot):
        value = snapshot["as_of"].max()
    return utc_iso(value) if value is not None else None


def build_served(info: Any, model: Any, snapshot: pd.DataFrame | None) -> ServedModel:
    """Score the whole snapshot once and package it with the model (the slow part of a load)."""
    from credit.features import align_features

    start = time.perf_counter()
    features = tuple(info.features or getattr(model, "feature_names_", ()))
    table: dict[str, ScoreResult] = {}
    as_of = None
    snapshot_id = None if snapshot is None else snapshot.attrs.get("snapshot_id")
    problem = input_problem(features, str(info.model_name), int(info.version))
    if problem is None and snapshot is not None and len(snapshot):
        as_of = snapshot_as_of(snapshot)
        X = align_features(snapshot, list(features))
        X.index = X.index.astype(str)
        frame = model.score_frame(X, with_reasons=True, top=3)
        table = result_records(
            frame,
            model_name=str(info.model_name),
            model_version=int(info.version),
            source="snapshot",
            as_of=as_of,
        )
    return ServedModel(
        info=info,
        model=model,
        features=features,
        snapshot_as_of=as_of,
        table=table,
        loaded_at=datetime.now(UTC).isoformat(),
        load_seconds=round(time.perf_counter() - start, 3),
        input_problem=problem,
        snapshot_id=None if snapshot_id is None else int(snapshot_id),
    )


def _short(exc: BaseException) -> str:
    """A one-line, bounded description of a load failure, safe to publish in ``/health``.

    Registry errors carry our own messages (model, version, digest prefix); anything else
    (database drivers quote hosts, SQL and parameters) is reduced to its type.
    """
    from registry.errors import RegistryError

    if isinstance(exc, RegistryError):
        text = str(exc).splitlines()[0] if str(exc) else ""
        return f"{type(exc).__name__}: {text[:300]}"
    return f"{type(exc).__name__} (see the server log)"


class ModelHolder:
    """Holds the current :class:`ServedModel` and refreshes it from the registry.

    ``registry`` is a zero-argument callable returning the :class:`registry.Registry` (created
    lazily, so a database that is down at start-up only delays readiness).
    """

    def __init__(
        self,
        registry: Callable[[], Any],
        model_name: str,
        reload_seconds: float,
        *,
        snapshot_reader: Callable[[Any], pd.DataFrame | None] | None = None,
        snapshot_version: Callable[[Any], Any] | None = None,
        on_failure: Callable[[BaseException], str | None] | None = None,
    ) -> None:
        self._registry = registry
        self._on_failure = on_failure
        self.model_name = model_name
        self.reload_seconds = float(reload_seconds)
        self._snapshot_reader = snapshot_reader
        self._snapshot_version = snapshot_version
        self._current: ServedModel | None = None
        self._load_lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.status: dict[str, Any] = {
            "interval_seconds": self.reload_seconds,
            "checks": 0,
            "loads": 0,
            "failures": 0,
            "last_check_at": None,
            "last_load_at": None,
            "last_error": None,
        }

    @property
    def current(self) -> ServedModel | None:
        """The model to use for one whole request (read it once)."""
        return self._current

    # -- loading ------------------------------------------------------------------------
    def refresh(self) -> bool:
        """Load the registry's champion if it differs from the served one; True if swapped."""
        with self._load_lock:
            self.status["checks"] += 1
            self.status["last_check_at"] = datetime.now(UTC).isoformat()
            try:
                return self._refresh_locked()
            except Exception as exc:  # keep serving the last good model, whatever failed
                # The owner may know better (a query failed because the schema is gone).
                better = self._on_failure(exc) if self._on_failure is not None else None
                self.status["failures"] += 1
                metrics.RELOAD_FAILURES.inc()
                self.status["last_error"] = better or _short(exc)
                served = self._current
                log.error(
                    "model reload failed (%s: %s); %s",
                    type(exc).__name__,
                    str(exc).splitlines()[0][:500] if str(exc) else "",
                    f"still serving v{served.version}" if served else "no model served yet",
                )
                return False

    def _refresh_locked(self) -> bool:
        reg = self._registry()
        champ = reg.champion(self.model_name)
        if champ is None:
            if self._current is None:
                self.status["last_error"] = f"no champion registered for {self.model_name!r}"
            return False
        served = self._current
        # The served snapshot's id: a newer published snapshot reloads even for the same champion
        # (every worker polls the same id, so all converge within one interval).
        snap_key = self._snapshot_version(reg) if self._snapshot_version else None
        if (
            served is not None
            and served.version == int(champ.version)
            and served.info.artifact_sha256 == champ.artifact_sha256
            and (snap_key is None or snap_key == served.snapshot_id)
        ):
            self.status["last_error"] = None
            return False
        loaded = reg.load_champion(self.model_name)
        if loaded is None:
            return False
        info, model = loaded
        snapshot = self._snapshot_reader(reg) if self._snapshot_reader else None
        new = build_served(info, model, snapshot)
        self._current = new  # the one atomic publication
        self.status["loads"] += 1
        metrics.RELOADS.inc()
        metrics.served(new.name, new.version)
        self.status["last_load_at"] = new.loaded_at
        self.status["last_error"] = None
        log.info(
            "serving %s v%d (%d snapshot customers, as of %s; built in %.2f s)",
            new.name,
            new.version,
            len(new.table),
            new.snapshot_as_of,
            new.load_seconds,
        )
        return True

    # -- background thread --------------------------------------------------------------
    def start(self) -> None:
        """Start the polling thread (idempotent; call in the process that serves)."""
        if self._thread is not None and self._thread.is_alive():
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="bati-model-reload", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.reload_seconds)
            self._wake.clear()
            if self._stop.is_set():
                break
            self.refresh()

    def wake(self) -> None:
        """Check the registry now instead of at the next interval (after a promotion)."""
        self._wake.set()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
        self._thread = None

    def forget_thread(self) -> None:
        """After a fork the thread object belongs to the parent: start a fresh one."""
        self._thread = None
        self._load_lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
