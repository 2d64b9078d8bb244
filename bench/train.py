"""Benchmark: grid search of the three candidates plus held-out evaluation on the demo set.

    .venv/bin/python bench/train.py [--synthetic] [--out DIR] [--n-jobs N]

Builds the default demo training table (sampledata -> clean -> out-of-time proxy label), splits
customers 80/20 (stratified, seed 42), runs the three grid searches of credit/grids.toml on the
training split, calibrates each winner where that lowers the validation Brier score (validation
carved out of TRAIN), picks its threshold on that validation data, evaluates on the untouched
test split (with plots) and prints one line per candidate plus the total wall time.
``--synthetic`` uses :func:`credit.tabular.synthetic_customer_table` instead of the demo set.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import pandas as pd  # noqa: E402

from credit.evaluate import calibrate_if_better, compare_candidates, evaluate_candidate  # noqa: E402
from credit.models import CANDIDATES, load_grids, search_candidate  # noqa: E402


def demo_table(synthetic: bool) -> tuple[pd.DataFrame, pd.Series, str]:
    """The default demo customer table, or the synthetic stand-in."""
    if not synthetic:
        try:
            from credit.clean import clean_transactions
            from credit.label import build_training_table
            from sampledata import generate
        except ImportError as exc:  # pragma: no cover - only before the other modules exist
            print(f"demo pipeline unavailable ({exc}); using the synthetic table")
        else:
            cleaned = clean_transactions(generate())
            tx = getattr(cleaned, "data", cleaned)
            table = build_training_table(tx)
            return table.X, table.y, "default demo set (sampledata, out-of-time proxy label)"
    from credit.tabular import synthetic_customer_table

    X, y = synthetic_customer_table(3742, n_noise=65, seed=1)
    return X, y, "synthetic customer table (credit.tabular.synthetic_customer_table)"


def split(X: pd.DataFrame, y: pd.Series, seed: int = 42):
    try:
        from credit.label import split_customers
    except ImportError:  # pragma: no cover
        from sklearn.model_selection import train_test_split

        return train_test_split(X, y, test_size=0.2, stratify=y, random_state=seed)
    return split_customers(X, y, test_size=0.2, seed=seed)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--synthetic", action="store_true")
    parser.add_argument("--out", type=Path, default=None, help="folder for the PNG plots")
    parser.add_argument("--n-jobs", type=int, default=None)
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args(argv)
    out = args.out or Path(tempfile.mkdtemp(prefix="bati-bench-"))

    t0 = time.perf_counter()
    X, y, source = demo_table(args.synthetic)
    t_data = time.perf_counter() - t0
    print(
        f"data: {source}: {X.shape[0]} customers x {X.shape[1]} features, "
        f"{y.mean():.1%} high risk ({t_data:.1f} s to build, not in the budget)"
    )
    X_train, X_test, y_train, y_test = split(X, y, args.seed)
    grids = load_grids()
    cv = int(grids["search"]["cv"])
    n_jobs = args.n_jobs or os.cpu_count()

    load_before = os.getloadavg()[0]
    start = time.perf_counter()
    rows, evals, fitted = [], [], {}
    for name in CANDIDATES:
        t = time.perf_counter()
        res = search_candidate(
            name, X_train, y_train, grid=grids[name], cv=cv, n_jobs=n_jobs, seed=args.seed
        )
        t_search = time.perf_counter() - t
        model, info = calibrate_if_better(
            res.best_estimator, X_train, y_train, seed=args.seed, n_jobs=n_jobs
        )
        t_cal = time.perf_counter() - t - t_search
        ev = evaluate_candidate(
            model,
            X_test,
            y_test,
            threshold=info["threshold"],
            out_dir=out,
            name=name,
            X_train=X_train,
            y_train=y_train,
            seed=args.seed,
        )
        t_eval = time.perf_counter() - t - t_search - t_cal
        evals.append(ev)
        fitted[name] = (model, info["threshold"])
        m = ev.metrics
        rows.append(
            {
                "candidate": name,
                "search_s": round(t_search, 1),
                "calib_s": round(t_cal, 1),
                "eval_s": round(t_eval, 1),
                "cv_auc": round(res.best_cv_auc, 4),
                "test_auc": round(m["roc_auc"], 4),
                "auc_95ci": f"[{m['roc_auc_ci_low']:.3f}, {m['roc_auc_ci_high']:.3f}]",
                "ks": round(m["ks"], 4),
                "brier": round(m["brier"], 4),
                "calibration": info["method"],
                "threshold": round(m["threshold"], 3),
                "f1": round(m["f1"], 3),
                "dummy_auc": round(ev.baseline_metrics["roc_auc"], 3),
                "dummy_brier": round(ev.baseline_metrics["brier"], 4),
                "best_params": res.best_params,
            }
        )
    wall = time.perf_counter() - start
    table = pd.DataFrame(rows)
    with pd.option_context(
        "display.width", 250, "display.max_columns", 30, "display.max_colwidth", 90
    ):
        print(table.drop(columns="best_params").to_string(index=False))
        for r in rows:
            print(f"  {r['candidate']}: best params {r['best_params']}")
    best = compare_candidates(evals).iloc[0]
    print(f"best on test ROC-AUC: {best['candidate']} ({best['roc_auc']:.4f})")
    print(f"plots: {out}")
    print(
        f"TOTAL wall (3 searches + calibration + evaluation): {wall:.1f} s on "
        f"{os.cpu_count()} cores, n_jobs={n_jobs} (1-min load average {load_before:.1f} before, "
        f"{os.getloadavg()[0]:.1f} after: other processes share the cores)"
    )
    serving_figures(best["candidate"], *fitted[best["candidate"]], X_train, y_train, X_test)
    return 0


def serving_figures(name, model, threshold, X_train, y_train, X_test) -> None:
    """Score the test customers with the served object (outside the 60 s budget)."""
    import skops.io as sio

    from credit.scoring import CreditRiskModel

    served = CreditRiskModel.from_search(model, X_train, y_train, threshold, model_name=name)
    t = time.perf_counter()
    frame = served.score_frame(X_test)
    t_score = time.perf_counter() - t
    t = time.perf_counter()
    blob = sio.dumps(served)
    loaded = sio.loads(blob, trusted=sio.get_untrusted_types(data=blob))
    t_skops = time.perf_counter() - t
    same = bool((loaded.predict_pd(X_test) == served.predict_pd(X_test)).all())
    bands = frame.groupby("band", observed=True).agg(
        customers=("score", "size"),
        mean_pd=("probability", "mean"),
        approved=("approved", "mean"),
        median_amount=("amount", "median"),
        expected_loss=("expected_loss", "sum"),
    )
    print(f"\nserved model ({name}) on the {len(X_test)} test customers:")
    print(
        f"  score_frame with reason codes: {t_score:.2f} s; score range "
        f"{frame['score'].min()}-{frame['score'].max()}, median {frame['score'].median():.0f}"
    )
    print(
        f"  approved {frame['approved'].mean():.1%}, total offered "
        f"{frame['amount'].sum():,.0f} UGX, expected loss {frame['expected_loss'].sum():,.0f} UGX"
    )
    print(bands.round(3).to_string())
    print(f"  skops: {len(blob) / 1e6:.1f} MB, dump+load {t_skops:.2f} s, identical PDs: {same}")
    example = frame.sort_values("probability").iloc[-1]
    print(
        f"  riskiest test customer {example.name}: PD {example['probability']:.2f}, score "
        f"{example['score']}, band {example['band']}; reasons:"
    )
    for r in example["reasons"]:
        print(f"    - {r['text']}")


if __name__ == "__main__":
    raise SystemExit(main())
