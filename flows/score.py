"""Batch scoring flow: every customer of the latest feature snapshot, scored by the champion.

``python -m flows.score [--db-url URL] [--model-name NAME] [--no-monitor]`` prints a JSON
summary as its last stdout line. Scores (probability, score, band, recommendation, model
version, snapshot) go to the ``scores`` table; the ``score-distribution`` and ``band-mix``
table artifacts show them; then the ``monitor`` flow runs as a subflow (so every score run is
followed by a monitoring run; its summary is the ``monitor`` field).

Scoring streams: the snapshot is read one Parquet part (50,000 customers) at a time, scored and
written before the next is read, so memory stays that of one part whatever the population. One
``score-parts`` task run handles a group of :data:`PARTS_PER_TASK` parts; on a Dask task runner
(``BATI_DASK_ADDRESS``) the groups are mapped over the cluster (:func:`flows.cluster.run_each`).
Only a :class:`ScoreTally` (bin counts, per-band sums) comes back from each group, so the
distribution tables are the same however the parts were grouped or where they ran.
"""

from __future__ import annotations

if __name__ == "__main__":  # Prefect's temporary server boots while the imports below run
    from tasks import early_server, quick_exit

    quick_exit.install()  # first: its exit handler runs last
    early_server.start()
    import scipy.special  # noqa: F401  # before the rest: see registry.artifacts.serialise

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.runtime import flow_run

from flows.cli import cli_main
from flows.cluster import run_each
from flows.config import MonitorConfig, ScoreConfig, install_secret_mask
from flows.monitor import monitor as monitor_flow
from schemas.defaults import DEFAULT_MODEL_NAME
from tasks.alerts import ALERT_HOOKS
from tasks.lifecycle import record_run
from tasks.registry_handle import open_registry, registry_for

if TYPE_CHECKING:
    from registry import VersionInfo
    from registry.snapshots import SnapshotInfo


@task(name="load-champion", retries=2, retry_delay_seconds=[2, 10], cache_policy=NO_CACHE)
def load_champion(db_url: str | None, model_name: str) -> tuple[VersionInfo, Any]:
    """The champion version and its verified model."""
    loaded = registry_for(db_url).load_champion(model_name)
    if loaded is None:
        raise LookupError(f"no champion for model {model_name!r}: run the retrain flow first")
    return loaded


#: Edges of the score distribution's 20-point bins (closed on the left).
SCORE_EDGES = np.arange(300, 871, 20)
#: Snapshot parts (of ``registry.snapshots.PART_ROWS`` customers) scored by one task run.
PARTS_PER_TASK = 2


@task(name="load-snapshot", retries=2, retry_delay_seconds=[2, 10], cache_policy=NO_CACHE)
def load_snapshot(db_url: str | None) -> SnapshotInfo:
    """The header of the served customer feature snapshot (never its data)."""
    from registry.snapshots import served_snapshot

    info = served_snapshot(registry_for(db_url))
    if info is None or info.n_customers == 0:
        raise LookupError("no feature snapshot: run the retrain flow first")
    return info


@dataclass
class ScoreTally:
    """What the distribution tables and the run summary need of a score run, added up part by
    part (integer counts and sums: the same totals whatever the order or grouping)."""

    customers: int = 0
    written: int = 0
    bins: list[int] = field(default_factory=lambda: [0] * (len(SCORE_EDGES) - 1))
    bands: dict[str, list[float]] = field(default_factory=dict)  # band -> [n, sum pd, approved]

    @classmethod
    def of(cls, scores: pd.DataFrame, written: int = 0) -> ScoreTally:
        """The tally of one scores frame (``score``, ``band``, ``probability``, ``approved``)."""
        tally = cls(customers=len(scores), written=written)
        if len(scores) == 0:
            return tally
        score = scores["score"].to_numpy(dtype=float)
        at = np.searchsorted(SCORE_EDGES, score, side="right") - 1
        inside = (at >= 0) & (at < len(SCORE_EDGES) - 1) & np.isfinite(score)
        tally.bins = np.bincount(at[inside], minlength=len(SCORE_EDGES) - 1).tolist()
        groups = scores.groupby("band", sort=True)
        stats = groups.agg(n=("probability", "size"), pd=("probability", "sum"))
        approved = groups["approved"].sum()
        for band, row in stats.iterrows():
            tally.bands[str(band)] = [int(row["n"]), float(row["pd"]), int(approved[band])]
        return tally

    def add(self, other: ScoreTally) -> ScoreTally:
        """This tally plus ``other`` (in place; returns self)."""
        self.customers += other.customers
        self.written += other.written
        self.bins = [a + b for a, b in zip(self.bins, other.bins, strict=True)]
        for band, (n, total, approved) in other.bands.items():
            mine = self.bands.setdefault(band, [0, 0.0, 0])
            mine[0] += n
            mine[1] += total
            mine[2] += approved
        return self

    def tables(self) -> tuple[list[dict], list[dict]]:
        """Score distribution (20-point bins) and band mix, as artifact rows."""
        total = self.customers
        if total == 0:
            return [], []
        labels = pd.IntervalIndex.from_breaks(SCORE_EDGES, closed="left").astype(str)
        dist = [
            {"score": label, "customers": int(v), "share": round(v / total, 4)}
            for label, v in zip(labels, self.bins, strict=True)
            if v
        ]
        mix = [
            {
                "band": band,
                "customers": int(n),
                "share": round(n / total, 4),
                "mean_pd": round(s / n, 4),
                "approved": int(a),
            }
            for band, (n, s, a) in sorted(self.bands.items())
        ]
        return dist, mix


@task(name="score-parts", retries=2, retry_delay_seconds=[2, 10], cache_policy=NO_CACHE)
def score_parts(
    parts: list[int],
    *,
    model: Any,
    db_url: str | None,
    snapshot: SnapshotInfo,
    run_id: str,
    version: VersionInfo,
) -> ScoreTally:
    """Read, score and store the snapshot ``parts`` one at a time (one part in memory); the
    tally of what was stored. A retry replaces what an earlier attempt stored for its parts."""
    from prefect.runtime import task_run

    from registry import read_snapshot
    from registry import write_scores as db_write_scores

    target = registry_for(db_url)
    retried = (task_run.get_run_count() or 1) > 1
    tally = ScoreTally()
    for part in parts:
        frame = read_snapshot(target, snapshot.id, parts=[part])
        if len(frame) == 0:
            continue
        scores = model.score_frame(frame, with_reasons=False)
        del frame
        written = db_write_scores(
            target,
            scores.drop(columns=["reasons"], errors="ignore"),
            run_id,
            as_of=snapshot.as_of,
            model_name=version.model_name,
            model_version=version.version,
            snapshot_id=snapshot.id,
            replace=retried,
            customer_range=(str(scores.index.min()), str(scores.index.max())),
        )
        tally.add(ScoreTally.of(scores, written))
    return tally


def part_groups(n_parts: int, per_task: int = PARTS_PER_TASK) -> list[list[int]]:
    """Part numbers ``0 .. n_parts - 1`` in groups of ``per_task`` (one task run each)."""
    step = max(1, int(per_task))
    return [list(range(i, min(i + step, n_parts))) for i in range(0, n_parts, step)]


def distribution_tables(scores: pd.DataFrame) -> tuple[list[dict], list[dict]]:
    """Score distribution (20-point bins) and band mix of a score run, as artifact rows."""
    return ScoreTally.of(scores).tables()


def _publish_distribution(tally: ScoreTally) -> None:
    from prefect.artifacts import create_table_artifact

    dist, mix = tally.tables()
    create_table_artifact(dist, key="score-distribution", description="Scores of this run")
    create_table_artifact(mix, key="band-mix", description="Band mix of this run")


@flow(name="score", log_prints=True, **ALERT_HOOKS)
def score(
    db_url: str | None = None, model_name: str = DEFAULT_MODEL_NAME, monitor: bool = True
) -> dict[str, Any]:
    """Score the latest feature snapshot with the champion, store the scores, then monitor.

    ``db_url``: better left out (``BATI_DB_URL``), so no password becomes a flow-run parameter.
    ``monitor``: run the ``monitor`` subflow after scoring (default).
    """
    record_run()
    install_secret_mask()
    logger = get_run_logger()
    run_id = str(flow_run.get_id() or f"local-{int(time.time())}")
    with open_registry(db_url):
        info, model = load_champion(db_url, model_name)
        snapshot = load_snapshot(db_url)
        t0 = time.perf_counter()
        tally = ScoreTally()
        for part in run_each(
            score_parts,
            part_groups(snapshot.n_parts),
            model=model,
            db_url=db_url,
            snapshot=snapshot,
            run_id=run_id,
            version=info,
        ):
            tally.add(part)
        seconds = time.perf_counter() - t0
        _publish_distribution(tally)
        bands = {band: int(n) for band, (n, _, _) in sorted(tally.bands.items())}
        logger.info(
            "scored and stored %d customers with %s v%d in %.2f s; bands %s",
            tally.customers,
            model_name,
            info.version,
            seconds,
            bands,
        )
        # inside the block: the monitor subflow shares this run's registry handle
        monitored = _monitor_after(db_url, model_name) if monitor else None
    return {
        "flow_run_id": run_id,
        "monitor": monitored,
        "model_name": model_name,
        "model_version": info.version,
        "customers": tally.customers,
        "written": tally.written,
        "seconds": round(seconds, 3),
        "bands": bands,
        "approved": sum(int(a) for _, _, a in tally.bands.values()),
    }


def _monitor_after(db_url: str | None, model_name: str) -> dict[str, Any] | None:
    """The monitor subflow; its failure is logged (and alerted by its own hooks), the scores
    stay."""
    try:
        return monitor_flow(MonitorConfig(db_url=db_url, model_name=model_name))
    except Exception as exc:
        get_run_logger().warning("monitoring after scoring failed: %s", exc)
        return {"error": f"{type(exc).__name__}: {exc}"}


def main(argv: list[str] | None = None) -> int:
    return cli_main(
        ScoreConfig,
        argv,
        lambda config: score(
            db_url=config.db_url, model_name=config.model_name, monitor=config.monitor is not False
        ),
        flow_name="score",
        description=__doc__,
    )


if __name__ == "__main__":
    quick_exit.finish(main())  # imported with early_server above
