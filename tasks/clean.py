"""Cleaning task."""

from __future__ import annotations

import pandas as pd
from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from credit.clean import CleanResult, clean_transactions


@task(name="clean", cache_policy=NO_CACHE)
def clean(data: pd.DataFrame) -> CleanResult:
    """Deduplicate, normalise types and validate the cleaned transactions."""
    result = clean_transactions(data)
    get_run_logger().info("cleaning: %s", result.report)
    return result
