"""Monitoring flow: population stability of the latest score run, and decay of matured ones.

    python -m flows.monitor [--db-url URL] [--watch 0.10] [--act 0.25] [--outcomes PATH]

Runs after every score run (the score flow calls it as a subflow) and on its own. It computes,
against the stored references of the version that scored (:mod:`credit.monitoring`):

- PSI of the score distribution and of the band mix, PSI (CSI) of every model input of the
  served feature snapshot, the approval rate and mean PD (``kind='stability'``);
- the quarantine share of the latest ingestion, and volume and latency of the prediction log
  over the last ``latency_window_hours``;
- for every past score run whose performance window has matured (as_of + performance_days <=
  the newest transaction), the realized proxy label (or the bank's ``--outcomes``) of the
  customers scored then: realized ROC-AUC, KS, Brier and per-band realized vs predicted PD
  (``kind='decay'``, once per score run).

Every run's figures go to the ``monitoring`` table; every breach emits a
``bati.monitoring.breach`` Prefect event; the ``monitoring`` and ``model-history`` artifacts
show the figures against their thresholds and the trend. The last stdout line is the JSON
summary (``as_of``, ``model_version``, ``score_psi``, ``max_feature_psi``, ``feature_psi``,
``approval_rate``, ``breaches``, ...).
"""

from __future__ import annotations

if __name__ == "__main__":  # Prefect's temporary server boots while the imports below run
    from tasks import early_server, quick_exit

    quick_exit.install()  # first: its exit handler runs last
    early_server.start()

import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.runtime import flow_run

from credit.monitoring import (
    Breach,
    Thresholds,
    decay_report,
    holdout_auc_se,
    population_stability,
    realized_outcomes,
    realized_proxy_label,
    typed_transactions,
)
from flows.cli import cli_main
from flows.config import MonitorConfig, install_secret_mask
from schemas.defaults import PERFORMANCE_DAYS
from tasks.alerts import ALERT_HOOKS, emit_breaches
from tasks.lifecycle import record_run
from tasks.registry_handle import open_registry, registry_for

if TYPE_CHECKING:
    from registry import Registry

API_URL_ENV = "BATI_API_URL"
TREND_RUNS = 30


def reports_url(run_id: str, file: str) -> str:
    """Where the API serves a run's report (``/reports/<run>/<file>``): a signed link that
    opens in a browser when ``BATI_ADMIN_TOKEN`` is set, else the URL for the bearer token."""
    from credit.report_links import report_link

    return report_link(run_id, file)


# -- stability ---------------------------------------------------------------------------------
def _latest_score_run(reg: Registry, model_name: str, run_id: str | None) -> dict[str, Any]:
    from registry.ops import latest_score_run

    run = latest_score_run(reg, model_name, run_id)
    if run is None:
        raise LookupError(f"no score run of {model_name!r}: run the score flow first")
    return run


def _scored_population(reg: Registry, run: dict[str, Any], model_name: str) -> pd.DataFrame:
    """The run's probability, score, band and approval, read as columns (no customer ids)."""
    from registry.ops import read_score_columns

    scores = read_score_columns(
        reg,
        ["probability", "score", "band", "approved"],
        run_id=run["run_id"],
        model_name=model_name,
        model_version=run["model_version"],
    )
    return pd.DataFrame(
        {
            "probability": scores["probability"].astype("float64").to_numpy(),
            "score": pd.to_numeric(scores["score"]).astype("float64").to_numpy(),
            "band": scores["band"].astype("string").to_numpy(),
            "approved": scores["approved"].astype("float64").to_numpy(),
        }
    )


def _inputs(reg: Registry, run: dict[str, Any], names: list[str]) -> Iterator[pd.DataFrame]:
    """The model inputs of the snapshot the run scored (else the served one), one Parquet part
    at a time and only those columns (the whole snapshot is never in memory)."""
    from registry.snapshots import iter_snapshot_parts

    snapshot_id = run.get("snapshot_id")
    snapshot_id = None if snapshot_id is None or pd.isna(snapshot_id) else int(snapshot_id)
    try:
        return iter_snapshot_parts(reg, snapshot_id, columns=names)
    except LookupError:
        return iter_snapshot_parts(reg, columns=names)


def _quarantine_share(reg: Registry, model_name: str) -> dict[str, Any]:
    """Rows quarantined by the latest training ingestion, against the rows it kept."""
    versions = reg.list_versions(model_name)
    if not versions:
        return {"quarantine_share": None}
    latest = versions[-1]
    quarantined = int((latest.extra or {}).get("quarantined") or 0)
    total = quarantined + int(latest.n_rows or 0)
    return {
        "quarantine_share": round(quarantined / total, 6) if total else None,
        "quarantined_rows": quarantined,
        "ingested_rows": total,
        "ingestion_version": latest.version,
    }


def _serving(reg: Registry, hours: float) -> dict[str, Any]:
    """Volume and latency of the prediction log over the last ``hours``."""
    from registry import read_prediction_log

    since = pd.Timestamp.now(tz="UTC") - pd.Timedelta(hours=hours)
    log = read_prediction_log(reg, limit=200_000, since=since)  # the window only, not 200,000
    if not log.empty:
        created = pd.to_datetime(log["created_at"], utc=True)
        log = log[created >= since]
    latency = pd.to_numeric(log.get("latency_ms"), errors="coerce").dropna() if len(log) else None
    has = latency is not None and len(latency) > 0
    return {
        "predictions": len(log),
        "latency_p50_ms": round(float(latency.quantile(0.5)), 3) if has else None,
        "latency_p95_ms": round(float(latency.quantile(0.95)), 3) if has else None,
        "window_hours": hours,
    }


def _record_check(
    reg: Registry,
    model_name: str,
    version: int | None,
    figures: dict[str, Any],
    breaches: list[dict[str, Any]],
    *,
    kind: str,
    as_of: Any,
    run_id: str,
) -> int:
    """Store one check's figures and breaches and send an event per breach; returns how many
    events were sent."""
    from registry import write_monitoring

    where = {"kind": kind, "as_of": as_of, "run_id": run_id}  # names the record and its events
    write_monitoring(
        reg,
        figures=figures,
        breaches=breaches,
        model_name=model_name,
        model_version=version,
        **where,
    )
    return emit_breaches(model_name, version, breaches, **where)


@task(name="stability", cache_policy=NO_CACHE)
def stability_check(config: MonitorConfig) -> dict[str, Any]:
    """The latest score run against the references of the version that scored it."""
    from registry import read_references

    reg = registry_for(config.db_url)
    run = _latest_score_run(reg, config.model_name, config.score_run_id)
    version = int(run["model_version"])
    scored = _scored_population(reg, run, config.model_name)
    refs = read_references(reg, config.model_name, version, with_holdout=False)
    figures: dict[str, Any] = {
        "score_run_id": run["run_id"],
        "as_of": None if pd.isna(run["as_of"]) else pd.Timestamp(run["as_of"]).isoformat(),
        "model_version": version,
    }
    if refs is None:
        get_run_logger().warning(
            "%s v%d has no references: PSI skipped", config.model_name, version
        )
        figures.update(
            reference=None,
            score_psi=None,
            band_psi=None,
            max_feature_psi=None,
            feature_psi={},
            approval_rate=float(scored["approved"].mean()) if len(scored) else None,
            mean_pd=float(scored["probability"].mean()) if len(scored) else None,
            customers=len(scored),
        )
        breaches: list[Breach] = []
    else:
        inputs = _inputs(reg, run, list(refs.distributions.get("inputs") or []))
        report = population_stability(refs.distributions, scored, inputs, config.thresholds())
        figures.update(report.figures())
        breaches = report.breaches
    figures["band_mix"] = {
        str(k): round(float(v), 6)
        for k, v in scored["band"].value_counts(normalize=True).sort_index().items()
    }
    figures.update(_quarantine_share(reg, config.model_name))
    figures.update(_serving(reg, config.latency_window_hours))
    return {"figures": figures, "breaches": [b.to_dict() for b in breaches]}


# -- decay -------------------------------------------------------------------------------------
def _transactions(reg: Registry, config: MonitorConfig) -> pd.DataFrame | None:
    """Transactions for realized labels: ``--transactions``, else the nightly store when it
    holds data, else the latest version's training input (a file path)."""
    from credit.sources import read_transactions

    if config.transactions:
        return typed_transactions(read_transactions(config.transactions)[0])
    try:
        from feed.store import default_store_url, open_store

        store = open_store(default_store_url())
        if store.count():
            return typed_transactions(store.read())
    except Exception as exc:  # no store: fall back to the training input
        get_run_logger().debug("no transaction store: %s", exc)
    versions = reg.list_versions(config.model_name)
    source = (versions[-1].params or {}).get("data_source") if versions else None
    if source and Path(source).exists():
        return typed_transactions(read_transactions(source)[0])
    return None


def _outcomes(config: MonitorConfig) -> pd.DataFrame | None:
    if not config.outcomes:
        return None
    path = Path(config.outcomes)
    return pd.read_parquet(path) if path.suffix.lower() == ".parquet" else pd.read_csv(path)


@task(name="decay", cache_policy=NO_CACHE)
def decay_checks(config: MonitorConfig, run_id: str) -> list[dict[str, Any]]:
    """A decay record for every matured score run not judged yet (oldest first)."""
    from registry import read_monitoring, read_references, score_runs
    from registry.ops import read_score_columns, score_run_ids

    reg = registry_for(config.db_url)
    logger = get_run_logger()
    done = {
        r["figures"].get("score_run_id")
        for r in read_monitoring(reg, config.model_name, kind="decay", limit=None)
    }
    # Run ids from the index first: the stored scores are grouped only for runs not judged
    # yet, and only when there is something to judge them with.
    pending = [r for r in score_run_ids(reg) if r not in done]
    if not pending:
        return []
    outcomes = _outcomes(config)
    tx = None if outcomes is not None else _transactions(reg, config)
    if outcomes is None and tx is None:
        logger.info("decay: no transactions or outcomes to judge past scores with")
        return []
    runs = score_runs(reg, config.model_name, run_ids=pending)
    runs = runs[runs["as_of"].notna()]
    if runs.empty:
        return []
    newest = (
        pd.to_datetime(outcomes.iloc[:, 1], utc=True, format="mixed").max()
        if outcomes is not None
        else tx["TransactionStartTime"].max()
    )
    records = []
    for run in runs.to_dict("records"):
        as_of = pd.Timestamp(run["as_of"])
        as_of = as_of.tz_localize("UTC") if as_of.tzinfo is None else as_of
        version = int(run["model_version"])
        info = reg.get_version(config.model_name, version)
        days = int(
            config.performance_days
            or (info.params or {}).get("performance_days")
            or PERFORMANCE_DAYS
        )
        if as_of + pd.Timedelta(days=days) > newest:
            continue
        scores = read_score_columns(
            reg,
            ["customer_id", "probability", "band"],
            run_id=run["run_id"],
            model_name=config.model_name,
            model_version=version,
        ).set_index("customer_id")
        if outcomes is not None:
            realized = realized_outcomes(outcomes, scores.index, as_of, days)
            source = "outcomes"
        else:
            realized = realized_proxy_label(tx, scores.index, as_of, days)
            source = "proxy_label"
        scores = scores.loc[scores.index.intersection(realized.index)]
        refs = read_references(reg, config.model_name, version, with_holdout=False)
        ranges = (refs.distributions if refs else {}).get("band_pd_ranges")
        report = decay_report(
            scores["probability"].to_numpy(),
            realized.reindex(scores.index).to_numpy(),
            scores["band"].astype(str).to_numpy(),
            holdout_auc=(info.metrics or {}).get("roc_auc"),
            holdout_se=holdout_auc_se(info.metrics or {}),
            band_pd_ranges={k: tuple(v) for k, v in (ranges or {}).items()},
            auc_drop=config.auc_drop,
        )
        figures = {
            "score_run_id": run["run_id"],
            "model_version": version,
            "as_of": as_of.isoformat(),
            "performance_days": days,
            "label_source": source,
            "holdout_roc_auc": (info.metrics or {}).get("roc_auc"),
            **{k: v for k, v in report.to_dict().items() if k != "breaches"},
        }
        breaches = [b.to_dict() for b in report.breaches]
        _record_check(
            reg,
            config.model_name,
            version,
            figures,
            breaches,
            kind="decay",
            as_of=as_of,
            run_id=run_id,
        )
        logger.info(
            "decay of score run %s (v%d, as of %s): AUC %s, %d breaches",
            run["run_id"],
            version,
            as_of.date(),
            report.roc_auc,
            len(breaches),
        )
        records.append({"figures": figures, "breaches": breaches})
    return records


# -- artifacts ---------------------------------------------------------------------------------
def _fmt(value: Any) -> str:
    if value is None or (isinstance(value, float) and not np.isfinite(value)):
        return "-"
    return f"{value:.4f}" if isinstance(value, float) else str(value)


def monitoring_markdown(
    figures: dict[str, Any],
    breaches: list[dict[str, Any]],
    history: list[dict[str, Any]],
    thresholds: Thresholds,
    decay: list[dict[str, Any]],
    run_id: str,
) -> str:
    """The ``monitoring`` artifact: tonight's figures against the thresholds, breaches, the
    trend over the last runs and the matured decay reports."""

    def status(value: Any) -> str:
        if value is None:
            return "-"
        judged = thresholds.judge("x", value)
        return "ok" if judged is None else f"**{judged.level}**"

    w, a = thresholds.watch, thresholds.act
    lines = [
        f"# Monitoring: {figures.get('model_version') and 'v' + str(figures['model_version'])}"
        f" as of {figures.get('as_of')}",
        "",
        f"Reference: `{figures.get('reference')}` (see README, Monitoring). "
        f"Thresholds: watch {w}, act {a}. Customers {figures.get('customers')} "
        f"(reference {figures.get('reference_customers')}).",
        "",
        "| figure | value | threshold | status |",
        "|---|---|---|---|",
        f"| score PSI | {_fmt(figures.get('score_psi'))} | {w} / {a} | "
        f"{status(figures.get('score_psi'))} |",
        f"| band-mix PSI | {_fmt(figures.get('band_psi'))} | {w} / {a} | "
        f"{status(figures.get('band_psi'))} |",
        f"| max input PSI | {_fmt(figures.get('max_feature_psi'))} | {w} / {a} | "
        f"{status(figures.get('max_feature_psi'))} |",
        f"| approval rate | {_fmt(figures.get('approval_rate'))} | | |",
        f"| mean PD | {_fmt(figures.get('mean_pd'))} | | |",
        f"| quarantine share | {_fmt(figures.get('quarantine_share'))} | | |",
        f"| predictions ({figures.get('window_hours')} h) | {figures.get('predictions')} | | |",
        f"| latency p95 (ms) | {_fmt(figures.get('latency_p95_ms'))} | | |",
    ]
    lines += ["", f"## Breaches ({len(breaches)})"]
    lines += [
        f"- `{b['metric']}` = {b['value']:.4f} >= {b['threshold']} (**{b['level']}**)"
        for b in breaches
    ] or ["none"]
    psis = figures.get("feature_psi") or {}
    top = sorted(((k, v) for k, v in psis.items() if v >= 0.005), key=lambda kv: -kv[1])[:10]
    if top:
        lines += ["", "## Inputs with the highest PSI", "| input | PSI |", "|---|---|"]
        lines += [f"| {k} | {v:.4f} |" for k, v in top]
    elif psis:
        lines += ["", f"Every one of the {len(psis)} inputs has a PSI below 0.005."]
    lines += [
        "",
        f"## Trend (last {len(history)} runs)",
        "| as of | version | score PSI | band PSI | max input PSI | approval | breaches |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in history:
        f = r["figures"]
        lines.append(
            f"| {r['as_of']} | {r['model_version']} | {_fmt(f.get('score_psi'))} | "
            f"{_fmt(f.get('band_psi'))} | {_fmt(f.get('max_feature_psi'))} | "
            f"{_fmt(f.get('approval_rate'))} | {len(r['breaches'])} |"
        )
    for d in decay:
        f = d["figures"]
        lines += [
            "",
            f"## Decay: score run {f['score_run_id']} (v{f['model_version']}, as of {f['as_of']})",
            f"Realized ({f['label_source']}) ROC-AUC {_fmt(f.get('roc_auc'))} vs holdout "
            f"{_fmt(f.get('holdout_roc_auc'))}, KS {_fmt(f.get('ks'))}, "
            f"Brier {_fmt(f.get('brier'))}, {f['n']} customers.",
            "| band | customers | mean PD | realized | PD range |",
            "|---|---|---|---|---|",
        ]
        lines += [
            f"| {b['band']} | {b['customers']} | {b['mean_pd']:.4f} | {b['realized_rate']:.4f} "
            f"| {b.get('pd_range', '-')} |"
            for b in f.get("bands", [])
        ]
    lines += [
        "",
        f"Reports: [monitoring]({reports_url(run_id, 'monitoring.html')}), "
        f"[model history]({reports_url(run_id, 'model_history.html')})",
    ]
    return "\n".join(lines)


def _short(text: str, limit: int = 60) -> str:
    """A decision reason for a table cell: its first clause, at most ``limit`` characters (the
    artifact's table is clipped, not wrapped, in the Prefect UI; the registry keeps it all)."""
    head = text.split(": ", 1)[0] if ": " in text else text
    return head if len(head) <= limit else head[: limit - 1].rstrip() + "…"


def model_history_markdown(reg: Registry, model_name: str) -> str:
    """The ``model-history`` artifact: every version's metrics and which one served when."""
    versions = reg.list_versions(model_name)
    lines = [
        f"# Model history: {model_name}",
        "",
        "| version | registered | stage | ROC-AUC | KS | Brier | decision |",
        "|---|---|---|---|---|---|---|",
    ]
    for v in versions:
        m = v.metrics or {}
        reason = _short((v.decision_reason or "").replace("|", "/"))
        lines.append(
            f"| {v.version} | {v.created_at:%Y-%m-%d %H:%M} | {v.stage} | "
            f"{_fmt(m.get('roc_auc'))} | {_fmt(m.get('ks'))} | {_fmt(m.get('brier'))} | "
            f"{reason} |"
        )
    events = reg.events(model_name)
    lines += ["", "## Champion changes (who served when)", "| from | to | when | action | by |"]
    lines += ["|---|---|---|---|---|"]
    lines += [
        f"| {e.from_version} | {e.to_version} | {e.created_at:%Y-%m-%d %H:%M} | {e.action} | "
        f"{e.actor} |"
        for e in events
    ]
    return "\n".join(lines)


def _publish(markdown: str, history: str, out_dir: Path) -> None:
    from prefect.artifacts import create_markdown_artifact

    from credit.report_links import markdown_page

    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "monitoring.md").write_text(markdown)
    (out_dir / "model_history.md").write_text(history)
    (out_dir / "monitoring.html").write_text(markdown_page(markdown, "Monitoring"))
    (out_dir / "model_history.html").write_text(markdown_page(history, "Model history"))
    create_markdown_artifact(markdown, key="monitoring", description="Model monitoring")
    create_markdown_artifact(history, key="model-history", description="Versions over time")


# -- the flow ----------------------------------------------------------------------------------
@flow(name="monitor", log_prints=True, **ALERT_HOOKS)
def monitor(config: MonitorConfig | None = None) -> dict[str, Any]:
    """Stability of the latest score run and decay of matured ones; figures to the
    ``monitoring`` table, breaches as Prefect events, the story as artifacts."""
    from credit.paths import runs_dir
    from registry import read_monitoring

    config = config or MonitorConfig()
    record_run()
    install_secret_mask()
    thresholds = config.thresholds()
    run_id = str(flow_run.get_id() or f"local-{int(time.time())}")
    logger = get_run_logger()
    with open_registry(config.db_url) as reg:
        checked = stability_check(config)
        figures, breaches = checked["figures"], checked["breaches"]
        emitted = _record_check(
            reg,
            config.model_name,
            figures["model_version"],
            figures,
            breaches,
            kind="stability",
            as_of=figures["as_of"],
            run_id=run_id,
        )
        decay = decay_checks(config, run_id)
        history = read_monitoring(reg, config.model_name, kind="stability", limit=TREND_RUNS)
        _publish(
            monitoring_markdown(figures, breaches, history, thresholds, decay, run_id),
            model_history_markdown(reg, config.model_name),
            runs_dir() / run_id,
        )
    logger.info(
        "monitoring v%s as of %s: score PSI %s, max input PSI %s, %d breaches (%d events)",
        figures["model_version"],
        figures["as_of"],
        figures.get("score_psi"),
        figures.get("max_feature_psi"),
        len(breaches),
        emitted,
    )
    return {
        "flow_run_id": run_id,
        "model_name": config.model_name,
        **figures,
        "breaches": breaches,
        "decay": [
            {
                **{k: d["figures"].get(k) for k in ("score_run_id", "as_of", "roc_auc", "n")},
                "breaches": d["breaches"],
            }
            for d in decay
        ],
        "thresholds": {"watch": thresholds.watch, "act": thresholds.act},
    }


def main(argv: list[str] | None = None) -> int:
    """``python -m flows.monitor``: the options of :class:`MonitorConfig`, one JSON line out."""
    return cli_main(MonitorConfig, argv, monitor, flow_name="monitor", description=__doc__)


if __name__ == "__main__":
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    quick_exit.finish(main())  # imported with early_server above
