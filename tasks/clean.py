"""Cleaning task."""

from __future__ import annotations

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from credit.clean import DEFAULT_SAMPLE_ROWS, clean_buckets
from credit.ingest import IngestResult
from credit.transactions import CustomerBuckets


@task(name="clean", cache_policy=NO_CACHE)
def clean(
    ingested: IngestResult, *, sample_rows: int = DEFAULT_SAMPLE_ROWS, seed: int = 0
) -> CustomerBuckets:
    """Deduplicate, normalise types and validate the cleaned transactions, bucket by bucket.

    Buckets on disk (out of core) are replaced by cleaned ones, and ``sample_rows`` cleaned
    rows are drawn (``seed``) for the EDA report.
    """
    cleaned = clean_buckets(ingested.buckets, sample_rows=sample_rows, seed=seed)
    get_run_logger().info("cleaning: %s", cleaned.report)
    return cleaned
