"""Cleaning task."""

from __future__ import annotations

import pandas as pd
from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from credit.clean import CleanResult, clean_transactions
from credit.outofcore import DEFAULT_SAMPLE_ROWS, CleanBuckets, SpilledTransactions, clean_buckets


@task(name="clean", cache_policy=NO_CACHE)
def clean(
    data: pd.DataFrame | SpilledTransactions,
    *,
    sample_rows: int = DEFAULT_SAMPLE_ROWS,
    seed: int = 0,
) -> CleanResult | CleanBuckets:
    """Deduplicate, normalise types and validate the cleaned transactions.

    Out of core (``data`` spilled by the ``ingest-validate`` task) every customer bucket is
    cleaned in turn, and ``sample_rows`` cleaned rows are drawn (``seed``) for the EDA report.
    """
    if isinstance(data, SpilledTransactions):
        result = clean_buckets(data, sample_rows=sample_rows, seed=seed)
    else:
        result = clean_transactions(data)
    get_run_logger().info("cleaning: %s", result.report)
    return result
