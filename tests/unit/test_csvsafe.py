"""Every CSV the project writes is safe to open in a spreadsheet (issue 15.3)."""

from __future__ import annotations

import csv
import re
from pathlib import Path

import numpy as np
import pandas as pd

from credit.csvsafe import neutralise, write_csv

ROOT = Path(__file__).resolve().parents[2]
FORMULAS = ['=HYPERLINK("http://evil.example","x")', "=cmd|' /C calc'!A0", "@SUM(1)"]
HOSTILE = [*FORMULAS, "+1+cmd", "\tx", "\r=1"]


def _cells(path: Path) -> list[list[str]]:
    with path.open(newline="") as fh:
        return list(csv.reader(fh))


def test_formula_cells_are_quoted_and_numbers_stay_numbers(tmp_path: Path) -> None:
    frame = pd.DataFrame(
        {
            "text": [*HOSTILE, "-5", "plain", None],
            "number": [-5.0, -1.5, 0.0, 1.0, 2.0, 3.0, -7.25, 4.0, np.nan],
            "mixed": [{"C": 1}, "-x", 3, None, "a", "=b", "c", "d", "e"],
        }
    )
    rows = _cells(write_csv(frame, tmp_path / "out.csv"))
    text, number, mixed = zip(*rows[1:], strict=True)
    assert list(text[: len(HOSTILE)]) == ["'" + v for v in HOSTILE]
    assert text[len(HOSTILE) :] == ("-5", "plain", "")  # text that is a number is left alone
    assert number[:2] == ("-5.0", "-1.5")  # numbers are written as numbers
    assert mixed[1] == "'-x" and mixed[5] == "'=b" and mixed[0] == "{'C': 1}"
    assert frame.loc[0, "text"] == HOSTILE[0]  # the caller's frame is untouched


def test_a_carriage_return_inside_a_cell_cannot_start_a_row(tmp_path: Path) -> None:
    frame = pd.DataFrame({"a": ["x\r=cmd|' /C calc'!A0", "ok"], "b": [1, 2]})
    path = write_csv(frame, tmp_path / "cr.csv")
    assert _cells(path) == [["a", "b"], ["x\r=cmd|' /C calc'!A0", "1"], ["ok", "2"]]
    assert pd.read_csv(path)["a"].tolist() == frame["a"].tolist()


def test_string_dtype_and_index(tmp_path: Path) -> None:
    frame = pd.DataFrame(
        {"a": pd.array(["=1+1", "-2", None], dtype="string")},
        index=pd.Index(["@x", "ok", "-3"], name="id"),
    )
    out = neutralise(frame)
    assert out["a"].tolist()[:2] == ["'=1+1", "-2"] and pd.isna(out["a"].iloc[2])
    assert out.index.tolist() == ["'@x", "ok", "-3"]


def test_every_csv_writer_goes_through_write_csv() -> None:
    """No module of credit/, tasks/, flows/ or feed/ calls ``to_csv`` itself."""
    offenders = [
        f"{path.relative_to(ROOT)}:{n}"
        for folder in ("credit", "tasks", "flows", "feed")
        for path in sorted((ROOT / folder).rglob("*.py"))
        if path.name != "csvsafe.py"
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if re.search(r"\.to_csv\(|csv\.writer\(|DictWriter\(", line)
    ]
    assert offenders == []
