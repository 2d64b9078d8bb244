"""The bad-input corpus: every door of the system gets hostile input and must fail loudly, safely
and with its documented kind of error, never crash, never lose a good row.

Three doors, one table each:

* transaction files (``credit.ingest.ingest``): a structural problem is one ``IngestError`` naming
  the file, the problem and the fix, raised before anything is processed; a bad value is a
  quarantined row (row number, column, check, value) while every other row goes on unchanged:
  ``valid + quarantined == rows in the file`` and each row not broken on purpose comes out valid
  and equal to the same row of the untouched file;
* the API (Flask test client on a real registry): one JSON error shape, the documented status
  and ``error.code``, never a 500, and never the caller's values echoed back;
* the registry (``registry.Registry`` and the API serving from it): a tampered, missing or
  untrusted artifact or an unknown version is refused with its exception class, and the API
  keeps serving the last good champion.

The end of the file checks the security claims the corpus relies on: no customer value or secret
in the logs, SQL only through bound parameters, the per-request time budget. Row-level
ingestion checks one by one, API protocol errors and registry integrity also have their own
tests beside the code (tests/unit/test_ingest.py, tests/integration/test_api.py, tests/integration/test_registry.py); this
file is the inventory across doors (``CORPUS_SIZE`` counts it).
"""

from __future__ import annotations

import ast
import gzip
import json
import logging
import os
import re
import shutil
import time
import tracemalloc
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from builders import (
    ADMIN_AUTH,
    ADMIN_TOKEN,
    MODEL_NAME,
    ROOT,
    SAMPLE_HEAD,
    World,
    build_world,
    last_json,
    run_python,
    transactions_json,
)
from flask.testing import FlaskClient

from api import create_app
from credit.ingest import IngestError, IngestResult, TooManyBadRowsError, ingest
from schemas import vocab

GIB = 1024**3


# =============================================================================================
# Door 1: transaction files
# =============================================================================================


@pytest.fixture(scope="module")
def head(sample_head_path: Path) -> pd.DataFrame:
    """The 54 real rows as strings, exactly as in the file."""
    return pd.read_csv(sample_head_path, dtype=str, keep_default_na=False)


@pytest.fixture(scope="module")
def reference(sample_head_path: Path) -> pd.DataFrame:
    """The untouched file's valid rows, typed, by TransactionId (what good rows must equal)."""
    return ingest(sample_head_path).data.set_index("TransactionId")


def _csv(df: pd.DataFrame, path: Path, **kw: Any) -> Path:
    df.to_csv(path, index=False, **kw)
    return path


def _lines(df: pd.DataFrame) -> list[str]:
    return df.to_csv(index=False).splitlines()


def _write_lines(lines: list[str], path: Path) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


# -- structural problems: one IngestError, fast, nothing processed ------------------------------


def _sparse(path: Path, prefix: bytes, size: int) -> Path:
    """A file of ``size`` bytes that costs no disk: ``prefix`` then a hole."""
    with path.open("wb") as fh:
        fh.write(prefix)
    os.truncate(path, size)
    return path


def _big_text_prefix(head: pd.DataFrame) -> bytes:
    """Over 64 KiB of genuine CSV (more than the binary sniff reads), then a hole."""
    body = "\n".join(_lines(head)[1:])
    text = _lines(head)[0] + "\n" + "\n".join([body] * 20) + "\n"
    assert len(text) > 64 * 1024
    return text.encode()


STRUCTURAL: dict[str, tuple[Callable[[pd.DataFrame, Path], Path | str], str]] = {
    "missing file": (lambda h, d: d / "nope.csv", "does not exist"),
    "empty file": (lambda h, d: _write_bytes(d / "e.csv", b""), r"empty \(0 bytes\)"),
    "blank lines only": (lambda h, d: _write_bytes(d / "b.csv", b"\n \n\n"), "no header or rows"),
    "header only": (
        lambda h, d: _write_bytes(d / "h.csv", (",".join(vocab.RAW_COLUMNS) + "\n").encode()),
        "header but no rows",
    ),
    "binary (PNG) named .csv": (
        lambda h, d: _write_bytes(d / "p.csv", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" * 50),
        "binary",
    ),
    "gzip-compressed CSV named .csv": (
        lambda h, d: _write_bytes(d / "g.csv", gzip.compress(h.to_csv(index=False).encode())),
        "binary",
    ),
    "UTF-16 encoding": (
        lambda h, d: _write_bytes(d / "u16.csv", h.to_csv(index=False).encode("utf-16")),
        "UTF-16/UTF-32 text, not UTF-8",
    ),
    "latin-1 encoding": (
        lambda h, d: _csv(h.assign(ProductCategory="airtimé"), d / "l1.csv", encoding="latin-1"),
        "not UTF-8",
    ),
    "semicolon delimiter": (lambda h, d: _csv(h, d / "sc.csv", sep=";"), "delimiter is ';'"),
    "tab delimiter": (lambda h, d: _csv(h, d / "tab.csv", sep="\t"), r"delimiter is '\\t'"),
    "pipe delimiter": (lambda h, d: _csv(h, d / "pipe.csv", sep="|"), r"delimiter is '\|'"),
    "missing columns": (
        lambda h, d: _csv(h.drop(columns=["CustomerId", "Amount"]), d / "mc.csv"),
        "required column.*CustomerId, Amount",
    ),
    "duplicate column name": (
        lambda h, d: _write_lines(
            [_lines(h)[0] + ",Amount"] + [line + ",5" for line in _lines(h)[1:]], d / "dc.csv"
        ),
        "duplicate column.*Amount",
    ),
    "ragged row (an extra field)": (
        lambda h, d: _write_lines(
            _lines(h)[:6] + [_lines(h)[6] + ",surplus"] + _lines(h)[7:], d / "rag.csv"
        ),
        "cannot be parsed.*line 7",
    ),
    "unclosed quote": (
        lambda h, d: _write_lines(
            _lines(h)[:6] + ['"' + _lines(h)[6]] + _lines(h)[7:], d / "q.csv"
        ),
        "cannot be parsed",
    ),
    "2 GiB of zeros declared as CSV (sparse)": (
        lambda h, d: _sparse(d / "zeros.csv", b"", 2 * GIB),
        r"2\.0 GiB, above the 1\.0 GiB limit",
    ),
    "2 GiB CSV with a genuine text head (sparse)": (
        lambda h, d: _sparse(d / "big.csv", _big_text_prefix(h), 2 * GIB),
        r"2\.0 GiB, above the 1\.0 GiB limit",
    ),
    "2 GiB file without a suffix": (
        lambda h, d: _sparse(d / "export", _big_text_prefix(h), 2 * GIB + 1),
        "limit for CSV",
    ),
    "folder without Parquet files": (lambda h, d: _mkdir(d / "folder"), "no .parquet"),
    "corrupt Parquet": (
        lambda h, d: _write_bytes(d / "c.parquet", b"PAR1 definitely not parquet PAR1"),
        "Parquet file cannot be read",
    ),
    "unsupported suffix": (lambda h, d: _write_bytes(d / "x.xlsx", b"PK\x03\x04"), "unsupported"),
    "SQL table that does not exist": (
        lambda h, d: _sqlite_source(h, d) + "#no_such_table",
        "table 'no_such_table' does not exist",
    ),
}


def _write_bytes(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def _mkdir(path: Path) -> Path:
    path.mkdir()
    (path / "notes.txt").write_text("no parquet here")
    return path


def _sqlite_source(head: pd.DataFrame, folder: Path) -> str:
    import sqlalchemy as sa

    url = f"sqlite:///{folder / 'src.db'}"
    engine = sa.create_engine(url)
    head.to_sql("tx", engine, index=False)
    engine.dispose()
    return url


@pytest.mark.parametrize("case", list(STRUCTURAL))
def test_structural_problem_is_one_clear_error(
    case: str, head: pd.DataFrame, tmp_path: Path
) -> None:
    build, match = STRUCTURAL[case]
    source = build(head.copy(), tmp_path)
    start = time.perf_counter()
    tracemalloc.start()
    try:
        with pytest.raises(IngestError, match=match) as exc:
            ingest(source)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    # Fast and small: the 2 GiB files are refused from their size, never read into memory.
    assert time.perf_counter() - start < 5
    assert peak < 32 * 1024**2, f"{peak / 1024**2:.0f} MiB allocated"
    err = exc.value
    assert err.source and err.problem and err.fix, err
    assert str(err).startswith("cannot ingest ") and "Fix: " in str(err)


def test_csv_size_limit_is_configurable(
    head: pd.DataFrame, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _csv(head, tmp_path / "h.csv")
    with pytest.raises(IngestError, match=r"above the 1\.0 KiB limit.*BATI_MAX_CSV_BYTES"):
        ingest(path, max_csv_bytes=1024)
    monkeypatch.setenv("BATI_MAX_CSV_BYTES", "2048")
    with pytest.raises(IngestError, match=r"above the 2\.0 KiB limit"):
        ingest(path)
    monkeypatch.setenv("BATI_MAX_CSV_BYTES", str(10 * 1024 * 1024))
    assert ingest(path).report.valid == len(head)


def test_sql_source_error_never_shows_the_password() -> None:
    url = "postgresql+psycopg://bati:Sup3rSecretPw@127.0.0.1:9/bank?connect_timeout=2#tx"
    with pytest.raises(IngestError, match="database cannot be read") as exc:
        ingest(url)
    assert "Sup3rSecretPw" not in str(exc.value) and "bati:" not in str(exc.value)


def test_bad_share_over_threshold_fails_with_every_row_accounted(
    head: pd.DataFrame, tmp_path: Path
) -> None:
    bad = head.copy()
    bad.loc[[2, 9, 30], "Amount"] = "n/a"
    with pytest.raises(
        TooManyBadRowsError, match=r"3 of 54 rows .* above the 1\.00% threshold"
    ) as exc:
        ingest(_csv(bad, tmp_path / "t.csv"))
    result: IngestResult = exc.value.result
    assert result.report.valid + result.report.quarantined == 54
    assert sorted(result.quarantined_rows["row_number"]) == [3, 10, 31]


def test_too_big_file_fails_the_retrain_cli_in_seconds(head: pd.DataFrame, tmp_path: Path) -> None:
    """The nightly job's door: a 2 GiB 'CSV' is refused by the precheck, before Prefect starts."""
    path = _sparse(tmp_path / "nightly.csv", _big_text_prefix(head), 2 * GIB)
    env = {**os.environ, "BATI_DB_URL": f"sqlite:///{tmp_path / 'cli.db'}"}
    env.pop("PREFECT_API_URL", None)
    start = time.perf_counter()
    proc = run_python("-m", "flows.retrain", "--data", str(path), env=env, timeout=120)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    assert "above the 1.0 GiB limit" in last_json(proc)["error"]
    assert time.perf_counter() - start < 60


# -- row-level problems: quarantined, every other row kept unchanged ----------------------------


@dataclass(frozen=True)
class RowCase:
    """A file built from the real rows: which rows are broken and the check each must fail."""

    build: Callable[[pd.DataFrame], list[str]]  # the file's lines (header first)
    bad: dict[int, str] = field(default_factory=dict)  # 0-based data row -> check prefix
    unchanged: bool = True  # every good row must equal the untouched file's row


def _cell(row: int, column: str, value: str) -> Callable[[pd.DataFrame], list[str]]:
    def build(h: pd.DataFrame) -> list[str]:
        h = h.copy()
        h.loc[row, column] = value
        return _lines(h)

    return build


def _shifted_time(h: pd.DataFrame) -> list[str]:
    """Row 3's timestamp written in East Africa Time (+03:00): the same instant."""
    h = h.copy()
    t = pd.Timestamp(h.loc[3, "TransactionStartTime"]) + pd.Timedelta(hours=3)
    h.loc[3, "TransactionStartTime"] = t.tz_localize(None).isoformat() + "+03:00"
    return _lines(h)


def _conflicting_ids(h: pd.DataFrame) -> list[str]:
    h = h.copy()
    h.loc[8, "TransactionId"] = h.loc[7, "TransactionId"]
    return _lines(h)


def _short_row(h: pd.DataFrame) -> list[str]:
    lines = _lines(h)
    lines[1 + 12] = ",".join(lines[1 + 12].split(",")[:9])  # the last 7 fields are missing
    return lines


def _many(h: pd.DataFrame) -> list[str]:
    h = h.copy()
    h.loc[1, "Amount"] = "x"
    h.loc[3, "ChannelId"] = "ChannelId_77"
    h.loc[7, "FraudResult"] = "2"
    h.loc[7, "CurrencyCode"] = "EUR"
    return _lines(h)


#: Values too long for one table line below.
FEB_30 = "2018-02-30T00:00:00Z"
SQL_INJECTION = "CustomerId_1'; DROP TABLE model_versions;--"
FORMULA = '=HYPERLINK("http://evil","x")'
#: Single-cell cases: name -> (column, value written into data row 5, the check it must fail).
CELL_CASES: dict[str, tuple[str, str, str]] = {
    # wrong types
    "text in Amount": ("Amount", "abc", "parse_number"),
    "thousands separator in Amount": ("Amount", "1,000", "parse_number"),
    "NaN in Amount": ("Amount", "NaN", "parse_number"),
    "infinity in Value": ("Value", "inf", "parse_number"),
    "hex number in Amount": ("Amount", "0x10", "parse_number"),
    "boolean in FraudResult": ("FraudResult", "true", "parse_number"),
    "fraction in PricingStrategy": ("PricingStrategy", "2.5", "parse_number"),
    # nulls in required fields
    "empty CustomerId": ("CustomerId", "", "not_nullable"),
    "empty TransactionStartTime": ("TransactionStartTime", "", "not_nullable"),
    # impossible values
    "unknown currency": ("CurrencyCode", "USD", "isin"),
    "unknown country": ("CountryCode", "254", "isin"),
    "unknown channel": ("ChannelId", "ChannelId_9", "isin"),
    "category in the wrong case": ("ProductCategory", "Airtime", "isin"),
    "unknown fraud flag": ("FraudResult", "3", "isin"),
    "absurd amount": ("Amount", "5e12", "less_than_or_equal_to"),
    "negative Value": ("Value", "-5", "greater_than_or_equal_to"),
    "badly formed id": ("TransactionId", "TX-1", "str_matches"),
    # timestamps
    "timestamp in the future": ("TransactionStartTime", "2099-01-01T00:00:00Z", "not_in_future"),
    "timestamp before 2000": ("TransactionStartTime", "1970-01-01T00:00:00Z", "greater_than"),
    "unparseable timestamp": ("TransactionStartTime", "yesterday", "parse_timestamp"),
    "impossible date (30 February)": ("TransactionStartTime", FEB_30, "parse_timestamp"),
    "epoch seconds instead of ISO": ("TransactionStartTime", "1542248329", "parse_timestamp"),
    # Value against Amount
    "Value below |Amount|": ("Value", "1", "value_not_below_abs_amount"),
    # hostile strings
    "SQL injection in CustomerId": ("CustomerId", SQL_INJECTION, "str_matches"),
    "spreadsheet formula in ProductCategory": ("ProductCategory", FORMULA, "isin"),
    "script tag in ProviderId": ("ProviderId", "<script>alert(1)</script>", "str_matches"),
    "right-to-left override in CustomerId": ("CustomerId", "CustomerId_12\u202e", "str_matches"),
    "one-megabyte cell": ("ProductCategory", "x" * 1_000_000, "isin"),
}
ROW_CASES: dict[str, RowCase] = {
    **{
        name: RowCase(_cell(5, column, value), {5: check})
        for name, (column, value, check) in CELL_CASES.items()
    },
    "row missing its last fields": RowCase(_short_row, {12: "not_nullable"}),
    # duplicate ids
    "conflicting duplicate TransactionId": RowCase(
        _conflicting_ids, {7: "transaction_id_conflict", 8: "transaction_id_conflict"}
    ),
    "exact duplicate row (cleaning removes it)": RowCase(lambda h: _lines(h) + [_lines(h)[11]], {}),
    "timestamp with a +03:00 offset (accepted)": RowCase(_shifted_time, {}),
    "Value above |Amount| (a fee, accepted)": RowCase(_cell(5, "Value", "2100"), {}, False),
    # layout
    "header repeated mid-file": RowCase(
        lambda h: _lines(h)[:21] + [_lines(h)[0]] + _lines(h)[21:], {20: "str_matches"}
    ),
    "several broken rows at once": RowCase(_many, {1: "parse_number", 3: "isin", 7: "isin"}),
    "shuffled columns and an extra one (accepted)": RowCase(
        lambda h: _lines(h[list(reversed(h.columns))].assign(Comment="free text")), {}
    ),
    "blank lines between rows (accepted)": RowCase(
        lambda h: _lines(h)[:10] + ["", ""] + _lines(h)[10:], {}
    ),
    "CRLF line endings (accepted)": RowCase(lambda h: [line + "\r" for line in _lines(h)], {}),
}


def _file_rows(lines: list[str]) -> int:
    """Data rows pandas reads from ``lines`` (blank lines are not rows)."""
    return sum(1 for line in lines[1:] if line.strip())


@pytest.mark.parametrize("case", list(ROW_CASES))
def test_bad_rows_are_quarantined_and_no_good_row_is_lost(
    case: str, head: pd.DataFrame, reference: pd.DataFrame, tmp_path: Path
) -> None:
    spec = ROW_CASES[case]
    lines = spec.build(head.copy())
    path = tmp_path / "rows.csv"
    path.write_bytes(("\n".join(lines) + "\n").encode("utf-8"))
    result = ingest(path, max_bad_share=1.0)
    rows = _file_rows(lines)
    report = result.report
    # Nothing lost: every row of the file is either valid or quarantined, exactly once.
    assert report.rows == rows
    assert report.valid + report.quarantined == rows
    assert len(result.data) == report.valid
    assert sorted(result.quarantined_rows["row_number"]) == sorted(r + 1 for r in spec.bad)
    assert set(result.quarantine["row_number"]) == {r + 1 for r in spec.bad}
    for row, check in spec.bad.items():
        found = result.quarantine[result.quarantine["row_number"] == row + 1]
        assert found["check"].str.startswith(check).any(), (row, found)
    # Every good row comes out valid and equal to the same row of the untouched file.
    written = pd.read_csv(path, dtype=str, keep_default_na=False)["TransactionId"]
    expected = [t for i, t in enumerate(written) if i not in spec.bad]
    assert set(expected) <= set(reference.index)
    typed = result.data.set_index("TransactionId")
    assert sorted(typed.index) == sorted(expected)
    expected = list(dict.fromkeys(expected))
    if spec.unchanged:
        got = typed[~typed.index.duplicated()].loc[expected, list(reference.columns)]
        pd.testing.assert_frame_equal(got, reference.loc[expected])


def test_utf8_bom_is_accepted(head: pd.DataFrame, reference: pd.DataFrame, tmp_path: Path) -> None:
    path = _csv(head, tmp_path / "bom.csv", encoding="utf-8-sig")
    assert path.read_bytes().startswith(b"\xef\xbb\xbf")
    result = ingest(path)
    assert result.report.quarantined == 0
    pd.testing.assert_frame_equal(result.data.set_index("TransactionId"), reference)


def test_quarantine_values_reach_the_database_verbatim(head: pd.DataFrame, tmp_path: Path) -> None:
    """Hostile cell values are stored as data through bound parameters, never run as SQL."""
    from registry import Registry, read_quarantine, write_quarantine

    evil = "CustomerId_1'); DROP TABLE quarantine_rows;--"
    bad = head.copy()
    bad.loc[4, "CustomerId"] = evil
    result = ingest(_csv(bad, tmp_path / "evil.csv"), max_bad_share=1.0)
    with Registry(f"sqlite:///{tmp_path / 'q.db'}") as reg:
        write_quarantine(reg, "run-evil", "evil.csv", result.quarantine)
        stored = read_quarantine(reg, "run-evil")
    assert stored["value"].tolist() == [evil]


# =============================================================================================
# Door 2: the API
# =============================================================================================

LIMITS = {"max_batch": 5, "max_transactions": 10, "max_body_bytes": 64 * 1024}


@pytest.fixture(scope="module")
def api_world(tmp_path_factory: pytest.TempPathFactory) -> tuple[World, Path]:
    folder = tmp_path_factory.mktemp("bad-api")
    path = folder / "bati.db"
    return build_world(f"sqlite:///{path}", rows=1500, customers=80), path


@pytest.fixture(scope="module")
def api_client(api_world: tuple[World, Path]) -> Iterator[FlaskClient]:
    world, _ = api_world
    app = create_app(
        {"db_url": world.url, "admin_token": ADMIN_TOKEN, "start_background": False, **LIMITS}
    )
    yield app.test_client()
    app.extensions["bati"].close()


# CSV cells as the API receives them (issue 17 item 7): each edit of row 5 of the real rows,
# posted as the file's text, must fail (or pass) with file ingestion's own checks.
CSV_EDITS: list[tuple[str, str]] = [
    ("Amount", "abc"),
    ("Amount", "1,000"),
    ("Amount", "NaN"),
    ("Amount", "0x10"),
    ("Amount", "5e12"),
    ("Amount", " 1000 "),  # padded: accepted by both
    ("Value", "inf"),
    ("Value", "-5"),
    ("Value", "1"),
    ("FraudResult", "true"),
    ("FraudResult", "3"),
    ("PricingStrategy", "2.5"),
    ("PricingStrategy", "7"),
    ("CountryCode", "254"),
    ("CountryCode", "256.0"),  # accepted by both
    ("TransactionStartTime", "yesterday"),
    ("TransactionStartTime", "2018-02-30T00:00:00Z"),
    ("TransactionStartTime", "1542248329"),
    ("TransactionStartTime", "2099-01-01T00:00:00Z"),
    ("TransactionStartTime", "1970-01-01T00:00:00Z"),
    ("TransactionStartTime", "2018-11-15 02:18:49"),  # no T, no offset: UTC, accepted by both
]


@pytest.fixture(scope="module")
def csv_client(api_world: tuple[World, Path]) -> Iterator[FlaskClient]:
    """The API with its default limits (a real customer of the file has many rows)."""
    world, _ = api_world
    app = create_app({"db_url": world.url, "start_background": False})
    yield app.test_client()
    app.extensions["bati"].close()


def _customer_rows(h: pd.DataFrame, row: int) -> tuple[str, list[dict[str, str]], int]:
    """The customer of ``row``, all their rows as the CSV's text, and ``row``'s position."""
    customer = h.loc[row, "CustomerId"]
    mine = h[h["CustomerId"] == customer]
    return customer, mine.to_dict("records"), list(mine.index).index(row)


def test_csv_rows_are_accepted_as_text_and_score_as_typed_json(
    head: pd.DataFrame, csv_client: FlaskClient
) -> None:
    customer, rows, _ = _customer_rows(head, 5)
    as_text = csv_client.post("/v1/score", json={"customer_id": customer, "transactions": rows})
    assert as_text.status_code == 200, as_text.get_data(as_text=True)
    typed = transactions_json(ingest(SAMPLE_HEAD).data, customer)
    as_json = csv_client.post("/v1/score", json={"customer_id": customer, "transactions": typed})
    assert as_json.status_code == 200, as_json.get_data(as_text=True)
    drop = ("request_id",)
    assert {k: v for k, v in as_text.get_json().items() if k not in drop} == {
        k: v for k, v in as_json.get_json().items() if k not in drop
    }


@pytest.mark.parametrize(("column", "value"), CSV_EDITS)
def test_csv_text_fails_with_file_ingestions_checks(
    column: str, value: str, head: pd.DataFrame, csv_client: FlaskClient, tmp_path: Path
) -> None:
    h = head.copy()
    h.loc[5, column] = value
    path = _write_lines(_lines(h), tmp_path / "rows.csv")
    quarantine = ingest(path, max_bad_share=1.0).quarantine
    file_checks = set(quarantine.loc[quarantine["row_number"] == 6, "check"])
    customer, rows, pos = _customer_rows(h, 5)
    resp = csv_client.post("/v1/score", json={"customer_id": customer, "transactions": rows})
    if not file_checks:
        assert resp.status_code == 200, resp.get_data(as_text=True)
        return
    assert resp.status_code == 422, resp.get_data(as_text=True)
    details = resp.get_json()["error"]["details"]
    where = f"transactions[{pos}]."
    assert {d["field"] for d in details} <= {where + c for c in vocab.RAW_COLUMNS}
    assert {d["type"] for d in details} == file_checks
    assert value.strip() not in resp.get_data(as_text=True) or value.strip() in ("1", "3", "7")


@dataclass(frozen=True)
class ApiCase:
    """One request and the answer it must get."""

    path: str
    body: Any  # dict/list -> JSON; bytes/str -> raw body; callable(world) -> JSON
    status: int
    code: str
    content_type: str | None = "application/json"
    headers: dict[str, str] = field(default_factory=dict)
    method: str = "POST"
    secrets: tuple[str, ...] = ()  # must not appear in the response
    field: str | None = None  # a details[].field the error must name


def invalid(
    body: Any, *, field: str | None = None, secrets: tuple[str, ...] = (), path: str = "/v1/score"
) -> ApiCase:
    """A request refused with 422 ``validation_error`` (naming ``field``, echoing no secret)."""
    return ApiCase(path, body, 422, "validation_error", secrets=secrets, field=field)


SQLI = "CustomerId_1' OR '1'='1"
XSS = "<script>alert('x')</script>"


def _tx(world: World, **change: Any) -> dict[str, Any]:
    """A scoreable one-customer request with the first transaction changed."""
    cid = world.customers()[0]
    tx = transactions_json(world.raw, cid)[:5]
    tx[0] = {**tx[0], **change}
    return {"customer_id": cid, "transactions": tx}


def _without(world: World, key: str) -> dict[str, Any]:
    body = _tx(world)
    del body["transactions"][0][key]
    return body


API_CASES: dict[str, ApiCase] = {
    # malformed JSON and content types
    "truncated JSON": ApiCase("/v1/score", b'{"customer_id": ', 400, "malformed_json"),
    "empty body": ApiCase("/v1/score", b"", 400, "malformed_json"),
    "NaN literal": ApiCase("/v1/score", b'{"customer_id": NaN}', 400, "malformed_json"),
    "invalid UTF-8": ApiCase("/v1/score", b'{"customer_id": "\xff\xfe"}', 400, "malformed_json"),
    "nested 20,000 deep": ApiCase(
        "/v1/score/batch", b"[" * 20_000 + b"]" * 20_000, 400, "malformed_json"
    ),
    "text/plain body": ApiCase(
        "/v1/score", b'{"customer_id": "CustomerId_1"}', 415, "unsupported_media_type", "text/plain"
    ),
    "no Content-Type": ApiCase(
        "/v1/score", b'{"customer_id": "CustomerId_1"}', 415, "unsupported_media_type", None
    ),
    "form-encoded body": ApiCase(
        "/v1/score",
        b"customer_id=CustomerId_1",
        415,
        "unsupported_media_type",
        "application/x-www-form-urlencoded",
    ),
    # wrong types
    "top-level array": invalid([{"customer_id": "CustomerId_1"}]),
    "customer_id is a number": invalid({"customer_id": 4406}, field="customer_id"),
    # "1000" as text is accepted as in the CSV (issue 17.7); text ingestion cannot parse is not.
    "Amount as text ingestion cannot parse": invalid(
        lambda w: _tx(w, Amount="1,000"), field="transactions[0].Amount"
    ),
    "FraudResult as a boolean": invalid(
        lambda w: _tx(w, FraudResult=True), field="transactions[0].FraudResult"
    ),
    "Amount overflowing to infinity": invalid(
        lambda w: re.sub(r'"Amount": [-0-9.e+]+', '"Amount": 1e999', json.dumps(_tx(w)), count=1),
        field="transactions[0].Amount",
    ),
    "transactions is null": invalid(
        {"customer_id": "CustomerId_1", "transactions": None}, field="transactions"
    ),
    "required transaction field missing": invalid(
        lambda w: _without(w, "BatchId"), field="transactions[0].BatchId"
    ),
    # unknown fields
    # An unknown key is the caller's text: the detail names the object holding it, not the key.
    "unknown top-level field": invalid(
        {"customer_id": "CustomerId_1", "is_admin_4406": True}, secrets=("is_admin_4406",)
    ),
    "unknown transaction field": invalid(
        lambda w: _tx(w, Secret_981="s3cr3t-value-981"),
        secrets=("s3cr3t-value-981", "Secret_981"),
        field="transactions[0]",
    ),
    "unknown key with markup and a customer's data": invalid(
        {"customer_id": "CustomerId_1", "<img src=x onerror=alert(1)>CUSTOMER-SECRET-4406": 1},
        secrets=("CUSTOMER-SECRET-4406", "onerror", "<img"),
    ),
    "unknown keys in every batch item": invalid(
        {"customers": [{"customer_id": "CustomerId_1", "k-4406-secret": 1}] * 5},
        secrets=("k-4406-secret",),
        field="customers[4]",
        path="/v1/score/batch",
    ),
    # training-data rules the JSON Schema cannot express
    "impossible date": invalid(
        lambda w: _tx(w, TransactionStartTime="2018-02-30T00:00:00Z"),
        field="transactions[0].TransactionStartTime",
    ),
    "timestamp in the future": invalid(
        lambda w: _tx(w, TransactionStartTime="2999-01-01T00:00:00Z"),
        field="transactions[0].TransactionStartTime",
    ),
    "Value below |Amount|": invalid(
        lambda w: _tx(w, Amount=765432.0, Value=1.0),
        secrets=("765432",),
        field="transactions[0].Value",
    ),
    "transaction of another customer": invalid(
        lambda w: _tx(w, CustomerId="CustomerId_424242"),
        secrets=("424242",),
        field="transactions[0].CustomerId",
    ),
    "as_of without transactions": invalid(
        {"customer_id": "CustomerId_1", "as_of": "2019-01-01T00:00:00Z"}, field="as_of"
    ),
    "as_of in 1900": invalid(lambda w: {**_tx(w), "as_of": "1900-01-01T00:00:00Z"}, field="as_of"),
    # injection
    "SQL injection in customer_id": invalid({"customer_id": SQLI}, secrets=("OR '1'='1",)),
    "SQL injection in a batch": invalid(
        {"customers": [{"customer_id": "CustomerId_1; DELETE FROM scores"}]},
        secrets=("DELETE FROM",),
        field="customers[0].customer_id",
        path="/v1/score/batch",
    ),
    "SQL injection in the admin actor": ApiCase(
        "/v1/models/2/promote",
        {"actor": "x'; DROP TABLE model_versions;--", "reason": "because"},
        422,
        "validation_error",
        headers=ADMIN_AUTH,
        secrets=("DROP TABLE",),
        field="actor",
    ),
    "script in customer_id": invalid({"customer_id": XSS}, secrets=("script>", "alert(")),
    "script in ProductCategory": invalid(
        lambda w: _tx(w, ProductCategory=XSS),
        secrets=("script>", "alert("),
        field="transactions[0].ProductCategory",
    ),
    "script in the request id header": ApiCase(
        "/v1/score",
        {"customer_id": "CustomerId_99999999"},
        404,
        "unknown_customer",
        headers={"X-Request-ID": XSS},
        secrets=("script>",),
    ),
    # unicode
    "Arabic-Indic digits in customer_id": invalid(
        {"customer_id": "CustomerId_\u0664\u0664\u0660\u0666"}
    ),
    "full-width digits in customer_id": invalid({"customer_id": "CustomerId_\uff14\uff14"}),
    "emoji in customer_id": invalid({"customer_id": "CustomerId_\U0001f4b0"}),
    "NUL character in customer_id": invalid({"customer_id": "CustomerId_1\u0000"}),
    "trailing newline in customer_id": invalid({"customer_id": "CustomerId_1\n"}),
    "accented category": invalid(
        lambda w: _tx(w, ProductCategory="airtimé"), field="transactions[0].ProductCategory"
    ),
    "10,000-character customer_id": invalid(
        {"customer_id": "CustomerId_" + "7" * 10_000}, secrets=("7" * 100,)
    ),
    # sizes and limits
    "empty batch": invalid({"customers": []}, path="/v1/score/batch"),
    "batch over the limit": invalid(
        {"customers": [{"customer_id": f"CustomerId_{i}"} for i in range(6)]},
        field="customers",
        path="/v1/score/batch",
    ),
    "transactions over the limit": invalid(
        lambda w: {
            "customer_id": w.customers()[0],
            "transactions": [transactions_json(w.raw, w.customers()[0])[0]] * 11,
        },
        field="transactions",
    ),
    "body over the size limit": ApiCase(
        "/v1/score/batch", b'{"customers": [' + b" " * (70 * 1024) + b"]}", 413, "payload_too_large"
    ),
    "duplicate customer with transactions in a batch": invalid(
        lambda w: {"customers": [_tx(w), _tx(w)]},
        field="customers[1].customer_id",
        path="/v1/score/batch",
    ),
    # unknown things
    "unknown customer": ApiCase(
        "/v1/score",
        {"customer_id": "CustomerId_31415926"},
        404,
        "unknown_customer",
        secrets=("31415926",),
    ),
    "unknown route": ApiCase("/v1/scores", {"customer_id": "CustomerId_1"}, 404, "not_found"),
    "wrong method": ApiCase("/v1/score", None, 405, "method_not_allowed", method="GET"),
    "SQL in the version path": ApiCase(
        "/v1/models/1%20OR%201=1/promote", {"actor": "a", "reason": "why"}, 404, "not_found"
    ),
    "huge version number": ApiCase(
        f"/v1/models/{2**70}/promote",
        {"actor": "ops", "reason": "why not"},
        404,
        "unknown_version",
        headers=ADMIN_AUTH,
    ),
    # admin
    "admin without a token": ApiCase(
        "/v1/models/rollback", {"actor": "ops", "reason": "test"}, 401, "unauthorized"
    ),
    "admin with a wrong token": ApiCase(
        "/v1/models/rollback",
        {"actor": "ops", "reason": "test"},
        403,
        "forbidden",
        headers={"Authorization": "Bearer not-the-token"},
        secrets=("not-the-token",),
    ),
    "admin token in the query string": ApiCase(
        f"/v1/models/rollback?token={ADMIN_TOKEN}",
        {"actor": "ops", "reason": "test"},
        401,
        "unauthorized",
        secrets=(ADMIN_TOKEN,),
    ),
}


def assert_json_error(resp: Any, status: int, code: str) -> dict[str, Any]:
    """The one documented error shape, with the expected status and code."""
    text = resp.get_data(as_text=True)
    assert resp.status_code == status, text[:500]
    assert resp.mimetype == "application/json"
    body = resp.get_json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message", "details"}
    assert body["error"]["code"] == code, body
    assert "Traceback" not in text and "internal_error" not in text
    return body["error"]


@pytest.mark.parametrize("case", list(API_CASES))
def test_api_answers_bad_requests_with_documented_errors(
    case: str, api_client: FlaskClient, api_world: tuple[World, Path]
) -> None:
    spec = API_CASES[case]
    world, _ = api_world
    body = spec.body(world) if callable(spec.body) else spec.body
    kwargs: dict[str, Any] = {"headers": spec.headers}
    if isinstance(body, bytes | str):
        kwargs["data"] = body
        kwargs["content_type"] = spec.content_type
    elif body is not None:
        kwargs["json"] = body
    resp = api_client.open(spec.path, method=spec.method, **kwargs)
    err = assert_json_error(resp, spec.status, spec.code)
    text = resp.get_data(as_text=True) + str(resp.headers)
    for secret in spec.secrets:
        assert secret not in text, (secret, text[:300])
    if spec.field is not None:
        assert spec.field in {d["field"] for d in err["details"]}, err
    # The API is still healthy after every case (no crash, no poisoned state).
    assert api_client.get("/ready").status_code == 200


def test_sql_injection_in_free_text_is_stored_as_data(
    api_world: tuple[World, Path], tmp_path: Path
) -> None:
    """The admin ``reason`` is free text: it is stored verbatim through bound parameters."""
    from registry import Registry

    _, template = api_world
    shutil.copyfile(template, tmp_path / "bati.db")
    url = f"sqlite:///{tmp_path / 'bati.db'}"
    app = create_app({"db_url": url, "admin_token": ADMIN_TOKEN, "start_background": False})
    reason = "Robert'); DROP TABLE model_versions;-- <script>alert(1)</script>"
    try:
        resp = app.test_client().post(
            "/v1/models/2/promote", json={"actor": "ops", "reason": reason}, headers=ADMIN_AUTH
        )
        assert resp.status_code == 200, resp.get_data(as_text=True)
        assert resp.headers["X-Content-Type-Options"] == "nosniff"
    finally:
        app.extensions["bati"].close()
    with Registry(url) as reg:
        assert [v.version for v in reg.list_versions(MODEL_NAME)] == [1, 2]
        assert reg.champion(MODEL_NAME).decision_reason == reason
        assert reg.events(MODEL_NAME)[-1].reason == reason


def test_request_over_its_time_budget_is_refused_not_hung(
    api_world: tuple[World, Path],
) -> None:
    """Customers with transactions and distinct ``as_of`` cost one feature build each: the
    budget (BATI_REQUEST_TIMEOUT_SECONDS) turns an over-expensive batch into a 413."""
    world, _ = api_world
    app = create_app(
        {"db_url": world.url, "start_background": False, "request_timeout_seconds": 0.001}
    )
    items = []
    for cid in world.customers()[:20]:
        tx = transactions_json(world.raw, cid)[:3]
        items.append({"customer_id": cid, "transactions": tx})
    try:
        client = app.test_client()
        start = time.perf_counter()
        resp = client.post("/v1/score/batch", json={"customers": items})
        assert_json_error(resp, 413, "request_too_expensive")
        assert time.perf_counter() - start < 2
        # By-id scoring is a lookup: never refused by the budget.
        ok = client.post("/v1/score", json={"customer_id": world.customers()[0]})
        assert ok.status_code == 200
    finally:
        app.extensions["bati"].close()


# =============================================================================================
# Door 3: the registry
# =============================================================================================


@pytest.fixture
def private_world(api_world: tuple[World, Path], tmp_path: Path) -> World:
    """A private copy of the module's registry (v1 champion, v2 candidate, snapshot)."""
    base, template = api_world
    shutil.copyfile(template, tmp_path / "bati.db")
    copy = World(**{**base.__dict__})
    copy.url = f"sqlite:///{tmp_path / 'bati.db'}"
    return copy


def _replace_artifact(url: str, version_id: int, change: Callable[[bytes], bytes | None]) -> None:
    """Replace (or delete, when ``change`` returns None) a stored artifact behind the registry
    (the database refuses DELETE: this switches its guards off, as only a DBA could)."""
    from registry.testing import replace_artifact

    replace_artifact(url, version_id, change)


def _flip(blob: bytes) -> bytes:
    out = bytearray(blob)
    out[len(out) // 2] ^= 0x01
    return bytes(out)


REGISTRY_CASES: dict[str, tuple[Callable[[bytes], bytes | None], str]] = {
    "one flipped bit in the artifact": (_flip, "ArtifactTampered"),
    "truncated artifact": (lambda b: b[: len(b) // 2], "ArtifactTampered"),
    "artifact replaced by another file": (lambda b: b"PK\x03\x04 forged zip", "ArtifactTampered"),
    "artifact row deleted": (lambda b: None, "ArtifactMissing"),
}


@pytest.mark.parametrize("case", list(REGISTRY_CASES))
def test_bad_artifact_is_refused_and_the_api_keeps_the_old_champion(
    case: str, private_world: World
) -> None:
    import registry.errors
    from registry import Registry

    change, error = REGISTRY_CASES[case]
    world = private_world
    app = create_app({"db_url": world.url, "admin_token": ADMIN_TOKEN, "start_background": False})
    state = app.extensions["bati"]
    client = app.test_client()
    try:
        assert state.holder.current.version == 1
        _replace_artifact(world.url, world.versions[2].id, change)
        with Registry(world.url) as reg, pytest.raises(getattr(registry.errors, error)):
            reg.load_model(MODEL_NAME, 2, use_cache=False)
        # The API is asked to serve the damaged version: refused before it becomes champion.
        resp = client.post(
            "/v1/models/2/promote", json={"actor": "ops", "reason": "test"}, headers=ADMIN_AUTH
        )
        err = assert_json_error(resp, 409, "promotion_refused")
        assert "v2 refused" in err["message"] and error in err["message"]
        with Registry(world.url) as reg:
            assert reg.champion(MODEL_NAME).version == 1  # nothing recorded
        assert state.holder.refresh() is False
        health = client.get("/health").get_json()
        assert health["served_version"] == 1
        scored = client.post("/v1/score", json={"customer_id": world.customers()[0]})
        assert scored.status_code == 200 and scored.get_json()["model_version"] == 1
    finally:
        state.close()


def test_unknown_version_and_model(private_world: World) -> None:
    from registry import Registry, VersionNotFound

    with Registry(private_world.url) as reg:
        with pytest.raises(VersionNotFound, match="no version 99"):
            reg.load_model(MODEL_NAME, 99)
        with pytest.raises(VersionNotFound, match="no model named"):
            reg.get_version("no-such-model", 1)
        with pytest.raises(VersionNotFound):
            reg.promote(MODEL_NAME, 0, actor="ops", reason="zero")
    app = create_app(
        {"db_url": private_world.url, "admin_token": ADMIN_TOKEN, "start_background": False}
    )
    try:
        resp = app.test_client().post(
            "/v1/models/99/promote", json={"actor": "ops", "reason": "n/a"}, headers=ADMIN_AUTH
        )
        assert_json_error(resp, 404, "unknown_version")
    finally:
        app.extensions["bati"].close()


def test_forged_digest_is_refused_by_the_database(private_world: World) -> None:
    """Rewriting the bytes or the registered sha256, or deleting a version or its artifact
    (to re-insert another), is refused by the database's triggers."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.exc import IntegrityError

    engine = create_engine(private_world.url)
    vid = private_world.versions[2].id
    for sql, refusal in (
        ("UPDATE model_versions SET artifact_sha256 = 'forged' WHERE id = :v", "immutable"),
        ("UPDATE model_artifacts SET data = :d WHERE version_id = :v", "immutable"),
        ("DELETE FROM model_artifacts WHERE version_id = :v", "never deleted"),
        ("DELETE FROM model_versions WHERE id = :v", "never deleted"),
    ):
        with pytest.raises(IntegrityError, match=refusal), engine.begin() as conn:
            conn.execute(text(sql), {"v": vid, "d": b"evil"})
    engine.dispose()


def test_corrupt_bytes_with_a_matching_digest_are_not_deserialised() -> None:
    from registry.artifacts import load_artifact, sha256_hex
    from registry.errors import RegistryError

    data = b"PK\x03\x04 not a skops file"
    with pytest.raises(RegistryError, match="cannot be deserialised"):
        load_artifact(data, expected_sha256=sha256_hex(data), label="corrupt")


def test_untrusted_and_dangerous_types_are_refused(tmp_path: Path) -> None:
    from sklearn.preprocessing import FunctionTransformer

    from registry import ArtifactRefused, Registry

    with Registry(f"sqlite:///{tmp_path / 'r.db'}") as reg:
        for name, model, bad in (
            ("evil-eval", FunctionTransformer(func=eval), "builtins.eval"),
            ("evil-system", FunctionTransformer(func=os.system), "system"),
        ):
            reg.register(
                name,
                model,
                metrics={"roc_auc": 0.5},
                params={},
                features=["a"],
                input_schema={},
                data_fingerprint="x",
                n_rows=1,
            )
            with pytest.raises(ArtifactRefused, match=bad):
                reg.load_model(name, 1)


def test_registry_database_unreachable_is_503_without_details() -> None:
    url = "postgresql+psycopg://bati:Pw0rd-9931@127.0.0.1:9/registry?connect_timeout=2"
    app = create_app({"db_url": url, "admin_token": ADMIN_TOKEN, "start_background": False})
    try:
        client = app.test_client()
        err = assert_json_error(client.get("/v1/models"), 503, "database_unavailable")
        health = client.get("/health").get_json()
        for text in (json.dumps(err), json.dumps(health)):
            assert "Pw0rd-9931" not in text and "127.0.0.1" not in text
    finally:
        app.extensions["bati"].close()


#: Bad inputs tried by the single tests below the tables (one line each).
EXTRA_CASES = (
    "CSV size limit from the argument and the environment",
    "SQL source URL with a password",
    "bad rows above the threshold",
    "2 GiB file through the retrain command line",
    "hostile cell value into the quarantine table",
    "UTF-8 byte-order mark",
    "SQL and script injection in the free-text admin reason",
    "batch over its time budget",
    "load an unknown version",
    "read an unknown model",
    "promote version 0",
    "promote an unknown version through the API",
    "forged artifact digest",
    "rewritten artifact bytes",
    "artifact row deleted to re-insert another",
    "model version row deleted",
    "corrupt bytes with a matching digest",
    "eval inside an artifact",
    "os.system inside an artifact",
    "registry database unreachable",
)
#: Distinct bad inputs tried by this file (the note's "cases tried").
CORPUS_SIZE = (
    len(STRUCTURAL) + len(ROW_CASES) + len(API_CASES) + len(REGISTRY_CASES) + len(EXTRA_CASES)
)


def test_corpus_covers_the_three_doors() -> None:
    assert len(STRUCTURAL) + len(ROW_CASES) >= 40  # transaction files
    assert len(API_CASES) >= 40  # the API
    assert len(REGISTRY_CASES) >= 4  # the registry (ten more among EXTRA_CASES)
    assert len(set(EXTRA_CASES)) == len(EXTRA_CASES)
    assert CORPUS_SIZE >= 120


# =============================================================================================
# Security claims the corpus relies on
# =============================================================================================


def test_logs_never_hold_customer_values_or_secrets(
    api_world: tuple[World, Path], caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    """Scores, validation failures, unknown customers, admin calls and ingestion, with DEBUG
    logging everywhere: none of a distinctive customer record's values reaches a log line."""
    world, _ = api_world
    caplog.set_level(logging.DEBUG)
    cid = world.customers()[3]
    tx = transactions_json(world.raw, cid)
    marks = {
        "TransactionId": "TransactionId_918273645",
        "BatchId": "BatchId_564738291",
        "AccountId": "AccountId_192837465",
        "SubscriptionId": "SubscriptionId_746352819",
        "Amount": 987654.25,
        "Value": 987654.25,
    }
    record = {**tx[0], **marks}
    app = create_app({"db_url": world.url, "admin_token": ADMIN_TOKEN, "start_background": False})
    try:
        client = app.test_client()
        ok = client.post("/v1/score", json={"customer_id": cid, "transactions": [record, *tx[1:]]})
        assert ok.status_code == 200, ok.get_data(as_text=True)
        bad = {**record, "Value": 1.0, "ChannelId": "ChannelId_9"}
        assert (
            client.post("/v1/score", json={"customer_id": cid, "transactions": [bad]}).status_code
            == 422
        )
        assert (
            client.post("/v1/score", json={"customer_id": "CustomerId_55501239"}).status_code == 404
        )
        client.post(
            "/v1/models/rollback",
            json={"actor": "ops", "reason": "log check"},
            headers={"Authorization": "Bearer wrong-token-31337"},
        )
    finally:
        app.extensions["bati"].close()
    rows = pd.DataFrame([{**r, **marks} for r in tx[:3]])
    rows.loc[1, "CurrencyCode"] = "XXX-9183"
    ingest(_csv(rows, tmp_path / "log.csv"), max_bad_share=1.0)
    text = caplog.text
    assert text, "nothing was logged at all: the check would be vacuous"
    for value in (*map(str, marks.values()), "987654", "55501239", "XXX-9183", "31337"):
        assert value not in text, value
    assert ADMIN_TOKEN not in text


# Calls that run SQL text: their SQL argument must not be built from runtime values.
_SQL_CALLS = {"text", "execute", "exec_driver_sql", "executescript", "read_sql", "read_sql_query"}
# Interpolations checked by hand: names joined from a constant list, a constant loop over literal
# names, a uuid-based schema name.
_ALLOWED = {
    ("registry/migrations/versions/0001_initial.py", "columns"),
    ("registry/migrations/versions/0001_initial.py", "trigger"),
    ("registry/migrations/versions/0001_initial.py", "table"),
    ("registry/testing.py", "schema"),
    ("registry/testing.py", "name"),  # trigger names read back from sqlite_master (test helper)
    # Guard DDL: names from each revision's constant GUARDS / NO_TRUNCATE tuples.
    *(("registry/migrations/guards.py", n) for n in ("trigger", "table", "event", "message")),
    # Bulk insert: column names checked against the SQLAlchemy table first.
    *(("registry/ops.py", n) for n in ("names", "marks", "table")),
}


def _built_from(node: ast.AST, assigned: dict[str, list[ast.AST]]) -> set[str]:
    """Names a SQL string expression is built from (empty for a literal or a constant)."""
    if isinstance(node, ast.Name):
        return {n for value in assigned.get(node.id, []) for n in _built_from(value, {})}
    formatted = isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "format"
    interpolated = isinstance(node, ast.JoinedStr) and any(
        isinstance(v, ast.FormattedValue) for v in node.values
    )
    if interpolated or formatted or isinstance(node, ast.BinOp):
        return {n.id for n in ast.walk(node) if isinstance(n, ast.Name)}
    return set()


def test_sql_is_only_built_from_constants() -> None:
    """Every SQL string in the product code is a literal or interpolates module constants
    (UPPER_CASE) only; values always travel as bound parameters."""
    offenders, checked = [], 0
    for package in ("api", "credit", "registry", "flows", "tasks", "schemas", "sampledata"):
        for path in sorted((ROOT / package).rglob("*.py")):
            rel = str(path.relative_to(ROOT))
            tree = ast.parse(path.read_text(), rel)
            assigned: dict[str, list[ast.AST]] = {}
            for node in ast.walk(tree):
                if isinstance(node, ast.Assign):
                    for target in node.targets:
                        if isinstance(target, ast.Name):
                            assigned.setdefault(target.id, []).append(node.value)
            for node in ast.walk(tree):
                if not (isinstance(node, ast.Call) and node.args):
                    continue
                func = node.func
                name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
                if name not in _SQL_CALLS:
                    continue
                checked += 1
                for n in _built_from(node.args[0], assigned):
                    if not (n.isupper() or (rel, n) in _ALLOWED):
                        offenders.append(f"{rel}:{node.lineno} interpolates {n}")
    assert checked > 20  # the scan does see the registry's statements
    # ... and would see a value interpolated directly or through a variable
    probe = ast.parse("sql = f'SELECT * FROM t WHERE id = {user_id}'\ntext(sql)")
    found = {"sql": [probe.body[0].value]}
    assert _built_from(probe.body[1].value.args[0], found) == {"user_id"}
    assert _built_from(ast.parse("'a' % (v,)").body[0].value, {}) == {"v"}
    assert offenders == []
