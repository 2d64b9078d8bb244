"""The nightly transaction feed: landing sources, the ingestion manifest, the transaction store.

Layer: imports credit/ (cleaning constants), schemas/ and registry.db (engines); never flows/.
"""

from feed.landing import LANDING_ENV, LandedFile, LandingFolder, LandingScan
from feed.manifest import Manifest, ManifestEntry
from feed.night import FileIngest, NightIngest, ingest_new, open_landing
from feed.store import (
    STORE_ENV,
    AppendResult,
    ParquetStore,
    SqlStore,
    StoreError,
    TransactionStore,
    open_store,
)

__all__ = [
    "LANDING_ENV",
    "STORE_ENV",
    "AppendResult",
    "FileIngest",
    "LandedFile",
    "LandingFolder",
    "LandingScan",
    "Manifest",
    "ManifestEntry",
    "NightIngest",
    "ParquetStore",
    "SqlStore",
    "StoreError",
    "TransactionStore",
    "ingest_new",
    "open_landing",
    "open_store",
]
