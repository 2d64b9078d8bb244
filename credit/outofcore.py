"""Out-of-core path: transaction histories larger than memory, partition by partition.

The in-memory path (:func:`credit.ingest.split_valid`, :func:`credit.clean.clean_transactions`,
:func:`credit.label.build_training_table`, :func:`credit.features.build_feature_snapshot`) holds
every transaction at once. Here the same functions run on pieces, and the pieces are chosen so the
results are *exactly* those of the in-memory path on the same data:

1. **Spill** (:func:`spill_transactions`, one pass over the input). The Parquet parts (a folder's
   ``*.parquet`` files in sorted order, as ``pandas.read_parquet`` reads a folder, or one large
   file) are read ``chunk_rows`` rows at a time, projected on the 16 Xente columns, and validated
   with :func:`credit.ingest.validate_transactions`; quarantined rows keep their global source
   row number (part offset + row). Valid rows go to one of ``K`` *customer buckets* by
   ``hash(CustomerId) % K`` (Parquet files in a work folder), in source order. Each row's
   ``TransactionId`` and a 64-bit digest of its typed content go to ``K`` *id buckets* by
   ``hash(TransactionId) % K``.
2. **Global checks.** An id bucket holds every occurrence of its ids, so a ``TransactionId`` that
   repeats with different content *anywhere* in the input is found (the schema's
   ``transaction_id_conflict`` check, which a chunk alone would miss across chunks). The
   quarantine, its row numbers and the bad-share threshold are global; the run fails as the
   in-memory one does.
3. **Per bucket** (:func:`clean_buckets`, :func:`build_training_table`,
   :func:`build_feature_snapshot`). A customer bucket holds *all* transactions of its customers,
   and exact duplicates share a customer, so deduplication, every customer-level statistic
   (medians, spreads, gaps, distinct counts) and the RFM table are computed per bucket and
   concatenated without approximation. Only customer-level tables (a few hundred bytes per
   customer) are ever whole: the KMeans proxy label runs on the concatenated RFM table.

Memory is about one chunk plus one bucket plus the customer-level tables, whatever the number of
rows; the work folder holds a compressed copy of the valid rows (deleted by :meth:`cleanup`).
"""

from __future__ import annotations

import logging
import math
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from credit.clean import OPTIONAL_CONSTANTS, clean_transactions
from credit.features import (
    FEATURE_COLUMNS,
    FEATURE_INPUT_COLUMNS,
    FEATURE_VERSION,
    INDEX_NAME,
    build_customer_features,
    time_ns,
    to_utc,
)
from credit.ingest import (
    _INTEGER_COLUMNS,
    DEFAULT_MAX_BAD_SHARE,
    QUARANTINE_COLUMNS,
    IngestError,
    IngestResult,
    _typed_for_schema,
    conform_columns,
    failure_summary,
    fingerprint_file,
    top_failures,
    validate_transactions,
)
from credit.label import MODES, TrainingTable, proxy_label, rfm_table
from credit.label import _own_mask as own_mask
from schemas import vocab

log = logging.getLogger(__name__)

DEFAULT_CHUNK_ROWS = 1_000_000
"""Rows read and validated at a time (about 0.8 GiB of working memory per million rows)."""
DEFAULT_BUCKET_ROWS = 1_000_000
"""Target rows per customer bucket: the number of buckets is ``ceil(rows / bucket_rows)``."""
DEFAULT_SAMPLE_ROWS = 1_000_000
"""Cleaned rows drawn uniformly (seeded) for the EDA report."""
DEFAULT_OUT_OF_CORE_ROWS = 5_000_000
"""A single Parquet file with at least this many rows is streamed rather than loaded."""

ROW_COLUMN = "_row"
_CONFLICT_CHECK = "transaction_id_conflict"
# Columns feature engineering reads: buckets are read projected.
_FEATURE_INPUT = FEATURE_INPUT_COLUMNS
_NS_PER_DAY = 86_400 * 10**9


# --------------------------------------------------------------------------------------------
# The input: Parquet parts
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Part:
    """One Parquet file of the input and where its rows start in the whole."""

    path: Path
    rows: int
    offset: int
    columns: tuple[str, ...]


def parquet_parts(source: str | Path) -> list[Part]:
    """The Parquet files of ``source`` in reading order (sorted paths; hidden files skipped),
    with their row counts and offsets from the file footers (no data read)."""
    path = Path(source)
    if "://" in str(source) or (not path.is_dir() and path.suffix.lower() != ".parquet"):
        raise IngestError(
            str(source).split("@")[-1],
            "out-of-core ingestion reads a Parquet file or a folder of Parquet files",
            "convert the data to Parquet, or process it in memory (--in-memory)",
        )
    if not path.exists():
        raise IngestError(str(path), "the file does not exist", "check the path (see --help)")
    if path.is_dir():
        files = sorted(
            (
                p
                for p in path.rglob("*.parquet")
                if p.is_file()
                and not any(s.startswith((".", "_")) for s in p.relative_to(path).parts)
            ),
            key=lambda p: str(p),
        )
    else:
        files = [path]
    if not files:
        raise IngestError(str(path), "the folder holds no .parquet files", "pass a Parquet folder")
    parts, offset = [], 0
    for f in files:
        try:
            meta = pq.ParquetFile(f)
            rows, names = meta.metadata.num_rows, tuple(meta.schema_arrow.names)
        except Exception as exc:  # pyarrow raises several types for a corrupt file
            raise IngestError(
                str(f), f"the Parquet file cannot be read ({type(exc).__name__})", "re-export it"
            ) from None
        parts.append(Part(f, rows, offset, names))
        offset += rows
    return parts


def count_rows(source: str | Path) -> int:
    """Rows of a Parquet file or folder, from the footers."""
    return sum(p.rows for p in parquet_parts(source))


def should_stream(source: str | Path | None, *, min_rows: int = DEFAULT_OUT_OF_CORE_ROWS) -> bool:
    """True for a Parquet folder, or a Parquet file of at least ``min_rows`` rows."""
    if source is None or "://" in str(source):
        return False
    path = Path(source)
    if path.is_dir():
        return any(path.rglob("*.parquet"))
    if path.suffix.lower() != ".parquet" or not path.is_file():
        return False
    try:
        return pq.ParquetFile(path).metadata.num_rows >= min_rows
    except Exception:
        return False  # the in-memory reader reports the problem clearly


def _iter_chunks(part: Part, chunk_rows: int) -> Iterator[pd.DataFrame]:
    wanted = [c for c in vocab.RAW_COLUMNS if c in part.columns]
    try:
        pf = pq.ParquetFile(part.path)
        for batch in pf.iter_batches(batch_size=chunk_rows, columns=wanted):
            yield pa.Table.from_batches([batch]).to_pandas()
    except IngestError:
        raise
    except Exception as exc:
        raise IngestError(
            str(part.path),
            f"the Parquet file cannot be read ({type(exc).__name__})",
            "re-export it",
        ) from None


def _bucket_of(values: pd.Series, k: int) -> np.ndarray:
    """Stable bucket number of each value (SipHash with pandas' fixed key), ``0 <= b < k``."""
    if k == 1:
        return np.zeros(len(values), dtype=np.int64)
    hashed = pd.util.hash_array(values.astype("str").to_numpy(dtype=object, na_value=""))
    return (hashed % np.uint64(k)).astype(np.int64)


class _BucketWriter:
    """``k`` Parquet files appended chunk by chunk; rows keep their order within a file."""

    def __init__(self, folder: Path, prefix: str, k: int) -> None:
        self.paths = [folder / f"{prefix}-{i:05d}.parquet" for i in range(k)]
        self.writers: list[pq.ParquetWriter | None] = [None] * k
        self.rows = np.zeros(k, dtype=np.int64)

    def write(self, frame: pd.DataFrame, bucket: np.ndarray) -> None:
        if frame.empty:
            return
        order = np.argsort(bucket, kind="stable")
        sorted_b = bucket[order]
        table = pa.Table.from_pandas(frame, preserve_index=False).take(order)
        bounds = np.searchsorted(sorted_b, np.arange(len(self.paths) + 1))
        for i in range(len(self.paths)):
            lo, hi = int(bounds[i]), int(bounds[i + 1])
            if hi <= lo:
                continue
            piece = table.slice(lo, hi - lo)
            writer = self.writers[i]
            if writer is None:
                writer = self.writers[i] = pq.ParquetWriter(
                    self.paths[i], piece.schema, compression="snappy"
                )
            writer.write_table(piece.cast(writer.schema))
            self.rows[i] += hi - lo

    def close(self) -> list[Path]:
        for w in self.writers:
            if w is not None:
                w.close()
        return [p for p, w in zip(self.paths, self.writers, strict=True) if w is not None]


# --------------------------------------------------------------------------------------------
# Pass 1: read, validate, spill
# --------------------------------------------------------------------------------------------


@dataclass
class SpilledTransactions:
    """Valid rows spilled to customer buckets, and the global ingestion result.

    ``ingest`` is an :class:`~credit.ingest.IngestResult` whose ``data`` is empty (the rows are
    in ``buckets``) and whose quarantine, raw bad rows and report equal the in-memory ones.
    ``drop_rows``: global row numbers (0-based) of spilled rows quarantined afterwards (their
    TransactionId conflicts with a row of another chunk).
    """

    source: str
    folder: Path
    buckets: list[Path]
    drop_rows: np.ndarray
    ingest: IngestResult
    seconds: float = 0.0

    @property
    def report(self) -> dict[str, Any]:
        return self.ingest.report

    def cleanup(self) -> None:
        """Delete the work folder."""
        shutil.rmtree(self.folder, ignore_errors=True)


def _row_digest(typed: pd.DataFrame) -> np.ndarray:
    """64-bit digest of each row as the schema sees it (what ``drop_duplicates`` compares)."""
    return pd.util.hash_pandas_object(_typed_for_schema(typed), index=False).to_numpy()


def _raw_rows(parts: list[Part], rows: np.ndarray, source: str) -> pd.DataFrame:
    """Raw rows (as text) at global 0-based ``rows``, re-read from their parts."""
    frames = []
    for part in parts:
        local = rows[(rows >= part.offset) & (rows < part.offset + part.rows)] - part.offset
        if local.size == 0:
            continue
        wanted = [c for c in vocab.RAW_COLUMNS if c in part.columns]
        table = pq.read_table(part.path, columns=wanted).take(pa.array(local))
        raw, _ = conform_columns(table.to_pandas(), source)
        raw.index = local + part.offset
        frames.append(raw)
    return pd.concat(frames) if frames else pd.DataFrame(columns=list(vocab.RAW_COLUMNS))


def spill_transactions(
    source: str | Path,
    work_dir: str | Path,
    *,
    max_bad_share: float = DEFAULT_MAX_BAD_SHARE,
    now: pd.Timestamp | None = None,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    bucket_rows: int = DEFAULT_BUCKET_ROWS,
    display: str | None = None,
) -> SpilledTransactions:
    """Read, validate and spill a Parquet file or folder chunk by chunk (see the module doc).

    Raises :class:`~credit.ingest.IngestError` on a structural problem, or when more than
    ``max_bad_share`` of all rows fail (the error carries ``exc.result``, the quarantine so far).
    Reading stops as soon as the failures alone pass the threshold of the whole input.
    """
    t0 = time.perf_counter()
    src = display or str(source)
    parts = parquet_parts(source)
    total = sum(p.rows for p in parts)
    if total == 0:
        raise IngestError(src, "the file has a header but no rows", "pass data rows")
    fingerprint = fingerprint_file(Path(source))
    now = now or pd.Timestamp.now(tz="UTC")
    k = max(1, math.ceil(total / max(1, bucket_rows)))
    folder = Path(work_dir)
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    customers = _BucketWriter(folder, "customers", k)
    ids = _BucketWriter(folder, "ids", k)

    fails_parts: list[pd.DataFrame] = []
    bad_raw_parts: list[pd.DataFrame] = []
    extra: list[str] = []
    reordered = False
    n_read = n_bad = chunks = 0
    stopped = False
    try:
        for part in parts:
            extra += [c for c in part.columns if c not in vocab.RAW_COLUMNS and c not in extra]
            reordered |= list(part.columns[: len(vocab.RAW_COLUMNS)]) != list(vocab.RAW_COLUMNS)
            offset = part.offset
            for chunk in _iter_chunks(part, chunk_rows):
                chunks += 1
                raw, _ = conform_columns(chunk.reset_index(drop=True), str(part.path))
                typed, fails = validate_transactions(raw, now=now)
                rows = np.arange(offset, offset + len(raw), dtype=np.int64)
                tid_ok = raw["TransactionId"].notna().to_numpy()
                ids.write(
                    pd.DataFrame(
                        {
                            "tid": raw["TransactionId"].astype("str").to_numpy()[tid_ok],
                            "digest": _row_digest(typed)[tid_ok],
                            ROW_COLUMN: rows[tid_ok],
                        }
                    ),
                    _bucket_of(raw["TransactionId"][tid_ok], k),
                )
                bad = np.unique(fails["row"].to_numpy()) if len(fails) else np.array([], int)
                good = np.ones(len(raw), dtype=bool)
                good[bad] = False
                data = typed.loc[good].reset_index(drop=True)
                for col in _INTEGER_COLUMNS:
                    data[col] = data[col].astype("int64")
                data[ROW_COLUMN] = rows[good]
                customers.write(data, _bucket_of(data["CustomerId"], k))
                if len(fails):
                    fails_parts.append(fails.assign(row=fails["row"].to_numpy() + offset))
                    bad_raw = raw.iloc[bad].astype("str")
                    bad_raw.index = bad + offset
                    bad_raw_parts.append(bad_raw)
                n_read += len(raw)
                n_bad += len(bad)
                offset += len(raw)
                del raw, typed, fails, data
                if n_bad > max_bad_share * total:
                    stopped = True
                    break
            if stopped:
                break
    finally:
        bucket_paths = customers.close()
        id_paths = ids.close()

    # Global TransactionId conflicts: every occurrence of an id sits in the same id bucket.
    conflict_parts = []
    if not stopped:
        for path in id_paths:
            d = pd.read_parquet(path)
            distinct = d.drop_duplicates(["tid", "digest"])
            clashing = distinct["tid"][distinct["tid"].duplicated(keep=False)].unique()
            if len(clashing):
                hit = d[d["tid"].isin(clashing)]
                conflict_parts.append(
                    pd.DataFrame(
                        {
                            "row": hit[ROW_COLUMN].to_numpy(dtype=np.int64),
                            "column": "TransactionId",
                            "check": _CONFLICT_CHECK,
                            "value": ("TransactionId=" + hit["tid"].astype("str")).to_numpy(),
                        }
                    )
                )
            path.unlink()
    already_bad = (
        np.unique(np.concatenate([f["row"].to_numpy() for f in fails_parts]))
        if fails_parts
        else np.array([], dtype=np.int64)
    )
    drop_rows = np.array([], dtype=np.int64)
    if conflict_parts:
        conflicts = pd.concat(conflict_parts, ignore_index=True)
        drop_rows = np.setdiff1d(np.unique(conflicts["row"].to_numpy()), already_bad)
        fails_parts.append(conflicts)
        if drop_rows.size:
            bad_raw_parts.append(_raw_rows(parts, drop_rows, src).astype("str"))

    if fails_parts:
        fails = pd.concat(fails_parts, ignore_index=True).drop_duplicates()
        fails = fails.sort_values(["row", "column", "check"], kind="stable")
        fails = fails.reset_index(drop=True)
    else:
        fails = pd.DataFrame(
            {"row": pd.Series(dtype="int64"), "column": [], "check": [], "value": []}
        )
    quarantine = fails.assign(row_number=fails["row"] + 1)[QUARANTINE_COLUMNS]
    if bad_raw_parts:
        bad_raw = pd.concat(bad_raw_parts).sort_index(kind="stable")
        quarantined_rows = bad_raw.assign(row_number=bad_raw.index.to_numpy() + 1)
    else:
        quarantined_rows = pd.DataFrame(columns=[*vocab.RAW_COLUMNS, "row_number"])
    n_bad = int(np.unique(fails["row"].to_numpy()).size)
    n = total
    report: dict[str, Any] = {
        "source": src,
        "rows": n,
        "valid": n - n_bad,
        "quarantined": n_bad,
        "bad_share": round(n_bad / n, 6) if n else 0.0,
        "fingerprint": fingerprint,
        "max_bad_share": max_bad_share,
        "failures_by_check": failure_summary(quarantine),
        "extra_columns": extra,
        "columns_reordered": reordered,
        "seconds": round(time.perf_counter() - t0, 3),
        "mode": "out_of_core",
        "partitions": len(parts),
        "chunks": chunks,
        "buckets": len(bucket_paths),
        "rows_read": n_read,
    }
    empty = pd.DataFrame(columns=list(vocab.RAW_COLUMNS))
    result = IngestResult(empty, quarantine, quarantined_rows, report)
    spilled = SpilledTransactions(
        src, folder, bucket_paths, drop_rows, result, time.perf_counter() - t0
    )
    log.info(
        "ingested %s out of core: %d rows in %d chunks, %d valid, %d quarantined, %d buckets",
        src,
        n,
        chunks,
        n - n_bad,
        n_bad,
        len(bucket_paths),
    )
    if stopped or (n and n_bad / n > max_bad_share):
        spilled.cleanup()
        if stopped and n_read < n:
            problem = (
                f"at least {n_bad} of {n} rows ({n_bad / n:.2%}) fail validation (reading "
                f"stopped after {n_read} rows), above the {max_bad_share:.2%} threshold"
            )
        else:
            problem = (
                f"{n_bad} of {n} rows ({n_bad / n:.2%}) fail validation, above the "
                f"{max_bad_share:.2%} threshold"
            )
        err = IngestError(
            src,
            f"{problem}; top failures: {top_failures(quarantine)}",
            "correct the source (the quarantine report lists every bad row) or raise "
            "--max-bad-share",
        )
        err.result = result  # type: ignore[attr-defined]
        raise err
    return spilled


# --------------------------------------------------------------------------------------------
# Pass 2: clean each bucket
# --------------------------------------------------------------------------------------------


@dataclass
class CleanBuckets:
    """Cleaned transactions as customer buckets (each a clean-transactions frame on disk).

    ``first``/``last``: the first and last transaction time (ns ``Timestamp``); ``sample``
    (read from ``sample_path`` when asked for): a seeded uniform row sample of the cleaned rows,
    sorted by time, for the EDA report.
    """

    folder: Path
    buckets: list[Path]
    report: dict[str, Any]
    first: pd.Timestamp | None
    last: pd.Timestamp | None
    sample_path: Path | None = None

    @property
    def rows(self) -> int:
        return int(self.report["rows_out"])

    @property
    def sample(self) -> pd.DataFrame:
        if self.sample_path is None or not self.sample_path.exists():
            return pd.DataFrame()
        return pd.read_parquet(self.sample_path)

    def __len__(self) -> int:
        return self.rows

    def iter_frames(
        self, columns: tuple[str, ...] | None = _FEATURE_INPUT
    ) -> Iterator[pd.DataFrame]:
        """Each bucket's clean transactions (projected on ``columns``; None: all)."""
        for path in self.buckets:
            yield pd.read_parquet(path, columns=list(columns) if columns else None)

    def cleanup(self) -> None:
        """Delete the work folder."""
        shutil.rmtree(self.folder, ignore_errors=True)


def clean_buckets(
    spilled: SpilledTransactions, *, sample_rows: int = DEFAULT_SAMPLE_ROWS, seed: int = 0
) -> CleanBuckets:
    """:func:`credit.clean.clean_transactions` on every bucket, with the global report.

    Each bucket's rows are in source order, so deduplication keeps the same first occurrence as
    on the whole data. Cleaned buckets replace the spilled ones; CurrencyCode and CountryCode
    are left out of them (the report names those constant over the whole data, as the
    in-memory step does).
    """
    t0 = time.perf_counter()
    valid = int(spilled.report["valid"])
    fraction = min(1.0, sample_rows / valid) if valid else 0.0
    rng = np.random.default_rng(seed)
    rows_in = rows_out = dupes = customers = 0
    distinct: dict[str, set] = {c: set() for c in OPTIONAL_CONSTANTS}
    first = last = None
    samples, cleaned_paths = [], []
    for path in spilled.buckets:
        df = pd.read_parquet(path)
        if spilled.drop_rows.size:
            df = df.loc[~np.isin(df[ROW_COLUMN].to_numpy(), spilled.drop_rows)]
        df = df.drop(columns=[ROW_COLUMN]).reset_index(drop=True)
        for c in OPTIONAL_CONSTANTS:
            if c in df.columns:
                distinct[c].update(pd.unique(df[c].dropna()).tolist())
        result = clean_transactions(df)
        del df
        tx = result.data.drop(columns=list(OPTIONAL_CONSTANTS), errors="ignore")
        rep = result.report
        rows_in += rep["rows_in"]
        rows_out += rep["rows_out"]
        dupes += rep["duplicates_removed"]
        customers += rep["customers"]
        if len(tx):
            t = time_ns(tx)
            lo, hi = int(t.min()), int(t.max())
            first = lo if first is None else min(first, lo)
            last = hi if last is None else max(last, hi)
            take = rng.random(len(tx)) < fraction
            if take.any():
                samples.append(tx.loc[take])
        out = path.with_name(path.name.replace("customers-", "clean-"))
        tx.to_parquet(out, index=False)
        cleaned_paths.append(out)
        path.unlink()
        del tx, result
    dropped = [c for c in OPTIONAL_CONSTANTS if len(distinct[c]) <= 1]
    first_ts = pd.Timestamp(first, unit="ns", tz="UTC") if first is not None else None
    last_ts = pd.Timestamp(last, unit="ns", tz="UTC") if last is not None else None
    report = {
        "rows_in": rows_in,
        "rows_out": rows_out,
        "duplicates_removed": dupes,
        "constant_columns_dropped": dropped,
        "customers": customers,
        "start": first_ts.as_unit("us").isoformat() if first_ts is not None else None,
        "end": last_ts.as_unit("us").isoformat() if last_ts is not None else None,
        "buckets": len(cleaned_paths),
        "seconds": round(time.perf_counter() - t0, 3),
    }
    sample_path = None
    if samples:  # kept on disk until the report asks for it
        sample_path = spilled.folder / "eda-sample.parquet"
        sample = pd.concat(samples)
        del samples
        sample.sort_values("TransactionStartTime", kind="stable", ignore_index=True).to_parquet(
            sample_path, index=False
        )
        del sample
    log.info("cleaned %d buckets: %d -> %d rows", len(cleaned_paths), rows_in, rows_out)
    return CleanBuckets(spilled.folder, cleaned_paths, report, first_ts, last_ts, sample_path)


# --------------------------------------------------------------------------------------------
# Pass 2: customer-level tables, bucket by bucket
# --------------------------------------------------------------------------------------------


def customer_features(
    buckets: CleanBuckets, *, as_of: pd.Timestamp, window_days: int | None = None
) -> pd.DataFrame:
    """:func:`credit.features.build_customer_features` over all buckets (same rows, same order)."""
    frames = [
        build_customer_features(tx, as_of=as_of, window_days=window_days)
        for tx in buckets.iter_frames()
    ]
    return _concat_customers(frames)


def _concat_customers(frames: list[pd.DataFrame]) -> pd.DataFrame:
    """``pd.concat(frames).sort_index()`` for disjoint customer frames, in about half the memory.

    The sorted result is allocated once and filled bucket by bucket, each bucket's frame being
    released as soon as it is copied (``frames`` is emptied): float64 columns go into one
    column-major block, other columns (the ``top_*`` strings) through integer codes of their few
    levels. Values, dtypes, index and column order are those of the one-shot version.
    """
    frames = [f for f in frames if len(f)] or frames[:1]
    if len(frames) == 1:
        out = frames.pop()
        return out if out.index.is_monotonic_increasing else out.sort_index(kind="stable")
    first = frames[0]
    columns, dtypes = list(first.columns), first.dtypes
    numeric = [c for c in columns if dtypes[c] == np.float64]
    other = [c for c in columns if c not in set(numeric)]
    if [c for c in columns if c in set(numeric)] + other != columns:
        # numeric columns not all first: the simple way
        out = pd.concat(frames).sort_index(kind="stable")
        frames.clear()
        return out
    index = pd.Index(
        np.concatenate([f.index.to_numpy(dtype=object) for f in frames]),
        dtype=first.index.dtype,
        name=first.index.name,
    )
    order = index.argsort()
    position = np.empty(len(index), dtype=np.int64)
    position[order] = np.arange(len(index))
    index = index.take(order)
    del order
    block = np.empty((len(numeric), len(index)), dtype=np.float64)
    codes = {c: np.empty(len(index), dtype=np.int64) for c in other}
    levels: dict[str, dict[Any, int]] = {c: {} for c in other}
    start = 0
    while frames:
        f = frames.pop(0)
        rows = position[start : start + len(f)]
        start += len(f)
        block[:, rows] = f[numeric].to_numpy(dtype=np.float64).T
        for c in other:
            level_codes, uniques = pd.factorize(f[c], use_na_sentinel=False)
            lookup = np.array([levels[c].setdefault(u, len(levels[c])) for u in uniques])
            codes[c][rows] = lookup[level_codes] if len(uniques) else level_codes
        del f
    out = pd.DataFrame(block.T, index=index, columns=numeric, copy=False)
    for c in other:
        names = np.array(list(levels[c]), dtype=object)
        out[c] = pd.array(names[codes[c]], dtype=dtypes[c])
    return out


def build_feature_snapshot(
    buckets: CleanBuckets, *, window_days: int | None, as_of: pd.Timestamp | None = None
) -> pd.DataFrame:
    """:func:`credit.features.build_feature_snapshot` of the bucketed data (identical result)."""
    from schemas.features import validate_feature_snapshot

    if buckets.last is None:
        raise ValueError("no transactions")
    as_of = buckets.last.floor("D") + pd.Timedelta(days=1) if as_of is None else to_utc(as_of)
    frame = customer_features(buckets, as_of=as_of, window_days=window_days)
    frame = validate_feature_snapshot(frame, columns=FEATURE_COLUMNS)
    frame.attrs.update(
        as_of=as_of.isoformat(), window_days=window_days, feature_version=FEATURE_VERSION
    )
    return frame


def build_training_table(
    buckets: CleanBuckets,
    *,
    as_of: pd.Timestamp | None = None,
    observation_days: int = 60,
    performance_days: int = 30,
    mode: str = "out_of_time",
    seed: int = 42,
) -> TrainingTable:
    """:func:`credit.label.build_training_table` of the bucketed data (identical result).

    Features, first-seen dates and RFM are computed per bucket; the KMeans label runs on the
    concatenated customer-level RFM table.
    """
    if mode != "out_of_time":
        raise ValueError(f"out-of-core training tables support mode 'out_of_time' of {MODES}")
    if observation_days <= 0 or performance_days <= 0:
        raise ValueError("window lengths must be positive")
    if buckets.last is None:
        raise ValueError("no transactions")
    as_of = buckets.last if as_of is None else to_utc(as_of)
    as_of_ns = int(as_of.as_unit("ns").value)
    cutoff = as_of - pd.Timedelta(days=performance_days)
    cutoff_ns = int(cutoff.as_unit("ns").value)
    obs_start = cutoff - pd.Timedelta(days=observation_days)
    features, rfms = [], []
    seen = excluded_new = 0
    for tx in buckets.iter_frames():
        t = time_ns(tx)
        own = own_mask(tx) & (t <= as_of_ns)
        first_seen = pd.Series(t[own]).groupby(tx.loc[own, "CustomerId"].to_numpy()).min()
        seen += len(first_seen)
        excluded_new += int((first_seen >= cutoff_ns).sum())
        X = build_customer_features(tx, as_of=cutoff, window_days=observation_days)
        features.append(X)
        rfms.append(rfm_table(tx, start=cutoff, end=as_of, customers=X.index))
    X = _concat_customers(features)
    rfm = pd.concat(rfms).reindex(X.index) if len(rfms) > 1 else rfms[0]
    rfm.index.name = INDEX_NAME
    windows = {
        "observation": [_iso(obs_start), _iso(cutoff)],
        "performance": [_iso(cutoff), _iso(as_of)],
        "observation_days": observation_days,
        "performance_days": performance_days,
    }
    result = proxy_label(rfm, seed=seed)
    report = {
        "mode": mode,
        "windows": windows,
        "as_of": _iso(as_of),
        "cutoff": _iso(cutoff),
        "n_customers_seen": int(seen),
        "n_customers": int(len(X)),
        "excluded_no_history": excluded_new,
        "excluded_dormant": int(seen - len(X) - excluded_new),
        "label": result.report,
    }
    from credit.label import LABEL_NAME

    rfm = rfm.assign(segment=result.segments, **{LABEL_NAME: result.labels})
    return TrainingTable(X=X, y=result.labels, cutoff=cutoff, as_of=as_of, report=report, rfm=rfm)


def _iso(ts: pd.Timestamp) -> str:
    return to_utc(ts).isoformat()
