"""tasks.train: the evaluate task finalizes a candidate on the shared worker pool when there is
one, with the result it gives in this process."""

from __future__ import annotations

import logging

import numpy as np
import pytest
from sklearn.model_selection import train_test_split

import tasks.train as T
from credit.models import search_candidate
from credit.tabular import synthetic_customer_table
from credit.training import Split


@pytest.fixture(scope="module")
def searched():
    X, y = synthetic_customer_table(400, n_noise=3, seed=5)
    X_train, X_test, y_train, y_test = train_test_split(
        X, y, test_size=0.3, stratify=y, random_state=2
    )
    search = search_candidate("logreg", X_train, y_train, grid={"clf__C": [0.3]}, cv=3, n_jobs=1)
    return search, Split(X_train, y_train, X_test, y_test)


def test_evaluation_runs_on_the_pool_with_the_in_process_result(searched, tmp_path, monkeypatch):
    search, split = searched
    monkeypatch.setattr(T, "get_run_logger", lambda: logging.getLogger("test"))
    here: list[str] = []
    real = T.finalize_candidate

    def recording(*args, **kwargs):
        here.append(args[0].name)  # recorded in the process that runs it
        return real(*args, **kwargs)

    monkeypatch.setattr(T, "finalize_candidate", recording)
    outcomes = {}
    for n_jobs in (2, 1):
        out = tmp_path / f"jobs{n_jobs}"
        outcomes[n_jobs] = T.evaluate.fn(
            search, split, model_name="m", out_dir=out, seed=3, n_jobs=n_jobs
        )
        assert (out / "logreg_roc.png").exists()
    assert here == ["logreg"]  # once, for n_jobs=1: with a pool a worker ran it
    pooled, local = outcomes[2], outcomes[1]
    assert pooled.metrics == local.metrics
    timing = {"seconds"}
    assert {k: v for k, v in pooled.calibration.items() if k not in timing} == {
        k: v for k, v in local.calibration.items() if k not in timing
    }
    np.testing.assert_array_equal(
        pooled.model.predict_proba(split.X_test), local.model.predict_proba(split.X_test)
    )
    assert (tmp_path / "jobs2" / "logreg_roc.png").read_bytes() == (
        tmp_path / "jobs1" / "logreg_roc.png"
    ).read_bytes()
