"""One night's ingestion: what landed since the last night, validated, cleaned and stored once.

:func:`ingest_new` takes every pending landed file (or the SQL source's rows past its watermark),
and for each one:

1. reads and validates it with :mod:`credit.ingest` (bad rows to ``quarantine.csv`` beside the
   run's outputs and to the registry's quarantine table, as the retrain does);
2. cleans the valid rows (:func:`credit.clean.clean_transactions`);
3. appends them to the store with the file's manifest entry (path, sha256, size, rows, valid,
   quarantined, run id, time); rows whose TransactionId is stored with other content are
   quarantined with the reason (``conflicts.csv`` and the quarantine table).

A file with more bad rows than ``max_bad_share`` (or a structural problem) is refused with one
clear message and is not recorded, so a corrected redelivery, under any name, is taken the next
night. Exactly once: the manifest entry is written after the rows, and the store skips rows it
already holds, so a run killed at any point and run again stores every valid row once.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, overload

import pandas as pd

from credit.clean import clean_transactions
from credit.csvsafe import write_csv
from credit.ingest import (
    DEFAULT_MAX_BAD_SHARE,
    IngestError,
    IngestResult,
    TooManyBadRowsError,
    ingest,
    split_valid,
    write_quarantine,
)
from credit.sources import fingerprint_frame
from feed.landing import LANDING_ENV, LandingFolder, SqlLanding
from feed.manifest import ManifestEntry, now
from feed.store import AppendResult, TransactionStore

if TYPE_CHECKING:
    from registry import Registry

log = logging.getLogger(__name__)

LandingSource = LandingFolder | SqlLanding
CONFLICT_CHECK = "transaction_id_conflict"


def open_landing(source: str | Path) -> LandingSource:
    """A folder path opens a :class:`LandingFolder`; ``dialect://...#table`` a :class:`SqlLanding`."""
    text = str(source)
    if "://" in text:
        return SqlLanding(text)
    return LandingFolder(text)


@dataclass(frozen=True)
class FileIngest:
    """What one landed file (or SQL batch) gave the store, or why it was refused."""

    path: str
    sha256: str
    rows: int = 0
    valid: int = 0
    quarantined: int = 0
    new: int = 0
    duplicates: int = 0
    conflicts: int = 0
    changed: bool = False  # a name ingested before, with new content
    refused: str | None = None  # the reason the file was not taken

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


#: A file's counters, as its manifest entry states them.
FILE_COUNTS = ("rows", "valid", "quarantined", "new", "duplicates", "conflicts")
#: The night's figures :meth:`NightIngest.to_dict` reports first, in this order.
_NIGHT_FIGURES = (
    "run_id",
    "store",
    "source",
    "new_files",
    "new_rows",
    "valid_rows",
    "quarantined",
    "duplicates",
    "conflicts",
    "store_rows",
)


class _Total:
    """A :class:`NightIngest` total: one :class:`FileIngest` counter summed over the files
    taken (``refused_too``: over every file)."""

    def __init__(self, counter: str, *, refused_too: bool = False) -> None:
        self.counter, self.refused_too = counter, refused_too

    @overload
    def __get__(self, night: None, owner: type) -> _Total: ...
    @overload
    def __get__(self, night: NightIngest, owner: type) -> int: ...
    def __get__(self, night: NightIngest | None, owner: type) -> _Total | int:
        if night is None:
            return self
        files = night.files if self.refused_too else night.taken
        return sum(getattr(f, self.counter) for f in files)


@dataclass
class NightIngest:
    """The night's ingestion: per-file outcomes and the totals the nightly summary reports."""

    run_id: str
    store: str
    source: str
    files: list[FileIngest] = field(default_factory=list)
    already_ingested: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)
    store_rows: int = 0

    @property
    def taken(self) -> list[FileIngest]:
        return [f for f in self.files if f.refused is None]

    @property
    def refused(self) -> list[FileIngest]:
        return [f for f in self.files if f.refused is not None]

    @property
    def new_files(self) -> int:
        return len(self.taken)

    new_rows = _Total("new")
    valid_rows = _Total("valid")
    quarantined = _Total("quarantined", refused_too=True)  # a refused file's bad rows count
    duplicates = _Total("duplicates")
    conflicts = _Total("conflicts")

    def to_dict(self) -> dict[str, Any]:
        return {
            **{name: getattr(self, name) for name in _NIGHT_FIGURES},
            "changed": [f.path for f in self.taken if f.changed],
            "refused": {f.path: f.refused for f in self.refused},
            "already_ingested": len(self.already_ingested),
            "skipped": self.skipped,
            "files": [f.to_dict() for f in self.files],
        }


def _slug(text: str) -> str:
    name = Path(text.split("#")[-1]).name or "batch"
    return "".join(c if c.isalnum() or c in "-._" else "_" for c in name)


class _Night:
    """The state one :func:`ingest_new` call shares between its files."""

    def __init__(
        self,
        store: TransactionStore,
        *,
        run_id: str,
        max_bad_share: float,
        out_dir: Path,
        registry: Registry | None,
    ) -> None:
        self.store, self.run_id, self.max_bad_share = store, run_id, max_bad_share
        self.out_dir, self.registry = out_dir, registry

    def quarantine(self, result: IngestResult, label: str) -> None:
        """The file's bad rows: CSV under ``out_dir/<file>/`` and the quarantine table."""
        if not len(result.quarantine):
            return
        write_quarantine(result, self.out_dir / _slug(label))
        if self.registry is not None:
            from registry import write_quarantine as db_write_quarantine

            db_write_quarantine(
                self.registry, run_id=self.run_id, source=label, df=result.quarantine
            )

    def conflicts(self, refused: pd.DataFrame, label: str) -> None:
        """Rows whose TransactionId is stored with other content, quarantined with the reason."""
        if not len(refused):
            return
        folder = self.out_dir / _slug(label)
        folder.mkdir(parents=True, exist_ok=True)
        write_csv(refused, folder / "conflicts.csv")
        if self.registry is not None:
            from registry import write_quarantine as db_write_quarantine

            frame = pd.DataFrame(
                {
                    "row_number": pd.NA,
                    "column": "TransactionId",
                    "check": CONFLICT_CHECK,
                    "value": refused["TransactionId"].astype(str) + ": " + refused["reason"],
                }
            )
            db_write_quarantine(self.registry, run_id=self.run_id, source=label, df=frame)

    def take(
        self,
        result: IngestResult,
        *,
        label: str,
        sha256: str,
        size: int,
        changed: bool = False,
        watermark: str | None = None,
    ) -> FileIngest:
        """Clean and store one validated file with its manifest entry."""
        self.quarantine(result, label)
        report = result.report
        cleaned = clean_transactions(result.data)
        removed = cleaned.report.duplicates_removed

        def entry_for(appended: AppendResult) -> ManifestEntry:
            return ManifestEntry(
                path=label,
                sha256=sha256,
                size=size,
                rows=report.rows,
                valid=report.valid,
                quarantined=report.quarantined + appended.n_conflicts,
                new=appended.new,
                duplicates=appended.duplicates + removed,
                conflicts=appended.n_conflicts,
                run_id=self.run_id,
                ingested_at=now(),
                watermark=watermark,
            )

        appended = self.store.append(cleaned.data, entry_for)
        self.conflicts(appended.conflicts, label)
        entry = entry_for(appended)
        log.info(
            "%s: %d rows, %d valid, %d new, %d duplicates, %d conflicts, %d quarantined",
            label,
            entry.rows,
            entry.valid,
            entry.new,
            entry.duplicates,
            entry.conflicts,
            entry.quarantined,
        )
        counts = {name: getattr(entry, name) for name in FILE_COUNTS}
        return FileIngest(path=label, sha256=sha256, changed=changed, **counts)

    def refuse(self, label: str, sha256: str, exc: IngestError) -> FileIngest:
        """A file not taken: its quarantine is kept, the manifest does not record it."""
        quarantined = 0
        if isinstance(exc, TooManyBadRowsError):
            self.quarantine(exc.result, label)
            quarantined = exc.result.report.quarantined
        log.error("refused %s (not recorded: a corrected file is taken next night): %s", label, exc)
        return FileIngest(label, sha256, quarantined=quarantined, refused=str(exc))


def ingest_new(
    source: str | Path | LandingSource,
    store: TransactionStore,
    *,
    run_id: str,
    max_bad_share: float = DEFAULT_MAX_BAD_SHARE,
    out_dir: Path,
    registry: Registry | None = None,
) -> NightIngest:
    """Ingest what landed since the last night into ``store`` (see the module docstring)."""
    landing = source if isinstance(source, LandingFolder | SqlLanding) else open_landing(source)
    night = _Night(
        store, run_id=run_id, max_bad_share=max_bad_share, out_dir=out_dir, registry=registry
    )
    described = str(landing.folder) if isinstance(landing, LandingFolder) else landing.source
    out = NightIngest(run_id=run_id, store=store.describe(), source=described)
    if isinstance(landing, SqlLanding):
        _ingest_sql(landing, night, out)
    else:
        _ingest_folder(landing, night, out)
    out.store_rows = store.count()
    return out


def _ingest_folder(landing: LandingFolder, night: _Night, out: NightIngest) -> None:
    scan = landing.scan(night.store.manifest)
    out.already_ingested, out.skipped = scan.already_ingested, scan.skipped
    seen: set[str] = set()
    for landed in scan.pending:
        label = str(landed.path)
        if landed.sha256 in seen:  # the same content twice in one night
            out.already_ingested.append(str(landed.path.relative_to(landing.folder)))
            continue
        try:
            result = ingest(landed.path, max_bad_share=night.max_bad_share)
        except IngestError as exc:
            out.files.append(night.refuse(label, landed.sha256, exc))
            continue
        # The content read is the one recorded (the file may have been replaced since the scan).
        sha256 = result.report.fingerprint
        if sha256 != landed.sha256 and (
            sha256 in seen or sha256 in night.store.manifest.known_hashes()
        ):
            continue
        seen.add(sha256)
        out.files.append(
            night.take(
                result,
                label=label,
                sha256=sha256,
                size=landed.path.stat().st_size,
                changed=landed.changed,
            )
        )


def _ingest_sql(landing: SqlLanding, night: _Night, out: NightIngest) -> None:
    batch = landing.read(night.store.manifest)
    if not len(batch.raw):
        return
    sha256 = fingerprint_frame(batch.raw)
    if sha256 in night.store.manifest.known_hashes():  # only the watermark's rows, again
        out.already_ingested.append(batch.source)
        return
    try:
        result = split_valid(
            batch.raw, source=batch.source, fingerprint=sha256, max_bad_share=night.max_bad_share
        )
    except IngestError as exc:
        out.files.append(night.refuse(batch.source, sha256, exc))
        return
    out.files.append(
        night.take(result, label=batch.source, sha256=sha256, size=0, watermark=batch.watermark)
    )


__all__ = [
    "LANDING_ENV",
    "FileIngest",
    "LandingSource",
    "NightIngest",
    "ingest_new",
    "open_landing",
]
