"""Alert events: breaches, held challengers and flow hooks carry figures, never customer data."""

from __future__ import annotations

from types import SimpleNamespace

import prefect.events

from tasks import alerts


def _capture(monkeypatch) -> list[dict]:
    sent: list[dict] = []

    def fake_emit(**kw):
        sent.append(kw)
        return object()

    monkeypatch.setattr(prefect.events, "emit_event", fake_emit)
    return sent


def test_every_breach_is_one_event_on_the_model_version(monkeypatch) -> None:
    sent = _capture(monkeypatch)
    breaches = [
        {"metric": "score_psi", "value": 0.31, "threshold": 0.25, "level": "act"},
        {"metric": "feature_psi.amount_sum", "value": 0.12, "threshold": 0.1, "level": "watch"},
    ]
    assert (
        alerts.emit_breaches("bati-credit", 4, breaches, kind="stability", as_of="2019-02-14") == 2
    )
    first = sent[0]
    assert first["event"] == alerts.BREACH_EVENT
    assert first["resource"]["prefect.resource.id"] == "bati.model.bati-credit.v4"
    assert first["payload"] == {
        "metric": "score_psi",
        "value": 0.31,
        "threshold": 0.25,
        "level": "act",
        "kind": "stability",
        "model_name": "bati-credit",
        "model_version": 4,
        "as_of": "2019-02-14",
        "run_id": None,
    }
    assert sent[1]["related"][0]["prefect.resource.id"] == "bati.metric.feature_psi.amount_sum"


def test_flow_hooks_emit_failed_and_crashed(monkeypatch) -> None:
    sent = _capture(monkeypatch)
    run = SimpleNamespace(id="abc", name="calm-fox")
    state = SimpleNamespace(name="Failed", message="LookupError: no champion")
    alerts.on_flow_failure(SimpleNamespace(name="score"), run, state)
    alerts.on_flow_crashed(SimpleNamespace(name="score"), run, SimpleNamespace(name="Crashed"))
    assert [e["event"] for e in sent] == [alerts.FLOW_FAILED_EVENT, alerts.FLOW_CRASHED_EVENT]
    assert sent[0]["resource"]["prefect.resource.id"] == "prefect.flow-run.abc"
    assert sent[0]["payload"]["message"] == "LookupError: no champion"


def test_an_events_client_failure_never_breaks_the_run(monkeypatch) -> None:
    def boom(**kw):
        raise RuntimeError("no API")

    monkeypatch.setattr(prefect.events, "emit_event", boom)
    assert not alerts.emit_held("m", 2, reason="r", champion_version=1, drifted_inputs={})


def test_the_flows_carry_the_hooks() -> None:
    from flows.monitor import monitor
    from flows.retrain import retrain
    from flows.score import score

    for flow in (retrain, score, monitor):
        assert alerts.on_flow_failure in flow.on_failure_hooks
        assert alerts.on_flow_crashed in flow.on_crashed_hooks


def test_the_automations_notify_with_the_event_details() -> None:
    from uuid import uuid4

    from deployments.alerts import build_automations

    autos = build_automations(uuid4(), retrain_deployment_id=uuid4())
    names = [a.name for a in autos]
    assert names == [
        "bati-monitoring-breach",
        "bati-promotion-held",
        "bati-flow-failed",
        "bati-input-drift-retrain",
    ]
    breach = autos[0]
    assert breach.trigger.expect == {alerts.BREACH_EVENT}
    assert "{{ event.payload.metric }}" in breach.actions[0].body
    assert autos[3].actions[0].type == "run-deployment"
