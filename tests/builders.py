"""Shared test builders: paths, hand-made clean-transaction frames, and a small real registry.

Frames: :func:`clean_frame` builds the clean-transactions contract from partial row dicts (with
:func:`cashback` and :func:`tx` for the common rows), :func:`random_clean` a seeded random one.

Registry world (the API tests and benchmarks): :func:`build_world` generates Xente-shaped transactions (``sampledata``), runs the training code
(validate -> clean -> features), fits two tiny logistic-regression ``CreditRiskModel`` versions
on a synthetic label, registers both in a registry database, writes the feature snapshot and
promotes version 1. Everything is deterministic (fixed seeds) and takes about a second.

Command lines: :func:`run_python` runs ``python -m ...`` from the repository root and
:func:`last_json` reads the JSON object it prints last.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import numpy as np
import pandas as pd

from credit.clean import STRING_COLUMNS
from schemas.vocab import CASHBACK_ACCOUNT

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
SAMPLE_HEAD = SHARED / "data" / "xente" / "sample_head.csv"

MODEL_NAME = "bati-credit"
WINDOW_DAYS = 60
ADMIN_TOKEN = "test-admin-token-0123456789-abcdefghij"  # >= 32 characters (api.config)
ADMIN_AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}  # the headers of an admin request


def run_python(
    *args: str, env: Mapping[str, str], timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    """``python *args`` from the repository root (``-m module ...`` or ``-c code``), text captured."""
    return subprocess.run(
        [sys.executable, *args],
        cwd=ROOT,
        env=dict(env),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def start_python(*args: str, env: Mapping[str, str], log: IO[Any]) -> subprocess.Popen:
    """``python *args`` started from the repository root in a session of its own (so
    ``os.killpg`` ends it with its children), standard output and error to ``log``."""
    return subprocess.Popen(
        [sys.executable, *args],
        cwd=ROOT,
        env=dict(env),
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def quick_evaluation(
    model: Any, split: tuple[pd.DataFrame, pd.DataFrame, pd.Series, pd.Series], **options: Any
) -> Any:
    """``credit.evaluate.evaluate_candidate`` on ``split`` (X_train, X_test, y_train, y_test) with
    the tests' small settings (100 bootstrap draws, 2 importance repeats) unless ``options``
    (``threshold``, ``name``, ``out_dir``, ...) say otherwise."""
    from credit.evaluate import evaluate_candidate

    X_train, X_test, y_train, y_test = split
    options = {"n_boot": 100, "importance_repeats": 2, **options}
    return evaluate_candidate(model, X_test, y_test, X_train=X_train, y_train=y_train, **options)


def wait_until(
    check: Callable[[], bool], timeout: float, *, proc: subprocess.Popen | None = None
) -> bool:
    """Poll ``check`` until it returns true (an ``OSError``, as of ``requests`` or ``urllib``,
    counts as not yet); False after ``timeout`` seconds. Raises as soon as ``proc`` has exited."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{proc.args!r} exited with {proc.returncode}")
        try:
            if check():
                return True
        except OSError:
            pass
        time.sleep(0.2)
    return False


def last_json(proc: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    """The JSON object every command line prints as the last line of its standard output."""
    return json.loads(proc.stdout.strip().splitlines()[-1])


@dataclass
class World:
    """What the tests need to know about the registry they talk to."""

    url: str
    raw: pd.DataFrame  # raw generated transactions (typed)
    clean: pd.DataFrame
    snapshot: pd.DataFrame  # features of every customer as of ``as_of``
    as_of: pd.Timestamp
    versions: dict[int, Any] = field(default_factory=dict)  # version -> VersionInfo
    models: dict[int, Any] = field(default_factory=dict)  # version -> CreditRiskModel

    def customers(self) -> list[str]:
        return [str(c) for c in self.snapshot.index]


def demo_transactions(rows: int = 3000, customers: int = 150, seed: int = 5) -> pd.DataFrame:
    import sampledata

    return sampledata.generate(rows=rows, customers=customers, seed=seed)


def clean(raw: pd.DataFrame) -> pd.DataFrame:
    """The training pipeline's validation and cleaning (failures are a fixture bug)."""
    from credit.clean import clean_transactions
    from credit.ingest import validate_transactions

    typed, failures = validate_transactions(raw)
    assert failures.empty, failures.head()
    return clean_transactions(typed).data


def synthetic_label(X: pd.DataFrame, seed: int = 0) -> pd.Series:
    """A noisy 'disengaged' label from recency and frequency (both classes present)."""
    rng = np.random.default_rng(seed)
    z = (
        np.log1p(X["recency_days"].to_numpy())
        - 0.6 * np.log1p(X["n_tx"].to_numpy())
        + rng.normal(scale=0.5, size=len(X))
    )
    y = (z > np.median(z)).astype(int)
    return pd.Series(y, index=X.index, name="is_high_risk")


def train_model(X: pd.DataFrame, y: pd.Series, *, C: float = 1.0, seed: int = 0) -> Any:
    """A fitted :class:`credit.scoring.CreditRiskModel` (logistic regression pipeline)."""
    from credit.models import build_pipeline, split_columns
    from credit.scoring import CreditRiskModel

    numeric, categorical = split_columns(X)
    pipe = build_pipeline("logreg", numeric, categorical, seed=seed)
    pipe.set_params(clf__C=C)
    pipe.fit(X, y)
    return CreditRiskModel.from_search(pipe, X, y, threshold=0.5, model_name="logreg")


def register(reg: Any, model: Any, X: pd.DataFrame, *, tag: str) -> Any:
    """Register ``model`` as the next candidate version; returns its VersionInfo."""
    return reg.register(
        MODEL_NAME,
        model,
        metrics={"roc_auc": 0.7, "ks": 0.3, "brier": 0.2},
        params={"observation_days": WINDOW_DAYS, "C": tag},
        features=list(model.feature_names_),
        input_schema={"index": "CustomerId"},
        data_fingerprint=f"test-{tag}",
        n_rows=len(X),
        n_customers=len(X),
    )


def build_world(
    url: str,
    *,
    promote: int | None = 1,
    snapshot: bool = True,
    rows: int = 3000,
    customers: int = 150,
) -> World:
    """Fill the (empty) registry at ``url``: two versions, a snapshot, version ``promote``
    as champion (``None``: no champion)."""
    from credit.features import build_customer_features
    from registry import Registry, write_feature_snapshot

    raw = demo_transactions(rows, customers)
    tx = clean(raw)
    as_of = tx["TransactionStartTime"].max() + pd.Timedelta(seconds=1)
    X = build_customer_features(tx, as_of=as_of, window_days=WINDOW_DAYS)
    y = synthetic_label(X)
    world = World(url=url, raw=raw, clean=tx, snapshot=X, as_of=as_of)
    reg = Registry(url)
    try:
        for C in (1.0, 0.01):
            model = train_model(X, y, C=C)
            info = register(reg, model, X, tag=str(C))
            world.versions[info.version] = info
            world.models[info.version] = model
        if snapshot:
            write_feature_snapshot(reg, X, as_of, "test-run", model_name=MODEL_NAME)
        if promote is not None:
            reg.promote(MODEL_NAME, promote, actor="tests", reason="fixture champion")
            world.versions[promote] = reg.get_version(MODEL_NAME, promote)
    finally:
        reg.close()
    return world


def transactions_json(raw: pd.DataFrame, customer_id: str) -> list[dict[str, Any]]:
    """The customer's raw rows as the API's JSON (the Xente file's 16 fields and formats)."""
    rows = raw[raw["CustomerId"] == customer_id].copy()
    rows["TransactionStartTime"] = rows["TransactionStartTime"].dt.strftime("%Y-%m-%dT%H:%M:%SZ")
    out = rows.astype(object).to_dict("records")
    for row in out:
        for key in ("CountryCode", "PricingStrategy", "FraudResult"):
            row[key] = int(row[key])
        for key in ("Amount", "Value"):
            row[key] = float(row[key])
        for key, value in row.items():
            if not isinstance(value, int | float):
                row[key] = str(value)
    return out


# --- hand-made clean-transaction frames ------------------------------------------------------

_DEFAULTS = {
    "BatchId": "BatchId_1",
    "AccountId": "AccountId_1",
    "SubscriptionId": "SubscriptionId_1",
    "ProviderId": "ProviderId_6",
    "ProductId": "ProductId_10",
    "ProductCategory": "airtime",
    "ChannelId": "ChannelId_3",
    "PricingStrategy": 2,
    "FraudResult": 0,
}


def clean_frame(rows: list[dict], unit: str = "us") -> pd.DataFrame:
    """A clean-transactions frame (the common contract) from partial row dicts."""
    records = []
    for i, row in enumerate(rows):
        rec = {**_DEFAULTS, **row, "TransactionId": f"TransactionId_{i}"}
        rec.setdefault("Value", abs(rec["Amount"]))
        records.append(rec)
    df = pd.DataFrame(records)
    df["TransactionStartTime"] = pd.to_datetime(
        df["TransactionStartTime"], utc=True, format="ISO8601"
    ).dt.as_unit(unit)
    df = df.astype({"Amount": "float64", "Value": "float64", "PricingStrategy": "int64"})
    df = df.astype({"FraudResult": "int64", **dict.fromkeys(STRING_COLUMNS, "str")})
    return df.sort_values("TransactionStartTime", kind="stable").reset_index(drop=True)


def cashback(customer: str, t: str, amount: float) -> dict:
    """A cash-back row (credited to the platform's cash-back account)."""
    return {
        "CustomerId": customer,
        "AccountId": CASHBACK_ACCOUNT,
        "ProviderId": "ProviderId_4",
        "ProductId": "ProductId_6",
        "ProductCategory": "financial_services",
        "ChannelId": "ChannelId_2",
        "Amount": -amount,
        "TransactionStartTime": t,
    }


def tx(customer: str, t: str, amount: float = 1000.0) -> dict:
    """A plain purchase row for :func:`clean_frame`."""
    return {"CustomerId": customer, "Amount": amount, "TransactionStartTime": t}


def flow_run_logs(flow_run_id: str) -> list[Any]:
    """Every log record of a flow run, read back from the Prefect API."""
    import uuid

    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId
    from prefect.logging.handlers import APILogWorker

    APILogWorker.drain_all(timeout=10)
    with get_client(sync_client=True) as client:
        flt = LogFilter(flow_run_id=LogFilterFlowRunId(any_=[uuid.UUID(str(flow_run_id))]))
        return client.read_logs(flt)


def score_rows(p: np.ndarray, customers: list[str], *, decisions: bool = False) -> pd.DataFrame:
    """A frame for the ``scores`` table: probabilities ``p`` of ``customers`` with their score,
    band and approval; ``decisions`` adds the offer (amount, duration) and empty reasons."""
    frame = pd.DataFrame(
        {
            "probability": p,
            "score": (850 - 550 * p).round(),
            "band": np.where(p < 0.5, "A", "E"),
            "approved": p < 0.5,
        },
        index=pd.Index(customers, name="CustomerId"),
    )
    if decisions:
        frame["amount"] = np.where(p < 0.5, 50_000.0, np.nan)
        frame["duration_days"] = np.where(p < 0.5, 30, 0)
        frame["reasons"] = [[] for _ in range(len(p))]
    return frame


def random_clean(seed: int = 0, n_rows: int = 3000, n_customers: int = 120) -> pd.DataFrame:
    """A seeded random clean-transactions frame over 90 days."""
    rng = np.random.default_rng(seed)
    amount = np.round(rng.lognormal(7, 2, n_rows)) * rng.choice([1, -1], n_rows, p=[0.7, 0.3])
    return pd.DataFrame(
        {
            "TransactionId": [f"TransactionId_{i}" for i in range(n_rows)],
            "BatchId": [f"BatchId_{i}" for i in range(n_rows)],
            "AccountId": np.where(rng.random(n_rows) < 0.3, CASHBACK_ACCOUNT, "AccountId_7"),
            "SubscriptionId": "SubscriptionId_1",
            "CustomerId": [f"CustomerId_{i}" for i in rng.integers(0, n_customers, n_rows)],
            "ProviderId": rng.choice(["ProviderId_1", "ProviderId_5", "ProviderId_6"], n_rows),
            "ProductId": rng.choice(["ProductId_3", "ProductId_10"], n_rows),
            "ProductCategory": rng.choice(["airtime", "financial_services", "tv"], n_rows),
            "ChannelId": rng.choice(["ChannelId_2", "ChannelId_3"], n_rows),
            "Amount": amount,
            "Value": np.abs(amount),
            "TransactionStartTime": pd.Timestamp("2019-01-01", tz="UTC")
            + pd.to_timedelta(np.sort(rng.uniform(0, 90, n_rows)), unit="D"),
            "PricingStrategy": rng.choice([1, 2, 4], n_rows),
            "FraudResult": (rng.random(n_rows) < 0.02).astype(np.int64),
        }
    )
