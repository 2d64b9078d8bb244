"""Prefect flows: ``retrain`` (nightly training) and ``score`` (batch scoring)."""
