"""A boosted ensemble's reset drops from rewired trees, a forest's from the reset rows walked
again where they leave their path: both equal re-predicting the reset rows."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier

from credit.reasons import additive_top_impacts, columnwise_impacts, reason_impacts, top_order
from credit.tree_resets import boosted_reset_terms, forest_reset_terms


def _data(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    Z = rng.normal(size=(600, 6))
    Z[rng.random(Z.shape) < 0.1] = np.nan  # missing values: the trees learn their side
    y = ((np.nan_to_num(Z[:, 0]) + np.nan_to_num(Z[:, 1]) * np.nan_to_num(Z[:, 2])) > 0.3).astype(
        int
    )
    return Z, y


@pytest.mark.parametrize("reference_missing", [False, True])
@pytest.mark.parametrize(("leaves", "drop_splits"), [(7, None), (15, None), (15, 14)], ids=str)
def test_drops_are_the_decision_of_each_reset_row(
    reference_missing, leaves, drop_splits, monkeypatch
):
    """Per row and feature (one feature owning two columns), ``decision - drop`` is the
    classifier's own decision on the row with that feature's columns at the reference, NaN
    references included; ``decision`` is its decision_function bit for bit, in one block of
    rows or many; drop tables and rewired-leaf tables alike (15 leaves: 14 splits, over
    DROP_TABLE_SPLITS by default)."""
    import credit.tree_resets

    if drop_splits is not None:
        monkeypatch.setattr(credit.tree_resets, "DROP_TABLE_SPLITS", drop_splits)
    Z, y = _data()
    clf = HistGradientBoostingClassifier(max_iter=25, max_leaf_nodes=leaves, random_state=0).fit(
        Z, y
    )
    groups = [np.array([0]), np.array([1, 2]), np.array([3]), np.array([4]), np.array([5])]
    z_ref = np.nanmedian(Z, axis=0)
    if reference_missing:
        z_ref[[0, 2]] = np.nan  # a NaN reference follows each split's missing_go_to_left
    terms = boosted_reset_terms(clf, groups, z_ref)
    assert terms is not None
    decision, drop = terms(Z)
    np.testing.assert_array_equal(decision, clf.decision_function(Z))
    for j, cols in enumerate(groups):
        reset = Z.copy()
        reset[:, cols] = z_ref[cols]
        np.testing.assert_allclose(decision - drop[:, j], clf.decision_function(reset), atol=1e-12)
    assert (drop != 0).any(axis=0)[:3].all()  # the informative features move the score
    blocks = boosted_reset_terms(clf, groups, z_ref, block=7)
    assert blocks is not None
    np.testing.assert_array_equal(blocks(Z)[0], decision)
    np.testing.assert_allclose(blocks(Z)[1], drop, rtol=0, atol=1e-15)


def test_trees_too_large_to_tabulate_keep_the_stacked_path(monkeypatch):
    """An ensemble with a tree of more splits than tabulated, or whose tables would take too
    much memory, gives no terms, and the served model keeps re-predicting the resets that
    cross a split (the same impacts, slower)."""
    import credit.tree_resets
    from tests.unit.test_reasons import _fitted

    Z, y = _data(2)
    groups = [np.array([c]) for c in range(6)]
    clf = HistGradientBoostingClassifier(max_iter=5, max_leaf_nodes=31, random_state=0).fit(Z, y)
    assert boosted_reset_terms(clf, groups, np.zeros(6)) is None
    small = HistGradientBoostingClassifier(max_iter=5, max_leaf_nodes=7, random_state=0).fit(Z, y)
    assert boosted_reset_terms(small, groups, np.zeros(6)) is not None
    monkeypatch.setattr(credit.tree_resets, "MAX_TABLE_BYTES", 1_000)
    assert boosted_reset_terms(small, groups, np.zeros(6)) is None
    monkeypatch.undo()
    monkeypatch.setattr(credit.tree_resets, "MAX_TABLE_SPLITS", 2)  # the served trees: larger
    model, X = _fitted("hist_gb")
    view = model._columnwise()
    assert view is not None and view.terms is None and view.thresholds is not None


def test_a_feature_no_tree_tests_drops_nothing_and_unknown_ensembles_are_refused():
    Z, y = _data(1)
    Z = np.column_stack([Z[:, :3], np.ones(len(Z))])  # column 3 constant: never split on
    clf = HistGradientBoostingClassifier(max_iter=10, max_leaf_nodes=7, random_state=0).fit(Z, y)
    groups = [np.array([c]) for c in range(4)]
    terms = boosted_reset_terms(clf, groups, np.array([0.0, 0.0, 0.0, 5.0]))
    assert terms is not None
    drop = terms(Z)[1]
    assert drop.shape == (len(Z), 4) and (drop[:, 3] == 0).all() and drop[:, :3].any()
    cats = pd.DataFrame({"a": np.nan_to_num(Z[:, 0]), "c": (Z[:, 1] > 0).astype(int)})
    categorical = HistGradientBoostingClassifier(
        max_iter=10, categorical_features=[1], random_state=0
    ).fit(cats.to_numpy(), y)
    assert boosted_reset_terms(categorical, [np.array([0]), np.array([1])], np.zeros(2)) is None
    multi = HistGradientBoostingClassifier(max_iter=5).fit(Z[:, :3], np.arange(len(Z)) % 3)
    assert boosted_reset_terms(multi, groups, np.zeros(3)) is None


def test_served_hist_gb_never_re_predicts_reset_rows():
    """The served boosted model's reasons come from one pass of its trees and their rewired
    copies: its head is called for no reset row, and the top reasons equal the full impact
    matrix's (the same as re-predicting every stacked row)."""
    from tests.unit.test_reasons import _fitted

    model, X = _fitted("hist_gb")
    view = model._columnwise()
    assert view is not None and view.terms is not None and view.thresholds is None
    calls: list[int] = []

    def counting(Z):
        calls.append(len(Z))
        return view.head(Z)

    counted = replace(view, head=counting)
    Xa = model._align(X)
    base, impact = columnwise_impacts(counted, Xa)
    got = additive_top_impacts(counted, Xa, top=3)
    assert calls == [] and got is not None
    stacked_base, stacked = reason_impacts(
        lambda b: model.estimator_.predict_proba(b)[:, 1], Xa, model.reference_
    )
    np.testing.assert_array_equal(base, stacked_base)
    np.testing.assert_allclose(impact, stacked, rtol=0, atol=1e-12)
    pd_, order, chosen = got
    expected = top_order(impact, 3, 1e-6)
    reason = np.take_along_axis(impact, expected, axis=1) > 1e-6
    np.testing.assert_array_equal(pd_, base)
    assert reason.any()
    assert np.array_equal(np.where(reason, order, -1), np.where(reason, expected, -1))


@pytest.mark.parametrize("reference_missing", [False, True])
@pytest.mark.parametrize("depth", [1, 3, 8, None])
def test_forest_drops_are_the_probability_of_each_reset_row(reference_missing, depth):
    """Per row and feature (one feature owning two columns), ``proba - drop`` is the forest's
    own probability of the row with that feature's columns at the reference, NaN values and
    references included, trees of any depth; ``proba`` is predict_proba bit for bit, in one
    block of rows or many."""
    Z, y = _data(3)
    clf = RandomForestClassifier(n_estimators=15, max_depth=depth, random_state=0).fit(Z, y)
    groups = [np.array([0]), np.array([1, 2]), np.array([3]), np.array([4]), np.array([5])]
    z_ref = np.nanmedian(Z, axis=0) + 1e-9  # between two float32 values: compared as float32
    if reference_missing:
        z_ref[[0, 2]] = np.nan
    terms = forest_reset_terms(clf, groups, z_ref)
    assert terms is not None
    proba, drop = terms(Z)
    np.testing.assert_array_equal(proba, clf.predict_proba(Z)[:, 1])
    for j, cols in enumerate(groups):
        reset = Z.copy()
        reset[:, cols] = z_ref[cols]
        np.testing.assert_allclose(proba - drop[:, j], clf.predict_proba(reset)[:, 1], atol=1e-12)
    assert (drop != 0).any(axis=0)[:3].all()  # the informative features move the PD
    blocks = forest_reset_terms(clf, groups, z_ref, block=7)
    assert blocks is not None
    np.testing.assert_array_equal(blocks(Z)[0], proba)
    np.testing.assert_allclose(blocks(Z)[1], drop, rtol=0, atol=1e-15)


def test_forests_of_other_shapes_are_refused():
    Z, y = _data(4)
    Z = np.nan_to_num(Z)
    groups = [np.array([c]) for c in range(6)]
    three = RandomForestClassifier(n_estimators=3, random_state=0).fit(Z, np.arange(len(Z)) % 3)
    assert forest_reset_terms(three, groups, np.zeros(6)) is None
    two = RandomForestClassifier(n_estimators=3, random_state=0).fit(Z, np.c_[y, y])
    assert forest_reset_terms(two, groups, np.zeros(6)) is None
