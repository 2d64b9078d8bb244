"""Ingestion: validate transactions lazily, split good rows from quarantined ones.

Sources are opened by :mod:`credit.sources`; the valid rows become customer buckets
(:class:`credit.transactions.CustomerBuckets`): one in memory here, many on disk out of core
(:mod:`credit.outofcore`), with the same quarantine and the same :class:`IngestReport`.

The run fails (``IngestError``: one message naming the source, the problem and the fix) only on a
structural problem or when the share of bad rows passes a threshold. Otherwise every bad row is
kept in the quarantine with its source row number, column, failed check and value; good rows go on.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pandera.pandas as pa

from credit.csvsafe import write_csv
from credit.sources import IngestError, RawTransactions, open_transactions
from credit.sources import check_source as check_source  # re-exported: callers import it here
from credit.sources import fingerprint_file as fingerprint_file
from credit.sources import read_transactions as read_transactions
from credit.transactions import CustomerBuckets
from schemas import vocab
from schemas.transactions import TransactionsSchema

log = logging.getLogger(__name__)

DEFAULT_MAX_BAD_SHARE = 0.01
QUARANTINE_COLUMNS = ["row_number", "column", "check", "value"]
_NUMERIC_COLUMNS = ("Amount", "Value")
INTEGER_COLUMNS = ("CountryCode", "PricingStrategy", "FraudResult")
"""Raw columns parsed as numbers that must hold integers."""
_TIME_COLUMN = "TransactionStartTime"


class TooManyBadRowsError(IngestError):
    """More rows fail validation than allowed; ``result`` holds the quarantine all the same."""

    result: IngestResult

    def __init__(self, source: str, problem: str, fix: str, *, result: IngestResult) -> None:
        super().__init__(source, problem, fix)
        self.result = result


@dataclass
class IngestReport:
    """What ingestion found (JSON via :meth:`to_dict`); the streaming fields are set out of core."""

    source: str
    rows: int
    valid: int
    quarantined: int
    bad_share: float
    fingerprint: str
    max_bad_share: float
    failures_by_check: list[dict[str, Any]]
    extra_columns: list[str]
    columns_reordered: bool
    seconds: float
    mode: str | None = None
    partitions: int | None = None
    chunks: int | None = None
    buckets: int | None = None
    rows_read: int | None = None
    skipped_links: list[str] | None = None

    def to_dict(self) -> dict[str, Any]:
        """The report as JSON-ready data (fields that do not apply are left out)."""
        return {k: v for k, v in asdict(self).items() if v is not None}

    def summary(self) -> dict[str, Any]:
        """The figures the CLI prints and the flow records."""
        keys = ("source", "rows", "valid", "quarantined", "bad_share", "fingerprint", "seconds")
        return {k: getattr(self, k) for k in keys}


@dataclass
class IngestResult:
    """Valid typed rows (as customer buckets), the quarantine (one row per failed check) and the
    raw bad rows."""

    buckets: CustomerBuckets
    quarantine: pd.DataFrame
    quarantined_rows: pd.DataFrame
    report: IngestReport

    @property
    def data(self) -> pd.DataFrame:
        """Every valid row in one frame (the in-memory bucket itself when there is one)."""
        return self.buckets.to_frame()

    def summary(self) -> dict[str, Any]:
        """The JSON-friendly figures the CLI prints and the flow records."""
        return self.report.summary()


@dataclass(frozen=True)
class ColumnLayout:
    """How a source's columns differ from the 16 Xente columns: extra ones (ignored, reported)
    and whether the 16 come in another order."""

    extra_columns: tuple[str, ...] = ()
    reordered: bool = False

    @classmethod
    def of(cls, columns: Iterable[Any]) -> ColumnLayout:
        names = list(columns)
        extra = tuple(str(c) for c in names if c not in vocab.RAW_COLUMNS)
        return cls(extra, names[: len(vocab.RAW_COLUMNS)] != list(vocab.RAW_COLUMNS))

    def merged(self, other: ColumnLayout) -> ColumnLayout:
        """The layout of a source made of both parts (extra columns in first-seen order)."""
        new = tuple(c for c in other.extra_columns if c not in self.extra_columns)
        return ColumnLayout(self.extra_columns + new, self.reordered or other.reordered)


def conform_columns(df: pd.DataFrame, source: str) -> tuple[pd.DataFrame, ColumnLayout]:
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
    return df.loc[:, list(vocab.RAW_COLUMNS)], ColumnLayout.of(df.columns)


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
        if col in _NUMERIC_COLUMNS or col in INTEGER_COLUMNS:
            if pd.api.types.is_numeric_dtype(s) and not pd.api.types.is_bool_dtype(s):
                parsed = s.astype("float64")
            else:
                parsed = pd.to_numeric(s.astype("str").str.strip(), errors="coerce")
            bad = (parsed.isna() | ~np.isfinite(parsed.fillna(0))) & s.notna()
            if col in INTEGER_COLUMNS:
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


def typed_for_schema(df: pd.DataFrame) -> pd.DataFrame:
    """Rows with unparseable values get neutral placeholders so the schema can still run."""
    out = df.copy(deep=False)
    for col in INTEGER_COLUMNS:
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
    for col in (*_NUMERIC_COLUMNS, *INTEGER_COLUMNS, _TIME_COLUMN):
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
    schema_input = typed_for_schema(typed)
    failures += _schema_failures(schema_input, parse_nulls | nulls)
    # Timestamps in the future relative to the ingestion time (clock skew allowed).
    now = now or pd.Timestamp.now(tz="UTC")
    latest = now + pd.Timedelta(hours=vocab.FUTURE_SKEW_HOURS)
    future = (typed[_TIME_COLUMN] > latest).fillna(False).to_numpy()
    if future.any():
        failures.append(_failures(future, raw[_TIME_COLUMN], _TIME_COLUMN, "not_in_future"))
    fails = pd.concat(failures, ignore_index=True) if failures else empty_failures()
    fails = fails.drop_duplicates().sort_values(["row", "column", "check"], kind="stable")
    return typed, fails.reset_index(drop=True)


def empty_failures() -> pd.DataFrame:
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
    """Read ``source`` whole and split it into good rows and a quarantine (``split_valid``)."""
    t0 = time.perf_counter()
    raw = open_transactions(source, stream=False, table=table, max_csv_bytes=max_csv_bytes)
    return validate_frame(raw, max_bad_share=max_bad_share, now=now, started=t0)


def validate_frame(
    raw: RawTransactions,
    *,
    max_bad_share: float = DEFAULT_MAX_BAD_SHARE,
    now: pd.Timestamp | None = None,
    started: float | None = None,
) -> IngestResult:
    """Validate a source read whole (see :func:`~credit.sources.open_transactions`) lazily and
    split it into good rows (one in-memory customer bucket) and a quarantine.

    Raises ``IngestError`` on a structural problem, and :class:`TooManyBadRowsError` (which
    carries the result, so the quarantine can still be written) when more than
    ``max_bad_share`` of the rows fail.
    """
    if raw.frame is None:
        raise ValueError(f"{raw.source} was opened to be streamed, not read whole")
    t0 = started if started is not None else time.perf_counter()
    frame, layout = conform_columns(raw.frame.reset_index(drop=True), raw.source)
    typed, fails = validate_transactions(frame, now=now)
    data, bad_rows = valid_rows(typed, fails)
    return assemble_result(
        CustomerBuckets.of(data),
        fails,
        frame.iloc[bad_rows].astype("str"),
        raw,
        max_bad_share=max_bad_share,
        layout=layout,
        started=t0,
    )


def split_valid(
    raw: pd.DataFrame,
    *,
    source: str,
    fingerprint: str,
    max_bad_share: float = DEFAULT_MAX_BAD_SHARE,
    now: pd.Timestamp | None = None,
    started: float | None = None,
) -> IngestResult:
    """:func:`validate_frame` of a frame already read (``source`` names it)."""
    opened = RawTransactions(source, fingerprint, frame=raw)
    return validate_frame(opened, max_bad_share=max_bad_share, now=now, started=started)


def valid_rows(typed: pd.DataFrame, fails: pd.DataFrame) -> tuple[pd.DataFrame, np.ndarray]:
    """The rows of ``typed`` without a failure (integer columns as int64), and the bad rows."""
    bad_rows = np.unique(fails["row"].to_numpy()) if len(fails) else np.array([], dtype=np.int64)
    good = np.ones(len(typed), dtype=bool)
    good[bad_rows] = False
    data = typed.loc[good].reset_index(drop=True) if len(bad_rows) else typed
    for col in INTEGER_COLUMNS:
        data[col] = data[col].astype("int64")
    return data, bad_rows


def assemble_result(
    valid: CustomerBuckets,
    fails: pd.DataFrame,
    bad_raw: pd.DataFrame,
    raw: RawTransactions,
    *,
    max_bad_share: float,
    layout: ColumnLayout,
    started: float,
    rows_read: int | None = None,
    chunks: int | None = None,
) -> IngestResult:
    """The ingestion result and report of source ``raw`` from its ``valid`` rows, every failure
    (0-based global ``row``, sorted) and the raw bad rows (text, indexed by global row); the
    bad-share threshold is checked here.

    Streamed (``raw.parts``): ``rows_read`` below the source's rows means reading stopped early
    (the failures alone passed the threshold); ``chunks`` were validated.
    """
    source, n = raw.source, raw.rows
    quarantine = fails.assign(row_number=fails["row"] + 1)[QUARANTINE_COLUMNS]
    quarantine = quarantine.reset_index(drop=True)
    quarantined_rows = bad_raw.assign(row_number=bad_raw.index.to_numpy() + 1)
    n_bad = int(np.unique(fails["row"].to_numpy()).size)
    streamed = raw.streamed
    report = IngestReport(
        source=source,
        rows=n,
        valid=n - n_bad,
        quarantined=n_bad,
        bad_share=round(n_bad / n, 6) if n else 0.0,
        fingerprint=raw.fingerprint,
        max_bad_share=max_bad_share,
        failures_by_check=failure_summary(quarantine),
        extra_columns=list(layout.extra_columns),
        columns_reordered=layout.reordered,
        seconds=round(time.perf_counter() - started, 3),
        mode="out_of_core" if streamed else None,
        partitions=len(raw.parts) if streamed else None,
        chunks=chunks,
        buckets=len(valid.buckets) if streamed else None,
        rows_read=rows_read,
        skipped_links=raw.skipped_links or None,
    )
    result = IngestResult(valid, quarantine, quarantined_rows, report)
    log.info(
        "ingested %s: %d rows, %d valid, %d quarantined (%.2f%%)",
        source,
        n,
        n - n_bad,
        n_bad,
        100 * report.bad_share,
    )
    if report.skipped_links:
        log.warning(
            "%s: skipped %d symbolic link(s) that lead out of or back into the folder: %s",
            source,
            len(report.skipped_links),
            ", ".join(report.skipped_links[:10]),
        )
    stopped = rows_read is not None and rows_read < n
    if n and (stopped or n_bad / n > max_bad_share):
        if stopped:
            problem = (
                f"at least {n_bad} of {n} rows ({n_bad / n:.2%}) fail validation (reading "
                f"stopped after {rows_read} rows), above the {max_bad_share:.2%} threshold"
            )
        else:
            problem = (
                f"{n_bad} of {n} rows ({n_bad / n:.2%}) fail validation, above the "
                f"{max_bad_share:.2%} threshold"
            )
        raise TooManyBadRowsError(
            source,
            f"{problem}; top failures: {top_failures(quarantine)}",
            "correct the source (the quarantine report lists every bad row) or raise "
            "--max-bad-share",
            result=result,
        )
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
    """Write the quarantine report (failures) and the raw bad rows beside the run's outputs
    (formula-like cells neutralised: analysts open them in a spreadsheet)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {
        "quarantine": out_dir / "quarantine.csv",
        "quarantined_rows": out_dir / "quarantined_rows.csv",
    }
    write_csv(result.quarantine, paths["quarantine"])
    write_csv(result.quarantined_rows, paths["quarantined_rows"])
    return paths


def iter_messages(result: IngestResult) -> Iterable[str]:
    """Human-readable report lines."""
    r = result.report
    yield f"source       {r.source}"
    yield f"fingerprint  {r.fingerprint}"
    yield f"rows         {r.rows:,}"
    yield f"valid        {r.valid:,}"
    yield f"quarantined  {r.quarantined:,} ({r.bad_share:.2%})"
    if r.mode == "out_of_core":
        yield (
            f"out of core  {r.partitions} partition(s), {r.chunks} chunks, "
            f"{r.buckets} customer buckets"
        )
    for item in r.failures_by_check[:10]:
        yield f"  {item['column']:<22} {item['check']:<34} {item['rows']:,}"
    if r.extra_columns:
        yield f"ignored extra columns: {', '.join(r.extra_columns)}"
    if r.skipped_links:
        yield f"skipped symbolic links: {', '.join(r.skipped_links)}"
