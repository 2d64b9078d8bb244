"""Preprocessing that lives inside every candidate estimator.

Numeric columns: signed ``log1p`` on heavy-tailed columns (chosen at fit from the training skew),
median imputation with missing-value indicators, optional standard scaling.
Categorical columns: cast to strings, constant ``"missing"`` imputation, then one-hot encoding
(rare levels pooled, unknown levels mapped to the pooled level or ignored) or weight-of-evidence
encoding (:class:`credit.woe.WoEEncoder`).

Everything here is a module-level class or function so fitted pipelines round-trip through skops.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
import pandas as pd
import scipy.sparse as sp
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, StandardScaler
from sklearn.utils.validation import check_is_fitted, validate_data

ENCODINGS = ("onehot", "woe")


def array_column_names(n: int) -> list[str]:
    """The names scikit-learn gives the columns of an unnamed array: ``x0, x1, ...``."""
    return [f"x{i}" for i in range(n)]


_SCALARS = (str, bytes, int, float, bool, np.number, np.bool_)


def validate_frame(estimator: BaseEstimator, X, *, reset: bool) -> pd.DataFrame:
    """Validate ``X`` as scikit-learn's ``validate_data`` does, but return a DataFrame.

    A DataFrame keeps its columns and dtypes; an array becomes a DataFrame with the columns the
    estimator was fitted on (``feature_names_in_``) or ``x0, x1, ...``, object columns holding
    only numbers becoming float. Sets or checks ``n_features_in_`` and ``feature_names_in_``
    (``reset``). Raises TypeError for sparse input and ValueError for 1-D, empty or complex
    data and for +-inf in a numeric column; NaN passes (missing values are handled downstream).
    """
    if sp.issparse(X):
        raise TypeError(
            f"{type(estimator).__name__} does not accept sparse input: "
            "pass a dense array or a DataFrame"
        )
    if isinstance(X, pd.DataFrame):
        validate_data(estimator, X, skip_check_array=True, reset=reset)
        if X.shape[1] == 0:
            raise ValueError(
                f"Found array with 0 feature(s) (shape={X.shape}) while a minimum of 1 is required."
            )
        if X.shape[0] == 0:
            raise ValueError(
                f"Found array with 0 sample(s) (shape={X.shape}) while a minimum of 1 is required."
            )
        _refuse_inf(X)
        return X
    arr = validate_data(estimator, X, dtype=None, ensure_all_finite="allow-nan", reset=reset)
    names = getattr(estimator, "feature_names_in_", None)
    if reset or names is None or len(names) != arr.shape[1]:
        names = array_column_names(arr.shape[1])
    frame = pd.DataFrame(arr, columns=list(names))
    if arr.dtype == object:
        odd = next((v for v in arr.ravel() if not isinstance(v, _SCALARS) and v is not None), None)
        if odd is not None:
            raise TypeError(f"argument must be a string or a number, not {type(odd).__name__!r}")
        for col in frame.columns:
            converted = pd.to_numeric(frame[col], errors="coerce")
            if converted.notna().sum() == frame[col].notna().sum():
                frame[col] = converted.astype(np.float64)
        _refuse_inf(frame)
    return frame


def _refuse_inf(frame: pd.DataFrame) -> None:
    numeric = frame.select_dtypes(include="number")
    if numeric.shape[1] and np.isinf(numeric.to_numpy(dtype=np.float64, na_value=np.nan)).any():
        raise ValueError("Input X contains infinity or a value too large for dtype('float64').")


def nan_tolerant_tags(tags, *, string: bool = False):
    """Tags of an estimator that handles missing values itself (and strings when ``string``)."""
    tags.input_tags.allow_nan = True
    tags.input_tags.string = string
    return tags


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
    stay linear). NaN passes through untouched (imputation comes after). Values are clipped to
    the training range first (``low_``, ``high_``): a level almost absent in training (a share
    with a tiny standard deviation) must not become a z-score of thousands at scoring time and
    push a linear model's PD to 1e-189.
    """

    def __init__(self, skew_threshold: float = 1.0, min_abs_max: float = 1.0) -> None:
        self.skew_threshold = skew_threshold
        self.min_abs_max = min_abs_max

    def __sklearn_tags__(self):
        return nan_tolerant_tags(super().__sklearn_tags__())

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
        with np.errstate(invalid="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # an all-NaN column: no bounds
            self.low_ = np.nan_to_num(np.nanmin(X, axis=0), nan=-np.inf)
            self.high_ = np.nan_to_num(np.nanmax(X, axis=0), nan=np.inf)
        return self

    def clip(self, X: np.ndarray) -> np.ndarray:
        """A copy of ``X`` clipped to the training range (NaN stays; a model fitted before the
        bounds existed is left as it was)."""
        low, high = getattr(self, "low_", None), getattr(self, "high_", None)
        return X.copy() if low is None or high is None else np.clip(X, low, high)

    def transform(self, X) -> np.ndarray:
        check_is_fitted(self, "log_columns_")
        X = validate_data(self, X, dtype=np.float64, ensure_all_finite="allow-nan", reset=False)
        out = self.clip(X)
        out[:, self.log_columns_] = signed_log1p(out[:, self.log_columns_])
        return out

    def get_feature_names_out(self, input_features=None) -> np.ndarray:
        check_is_fitted(self, "log_columns_")
        if input_features is None:
            input_features = getattr(
                self, "feature_names_in_", array_column_names(self.n_features_in_)
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
        self.numeric, self.categorical = numeric, categorical
        self.encoding, self.scale, self.min_frequency = encoding, scale, min_frequency

    def __sklearn_tags__(self):
        return nan_tolerant_tags(super().__sklearn_tags__(), string=True)

    def fit(self, X: pd.DataFrame | np.ndarray, y=None) -> TabularPreprocessor:
        """Fit on a DataFrame (or an array, whose columns are named ``x0, x1, ...``).

        With neither ``numeric`` nor ``categorical`` given, number columns are numeric and all
        others categorical (``numeric_`` and ``categorical_`` hold the columns used).
        """
        frame = validate_frame(self, X, reset=True)
        numeric, categorical = list(self.numeric), list(self.categorical)
        if not numeric and not categorical:
            numeric = [
                c
                for c in frame.columns
                if pd.api.types.is_numeric_dtype(frame[c])
                and not pd.api.types.is_bool_dtype(frame[c])
            ]
            categorical = [c for c in frame.columns if c not in set(numeric)]
        self.numeric_, self.categorical_ = numeric, categorical
        self.transformer_ = make_preprocessor(
            numeric,
            categorical,
            encoding=self.encoding,
            scale=self.scale,
            min_frequency=self.min_frequency,
        ).fit(frame, y)
        return self

    def transform(self, X: pd.DataFrame | np.ndarray) -> np.ndarray:
        check_is_fitted(self, "transformer_")
        # A DataFrame goes to the ColumnTransformer as is: it selects the columns by name, so
        # extra or reordered columns are fine, as before.
        frame = X if isinstance(X, pd.DataFrame) else validate_frame(self, X, reset=False)
        return np.asarray(self.transformer_.transform(frame), dtype=np.float64)

    def get_feature_names_out(self, input_features=None) -> np.ndarray:
        check_is_fitted(self, "transformer_")
        return self.transformer_.get_feature_names_out()

    def column_groups(self) -> dict[str, np.ndarray] | None:
        """For every input column, the output columns that depend on it alone (its value, its
        missing-value indicator, its one-hot levels), or None when the layout is not the one
        :func:`make_preprocessor` builds. Every step is columnwise, so changing one input
        column changes only its group."""
        check_is_fitted(self, "transformer_")
        ct = self.transformer_
        groups: dict[str, np.ndarray] = {}
        for name, pipe, columns in ct.transformers_:
            if name not in ("num", "cat"):
                continue
            where = ct.output_indices_[name]
            width = where.stop - where.start
            if name == "num":
                found = ct.named_transformers_["num"].named_steps["impute"].indicator_
                flagged = [] if found is None else list(found.features_)
                extra = {i: len(columns) + pos for pos, i in enumerate(flagged)}
                if len(columns) + len(flagged) != width:
                    return None
                for i, col in enumerate(columns):
                    cols = [i] if i not in extra else [i, extra[i]]
                    groups[str(col)] = where.start + np.asarray(cols, dtype=np.intp)
                continue
            steps = pipe.named_steps
            encoder = steps.get("onehot")
            sizes = (
                list(getattr(encoder, "_n_features_outs", [])) if encoder else [1] * len(columns)
            )
            if len(sizes) != len(columns) or sum(sizes) != width:
                return None
            ends = np.cumsum(sizes)
            for col, end, size in zip(columns, ends.tolist(), sizes, strict=True):
                groups[str(col)] = where.start + np.arange(end - size, end, dtype=np.intp)
        return groups

    def fast_transform(self, X: pd.DataFrame) -> np.ndarray:
        """:meth:`transform` of a DataFrame holding every input column, computed column by
        column with numpy (the same operations, so the same numbers) for the one-hot layout;
        any other layout goes through :meth:`transform`."""
        check_is_fitted(self, "transformer_")
        ct = self.transformer_
        if self.encoding != "onehot" or set(ct.named_transformers_) - {"num", "cat", "remainder"}:
            return self.transform(X)
        width = max(s.stop for s in ct.output_indices_.values())
        out = np.empty((len(X), width), dtype=np.float64, order="F")  # written, read by column
        for name, pipe, columns in ct.transformers_:
            if name == "num":
                _numeric_block(pipe, X, list(columns), out[:, ct.output_indices_[name]])
            elif name == "cat":
                out[:, ct.output_indices_[name]] = _onehot_block(pipe, X, list(columns))
        return out


def _numeric_block(pipe: Pipeline, X: pd.DataFrame, columns: list[str], out: np.ndarray) -> None:
    """The numeric pipeline (signed log, median imputation with indicators, scaling), written
    column by column into ``out`` (a column-major view: each column contiguous)."""
    steps = pipe.named_steps
    m = len(columns)
    values = out[:, :m]
    for i, c in enumerate(columns):
        values[:, i] = X[c].to_numpy(dtype=np.float64, na_value=np.nan)
    log = steps["log"]
    low, high = getattr(log, "low_", None), getattr(log, "high_", None)
    if low is not None and high is not None:
        np.clip(values, low, high, out=values)
    scratch = np.empty(len(X))
    for i in np.flatnonzero(log.log_columns_).tolist():  # signed_log1p, in place
        column = values[:, i]
        np.log1p(np.abs(column, out=scratch), out=scratch)
        np.sign(column, out=column)
        column *= scratch
    imputer = steps["impute"]
    missing = np.isnan(values)
    fill = np.nan_to_num(imputer.statistics_.astype(np.float64), nan=0.0)
    np.copyto(values, np.broadcast_to(fill, values.shape), where=missing)
    if imputer.indicator_ is not None:
        out[:, m:] = missing[:, imputer.indicator_.features_]
    scaler = steps.get("scale")
    if scaler is not None:
        if scaler.with_mean:
            out -= scaler.mean_
        if scaler.with_std:
            out /= scaler.scale_


def _onehot_block(pipe: Pipeline, X: pd.DataFrame, columns: list[str]) -> np.ndarray:
    """The categorical pipeline (text, "missing", one-hot with pooled rare and unseen levels)."""
    encoder = pipe.named_steps["onehot"]
    fill = pipe.named_steps["impute"].fill_value
    infrequent = getattr(encoder, "infrequent_categories_", [None] * len(columns))
    blocks = []
    for col, levels, rare in zip(columns, encoder.categories_, infrequent, strict=True):
        rare_set = set() if rare is None else set(rare.tolist())
        frequent = [c for c in levels.tolist() if c not in rare_set]
        slot = {c: i for i, c in enumerate(frequent)} | dict.fromkeys(rare_set, len(frequent))
        pooled = len(frequent) if rare_set else -1  # unseen levels: the pooled column, or none
        # each distinct value once: its text (as to_str_object makes it), then its column;
        # code -1 (missing) takes the fill value's column, the last entry
        found, uniques = pd.factorize(X[col].to_numpy(dtype=object), use_na_sentinel=True)
        texts = _str_column(np.asarray(uniques, dtype=object)).tolist()
        slots = np.array([slot.get(t, pooled) for t in [*texts, fill]], dtype=np.intp)
        codes = slots[found]
        block = np.zeros((len(X), len(frequent) + bool(rare_set)), dtype=np.float64)
        seen = codes >= 0
        block[np.flatnonzero(seen), codes[seen]] = 1.0
        blocks.append(block)
    return np.hstack(blocks) if blocks else np.empty((len(X), 0))
