"""Ingestion: read transactions, validate them lazily, split good rows from quarantined ones.

The run fails (``IngestError``: one message naming the source, the problem and the fix) only on a
structural problem or when the share of bad rows passes a threshold. Otherwise every bad row is
kept in the quarantine with its source row number, column, failed check and value; good rows go on.
"""

from __future__ import annotations

import csv
import hashlib
import logging
import os
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pandera.pandas as pa

from schemas import vocab
from schemas.transactions import TransactionsSchema

log = logging.getLogger(__name__)

DEFAULT_MAX_BAD_SHARE = 0.01
QUARANTINE_COLUMNS = ["row_number", "column", "check", "value"]
_NUMERIC_COLUMNS = ("Amount", "Value")
_INTEGER_COLUMNS = ("CountryCode", "PricingStrategy", "FraudResult")
_TIME_COLUMN = "TransactionStartTime"
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


@dataclass
class IngestResult:
    """Valid typed rows, the quarantine (one row per failed check) and the raw bad rows."""

    data: pd.DataFrame
    quarantine: pd.DataFrame
    quarantined_rows: pd.DataFrame
    report: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        """The JSON-friendly figures the CLI prints and the flow records."""
        keys = ("source", "rows", "valid", "quarantined", "bad_share", "fingerprint", "seconds")
        return {k: self.report[k] for k in keys if k in self.report}


# --------------------------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------------------------


def is_sql_url(source: str | Path) -> bool:
    """True when ``source`` is a SQLAlchemy URL rather than a path."""
    return "://" in str(source)


def fingerprint_file(path: Path, chunk: int = 4 * 1024 * 1024) -> str:
    """sha256 of a file's bytes, or of every file's bytes in sorted order for a folder."""
    digest = hashlib.sha256()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
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
    raw = os.environ.get(MAX_CSV_BYTES_ENV, "").strip()
    if not raw:
        return DEFAULT_MAX_CSV_BYTES
    try:
        return int(float(raw))
    except ValueError:
        raise ValueError(f"{MAX_CSV_BYTES_ENV} must be a number of bytes, not {raw!r}") from None


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
    try:
        return pd.read_parquet(path)
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


def conform_columns(df: pd.DataFrame, source: str) -> tuple[pd.DataFrame, dict[str, list[str]]]:
    """Put the 16 columns in order; a missing one is structural, extra ones are reported."""
    df = df.rename(columns=lambda c: str(c).strip().lstrip("\ufeff"))
    missing = [c for c in vocab.RAW_COLUMNS if c not in df.columns]
    if missing:
        raise IngestError(
            source,
            f"required column(s) missing: {', '.join(missing)}",
            "supply all 16 Xente columns (see schemas/vocab.py RAW_COLUMNS)",
        )
    dupes = sorted({c for c in df.columns if list(df.columns).count(c) > 1})
    if dupes:
        raise IngestError(source, f"duplicate column(s): {', '.join(dupes)}", "rename them")
    extra = [c for c in df.columns if c not in vocab.RAW_COLUMNS]
    reordered = list(df.columns[: len(vocab.RAW_COLUMNS)]) != list(vocab.RAW_COLUMNS)
    out = df.loc[:, list(vocab.RAW_COLUMNS)]
    return out, {"extra_columns": extra, "reordered": [source] if reordered else []}


# --------------------------------------------------------------------------------------------
# Parsing and validation
# --------------------------------------------------------------------------------------------


def _failures(mask: np.ndarray, values: pd.Series, column: str, check: str) -> pd.DataFrame:
    idx = np.flatnonzero(mask)
    return pd.DataFrame(
        {
            "row": idx,
            "column": column,
            "check": check,
            "value": values.iloc[idx].astype(str).to_numpy(),
        }
    )


def parse_types(raw: pd.DataFrame) -> tuple[pd.DataFrame, list[pd.DataFrame]]:
    """Parse strings into the schema's types; values that cannot be parsed become failures."""
    df = raw.copy(deep=False)  # columns are replaced, never modified in place
    failures: list[pd.DataFrame] = []
    for col in vocab.RAW_COLUMNS:
        s = df[col]
        if col in _NUMERIC_COLUMNS or col in _INTEGER_COLUMNS:
            if pd.api.types.is_numeric_dtype(s) and not pd.api.types.is_bool_dtype(s):
                parsed = s.astype("float64")
            else:
                parsed = pd.to_numeric(s.astype("str").str.strip(), errors="coerce")
            bad = (parsed.isna() | ~np.isfinite(parsed.fillna(0))) & s.notna()
            if col in _INTEGER_COLUMNS:
                bad |= parsed.notna() & (parsed != np.round(parsed))
            if bad.any():
                failures.append(_failures(bad.to_numpy(), s, col, "parse_number"))
            df[col] = parsed.where(~bad).astype("float64")
        elif col == _TIME_COLUMN:
            if s.dtype == pd.DatetimeTZDtype(unit="us", tz="UTC"):
                parsed = s
            elif isinstance(s.dtype, pd.DatetimeTZDtype) or pd.api.types.is_datetime64_dtype(s):
                parsed = pd.to_datetime(s, utc=True)
            else:
                parsed = pd.to_datetime(
                    s.astype("str").str.strip(), utc=True, errors="coerce", format="ISO8601"
                )
            if parsed.dtype != pd.DatetimeTZDtype(unit="us", tz="UTC"):
                parsed = parsed.astype(pd.DatetimeTZDtype(unit="us", tz="UTC"))
            bad = parsed.isna() & s.notna()
            if bad.any():
                failures.append(_failures(bad.to_numpy(), s, col, "parse_timestamp"))
            df[col] = parsed
        elif not isinstance(s.dtype, pd.StringDtype):
            df[col] = s.astype("str").where(s.notna())
    return df, failures


def _typed_for_schema(df: pd.DataFrame) -> pd.DataFrame:
    """Rows with unparseable values get neutral placeholders so the schema can still run."""
    out = df.copy(deep=False)
    for col in _INTEGER_COLUMNS:
        out[col] = out[col].fillna(-1).astype("int64")
    return out


def _schema_failures(df: pd.DataFrame, null_mask: pd.DataFrame) -> list[pd.DataFrame]:
    try:
        TransactionsSchema.validate(df, lazy=True, inplace=True)
    except pa.errors.SchemaErrors as exc:
        fc = exc.failure_cases
    else:
        return []
    fc = fc[fc["index"].notna()]
    out = pd.DataFrame(
        {
            "row": fc["index"].astype("int64").to_numpy(),
            "column": fc["column"].astype(str).to_numpy(),
            "check": fc["check"].astype(str).to_numpy(),
            "value": fc["failure_case"].astype(str).to_numpy(),
        }
    )
    # Dataframe-level checks report every cell of a failing row: keep one failure per row,
    # under the column they concern, with the values that broke them.
    frame_checks = {
        "value_not_below_abs_amount": ("Value", ("Value", "Amount")),
        "transaction_id_conflict": ("TransactionId", ("TransactionId",)),
    }
    for check, (column, involved) in frame_checks.items():
        sel = out["check"] == check
        if not sel.any():
            continue
        rows = np.unique(out.loc[sel, "row"].to_numpy())
        # A parse failure already explains a row whose inputs are placeholders.
        rows = rows[~null_mask.loc[rows, list(involved)].any(axis=1).to_numpy()]
        value = pd.Series("", index=rows, dtype="str")
        for i, col in enumerate(involved):
            value = value + ("" if i == 0 else ", ") + col + "=" + df.loc[rows, col].astype(str)
        collapsed = pd.DataFrame(
            {"row": rows, "column": column, "check": check, "value": value.to_numpy()}
        )
        out = pd.concat([out[~sel], collapsed], ignore_index=True)
    # A parse failure already explains the row's placeholder; keep one failure for it.
    placeholder = np.zeros(len(out), dtype=bool)
    for col in (*_NUMERIC_COLUMNS, *_INTEGER_COLUMNS, _TIME_COLUMN):
        sel = out["column"].to_numpy() == col
        if sel.any():
            placeholder[sel] = null_mask[col].to_numpy()[out.loc[sel, "row"].to_numpy()]
    return [out[~placeholder]]


def validate_transactions(
    raw: pd.DataFrame, *, now: pd.Timestamp | None = None
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Validate every row at once; returns (typed frame, failures with 0-based ``row``)."""
    typed, failures = parse_types(raw)
    parse_nulls = typed.isna() & raw.notna()
    # Nulls in required fields, reported once per cell (not again by the schema).
    nulls = raw.isna()
    for col in vocab.RAW_COLUMNS:
        if nulls[col].any():
            failures.append(_failures(nulls[col].to_numpy(), raw[col], col, "not_nullable"))
    schema_input = _typed_for_schema(typed)
    failures += _schema_failures(schema_input, parse_nulls | nulls)
    # Timestamps in the future relative to the ingestion time (clock skew allowed).
    now = now or pd.Timestamp.now(tz="UTC")
    latest = now + pd.Timedelta(hours=vocab.FUTURE_SKEW_HOURS)
    future = (typed[_TIME_COLUMN] > latest).fillna(False).to_numpy()
    if future.any():
        failures.append(_failures(future, raw[_TIME_COLUMN], _TIME_COLUMN, "not_in_future"))
    fails = pd.concat(failures, ignore_index=True) if failures else _empty_failures()
    fails = fails.drop_duplicates().sort_values(["row", "column", "check"], kind="stable")
    return typed, fails.reset_index(drop=True)


def _empty_failures() -> pd.DataFrame:
    return pd.DataFrame({"row": pd.Series(dtype="int64"), "column": [], "check": [], "value": []})


# --------------------------------------------------------------------------------------------
# The ingestion step
# --------------------------------------------------------------------------------------------


def ingest(
    source: str | Path,
    *,
    max_bad_share: float = DEFAULT_MAX_BAD_SHARE,
    table: str | None = None,
    now: pd.Timestamp | None = None,
    max_csv_bytes: int | None = None,
) -> IngestResult:
    """Read ``source`` and split it into good rows and a quarantine (see ``split_valid``)."""
    t0 = time.perf_counter()
    raw, fingerprint = read_transactions(source, table=table, max_csv_bytes=max_csv_bytes)
    return split_valid(
        raw,
        source=display_source(source),
        fingerprint=fingerprint,
        max_bad_share=max_bad_share,
        now=now,
        started=t0,
    )


def display_source(source: str | Path) -> str:
    """The source as it may be shown: a database URL loses its credentials."""
    return str(source).split("@")[-1] if is_sql_url(source) else str(source)


def split_valid(
    raw: pd.DataFrame,
    *,
    source: str,
    fingerprint: str,
    max_bad_share: float = DEFAULT_MAX_BAD_SHARE,
    now: pd.Timestamp | None = None,
    started: float | None = None,
) -> IngestResult:
    """Validate ``raw`` lazily and split it into good rows and a quarantine.

    Raises ``IngestError`` on a structural problem or when more than ``max_bad_share`` of the
    rows fail; in that second case the error carries the result (``exc.result``) so the
    quarantine can still be written for the operator.
    """
    t0 = started if started is not None else time.perf_counter()
    src = source
    raw = raw.reset_index(drop=True)
    raw, layout = conform_columns(raw, src)
    typed, fails = validate_transactions(raw, now=now)
    bad_rows = np.unique(fails["row"].to_numpy()) if len(fails) else np.array([], dtype=int)
    good = np.ones(len(raw), dtype=bool)
    good[bad_rows] = False
    data = typed.loc[good].reset_index(drop=True) if len(bad_rows) else typed
    for col in _INTEGER_COLUMNS:
        data[col] = data[col].astype("int64")
    quarantine = fails.assign(row_number=fails["row"] + 1)[QUARANTINE_COLUMNS]
    quarantined_rows = raw.iloc[bad_rows].astype("str").assign(row_number=bad_rows + 1)
    n, n_bad = len(raw), len(bad_rows)
    report: dict[str, Any] = {
        "source": src,
        "rows": n,
        "valid": n - n_bad,
        "quarantined": n_bad,
        "bad_share": round(n_bad / n, 6) if n else 0.0,
        "fingerprint": fingerprint,
        "max_bad_share": max_bad_share,
        "failures_by_check": failure_summary(quarantine),
        "extra_columns": layout["extra_columns"],
        "columns_reordered": bool(layout["reordered"]),
        "seconds": round(time.perf_counter() - t0, 3),
    }
    result = IngestResult(data, quarantine.reset_index(drop=True), quarantined_rows, report)
    log.info(
        "ingested %s: %d rows, %d valid, %d quarantined (%.2f%%)",
        src,
        n,
        n - n_bad,
        n_bad,
        100 * report["bad_share"],
    )
    if n and n_bad / n > max_bad_share:
        err = IngestError(
            src,
            f"{n_bad} of {n} rows ({n_bad / n:.2%}) fail validation, above the "
            f"{max_bad_share:.2%} threshold; top failures: {top_failures(quarantine)}",
            "correct the source (the quarantine report lists every bad row) or raise "
            "--max-bad-share",
        )
        err.result = result  # type: ignore[attr-defined]
        raise err
    return result


def failure_summary(quarantine: pd.DataFrame) -> list[dict[str, Any]]:
    """Counts of failures per (column, check), most frequent first."""
    if quarantine.empty:
        return []
    counts = quarantine.groupby(["column", "check"]).size().sort_values(ascending=False)
    return [{"column": c, "check": k, "rows": int(v)} for (c, k), v in counts.items()]


def top_failures(quarantine: pd.DataFrame, n: int = 3) -> str:
    """A short human summary of the most frequent failures."""
    items = failure_summary(quarantine)[:n]
    return ", ".join(f"{i['column']} {i['check']} ({i['rows']})" for i in items) or "none"


def write_quarantine(result: IngestResult, out_dir: Path) -> dict[str, Path]:
    """Write the quarantine report (failures) and the raw bad rows beside the run's outputs."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {
        "quarantine": out_dir / "quarantine.csv",
        "quarantined_rows": out_dir / "quarantined_rows.csv",
    }
    result.quarantine.to_csv(paths["quarantine"], index=False)
    result.quarantined_rows.to_csv(paths["quarantined_rows"], index=False)
    return paths


def iter_messages(result: IngestResult) -> Iterable[str]:
    """Human-readable report lines."""
    r = result.report
    yield f"source       {r['source']}"
    yield f"fingerprint  {r['fingerprint']}"
    yield f"rows         {r['rows']:,}"
    yield f"valid        {r['valid']:,}"
    yield f"quarantined  {r['quarantined']:,} ({r['bad_share']:.2%})"
    for item in r["failures_by_check"][:10]:
        yield f"  {item['column']:<22} {item['check']:<34} {item['rows']:,}"
    if r["extra_columns"]:
        yield f"ignored extra columns: {', '.join(r['extra_columns'])}"
