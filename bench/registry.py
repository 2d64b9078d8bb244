"""Benchmark of the model registry on SQLite and PostgreSQL.

    .venv/bin/python bench/registry.py [--registrations 1000] [--lookups 10000] [--repeats 7]

Figures, per backend:
* cold champion load (query + artifact fetch + sha256 + skops audit/deserialise, cache empty)
  of a RandomForestClassifier(n_estimators=300) pipeline fitted on 3,000 rows x 60 features:
  median/min/max over ``--repeats``; target < 200 ms. Two forests: fully grown (sklearn
  defaults, the worst case) and regularised like the project's (min_samples_leaf=5,
  max_depth=16);
* ``--registrations`` registrations (small LogisticRegression pipeline, one transaction each);
* ``--lookups`` champion look-ups as the API does them (metadata query + in-memory model hit).
PostgreSQL comes from BATI_TEST_PG_URL (default the local test database) in a throw-away
schema; it is skipped with a note when unreachable. SQLite uses a temporary file (WAL).
The last stdout line is a JSON object with every figure.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from sklearn.compose import ColumnTransformer  # noqa: E402
from sklearn.ensemble import RandomForestClassifier  # noqa: E402
from sklearn.impute import SimpleImputer  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402
from sklearn.pipeline import Pipeline, make_pipeline  # noqa: E402
from sklearn.preprocessing import OneHotEncoder, StandardScaler  # noqa: E402

from registry import Registry  # noqa: E402
from registry.artifacts import load_artifact, sha256_hex  # noqa: E402
from registry.testing import PG_ENV, isolated_pg_url, sqlite_url  # noqa: E402

DEFAULT_PG = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
N_ROWS, N_NUMERIC, N_CATEGORICAL, SEED = 3_000, 55, 5, 42


def credit_like_table(seed: int = SEED) -> tuple[pd.DataFrame, np.ndarray]:
    """3,000 customers x 60 features (55 numeric with 3 % missing, 5 categorical), ~15 % bad."""
    rng = np.random.default_rng(seed)
    num = rng.normal(size=(N_ROWS, N_NUMERIC))
    num[:, :10] = np.exp(num[:, :10])  # skewed monetary-like columns
    logit = -2.0 + num[:, 10] - 0.7 * num[:, 11] + 0.4 * np.log(num[:, 0]) + rng.normal(size=N_ROWS)
    y = (logit > np.quantile(logit, 0.85)).astype(int)
    num[rng.random(num.shape) < 0.03] = np.nan
    frame = pd.DataFrame(num, columns=[f"num_{i:02d}" for i in range(N_NUMERIC)])
    for j in range(N_CATEGORICAL):
        frame[f"cat_{j}"] = rng.choice([f"level_{k}" for k in range(6)], size=N_ROWS)
    return frame, y


def forest_pipeline(**rf_params: Any) -> Pipeline:
    numeric = [f"num_{i:02d}" for i in range(N_NUMERIC)]
    categorical = [f"cat_{j}" for j in range(N_CATEGORICAL)]
    prep = ColumnTransformer(
        [
            ("num", SimpleImputer(strategy="median"), numeric),
            ("cat", OneHotEncoder(handle_unknown="ignore"), categorical),
        ]
    )
    rf = RandomForestClassifier(n_estimators=300, random_state=SEED, n_jobs=-1, **rf_params)
    return Pipeline([("prep", prep), ("clf", rf)])


def register_kwargs(X: pd.DataFrame, auc: float) -> dict[str, Any]:
    return {
        "metrics": {"roc_auc": auc, "ks": 0.4, "brier": 0.12},
        "params": {"n_estimators": 300},
        "features": list(X.columns),
        "input_schema": {c: str(t) for c, t in X.dtypes.items()},
        "data_fingerprint": "bench",
        "n_rows": len(X),
    }


def timed(fn, *args: Any, **kwargs: Any) -> tuple[float, Any]:
    start = time.perf_counter()
    out = fn(*args, **kwargs)
    return time.perf_counter() - start, out


def bench_backend(
    label: str, url: str, forests: dict[str, Pipeline], small: Pipeline, X: pd.DataFrame, args
) -> dict[str, Any]:
    result: dict[str, Any] = {"backend": label}
    reg = Registry(url)
    try:
        reg.migrate()
        for name, pipe in forests.items():
            model_name = f"rf-{name}"
            t_reg, info = timed(reg.register, model_name, pipe, **register_kwargs(X, 0.8))
            reg.promote_if_better(model_name, info.version)
            cold, cold_cpu = [], []
            for _ in range(args.repeats):
                reg.cache.clear()
                cpu = time.thread_time()
                t, loaded = timed(reg.load_champion, model_name)
                cold_cpu.append(time.thread_time() - cpu)
                cold.append(t)
            # Where the time goes: fetch, checksum, audit + deserialise.
            with reg.session() as s:
                t_fetch, blob = timed(reg._fetch_artifact, s, info.id)
            t_sha, _ = timed(sha256_hex, blob)
            t_deser, _ = timed(load_artifact, blob, expected_sha256=info.artifact_sha256)
            sample = X.iloc[:200]
            # allclose: parallel tree averaging sums in thread order
            assert np.allclose(loaded[1].predict_proba(sample), pipe.predict_proba(sample))
            result[f"champion_load_{name}"] = {
                "artifact_mb": round(info.artifact_size / 1e6, 2),
                "register_s": round(t_reg, 3),
                "cold_load_ms_median": round(1e3 * statistics.median(cold), 1),
                "cold_load_ms_min": round(1e3 * min(cold), 1),
                "cold_load_ms_max": round(1e3 * max(cold), 1),
                "cold_load_cpu_ms_median": round(1e3 * statistics.median(cold_cpu), 1),
                "fetch_ms": round(1e3 * t_fetch, 1),
                "sha256_ms": round(1e3 * t_sha, 1),
                "sha256_plus_deserialise_ms": round(1e3 * t_deser, 1),
                "under_200ms": statistics.median(cold) < 0.2,
            }

        kwargs = register_kwargs(X, 0.7)
        start = time.perf_counter()
        for _ in range(args.registrations):
            reg.register("small", small, **kwargs)
        t_regs = time.perf_counter() - start
        result["registrations"] = {
            "n": args.registrations,
            "total_s": round(t_regs, 2),
            "per_registration_ms": round(1e3 * t_regs / args.registrations, 2),
            "artifact_kb": round(reg.get_version("small", 1).artifact_size / 1e3, 1),
        }
        reg.promote_if_better("small", 1)
        reg.load_champion("small")  # warm the in-memory model
        start = time.perf_counter()
        for _ in range(args.lookups):
            info, _model = reg.load_champion("small")
        t_look = time.perf_counter() - start
        assert info.version == 1
        result["lookups"] = {
            "n": args.lookups,
            "total_s": round(t_look, 2),
            "per_lookup_ms": round(1e3 * t_look / args.lookups, 3),
        }
    finally:
        reg.close()
    return result


def print_result(r: dict[str, Any]) -> None:
    print(f"\n== {r['backend']} ==")
    for key, v in r.items():
        if key.startswith("champion_load_"):
            print(
                f"cold champion load, {key.removeprefix('champion_load_')} forest "
                f"({v['artifact_mb']} MB skops): median {v['cold_load_ms_median']} ms "
                f"(min {v['cold_load_ms_min']}, max {v['cold_load_ms_max']}; "
                f"CPU {v['cold_load_cpu_ms_median']} ms) "
                f"[fetch {v['fetch_ms']} ms, sha256 {v['sha256_ms']} ms, sha256+audit+deserialise "
                f"{v['sha256_plus_deserialise_ms']} ms] -> "
                f"{'OK' if v['under_200ms'] else 'OVER'} 200 ms target; register {v['register_s']} s"
            )
    g, lk = r["registrations"], r["lookups"]
    print(
        f"{g['n']} registrations ({g['artifact_kb']} kB artifacts): {g['total_s']} s "
        f"({g['per_registration_ms']} ms each)"
    )
    print(
        f"{lk['n']} champion look-ups (query + cached model): {lk['total_s']} s "
        f"({lk['per_lookup_ms']} ms each)"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--registrations", type=int, default=1_000)
    parser.add_argument("--lookups", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--no-postgres", action="store_true")
    args = parser.parse_args(argv)

    X, y = credit_like_table()
    start = time.perf_counter()
    forests = {
        "full": forest_pipeline().fit(X, y),
        "regularised": forest_pipeline(min_samples_leaf=5, max_depth=16).fit(X, y),
    }
    print(
        f"fitted 2 forests (300 trees, {N_ROWS} x {X.shape[1]}) in {time.perf_counter() - start:.1f} s"
    )
    small = make_pipeline(
        ColumnTransformer(
            [("num", make_pipeline(SimpleImputer(), StandardScaler()), list(X.columns[:N_NUMERIC]))]
        ),
        LogisticRegression(max_iter=500),
    ).fit(X, y)

    results = []
    with tempfile.TemporaryDirectory(prefix="bati-bench-") as tmp:
        results.append(bench_backend("sqlite", sqlite_url(tmp), forests, small, X, args))
        print_result(results[-1])
    if not args.no_postgres:
        base = os.environ.get(PG_ENV) or DEFAULT_PG
        try:
            with isolated_pg_url(base, prefix="bati_bench") as url:
                results.append(bench_backend("postgresql", url, forests, small, X, args))
                print_result(results[-1])
        except Exception as exc:  # unreachable server: report and keep the SQLite figures
            print(f"\npostgresql skipped: {str(exc).splitlines()[0]}")
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
