"""Ingestion task and command line: ``python -m tasks.ingest PATH [--db-url URL]``.

The last stdout line is one JSON object with ``rows``, ``valid``, ``quarantined``, ``fingerprint``
(plus ``bad_share`` and ``quarantine_path``). A structural problem exits with status 2 and one
clear message on stderr, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from credit.ingest import (
    DEFAULT_MAX_BAD_SHARE,
    IngestError,
    IngestResult,
    TooManyBadRowsError,
    ingest,
    iter_messages,
    write_quarantine,
)
from credit.outofcore import (
    DEFAULT_BUCKET_ROWS,
    DEFAULT_CHUNK_ROWS,
    Spill,
    SpilledGroup,
    SpillPlan,
    finish_spill,
    id_conflicts,
    spill_group,
    validate_source,
)
from credit.paths import runs_dir
from credit.sources import DEFAULT_OUT_OF_CORE_ROWS, RawTransactions, open_transactions
from tasks.registry_handle import registry_for


def store_quarantine(
    result: IngestResult, out_dir: Path, *, run_id: str, db_url: str | None
) -> dict[str, Any]:
    """Write the quarantine beside the run's outputs and into the database's quarantine table."""
    paths = write_quarantine(result, out_dir)
    stored = 0
    if len(result.quarantine):
        from registry import write_quarantine as db_write_quarantine

        db_write_quarantine(
            registry_for(db_url), run_id=run_id, source=result.report.source, df=result.quarantine
        )
        stored = len(result.quarantine)
    return {"quarantine_path": str(paths["quarantine"]), "quarantine_db_rows": stored}


def run_ingest(
    source: str,
    *,
    db_url: str | None = None,
    out_dir: Path | None = None,
    max_bad_share: float = DEFAULT_MAX_BAD_SHARE,
    table: str | None = None,
    run_id: str | None = None,
) -> tuple[IngestResult, dict[str, Any]]:
    """Ingest ``source`` and store its quarantine, also when the bad share fails the run."""
    try:
        result = ingest(source, max_bad_share=max_bad_share, table=table)
    except TooManyBadRowsError as exc:
        rid = run_id or f"ingest-{exc.result.report.fingerprint[:12]}"
        store_quarantine(exc.result, out_dir or runs_dir() / rid, run_id=rid, db_url=db_url)
        raise
    rid = run_id or f"ingest-{result.report.fingerprint[:12]}"
    stored = store_quarantine(result, out_dir or runs_dir() / rid, run_id=rid, db_url=db_url)
    return result, stored


def _retries_on(*transient: type[Exception]) -> Callable[[Any, Any, Any], bool]:
    """A retry condition: retry ``transient`` faults; a problem with the data is final."""

    def condition(task: Any, task_run: Any, state: Any) -> bool:
        try:
            state.result()
        except IngestError:
            return False
        except transient:
            return True
        except Exception:
            return False
        return False

    return condition


@task(
    name="ingest",
    retries=3,
    retry_delay_seconds=[1, 5, 15],
    retry_condition_fn=_retries_on(Exception),
    timeout_seconds=1800,
    cache_policy=NO_CACHE,
)
def ingest_source(
    source: str,
    *,
    stream: bool | None = None,
    min_stream_rows: int = DEFAULT_OUT_OF_CORE_ROWS,
    table: str | None = None,
) -> RawTransactions:
    """Open the raw transactions (I/O: retried) and fingerprint them: read whole, or, for a
    Parquet folder or large file (``stream``; None: automatic), list the parts to stream."""
    raw = open_transactions(source, stream=stream, min_stream_rows=min_stream_rows, table=table)
    get_run_logger().info(
        "%s %s rows from %s (sha256 %s)",
        f"listed {len(raw.parts)} Parquet part(s) with" if raw.streamed else "read",
        f"{raw.rows:,}",
        raw.source,
        raw.fingerprint[:12],
    )
    return raw


@task(
    name="validate-parts",
    retries=2,
    retry_delay_seconds=[5, 15],
    retry_condition_fn=_retries_on(OSError),  # reading parts, writing buckets (rewritten whole)
    cache_policy=NO_CACHE,  # mapped into worker threads: no timeout (see tasks/train.py)
)
def validate_part_group(group: int, *, plan: SpillPlan) -> SpilledGroup:
    """Validate one group of Parquet parts chunk by chunk and spill its valid rows to the
    customer buckets (:func:`credit.outofcore.spill_group`; one task per part group)."""
    return spill_group(plan, group)


@task(name="validate-ids", cache_policy=NO_CACHE)
def check_id_bucket(paths: list[Path]) -> pd.DataFrame | None:
    """TransactionIds of one id bucket that repeat with other content
    (:func:`credit.outofcore.id_conflicts`)."""
    return id_conflicts(paths)


@task(
    name="validate",
    retries=2,
    retry_delay_seconds=[5, 15],
    retry_condition_fn=_retries_on(OSError),  # reading parts, writing buckets
    timeout_seconds=7200,
    cache_policy=NO_CACHE,
)
def validate(
    raw: RawTransactions,
    *,
    work_dir: Path,
    max_bad_share: float,
    out_dir: Path,
    run_id: str,
    db_url: str | None,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    bucket_rows: int = DEFAULT_BUCKET_ROWS,
    spill: Spill | None = None,
) -> IngestResult:
    """Validate lazily; quarantine bad rows (file + database); fail on too many.

    Valid rows become customer buckets: one in memory, or, for streamed Parquet parts, many in
    ``work_dir``, validated ``chunk_rows`` at a time with a global quarantine, row numbers and
    bad-share threshold (see :mod:`credit.outofcore`). With ``spill`` (the parts already
    spilled by :func:`validate_part_group` tasks and checked by :func:`check_id_bucket` tasks)
    only the global quarantine and report are assembled here.
    """
    logger = get_run_logger()
    try:
        if spill is not None:
            result = finish_spill(raw, spill)
        else:
            result = validate_source(
                raw,
                work_dir=work_dir,
                max_bad_share=max_bad_share,
                chunk_rows=chunk_rows,
                bucket_rows=bucket_rows,
            )
    except TooManyBadRowsError as exc:
        store_quarantine(exc.result, out_dir, run_id=run_id, db_url=db_url)
        publish_quarantine(exc.result)
        logger.error("%s", exc)
        raise
    except IngestError as exc:
        logger.error("%s", exc)
        raise
    store_quarantine(result, out_dir, run_id=run_id, db_url=db_url)
    publish_quarantine(result)
    for line in iter_messages(result):
        logger.info(line)
    return result


def publish_quarantine(result: IngestResult) -> None:
    """The quarantine summary as a Prefect table artifact."""
    from prefect.artifacts import create_table_artifact

    r = result.report
    rows = r.failures_by_check or [{"column": "-", "check": "none", "rows": 0}]
    create_table_artifact(
        rows,
        key="quarantine-summary",
        description=f"{r.quarantined:,} of {r.rows:,} rows quarantined "
        f"({r.bad_share:.2%}) from {r.source}",
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tasks.ingest", description="Validate a Xente transactions file."
    )
    parser.add_argument(
        "source", help="CSV or Parquet path, Parquet folder, or SQLAlchemy URL#table"
    )
    parser.add_argument("--db-url", default=None, help="registry database (default BATI_DB_URL)")
    parser.add_argument("--out", type=Path, default=None, help="folder for the quarantine report")
    parser.add_argument("--max-bad-share", type=float, default=DEFAULT_MAX_BAD_SHARE)
    parser.add_argument("--table", default=None, help="table name when the source is a SQL URL")
    args = parser.parse_args(argv)
    try:
        result, stored = run_ingest(
            args.source,
            db_url=args.db_url,
            out_dir=args.out,
            max_bad_share=args.max_bad_share,
            table=args.table,
        )
    except IngestError as exc:
        print(f"error: {exc}", file=sys.stderr)
        print(json.dumps({"error": str(exc), "source": exc.source}))
        return 2
    for line in iter_messages(result):
        print(line)
    print(json.dumps({**result.summary(), **stored}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
