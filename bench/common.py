"""Small helpers the benchmark scripts share."""

from __future__ import annotations

import json
from typing import Any


def emit(figures: Any, *summary: str) -> int:
    """Print the ``summary`` lines, then ``figures`` as the one JSON line that ``python -m
    bench`` reads (the last line of the output); returns the exit status, 0."""
    for line in summary:
        print(line)
    print(json.dumps(figures))
    return 0


def percentiles(values: list[float]) -> dict[str, float | None]:
    """p50/p95/p99 of durations in seconds, as milliseconds (None without values)."""
    if not values:
        return {"p50_ms": None, "p95_ms": None, "p99_ms": None}
    ordered = sorted(values)

    def pick(q: float) -> float:
        return round(1000 * ordered[min(len(ordered) - 1, int(q * len(ordered)))], 3)

    return {"p50_ms": pick(0.50), "p95_ms": pick(0.95), "p99_ms": pick(0.99)}
