"""Preprocessing that lives inside every candidate estimator.

Numeric columns: signed ``log1p`` on heavy-tailed columns (chosen at fit from the training skew),
median imputation with missing-value indicators, optional standard scaling.
Categorical columns: cast to strings, constant ``"missing"`` imputation, then one-hot encoding
(rare levels pooled, unknown levels mapped to the pooled level or ignored) or weight-of-evidence
encoding (:class:`credit.woe.WoEEncoder`).

Everything here is a module-level class or function so fitted pipelines round-trip through skops.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, StandardScaler
from sklearn.utils.validation import check_is_fitted, validate_data

ENCODINGS = ("onehot", "woe")


def signed_log1p(x: np.ndarray) -> np.ndarray:
    """``sign(x) * log1p(|x|)``: compresses heavy tails on both sides, keeps 0 at 0 and NaN as NaN."""
    x = np.asarray(x, dtype=float)
    return np.sign(x) * np.log1p(np.abs(x))


def to_str_object(X: pd.DataFrame | np.ndarray) -> pd.DataFrame | np.ndarray:
    """Cast categorical values to python ``str`` in an object array; missing values become NaN."""
    if isinstance(X, pd.DataFrame):
        return pd.DataFrame(
            {c: _str_column(X[c].to_numpy(dtype=object)) for c in X.columns}, index=X.index
        )
    arr = np.asarray(X, dtype=object)
    if arr.ndim == 1:
        return _str_column(arr)
    return np.column_stack([_str_column(arr[:, j]) for j in range(arr.shape[1])])


def _str_column(values: np.ndarray) -> np.ndarray:
    out = np.full(values.shape, np.nan, dtype=object)
    present = ~pd.isna(values)
    out[present] = values[present].astype(str)
    return out


class SignedLog1p(TransformerMixin, BaseEstimator):
    """Apply :func:`signed_log1p` to the heavy-tailed columns only.

    A column is heavy-tailed when its training skewness exceeds ``skew_threshold`` in absolute
    value and its largest absolute value exceeds ``min_abs_max`` (so shares in [0, 1] and 0/1 flags
    stay linear). NaN passes through untouched (imputation comes after).
    """

    def __init__(self, skew_threshold: float = 1.0, min_abs_max: float = 1.0) -> None:
        self.skew_threshold = skew_threshold
        self.min_abs_max = min_abs_max

    def fit(self, X, y=None) -> SignedLog1p:
        X = validate_data(self, X, dtype=np.float64, ensure_all_finite="allow-nan", reset=True)
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = np.nanmean(X, axis=0) if X.shape[0] else np.zeros(X.shape[1])
            centred = X - mean
            m2 = np.nanmean(centred**2, axis=0)
            m3 = np.nanmean(centred**3, axis=0)
            skew = np.where(m2 > 0, m3 / np.power(m2, 1.5), 0.0)
            abs_max = np.nanmax(np.abs(X), axis=0)
        skew = np.nan_to_num(skew, nan=0.0)
        abs_max = np.nan_to_num(abs_max, nan=0.0)
        self.log_columns_ = (np.abs(skew) > self.skew_threshold) & (abs_max > self.min_abs_max)
        return self

    def transform(self, X) -> np.ndarray:
        check_is_fitted(self, "log_columns_")
        X = validate_data(self, X, dtype=np.float64, ensure_all_finite="allow-nan", reset=False)
        out = X.copy()
        out[:, self.log_columns_] = signed_log1p(X[:, self.log_columns_])
        return out

    def get_feature_names_out(self, input_features=None) -> np.ndarray:
        check_is_fitted(self, "log_columns_")
        if input_features is None:
            input_features = getattr(
                self, "feature_names_in_", [f"x{i}" for i in range(self.n_features_in_)]
            )
        return np.asarray(input_features, dtype=object)


def _woe_encoder():
    from credit.woe import WoEEncoder  # written by the features helper; imported lazily

    return WoEEncoder(n_bins=10, min_bin_share=0.05, smoothing=0.5)


def make_preprocessor(
    numeric: Sequence[str],
    categorical: Sequence[str],
    *,
    encoding: str = "onehot",
    scale: bool = True,
    min_frequency: float | int | None = 0.01,
) -> ColumnTransformer:
    """Column transformer for a customer table; output is a dense float matrix.

    ``encoding`` selects one-hot ("onehot") or weight-of-evidence ("woe") for categoricals.
    One-hot pools levels rarer than ``min_frequency`` and sends unseen levels to that pool
    (or ignores them when no pool exists).
    """
    if encoding not in ENCODINGS:
        raise ValueError(f"encoding must be one of {ENCODINGS}, got {encoding!r}")
    numeric_steps: list[tuple[str, object]] = [
        ("log", SignedLog1p()),
        ("impute", SimpleImputer(strategy="median", add_indicator=True, keep_empty_features=True)),
    ]
    if scale:
        numeric_steps.append(("scale", StandardScaler()))
    cat_steps: list[tuple[str, object]] = [
        ("as_str", FunctionTransformer(to_str_object, feature_names_out="one-to-one")),
        ("impute", SimpleImputer(strategy="constant", fill_value="missing")),
    ]
    if encoding == "onehot":
        cat_steps.append(
            (
                "onehot",
                OneHotEncoder(
                    handle_unknown="infrequent_if_exist",
                    min_frequency=min_frequency,
                    sparse_output=False,
                    dtype=np.float64,
                ),
            )
        )
    else:
        cat_steps = [cat_steps[0], ("woe", _woe_encoder())]
        if scale:
            cat_steps.append(("scale", StandardScaler()))
    transformers = []
    if numeric:
        transformers.append(("num", Pipeline(numeric_steps), list(numeric)))
    if categorical:
        transformers.append(("cat", Pipeline(cat_steps), list(categorical)))
    if not transformers:
        raise ValueError("no feature columns given")
    return ColumnTransformer(transformers, remainder="drop", sparse_threshold=0.0)


class TabularPreprocessor(TransformerMixin, BaseEstimator):
    """Estimator wrapper around :func:`make_preprocessor` so the encoding is a tunable
    hyper-parameter (``prep__encoding`` in a grid)."""

    def __init__(
        self,
        numeric: Sequence[str] = (),
        categorical: Sequence[str] = (),
        encoding: str = "onehot",
        scale: bool = True,
        min_frequency: float | int | None = 0.01,
    ) -> None:
        self.numeric = numeric
        self.categorical = categorical
        self.encoding = encoding
        self.scale = scale
        self.min_frequency = min_frequency

    def fit(self, X: pd.DataFrame, y=None) -> TabularPreprocessor:
        if not isinstance(X, pd.DataFrame):
            raise TypeError("TabularPreprocessor needs a DataFrame with named columns")
        self.transformer_ = make_preprocessor(
            list(self.numeric),
            list(self.categorical),
            encoding=self.encoding,
            scale=self.scale,
            min_frequency=self.min_frequency,
        ).fit(X, y)
        self.feature_names_in_ = np.asarray(X.columns, dtype=object)
        self.n_features_in_ = X.shape[1]
        return self

    def transform(self, X: pd.DataFrame) -> np.ndarray:
        check_is_fitted(self, "transformer_")
        return np.asarray(self.transformer_.transform(X), dtype=np.float64)

    def get_feature_names_out(self, input_features=None) -> np.ndarray:
        check_is_fitted(self, "transformer_")
        return self.transformer_.get_feature_names_out()
