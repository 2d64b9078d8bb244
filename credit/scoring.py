"""The served credit-risk model: PD, score, band, loan offer and reason codes in one object.

:class:`CreditRiskModel` is what goes into the model registry (skops) and what the API loads.
It wraps a fitted estimator (a candidate Pipeline, possibly inside CalibratedClassifierCV) and
keeps everything else it needs as plain data (lists, dicts, floats) so skops can persist it:
the ordered input columns, their types, the reference values for reason codes, the decision
threshold, and the scorecard and loan-policy configuration.
"""

from __future__ import annotations

import weakref
from typing import Any

import numpy as np
import pandas as pd
from scipy.special import expit
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.utils import get_tags
from sklearn.utils.validation import check_is_fitted

from credit.models import single_threaded
from credit.policy import LoanPolicy, spending_capacity
from credit.preprocess import TabularPreprocessor, validate_frame
from credit.reasons import (
    ColumnwiseModel,
    additive_top_impacts,
    columnwise_impacts,
    reason_codes,
    reasons_at,
    reference_values,
    top_reasons,
)
from credit.scorecard import Scorecard
from credit.tree_resets import boosted_reset_terms, forest_reset_terms
from credit.woe import binary_target
from credit.woe_scorecard import WoEScorecard, gc_paused

SCORE_COLUMNS = (
    "probability",
    "risk_class",
    "score",
    "band",
    "approved",
    "amount",
    "duration_days",
    "expected_loss",
    "reasons",
)


def _as_dict(obj: Any, cls: type) -> dict[str, Any]:
    if obj is None:
        return cls.from_toml().to_dict()
    if isinstance(obj, dict):
        return cls.from_dict(obj).to_dict()  # validates
    return obj.to_dict()


def _find_preprocessor(estimator: Any) -> TabularPreprocessor | WoEScorecard | None:
    """The step naming the model columns (a TabularPreprocessor, or a WoEScorecard that bins the
    raw columns itself) inside a Pipeline, possibly wrapped in CalibratedClassifierCV."""
    kinds = (TabularPreprocessor, WoEScorecard)
    seen = 0
    while estimator is not None and seen < 5:
        seen += 1
        if isinstance(estimator, kinds):
            return estimator
        steps = getattr(estimator, "named_steps", None)
        if steps is not None:
            found = steps.get("prep", list(steps.values())[-1] if steps else None)
            if isinstance(found, kinds):
                return found
        estimator = getattr(estimator, "estimator", None)
    return None


class CreditRiskModel(ClassifierMixin, BaseEstimator):
    """PD model plus scorecard, loan policy and reason codes.

    Parameters: ``estimator`` (a classifier with ``predict_proba`` taking the customer
    DataFrame), ``threshold`` (PD at or above which a customer is "high" risk), ``scorecard``
    and ``policy`` (plain dicts as produced by ``Scorecard.to_dict`` / ``LoanPolicy.to_dict``;
    None means credit/policy.toml), ``model_name``.
    """

    def __init__(
        self,
        estimator: Any = None,
        *,
        threshold: float = 0.5,
        scorecard: dict[str, Any] | None = None,
        policy: dict[str, Any] | None = None,
        model_name: str = "model",
    ) -> None:
        self.estimator, self.threshold, self.model_name = estimator, threshold, model_name
        self.scorecard, self.policy = scorecard, policy  # plain dicts (or None), validated at fit

    # -- construction -------------------------------------------------------------------------

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_class = False  # a PD model: binary only
        if _find_preprocessor(self.estimator) is not None:  # imputes and encodes strings
            tags.input_tags.allow_nan = tags.input_tags.string = True
        elif self.estimator is not None:
            tags.input_tags.allow_nan = get_tags(self.estimator).input_tags.allow_nan
        return tags

    def fit(self, X: pd.DataFrame | np.ndarray, y: pd.Series | np.ndarray) -> CreditRiskModel:
        """Fit a clone of ``estimator`` on ``(X, y)`` and record the input schema.

        ``X`` is a DataFrame or an array (whose columns are then named ``x0, x1, ...``); ``y``
        has two classes, the second (sorted) being high risk.
        """
        if self.estimator is None:
            raise ValueError("CreditRiskModel needs an estimator")
        frame = validate_frame(self, X, reset=True)
        if not all(isinstance(c, str) for c in frame.columns):
            frame = frame.rename(columns=str)
        self._set_schema(frame, y, self.estimator, named=isinstance(X, pd.DataFrame))
        self.estimator_ = clone(self.estimator).fit(self._align(frame), y)
        return self

    @classmethod
    def from_search(
        cls,
        best_estimator: Any,
        X_train: pd.DataFrame,
        y_train: pd.Series,
        threshold: float,
        scorecard: Scorecard | dict[str, Any] | None = None,
        policy: LoanPolicy | dict[str, Any] | None = None,
        *,
        model_name: str | None = None,
    ) -> CreditRiskModel:
        """Wrap an estimator already fitted on ``(X_train, y_train)`` (no refit)."""
        check_is_fitted(best_estimator)
        name = model_name or type(_final_step(best_estimator)).__name__
        model = cls(
            estimator=clone(best_estimator),
            threshold=float(threshold),
            scorecard=_as_dict(scorecard, Scorecard),
            policy=_as_dict(policy, LoanPolicy),
            model_name=name,
        )
        model._set_schema(X_train, y_train, best_estimator)
        model.estimator_ = best_estimator
        return model

    def _set_schema(
        self, X: pd.DataFrame, y: pd.Series, estimator: Any, *, named: bool = True
    ) -> None:
        """Record the model columns, their types, reference values and classes; ``named`` is
        False when ``X`` was built from an unnamed array."""
        prep = _find_preprocessor(estimator)
        if prep is not None and (list(prep.numeric) or list(prep.categorical)):
            numeric, categorical = list(prep.numeric), list(prep.categorical)
        else:
            from credit.models import split_columns

            numeric, categorical = split_columns(X)
        missing = [c for c in numeric + categorical if c not in X.columns]
        if missing:
            raise ValueError(f"training data lacks model columns {missing[:10]}")
        self.numeric_ = [str(c) for c in numeric]
        self.categorical_ = [str(c) for c in categorical]
        self.feature_names_ = [str(c) for c in X.columns if c in set(numeric + categorical)]
        self.n_features_in_ = len(self.feature_names_)
        if named:
            self.feature_names_in_ = np.asarray(self.feature_names_, dtype=object)
        elif hasattr(self, "feature_names_in_"):
            del self.feature_names_in_
        _, self.classes_ = binary_target(y, len(X), type(self).__name__)
        self.reference_ = reference_values(X, self.numeric_, self.categorical_)
        self.scorecard_ = _as_dict(self.scorecard, Scorecard)
        self.policy_ = _as_dict(self.policy, LoanPolicy)

    # -- prediction ---------------------------------------------------------------------------

    def _align(self, X: pd.DataFrame) -> pd.DataFrame:
        """Model columns in training order; absent ones NaN, numerics float, categoricals str."""
        if not isinstance(X, pd.DataFrame):
            X = validate_frame(self, X, reset=False)
        elif not all(isinstance(c, str) for c in X.columns):
            X = X.rename(columns=str)
        numeric = set(self.numeric_)
        columns: dict[str, np.ndarray] = {}
        for col in self.feature_names_:
            if col not in X.columns:
                columns[col] = np.full(
                    len(X), np.nan, dtype=np.float64 if col in numeric else object
                )
            elif col in numeric:
                values = X[col]
                if values.dtype != np.float64:  # already float64: as is (one copy below)
                    values = pd.to_numeric(values, errors="coerce").astype("float64")
                columns[col] = values.to_numpy(dtype=np.float64, copy=True)
            else:
                vals = X[col].to_numpy(dtype=object)
                present = ~pd.isna(vals)
                fixed = np.full(len(vals), np.nan, dtype=object)
                # a string column holds str already: no round trip through a numpy str array
                string = pd.api.types.is_string_dtype(X[col].dtype) and X[col].dtype != object
                fixed[present] = vals[present] if string else vals[present].astype(str)
                columns[col] = fixed
        # every column is a new array: no copy into consolidated blocks
        return pd.DataFrame(columns, index=X.index, columns=self.feature_names_, copy=False)

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        """``(n, 2)`` class probabilities; column 1 is the PD (probability of high risk)."""
        check_is_fitted(self, "estimator_")
        Xa = self._align(X)
        with single_threaded():
            return self.estimator_.predict_proba(Xa)

    def predict_pd(self, X: pd.DataFrame) -> np.ndarray:
        """Probability of default (high risk) per row."""
        return self.predict_proba(X)[:, 1]

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        """The high-risk class (1 for a 0/1 target) where PD >= threshold, else the other."""
        high = self.predict_pd(X) >= self.threshold
        return self.classes_[high.astype(int)]

    def get_scorecard(self) -> Scorecard:
        check_is_fitted(self, "scorecard_")
        return Scorecard.from_dict(self.scorecard_)

    def points_table(self) -> pd.DataFrame | None:
        """The scorecard's points table (feature, bin, count, event_rate, woe, iv, points) when
        the model is a WoE scorecard, else None."""
        check_is_fitted(self, "estimator_")
        card = scorecard_estimator(self.estimator_)
        return None if card is None else card.points_table()

    def get_policy(self) -> LoanPolicy:
        check_is_fitted(self, "policy_")
        return LoanPolicy.from_dict(self.policy_)

    def score_frame(
        self, X: pd.DataFrame, *, with_reasons: bool = True, top: int = 3
    ) -> pd.DataFrame:
        """One row per customer (index of ``X``): probability, risk_class, score, band, approved,
        amount, duration_days, expected_loss and reasons (list of dicts; [] when disabled)."""
        check_is_fitted(self, "estimator_")
        Xa = self._align(X)
        with single_threaded():
            return self._score_frame(X, Xa, with_reasons=with_reasons, top=top)

    def _score_frame(
        self, X: pd.DataFrame, Xa: pd.DataFrame, *, with_reasons: bool, top: int
    ) -> pd.DataFrame:
        card = scorecard_estimator(self.estimator_)
        view = self._columnwise() if len(Xa) and card is None else None
        if with_reasons and len(Xa) and card is not None and _only_step(self.estimator_, card):
            pd_, reasons = card.pd_and_reasons(Xa, top=top)  # reasons: points lost, one binning
        elif view is not None and with_reasons:  # PD and reset impacts from one transform
            features = [f for f in self.reference_ if f in Xa.columns]
            additive = additive_top_impacts(view, Xa, top=top)  # a logistic head: the top only
            if additive is not None:
                pd_, order, chosen = additive
                reasons = reasons_at(Xa, order, chosen, self.reference_, features=features)
            else:
                pd_, impact = columnwise_impacts(view, Xa)
                reasons = top_reasons(Xa, impact, self.reference_, features=features, top=top)
        elif view is not None:  # the estimator's own head on the numpy preprocessing
            pd_, reasons = np.asarray(view.head(view.transform(Xa)), dtype=float), None
        else:
            pd_, reasons = self.estimator_.predict_proba(Xa)[:, 1], None
        scorecard, policy = self.get_scorecard(), self.get_policy()
        score = scorecard.score(pd_)
        offer = policy.recommend(pd_, score, spending_capacity(X, policy.capacity).to_numpy())
        frame = pd.DataFrame(
            {
                "probability": pd_,
                "risk_class": np.where(pd_ >= self.threshold, "high", "low"),
                "score": score,
            },
            index=X.index,
        )
        for col in ("band", "approved", "amount", "duration_days", "expected_loss"):
            frame[col] = offer[col].to_numpy()
        if reasons is None and with_reasons and len(Xa) and card is not None:
            reasons = card.reason_codes(Xa, top=top)  # points lost against the best bins
        elif reasons is None and with_reasons and len(Xa):
            reasons = self._reasons(Xa, top)
        elif reasons is None:
            with gc_paused():  # many empty lists: no collector passes over them meanwhile
                reasons = [[] for _ in range(len(Xa))]
        frame["reasons"] = pd.Series(reasons, index=X.index, dtype=object)
        return frame

    def _reasons(self, Xa: pd.DataFrame, top: int) -> list[list[dict[str, Any]]]:
        """Reset-to-reference reasons by re-predicting the stacked raw rows (any estimator)."""
        return reason_codes(
            lambda batch: self.estimator_.predict_proba(batch)[:, 1], Xa, self.reference_, top=top
        )

    def transformed(self, X: pd.DataFrame) -> tuple[ColumnwiseModel, np.ndarray] | None:
        """``(view, Z)``: this model as a columnwise transform + head
        (:class:`credit.reasons.ColumnwiseModel`) and ``X`` aligned and transformed once by it,
        so that ``view.head(Z)`` is the PD; None when the estimator's structure is not one the
        view knows."""
        check_is_fitted(self, "estimator_")
        view = self._columnwise()
        if view is None:
            return None
        with single_threaded():
            return view, view.transform(self._align(X))

    def _columnwise(self) -> ColumnwiseModel | None:
        """The estimator as transform + head (:class:`credit.reasons.ColumnwiseModel`), built
        once per fitted estimator; None when its structure is not one this knows."""
        cached = _VIEWS.get(self)
        if cached is not None and cached[0] is self.estimator_:
            return cached[1]
        view = columnwise_view(self.estimator_, self.feature_names_, self.reference_)
        _VIEWS[self] = (self.estimator_, view)
        return view


#: A forest's reasons for fewer rows than this come from one stacked call of its head (below
#: ~50 rows on the demo's 150 trees that is cheaper than walking the trees: 20 ms against 30).
FOREST_TERMS_MIN_ROWS = 48

_VIEWS: weakref.WeakKeyDictionary[CreditRiskModel, tuple[Any, ColumnwiseModel | None]] = (
    weakref.WeakKeyDictionary()
)


def columnwise_view(
    estimator: Any, features: list[str], reference: dict[str, Any]
) -> ColumnwiseModel | None:
    """``Pipeline(prep=TabularPreprocessor, clf)``, possibly inside a one-fold
    ``CalibratedClassifierCV`` (sigmoid or isotonic), as a :class:`ColumnwiseModel`: the
    preprocessing's column groups, the classifier (and calibrator) as head; a logistic
    regression as an exact linear head, a boosted ensemble as an additive head (its rewired
    trees, :mod:`credit.tree_resets`), a random forest as an additive head too (its trees'
    mean probability, walked again where a reset leaves a row's path) that keeps its split
    thresholds for calls of fewer than :data:`FOREST_TERMS_MIN_ROWS` rows."""
    calibrator = None
    if hasattr(estimator, "calibrated_classifiers_"):
        ccs = estimator.calibrated_classifiers_
        if len(ccs) != 1 or ccs[0].method not in ("sigmoid", "isotonic"):
            return None
        calibrator, estimator = ccs[0].calibrators[0], ccs[0].estimator
        estimator = getattr(estimator, "estimator", estimator)  # FrozenEstimator
    steps = getattr(estimator, "named_steps", None)
    if not steps or list(steps) != ["prep", "clf"]:
        return None
    prep, clf = steps["prep"], steps["clf"]
    if not isinstance(prep, TabularPreprocessor):
        return None
    groups = prep.column_groups()
    if groups is None or any(f not in groups for f in reference):
        return None
    ref_row = pd.DataFrame([{f: reference.get(f) for f in features}], columns=features)
    for col in prep.numeric_:
        ref_row[col] = ref_row[col].astype(float)
    z_ref = prep.transform(ref_row)[0]
    response = getattr(clf, "decision_function", None) if calibrator is not None else None

    def link(decision: np.ndarray) -> np.ndarray:  # decision (or PD) -> calibrated PD
        if calibrator is None:
            return decision
        out = np.asarray(calibrator.predict(np.ravel(decision)), dtype=float)
        out[(out > 1.0) & (out <= 1.0 + 1e-5)] = 1.0  # as CalibratedClassifierCV does
        return out.reshape(np.shape(decision))

    def head(Z: np.ndarray) -> np.ndarray:
        raw = response(Z) if response is not None else clf.predict_proba(Z)[:, 1]
        return link(raw)

    linear, terms = None, None
    column_groups = [groups[f] for f in reference]
    z_reference = np.asarray(z_ref, dtype=float)
    if isinstance(clf, LogisticRegression) and clf.coef_.shape[0] == 1:
        if calibrator is not None and response is None:
            return None
        linear = (clf.coef_[0].astype(float), float(clf.intercept_[0]))
    elif isinstance(clf, HistGradientBoostingClassifier):  # PD: expit or calibrator of the raw
        terms = boosted_reset_terms(clf, column_groups, z_reference)
    elif isinstance(clf, RandomForestClassifier):  # PD: the mean leaf probability (calibrated)
        terms = forest_reset_terms(clf, column_groups, z_reference)
    averaged = isinstance(clf, RandomForestClassifier)  # its terms are probabilities already
    # a forest walks every tree for each call (~0.2 ms a tree): a few rows cost less as one
    # stacked call of the head on the resets that cross a split (its thresholds kept for that)
    thresholds = _split_thresholds(clf, len(z_ref)) if terms is None or averaged else None
    additive = linear is not None or terms is not None
    return ColumnwiseModel(
        transform=prep.fast_transform,
        head=head,
        groups=column_groups,
        z_reference=z_reference,
        linear=linear,
        link=None if not additive else (expit if calibrator is None and not averaged else link),
        terms=terms,
        thresholds=thresholds,
        float32=thresholds is not None and hasattr(clf, "estimators_"),
        terms_min_rows=FOREST_TERMS_MIN_ROWS if averaged else 0,
    )


def _split_thresholds(clf: Any, width: int) -> list[np.ndarray] | None:
    """Per input column of a tree ensemble, its sorted distinct split thresholds (None for
    other classifiers)."""
    pairs: list[tuple[np.ndarray, np.ndarray]] = []
    if isinstance(clf, HistGradientBoostingClassifier):
        for trees in clf._predictors:
            for tree in trees:
                nodes = tree.nodes[~tree.nodes["is_leaf"].astype(bool)]
                if nodes["is_categorical"].any():
                    return None
                pairs.append((nodes["feature_idx"], nodes["num_threshold"]))
    elif isinstance(clf, RandomForestClassifier):
        for est in clf.estimators_:
            split = est.tree_.feature >= 0
            pairs.append((est.tree_.feature[split], est.tree_.threshold[split]))
    else:
        return None
    feature = np.concatenate([p[0] for p in pairs]).astype(np.intp)
    value = np.concatenate([p[1] for p in pairs]).astype(float)
    return [np.unique(value[feature == c]) for c in range(width)]


def scorecard_estimator(estimator: Any) -> WoEScorecard | None:
    """The WoEScorecard that makes the PD of ``estimator`` (itself, or the last step of a
    Pipeline), or None: a calibrated or other model has no points that add up to its score."""
    if isinstance(estimator, WoEScorecard):
        return estimator
    steps = getattr(estimator, "steps", None)
    if steps and isinstance(steps[-1][1], WoEScorecard):
        return steps[-1][1]
    return None


def _only_step(estimator: Any, card: WoEScorecard) -> bool:
    """Whether ``card`` alone makes the PD of ``estimator`` (itself or a one-step Pipeline)."""
    return estimator is card or len(getattr(estimator, "steps", ())) == 1


def _final_step(estimator: Any) -> Any:
    while True:
        if hasattr(estimator, "steps"):
            estimator = estimator.steps[-1][1]
        elif hasattr(estimator, "estimator") and estimator.estimator is not None:
            estimator = estimator.estimator
        else:
            return estimator
