"""Scoring requests with the served model.

* By id: a lookup in the score table precomputed from the latest feature snapshot.
* With raw transactions: the training code path, never a re-implementation:
  :func:`credit.ingest.validate_transactions` -> :func:`credit.clean.clean_transactions` ->
  :func:`credit.features.build_customer_features` (``as_of`` = the request's, else one second
  after the customer's last transaction; ``window_days`` = the champion's
  ``params["observation_days"]``) -> :func:`credit.features.align_features` ->
  ``CreditRiskModel.score_frame``. Every customer of a batch is validated, cleaned and scored in
  one vectorised pass; features are built once per distinct ``as_of``.

Failures name the field (``customers[1].transactions[3].Amount``) and the check, never a value.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from api.errors import ApiError, field_error
from api.holder import ServedModel, result_records, utc_iso
from api.payloads import ScoreResult
from schemas import vocab

AS_OF_AFTER_LAST = pd.Timedelta(seconds=1)


@dataclass
class Scored:
    """Results by request position, and per-position errors (code, message)."""

    results: dict[int, ScoreResult] = field(default_factory=dict)
    errors: dict[int, tuple[str, str]] = field(default_factory=dict)


def _prefix(batch: bool, index: int) -> str:
    return f"customers[{index}]." if batch else ""


def score_requests(
    served: ServedModel,
    items: list[dict[str, Any]],
    *,
    batch: bool,
    deadline: float | None = None,
) -> Scored:
    """Score validated request items (plain dicts as decoded from JSON, already validated).

    Raises :class:`ApiError` 422 when transactions break a training-data rule, and 413
    ``request_too_expensive`` when featurising them would run past ``deadline``
    (a ``time.perf_counter()`` value; features are built once per distinct ``as_of``).
    """
    out = Scored()
    with_tx: list[int] = []
    for i, item in enumerate(items):
        if item.get("transactions") is None:  # by id (as_of needs transactions: validated)
            found = served.table.get(item["customer_id"])
            if found is None:
                out.errors[i] = (
                    "unknown_customer",
                    f"customer not in the feature snapshot of {served.snapshot_as_of or '-'}",
                )
            else:
                out.results[i] = found
        else:
            with_tx.append(i)
    if with_tx:
        _score_transactions(served, items, with_tx, out, batch=batch, deadline=deadline)
    return out


def _check_deadline(deadline: float | None) -> None:
    if deadline is not None and time.perf_counter() > deadline:
        raise ApiError(
            413,
            "request_too_expensive",
            "scoring this request takes longer than its time budget "
            "(BATI_REQUEST_TIMEOUT_SECONDS); send fewer customers with transactions per request",
        )


def _raise_fields(details: list[dict[str, Any]], message: str) -> None:
    raise ApiError(422, "validation_error", message, details)


def _score_transactions(
    served: ServedModel,
    items: list[dict[str, Any]],
    positions: list[int],
    out: Scored,
    *,
    batch: bool,
    deadline: float | None = None,
) -> None:
    from credit.clean import clean_transactions
    from credit.features import align_features, build_customer_features
    from credit.ingest import validate_transactions

    customers = [items[i]["customer_id"] for i in positions]
    index = pd.Index(customers)
    if index.has_duplicates:
        repeated = index.duplicated(keep=False)
        details = [
            field_error(
                f"{_prefix(batch, i)}customer_id",
                "duplicate_customer",
                "a customer with transactions may appear only once per batch",
            )
            for i, dup in zip(positions, repeated, strict=True)
            if dup
        ]
        _raise_fields(details, "duplicate customers with transactions in one batch")

    counts = np.array([len(items[i]["transactions"]) for i in positions])
    req_pos = np.repeat(np.asarray(positions), counts)
    starts = np.repeat(np.cumsum(counts) - counts, counts)
    tx_pos = np.arange(int(counts.sum())) - starts  # position inside its request
    records = [tx for i in positions for tx in items[i]["transactions"]]
    raw = pd.DataFrame.from_records(records, columns=list(vocab.RAW_COLUMNS))

    def where(row: int, column: str) -> str:
        return f"{_prefix(batch, int(req_pos[row]))}transactions[{int(tx_pos[row])}].{column}"

    expected = np.repeat(np.asarray(customers, dtype=object), counts)
    mismatch = np.flatnonzero(raw["CustomerId"].to_numpy(dtype=object) != expected)
    if mismatch.size:
        details = [
            field_error(
                where(r, "CustomerId"),
                "customer_mismatch",
                "every transaction must belong to the request's customer_id",
            )
            for r in mismatch
        ]
        _raise_fields(details, f"{mismatch.size} transaction(s) of another customer")

    typed, failures = validate_transactions(raw)
    if len(failures):
        details = [
            field_error(where(r, c), str(k), f"fails the training data check {k}")
            for r, c, k in zip(failures["row"], failures["column"], failures["check"], strict=True)
        ]
        _raise_fields(details, f"{len(failures)} transaction value(s) fail data validation")

    clean = clean_transactions(typed).data
    as_of = _as_of(items, positions, clean)
    frames = []
    for cutoff, group in as_of.groupby(as_of, sort=True):
        _check_deadline(deadline)
        subset = clean[clean["CustomerId"].isin(group.index)]
        frames.append(build_customer_features(subset, as_of=cutoff, window_days=served.window_days))
    feats = pd.concat(frames) if frames else pd.DataFrame()
    scored: dict[str, ScoreResult] = {}
    if len(feats):
        X = align_features(feats, list(served.features))
        X.index = X.index.astype(str)
        frame = served.model.score_frame(X, with_reasons=True, top=3)
        scored = result_records(
            frame,
            model_name=served.name,
            model_version=served.version,
            source="transactions",
            as_of={str(c): utc_iso(t) for c, t in as_of.items()},
        )
    window = f"{served.window_days} days" if served.window_days else "the history"
    for i, customer in zip(positions, customers, strict=True):
        if customer in scored:
            out.results[i] = scored[customer]
        else:
            out.errors[i] = (
                "no_recent_transactions",
                f"no own (non cash-back) transaction in {window} before as_of",
            )


def _as_of(items: list[dict[str, Any]], positions: list[int], clean: pd.DataFrame) -> pd.Series:
    """Feature cutoff per customer: the request's ``as_of``, else last transaction + 1 s."""
    last = clean.groupby("CustomerId")["TransactionStartTime"].max() + AS_OF_AFTER_LAST
    given = {
        items[i]["customer_id"]: items[i]["as_of"]
        for i in positions
        if items[i].get("as_of") is not None
    }
    cutoff = last.copy()
    if given:
        parsed = pd.to_datetime(pd.Series(given), utc=True, format="ISO8601")
        cutoff.loc[parsed.index] = parsed.astype(cutoff.dtype)
    return cutoff
