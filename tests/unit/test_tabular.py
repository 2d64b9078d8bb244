"""Bring your own labels: loading, column inference, target mapping, end to end with skops."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import skops.io as sio
from builders import quick_evaluation
from sklearn.model_selection import train_test_split

from credit.evaluate import METRIC_KEYS, calibrate_if_better
from credit.models import search_candidate
from credit.scoring import SCORE_COLUMNS, CreditRiskModel
from credit.tabular import (
    binarize_target,
    infer_column_roles,
    infer_columns,
    load_table,
    prepare_labelled_table,
)

TRUSTED_PREFIXES = ("sklearn.", "numpy.", "scipy.", "builtins.", "credit.")


def mixed_table(n: int = 500, seed: int = 0) -> pd.DataFrame:
    """A loan book: ids, ints, floats with NaN, strings with NaN, bools, a constant, a date."""
    rng = np.random.default_rng(seed)
    income = np.exp(rng.normal(13, 0.8, n))
    age = rng.integers(18, 70, n)
    region = rng.choice(["Kampala", "Gulu", "Mbarara", "Jinja"], n, p=[0.5, 0.2, 0.2, 0.1])
    employed = rng.random(n) < 0.7
    late_payments = rng.poisson(1.0, n)
    logit = (
        -0.5
        + 0.8 * late_payments
        - 0.6 * (np.log(income) - 13)
        - 0.9 * employed
        + 0.7 * (region == "Gulu")
        + rng.normal(0, 0.5, n)
    )
    outcome = np.where(rng.random(n) < 1 / (1 + np.exp(-logit)), "defaulted", "repaid")
    df = pd.DataFrame(
        {
            "loan_id": [f"L{i:05d}" for i in range(n)],
            "customer_id": np.arange(1000, 1000 + n),
            "monthly_income": income,
            "age": age,
            "late_payments": late_payments,
            "region": pd.Series(region, dtype="str"),
            "employed": employed,
            "product": "bnpl",
            "opened": pd.date_range("2024-01-01", periods=n, freq="h"),
            "outcome": outcome,
        }
    )
    df.loc[rng.random(n) < 0.1, "monthly_income"] = np.nan
    df.loc[rng.random(n) < 0.05, "region"] = None
    df.loc[rng.random(n) < 0.02, "outcome"] = None  # not matured yet
    return df


def test_load_table_csv_parquet_and_unknown(tmp_path):
    df = mixed_table(20)
    df.to_csv(tmp_path / "book.csv", index=False)
    df.to_parquet(tmp_path / "book.parquet", index=False)
    assert load_table(tmp_path / "book.csv").shape == df.shape
    back = load_table(tmp_path / "book.parquet")
    assert back.shape == df.shape and back["region"].isna().sum() == df["region"].isna().sum()
    (tmp_path / "book.xlsx").write_text("x")
    with pytest.raises(ValueError, match="unsupported table format"):
        load_table(tmp_path / "book.xlsx")


def test_infer_column_roles_mixed_types():
    df = mixed_table(300)
    roles = infer_column_roles(df, "outcome")
    assert roles["numeric"] == ["monthly_income", "age", "late_payments"]
    assert roles["categorical"] == ["region", "employed"]
    assert set(roles["dropped"]) == {"loan_id", "customer_id", "product", "opened"}
    assert roles["dropped"]["product"] == "constant"
    assert "id-like" in roles["dropped"]["customer_id"]
    assert "unsupported dtype" in roles["dropped"]["opened"]
    assert infer_columns(df, "outcome") == (roles["numeric"], roles["categorical"])
    by_name = infer_column_roles(df, "outcome", id_column="loan_id")
    assert by_name["dropped"]["loan_id"] == "id column"


@pytest.mark.parametrize(
    ("values", "positive"),
    [
        (["yes", "no", "YES", "no"], "yes"),
        ([True, False, True, False], True),
        ([0, 1, 1, 0], 1),
        (["good", "bad", "bad", "good"], "bad"),
        (["repaid", "defaulted", "repaid", "repaid"], "defaulted"),
    ],
)
def test_binarize_target_positive_class(values, positive):
    y, pos = binarize_target(pd.Series(values, name="t"))
    assert pos == positive
    assert y.dtype == np.int64
    assert y.tolist() == [int(str(v).lower() == str(positive).lower()) for v in values]


def test_binarize_target_errors():
    with pytest.raises(ValueError, match="exactly two"):
        binarize_target(pd.Series(["a", "b", "c"], name="t"))
    with pytest.raises(ValueError, match="exactly two"):
        binarize_target(pd.Series([1, 1, 1], name="t"))
    with pytest.raises(ValueError, match="pass positive"):
        binarize_target(pd.Series(["red", "blue"], name="t"))
    with pytest.raises(ValueError, match="pass positive"):
        binarize_target(pd.Series([1, 2, 2], name="t"))
    y, pos = binarize_target(pd.Series(["red", "blue", "red"], name="t"), positive="red")
    assert y.tolist() == [1, 0, 1] and pos == "red"
    with pytest.raises(ValueError, match="not one of"):
        binarize_target(pd.Series(["red", "blue"], name="t"), positive="green")


def test_prepare_labelled_table_validation():
    df = mixed_table(300)
    X, y, info = prepare_labelled_table(df, "outcome", id_column="loan_id")
    assert X.index.name == "loan_id" and X.index.is_unique
    assert list(X.columns) == ["monthly_income", "age", "late_payments", "region", "employed"]
    assert X["age"].dtype == np.float64 and X["monthly_income"].isna().any()
    assert set(X["employed"].dropna()) == {"True", "False"} and X["region"].isna().any()
    assert (
        info["positive_label"] == "defaulted" and info["rows_dropped"] == df["outcome"].isna().sum()
    )
    assert info["rows"] == len(X) == len(y) and info["positives"] == int(y.sum())
    with pytest.raises(ValueError, match="target column"):
        prepare_labelled_table(df, "missing")
    with pytest.raises(ValueError, match="no usable feature"):
        prepare_labelled_table(df[["loan_id", "product", "outcome"]], "outcome")


def test_end_to_end_search_evaluate_serve_and_skops_round_trip(tmp_path):
    path = tmp_path / "book.csv"
    mixed_table(600, seed=4).to_csv(path, index=False)
    X, y, info = prepare_labelled_table(load_table(path), "outcome", id_column="loan_id")
    X_train, X_test, y_train, y_test = train_test_split(
        X, y, test_size=0.25, stratify=y, random_state=0
    )
    res = search_candidate(
        "logreg",
        X_train,
        y_train,
        grid={"clf__C": [0.1, 1.0], "prep__encoding": ["woe"]},
        cv=3,
        n_jobs=1,
        numeric=info["numeric"],
        categorical=info["categorical"],
    )
    model, cal = calibrate_if_better(res.best_estimator, X_train, y_train, cv=3)
    split = X_train, X_test, y_train, y_test
    ev = quick_evaluation(model, split, threshold=cal["threshold"], name="byol", out_dir=tmp_path)
    assert tuple(ev.metrics) == METRIC_KEYS
    assert ev.metrics["roc_auc"] > 0.7 > ev.baseline_metrics["roc_auc"]
    assert len(ev.plots) == 6

    served = CreditRiskModel.from_search(model, X_train, y_train, cal["threshold"])
    assert served.feature_names_ == list(X.columns)
    assert served.categorical_ == ["region", "employed"]
    assert served.reference_["region"] == "Kampala"
    frame = served.score_frame(X_test)
    assert tuple(frame.columns) == SCORE_COLUMNS and len(frame) == len(X_test)

    blob = sio.dumps(served)
    untrusted = sio.get_untrusted_types(data=blob)
    assert untrusted and all(t.startswith(TRUSTED_PREFIXES) for t in untrusted), untrusted
    loaded = sio.loads(blob, trusted=untrusted)
    np.testing.assert_array_equal(loaded.predict_proba(X_test), served.predict_proba(X_test))
    pd.testing.assert_frame_equal(loaded.score_frame(X_test), frame)
    assert loaded.threshold == served.threshold and loaded.policy_ == served.policy_

    # columns are aligned by name: order, extras and absent columns are all tolerated
    shuffled = X_test[X_test.columns[::-1]].assign(extra=1.0)
    np.testing.assert_array_equal(loaded.predict_pd(shuffled), served.predict_pd(X_test))
    partial = loaded.predict_pd(X_test.drop(columns=["monthly_income"]))
    assert partial.shape == (len(X_test),) and np.isfinite(partial).all()


def test_credit_risk_model_fit_clones_estimator():
    df = mixed_table(300, seed=9)
    X, y, _ = prepare_labelled_table(df, "outcome")
    from credit.models import build_pipeline

    pipe = build_pipeline(
        "logreg", ["monthly_income", "age", "late_payments"], ["region", "employed"]
    )
    crm = CreditRiskModel(pipe, threshold=0.4).fit(X, y)
    assert crm.estimator_ is not pipe and not hasattr(pipe, "classes_")
    assert crm.classes_.tolist() == [0, 1]
    assert set(crm.predict(X.head(20))) <= {0, 1}
    assert crm.get_policy().lgd == 0.65 and crm.get_scorecard().pdo == 20
