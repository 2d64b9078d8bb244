"""Prefect deployments of the retrain and score flows (nightly schedule)."""
