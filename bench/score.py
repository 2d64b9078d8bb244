"""Benchmark of batch scoring: customers per second through ``CreditRiskModel.score_frame``.

    python -m bench.score                         # champion fitted here on 1,000,000 generated rows
    python -m bench.score --rows 10000000         # about 330,000 customers to score
    python -m bench.score --db-url URL --snapshot PATH   # a registry's champion, a stored snapshot

Batch scoring is what ``flows/score.py`` does per chunk of 50,000 customers: probability, score,
band and loan offer, without reason codes (``with_reasons=False``; ``--with-reasons`` adds them,
target >= 150,000 customers/s). ``--customers N`` tiles the snapshot to N customers (330,000 from
the demo-sized ``--rows 95662`` stands in for ``--rows 10000000``); ``--candidate`` picks the
family of the champion made here (``hist_gb``, ``scorecard``, ...) and ``--params`` its
parameters over the grid's first point (``clf__max_leaf_nodes=15``). The figure is the median of
``--repeats`` passes over the whole snapshot after one warm-up call; target >= 50,000 customers/s.
Without a registry the champion is made here the way the retrain flow makes it: the out-of-time
training table of the generated rows, ``hist_gb`` with the default grid's first point fitted on a
stratified sample of at most 50,000 customers. The last stdout line is a JSON object.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import pandas as pd  # noqa: E402

from schemas.defaults import DEFAULT_MODEL_NAME  # noqa: E402

TARGET_PER_S = 50_000
TARGET_WITH_REASONS_PER_S = 150_000  # issue 16.3: score_frame with reason codes
CHUNK = 50_000


def measure_scoring(
    model: Any,
    snapshot: pd.DataFrame,
    *,
    repeats: int = 3,
    chunk: int = CHUNK,
    with_reasons: bool = False,
) -> dict[str, Any]:
    """Score every row of ``snapshot`` in chunks ``repeats`` times; median wall and rate."""
    model.score_frame(snapshot.iloc[:1_000], with_reasons=with_reasons)  # warm-up
    seconds = []
    for _ in range(max(1, repeats)):
        t0 = time.perf_counter()
        parts = [
            model.score_frame(snapshot.iloc[i : i + chunk], with_reasons=with_reasons)
            for i in range(0, len(snapshot), chunk)
        ]
        scored = pd.concat(parts)
        seconds.append(time.perf_counter() - t0)
    assert len(scored) == len(snapshot)
    target = TARGET_WITH_REASONS_PER_S if with_reasons else TARGET_PER_S
    median = statistics.median(seconds)
    return {
        "customers": len(snapshot),
        "seconds": round(median, 3),
        "seconds_all": [round(s, 3) for s in seconds],
        "customers_per_s": round(len(snapshot) / median),
        "target_per_s": target,
        "ok": len(snapshot) / median >= target,
        "with_reasons": with_reasons,
        "model": getattr(model, "model_name", type(model).__name__),
    }


def tile(snapshot: pd.DataFrame, customers: int) -> pd.DataFrame:
    """``customers`` rows resampled (tiled) from ``snapshot``, each with its own id."""
    import numpy as np

    rows = snapshot.iloc[np.arange(customers) % len(snapshot)]
    ids = [f"{c}_{i // len(snapshot)}" for i, c in enumerate(rows.index)]
    return rows.set_axis(pd.Index(ids, name=snapshot.index.name))


def demo_champion(
    rows: int, seed: int = 42, candidate: str = "hist_gb", params: dict[str, Any] | None = None
) -> tuple[Any, pd.DataFrame]:
    """A champion made as the retrain flow makes it (the grid's first point, then ``params``),
    and the snapshot it scores."""
    import sampledata
    from credit.clean import clean_transactions
    from credit.features import build_feature_snapshot
    from credit.label import build_training_table, split_customers
    from credit.models import build_pipeline, load_grids, single_threaded, split_columns
    from credit.scoring import CreditRiskModel
    from flows.retrain import stratified_sample

    customers = max(1, round(rows * 3_742 / 95_662))
    tx = clean_transactions(sampledata.generate(rows=rows, customers=customers, seed=seed)).data
    table = build_training_table(tx, seed=seed)
    snapshot = build_feature_snapshot(tx, window_days=60)
    del tx
    X_train, _, y_train, _ = split_customers(table.X, table.y, seed=seed)
    X_fit, y_fit = stratified_sample(X_train, y_train, 50_000, seed)
    numeric, categorical = split_columns(X_fit)
    grid = load_grids()[candidate]
    pipeline = build_pipeline(candidate, numeric, categorical, seed=seed)
    pipeline.set_params(**({k: v[0] for k, v in grid.items()} | (params or {})))
    with single_threaded():
        pipeline.fit(X_fit, y_fit)
    model = CreditRiskModel.from_search(pipeline, X_fit, y_fit, 0.5, model_name=candidate)
    return model, snapshot


def parse_params(text: str) -> dict[str, Any]:
    """``a=1,b=0.5,c=x`` -> ``{"a": 1, "b": 0.5, "c": "x"}`` (Python literals, else strings)."""
    import ast

    params: dict[str, Any] = {}
    for item in filter(None, text.split(",")):
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise argparse.ArgumentTypeError(f"expected name=value, got {item!r}")
        try:
            params[key.strip()] = ast.literal_eval(value.strip())
        except (ValueError, SyntaxError):
            params[key.strip()] = value.strip()
    return params


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="generated transactions")
    parser.add_argument("--db-url", help="registry whose champion scores")
    parser.add_argument("--model-name", default=DEFAULT_MODEL_NAME)
    parser.add_argument("--snapshot", type=Path, help="feature snapshot Parquet to score")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--customers",
        type=int,
        help="score this many customers tiled from the snapshot (fast: e.g. 330000 from the "
        "demo-sized --rows 95662 instead of --rows 10000000)",
    )
    parser.add_argument("--with-reasons", action="store_true", help="reason codes too")
    parser.add_argument("--candidate", default="hist_gb", help="family of the champion made here")
    parser.add_argument(
        "--params",
        type=parse_params,
        default={},
        help="pipeline parameters over the grid's first point, e.g. "
        "clf__max_leaf_nodes=15,clf__learning_rate=0.1",
    )
    args = parser.parse_args(argv)
    if args.db_url and args.snapshot:
        from registry import Registry

        loaded = Registry(args.db_url).load_champion(args.model_name)
        if loaded is None:
            print(f"error: no champion for {args.model_name!r} in {args.db_url}", file=sys.stderr)
            return 2
        model, snapshot = loaded[1], pd.read_parquet(args.snapshot)
        source = f"champion of {args.db_url}"
    else:
        model, snapshot = demo_champion(args.rows, candidate=args.candidate, params=args.params)
        source = f"{args.candidate} fitted on the training table of {args.rows:,} generated rows"
        if args.params:
            source += f" with {args.params}"
    if args.customers:
        snapshot = tile(snapshot, args.customers)
    result = measure_scoring(model, snapshot, repeats=args.repeats, with_reasons=args.with_reasons)
    reasons = "with" if args.with_reasons else "without"
    print(
        f"batch scoring {reasons} reasons ({source}): {result['customers']:,} customers in "
        f"{result['seconds']:.2f} s = {result['customers_per_s']:,} customers/s (target >= "
        f"{result['target_per_s']:,}: "
        f"{'ok' if result['ok'] else 'UNDER TARGET'})"
    )
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
