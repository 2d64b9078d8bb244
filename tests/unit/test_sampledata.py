"""The demo-data generator: marginals match REFERENCE.md, formats match the real rows.

The reference figures below are copied from ``shared/data/xente/REFERENCE.md`` (the real file);
each has the tolerance the generated default set (95,662 rows, 3,742 customers, seed 42) must meet.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from builders import ROOT

import sampledata
from sampledata import writer

REAL_ROWS = 95_662
SPAN_START = pd.Timestamp("2018-11-15T02:18:49Z")
SPAN_END = pd.Timestamp("2019-02-13T10:01:28Z")
CASHBACK_ACCOUNT = "AccountId_4841"


def _share(col: str, value: object) -> Callable[[pd.DataFrame], float]:
    return lambda df: float((df[col] == value).mean())


def _month_share(month: str) -> Callable[[pd.DataFrame], float]:
    return lambda df: float((df["TransactionStartTime"].dt.strftime("%Y-%m") == month).mean())


def _quantile(q: float) -> Callable[[pd.DataFrame], float]:
    return lambda df: float(df["Amount"].quantile(q))


# (figure, reference value, kind of tolerance, tolerance, how to compute it)
#   abs:    |generated - reference| <= tolerance
#   rel:    |generated / reference - 1| <= tolerance
#   factor: generated / reference in [1 / tolerance, tolerance] (same sign)
#   exact:  generated == reference
REFERENCE: list[tuple[str, float, str, float, Callable[[pd.DataFrame], float]]] = [
    ("rows", 95_662, "exact", 0, len),
    ("negative Amount share", 0.399, "abs", 0.03, lambda df: float((df["Amount"] < 0).mean())),
    ("fraud rate", 193 / REAL_ROWS, "abs", 0.001, lambda df: float(df["FraudResult"].mean())),
    ("cash-back share", 30_900 / REAL_ROWS, "abs", 0.03, _share("AccountId", CASHBACK_ACCOUNT)),
    (
        "Value != |Amount| share",
        2_565 / REAL_ROWS,
        "abs",
        0.01,
        lambda df: float((df["Value"] != df["Amount"].abs()).mean()),
    ),
    (
        "corr(Amount, Value)",
        0.990,
        "abs",
        0.03,
        lambda df: float(np.corrcoef(df["Amount"], df["Value"])[0, 1]),
    ),
    *[
        (
            f"ProviderId_{p} share",
            n / REAL_ROWS,
            "abs",
            0.03,
            _share("ProviderId", f"ProviderId_{p}"),
        )
        for p, n in {4: 38_189, 6: 34_186, 5: 14_542, 1: 5_643, 3: 3_084, 2: 18}.items()
    ],
    *[
        (f"{c} share", n / REAL_ROWS, "abs", 0.03, _share("ProductCategory", c))
        for c, n in {
            "financial_services": 45_405,
            "airtime": 45_027,
            "utility_bill": 1_920,
            "data_bundles": 1_613,
            "tv": 1_279,
        }.items()
    ],
    (
        "ticket+movies+transport+other share",
        418 / REAL_ROWS,
        "abs",
        0.01,
        lambda df: float(
            df["ProductCategory"].isin(["ticket", "movies", "transport", "other"]).mean()
        ),
    ),
    *[
        (
            f"ChannelId_{ch} share",
            n / REAL_ROWS,
            "abs",
            0.03,
            _share("ChannelId", f"ChannelId_{ch}"),
        )
        for ch, n in {3: 56_935, 2: 37_141, 5: 1_048, 1: 538}.items()
    ],
    *[
        (f"PricingStrategy {p} share", n / REAL_ROWS, "abs", 0.03, _share("PricingStrategy", p))
        for p, n in {2: 79_848, 4: 13_562, 1: 1_867, 0: 385}.items()
    ],
    *[
        (f"{m} share", n / REAL_ROWS, "abs", 0.03, _month_share(m))
        for m, n in {
            "2018-11": 12_472,
            "2018-12": 35_635,
            "2019-01": 31_783,
            "2019-02": 15_772,
        }.items()
    ],
    ("Amount Q1", -50, "factor", 1.5, _quantile(0.25)),
    ("Amount median", 1_000, "factor", 1.5, _quantile(0.5)),
    ("Amount Q3", 2_800, "factor", 1.5, _quantile(0.75)),
    ("Amount mean", 6_717.8, "factor", 1.5, lambda df: float(df["Amount"].mean())),
    ("Amount max", 9_880_000, "factor", 2.0, lambda df: float(df["Amount"].max())),
    ("Amount min", -1_000_000, "factor", 2.0, lambda df: float(df["Amount"].min())),
    ("unique CustomerId", 3_742, "exact", 0, lambda df: df["CustomerId"].nunique()),
    ("unique TransactionId", 95_662, "exact", 0, lambda df: df["TransactionId"].nunique()),
    ("unique AccountId", 3_633, "rel", 0.02, lambda df: df["AccountId"].nunique()),
    ("unique SubscriptionId", 3_627, "rel", 0.02, lambda df: df["SubscriptionId"].nunique()),
    ("unique BatchId", 94_809, "rel", 0.005, lambda df: df["BatchId"].nunique()),
    ("unique timestamps", 94_556, "rel", 0.01, lambda df: df["TransactionStartTime"].nunique()),
    ("distinct ProductId", 23, "abs", 2, lambda df: df["ProductId"].nunique()),
    (
        "cash-back account rows",
        30_900,
        "rel",
        0.1,
        lambda df: int((df["AccountId"] == CASHBACK_ACCOUNT).sum()),
    ),
    (
        "span start (days from reference)",
        0,
        "abs",
        1,
        lambda df: (df["TransactionStartTime"].min() - SPAN_START) / pd.Timedelta(days=1),
    ),
    (
        "span end (days from reference)",
        0,
        "abs",
        1,
        lambda df: (df["TransactionStartTime"].max() - SPAN_END) / pd.Timedelta(days=1),
    ),
]

# Formats of the real rows (checked against sample_head.csv too, so they are honest).
CSV_PATTERNS: dict[str, str] = {
    "TransactionId": r"TransactionId_[1-9]\d*",
    "BatchId": r"BatchId_[1-9]\d*",
    "AccountId": r"AccountId_[1-9]\d*",
    "SubscriptionId": r"SubscriptionId_[1-9]\d*",
    "CustomerId": r"CustomerId_[1-9]\d*",
    "CurrencyCode": r"UGX",
    "CountryCode": r"256",
    "ProviderId": r"ProviderId_[1-9]\d*",
    "ProductId": r"ProductId_[1-9]\d*",
    "ProductCategory": (
        r"financial_services|airtime|utility_bill|data_bundles|tv|ticket|movies|transport|other"
    ),
    "ChannelId": r"ChannelId_[1-5]",
    # Integral amounts without a decimal point ("1000", not "1000.0"); fractions like -67.25.
    "Amount": r"-?[1-9]\d*(\.\d*[1-9])?|-?0\.\d*[1-9]",
    "Value": r"[1-9]\d*",
    "TransactionStartTime": r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ",
    "PricingStrategy": r"[0124]",
    "FraudResult": r"[01]",
}


@pytest.fixture(scope="module")
def demo() -> pd.DataFrame:
    """The default demo set, generated once for this module (timed)."""
    t0 = time.perf_counter()
    df = sampledata.generate()
    demo_seconds = time.perf_counter() - t0
    df.attrs["seconds"] = demo_seconds
    return df


@pytest.fixture(scope="module")
def demo_csv(tmp_path_factory: pytest.TempPathFactory, demo: pd.DataFrame) -> Path:
    return sampledata.write(demo, tmp_path_factory.mktemp("csv") / "demo.csv")


# --------------------------------------------------------------------------------------------
# Marginals against REFERENCE.md
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "reference", "kind", "tolerance", "compute"),
    REFERENCE,
    ids=[r[0] for r in REFERENCE],
)
def test_marginal_matches_reference(
    demo: pd.DataFrame,
    name: str,
    reference: float,
    kind: str,
    tolerance: float,
    compute: Callable[[pd.DataFrame], float],
) -> None:
    got = compute(demo)
    if kind == "exact":
        assert got == reference, f"{name}: {got} != {reference}"
    elif kind == "abs":
        assert abs(got - reference) <= tolerance, f"{name}: {got:.5g} vs {reference:.5g}"
    elif kind == "rel":
        assert abs(got / reference - 1) <= tolerance, f"{name}: {got:.5g} vs {reference:.5g}"
    else:
        ratio = got / reference
        assert 1 / tolerance <= ratio <= tolerance, f"{name}: {got:.5g} vs {reference:.5g}"


def test_default_set_is_quick(demo: pd.DataFrame) -> None:
    # A couple of seconds normally; generous so a loaded CI machine does not flake.
    assert demo.attrs["seconds"] < 30


# --------------------------------------------------------------------------------------------
# Schema, structure and formats
# --------------------------------------------------------------------------------------------


def test_columns_and_types_follow_the_real_file(demo: pd.DataFrame, sample_head_path: Path) -> None:
    header = sample_head_path.read_text().splitlines()[0].split(",")
    assert list(demo.columns) == header == list(sampledata.COLUMNS)
    assert str(demo["TransactionStartTime"].dtype) == "datetime64[us, UTC]"
    assert demo["Amount"].dtype == "float64" and demo["Value"].dtype == "float64"
    for col in ("CountryCode", "PricingStrategy", "FraudResult"):
        assert demo[col].dtype == "int64"
    for col in ("TransactionId", "CustomerId", "ProviderId", "ProductCategory", "CurrencyCode"):
        assert pd.api.types.is_string_dtype(demo[col])


def test_strict_schema(demo: pd.DataFrame) -> None:
    assert not demo.isna().any().any()
    assert demo["TransactionId"].is_unique
    assert (demo["Value"] >= demo["Amount"].abs() - 1).all()
    assert (demo["Value"] > 0).all()
    t = demo["TransactionStartTime"]
    assert t.between(SPAN_START, SPAN_END).all()
    assert t.is_monotonic_increasing
    assert set(demo["CurrencyCode"]) == {"UGX"} and set(demo["CountryCode"]) == {256}
    assert set(demo["FraudResult"]) == {0, 1}


def test_passes_the_project_schema(demo: pd.DataFrame) -> None:
    from schemas.transactions import TransactionsSchema

    TransactionsSchema.validate(demo, lazy=True)


def test_products_are_consistent(demo: pd.DataFrame) -> None:
    per_product = demo.groupby("ProductId")["ProductCategory"].nunique()
    assert (per_product == 1).all(), "a ProductId has more than one category"
    providers = demo.groupby("ProductId")["ProviderId"].nunique()
    assert providers.max() <= 5


def test_cashback_credits_follow_purchases(demo: pd.DataFrame) -> None:
    cb = demo["AccountId"] == CASHBACK_ACCOUNT
    rows = demo[cb]
    assert (rows["SubscriptionId"] == "SubscriptionId_3829").all()
    assert (rows["ProviderId"] == "ProviderId_4").all()
    assert (rows["ProductId"] == "ProductId_6").all()
    assert (rows["ProductCategory"] == "financial_services").all()
    assert (rows["ChannelId"] == "ChannelId_2").all()
    assert (rows["Amount"] < 0).all()
    assert rows["Amount"].abs().median() < 500  # small credits
    # Each follows a purchase (a debit) of the same customer by seconds.
    t = demo["TransactionStartTime"].astype("int64").to_numpy() // 10**6
    customer = demo["CustomerId"].to_numpy()
    is_cb = cb.to_numpy()
    order = np.lexsort((is_cb, t, customer))
    debit_t = np.where(~is_cb & (demo["Amount"].to_numpy() > 0), t, np.nan)
    frame = pd.DataFrame({"c": customer[order], "debit_t": debit_t[order]})
    last_debit = frame.groupby("c")["debit_t"].ffill().to_numpy()
    sel = is_cb[order]
    gap = t[order][sel] - last_debit[sel]
    assert not np.isnan(gap).any()
    assert (gap >= 0).all() and (gap <= 300).all()
    # Fractional credits round up into Value, as in the real rows (-67.25 -> 68).
    fractional = rows[rows["Amount"] != rows["Amount"].round()]
    assert len(fractional) > 0
    assert (fractional["Value"] == np.ceil(fractional["Amount"].abs())).all()


def test_fees_only_raise_value(demo: pd.DataFrame) -> None:
    differs = demo[demo["Value"] != demo["Amount"].abs()]
    fees = differs[differs["Amount"] > 0]
    assert (fees["ProductCategory"] == "utility_bill").all()
    assert ((fees["Value"] / fees["Amount"]).between(1.05, 1.2)).all()


def test_customers_differ(demo: pd.DataFrame) -> None:
    per_customer = demo.groupby("CustomerId").size()  # rows carrying the CustomerId
    assert per_customer.min() == 1
    assert per_customer.max() >= 1_000
    own = demo[demo["AccountId"] != CASHBACK_ACCOUNT]
    spend = own.assign(d=own["Amount"].clip(lower=0)).groupby("CustomerId")["d"].sum()
    spend = spend[spend > 0]
    assert spend.quantile(0.99) / spend.quantile(0.01) > 100  # orders of magnitude
    # Engagement trajectories: some customers stop early, some start late.
    days = (own["TransactionStartTime"] - SPAN_START) / pd.Timedelta(days=1)
    by = days.groupby(own["CustomerId"])
    assert (by.max() < 45).mean() > 0.1
    assert (by.min() > 45).mean() > 0.05
    # A few customers share an account.
    assert own.groupby("AccountId")["CustomerId"].nunique().max() > 1
    # A few purchases share a batch.
    assert own["BatchId"].duplicated().sum() > 100


def test_fraud_concentrates_on_large_amounts(demo: pd.DataFrame) -> None:
    fraud = demo.loc[demo["FraudResult"] == 1, "Amount"]
    assert fraud.median() > 20 * demo["Amount"].median()


def test_daily_rhythm(demo: pd.DataFrame) -> None:
    hour = demo["TransactionStartTime"].dt.hour  # UTC; local time is UTC+3
    night = hour.isin([21, 22, 23, 0, 1, 2]).mean()  # 00:00-05:59 local
    day = hour.isin(range(6, 15)).mean()  # 09:00-17:59 local
    assert night < 0.08 and day > 0.4


def _patterns_hold(frame: pd.DataFrame) -> dict[str, int]:
    return {
        col: int((~frame[col].str.fullmatch(pattern)).sum())
        for col, pattern in CSV_PATTERNS.items()
    }


def test_csv_patterns_are_those_of_the_real_rows(sample_head_path: Path) -> None:
    real = pd.read_csv(sample_head_path, dtype=str, keep_default_na=False)
    assert _patterns_hold(real) == dict.fromkeys(CSV_PATTERNS, 0)


def test_csv_formats_match_the_real_rows(
    demo_csv: Path, demo: pd.DataFrame, sample_head_path: Path
) -> None:
    text = demo_csv.read_text()
    header = sample_head_path.read_text().splitlines()[0]
    assert text.splitlines()[0] == header
    assert '"' not in text and "\r" not in text and text.endswith("\n")
    raw = pd.read_csv(demo_csv, dtype=str, keep_default_na=False)
    assert len(raw) == len(demo)
    assert _patterns_hold(raw) == dict.fromkeys(CSV_PATTERNS, 0)
    assert raw["Amount"].str.contains(r"\.").any()  # some fractional credits, as in the real file
    back = pd.read_csv(demo_csv)
    np.testing.assert_array_equal(back["Amount"].to_numpy(), demo["Amount"].to_numpy())
    parsed = pd.to_datetime(back["TransactionStartTime"], utc=True, format="ISO8601")
    assert (parsed.to_numpy() == demo["TransactionStartTime"].to_numpy()).all()


def test_parquet_round_trip(tmp_path: Path) -> None:
    df = sampledata.generate(rows=3_000, customers=200, seed=5)
    path = sampledata.write(df, tmp_path / "x.parquet")
    back = pd.read_parquet(path)
    assert str(back["TransactionStartTime"].dtype).endswith(", UTC]")
    pd.testing.assert_frame_equal(back, df, check_dtype=False)
    import pyarrow.parquet as pq

    field = pq.read_schema(path).field("TransactionStartTime")
    assert str(field.type) == "timestamp[us, tz=UTC]"


def test_write_partitioned(tmp_path: Path) -> None:
    df = sampledata.generate(rows=5_000, customers=300, seed=9)
    folder = tmp_path / "parts"
    (folder).mkdir()
    (folder / "part-00009.parquet").write_bytes(b"stale")
    paths = sampledata.write_partitioned(df, folder, partitions=4)
    assert [p.name for p in paths] == [f"part-{i:05d}.parquet" for i in range(4)]
    assert sorted(folder.glob("*.parquet")) == paths
    sizes = [len(pd.read_parquet(p)) for p in paths]
    assert sum(sizes) == len(df) and max(sizes) - min(sizes) <= 1
    back = pd.concat([pd.read_parquet(p) for p in paths], ignore_index=True)
    pd.testing.assert_frame_equal(back, df, check_dtype=False)
    with pytest.raises(ValueError):
        sampledata.write_partitioned(df, folder, partitions=0)


def test_write_rejects_other_suffixes(tmp_path: Path) -> None:
    df = sampledata.generate(rows=50, customers=5)
    with pytest.raises(ValueError, match="suffix"):
        sampledata.write(df, tmp_path / "x.json")


# --------------------------------------------------------------------------------------------
# Determinism, sizes, arguments
# --------------------------------------------------------------------------------------------


def test_same_arguments_give_identical_csv_bytes(tmp_path: Path) -> None:
    a = sampledata.write(sampledata.generate(20_000, 800, seed=7), tmp_path / "a.csv")
    b = sampledata.write(sampledata.generate(20_000, 800, seed=7), tmp_path / "b.csv")
    c = sampledata.write(sampledata.generate(20_000, 800, seed=8), tmp_path / "c.csv")
    assert a.read_bytes() == b.read_bytes()
    assert a.read_bytes() != c.read_bytes()


def test_default_set_is_reproducible(demo: pd.DataFrame) -> None:
    pd.testing.assert_frame_equal(sampledata.generate(), demo)


def test_different_seeds_differ_but_keep_the_shape() -> None:
    a = sampledata.generate(10_000, 400, seed=1)
    b = sampledata.generate(10_000, 400, seed=2)
    assert not a["Amount"].equals(b["Amount"])
    assert set(a["TransactionId"]) != set(b["TransactionId"])
    for df in (a, b):
        assert len(df) == 10_000 and df["CustomerId"].nunique() == 400
        assert abs((df["Amount"] < 0).mean() - 0.399) < 0.04


@pytest.mark.parametrize(("rows", "customers"), [(1, 1), (7, 7), (40, 3), (500, 499), (2_000, 50)])
def test_small_and_odd_sizes(rows: int, customers: int) -> None:
    df = sampledata.generate(rows, customers, seed=3)
    assert len(df) == rows
    assert df["CustomerId"].nunique() == customers
    assert df["TransactionId"].is_unique
    assert not df.isna().any().any()
    assert (df["Value"] >= df["Amount"].abs() - 1).all()
    assert df["TransactionStartTime"].between(SPAN_START, SPAN_END).all()
    assert df["TransactionStartTime"].is_monotonic_increasing


@pytest.mark.parametrize(("rows", "customers"), [(5, 6), (10, 0), (10.5, 2)])
def test_bad_arguments(rows: float, customers: int) -> None:
    with pytest.raises(ValueError):
        sampledata.generate(rows, customers)  # type: ignore[arg-type]


# --------------------------------------------------------------------------------------------
# The proxy label is learnable, but not trivially
# --------------------------------------------------------------------------------------------


def _early_features_and_late_inactivity(df: pd.DataFrame) -> tuple[pd.DataFrame, pd.Series]:
    """Simple aggregates of days 0-60 per customer; label: no own transaction in days 60-90."""
    own = df[df["AccountId"] != CASHBACK_ACCOUNT]
    t = own["TransactionStartTime"]
    cutoff = t.min() + pd.Timedelta(days=60)
    obs = own[t < cutoff]
    day = (obs["TransactionStartTime"] - t.min()) / pd.Timedelta(days=1)
    local_hour = (obs["TransactionStartTime"].dt.hour + 3) % 24
    frame = pd.DataFrame(
        {
            "c": obs["CustomerId"].to_numpy(),
            "day": day.to_numpy(),
            "late": (day >= 30).to_numpy(),
            "debit": obs["Amount"].clip(lower=0).to_numpy(),
            "credit": (obs["Amount"] < 0).to_numpy(),
            "night": (local_hour < 6).to_numpy(),
            "airtime": (obs["ProductCategory"] == "airtime").to_numpy(),
            "channel3": (obs["ChannelId"] == "ChannelId_3").to_numpy(),
        }
    )
    g = frame.groupby("c")
    X = pd.DataFrame(
        {
            "log_n": np.log1p(g.size()),
            "log_n_late": np.log1p(g["late"].sum()),
            "recency": 60 - g["day"].max(),
            "first_day": g["day"].min(),
            "log_debit": np.log1p(g["debit"].sum()),
            "log_mean_debit": np.log1p(g["debit"].mean()),
            "credit_share": g["credit"].mean(),
            "night_share": g["night"].mean(),
            "airtime_share": g["airtime"].mean(),
            "channel3_share": g["channel3"].mean(),
        }
    )
    late = own.loc[t >= cutoff, "CustomerId"].value_counts()
    y = (late.reindex(X.index, fill_value=0) == 0).astype(int)
    return X, y


def _cv_auc(X: pd.DataFrame, y: pd.Series) -> float:
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import StratifiedKFold, cross_val_predict
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1_000))
    cv = StratifiedKFold(5, shuffle=True, random_state=0)
    p = cross_val_predict(model, X, y, cv=cv, method="predict_proba")[:, 1]
    return float(roc_auc_score(y, p))


def test_late_inactivity_is_learnable_but_not_trivially(demo: pd.DataFrame) -> None:
    X, y = _early_features_and_late_inactivity(demo)
    assert 0.15 < y.mean() < 0.6
    auc = _cv_auc(X, y)
    assert 0.70 <= auc <= 0.90, auc
    # The latent propensity shows in behaviour too, not only in recency and frequency.
    behaviour = ["log_mean_debit", "credit_share", "night_share", "airtime_share", "channel3_share"]
    assert _cv_auc(X[behaviour], y) > 0.6


# --------------------------------------------------------------------------------------------
# The demo file and the command line
# --------------------------------------------------------------------------------------------


def test_ensure_demo_data_generates_once(tmp_path: Path) -> None:
    path = tmp_path / "data" / "demo.parquet"
    got = sampledata.ensure_demo_data(path, rows=2_000, customers=100, seed=1)
    assert got == path and path.is_file()
    side = writer.sidecar_path(path)
    assert json.loads(side.read_text())["rows"] == 2_000
    stamp = path.stat().st_mtime_ns
    os.utime(path, ns=(stamp - 10**9, stamp - 10**9))
    sampledata.ensure_demo_data(path, rows=2_000, customers=100, seed=1)
    assert path.stat().st_mtime_ns == stamp - 10**9, "regenerated although unchanged"
    sampledata.ensure_demo_data(path, rows=2_000, customers=100, seed=2)
    assert path.stat().st_mtime_ns != stamp - 10**9, "not regenerated for a new seed"
    assert json.loads(side.read_text())["seed"] == 2
    pd.testing.assert_frame_equal(
        pd.read_parquet(path), sampledata.generate(2_000, 100, 2), check_dtype=False
    )


def test_ensure_demo_data_default_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BATI_VAR_DIR", str(tmp_path / "var"))
    assert sampledata.default_demo_path() == tmp_path / "var" / "data" / "xente_demo.parquet"
    monkeypatch.delenv("BATI_VAR_DIR")
    assert sampledata.default_demo_path() == ROOT / "var" / "data" / "xente_demo.parquet"


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sampledata", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        timeout=120,
    )


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_cli_writes_the_requested_file(tmp_path: Path, suffix: str) -> None:
    out = tmp_path / f"tx{suffix}"
    proc = _cli("--rows", "3000", "--customers", "150", "--seed", "4", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert len(lines) >= 2  # a short summary, then the JSON
    result = json.loads(lines[-1])
    assert set(result) == {"path", "rows", "customers", "seconds"}
    assert Path(result["path"]) == out.resolve()
    assert result["rows"] == 3_000 and result["customers"] == 150
    expected = sampledata.generate(3_000, 150, 4)
    if suffix == ".csv":
        assert out.read_bytes() == sampledata.write(expected, tmp_path / "ref.csv").read_bytes()
    else:
        pd.testing.assert_frame_equal(pd.read_parquet(out), expected, check_dtype=False)


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_cli_daily_writes_one_file_per_day_with_every_row(tmp_path: Path, fmt: str) -> None:
    folder = tmp_path / "landing"
    args = ("--rows", "3000", "--customers", "150", "--seed", "4")
    proc = _cli(*args, "--daily", str(folder), "--daily-format", fmt)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    files = sorted(folder.glob(f"*.{fmt}"))
    assert result["files"] == len(files) == 91  # the real span: 91 calendar days
    assert files[0].name == f"2018-11-15.{fmt}" and files[-1].name == f"2019-02-13.{fmt}"
    expected = sampledata.generate(3_000, 150, 4)
    read = pd.read_csv if fmt == "csv" else pd.read_parquet
    days = [read(f) for f in files]
    assert sum(len(d) for d in days) == len(expected)
    for f, day in zip(files, days, strict=True):
        stamps = pd.to_datetime(day["TransactionStartTime"], utc=True)
        assert (stamps.dt.strftime("%Y-%m-%d") == f.stem).all()
    back = pd.concat(days)["TransactionId"]
    assert sorted(back) == sorted(expected["TransactionId"])


def test_cli_default_writes_the_demo_set(tmp_path: Path) -> None:
    proc = _cli(env={"BATI_VAR_DIR": str(tmp_path / "var")})
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    path = tmp_path / "var" / "data" / "xente_demo.parquet"
    assert Path(result["path"]) == path
    assert result["rows"] == 95_662 and result["customers"] == 3_742
    assert json.loads(writer.sidecar_path(path).read_text()) == writer.generation_params(
        95_662, 3_742, 42
    )
    # The CLI's file is the one ensure_demo_data would make: it is kept, not regenerated.
    stamp = path.stat().st_mtime_ns
    assert sampledata.ensure_demo_data(path) == path
    assert path.stat().st_mtime_ns == stamp


def test_cli_rejects_bad_arguments(tmp_path: Path) -> None:
    proc = _cli("--out", str(tmp_path / "x.txt"))
    assert proc.returncode == 2 and "csv" in proc.stderr
    proc = _cli("--rows", "5", "--customers", "10", "--out", str(tmp_path / "x.csv"))
    assert proc.returncode == 2 and "rows" in proc.stderr
