"""Cleaning tasks: one per customer-bucket group, then the whole's report."""

from __future__ import annotations

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from credit.clean import CleanedGroup, clean_group, combine_cleaned
from credit.ingest import IngestResult
from credit.transactions import CustomerBuckets


@task(name="clean-buckets", cache_policy=NO_CACHE)
def clean_bucket_group(
    group: CustomerBuckets, *, sample_fraction: float = 0.0, seed: int = 0
) -> CleanedGroup:
    """Deduplicate, normalise types and validate the transactions of one bucket group
    (:func:`credit.clean.clean_group`); buckets on disk are replaced by cleaned ones."""
    return clean_group(group, sample_fraction=sample_fraction, seed=seed)


@task(name="clean", cache_policy=NO_CACHE)
def clean(ingested: IngestResult, groups: list[CleanedGroup], *, started: float) -> CustomerBuckets:
    """The cleaned buckets of every group with the report of the whole and the EDA sample."""
    cleaned = combine_cleaned(ingested.buckets, groups, started=started)
    get_run_logger().info("cleaning: %s", cleaned.report)
    return cleaned
