"""Population stability and decay: hand-checked PSI, stored bins, shifts, breaches."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from credit.monitoring import (
    BinnedReference,
    Thresholds,
    bin_counts,
    bin_reference,
    build_references,
    decay_report,
    feature_stability,
    psi,
    psi_breaches,
    stability,
)


def test_psi_matches_the_formula_by_hand() -> None:
    e, a = np.array([0.5, 0.3, 0.2]), np.array([0.4, 0.4, 0.2])
    by_hand = (0.4 - 0.5) * math.log(0.4 / 0.5) + (0.4 - 0.3) * math.log(0.4 / 0.3)
    assert psi(e, a) == pytest.approx(by_hand)
    assert psi(e, e) == 0.0
    # An empty bin is floored, not infinite.
    assert math.isfinite(psi(np.array([0.5, 0.5, 0.0]), np.array([0.4, 0.4, 0.2])))


def test_numeric_bins_come_from_the_reference_and_catch_a_unit_change() -> None:
    rng = np.random.default_rng(0)
    ref_values = pd.Series(rng.lognormal(7, 1, 20_000), name="amount")
    ref = bin_reference(ref_values)
    assert ref.kind == "numeric" and len(ref.edges) == 9
    assert np.allclose(ref.proportions[:-1], 0.1, atol=0.002) and ref.proportions[-1] == 0
    same = pd.Series(rng.lognormal(7, 1, 20_000))
    assert stability(ref, same) < 0.01
    assert stability(ref, same * 5) > 0.25  # amounts multiplied by 5 upstream
    with_nan = pd.concat([same, pd.Series([np.nan] * 2_000)])
    assert bin_counts(ref, with_nan)[-1] == 2_000


def test_edges_are_inclusive_on_the_right_and_infinities_land_in_the_end_bins() -> None:
    ref = BinnedReference("x", "numeric", (0.25, 0.25, 0.5, 0.0), 4, edges=(1.0, 2.0))
    counts = bin_counts(ref, pd.Series([1.0, 1.5, 2.0, 3.0, -np.inf, np.inf, np.nan]))
    assert counts.tolist() == [2, 2, 2, 1]


def test_categorical_bins_keep_unseen_levels_and_missing_apart() -> None:
    ref = bin_reference(pd.Series(["a"] * 60 + ["b"] * 40, name="channel"))
    assert ref.levels == ("a", "b") and ref.proportions == (0.6, 0.4, 0.0, 0.0)
    counts = bin_counts(ref, pd.Series(["a", "c", None, "b", "c"], dtype="object"))
    assert counts.tolist() == [1, 1, 2, 1]
    assert stability(ref, pd.Series(["c"] * 100)) > 0.25


def test_references_round_trip_as_json_and_give_the_same_psi() -> None:
    rng = np.random.default_rng(1)
    frame = pd.DataFrame(
        {"n": rng.normal(size=5_000), "c": rng.choice(["x", "y", "z"], 5_000), "k": 1}
    )
    refs = build_references(frame)
    stored = {
        k: BinnedReference.from_dict(json.loads(json.dumps(v.to_dict()))) for k, v in refs.items()
    }
    shifted = frame.assign(n=frame["n"] + 1)
    assert feature_stability(stored, shifted) == feature_stability(refs, shifted)
    figures = feature_stability(refs, shifted)
    assert figures["n"] > 0.25 and figures["c"] < 0.01 and figures["k"] == 0
    assert "missing" in refs["n"].bin_labels()


def test_breaches_by_threshold_worst_first() -> None:
    found = psi_breaches({"a": 0.05, "b": 0.12, "c": 0.4, "d": None}, Thresholds())
    assert [(b.metric, b.level) for b in found] == [("c", "act"), ("b", "watch")]
    assert psi_breaches({"a": 0.15}, Thresholds(watch=0.2, act=0.3)) == []


def test_decay_flags_a_model_that_stopped_ranking_and_a_band_off_its_range() -> None:
    rng = np.random.default_rng(2)
    y = rng.integers(0, 2, 4_000)
    good = np.clip(0.3 + 0.4 * y + rng.normal(0, 0.2, 4_000), 0.01, 0.99)
    bands = np.where(good > 0.5, "E", "A")
    ranges = {"A": (0.0, 0.4), "E": (0.5, 1.0)}
    ok = decay_report(good, y, bands, holdout_auc=0.9, band_pd_ranges=ranges)
    assert ok.roc_auc > 0.85 and ok.breaches == []
    assert {b["band"] for b in ok.bands} == {"A", "E"}
    noise = rng.uniform(0.01, 0.99, 4_000)
    noisy_bands = np.where(noise > 0.5, "E", "A")
    bad = decay_report(noise, y, noisy_bands, holdout_auc=0.9, band_pd_ranges=ranges)
    metrics = {b.metric for b in bad.breaches}
    assert "realized_roc_auc" in metrics and "band_A_default_rate" in metrics
    assert json.dumps(bad.to_dict())  # JSON-ready for the time series


# -- references stored with a version (issue 14, item 1) and the stability built on them -------
def _fitted_world():
    from builders import clean, demo_transactions, synthetic_label, train_model

    from credit.features import build_feature_snapshot

    tx = clean(demo_transactions(rows=4000, customers=200))
    X = build_feature_snapshot(tx, window_days=60)
    y = synthetic_label(X)
    model = train_model(X.iloc[:150], y.iloc[:150])
    return X, y, model


def test_model_references_hold_training_holdout_and_scored_population() -> None:
    from credit.monitoring import (
        LABEL_COLUMN,
        PD_COLUMN,
        model_references,
        population_stability,
    )

    X, y, model = _fitted_world()
    dist, holdout = model_references(
        model, X.iloc[:150], y.iloc[:150], X.iloc[150:], y.iloc[150:], snapshot=X, iv={"n_tx": 0.3}
    )
    json.dumps(dist)  # plain JSON for the registry
    assert set(dist) >= {"training", "holdout", "scored", "iv", "band_pd_ranges", "inputs"}
    assert set(dist["training"]["inputs"]) == set(model.feature_names_)
    assert dist["band_pd_ranges"]["A"][0] == 0.0 and dist["band_pd_ranges"]["E"][1] == 1.0
    assert list(dist["scored"]["band"]["levels"]) == list("ABCDE")
    assert len(holdout) == len(X) - 150 and {LABEL_COLUMN, PD_COLUMN} <= set(holdout.columns)
    assert np.allclose(holdout[PD_COLUMN], model.predict_pd(X.iloc[150:]))

    # The same population against its own reference: no drift; amounts x5: inputs breach.
    scored = model.score_frame(X, with_reasons=False)
    same = population_stability(dist, scored, X)
    assert same.reference == "scored" and same.score_psi == 0 and same.max_feature_psi == 0
    assert same.breaches == []
    money = [c for c in X.columns if c.startswith(("amount_", "value_", "debit_"))]
    x5 = X.copy()
    x5[money] = x5[money] * 5
    drifted = population_stability(dist, model.score_frame(x5, with_reasons=False), x5)
    assert drifted.feature_psi["amount_sum"] > 0.25
    assert any(b.metric == "feature_psi.amount_sum" and b.level == "act" for b in drifted.breaches)


def test_population_stability_falls_back_to_holdout_and_training_bins() -> None:
    from credit.monitoring import choose_reference, model_references

    X, y, model = _fitted_world()
    dist, _ = model_references(model, X.iloc[:150], y.iloc[:150], X.iloc[150:], y.iloc[150:])
    name, ref = choose_reference(dist)
    assert name == "holdout+training" and set(ref["inputs"]) == set(model.feature_names_)


def test_band_pd_ranges_follow_the_scorecard() -> None:
    from credit.monitoring import band_pd_ranges
    from credit.scorecard import Scorecard

    card = Scorecard.from_toml()
    ranges = band_pd_ranges(card.bands, card.pd_from_score)
    assert ranges["A"] == [0.0, pytest.approx(card.pd_from_score(580), abs=1e-6)]
    assert ranges["B"][0] == ranges["A"][1] and ranges["E"] == [ranges["D"][1], 1.0]
    assert 0.03 < ranges["A"][1] < 0.05  # policy.toml: A is PD <= ~4 %


def test_realized_outcomes_and_proxy_label_look_only_after_as_of() -> None:
    from credit.monitoring import realized_outcomes, realized_proxy_label

    as_of = pd.Timestamp("2024-01-10", tz="UTC")
    outcomes = pd.DataFrame(
        {
            "customer_id": ["a", "b", "c", "d"],
            "date": ["2024-01-09", "2024-01-20", "2024-03-01", "2024-01-15"],
            "defaulted": [1, 1, 1, 0],
        }
    )
    realized = realized_outcomes(outcomes, pd.Index(["a", "b", "c", "d", "z"]), as_of, 30)
    assert realized.to_dict() == {"a": 0, "b": 1, "c": 0, "d": 0}  # z: no outcome known

    rows = []
    for i in range(30):
        cid = f"c{i}"
        n = 1 if i < 10 else 8  # the first ten are disengaged after as_of
        for k in range(n):
            rows.append((cid, "acc", 1000.0 * (1 + i % 3), as_of + pd.Timedelta(days=1 + 2 * k)))
        rows.append((cid, "acc", 1e9, as_of - pd.Timedelta(days=1)))  # before: ignored
    tx = pd.DataFrame(rows, columns=["CustomerId", "AccountId", "Amount", "TransactionStartTime"])
    label = realized_proxy_label(tx, pd.Index([f"c{i}" for i in range(30)]), as_of, 30)
    assert label.loc[[f"c{i}" for i in range(10)]].all()
    assert label.sum() >= 10 and label.loc["c29"] == 0


def test_a_band_breaches_only_beyond_its_sampling_error() -> None:
    from credit.monitoring import rate_interval

    ranges = {"A": (0.0, 0.04), "C": (0.10, 0.24)}
    # Three customers in band C, none defaulted: rate 0 < 0.10, but 0/3 says nothing.
    p, y, bands = np.array([0.2, 0.2, 0.2, 0.02]), np.zeros(4), np.array(["C", "C", "C", "A"])
    few = decay_report(p, y, bands, holdout_auc=None, band_pd_ranges=ranges)
    assert [b.metric for b in few.breaches] == []
    strict = decay_report(p, y, bands, holdout_auc=None, band_pd_ranges=ranges, band_confidence=0)
    assert {b.metric for b in strict.breaches} == {"band_C_default_rate"}
    low, high = rate_interval(30, 100)  # Clopper-Pearson 95 %, e.g. R's binom.test(30, 100)
    assert low == pytest.approx(0.2124, abs=1e-4) and high == pytest.approx(0.3998, abs=1e-4)


def test_one_default_among_three_band_a_customers_is_no_breach() -> None:
    """The replay's false breach: band A (PD <= 3.85 %) held 3 customers of mean PD 0.8 %, one
    of whom defaulted. Wilson's interval put the rate above 6.1 % and breached; a binomial test
    against the ceiling gives P(>= 1 of 3) = 11 %: no evidence. Ten of thirty still breach."""
    ranges = {"A": (0.0, 0.038462), "E": (0.475, 1.0)}
    p = np.array([0.0078, 0.0078, 0.0078] + [0.6] * 50)
    bands = np.array(["A"] * 3 + ["E"] * 50)
    y = np.array([1, 0, 0] + [1, 0] * 25)
    assert decay_report(p, y, bands, holdout_auc=None, band_pd_ranges=ranges).breaches == []
    p30 = np.array([0.0078] * 30 + [0.6] * 50)
    y30 = np.array([1] * 10 + [0] * 20 + [1, 0] * 25)
    bands30 = np.array(["A"] * 30 + ["E"] * 50)
    found = decay_report(p30, y30, bands30, holdout_auc=None, band_pd_ranges=ranges).breaches
    assert [b.metric for b in found] == ["band_A_default_rate"]


def _first_breach(n: int, edge: float) -> int:
    """The fewest defaults among ``n`` customers of a band with PD range [0, ``edge``] that
    ``decay_report`` calls a breach (n + 1: none); breaching is monotone in the defaults."""

    def breaches(j: int) -> bool:
        y = np.r_[np.ones(j), np.zeros(n - j)]
        report = decay_report(
            np.full(n, edge / 2),
            y,
            np.full(n, "X"),
            holdout_auc=None,
            band_pd_ranges={"X": (0.0, edge)},
        )
        return bool(report.breaches)

    lo, hi = 0, n + 1
    while lo < hi:
        mid = (lo + hi) // 2
        if mid <= n and breaches(mid):
            hi = mid
        else:
            lo = mid + 1
    return lo


@pytest.mark.parametrize("edge", [0.0385, 0.1016, 0.2424, 0.4751])
def test_a_calibrated_band_breaches_at_most_at_the_nominal_rate(edge: float) -> None:
    """Exact false-alarm probability of a band whose true default rate sits on its PD ceiling
    (the policy's band edges), for band sizes up to 60: P(defaults >= the first breaching
    count). It must not pass the one-sided 2.5 % of a 95 % interval (Wilson: 11 % at n=3)."""
    from scipy.stats import binom

    worst = max(float(binom.sf(_first_breach(n, edge) - 1, n, edge)) for n in range(1, 61))
    assert worst <= 0.025 + 1e-9


def test_realized_proxy_label_is_the_training_label_of_the_night_it_matures() -> None:
    """Decay judges a score made at ``as_of`` with the label a retrain ``performance_days``
    later gives the same customers: same KMeans, same windows, same as-of (a transaction at
    exactly ``as_of`` belongs to the performance window, as in credit.label)."""
    from builders import clean, demo_transactions

    from credit.label import build_training_table
    from credit.monitoring import realized_proxy_label, typed_transactions

    raw = demo_transactions(rows=6000, customers=240, seed=3)
    tx = clean(raw)
    as_of = tx["TransactionStartTime"].max().normalize() - pd.Timedelta(days=10)
    # customers whose only performance-window activity is a burst at exactly as_of
    burst = tx[tx["TransactionStartTime"] < as_of].drop_duplicates("CustomerId").head(12).copy()
    after = tx["TransactionStartTime"] >= as_of
    tx = tx[~(after & tx["CustomerId"].isin(burst["CustomerId"]))]
    burst = pd.concat([burst] * 6, ignore_index=True)
    burst["TransactionStartTime"] = as_of
    burst["TransactionId"] = [f"TransactionId_b{i}" for i in range(len(burst))]
    burst["Amount"] = burst["Value"] = 50_000.0
    tx = pd.concat([tx, burst], ignore_index=True).sort_values("TransactionStartTime")
    table = build_training_table(
        tx, as_of=as_of + pd.Timedelta(days=7), observation_days=21, performance_days=7
    )
    assert table.cutoff == as_of
    realized = realized_proxy_label(typed_transactions(tx), table.X.index, as_of, 7)
    pd.testing.assert_series_equal(
        realized.astype("int64"), table.y.astype("int64"), check_names=False
    )


def _ranked(n: int, auc_shift: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``n`` customers, ~60 % defaults, PDs that rank them with a given separation."""
    rng = np.random.default_rng(seed)
    y = (rng.uniform(size=n) < 0.6).astype(int)
    p = 1 / (1 + np.exp(-(auc_shift * (y - 0.5) + rng.normal(0, 1, n))))
    return p, y


def test_an_auc_fall_breaches_only_beyond_the_sampling_error_of_both_aucs() -> None:
    """The replay's second false breach: a champion promoted on a holdout ROC-AUC of 0.779
    (bootstrap 95 % interval 0.707-0.851, 175 customers) realized 0.706 on 860 customers. The
    0.073 fall is within the two AUCs' sampling error (1.96 x 0.041): no breach. A fall to
    about 0.60 on the same figures still breaches."""
    from credit.monitoring import auc_standard_error, holdout_auc_se

    se = holdout_auc_se({"roc_auc_ci_low": 0.7072, "roc_auc_ci_high": 0.8514})
    assert se == pytest.approx(0.0368, abs=1e-3)
    assert auc_standard_error(0.706, 527, 333) == pytest.approx(0.0177, abs=2e-3)
    p, y = _ranked(860, 0.77, seed=5)
    report = decay_report(p, y, np.full(860, "E"), holdout_auc=0.779, holdout_se=se)
    assert 0.68 < report.roc_auc < 0.729 and report.breaches == []
    p, y = _ranked(860, 0.3, seed=5)
    fallen = decay_report(p, y, np.full(860, "E"), holdout_auc=0.779, holdout_se=se)
    assert fallen.roc_auc < 0.64 and [b.metric for b in fallen.breaches] == ["realized_roc_auc"]
    # without a known holdout error, the realized AUC's own error still applies
    assert decay_report(p, y, np.full(860, "E"), holdout_auc=0.779).breaches


def test_a_level_almost_absent_in_training_cannot_push_a_pd_to_zero() -> None:
    """The replay's band-A customers: ``share_provider_2`` was 0 for all training customers
    but one (standard deviation ~1e-4), so a customer using that provider got a z-score of
    21,790 and a PD of 1e-189 (band A, the largest loans). Inputs are clipped to the training
    range before the log and the scaling, in ``transform`` and in the fast scoring path."""
    from sklearn.linear_model import LogisticRegression

    from credit.preprocess import TabularPreprocessor

    rng = np.random.default_rng(0)
    n = 400
    X = pd.DataFrame(
        {
            "recency_days": rng.uniform(0, 30, n),
            "share_rare": np.r_[np.zeros(n - 1), 0.002],
            "top_channel": rng.choice(["a", "b"], n),
        }
    )
    y = (X["recency_days"] + rng.normal(0, 5, n) > 15).astype(int)
    prep = TabularPreprocessor().fit(X, y)
    clf = LogisticRegression().fit(prep.transform(X), y)
    clf.coef_[0, 1] = -0.05  # the rare share lowers the PD, as in the replay's model
    new = pd.DataFrame({"recency_days": [25.0], "share_rare": [1.0], "top_channel": ["a"]})
    z = prep.transform(new)
    assert np.abs(z).max() < 50  # before: ~20,000
    assert np.allclose(prep.fast_transform(new), z)
    assert clf.predict_proba(z)[0, 1] > 0.01


# -- what a person sees: report pages and artifact cells (issue 14, item 6) -------------------
def test_reports_open_in_a_browser_without_server_paths(monkeypatch) -> None:
    """The model card showed the server's absolute data path and was served as plain
    Markdown; the monitoring link needed a header a browser cannot send; the model-history
    table cut decisions mid-word at the UI's edge."""
    from credit.report_links import markdown_page, report_link
    from flows.monitor import _short
    from flows.report import source_label

    assert source_label("/srv/bank/secret/xente.parquet") == "xente.parquet"
    assert source_label("postgresql+psycopg://u:pw@db:5432/x#tx") == "postgresql+psycopg://...#tx"
    page = markdown_page("# Card <b>\n\n| a | b |\n|---|---|\n| 1 | 2 |", "Card")
    assert '<div class="scroll"><table>' in page and "<b>" not in page and "&lt;b&gt;" in page
    monkeypatch.setenv("BATI_ADMIN_TOKEN", "t" * 40)
    link = report_link("run-1", "monitoring.html", base_url="http://api:8000")
    assert link.startswith("http://api:8000/reports/run-1/monitoring.html?expires=")
    assert "&sig=" in link and "t" * 40 not in link
    monkeypatch.delenv("BATI_ADMIN_TOKEN")
    assert report_link("run-1", "m.html", base_url="http://api:8000").endswith("/run-1/m.html")
    long = "v5 promoted over champion v3: ROC-AUC 0.7628 vs 0.7188 (gain +0.0441, ...)"
    assert _short(long) == "v5 promoted over champion v3"
    assert len(_short("x" * 200)) == 60


def test_table_artifacts_round_for_the_reader():
    """Candidate metrics and the points table as people read them in the Prefect UI."""
    import math

    from flows.report import readable

    (row,) = readable(
        [
            {
                "woe": -3.3306690738754696e-16,
                "auc": 0.8114169412676875,
                "rate": float("nan"),
                "count": 593,
                "name": "logreg",
            }
        ]
    )
    assert str(row["woe"]) == "0.0" and row["auc"] == 0.8114
    assert math.isnan(row["rate"]) and row["count"] == 593 and row["name"] == "logreg"
