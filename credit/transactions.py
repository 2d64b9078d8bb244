"""Transactions as customer buckets: the one shape every stage after validation works on.

A *customer bucket* holds every transaction of its customers, in source order, so anything computed
per customer (deduplication, features, first-seen dates, RFM) is computed per bucket and the
customer-level results are concatenated without approximation. Data read whole is **one bucket in
memory**; a large Parquet input is spilled by :mod:`credit.outofcore` to many buckets on disk. The
label, the features and the snapshot are written once, over buckets (:mod:`credit.label`,
:mod:`credit.features`), and a plain frame is wrapped with :meth:`CustomerBuckets.of`.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from schemas import vocab

if TYPE_CHECKING:
    from credit.clean import CleanReport

ROW_COLUMN = "_row"
"""Global source row number of a spilled row (dropped when the bucket is read)."""

Bucket = pd.DataFrame | Path | tuple[Path, ...]
"""A bucket held in memory, or Parquet file(s) of a work folder (one per part group that spilled
rows into it, read in order: source order)."""


def to_utc(ts: pd.Timestamp | str) -> pd.Timestamp:
    """A tz-aware UTC timestamp (naive input is read as UTC)."""
    ts = pd.Timestamp(ts)
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")


def time_ns(tx: pd.DataFrame) -> np.ndarray:
    """``TransactionStartTime`` as int64 nanoseconds since the epoch, whatever the stored unit."""
    ts = tx["TransactionStartTime"]
    if ts.dt.tz is None:
        ts = ts.dt.tz_localize("UTC")
    return ts.array.as_unit("ns").asi8


def own_mask(tx: pd.DataFrame) -> np.ndarray:
    """Rows that are the customer's own activity (not the platform's cash-back credits)."""
    return ~(tx["AccountId"] == vocab.CASHBACK_ACCOUNT).to_numpy(dtype=bool, na_value=False)


def _timestamp(ns: int | None) -> pd.Timestamp | None:
    return None if ns is None else pd.Timestamp(ns, unit="ns", tz="UTC")


@dataclass
class CustomerBuckets:
    """Transactions split by customer: one in-memory bucket, or Parquet buckets in ``folder``.

    ``first``/``last``: first and last transaction time; ``rows``: rows over all buckets;
    ``report``: the cleaning report (None before cleaning); ``drop_rows``: global row numbers
    (``ROW_COLUMN``) of spilled rows quarantined afterwards, left out when a bucket is read;
    ``sample_path``: out of core, a seeded uniform sample of the cleaned rows for the EDA report;
    ``offset``: in a group of :meth:`groups`, the number of its first bucket in the whole.
    """

    buckets: list[Bucket]
    first: pd.Timestamp | None = None
    last: pd.Timestamp | None = None
    rows: int = 0
    report: CleanReport | None = None
    folder: Path | None = None
    drop_rows: np.ndarray = field(default_factory=lambda: np.array([], dtype=np.int64))
    sample_path: Path | None = None
    offset: int = 0

    @classmethod
    def of(cls, tx: pd.DataFrame | CustomerBuckets) -> CustomerBuckets:
        """``tx`` as one in-memory bucket (buckets are returned as they are)."""
        if isinstance(tx, CustomerBuckets):
            return tx
        t = time_ns(tx)
        first, last = (int(t.min()), int(t.max())) if t.size else (None, None)
        return cls([tx], _timestamp(first), _timestamp(last), len(tx))

    @property
    def in_memory(self) -> bool:
        return all(isinstance(b, pd.DataFrame) for b in self.buckets)

    def __len__(self) -> int:
        return self.rows

    def frames(self, columns: tuple[str, ...] | None = None) -> Iterator[pd.DataFrame]:
        """Each bucket's transactions; a bucket on disk is read projected on ``columns``."""
        for bucket in self.buckets:
            if isinstance(bucket, pd.DataFrame):
                yield bucket
                continue
            wanted = None if columns is None else list(columns)
            if wanted is not None and self.drop_rows.size:
                wanted.append(ROW_COLUMN)
            files = [bucket] if isinstance(bucket, Path) else list(bucket)
            pieces = [pd.read_parquet(f, columns=wanted) for f in files]
            df = pieces[0] if len(pieces) == 1 else pd.concat(pieces, ignore_index=True)
            del pieces
            if ROW_COLUMN in df.columns:
                if self.drop_rows.size:
                    df = df.loc[~np.isin(df[ROW_COLUMN].to_numpy(), self.drop_rows)]
                df = df.drop(columns=[ROW_COLUMN]).reset_index(drop=True)
            yield df

    def groups(self, size: int = 1) -> list[CustomerBuckets]:
        """The buckets in groups of ``size`` (one Prefect task each), each a
        :class:`CustomerBuckets` with this one's dates, work folder and dropped rows."""
        size = max(1, size)
        return [
            CustomerBuckets(
                self.buckets[i : i + size],
                self.first,
                self.last,
                folder=self.folder,
                drop_rows=self.drop_rows,
                offset=self.offset + i,
            )
            for i in range(0, len(self.buckets), size)
        ]

    def to_frame(self) -> pd.DataFrame:
        """All transactions in one frame (the bucket itself when there is one in memory)."""
        frames = list(self.frames())
        if len(frames) <= 1:
            return frames[0] if frames else pd.DataFrame()
        return pd.concat(frames, ignore_index=True)

    @property
    def sampled(self) -> bool:
        """True when :attr:`sample` is a row sample rather than every row."""
        return self.sample_path is not None

    @property
    def sample(self) -> pd.DataFrame:
        """The rows the EDA report shows: every row in memory, else the stored sample."""
        if self.sample_path is None:
            return self.to_frame() if self.in_memory else pd.DataFrame()
        return pd.read_parquet(self.sample_path) if self.sample_path.exists() else pd.DataFrame()

    def cleanup(self) -> None:
        """Delete the work folder (buckets on disk)."""
        if self.folder is not None:
            shutil.rmtree(self.folder, ignore_errors=True)
