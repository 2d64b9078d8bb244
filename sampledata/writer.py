"""Writing generated transactions: CSV like the real file, Parquet, partitioned Parquet.

CSV follows the real file's formatting: no quotes, ``\\n`` line ends, integral amounts without a
decimal point (``1000``, ``-67.25``) and ``2018-11-15T02:18:49Z`` timestamps. Parquet keeps the
frame's types: ``TransactionStartTime`` is a tz-aware ``timestamp[us, tz=UTC]`` column.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from sampledata import generator
from sampledata.reference import COLUMNS
from schemas.defaults import var_path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEMO_FILENAME = "xente_demo.parquet"
_TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
_SUFFIXES = (".csv", ".parquet")


def default_demo_path() -> Path:
    """``<var>/data/xente_demo.parquet``; ``<var>`` is ``$BATI_VAR_DIR`` or the project's ``var/``."""
    return var_path() / "data" / DEMO_FILENAME


def sidecar_path(path: Path) -> Path:
    """The JSON file next to a generated file that records how it was generated."""
    return path.with_name(path.name + ".params.json")


@contextmanager
def _atomic(path: Path) -> Iterator[Path]:
    """A temporary path beside ``path`` that replaces it only when writing succeeded."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}-{threading.get_ident()}.tmp")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _number_text(values: pa.ChunkedArray | pa.Array) -> pa.Array:
    """Shortest text of floats, integral values without a decimal point (1000, -67.25)."""
    return pc.cast(values, pa.string())


def csv_table(df: pd.DataFrame) -> pa.Table:
    """The frame as an all-text Arrow table formatted like the real CSV."""
    table = pa.Table.from_pandas(df.loc[:, list(COLUMNS)], preserve_index=False)
    columns = {}
    for name in COLUMNS:
        col = table.column(name)
        if pa.types.is_timestamp(col.type):
            secs = pc.cast(col, pa.timestamp("s", tz="UTC"), safe=False)
            col = pc.strftime(secs, format=_TIME_FORMAT)
        elif pa.types.is_floating(col.type):
            col = _number_text(col)
        columns[name] = col
    return pa.table(columns)


def write(df: pd.DataFrame, path: str | Path) -> Path:
    """Write transactions to ``path``: CSV or Parquet chosen by the suffix. Returns the path.

    The file appears atomically (written beside it, then renamed). CSV output is byte-identical
    for identical frames.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in _SUFFIXES:
        raise ValueError(f"unsupported output suffix {path.suffix!r}: use .csv or .parquet")
    with _atomic(path) as tmp:
        if suffix == ".csv":
            options = pacsv.WriteOptions(quoting_style="none", quoting_header="none")
            pacsv.write_csv(csv_table(df), tmp, write_options=options)
        else:
            table = pa.Table.from_pandas(df, preserve_index=False)
            pq.write_table(table, tmp, compression="snappy")
    return path


def write_partitioned(df: pd.DataFrame, folder: str | Path, partitions: int) -> list[Path]:
    """Write ``df`` as ``partitions`` Parquet parts (``part-00000.parquet``, ...) in ``folder``.

    Parts are consecutive row ranges of nearly equal size, so a time-sorted frame gives
    time-ordered parts; reading the folder back (``pd.read_parquet(folder)``) returns the rows in
    order. Earlier ``part-*.parquet`` files in the folder are removed first.
    """
    if partitions < 1:
        raise ValueError(f"partitions must be at least 1, got {partitions}")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("part-*.parquet"):
        old.unlink()
    table = pa.Table.from_pandas(df, preserve_index=False)
    bounds = np.linspace(0, table.num_rows, partitions + 1).round().astype(np.int64)
    paths = []
    for i in range(partitions):
        part = folder / f"part-{i:05d}.parquet"
        with _atomic(part) as tmp:
            pq.write_table(
                table.slice(bounds[i], bounds[i + 1] - bounds[i]), tmp, compression="snappy"
            )
        paths.append(part)
    return paths


def write_daily(df: pd.DataFrame, folder: str | Path, suffix: str = ".csv") -> list[Path]:
    """One file per calendar day (UTC) of ``df`` in ``folder``, named ``YYYY-MM-DD<suffix>``.

    The nightly flow replays them night by night: drop one day's file into a landing folder and
    run ``python -m flows.nightly``.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    days = pd.to_datetime(df["TransactionStartTime"], utc=True).dt.strftime("%Y-%m-%d")
    return [
        write(rows.reset_index(drop=True), folder / f"{day}{suffix}")
        for day, rows in df.groupby(days, sort=True)
    ]


def generation_params(rows: int, customers: int, seed: int) -> dict[str, object]:
    """What determines a generated file's content (recorded in its sidecar)."""
    return {
        "rows": int(rows),
        "customers": int(customers),
        "seed": int(seed),
        "generator_version": generator.GENERATOR_VERSION,
    }


def write_sidecar(path: Path, params: dict[str, object]) -> Path:
    side = sidecar_path(path)
    with _atomic(side) as tmp:
        tmp.write_text(json.dumps(params, indent=2, sort_keys=True) + "\n")
    return side


def _read_sidecar(path: Path) -> dict[str, object] | None:
    try:
        return json.loads(sidecar_path(path).read_text())
    except (OSError, ValueError):
        return None


def ensure_demo_data(
    path: str | Path | None = None,
    rows: int = generator.DEFAULT_ROWS,
    customers: int = generator.DEFAULT_CUSTOMERS,
    seed: int = generator.DEFAULT_SEED,
) -> Path:
    """The demo data file, generated once: skipped when present with the same parameters.

    ``path`` defaults to :func:`default_demo_path`. The parameters (and the generator version)
    are kept in a ``<file>.params.json`` sidecar; a missing or different sidecar regenerates.
    """
    path = Path(path) if path is not None else default_demo_path()
    params = generation_params(rows, customers, seed)
    if path.is_file() and _read_sidecar(path) == params:
        return path
    write(generator.generate(rows, customers, seed), path)
    write_sidecar(path, params)
    return path
