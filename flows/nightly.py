"""The night as one Prefect flow: ingest what is new, retrain, score, monitor.

Ingest what is new -> retrain on the store's rolling window -> score -> monitor:

    python -m flows.nightly --landing DIR                 # files landed since the last night
    python -m flows.nightly --landing 'postgresql+psycopg://...#table'   # a SQL source table
    python -m flows.nightly --demo                        # the generated demo set, as one file

1. ``ingest-night`` (:func:`feed.night.ingest_new`): each new landed file is validated, cleaned
   and stored once in the transaction store (``--store``, ``BATI_STORE_URL``, default var/store);
2. the rolling window (observation + performance days ending at the newest stored transaction)
   is written to the run folder as Parquet; when its fingerprint is the one the latest
   registered version was trained on, nothing is trained or registered (the log and the
   ``nightly-summary`` artifact say so) and the run completes;
3. ``retrain`` on the window (a subflow: register, promote), then ``score`` (a subflow: exactly
   one score run per completed retrain);
4. monitoring (the hook :func:`monitor_step`).

The source is ``--landing`` (a parameter of deployments), else ``BATI_LANDING``, else the Prefect
Variable ``bati-landing``; ``--demo`` asks for the demo data. With none, the run fails at once
naming the settings. URLs with passwords are read from the environment, never from parameters.
The last stdout line is the JSON summary; a failure exits non-zero with one clear line.
"""

from __future__ import annotations

if __name__ == "__main__":  # Prefect's temporary server boots while the imports below run
    from tasks import early_server, quick_exit

    quick_exit.install()  # first: its exit handler runs last
    early_server.start()
    import scipy.special  # noqa: F401  # before the rest: see registry.artifacts.serialise

import os
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.runtime import flow_run
from pydantic import Field

from credit.paths import runs_dir, var_dir
from credit.sources import fingerprint_file
from feed.landing import LANDING_ENV
from feed.night import ingest_new, open_landing
from feed.store import STORE_ENV, TIME_COLUMN, default_store_url, open_store
from flows.cli import cli_main
from flows.cluster import on_cluster
from flows.config import CLI_ENV, CLI_FLAGS, CLI_HIDDEN, RetrainConfig, mask_secrets
from flows.retrain import retrain
from flows.score import score
from schemas import vocab
from schemas.defaults import DEFAULT_MODEL_NAME
from schemas.settings import setting
from tasks.lifecycle import record_run
from tasks.registry_handle import open_registry

LANDING_VARIABLE = "bati-landing"
DEMO_LANDING = "landing-demo"
DEMO_STORE = "store-demo"
_HIDDEN = {CLI_HIDDEN: True}


class NoSourceError(ValueError):
    """No transaction source is configured."""


NO_SOURCE = (
    f"no transaction source configured: set --landing DIR (or {LANDING_ENV}, or the Prefect "
    f"Variable {LANDING_VARIABLE!r}, or the deployment parameter config.landing) to a landing "
    "folder or a SQL URL#table, or pass --demo for the generated demo data"
)


class NightlyConfig(RetrainConfig):
    """Everything a nightly run can be told: the source and store, and the retrain's options
    (windows, candidates, promotion margins); the retrain's data options come from the store."""

    landing: str | None = Field(
        None,
        description="landing folder of new CSV/Parquet files, or a SQL source URL#table read "
        f"past its watermark (default ${LANDING_ENV}, else the Prefect Variable "
        f"'{LANDING_VARIABLE}'); the CLI passes it through the environment",
        json_schema_extra={CLI_ENV: LANDING_ENV},
    )
    store: str | None = Field(
        None,
        description="transaction store: a folder (Parquet by date) or SQLAlchemy URL#table "
        f"(default ${STORE_ENV}, else var/store; var/{DEMO_STORE} with --demo)",
        json_schema_extra={CLI_ENV: STORE_ENV},
    )
    demo: bool = Field(
        False,
        description=f"ingest the generated demo set (copied into var/{DEMO_LANDING})",
        json_schema_extra={CLI_FLAGS: ["--demo", "--no-demo"]},
    )
    keep_window: bool = Field(
        False,
        description="keep the training window's Parquet file in the run folder",
        json_schema_extra={CLI_FLAGS: ["--keep-window", "--drop-window"]},
    )
    # Where the retrain's transactions come from is the store's window, not an option.
    data: str | None = Field(None, json_schema_extra=_HIDDEN)
    table: str | None = Field(None, json_schema_extra=_HIDDEN)
    target: str | None = Field(None, json_schema_extra=_HIDDEN)
    as_of: None = Field(None, json_schema_extra=_HIDDEN)
    out_dir: str | None = Field(None, json_schema_extra=_HIDDEN)

    def retrain_config(self, window: Path) -> RetrainConfig:
        """The retrain's configuration: these options, on the window file."""
        fields = set(RetrainConfig.model_fields) - {"data", "table", "target", "as_of", "out_dir"}
        return RetrainConfig(**self.model_dump(include=fields), data=str(window))


# ------------------------------------------------------------------------------- source ---


def _variable(name: str) -> str | None:
    from prefect.variables import Variable

    value = Variable.get(name, default=None)
    return str(value) if value else None


def resolve_landing(config: NightlyConfig, *, variables: bool = True) -> str:
    """The landing source: ``--demo``, the ``landing`` parameter, ``BATI_LANDING``, the Prefect
    Variable; :class:`NoSourceError` naming these settings when there is none."""
    if config.demo:
        return str(demo_landing())
    if config.landing:
        if mask_secrets(config.landing) != config.landing:
            raise NoSourceError(
                f"the landing URL holds a password: set it in {LANDING_ENV} in the worker's "
                "environment, not as a parameter (parameters are stored in plain text)"
            )
        return config.landing
    found = setting("landing") or (_variable(LANDING_VARIABLE) if variables else None)
    if not found:
        raise NoSourceError(NO_SOURCE)
    return found


def resolve_store(config: NightlyConfig) -> str:
    """``store``, else ``BATI_STORE_URL``, else var/store (var/store-demo for the demo)."""
    if config.store:
        return config.store
    if config.demo and not setting("store_url"):
        return str(var_dir() / DEMO_STORE)
    return default_store_url()


def demo_landing() -> Path:
    """var/landing-demo holding the generated demo set as one landed file."""
    import sampledata

    demo = sampledata.ensure_demo_data()
    folder = var_dir() / DEMO_LANDING
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / demo.name
    if not target.exists() or target.stat().st_size != demo.stat().st_size:
        tmp = folder / f".{demo.name}.tmp"  # hidden: a scan never takes a half-copied file
        shutil.copyfile(demo, tmp)
        os.replace(tmp, target)
    return folder


# ------------------------------------------------------------------------------- stages ---

#: The nightly's retrain runs are named ``nightly-retrain-...``: the score deployment's event
#: trigger skips them (the nightly scores itself), so each completed retrain is scored once.
NIGHTLY_RETRAIN_RUN = "nightly-retrain-*"


def retrain_in_night(config: RetrainConfig) -> dict[str, Any]:
    """The retrain subflow (on Dask when ``config.dask_address``), its run named for the night."""
    return on_cluster(
        retrain,
        config.dask_address,
        flow_run_name=lambda: NIGHTLY_RETRAIN_RUN.replace(
            "*", f"{pd.Timestamp.now(tz='UTC'):%Y%m%d-%H%M%S}"
        ),
    )(config)


@flow(name="ingest-night", log_prints=True)
def ingest_night(
    landing: str, store_url: str, *, max_bad_share: float, out_dir: str, db_url: str | None
) -> dict[str, Any]:
    """Validate, clean and store each newly landed file once (feed.night.ingest_new)."""
    logger = get_run_logger()
    store = open_store(store_url)
    run_id = str(flow_run.get_id() or f"local-{int(time.time())}")
    with open_registry(db_url) as registry:
        night = ingest_new(
            open_landing(landing),
            store,
            run_id=run_id,
            max_bad_share=max_bad_share,
            out_dir=Path(out_dir),
            registry=registry,
        )
    for item in night.taken:
        logger.info(
            "%s: %d rows, %d new, %d duplicates, %d quarantined%s",
            item.path,
            item.rows,
            item.new,
            item.duplicates,
            item.quarantined,
            " (a known name with new content)" if item.changed else "",
        )
    for item in night.refused:
        logger.error("refused %s: %s", item.path, item.refused)
    for name, why in night.skipped.items():
        logger.warning("skipped %s: %s", name, why)
    logger.info(
        "ingested %d new file(s), %d new rows; the store holds %d rows",
        night.new_files,
        night.new_rows,
        night.store_rows,
    )
    return night.to_dict()


def write_window(store_url: str, days: int, path: Path) -> dict[str, Any]:
    """The store's last ``days`` days (ending at its newest transaction) as one Parquet file of
    raw columns at ``path``; the same stored parts give the same bytes (sha256)."""
    store = open_store(store_url)
    newest = store.newest()
    if newest is None:
        return {"rows": 0}
    table = store.read_table(start=newest - pd.Timedelta(days=days))
    # Stored rows are cleaned: the constant currency and country come back for the raw schema.
    (currency,) = vocab.CURRENCIES
    (country,) = vocab.COUNTRIES
    n = table.num_rows
    zeros = pa.array(np.zeros(n, dtype=np.int32))
    table = table.append_column("CurrencyCode", pa.array([currency]).take(zeros))
    table = table.append_column("CountryCode", pa.array([country], pa.int64()).take(zeros))
    # In the store's order (days, then parts, each sorted by time: cleaning sorts the rest):
    # the same stored parts give the same bytes, and 10M rows need no costly sort.
    table = table.select(list(vocab.RAW_COLUMNS))
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path)
    times = pc.min_max(table.column(TIME_COLUMN))
    return {
        "path": str(path),
        "rows": n,
        "start": pd.Timestamp(times["min"].as_py()).isoformat(),
        "end": pd.Timestamp(times["max"].as_py()).isoformat(),
        "fingerprint": fingerprint_file(path),
    }


@task(name="rolling-window", cache_policy=NO_CACHE)
def rolling_window(store_url: str, days: int, path: Path) -> dict[str, Any]:
    """Write the training window to ``path`` (:func:`write_window`)."""
    return write_window(store_url, days, path)


def latest_trained(db_url: str | None, model_name: str) -> tuple[int, str] | None:
    """(version, data fingerprint) of the latest registered version of ``model_name``."""
    with open_registry(db_url) as registry:
        versions = registry.list_versions(model_name)
    return (versions[-1].version, versions[-1].data_fingerprint) if versions else None


@task(name="publish-snapshot", retries=2, retry_delay_seconds=[2, 10], cache_policy=NO_CACHE)
def publish_run_snapshot(db_url: str | None, retrain_run_id: str) -> int:
    """The completed retrain's feature snapshot becomes the served one (idempotent), before the
    score run reads it: the scores table and the API then use the same snapshot."""
    from registry import publish_snapshot

    with open_registry(db_url) as registry:
        return publish_snapshot(registry, retrain_run_id).id


def monitor_step(config: NightlyConfig, retrained: dict[str, Any], scored: dict[str, Any]) -> Any:
    """MONITOR HOOK: the monitoring subflow runs here, after scoring (champion, new snapshot).

    Returns a JSON-ready result for the summary's ``monitor`` field; None until it exists.
    """
    return None


def _publish_summary(summary: dict[str, Any]) -> None:
    from prefect.artifacts import create_markdown_artifact

    lines = [f"# Nightly run {summary['flow_run_id']}", ""]
    if summary.get("skipped_reason"):
        lines += [f"**Nothing trained:** {summary['skipped_reason']}", ""]
    keys = (
        "source",
        "store",
        "new_files",
        "new_rows",
        "quarantined",
        "store_rows",
        "trained",
        "model_version",
        "promoted",
        "scored",
    )
    lines += ["| | |", "|---|---|"] + [f"| {k} | {summary.get(k)} |" for k in keys]
    if summary.get("refused"):
        lines += ["", "Refused files (not recorded; a corrected delivery is taken next night):"]
        lines += [f"- `{path}`: {why}" for path, why in summary["refused"].items()]
    create_markdown_artifact("\n".join(lines), key="nightly-summary", description="Nightly run")


@flow(name="nightly", log_prints=True)
def nightly(config: NightlyConfig | None = None) -> dict[str, Any]:
    """Ingest what landed -> retrain on the store's rolling window -> score -> monitor."""
    config = config or NightlyConfig()
    record_run()
    logger = get_run_logger()
    landing = resolve_landing(config)  # fails at once, naming the settings
    store_url = resolve_store(config)
    run_id = str(flow_run.get_id() or f"local-{int(time.time())}")
    out_dir = runs_dir() / run_id
    model_name = config.model_name or DEFAULT_MODEL_NAME
    ingested = ingest_night(
        landing,
        store_url,
        max_bad_share=config.max_bad_share,
        out_dir=str(out_dir / "ingest"),
        db_url=config.db_url,
    )
    summary: dict[str, Any] = {
        "flow_run_id": run_id,
        **{k: ingested[k] for k in ("new_files", "new_rows", "quarantined", "store_rows")},
        "trained": False,
        "model_version": None,
        "promoted": False,
        "scored": 0,
        **{k: ingested[k] for k in ("duplicates", "conflicts", "changed", "refused")},
        "source": mask_secrets(ingested["source"]),
        "store": ingested["store"],
        "model_name": model_name,
        "window": None,
        "skipped_reason": None,
        "retrain": None,
        "score": None,
        "monitor": None,
        "out_dir": str(out_dir),
    }
    days = config.observation_days + config.performance_days
    window_path = out_dir / "window.parquet"
    window = rolling_window(store_url, days, window_path)
    summary["window"] = window
    latest = latest_trained(config.db_url, model_name)
    if not window["rows"]:
        summary["skipped_reason"] = "the transaction store is empty"
    elif latest is not None and latest[1] == window["fingerprint"]:
        summary["skipped_reason"] = (
            f"nothing new since {model_name} v{latest[0]}: the {days}-day window is the data it "
            f"was trained on (fingerprint {window['fingerprint'][:12]}); nothing registered"
        )
    if summary["skipped_reason"]:
        logger.info("nothing trained: %s", summary["skipped_reason"])
        window_path.unlink(missing_ok=True)
        _publish_summary(summary)
        return summary
    try:
        retrained = retrain_in_night(config.retrain_config(window_path))
    finally:
        if not config.keep_window:
            window_path.unlink(missing_ok=True)
    publish_run_snapshot(config.db_url, retrained["flow_run_id"])
    scored = on_cluster(score, config.dask_address)(db_url=config.db_url, model_name=model_name)
    summary.update(
        trained=True,
        model_version=retrained["model_version"],
        promoted=retrained["promoted"],
        champion=retrained.get("champion"),
        scored=scored["customers"],
        retrain={k: retrained.get(k) for k in ("flow_run_id", "candidate", "metrics", "out_dir")},
        score={k: scored.get(k) for k in ("flow_run_id", "model_version", "written")},
    )
    summary["monitor"] = monitor_step(config, retrained, scored)
    logger.info(
        "night done: %d new rows; %s v%s %s; %d customers scored",
        summary["new_rows"],
        model_name,
        summary["model_version"],
        "promoted" if summary["promoted"] else "not promoted",
        summary["scored"],
    )
    _publish_summary(summary)
    return summary


def run_nightly(config: NightlyConfig) -> dict[str, Any]:
    """The CLI's run: a missing source fails before any Prefect server starts."""
    resolve_landing(config, variables=bool(os.environ.get("PREFECT_API_URL")))
    return nightly(config)


def main(argv: list[str] | None = None) -> int:
    """``python -m flows.nightly``: the options of :class:`NightlyConfig`, one JSON line out."""
    return cli_main(NightlyConfig, argv, run_nightly, flow_name="nightly", description=__doc__)


if __name__ == "__main__":
    quick_exit.finish(main())  # imported with early_server above
