"""Transaction sources: open a CSV or Parquet file, a folder of Parquet parts or a SQL table.

Structural checks come first and read only metadata and the first 64 KiB (a missing, empty,
binary, UTF-16 or oversized file fails in a second with one ``IngestError``: the source, the
problem, the fix). A source is then read whole, or, when it is a Parquet folder or a large
Parquet file, listed as parts that :mod:`credit.outofcore` streams. Symbolic links inside a folder
are never followed: they could lead out of the input or back into it.
"""

from __future__ import annotations

import csv
import hashlib
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from schemas.settings import setting

log = logging.getLogger(__name__)

DEFAULT_OUT_OF_CORE_ROWS = 5_000_000
"""A single Parquet file with at least this many rows is streamed rather than loaded."""
_SNIFF_BYTES = 64 * 1024
#: Largest CSV read into memory (a text file this size needs several times it in RAM as strings);
#: ``BATI_MAX_CSV_BYTES`` or the ``max_csv_bytes`` argument overrides it. Parquet is not capped.
DEFAULT_MAX_CSV_BYTES = 1024**3
MAX_CSV_BYTES_ENV = "BATI_MAX_CSV_BYTES"
_UTF16_32_BOMS = (b"\xff\xfe", b"\xfe\xff", b"\x00\x00\xfe\xff")


class IngestError(Exception):
    """A structural problem with the input: one clear message, no traceback for the operator."""

    def __init__(self, source: str, problem: str, fix: str) -> None:
        self.source, self.problem, self.fix = source, problem, fix
        super().__init__(f"cannot ingest {source}: {problem}. Fix: {fix}")


# --------------------------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------------------------


def is_sql_url(source: str | Path) -> bool:
    """True when ``source`` is a SQLAlchemy URL rather than a path."""
    return "://" in str(source)


def fingerprint_file(path: Path, chunk: int = 4 * 1024 * 1024) -> str:
    """sha256 of a file's bytes, or of every file's bytes in sorted order for a folder."""
    digest = hashlib.sha256()
    files = sorted(folder_files(path)[0]) if path.is_dir() else [path]
    for f in files:
        if path.is_dir():
            digest.update(str(f.relative_to(path)).encode())
        with f.open("rb") as fh:
            while block := fh.read(chunk):
                digest.update(block)
    return digest.hexdigest()


def fingerprint_frame(df: pd.DataFrame) -> str:
    """sha256 of a frame's content (column names and values, not its storage format)."""
    digest = hashlib.sha256("|".join(map(str, df.columns)).encode())
    digest.update(pd.util.hash_pandas_object(df, index=False).to_numpy().tobytes())
    return digest.hexdigest()


def csv_size_limit(value: int | None = None) -> int:
    """The CSV size limit: ``value``, else ``BATI_MAX_CSV_BYTES``, else 1 GiB."""
    if value is not None:
        return int(value)
    return int(setting("max_csv_bytes"))


def _size(n: float) -> str:
    """A byte count for people: ``2.0 GiB``."""
    if n < 1024:
        return f"{n:,.0f} bytes"
    units = ("KiB", "MiB", "GiB", "TiB")
    power = min(int(np.log2(n) // 10), len(units))
    return f"{n / 1024**power:.1f} {units[power - 1]}"


def check_source(source: str | Path, *, max_bytes: int | None = None) -> None:
    """Fail fast on a missing, empty, binary or oversized file (SQL URLs are checked when read)."""
    if not is_sql_url(source):
        _check_file(Path(source), max_bytes=max_bytes)


def _check_file(path: Path, *, max_bytes: int | None = None) -> None:
    """Structural checks from the file's metadata and first 64 KiB only (never a full read)."""
    src = str(path)
    if not path.exists():
        raise IngestError(src, "the file does not exist", "check the path (see --help)")
    if path.is_dir():
        if not any(path.glob("*.parquet")):
            raise IngestError(src, "the folder holds no .parquet files", "pass a CSV/Parquet file")
        return
    size = path.stat().st_size
    if size == 0:
        raise IngestError(src, "the file is empty (0 bytes)", "pass a file with a header and rows")
    if path.suffix.lower() == ".parquet":
        return
    limit = csv_size_limit(max_bytes)
    if size > limit:
        raise IngestError(
            src,
            f"the file is {_size(size)}, above the {_size(limit)} limit for CSV input",
            f"convert it to Parquet, split it, or raise {MAX_CSV_BYTES_ENV}",
        )
    with path.open("rb") as fh:
        head = fh.read(_SNIFF_BYTES)
    if head.startswith(_UTF16_32_BOMS):
        raise IngestError(
            src, "the file is UTF-16/UTF-32 text, not UTF-8", "re-save it as UTF-8 CSV"
        )
    if b"\x00" in head:
        raise IngestError(
            src, "the file is binary, not text CSV", "export the data as UTF-8 CSV or Parquet"
        )


def _header_duplicates(path: Path) -> list[str]:
    """Column names repeated in the CSV header (pandas would rename them ``X.1``)."""
    try:
        with path.open(newline="", encoding="utf-8-sig") as fh:
            header = next(csv.reader(fh), [])
    except (UnicodeDecodeError, csv.Error):
        return []  # the full read reports the problem
    names = [h.strip() for h in header]
    return sorted({n for n in names if names.count(n) > 1})


def _read_csv(path: Path) -> pd.DataFrame:
    src = str(path)
    try:
        df = pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[""], encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise IngestError(
            src,
            f"the file is not UTF-8 text (byte {exc.start}: {exc.reason})",
            "re-save it as UTF-8 (e.g. iconv -f latin1 -t utf-8)",
        ) from None
    except pd.errors.EmptyDataError:
        raise IngestError(src, "the file has no header or rows", "pass a non-empty CSV") from None
    except pd.errors.ParserError as exc:
        first = str(exc).splitlines()[0]
        raise IngestError(
            src, f"the CSV cannot be parsed ({first})", "check quoting and the delimiter"
        ) from None
    if df.shape[1] == 1 and any(d in df.columns[0] for d in (";", "\t", "|")):
        delim = next(d for d in (";", "\t", "|") if d in df.columns[0])
        raise IngestError(
            src,
            f"the delimiter is {delim!r}, not a comma",
            "export the file comma-separated",
        )
    dupes = _header_duplicates(path)
    if dupes:
        raise IngestError(src, f"duplicate column(s): {', '.join(dupes)}", "rename them")
    return df


def _read_parquet(path: Path) -> pd.DataFrame:
    files = parquet_files(path)[0] if path.is_dir() else [path]
    try:
        return pd.read_parquet(files[0] if len(files) == 1 else [str(f) for f in files])
    except Exception as exc:  # pyarrow raises several types for a corrupt file
        raise IngestError(
            str(path), f"the Parquet file cannot be read ({type(exc).__name__})", "re-export it"
        ) from None


def _read_sql(url: str, table: str | None) -> pd.DataFrame:
    import sqlalchemy as sa

    base, _, fragment = url.partition("#")
    table = table or fragment or "transactions"
    safe = base.split("@")[-1]  # never echo credentials
    try:
        engine = sa.create_engine(base)
        with engine.connect() as conn:
            df = pd.read_sql_table(table, conn)
    except ValueError:
        raise IngestError(safe, f"table {table!r} does not exist", "name the table") from None
    except Exception as exc:
        raise IngestError(
            safe, f"the database cannot be read ({type(exc).__name__})", "check the URL"
        ) from None
    return df


def read_transactions(
    source: str | Path, *, table: str | None = None, max_csv_bytes: int | None = None
) -> tuple[pd.DataFrame, str]:
    """Read raw transactions from a CSV/Parquet path, a Parquet folder or a SQL table.

    Returns the frame (CSV columns as strings, nothing parsed yet) and its content fingerprint.
    A CSV larger than ``max_csv_bytes`` (default :func:`csv_size_limit`) is refused before it
    is read.
    """
    if is_sql_url(source):
        df = _read_sql(str(source), table)
        return df, fingerprint_frame(df)
    path = Path(source)
    _check_file(path, max_bytes=max_csv_bytes)
    suffix = path.suffix.lower()
    if path.is_dir() or suffix == ".parquet":
        df = _read_parquet(path)
    elif suffix in {".csv", ".txt", ""}:
        df = _read_csv(path)
    else:
        raise IngestError(str(path), f"unsupported file type {suffix!r}", "pass .csv or .parquet")
    if df.empty:
        raise IngestError(str(path), "the file has a header but no rows", "pass data rows")
    return df, fingerprint_file(path)


def display_source(source: str | Path) -> str:
    """The source as it may be shown: a database URL loses its credentials."""
    return str(source).split("@")[-1] if is_sql_url(source) else str(source)


# --------------------------------------------------------------------------------------------
# Folders and Parquet parts
# --------------------------------------------------------------------------------------------


def folder_files(folder: Path) -> tuple[list[Path], list[str]]:
    """Regular files under ``folder`` and the symbolic links skipped (paths relative to it).

    Links are never followed: a link to a folder could lead out of the input or back into it
    (``sub -> .`` would read every file again, dozens of times).
    """
    files: list[Path] = []
    skipped: list[str] = []
    for root, dirs, names in os.walk(folder, followlinks=False):
        base = Path(root)
        for name in [*dirs, *names]:
            path = base / name
            if path.is_symlink():
                skipped.append(str(path.relative_to(folder)))
                if name in dirs:
                    dirs.remove(name)
            elif name in names:
                files.append(path)
    return files, sorted(skipped)


def parquet_files(folder: Path) -> tuple[list[Path], list[str]]:
    """The ``*.parquet`` files of a folder in reading order (sorted paths; hidden ones and those
    under hidden folders left out, as pyarrow does) and the symbolic links skipped."""
    files, skipped = folder_files(folder)
    hidden = (".", "_")
    parquet = [
        f
        for f in files
        if f.suffix == ".parquet"
        and not any(s.startswith(hidden) for s in f.relative_to(folder).parts)
    ]
    skipped = [s for s in skipped if not any(p.startswith(hidden) for p in Path(s).parts)]
    return sorted(parquet, key=str), skipped


@dataclass(frozen=True)
class Part:
    """One Parquet file of the input and where its rows start in the whole."""

    path: Path
    rows: int
    offset: int
    columns: tuple[str, ...]


def parquet_parts(source: str | Path) -> list[Part]:
    """The Parquet files of ``source`` in reading order (see :func:`parquet_files`), with their
    row counts and offsets from the file footers (no data read)."""
    path = Path(source)
    if is_sql_url(source) or (not path.is_dir() and path.suffix.lower() != ".parquet"):
        raise IngestError(
            display_source(source),
            "out-of-core ingestion reads a Parquet file or a folder of Parquet files",
            "convert the data to Parquet, or process it in memory (--in-memory)",
        )
    if not path.exists():
        raise IngestError(str(path), "the file does not exist", "check the path (see --help)")
    files = parquet_files(path)[0] if path.is_dir() else [path]
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
    if source is None or is_sql_url(source):
        return False
    path = Path(source)
    if path.is_dir():
        return bool(parquet_files(path)[0])
    if path.suffix.lower() != ".parquet" or not path.is_file():
        return False
    try:
        return pq.ParquetFile(path).metadata.num_rows >= min_rows
    except Exception:
        return False  # the in-memory reader reports the problem clearly


@dataclass
class RawTransactions:
    """A source opened for validation: read whole into ``frame``, or Parquet ``parts`` to be
    streamed chunk by chunk (:mod:`credit.outofcore`)."""

    source: str
    fingerprint: str
    frame: pd.DataFrame | None = None
    parts: list[Part] = field(default_factory=list)
    skipped_links: list[str] = field(default_factory=list)

    @property
    def streamed(self) -> bool:
        return self.frame is None

    @property
    def rows(self) -> int:
        return len(self.frame) if self.frame is not None else sum(p.rows for p in self.parts)


def open_transactions(
    source: str | Path,
    *,
    stream: bool | None = None,
    min_stream_rows: int = DEFAULT_OUT_OF_CORE_ROWS,
    table: str | None = None,
    max_csv_bytes: int | None = None,
) -> RawTransactions:
    """Open ``source``: read it whole, or (``stream``; None: :func:`should_stream`) list its
    Parquet parts and fingerprint them, reading no rows yet. Symbolic links inside a folder
    are skipped and named in ``skipped_links``."""
    display = display_source(source)
    if stream is None:
        stream = should_stream(source, min_rows=min_stream_rows)
    path = Path(source)
    links = [] if is_sql_url(source) or not path.is_dir() else parquet_files(path)[1]
    if stream:
        parts = parquet_parts(source)
        return RawTransactions(display, fingerprint_file(path), parts=parts, skipped_links=links)
    frame, fingerprint = read_transactions(source, table=table, max_csv_bytes=max_csv_bytes)
    return RawTransactions(display, fingerprint, frame=frame, skipped_links=links)
