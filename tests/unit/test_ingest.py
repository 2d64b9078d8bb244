"""Ingestion: structural failures are one clear error; bad rows are quarantined, none lost."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from builders import ROOT

from credit.clean import clean_transactions
from credit.ingest import IngestError, TooManyBadRowsError, ingest, write_quarantine
from schemas import vocab


@pytest.fixture()
def head(sample_head_path: Path) -> pd.DataFrame:
    return pd.read_csv(sample_head_path, dtype=str, keep_default_na=False)


def _write(df: pd.DataFrame, path: Path) -> Path:
    df.to_csv(path, index=False)
    return path


def _assert_good_rows_kept(result, head: pd.DataFrame, bad: set[int]) -> None:
    """Every row not broken on purpose is among the valid rows, unchanged."""
    expected = set(head["TransactionId"]) - {head.loc[i, "TransactionId"] for i in bad}
    assert set(result.data["TransactionId"]) == expected
    assert result.report.valid + result.report.quarantined == len(head)


def test_real_rows_pass_with_nothing_quarantined(sample_head_path: Path) -> None:
    result = ingest(sample_head_path)
    assert result.report.rows == 54
    assert result.report.quarantined == 0
    assert len(result.data) == 54
    assert str(result.data["TransactionStartTime"].dtype) == "datetime64[us, UTC]"
    assert result.data["Amount"].dtype == "float64"
    assert len(result.report.fingerprint) == 64


def test_generated_demo_set_passes(demo_path: Path) -> None:
    result = ingest(demo_path)
    assert result.report.rows == 95_662
    assert result.report.quarantined == 0, result.report.failures_by_check


def test_fingerprint_depends_on_content(tmp_path: Path, head: pd.DataFrame) -> None:
    a = ingest(_write(head, tmp_path / "a.csv")).report.fingerprint
    b = ingest(_write(head, tmp_path / "b.csv")).report.fingerprint
    head.loc[0, "Amount"] = "1001"
    head.loc[0, "Value"] = "1001"
    c = ingest(_write(head, tmp_path / "c.csv")).report.fingerprint
    assert a == b != c


# --- structural problems: one clear error naming the file, the problem and the fix ---------


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(IngestError, match="does not exist") as exc:
        ingest(tmp_path / "nope.csv")
    assert "nope.csv" in str(exc.value) and "Fix:" in str(exc.value)


def test_empty_file(tmp_path: Path) -> None:
    (tmp_path / "empty.csv").write_bytes(b"")
    with pytest.raises(IngestError, match=r"empty \(0 bytes\)"):
        ingest(tmp_path / "empty.csv")


def test_header_only(tmp_path: Path) -> None:
    (tmp_path / "h.csv").write_text(",".join(vocab.RAW_COLUMNS) + "\n")
    with pytest.raises(IngestError, match="header but no rows"):
        ingest(tmp_path / "h.csv")


def test_binary_file(tmp_path: Path) -> None:
    (tmp_path / "b.csv").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00IHDR" * 100)
    with pytest.raises(IngestError, match="binary"):
        ingest(tmp_path / "b.csv")


def test_wrong_encoding(tmp_path: Path, head: pd.DataFrame) -> None:
    head.loc[2, "ProductCategory"] = "airtimé"
    path = tmp_path / "latin.csv"
    head.to_csv(path, index=False, encoding="latin-1")
    with pytest.raises(IngestError, match="not UTF-8") as exc:
        ingest(path)
    assert "iconv" in exc.value.fix


@pytest.mark.parametrize("sep", [";", "\t", "|"])
def test_wrong_delimiter(tmp_path: Path, head: pd.DataFrame, sep: str) -> None:
    path = tmp_path / "semi.csv"
    head.to_csv(path, index=False, sep=sep)
    with pytest.raises(IngestError, match="delimiter"):
        ingest(path)


def test_missing_required_column(tmp_path: Path, head: pd.DataFrame) -> None:
    path = _write(head.drop(columns=["Amount", "CustomerId"]), tmp_path / "m.csv")
    with pytest.raises(IngestError, match="required column.*CustomerId, Amount") as exc:
        ingest(path)
    assert "16 Xente columns" in exc.value.fix


def test_unreadable_parquet(tmp_path: Path) -> None:
    (tmp_path / "bad.parquet").write_bytes(b"PAR1 not really parquet")
    with pytest.raises(IngestError, match="Parquet file cannot be read"):
        ingest(tmp_path / "bad.parquet")


def test_unsupported_suffix(tmp_path: Path) -> None:
    (tmp_path / "x.xlsx").write_text("a")
    with pytest.raises(IngestError, match="unsupported file type"):
        ingest(tmp_path / "x.xlsx")


def test_bad_share_over_threshold_fails_but_keeps_quarantine(
    tmp_path: Path, head: pd.DataFrame
) -> None:
    head.loc[[1, 2], "Amount"] = "n/a"
    path = _write(head, tmp_path / "t.csv")
    with pytest.raises(
        TooManyBadRowsError, match=r"2 of 54 rows \(3\.70%\).*1\.00% threshold"
    ) as exc:
        ingest(path)
    failed = exc.value.result
    assert failed.report.quarantined == 2
    assert list(failed.quarantine["row_number"]) == [2, 3]
    # A higher threshold lets the same file through with the same split.
    result = ingest(path, max_bad_share=0.05)
    _assert_good_rows_kept(result, head, {1, 2})


# --- row-level problems: quarantined with row number, column, check and value --------------

ROW_CASES = [
    ("Amount", "abc", "Amount", "parse_number"),
    ("Amount", "", "Amount", "not_nullable"),
    ("TransactionStartTime", "yesterday", "TransactionStartTime", "parse_timestamp"),
    ("TransactionStartTime", "2099-01-01T00:00:00Z", "TransactionStartTime", "not_in_future"),
    ("TransactionStartTime", "1970-01-01T00:00:00Z", "TransactionStartTime", "greater_than"),
    ("CurrencyCode", "USD", "CurrencyCode", "isin"),
    ("CountryCode", "254", "CountryCode", "isin"),
    ("ProductCategory", "weapons", "ProductCategory", "isin"),
    ("ChannelId", "ChannelId_9", "ChannelId", "isin"),
    ("PricingStrategy", "2.5", "PricingStrategy", "parse_number"),
    ("PricingStrategy", "7", "PricingStrategy", "isin"),
    ("FraudResult", "3", "FraudResult", "isin"),
    ("CustomerId", "", "CustomerId", "not_nullable"),
    ("CustomerId", "Customer 12", "CustomerId", "str_matches"),
    ("CustomerId", "CustomerId_\u0661\u0662", "CustomerId", "str_matches"),  # Arabic-Indic digits
    ("CustomerId", "CustomerId_12\n", "CustomerId", "str_matches"),  # trailing newline
    ("TransactionId", "TX-1", "TransactionId", "str_matches"),
    ("Value", "1", "Value", "value_not_below_abs_amount"),
    ("Value", "-5", "Value", "greater_than_or_equal_to"),
    ("Amount", "5e12", "Amount", "less_than_or_equal_to"),
]


@pytest.mark.parametrize(("column", "value", "bad_column", "check"), ROW_CASES)
def test_bad_row_is_quarantined(
    tmp_path: Path, head: pd.DataFrame, column: str, value: str, bad_column: str, check: str
) -> None:
    row = 5
    head.loc[row, column] = value
    result = ingest(_write(head, tmp_path / "r.csv"), max_bad_share=0.05)
    q = result.quarantine
    assert set(q["row_number"]) == {row + 1}, q
    assert bad_column in set(q["column"])
    assert q["check"].str.startswith(check).any(), q
    assert list(result.quarantined_rows["row_number"]) == [row + 1]
    _assert_good_rows_kept(result, head, {row})


def test_many_failures_reported_at_once(tmp_path: Path, head: pd.DataFrame) -> None:
    head.loc[1, "Amount"] = "x"
    head.loc[3, "ChannelId"] = "ChannelId_77"
    head.loc[7, "FraudResult"] = "2"
    head.loc[7, "CurrencyCode"] = "EUR"
    result = ingest(_write(head, tmp_path / "many.csv"), max_bad_share=0.2)
    assert sorted(set(result.quarantine["row_number"])) == [2, 4, 8]
    assert len(result.quarantine) == 4  # both failures of row 8 are listed
    _assert_good_rows_kept(result, head, {1, 3, 7})


def test_new_provider_and_product_are_plausible(tmp_path: Path, head: pd.DataFrame) -> None:
    head.loc[0, "ProviderId"] = "ProviderId_42"
    head.loc[1, "ProductId"] = "ProductId_999"
    result = ingest(_write(head, tmp_path / "new.csv"))
    assert result.report.quarantined == 0


def test_conflicting_ids_quarantined_but_exact_duplicates_pass(
    tmp_path: Path, head: pd.DataFrame
) -> None:
    head.loc[4, "TransactionId"] = head.loc[3, "TransactionId"]
    dup = pd.concat([head, head.iloc[[10]]], ignore_index=True)
    result = ingest(_write(dup, tmp_path / "d.csv"), max_bad_share=0.05)
    assert set(result.quarantine["row_number"]) == {4, 5}
    assert set(result.quarantine["check"]) == {"transaction_id_conflict"}
    cleaned = clean_transactions(result.data)
    assert cleaned.report.duplicates_removed == 1
    assert len(cleaned.data) == 52


def test_extra_and_shuffled_columns(tmp_path: Path, head: pd.DataFrame) -> None:
    shuffled = head[list(reversed(head.columns))].assign(Comment="x")
    result = ingest(_write(shuffled, tmp_path / "s.csv"))
    assert result.report.quarantined == 0
    assert result.report.extra_columns == ["Comment"]
    assert result.report.columns_reordered is True
    assert list(result.data.columns) == list(vocab.RAW_COLUMNS)


def test_sql_table_source(tmp_path: Path, head: pd.DataFrame) -> None:
    import sqlalchemy as sa

    url = f"sqlite:///{tmp_path / 'src.db'}"
    head.to_sql("tx", sa.create_engine(url), index=False)
    result = ingest(url, table="tx")
    assert result.report.valid == 54
    with pytest.raises(IngestError, match="table 'nope' does not exist"):
        ingest(url + "#nope")


def test_write_quarantine_files(tmp_path: Path, head: pd.DataFrame) -> None:
    head.loc[2, "Amount"] = "oops"
    result = ingest(_write(head, tmp_path / "q.csv"), max_bad_share=0.05)
    paths = write_quarantine(result, tmp_path / "out")
    report = pd.read_csv(paths["quarantine"])
    assert report.to_dict("records") == [
        {"row_number": 3, "column": "Amount", "check": "parse_number", "value": "oops"}
    ]
    rows = pd.read_csv(paths["quarantined_rows"], dtype=str)
    assert rows.loc[0, "TransactionId"] == head.loc[2, "TransactionId"]


def test_quarantine_files_never_carry_spreadsheet_formulas(
    tmp_path: Path, head: pd.DataFrame
) -> None:
    """Issue 15.3: hostile cells reach quarantine.csv and quarantined_rows.csv as inert text."""
    hostile = ['=HYPERLINK("http://evil.example","click")', "=cmd|' /C calc'!A0", "@SUM(1)"]
    for row, value in enumerate(hostile):
        head.loc[row, "ProductCategory"] = value
    head.loc[3, "Amount"] = "-1000"
    head.loc[3, "CurrencyCode"] = "+USD"
    result = ingest(_write(head, tmp_path / "q.csv"), max_bad_share=0.5)
    paths = write_quarantine(result, tmp_path / "out")
    for path in paths.values():
        with path.open(newline="") as fh:
            cells = [cell for line in csv.reader(fh) for cell in line]
        assert not [c for c in cells if c.startswith(("=", "+", "@", "\t", "\r"))], path
        assert all(float(c) < 0 for c in cells if c.startswith("-")), path  # numbers only
    rows = pd.read_csv(paths["quarantined_rows"], dtype=str).set_index("row_number")
    assert list(rows.loc[["1", "2", "3"], "ProductCategory"]) == ["'" + v for v in hostile]
    assert rows.loc["4", "Amount"] == "-1000"  # a number stays a number
    assert rows.loc["4", "CurrencyCode"] == "'+USD"
    values = set(pd.read_csv(paths["quarantine"], dtype=str)["value"])
    assert {"'" + v for v in hostile} <= values and "'+USD" in values


def test_clean_output(sample_head_path: Path) -> None:
    cleaned = clean_transactions(ingest(sample_head_path).data)
    df = cleaned.data
    assert cleaned.report.constant_columns_dropped == ["CurrencyCode", "CountryCode"]
    assert df["TransactionStartTime"].is_monotonic_increasing
    assert df["TransactionStartTime"].dt.tz is not None
    assert df["TransactionId"].is_unique


# --- the command line -----------------------------------------------------------------------


def _cli(*args: str, env_tmp: Path) -> subprocess.CompletedProcess[str]:
    import os

    env = {**os.environ, "BATI_DB_URL": f"sqlite:///{env_tmp / 'cli.db'}"}
    return subprocess.run(
        [sys.executable, "-m", "tasks.ingest", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )


def test_cli_prints_json_last_line(tmp_path: Path, head: pd.DataFrame) -> None:
    head.loc[0, "Value"] = "abc"
    path = _write(head, tmp_path / "cli.csv")
    proc = _cli(
        str(path), "--out", str(tmp_path / "q"), "--max-bad-share", "0.05", env_tmp=tmp_path
    )
    assert proc.returncode == 0, proc.stderr
    last = json.loads(proc.stdout.strip().splitlines()[-1])
    assert {"rows", "valid", "quarantined", "fingerprint"} <= last.keys()
    assert (last["rows"], last["valid"], last["quarantined"]) == (54, 53, 1)
    assert (tmp_path / "q" / "quarantine.csv").exists()


def test_cli_structural_error_is_one_message(tmp_path: Path) -> None:
    proc = _cli(str(tmp_path / "missing.csv"), env_tmp=tmp_path)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert proc.stderr.strip().startswith("error: cannot ingest")
    assert "does not exist" in json.loads(proc.stdout.strip().splitlines()[-1])["error"]
