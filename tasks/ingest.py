"""Ingestion task and command line: ``python -m tasks.ingest PATH [--db-url URL]``.

The last stdout line is one JSON object with ``rows``, ``valid``, ``quarantined``, ``fingerprint``
(plus ``bad_share`` and ``quarantine_path``). A structural problem exits with status 2 and one
clear message on stderr, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from credit.ingest import (
    DEFAULT_MAX_BAD_SHARE,
    IngestError,
    IngestResult,
    display_source,
    ingest,
    iter_messages,
    split_valid,
    write_quarantine,
)
from credit.ingest import read_transactions as _read_transactions
from credit.outofcore import (
    DEFAULT_BUCKET_ROWS,
    DEFAULT_CHUNK_ROWS,
    SpilledTransactions,
    spill_transactions,
)
from credit.paths import runs_dir


def store_quarantine(
    result: IngestResult, out_dir: Path, *, run_id: str, db_url: str | None
) -> dict[str, Any]:
    """Write the quarantine beside the run's outputs and into the database's quarantine table."""
    paths = write_quarantine(result, out_dir)
    stored = 0
    if len(result.quarantine):
        from registry import Registry
        from registry import write_quarantine as db_write_quarantine

        db_write_quarantine(
            Registry(db_url), run_id=run_id, source=result.report["source"], df=result.quarantine
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
    except IngestError as exc:
        failed: IngestResult | None = getattr(exc, "result", None)
        if failed is not None:
            rid = run_id or f"ingest-{failed.report['fingerprint'][:12]}"
            store_quarantine(failed, out_dir or runs_dir() / rid, run_id=rid, db_url=db_url)
        raise
    rid = run_id or f"ingest-{result.report['fingerprint'][:12]}"
    stored = store_quarantine(result, out_dir or runs_dir() / rid, run_id=rid, db_url=db_url)
    return result, stored


def _retry_io_only(task: Any, task_run: Any, state: Any) -> bool:
    """Retry transient I/O faults; a structural problem with the data is final."""
    try:
        state.result()
    except IngestError:
        return False
    except Exception:
        return True
    return False


@task(
    name="ingest",
    retries=3,
    retry_delay_seconds=[1, 5, 15],
    retry_condition_fn=_retry_io_only,
    timeout_seconds=1800,
    cache_policy=NO_CACHE,
)
def ingest_source(source: str, table: str | None = None) -> tuple[Any, str]:
    """Read the raw transactions (I/O: retried) and fingerprint them."""
    logger = get_run_logger()
    raw, fingerprint = _read_transactions(source, table=table)
    logger.info(
        "read %s rows from %s (sha256 %s)",
        f"{len(raw):,}",
        display_source(source),
        fingerprint[:12],
    )
    return raw, fingerprint


@task(name="validate", cache_policy=NO_CACHE, timeout_seconds=1800)
def validate(
    raw: Any,
    *,
    source: str,
    fingerprint: str,
    max_bad_share: float,
    out_dir: Path,
    run_id: str,
    db_url: str | None,
) -> IngestResult:
    """Validate lazily; quarantine bad rows (file + database); fail on too many."""
    logger = get_run_logger()
    try:
        result = split_valid(
            raw,
            source=display_source(source),
            fingerprint=fingerprint,
            max_bad_share=max_bad_share,
        )
    except IngestError as exc:
        failed = getattr(exc, "result", None)
        if failed is not None:
            store_quarantine(failed, out_dir, run_id=run_id, db_url=db_url)
            publish_quarantine(failed)
        logger.error("%s", exc)
        raise
    store_quarantine(result, out_dir, run_id=run_id, db_url=db_url)
    publish_quarantine(result)
    for line in iter_messages(result):
        logger.info(line)
    return result


@task(
    name="ingest-validate",
    retries=3,
    retry_delay_seconds=[1, 5, 15],
    retry_condition_fn=_retry_io_only,
    timeout_seconds=7200,
    cache_policy=NO_CACHE,
)
def ingest_partitioned(
    source: str,
    *,
    work_dir: Path,
    max_bad_share: float,
    out_dir: Path,
    run_id: str,
    db_url: str | None,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    bucket_rows: int = DEFAULT_BUCKET_ROWS,
) -> SpilledTransactions:
    """Out of core: read and validate a Parquet folder (or large file) chunk by chunk, spilling
    valid rows to customer buckets; quarantine bad rows (file + database); fail on too many.

    The quarantine, its row numbers and the bad-share threshold are global (see
    :mod:`credit.outofcore`). Transient I/O faults are retried; a data problem is final.
    """
    logger = get_run_logger()
    try:
        spilled = spill_transactions(
            source,
            work_dir,
            max_bad_share=max_bad_share,
            chunk_rows=chunk_rows,
            bucket_rows=bucket_rows,
            display=display_source(source),
        )
    except IngestError as exc:
        failed = getattr(exc, "result", None)
        if failed is not None:
            store_quarantine(failed, out_dir, run_id=run_id, db_url=db_url)
            publish_quarantine(failed)
        logger.error("%s", exc)
        raise
    store_quarantine(spilled.ingest, out_dir, run_id=run_id, db_url=db_url)
    publish_quarantine(spilled.ingest)
    r = spilled.report
    logger.info(
        "read %s rows out of core from %d partition(s) in %d chunks into %d customer buckets "
        "(sha256 %s)",
        f"{r['rows']:,}",
        r["partitions"],
        r["chunks"],
        r["buckets"],
        r["fingerprint"][:12],
    )
    for line in iter_messages(spilled.ingest):
        logger.info(line)
    return spilled


def publish_quarantine(result: IngestResult) -> None:
    """The quarantine summary as a Prefect table artifact."""
    from prefect.artifacts import create_table_artifact

    rows = result.report["failures_by_check"] or [{"column": "-", "check": "none", "rows": 0}]
    r = result.report
    create_table_artifact(
        rows,
        key="quarantine-summary",
        description=f"{r['quarantined']:,} of {r['rows']:,} rows quarantined "
        f"({r['bad_share']:.2%}) from {r['source']}",
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
