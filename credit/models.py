"""Candidate models and their grid search.

Three candidates, each an sklearn Pipeline ``[("prep", TabularPreprocessor), ("clf", ...)]`` so
the preprocessing is fitted inside every CV fold and travels with the model:

* ``logreg``: LogisticRegression on log-compressed, imputed, scaled numerics and one-hot or
  WoE categoricals (the encoding is a grid parameter);
* ``random_forest``: RandomForestClassifier on imputed numerics and one-hot categoricals, each
  tree grown on a bootstrap of half the rows (``max_samples=0.5``);
* ``hist_gb``: HistGradientBoostingClassifier on the same unscaled matrix, with early stopping
  on a seeded 10 % validation split (at most 100 iterations);
* ``scorecard``: the WoE logistic scorecard (:class:`credit.woe_scorecard.WoEScorecard`), a
  Pipeline with the single step ``clf``: it bins the raw columns itself (optimal monotonic bins,
  missing and special values in their own bins), selects by IV and scales to points.

Class imbalance: ``class_weight="balanced"`` for logistic regression and the random forest. The
gradient boosting model is fitted unweighted: in scikit-learn 1.9 any sample weight makes its
bin-threshold search run a Python weighted-percentile loop per feature and bin, which measured
~1.5 s per fit here (6x the boosting itself) and alone broke the 60 s budget. Its imbalance is
handled the equivalent way downstream: model selection by ROC-AUC (prevalence-free), probabilities
recalibrated on validation data, and a decision threshold chosen on validation predictions
(:func:`credit.evaluate.calibrate_if_better`). Add ``clf__class_weight = ["balanced"]`` to the
``[hist_gb]`` grid to weight it anyway. Grids live in
``credit/grids.toml``; :func:`search_candidate` tunes one candidate with GridSearchCV
(stratified, shuffled K-fold, ROC-AUC, refit on the full training data).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import tempfile
import time
import tomllib
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pandas as pd
from joblib.parallel import LokyBackend, get_active_backend
from sklearn.base import clone
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import GridSearchCV, StratifiedKFold
from sklearn.pipeline import Pipeline
from threadpoolctl import ThreadpoolController

from credit.preprocess import TabularPreprocessor
from credit.woe_scorecard import BINNING_PARAMS, WoEScorecard

CANDIDATES = ("logreg", "random_forest", "hist_gb", "scorecard")
GRIDS_PATH = Path(__file__).with_name("grids.toml")
_CONTROLLER: ThreadpoolController | None = None


def single_threaded():
    """Context manager limiting the BLAS and OpenMP pools of this process to one thread.

    On a few thousand rows HistGradientBoosting's OpenMP threads cost far more in
    synchronisation than they gain (10x slower on a busy 2-core machine), and parallelism comes
    from CV folds / worker processes instead. The controller is built once, so entering the
    context costs microseconds (safe to use around every prediction).
    """
    global _CONTROLLER
    if _CONTROLLER is None:
        _CONTROLLER = ThreadpoolController()
    return _CONTROLLER.limit(limits=1)


def load_grids(path: Path | None = None) -> dict[str, Any]:
    """Read the grids config: ``{"search": {...}, "logreg": {...}, ...}`` (lists of values)."""
    with open(path or GRIDS_PATH, "rb") as fh:
        grids = tomllib.load(fh)
    missing = [name for name in CANDIDATES if name not in grids]
    if missing:
        raise ValueError(f"grids config lacks sections {missing}")
    for name in CANDIDATES:
        for key, values in grids[name].items():
            if not isinstance(values, list) or not values:
                raise ValueError(f"grid {name}.{key} must be a non-empty list")
    grids.setdefault("search", {})
    grids["search"].setdefault("cv", 5)
    grids["search"].setdefault("scoring", "roc_auc")
    return grids


def build_pipeline(
    name: str, numeric: Sequence[str], categorical: Sequence[str], *, seed: int = 42
) -> Pipeline:
    """Unfitted candidate pipeline with steps ``prep`` and ``clf``."""
    numeric, categorical = list(numeric), list(categorical)
    if name == "logreg":
        prep = TabularPreprocessor(numeric, categorical, encoding="onehot", scale=True)
        clf = LogisticRegression(C=1.0, class_weight="balanced", max_iter=2000, random_state=seed)
    elif name == "random_forest":
        prep = TabularPreprocessor(numeric, categorical, encoding="onehot", scale=False)
        clf = RandomForestClassifier(
            n_estimators=150,
            max_features="sqrt",
            max_samples=0.5,  # each tree on a half-size bootstrap: half the fit time, same AUC
            min_samples_leaf=5,
            class_weight="balanced",
            n_jobs=1,
            random_state=seed,
        )
    elif name == "hist_gb":
        prep = TabularPreprocessor(numeric, categorical, encoding="onehot", scale=False)
        clf = HistGradientBoostingClassifier(
            max_iter=100,
            learning_rate=0.1,
            max_bins=63,
            # stops when 10 iterations in a row do not improve the loss on a 10 % validation
            # split of the fit's rows (seeded): same CV ROC-AUC, ~30 % less fit time here
            early_stopping=True,
            n_iter_no_change=10,
            validation_fraction=0.1,
            class_weight=None,  # see the module docstring
            random_state=seed,
        )
    elif name == "scorecard":  # bins the raw columns itself: no prep step
        return Pipeline([("clf", WoEScorecard(numeric, categorical))])
    else:
        raise ValueError(f"unknown candidate {name!r}; expected one of {CANDIDATES}")
    return Pipeline([("prep", prep), ("clf", clf)])


@dataclass
class SearchResult:
    """Outcome of one candidate's grid search."""

    name: str
    best_estimator: Pipeline
    best_params: dict[str, Any]
    best_cv_auc: float
    cv_results: pd.DataFrame = field(repr=False)
    seconds: float
    #: Out-of-fold predictions of the best grid point on the searched rows (index of ``X``):
    #: columns ``proba`` (positive class) and ``response`` (``decision_function`` when the
    #: model has one, else ``proba``: what CalibratedClassifierCV calibrates); None when they
    #: could not be recorded (e.g. fits on a Dask cluster). ``best_estimator`` was refitted on
    #: exactly those rows, so calibration needs no further fit (credit.evaluate).
    oof: pd.DataFrame | None = field(default=None, repr=False)


def _point_tag(params: dict[str, Any]) -> str:
    return hashlib.sha1(repr(sorted(params.items())).encode()).hexdigest()[:16]


class OOFRecordingAUC:
    """The ``roc_auc`` scorer of GridSearchCV (same response, same number) that also saves
    each fold's held-out predictions under ``folder``, one file per grid point and fold.

    The search's fits already predict every training row out of fold for every grid point;
    keeping those of the best point gives calibration and the threshold choice their
    out-of-fold predictions without refitting anything. A worker that cannot write to
    ``folder`` (another machine) just scores.
    """

    def __init__(self, folder: str, keys: Sequence[str]) -> None:
        self.folder = folder
        self.keys = list(keys)

    def __call__(self, estimator: Any, X: Any, y: Any) -> float:
        proba = np.asarray(estimator.predict_proba(X))[:, 1]
        # sklearn's "roc_auc" ranks decision_function when there is one (ties may differ)
        has_decision = hasattr(estimator, "decision_function")
        response = np.asarray(estimator.decision_function(X)) if has_decision else proba
        if isinstance(X, pd.DataFrame):
            params = estimator.get_params()
            tag = _point_tag({k: params.get(k) for k in self.keys})
            rows = pd.util.hash_pandas_object(X.index, index=False).to_numpy()
            fold = hashlib.sha1(rows.tobytes()).hexdigest()[:16]
            with contextlib.suppress(OSError):
                joblib.dump(
                    (np.asarray(X.index), proba, response),
                    Path(self.folder) / f"{tag}-{fold}.pkl",
                )
        return float(roc_auc_score(y, response))


def collect_oof(
    folder: str | Path, params: dict[str, Any], keys: Sequence[str], X: pd.DataFrame
) -> pd.DataFrame | None:
    """The recorded out-of-fold predictions of grid point ``params``, aligned to ``X``'s
    index; None unless every row of ``X`` was predicted exactly once."""
    tag = _point_tag({k: params.get(k) for k in keys})
    parts = [joblib.load(f) for f in sorted(Path(folder).glob(f"{tag}-*.pkl"))]
    if not parts:
        return None
    index = np.concatenate([p[0] for p in parts])
    frame = pd.DataFrame(
        {
            "proba": np.concatenate([p[1] for p in parts]),
            "response": np.concatenate([p[2] for p in parts]),
        },
        index=pd.Index(index, name=X.index.name),
    )
    if len(frame) != len(X) or not frame.index.is_unique or not frame.index.isin(X.index).all():
        return None
    return frame.reindex(X.index)


def split_columns(X: pd.DataFrame) -> tuple[list[str], list[str]]:
    """Numeric (non-bool number dtypes) and categorical (everything else) columns of ``X``."""
    numeric = [
        c
        for c in X.columns
        if pd.api.types.is_numeric_dtype(X[c]) and not pd.api.types.is_bool_dtype(X[c])
    ]
    categorical = [c for c in X.columns if c not in set(numeric)]
    return numeric, categorical


def tidy_cv_results(cv_results: dict[str, Any], param_names: Sequence[str]) -> pd.DataFrame:
    """One row per grid point: rank, mean/std CV ROC-AUC, fit seconds and the parameters."""
    table = pd.DataFrame(
        {
            "rank": cv_results["rank_test_score"],
            "mean_cv_auc": cv_results["mean_test_score"],
            "std_cv_auc": cv_results["std_test_score"],
            "mean_fit_seconds": cv_results["mean_fit_time"],
        }
    )
    for key in param_names:
        table[key] = [params.get(key) for params in cv_results["params"]]
    return table.sort_values(["rank", "mean_fit_seconds"], kind="stable").reset_index(drop=True)


def on_local_pool(n_jobs: int | None) -> bool:
    """Would ``Parallel(n_jobs)`` here run on this machine's process pool (joblib's loky
    backend, more than one job), rather than in this process or on a Dask cluster?"""
    return (n_jobs or 1) > 1 and isinstance(get_active_backend()[0], LokyBackend)


@contextlib.contextmanager
def _refit_binning_ahead(
    pipeline: Pipeline, grid: dict[str, list], X: pd.DataFrame, y: pd.Series, n_jobs: int
) -> Iterator[None]:
    """While the block runs the folds, bin the refit's rows (all of ``X``) on a pool worker.

    Only for a scorecard with a binning cache and a grid that changes no binning setting: the
    refit then finds its binning in the cache instead of computing it, alone, after the last
    fold. The block's exit waits for that binning (it ran beside the folds, on the same
    pool); with one job it is skipped (it would only run before the folds instead of after),
    and so it is under another joblib backend (a Dask cluster: the cache is a local folder)."""
    clf = pipeline.named_steps.get("clf")
    tuned = {key.split("__", 1)[1] for key in grid if key.startswith("clf__")}
    if (
        not on_local_pool(n_jobs)
        or not isinstance(clf, WoEScorecard)
        or clf.memory is None
        or tuned & BINNING_PARAMS
    ):
        yield
        return
    # take (or start, or resize) the pool here, before two threads use it at once: joblib
    # replacing the executor under one thread's jobs stops their workers
    joblib.Parallel(n_jobs=n_jobs)([joblib.delayed(int)()])
    with ThreadPoolExecutor(1, thread_name_prefix="refit-binning") as ahead:
        done = ahead.submit(
            lambda: joblib.Parallel(n_jobs=n_jobs)([joblib.delayed(clf.bin_into_memory)(X, y)])
        )
        try:
            yield
        finally:
            wait([done])  # a failure here only means the refit bins for itself


def search_candidate(
    name: str,
    X: pd.DataFrame,
    y: pd.Series,
    *,
    grid: dict[str, list] | None = None,
    cv: int = 5,
    n_jobs: int | None = None,
    seed: int = 42,
    numeric: Sequence[str] | None = None,
    categorical: Sequence[str] | None = None,
    scoring: str = "roc_auc",
) -> SearchResult:
    """Tune candidate ``name`` on ``(X, y)`` with GridSearchCV and refit the best on all of it.

    ``grid`` defaults to the candidate's section of ``grids.toml``; ``n_jobs`` defaults to every
    core (``os.cpu_count()``). Feature columns default to :func:`split_columns` of ``X``.
    """
    if grid is None:
        grid = load_grids()[name]
    if numeric is None or categorical is None:
        num, cat = split_columns(X)
        numeric = num if numeric is None else numeric
        categorical = cat if categorical is None else categorical
    pipeline = build_pipeline(name, numeric, categorical, seed=seed)
    record = scoring == "roc_auc" and isinstance(X, pd.DataFrame) and X.index.is_unique
    folder = tempfile.mkdtemp(prefix="bati-oof-") if record else None
    # The preprocessing is fitted once per fold and prep setting, not once per grid point:
    # grid points that only change the classifier reuse it (Pipeline's transformer cache,
    # on disk, so the worker processes share it).
    # The scorecard (no prep step) caches its binning the same way: grid points that change
    # no binning setting (C, coding, min_iv) bin each fold once.
    memory = "memory" if "prep" in pipeline.named_steps else None
    if memory is None and "memory" in pipeline.named_steps["clf"].get_params():
        memory = "clf__memory"
    cache = tempfile.mkdtemp(prefix="bati-prep-") if memory else None
    if memory:
        pipeline.set_params(**{memory: joblib.Memory(cache, verbose=0)})
    n_jobs = n_jobs or os.cpu_count() or 1
    search = GridSearchCV(
        pipeline,
        param_grid={k: list(v) for k, v in grid.items()},
        scoring=OOFRecordingAUC(folder, list(grid)) if folder else scoring,
        cv=StratifiedKFold(n_splits=cv, shuffle=True, random_state=seed),
        n_jobs=n_jobs,
        refit=False,  # below, as GridSearchCV would, once the refit's binning is cached
        error_score="raise",
    )
    start = time.perf_counter()
    try:
        # Parallelism comes from the CV folds (loky workers already run single-threaded); the
        # refit in this process is kept single-threaded too.
        with _refit_binning_ahead(pipeline, grid, X, y, n_jobs), single_threaded():
            search.fit(X, y)
        with single_threaded():
            best = clone(pipeline).set_params(**clone(search.best_params_, safe=False))
            best.fit(X, y)
        oof = collect_oof(folder, search.best_params_, list(grid), X) if folder else None
    finally:
        for path in (folder, cache):
            if path:
                shutil.rmtree(path, ignore_errors=True)
    seconds = time.perf_counter() - start
    if memory:
        best.set_params(**{memory: None})  # the model travels without the (deleted) cache
    return SearchResult(
        name=name,
        best_estimator=best,
        best_params=dict(search.best_params_),
        best_cv_auc=float(search.best_score_),
        cv_results=tidy_cv_results(search.cv_results_, list(grid)),
        seconds=seconds,
        oof=oof,
    )
