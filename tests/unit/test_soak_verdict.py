"""The soak test's verdict on a promotion under load (bench/soak.py ``summarise``)."""

from __future__ import annotations

from bench.soak import Plan, Record, summarise

PLAN = Plan(url="sqlite://", model_name="m", old=1, new=2, expected={1: {}, 2: {}})
PROMOTE = {"status": 200, "t0": 10.0, "t1": 10.5, "switched": 11.0}


def _verdict(records: list[Record]) -> list[str]:
    figures = summarise(records, PLAN, start=0.0, seconds=20.0, promote=PROMOTE, reload_seconds=1.0)
    return figures["violations"]


def _r(t0: float, t1: float, version: int) -> Record:
    return Record(t0=t0, t1=t1, kind="id", request_id=f"{t0}", status=200, version=version)


def test_a_request_sent_before_the_promotion_may_get_the_new_version_after_it() -> None:
    """Found under load in CI-like runs: a request sent at 9.9 s, answered at 10.6 s by the
    new version, was called 'answered before it was promoted'."""
    records = [_r(1.0, 1.1, 1), _r(9.9, 10.6, 2), _r(12.0, 12.1, 2)]
    assert _verdict(records) == []


def test_a_new_answer_that_ended_before_the_promotion_is_a_violation() -> None:
    records = [_r(1.0, 1.1, 1), _r(9.0, 9.5, 2), _r(12.0, 12.1, 2)]
    assert "the new version answered before it was promoted" in _verdict(records)
