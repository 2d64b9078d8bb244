"""Out-of-core path: transaction histories larger than memory, partition by partition.

Data read whole is one in-memory customer bucket (:class:`credit.transactions.CustomerBuckets`);
here a Parquet folder or large file becomes many buckets on disk, and the same stage functions
(:func:`credit.clean.clean_buckets`, :func:`credit.label.build_training_table`,
:func:`credit.features.build_feature_snapshot`) run over them, bucket by bucket, with *exactly*
the results of the in-memory path on the same data:

1. **Spill** (:func:`spill_group`, one pass over the input). The Parquet parts
   (:func:`credit.sources.parquet_parts`) form contiguous *part groups* of about
   ``bucket_rows`` rows (:func:`part_groups`), each spilled independently (one Prefect task
   per group in the flow, so a Dask cluster shares the reading). A group reads its parts
   ``chunk_rows`` rows at a time, projected on the 16 Xente columns, and validates them with
   :func:`credit.ingest.validate_transactions`; quarantined rows keep their global source row
   number (part offset + row). Valid rows go to one of ``K`` *customer buckets* by
   ``hash(CustomerId) % K`` (one Parquet file per group and bucket: the bucket is its files in
   group order, so in source order). Each row's ``TransactionId`` and a 64-bit digest of its
   typed content go to ``K`` *id buckets* by ``hash(TransactionId) % K``.
2. **Global checks** (:func:`id_conflicts` per id bucket, :func:`finish_spill`). An id bucket
   (its files over the groups) holds every occurrence of its ids, so a ``TransactionId`` that
   repeats with different content *anywhere* in the input is found (the schema's
   ``transaction_id_conflict`` check, which a chunk alone would miss across chunks). The
   quarantine, its row numbers, the report and the bad-share threshold are global
   (:func:`credit.ingest.assemble_result`); the run fails as the in-memory one does.
3. **Per bucket.** A customer bucket holds *all* transactions of its customers, and exact
   duplicates share a customer, so deduplication, every customer-level statistic and the RFM
   table are computed per bucket and concatenated without approximation. Only customer-level
   tables are ever whole: the KMeans proxy label runs on the concatenated RFM table.

Memory is about one chunk plus one bucket plus the customer-level tables, whatever the number of
rows; the work folder holds a compressed copy of the valid rows (deleted by ``cleanup()``).
"""

from __future__ import annotations

import logging
import math
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from credit.clean import DEFAULT_SAMPLE_ROWS
from credit.ingest import (
    DEFAULT_MAX_BAD_SHARE,
    ColumnLayout,
    IngestResult,
    TooManyBadRowsError,
    assemble_result,
    conform_columns,
    empty_failures,
    typed_for_schema,
    valid_rows,
    validate_frame,
    validate_transactions,
)
from credit.sources import (
    DEFAULT_OUT_OF_CORE_ROWS,
    IngestError,
    Part,
    RawTransactions,
    count_rows,
    open_transactions,
    parquet_parts,
    should_stream,
)
from credit.transactions import ROW_COLUMN, Bucket, CustomerBuckets
from schemas import vocab

log = logging.getLogger(__name__)

__all__ = [  # the Parquet helpers live in credit.sources; they are named here too
    "DEFAULT_OUT_OF_CORE_ROWS",
    "DEFAULT_SAMPLE_ROWS",
    "Part",
    "Spill",
    "SpillPlan",
    "SpilledGroup",
    "count_rows",
    "finish_spill",
    "id_buckets",
    "id_conflicts",
    "parquet_parts",
    "part_groups",
    "should_stream",
    "spill_group",
    "spill_transactions",
    "validate_source",
]

DEFAULT_CHUNK_ROWS = 1_000_000
"""Rows read and validated at a time (about 0.8 GiB of working memory per million rows)."""
DEFAULT_BUCKET_ROWS = 1_000_000
"""Target rows per customer bucket: the number of buckets is ``ceil(rows / bucket_rows)``."""

_CONFLICT_CHECK = "transaction_id_conflict"


# --------------------------------------------------------------------------------------------
# Chunks and buckets
# --------------------------------------------------------------------------------------------


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

    def written(self) -> list[Path | None]:
        """Per bucket its file, or None when no row went there."""
        return [p if w is not None else None for p, w in zip(self.paths, self.writers, strict=True)]


# --------------------------------------------------------------------------------------------
# Pass 1: read, validate, spill
# --------------------------------------------------------------------------------------------


def _row_digest(typed: pd.DataFrame) -> np.ndarray:
    """64-bit digest of each row as the schema sees it (what ``drop_duplicates`` compares)."""
    return pd.util.hash_pandas_object(typed_for_schema(typed), index=False).to_numpy()


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
) -> IngestResult:
    """Open a Parquet file or folder as parts and spill it (:func:`validate_source`;
    ``display``: its name)."""
    raw = open_transactions(source, stream=True)
    raw.source = display or raw.source
    return validate_source(
        raw,
        work_dir=work_dir,
        max_bad_share=max_bad_share,
        now=now,
        chunk_rows=chunk_rows,
        bucket_rows=bucket_rows,
    )


def id_conflicts(id_paths: list[Path]) -> pd.DataFrame | None:
    """Failures of rows whose TransactionId repeats with other content: ``id_paths`` are the
    files of ONE id bucket (one per partition group; together every occurrence of its ids);
    they are deleted. None when there is no conflict."""
    frames = [pd.read_parquet(p) for p in id_paths]
    for path in id_paths:
        path.unlink()
    if not frames:
        return None
    d = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
    del frames
    d = d.loc[d["tid"].duplicated(keep=False).to_numpy()]  # only repeated ids can conflict
    distinct = d.drop_duplicates(["tid", "digest"])
    clashing = distinct["tid"][distinct["tid"].duplicated(keep=False)].unique()
    if not len(clashing):
        return None
    hit = d[d["tid"].isin(clashing)]
    return pd.DataFrame(
        {
            "row": hit[ROW_COLUMN].to_numpy(dtype=np.int64),
            "column": "TransactionId",
            "check": _CONFLICT_CHECK,
            "value": ("TransactionId=" + hit["tid"].astype("str")).to_numpy(),
        }
    )


@dataclass
class SpillPlan:
    """How a streamed source is split: ``k`` customer (and id) buckets, and contiguous groups
    of Parquet parts, each spilled by one task (:func:`spill_group`)."""

    folder: Path
    k: int
    total: int
    groups: list[list[Part]]
    max_bad_share: float
    now: pd.Timestamp
    chunk_rows: int

    @classmethod
    def of(cls, raw: RawTransactions, folder: Path, limits: dict[str, Any]) -> SpillPlan:
        """The plan of ``raw`` under ``limits`` (``bucket_rows``, ``chunk_rows``,
        ``max_bad_share``, ``now``: the options of :func:`validate_source`); (re)creates the
        work ``folder``."""
        if raw.rows == 0:
            raise IngestError(raw.source, "the file has a header but no rows", "pass data rows")
        if folder.exists():
            shutil.rmtree(folder)
        folder.mkdir(parents=True)
        bucket_rows = max(1, int(limits["bucket_rows"]))
        return cls(
            folder,
            max(1, math.ceil(raw.rows / bucket_rows)),
            raw.rows,
            part_groups(raw.parts, bucket_rows),
            limits["max_bad_share"],
            limits.get("now") or pd.Timestamp.now(tz="UTC"),
            int(limits["chunk_rows"]),
        )


@dataclass
class SpilledGroup:
    """What one group of parts left: per bucket its customer and id file (or None), the
    failures and raw bad rows (global row numbers), and what was read."""

    customers: list[Path | None] = field(default_factory=list)
    ids: list[Path | None] = field(default_factory=list)
    fails: list[pd.DataFrame] = field(default_factory=list)
    bad_raw: list[pd.DataFrame] = field(default_factory=list)
    layout: ColumnLayout = field(default_factory=ColumnLayout)
    rows_read: int = 0
    bad: int = 0
    chunks: int = 0
    stopped: bool = False


def part_groups(parts: list[Part], rows_per_group: int) -> list[list[Part]]:
    """Contiguous groups of parts of at least ``rows_per_group`` rows (the last may be
    smaller): one spill task each, whatever the number of files."""
    groups: list[list[Part]] = [[]]
    rows = 0
    for part in parts:
        if groups[-1] and rows >= rows_per_group:
            groups.append([])
            rows = 0
        groups[-1].append(part)
        rows += part.rows
    return groups


def spill_group(plan: SpillPlan, group: int) -> SpilledGroup:
    """Validate the parts of group ``group`` chunk by chunk and spill their valid rows to the
    ``k`` customer buckets (files ``customers-GROUP-BUCKET``) and ids to the id buckets.

    Reading stops when this group's failures alone pass the bad-share threshold of the whole
    input (the run fails then, whatever the other groups hold)."""
    k, folder = plan.k, plan.folder
    customers = _BucketWriter(folder, f"customers-{group:05d}", k)
    ids = _BucketWriter(folder, f"ids-{group:05d}", k)
    out = SpilledGroup()
    try:
        for part in plan.groups[group]:
            out.layout = out.layout.merged(ColumnLayout.of(part.columns))
            offset = part.offset
            for chunk in _iter_chunks(part, plan.chunk_rows):
                out.chunks += 1
                chunk_raw, _ = conform_columns(chunk.reset_index(drop=True), str(part.path))
                typed, fails = validate_transactions(chunk_raw, now=plan.now)
                rows = np.arange(offset, offset + len(chunk_raw), dtype=np.int64)
                tid_ok = chunk_raw["TransactionId"].notna().to_numpy()
                ids.write(
                    pd.DataFrame(
                        {
                            "tid": chunk_raw["TransactionId"].astype("str").to_numpy()[tid_ok],
                            "digest": _row_digest(typed)[tid_ok],
                            ROW_COLUMN: rows[tid_ok],
                        }
                    ),
                    _bucket_of(chunk_raw["TransactionId"][tid_ok], k),
                )
                data, bad = valid_rows(typed, fails)
                data[ROW_COLUMN] = np.delete(rows, bad)
                customers.write(data, _bucket_of(data["CustomerId"], k))
                if len(fails):
                    out.fails.append(fails.assign(row=fails["row"].to_numpy() + offset))
                    bad_raw = chunk_raw.iloc[bad].astype("str")
                    bad_raw.index = bad + offset
                    out.bad_raw.append(bad_raw)
                out.rows_read += len(chunk_raw)
                out.bad += len(bad)
                offset += len(chunk_raw)
                del chunk_raw, typed, fails, data
                if out.bad > plan.max_bad_share * plan.total:
                    out.stopped = True
                    break
            if out.stopped:
                break
    finally:
        customers.close()
        ids.close()
    out.customers, out.ids = customers.written(), ids.written()
    return out


@dataclass
class Spill:
    """A streamed source spilled group by group (the flow's mapped tasks): what
    :func:`finish_spill` needs, and when it started."""

    plan: SpillPlan
    groups: list[SpilledGroup]
    conflicts: list[pd.DataFrame | None]
    started: float


def id_buckets(groups: list[SpilledGroup]) -> list[list[Path]]:
    """Per id bucket, its files over the groups (the input of :func:`id_conflicts`)."""
    k = len(groups[0].ids) if groups else 0
    return [[p for g in groups if (p := g.ids[b]) is not None] for b in range(k)]


def finish_spill(raw: RawTransactions, spill: Spill) -> IngestResult:
    """The global quarantine, report and bad-share check from every group's spill and every id
    bucket's conflicts (:func:`credit.ingest.assemble_result`); the customer buckets."""
    src, parts = raw.source, raw.parts
    plan, groups, conflicts = spill.plan, spill.groups, spill.conflicts
    fails_parts = [f for g in groups for f in g.fails]
    bad_raw_parts = [b for g in groups for b in g.bad_raw]
    conflict_parts = [c for c in conflicts if c is not None]
    already_bad = (
        np.unique(np.concatenate([f["row"].to_numpy() for f in fails_parts]))
        if fails_parts
        else np.array([], dtype=np.int64)
    )
    drop_rows = np.array([], dtype=np.int64)
    if conflict_parts:
        found = pd.concat(conflict_parts, ignore_index=True)
        drop_rows = np.setdiff1d(np.unique(found["row"].to_numpy()), already_bad)
        fails_parts.append(found)
        if drop_rows.size:
            bad_raw_parts.append(_raw_rows(parts, drop_rows, src).astype("str"))

    if fails_parts:
        fails = pd.concat(fails_parts, ignore_index=True).drop_duplicates()
        fails = fails.sort_values(["row", "column", "check"], kind="stable")
        fails = fails.reset_index(drop=True)
    else:
        fails = empty_failures()
    if bad_raw_parts:
        bad_raw = pd.concat(bad_raw_parts).sort_index(kind="stable")
    else:
        bad_raw = pd.DataFrame(columns=list(vocab.RAW_COLUMNS))
    n_valid = raw.rows - int(np.unique(fails["row"].to_numpy()).size)
    buckets: list[Bucket] = []
    for b in range(plan.k):
        files = tuple(p for g in groups if (p := g.customers[b]) is not None)
        if files:
            buckets.append(files[0] if len(files) == 1 else files)
    valid = CustomerBuckets(buckets, rows=n_valid, folder=plan.folder, drop_rows=drop_rows)
    layout = ColumnLayout()
    for g in groups:
        layout = layout.merged(g.layout)
    chunks = sum(g.chunks for g in groups)
    log.info(
        "read %s out of core: %d rows in %d chunks (%d part groups) into %d buckets",
        src,
        raw.rows,
        chunks,
        len(groups),
        len(buckets),
    )
    try:
        return assemble_result(
            valid,
            fails,
            bad_raw,
            raw,
            max_bad_share=plan.max_bad_share,
            layout=layout,
            started=spill.started,
            rows_read=sum(g.rows_read for g in groups),
            chunks=chunks,
        )
    except TooManyBadRowsError:
        valid.cleanup()
        raise


def validate_source(
    raw: RawTransactions,
    *,
    work_dir: str | Path,
    max_bad_share: float = DEFAULT_MAX_BAD_SHARE,
    now: pd.Timestamp | None = None,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    bucket_rows: int = DEFAULT_BUCKET_ROWS,
) -> IngestResult:
    """Validate an opened source. A frame read whole becomes one in-memory customer bucket
    (:func:`credit.ingest.validate_frame`); Parquet parts are validated and spilled chunk by
    chunk to buckets in ``work_dir`` (see the module doc).

    Raises :class:`~credit.ingest.IngestError` on a structural problem, or
    :class:`~credit.ingest.TooManyBadRowsError` (with the quarantine so far) when more than
    ``max_bad_share`` of all rows fail; streaming stops as soon as the failures alone pass the
    threshold of the whole input.
    """
    if raw.frame is not None:
        return validate_frame(raw, max_bad_share=max_bad_share, now=now)
    t0 = time.perf_counter()
    limits = {"max_bad_share": max_bad_share, "now": now}
    plan = SpillPlan.of(
        raw, Path(work_dir), {**limits, "chunk_rows": chunk_rows, "bucket_rows": bucket_rows}
    )
    groups = [spill_group(plan, g) for g in range(len(plan.groups))]
    stopped = any(g.stopped for g in groups)
    conflicts = [] if stopped else [id_conflicts(paths) for paths in id_buckets(groups)]
    return finish_spill(raw, Spill(plan, groups, conflicts, t0))
