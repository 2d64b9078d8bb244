"""Prefect deployments of the nightly, retrain and score flows (nightly schedule)."""

import flows  # noqa: F401  (PREFECT_HOME and telemetry defaults, before Prefect is imported)
