"""CSV files that are safe to open in a spreadsheet (no formula injection).

A text cell that begins with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return is read as a
formula by Excel, LibreOffice and Google Sheets (``=HYPERLINK(...)``, ``=cmd|' /C calc'!A0``).
Every CSV the project writes goes through :func:`write_csv`, which prefixes such cells with a
single quote (OWASP's advice); numbers, and text that is exactly a number such as ``-500``,
stay as they are.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")
_NUMBER = r"\s*[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?\s*"


def _neutralised(values: pd.Series) -> pd.Series:
    if not (pd.api.types.is_object_dtype(values) or pd.api.types.is_string_dtype(values)):
        return values  # numbers, booleans, timestamps
    text = values.str
    risky = text.startswith(FORMULA_TRIGGERS).fillna(False).astype(bool)
    if not risky.any():
        return values
    risky &= ~text.fullmatch(_NUMBER).fillna(False).astype(bool)
    return values.where(~risky, "'" + values[risky].astype(str))


def neutralise(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with every formula-like text cell prefixed by a single quote."""
    out = frame.copy(deep=False)
    for i in range(out.shape[1]):
        out.isetitem(i, _neutralised(out.iloc[:, i]))
    if pd.api.types.is_object_dtype(out.index) or pd.api.types.is_string_dtype(out.index):
        out.index = pd.Index(_neutralised(out.index.to_series()), name=out.index.name)
    return out


def write_csv(frame: pd.DataFrame, path: str | Path, *, index: bool = False, **kwargs: Any) -> Path:
    """Write ``frame`` as CSV to ``path`` with formula-like text cells neutralised.

    Lines end with CRLF (RFC 4180): Python's csv writer then quotes every cell holding a carriage
    return, which with pandas' default ``\n`` it leaves bare, so a spreadsheet would start a new
    row (and a formula) in the middle of the cell.
    """
    kwargs.setdefault("lineterminator", "\r\n")
    neutralise(frame).to_csv(path, index=index, **kwargs)
    return Path(path)
