"""Prefect tasks: thin wrappers over the plain, tested functions in :mod:`credit`."""
