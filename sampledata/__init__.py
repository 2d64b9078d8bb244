"""Deterministic demo data shaped like the Xente transactions (``python -m sampledata``).

``generate`` builds a DataFrame, ``write`` saves it as CSV or Parquet, ``write_partitioned`` as a
folder of Parquet parts, and ``ensure_demo_data`` generates the default demo file once.
"""

from sampledata.generator import (
    DEFAULT_CUSTOMERS,
    DEFAULT_ROWS,
    DEFAULT_SEED,
    GENERATOR_VERSION,
    generate,
)
from sampledata.reference import COLUMNS, SPAN_END, SPAN_START
from sampledata.writer import default_demo_path, ensure_demo_data, write, write_partitioned

__all__ = [
    "COLUMNS",
    "DEFAULT_CUSTOMERS",
    "DEFAULT_ROWS",
    "DEFAULT_SEED",
    "GENERATOR_VERSION",
    "SPAN_END",
    "SPAN_START",
    "default_demo_path",
    "ensure_demo_data",
    "generate",
    "write",
    "write_partitioned",
]
