"""Benchmark of monitoring: PSI of every input and of the score for a large scored population.

    python -m bench.monitor                       # 330,000 customers x 80 inputs
    python -m bench.monitor --customers 1000000 --inputs 120

Builds the references on one population (as registration does), then computes the PSI of every
input and of the score for a second, shifted population (as the monitor flow does). Target: the
comparison of 330,000 customers x about 80 inputs in under 10 s and 1 GiB. The last stdout line
is a JSON object.
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from bench.common import emit  # noqa: E402
from credit.monitoring import build_references, feature_stability  # noqa: E402

TARGET_S = 10.0
TARGET_MIB = 1024


def population(customers: int, inputs: int, seed: int, shift: float = 0.0) -> pd.DataFrame:
    """Numeric inputs (lognormal, some missing) and a few categorical ones, plus a score."""
    rng = np.random.default_rng(seed)
    n_cat = max(1, inputs // 10)
    data: dict[str, np.ndarray] = {}
    for i in range(inputs - n_cat):
        x = rng.lognormal(3 + shift * (i % 3 == 0), 1, customers)
        x[rng.random(customers) < 0.02] = np.nan
        data[f"num_{i}"] = x
    for i in range(n_cat):
        data[f"cat_{i}"] = rng.choice(["a", "b", "c", "d", "e"], customers)
    data["score"] = np.clip(rng.normal(600 + 10 * shift, 50, customers), 300, 850)
    return pd.DataFrame(data)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.monitor", description=__doc__)
    parser.add_argument("--customers", type=int, default=330_000)
    parser.add_argument("--inputs", type=int, default=80)
    args = parser.parse_args(argv)
    reference = population(args.customers, args.inputs, seed=1)
    current = population(args.customers, args.inputs, seed=2, shift=0.5)
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    t0 = time.perf_counter()
    refs = build_references(reference)
    t1 = time.perf_counter()
    figures = feature_stability(refs, current)
    t2 = time.perf_counter()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    result = {
        "customers": args.customers,
        "inputs": args.inputs,
        "references_s": round(t1 - t0, 3),
        "psi_s": round(t2 - t1, 3),
        "peak_rss_mib": round(peak),
        "rss_before_mib": round(rss0),
        "max_psi": round(max(figures.values()), 4),
        "ok": (t2 - t1) < TARGET_S and peak < TARGET_MIB,
    }
    return emit(
        result,
        f"monitoring {args.customers:,} customers x {args.inputs} inputs: references "
        f"{result['references_s']:.2f} s, PSI of every input and the score {result['psi_s']:.2f} s "
        f"(target < {TARGET_S:.0f} s), peak RSS {result['peak_rss_mib']:,} MiB (target < "
        f"{TARGET_MIB:,} MiB, including both populations)",
    )


if __name__ == "__main__":
    raise SystemExit(main())
