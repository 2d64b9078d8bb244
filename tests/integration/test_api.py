"""Scoring API with the Flask test client, against a real registry (SQLite; PostgreSQL when
BATI_TEST_PG_URL is set): every endpoint, every error code, auth, hot reload, tampering,
prediction log, a database that is down."""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from builders import (
    ADMIN_AUTH,
    ADMIN_TOKEN,
    MODEL_NAME,
    WINDOW_DAYS,
    World,
    build_world,
    transactions_json,
)
from flask import Flask
from flask.testing import FlaskClient

from api import create_app
from api.config import Settings, load_settings
from api.predlog import PredictionLogWriter

ADMIN_BODY = {"actor": "risk-officer", "reason": "quarterly review"}


# -- fixtures ----------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def template(tmp_path_factory: pytest.TempPathFactory) -> tuple[World, Path]:
    """One registry built per session (v1 champion, v2 candidate, snapshot); tests copy it."""
    folder = tmp_path_factory.mktemp("api-world")
    path = folder / "bati.db"
    return build_world(f"sqlite:///{path}"), path


@pytest.fixture
def world(template: tuple[World, Path], tmp_path: Path) -> World:
    """A private copy of the template registry (tests may promote, tamper, log...)."""
    base, src = template
    dst = tmp_path / "bati.db"
    shutil.copyfile(src, dst)
    copy = World(**{**base.__dict__})
    copy.url = f"sqlite:///{dst}"
    return copy


@pytest.fixture
def make_app() -> Iterator[Callable[..., Flask]]:
    apps: list[Flask] = []

    def factory(url: str, **overrides: Any) -> Flask:
        config = {"db_url": url, "admin_token": ADMIN_TOKEN, "start_background": False}
        config.update(overrides)
        app = create_app(config)
        apps.append(app)
        return app

    yield factory
    for app in apps:
        app.extensions["bati"].close()


@pytest.fixture
def app(world: World, make_app: Callable[..., Flask]) -> Flask:
    return make_app(world.url)


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


def iso(ts: pd.Timestamp) -> str:
    return ts.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def assert_error(resp: Any, status: int, code: str | None = None) -> dict[str, Any]:
    assert resp.status_code == status, resp.get_data(as_text=True)
    assert resp.mimetype == "application/json"
    body = resp.get_json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message", "details"}
    if code is not None:
        assert body["error"]["code"] == code
    assert "Traceback" not in resp.get_data(as_text=True)
    return body["error"]


def expected_frame(world: World, version: int, customers: list[str]) -> pd.DataFrame:
    from credit.features import align_features

    model = world.models[version]
    X = align_features(world.snapshot.loc[customers], list(model.feature_names_))
    return model.score_frame(X, with_reasons=True, top=3)


def wait_for(predicate: Callable[[], bool], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


# -- health, readiness -------------------------------------------------------------------------
def test_health_and_ready(client: FlaskClient) -> None:
    health = client.get("/health")
    assert health.status_code == 200
    body = health.get_json()
    assert body["status"] == "ok" and body["served_version"] == 1
    assert set(body["prediction_log"]) == {"queued", "written", "dropped", "failed"}
    ready = client.get("/ready")
    assert ready.status_code == 200
    assert ready.get_json()["model_version"] == 1


# -- scoring by id -----------------------------------------------------------------------------
def test_score_by_id_matches_the_registered_model(client: FlaskClient, world: World) -> None:
    customers = world.customers()[:6]
    expected = expected_frame(world, 1, customers)
    for cid in customers:
        resp = client.post("/v1/score", json={"customer_id": cid})
        assert resp.status_code == 200, resp.get_data(as_text=True)
        body = resp.get_json()
        row = expected.loc[cid]
        assert body["customer_id"] == cid
        assert body["probability_of_default"] == pytest.approx(row["probability"], abs=1e-12)
        assert body["score"] == pytest.approx(row["score"])
        assert body["band"] == row["band"] and body["approved"] == bool(row["approved"])
        # "high" risk is the high-PD class (a peer API once labelled the good class "Bad Risk").
        high = body["probability_of_default"] >= world.models[1].threshold
        assert body["risk_class"] == ("high" if high else "low")
        assert [r["feature"] for r in body["reasons"]] == [r["feature"] for r in row["reasons"]]
        assert all(
            set(r) == {"feature", "value", "reference", "impact", "text"} for r in body["reasons"]
        )
        assert body["model_name"] == MODEL_NAME and body["model_version"] == 1
        assert body["source"] == "snapshot"
        assert pd.Timestamp(body["features_as_of"]) == world.as_of
        assert body["request_id"] == resp.headers["X-Request-ID"]


def test_request_id_is_the_servers_and_the_clients_is_kept_apart(
    client: FlaskClient, world: World
) -> None:
    """Issue 15.13: a client's X-Request-ID never becomes the audit key (two callers could
    send the same one); it is echoed in X-Client-Request-ID when it is a safe token."""
    cid = world.customers()[0]
    ids = set()
    for _ in range(2):
        ok = client.post(
            "/v1/score", json={"customer_id": cid}, headers={"X-Request-ID": "abc-123"}
        )
        rid = ok.get_json()["request_id"]
        assert rid == ok.headers["X-Request-ID"] != "abc-123" and len(rid) == 32
        assert ok.headers["X-Client-Request-ID"] == "abc-123"
        ids.add(rid)
    assert len(ids) == 2  # the same client id twice, two audit keys
    bad = client.post("/v1/score", json={"customer_id": cid}, headers={"X-Request-ID": "<x>" * 30})
    assert "<x>" not in str(bad.headers) and len(bad.headers["X-Request-ID"]) == 32


def test_unknown_customer_is_404(client: FlaskClient) -> None:
    err = assert_error(client.post("/v1/score", json={"customer_id": "CustomerId_99999999"}), 404)
    assert err["code"] == "unknown_customer"
    assert "99999999" not in err["message"]  # never echo the caller's values


# -- scoring raw transactions (the training code path) ------------------------------------------
def test_transactions_at_snapshot_date_score_exactly_like_the_snapshot(
    client: FlaskClient, world: World
) -> None:
    for cid in world.customers()[:3]:
        tx = transactions_json(world.raw, cid)
        by_tx = client.post(
            "/v1/score", json={"customer_id": cid, "transactions": tx, "as_of": iso(world.as_of)}
        )
        by_id = client.post("/v1/score", json={"customer_id": cid})
        assert by_tx.status_code == 200, by_tx.get_data(as_text=True)
        a, b = by_tx.get_json(), by_id.get_json()
        assert a["source"] == "transactions" and b["source"] == "snapshot"
        # Same code path, same numbers (up to float summation order: the snapshot was built
        # over every customer at once).
        assert a["probability_of_default"] == pytest.approx(b["probability_of_default"], abs=1e-12)
        for key in ("score", "band", "risk_class", "approved", "recommended_amount"):
            assert a[key] == b[key], key
        assert [r["feature"] for r in a["reasons"]] == [r["feature"] for r in b["reasons"]]


def test_transactions_default_as_of_is_one_second_after_the_last(
    client: FlaskClient, world: World
) -> None:
    from credit.features import align_features, build_customer_features

    cid = world.customers()[1]
    tx = transactions_json(world.raw, cid)
    resp = client.post("/v1/score", json={"customer_id": cid, "transactions": tx})
    assert resp.status_code == 200
    own = world.clean[world.clean["CustomerId"] == cid]
    as_of = own["TransactionStartTime"].max() + pd.Timedelta(seconds=1)
    assert pd.Timestamp(resp.get_json()["features_as_of"]) == as_of
    X = build_customer_features(own, as_of=as_of, window_days=WINDOW_DAYS)
    model = world.models[1]
    expected = model.predict_pd(align_features(X, list(model.feature_names_)))[0]
    assert resp.get_json()["probability_of_default"] == pytest.approx(expected, abs=1e-12)


def test_transaction_rule_failures_name_fields_without_values(
    client: FlaskClient, world: World
) -> None:
    cid = world.customers()[0]
    tx = transactions_json(world.raw, cid)
    bad = [dict(tx[0], Amount=987654.0, Value=1.0), *tx[1:]]  # Value below |Amount|
    err = assert_error(
        client.post("/v1/score", json={"customer_id": cid, "transactions": bad}), 422
    )
    assert {"field": "transactions[0].Value", "type": "value_not_below_abs_amount"}.items() <= err[
        "details"
    ][0].items()
    assert "987654" not in json.dumps(err)
    future = [dict(tx[0], TransactionStartTime="2999-01-01T00:00:00Z")]
    err = assert_error(
        client.post("/v1/score", json={"customer_id": cid, "transactions": future}), 422
    )
    assert err["details"][0]["field"] == "transactions[0].TransactionStartTime"
    other = [dict(tx[0], CustomerId="CustomerId_424242")]
    err = assert_error(
        client.post("/v1/score", json={"customer_id": cid, "transactions": other}), 422
    )
    assert err["details"][0] == {
        "field": "transactions[0].CustomerId",
        "type": "customer_mismatch",
        "message": "every transaction must belong to the request's customer_id",
    }


def test_schema_failures_name_every_bad_field(client: FlaskClient, world: World) -> None:
    cid = world.customers()[0]
    tx = transactions_json(world.raw, cid)
    broken = dict(tx[0], Amount=[1000], ChannelId="ChannelId_9", Secret="s3cr3t-value")
    del broken["BatchId"]
    err = assert_error(
        client.post("/v1/score", json={"customer_id": cid, "transactions": [broken]}), 422
    )
    fields = {d["field"] for d in err["details"]}
    assert fields == {
        "transactions[0].Amount",
        "transactions[0].ChannelId",
        "transactions[0]",  # the unknown key "Secret" is the caller's text: never echoed
        "transactions[0].BatchId",
    }
    assert "s3cr3t-value" not in json.dumps(err) and "Secret" not in json.dumps(err)


def test_only_own_cashback_is_unscorable(client: FlaskClient, world: World) -> None:
    """A customer whose only rows are platform cash-back has no own activity: 422."""
    cid = world.customers()[0]
    tx = transactions_json(world.raw, cid)[0]
    cashback = dict(tx, AccountId="AccountId_4841", Amount=-20.0, Value=20.0)
    err = assert_error(
        client.post("/v1/score", json={"customer_id": cid, "transactions": [cashback]}), 422
    )
    assert err["code"] == "no_recent_transactions"


# -- batch ---------------------------------------------------------------------------------------
def test_batch_mixes_ids_transactions_and_unknowns(client: FlaskClient, world: World) -> None:
    ids = world.customers()[:20]
    cid = world.customers()[25]
    body = {
        "customers": [{"customer_id": c} for c in ids]
        + [{"customer_id": "CustomerId_77777777"}]
        + [{"customer_id": cid, "transactions": transactions_json(world.raw, cid)}]
    }
    resp = client.post("/v1/score/batch", json=body)
    assert resp.status_code == 200, resp.get_data(as_text=True)
    out = resp.get_json()
    assert out["count"] == 21 and out["model_version"] == 1
    assert [r["customer_id"] for r in out["results"]] == [*ids, cid]
    assert out["results"][-1]["source"] == "transactions"
    assert out["errors"] == [
        {
            "index": 20,
            "customer_id": "CustomerId_77777777",
            "code": "unknown_customer",
            "message": out["errors"][0]["message"],
        }
    ]
    expected = expected_frame(world, 1, ids)
    got = [r["probability_of_default"] for r in out["results"][:20]]
    assert got == pytest.approx(expected["probability"].tolist(), abs=1e-12)


def test_batch_limits(world: World, make_app: Callable[..., Flask]) -> None:
    client = make_app(world.url, max_batch=3, max_transactions=2).test_client()
    four = {"customers": [{"customer_id": c} for c in world.customers()[:4]]}
    err = assert_error(client.post("/v1/score/batch", json=four), 422, "validation_error")
    assert err["details"][0]["field"] == "customers" and "at most 3" in err["details"][0]["message"]
    assert_error(client.post("/v1/score/batch", json={"customers": []}), 422)
    counts = world.raw["CustomerId"].value_counts()
    cid = str(counts.index[0])
    tx = transactions_json(world.raw, cid)[:3]
    assert len(tx) == 3
    err = assert_error(client.post("/v1/score", json={"customer_id": cid, "transactions": tx}), 422)
    assert err["details"][0]["field"] == "transactions"
    spec = client.get("/openapi.json").get_json()["components"]["schemas"]
    assert spec["BatchRequest"]["properties"]["customers"]["maxItems"] == 3


def test_batch_duplicate_customers_with_transactions_are_refused(
    client: FlaskClient, world: World
) -> None:
    cid = world.customers()[0]
    tx = transactions_json(world.raw, cid)
    body = {"customers": [{"customer_id": cid, "transactions": tx}] * 2}
    err = assert_error(client.post("/v1/score/batch", json=body), 422)
    assert [d["field"] for d in err["details"]] == [
        "customers[0].customer_id",
        "customers[1].customer_id",
    ]


# -- protocol errors -----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("data", "content_type", "status", "code"),
    [
        ('{"customer_id": ', "application/json", 400, "malformed_json"),
        ("", "application/json", 400, "malformed_json"),
        ('{"customer_id": NaN}', "application/json", 400, "malformed_json"),
        (b'{"customer_id": "\xff"}', "application/json", 400, "malformed_json"),
        ("[" * 100_000 + "]" * 100_000, "application/json", 400, "malformed_json"),
        ('{"customer_id": "CustomerId_1"}', "text/plain", 415, "unsupported_media_type"),
        ('{"customer_id": "CustomerId_1"}', None, 415, "unsupported_media_type"),
        ("[1, 2]", "application/json", 422, "validation_error"),
        ('"CustomerId_1"', "application/json", 422, "validation_error"),
        ('{"customer_id": 17}', "application/json", 422, "validation_error"),
        (
            '{"customer_id": "CustomerId_1", "as_of": "2019-01-01T00:00:00Z"}',
            "application/json",
            422,
            "validation_error",
        ),
    ],
)
def test_bad_requests_get_json_errors(
    client: FlaskClient, data: Any, content_type: str | None, status: int, code: str
) -> None:
    for path in ("/v1/score", "/v1/score/batch"):
        resp = client.post(path, data=data, content_type=content_type)
        assert_error(resp, status, code)


def test_as_of_without_transactions_names_the_field(client: FlaskClient) -> None:
    resp = client.post(
        "/v1/score", json={"customer_id": "CustomerId_1", "as_of": "2019-01-01T00:00:00Z"}
    )
    assert assert_error(resp, 422)["details"][0]["field"] == "as_of"


def test_body_too_large_is_413(world: World, make_app: Callable[..., Flask]) -> None:
    client = make_app(world.url, max_body_bytes=1024).test_client()
    body = {"customers": [{"customer_id": f"CustomerId_{i}"} for i in range(200)]}
    assert_error(client.post("/v1/score/batch", json=body), 413, "payload_too_large")


def test_unknown_route_and_method_are_json(client: FlaskClient) -> None:
    assert_error(client.get("/v2/nothing"), 404, "not_found")
    resp = client.get("/v1/score")
    assert_error(resp, 405, "method_not_allowed")
    assert "POST" in resp.headers["Allow"]


# -- models and admin ------------------------------------------------------------------------------
def test_models_list_and_champion(client: FlaskClient) -> None:
    listing = client.get("/v1/models").get_json()
    assert listing["model_name"] == MODEL_NAME and listing["champion_version"] == 1
    assert [v["version"] for v in listing["versions"]] == [1, 2]
    assert listing["versions"][0]["metrics"]["roc_auc"] == pytest.approx(0.7)
    assert listing["versions"][0]["params"]["observation_days"] == WINDOW_DAYS
    champ = client.get("/v1/models/champion").get_json()
    assert champ["champion"]["version"] == 1 and champ["champion"]["is_champion"]
    assert champ["served"]["model_version"] == 1 and champ["served"]["snapshot_customers"] > 100


def test_admin_auth(
    world: World, make_app: Callable[..., Flask], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    client = make_app(world.url).test_client()
    url = "/v1/models/2/promote"
    resp = client.post(url, json=ADMIN_BODY)
    assert_error(resp, 401, "unauthorized")
    assert resp.headers["WWW-Authenticate"].startswith("Bearer")
    assert_error(client.post(url, json=ADMIN_BODY, headers={"Authorization": "Basic abc"}), 401)
    assert_error(
        client.post(url, json=ADMIN_BODY, headers={"Authorization": "Bearer nope"}),
        403,
        "forbidden",
    )
    assert_error(
        client.post("/v1/models/rollback", json=ADMIN_BODY, headers={"Authorization": "Bearer"}),
        401,
    )
    disabled = make_app(world.url, admin_token=None).test_client()
    assert_error(disabled.post(url, json=ADMIN_BODY, headers=ADMIN_AUTH), 403, "admin_disabled")
    # The right token: validation, then the registry's answer.
    assert_error(client.post(url, json={"actor": "x"}, headers=ADMIN_AUTH), 422)
    assert_error(
        client.post("/v1/models/99/promote", json=ADMIN_BODY, headers=ADMIN_AUTH),
        404,
        "unknown_version",
    )
    assert_error(
        client.post("/v1/models/1/promote", json=ADMIN_BODY, headers=ADMIN_AUTH),
        409,
        "promotion_refused",
    )
    ok = client.post(url, json=ADMIN_BODY, headers=ADMIN_AUTH)
    assert ok.status_code == 200 and ok.get_json()["champion"]["version"] == 2
    assert ok.get_json()["champion"]["decision_reason"] == ADMIN_BODY["reason"]
    back = client.post("/v1/models/rollback", json=ADMIN_BODY, headers=ADMIN_AUTH)
    assert back.status_code == 200 and back.get_json()["champion"]["version"] == 1
    assert_error(client.post("/v1/models/rollback", json=ADMIN_BODY, headers=ADMIN_AUTH), 409)
    assert ADMIN_TOKEN not in caplog.text


def test_admin_token_is_compared_in_constant_time(
    monkeypatch: pytest.MonkeyPatch, client: FlaskClient
) -> None:
    import api.http

    calls: list[tuple[bytes, bytes]] = []
    real = api.http.hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(api.http.hmac, "compare_digest", spy)
    client.post("/v1/models/rollback", json=ADMIN_BODY, headers={"Authorization": "Bearer guess"})
    assert calls == [(b"guess", ADMIN_TOKEN.encode())]


# -- hot reload ----------------------------------------------------------------------------------
def test_hot_reload_serves_a_new_champion_without_restart(
    world: World, make_app: Callable[..., Flask]
) -> None:
    from registry import Registry

    app = make_app(world.url, start_background=True, reload_seconds=0.2)
    client = app.test_client()
    cid = world.customers()[2]
    before = client.post("/v1/score", json={"customer_id": cid}).get_json()
    assert before["model_version"] == 1
    with Registry(world.url) as reg:  # another process (the retrain flow) promotes v2
        reg.promote(MODEL_NAME, 2, actor="flow", reason="better")
    assert wait_for(lambda: client.get("/ready").get_json()["model_version"] == 2)
    after = client.post("/v1/score", json={"customer_id": cid}).get_json()
    assert after["model_version"] == 2
    expected = expected_frame(world, 2, [cid])["probability"].iloc[0]
    assert after["probability_of_default"] == pytest.approx(expected, abs=1e-12)
    assert after["probability_of_default"] != before["probability_of_default"]


def test_requests_during_reload_see_one_whole_model(
    world: World, make_app: Callable[..., Flask]
) -> None:
    """Batches served while versions flip are never a mix of two models."""
    import threading

    app = make_app(world.url)
    state = app.extensions["bati"]
    client = app.test_client()
    from registry import Registry

    stop = threading.Event()

    def flip() -> None:
        with Registry(world.url) as reg:
            version = 1
            while not stop.is_set():
                version = 3 - version
                reg.promote(MODEL_NAME, version, actor="t", reason="flip")
                state.holder.refresh()

    thread = threading.Thread(target=flip)
    thread.start()
    body = {"customers": [{"customer_id": c} for c in world.customers()]}
    seen = set()
    try:
        for _ in range(15):
            out = client.post("/v1/score/batch", json=body).get_json()
            versions = {r["model_version"] for r in out["results"]}
            assert versions == {out["model_version"]}
            seen.add(out["model_version"])
    finally:
        stop.set()
        thread.join()
    assert seen <= {1, 2}


def test_no_champion_at_start_then_promoted(tmp_path: Path, make_app: Callable[..., Flask]) -> None:
    from registry import Registry

    world = build_world(f"sqlite:///{tmp_path / 'empty.db'}", promote=None)
    app = make_app(world.url, start_background=True, reload_seconds=0.2)
    client = app.test_client()
    assert_error(client.get("/ready"), 503, "no_champion")
    assert_error(
        client.post("/v1/score", json={"customer_id": world.customers()[0]}), 503, "no_champion"
    )
    assert_error(client.get("/v1/models/champion"), 503, "no_champion")
    assert client.get("/health").status_code == 200
    with Registry(world.url) as reg:
        reg.promote(MODEL_NAME, 1, actor="tests", reason="first champion")
    assert wait_for(lambda: client.get("/ready").status_code == 200)
    assert client.post("/v1/score", json={"customer_id": world.customers()[0]}).status_code == 200


def test_tampered_champion_is_refused_and_the_old_one_kept(
    world: World, make_app: Callable[..., Flask]
) -> None:
    from sqlalchemy import create_engine, text

    from registry import Registry

    app = make_app(world.url)
    state = app.extensions["bati"]
    with Registry(world.url) as reg:  # promoted while intact (promotion verifies artifacts)
        reg.promote(MODEL_NAME, 2, actor="attacker", reason="swap")
    engine = create_engine(world.url)
    with engine.begin() as conn:  # then one flipped byte, by someone who dropped the triggers
        for (name,) in conn.execute(
            text("SELECT name FROM sqlite_master WHERE type = 'trigger' AND tbl_name = :t"),
            {"t": "model_artifacts"},
        ).all():
            conn.execute(text(f'DROP TRIGGER "{name}"'))
        v = {"v": world.versions[2].id}
        blob = bytearray(
            conn.execute(
                text("SELECT data FROM model_artifacts WHERE version_id = :v"), v
            ).scalar_one()
        )
        blob[len(blob) // 2] ^= 0xFF
        conn.execute(
            text("UPDATE model_artifacts SET data = :d WHERE version_id = :v"),
            {**v, "d": bytes(blob)},
        )
    engine.dispose()
    assert state.holder.refresh() is False
    assert state.holder.current.version == 1
    health = app.test_client().get("/health").get_json()
    assert health["served_version"] == 1 and health["reload"]["failures"] == 1
    assert "ArtifactTampered" in health["reload"]["last_error"]
    assert (
        app.test_client()
        .post("/v1/score", json={"customer_id": world.customers()[0]})
        .get_json()["model_version"]
        == 1
    )


def test_new_feature_snapshot_is_picked_up(world: World, make_app: Callable[..., Flask]) -> None:
    from registry import Registry, write_feature_snapshot

    app = make_app(world.url)
    state = app.extensions["bati"]
    later = world.as_of + pd.Timedelta(days=1)
    subset = world.snapshot.iloc[:10]
    with Registry(world.url) as reg:
        write_feature_snapshot(reg, subset, later, "next-run")
    assert state.holder.refresh() is True
    assert state.holder.current.snapshot_as_of == later.isoformat()
    assert len(state.holder.current.table) == 10


def test_newer_published_snapshot_same_date_same_champion_is_picked_up(
    world: World, make_app: Callable[..., Flask]
) -> None:
    """Issue 13 item 5: the reload compares the served snapshot's id, not its date, and an
    unpublished (running or killed) run's snapshot is never served."""
    from registry import Registry, publish_snapshot, served_snapshot_id, write_snapshot

    app = make_app(world.url)
    state = app.extensions["bati"]
    client = app.test_client()
    first = state.holder.current.snapshot_id
    gone = world.customers()[0]
    assert client.post("/v1/score", json={"customer_id": gone}).status_code == 200
    with Registry(world.url) as reg:
        assert served_snapshot_id(reg) == first
        pending = write_snapshot(reg, world.snapshot.iloc[1:], world.as_of, "killed-run")
    assert state.holder.refresh() is False  # unpublished: still the first snapshot
    assert client.post("/v1/score", json={"customer_id": gone}).status_code == 200
    with Registry(world.url) as reg:
        publish_snapshot(reg, pending.id)
    assert state.holder.refresh() is True  # same as_of, same champion, newer publication
    served = client.get("/v1/models/champion").get_json()["served"]
    assert served["snapshot_id"] == pending.id != first
    assert served["model_version"] == 1
    assert client.post("/v1/score", json={"customer_id": gone}).status_code == 404
    assert state.holder.refresh() is False  # nothing new: no reload


# -- prediction log ----------------------------------------------------------------------------
def test_every_score_is_logged(world: World, make_app: Callable[..., Flask]) -> None:
    from registry import Registry, read_prediction_log

    app = make_app(world.url, start_background=True, log_flush_seconds=0.05)
    client = app.test_client()
    ids = world.customers()[:5]
    one = client.post(
        "/v1/score", json={"customer_id": ids[0]}, headers={"X-Request-ID": "single-1"}
    )
    server_id = one.get_json()["request_id"]
    assert one.status_code == 200
    batch = client.post(
        "/v1/score/batch",
        json={"customers": [{"customer_id": c} for c in ids]},
        headers={"X-Request-ID": "batch-1"},
    )
    assert batch.status_code == 200
    state = app.extensions["bati"]
    assert wait_for(lambda: state.predlog.stats()["written"] == 6)
    with Registry(world.url) as reg:
        log = read_prediction_log(reg)
    assert sorted(log["client_request_id"]) == ["batch-1"] * 5 + ["single-1"]
    assert log.groupby("client_request_id")["request_id"].nunique().to_dict() == {
        "batch-1": 1,
        "single-1": 1,
    }
    assert set(log["model_version"]) == {1} and (log["latency_ms"] > 0).all()
    row = log[log["request_id"] == server_id].iloc[0]
    assert row["client_request_id"] == "single-1"
    answer = one.get_json()
    assert row["band"] == answer["band"] and row["decision"] in ("approved", "declined")
    assert (row["decision"] == "approved") == answer["approved"]
    assert [c["feature"] for c in row["reason_codes"]] == [r["feature"] for r in answer["reasons"]]
    assert row["customer_id"] == ids[0]
    assert row["probability"] == pytest.approx(one.get_json()["probability_of_default"])
    assert row["score"] == one.get_json()["score"]


def test_prediction_log_never_blocks_and_counts_drops() -> None:
    slow_calls = []

    def slow_write(rows: list[dict[str, Any]]) -> None:
        slow_calls.append(len(rows))
        time.sleep(0.5)

    writer = PredictionLogWriter(slow_write, max_rows=3, batch_rows=10, flush_seconds=0.01)
    start = time.perf_counter()
    assert writer.submit([{"request_id": "a"}] * 2) == 0
    assert writer.submit([{"request_id": "b"}] * 2) == 1
    assert time.perf_counter() - start < 0.05
    assert writer.stats()["dropped"] == 1 and writer.stats()["queued"] == 3
    writer.close()
    assert writer.stats()["written"] == 3 and slow_calls == [3]


def test_prediction_log_retries_then_counts_failures() -> None:
    attempts = []

    def failing(rows: list[dict[str, Any]]) -> None:
        attempts.append(len(rows))
        raise ConnectionError("db down")

    writer = PredictionLogWriter(failing, flush_seconds=0.01)
    writer.submit([{"request_id": "x"}] * 4)
    for _ in range(3):
        writer.flush_once()
    assert attempts == [4, 4, 4]
    assert writer.stats() == {"queued": 0, "written": 0, "dropped": 0, "failed": 4}
    writer.close()


def test_health_reports_dropped_predictions(world: World, make_app: Callable[..., Flask]) -> None:
    app = make_app(world.url, log_queue_size=2)
    client = app.test_client()
    body = {"customers": [{"customer_id": c} for c in world.customers()[:5]]}
    assert client.post("/v1/score/batch", json=body).status_code == 200
    assert client.get("/health").get_json()["prediction_log"]["dropped"] == 3


# -- database down ---------------------------------------------------------------------------------
def test_database_down_gives_503_not_500(make_app: Callable[..., Flask]) -> None:
    url = "postgresql+psycopg://postgres@127.0.0.1:9/nowhere?connect_timeout=2"
    client = make_app(url).test_client()
    assert client.get("/health").status_code == 200
    assert_error(client.get("/ready"), 503, "no_champion")
    assert_error(client.get("/v1/models"), 503, "database_unavailable")
    assert_error(client.get("/v1/models/champion"), 503, "database_unavailable")
    err = assert_error(client.post("/v1/models/rollback", json=ADMIN_BODY, headers=ADMIN_AUTH), 503)
    assert "127.0.0.1" not in err["message"] and "postgres@" not in err["message"]


def test_scoring_by_id_survives_a_database_outage(
    world: World, make_app: Callable[..., Flask]
) -> None:
    """The model and score table are in memory: scoring continues while the registry is gone."""
    app = make_app(world.url)
    state = app.extensions["bati"]
    state.registry().close()
    Path(world.url.removeprefix("sqlite:///")).unlink()
    Path(world.url.removeprefix("sqlite:///")).parent.chmod(0o500)  # cannot re-create the file
    try:
        resp = app.test_client().post("/v1/score", json={"customer_id": world.customers()[0]})
        assert resp.status_code == 200
        assert state.holder.refresh() is False
        assert state.holder.current.version == 1
    finally:
        Path(world.url.removeprefix("sqlite:///")).parent.chmod(0o700)


@pytest.mark.postgres
def test_postgres_connections_dropped_under_the_api_recover(
    tmp_path: Path, make_app: Callable[..., Flask]
) -> None:
    """Server-side connection kills (what a PostgreSQL restart does): next requests succeed."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    from registry.testing import PG_ENV, database_url

    if not os.environ.get(PG_ENV):
        pytest.skip(f"needs {PG_ENV}")
    with database_url("postgres", tmp_path) as url:
        world = build_world(url)
        name = f"bati-api-test-{os.getpid()}-{time.monotonic_ns()}"
        tagged = make_url(url).update_query_dict({"application_name": name})
        app = make_app(tagged.render_as_string(hide_password=False))
        client = app.test_client()
        assert client.get("/v1/models").status_code == 200
        admin = create_engine(os.environ[PG_ENV])
        with admin.begin() as conn:  # only this test's API connections
            killed = conn.execute(
                text(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                    "WHERE application_name = :name"
                ),
                {"name": name},
            ).scalar_one()
        admin.dispose()
        assert killed >= 1
        assert client.get("/v1/models").status_code == 200
        assert client.get("/v1/models/champion").status_code == 200
        assert (
            client.post("/v1/score", json={"customer_id": world.customers()[0]}).status_code == 200
        )
        app.extensions["bati"].close()


# -- openapi, docs, config -------------------------------------------------------------------------
def test_openapi_document_covers_every_route(app: Flask, client: FlaskClient) -> None:
    spec = client.get("/openapi.json").get_json()
    assert spec["openapi"] == "3.1.0"
    routes = {
        (re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", str(rule.rule)), method.lower())
        for rule in app.url_map.iter_rules()
        if rule.endpoint != "static"
        for method in rule.methods - {"HEAD", "OPTIONS"}
    }
    documented = {(path, method) for path, ops in spec["paths"].items() for method in ops}
    assert routes == documented
    schemas = spec["components"]["schemas"]
    for name in ("ScoreRequest", "Transaction", "BatchRequest", "ScoreResponse", "ErrorResponse"):
        assert name in schemas
    assert schemas["ScoreRequest"]["additionalProperties"] is False
    assert schemas["Transaction"]["properties"]["ChannelId"]["enum"][0] == "ChannelId_1"
    score = spec["paths"]["/v1/score"]["post"]["responses"]
    assert set(score) == {"200", "400", "404", "409", "413", "415", "422", "503"}
    promote = spec["paths"]["/v1/models/{version}/promote"]["post"]
    assert promote["security"] == [{"bearerAuth": []}] and "401" in promote["responses"]


def test_docs_page_is_self_contained(client: FlaskClient) -> None:
    page = client.get("/docs")
    assert page.status_code == 200 and page.mimetype == "text/html"
    text = page.get_data(as_text=True)
    for path in ("/v1/score", "/v1/score/batch", "/v1/models/{version}/promote", "/ready"):
        assert path in text
    assert "<script src" not in text and "https://" not in text and "<link" not in text


def test_settings_from_environment() -> None:
    env = {
        "BATI_DB_URL": "sqlite:///x.db",
        "BATI_MODEL_NAME": "m",
        "BATI_ADMIN_TOKEN": "t" * 32 + "\n",  # a trailing newline (a file's) is stripped
        "BATI_RELOAD_SECONDS": "2.5",
        "BATI_MAX_BATCH": "10",
        "BATI_MAX_BODY_BYTES": "2048",
        "BATI_MAX_TRANSACTIONS": "7",
    }
    s = load_settings(env=env)
    assert (s.db_url, s.model_name, s.token(), s.reload_seconds) == (
        "sqlite:///x.db",
        "m",
        "t" * 32,
        2.5,
    )
    assert (s.max_batch, s.max_body_bytes, s.max_transactions) == (10, 2048, 7)
    assert load_settings({"max_batch": 3}, env=env).max_batch == 3
    defaults = load_settings(env={})
    assert defaults == Settings.model_construct()  # every field at its declared default
    assert defaults.reload_seconds == 30 and defaults.max_batch == 1000
    assert type(s.admin_token).__name__ == "SecretStr" and "t" * 32 not in str(s.model_dump())
    # Only the documented variables are read: BATI_START_BACKGROUND is not a setting.
    assert load_settings(env={"BATI_START_BACKGROUND": "0"}).start_background is True
    assert defaults.admin_token is None and "admin_token" not in defaults.public()
    with pytest.raises(ValueError, match="BATI_MAX_BATCH"):
        load_settings(env={"BATI_MAX_BATCH": "many"})
    with pytest.raises(ValueError, match="unknown API setting"):
        load_settings({"nope": 1}, env={})
    assert load_settings(env={"BATI_ADMIN_TOKEN": "  "}).admin_token is None
    assert "t" * 32 not in repr(s)


@pytest.mark.parametrize(
    ("var", "value", "problem"),
    [
        ("BATI_REQUEST_TIMEOUT_SECONDS", "nan", "finite"),
        ("BATI_RELOAD_SECONDS", "inf", "finite"),
        ("BATI_RELOAD_SECONDS", "-1", "more than 0"),
        ("BATI_LOG_FLUSH_SECONDS", "1e400", "finite"),
        ("BATI_ADMIN_TOKEN", "tok-4242", "at least 32"),
        ("BATI_ADMIN_TOKEN", "short-token-with-newline\n", "at least 32"),
        ("BATI_MAX_BATCH", "0", "at least 1"),
    ],
)
def test_bad_settings_are_refused_at_start_with_one_line(
    var: str, value: str, problem: str
) -> None:
    """Issue 15.10: nan/inf timers, short tokens... refused by name before anything runs."""
    with pytest.raises(ValueError) as caught:
        load_settings(env={var: value})
    text = str(caught.value)
    assert text.startswith(f"{var}: ") and problem in text and "\n" not in text
    if var == "BATI_ADMIN_TOKEN":
        assert value.strip() not in text  # the token is never quoted


# -- the contract is declared once (issue 12.6) ----------------------------------------------------
def test_a_route_without_a_declaration_cannot_be_published(app: Flask) -> None:
    from api.openapi import UndocumentedRoute, build_openapi

    @app.get("/v1/undeclared")
    def undeclared() -> str:
        return "x"

    with pytest.raises(UndocumentedRoute, match="/v1/undeclared"):
        build_openapi(app, app.extensions["bati"].settings)


# -- error bodies: bounded, never echoing the caller (issue 15.7, 15.8) ----------------------------
def test_error_details_are_capped_and_say_how_many_were_left_out(
    client: FlaskClient, world: World
) -> None:
    from api.errors import MAX_DETAILS

    keys = {f"unknown_{i}": i for i in range(290)}
    body = {"customers": [{"customer_id": c, **keys} for c in world.customers()[:40]]}
    resp = client.post("/v1/score/batch", json=body)
    err = assert_error(resp, 422, "validation_error")
    assert len(resp.get_data()) < 64 * 1024  # was 290 x 40 details (~1.4 MB)
    assert len(err["details"]) == MAX_DETAILS + 1
    last = err["details"][-1]
    assert last["type"] == "details_truncated"
    assert last["message"] == f"{290 * 40 - MAX_DETAILS} more error(s) left out of {290 * 40}"
    assert err["message"].startswith(f"{290 * 40} invalid field(s)")
    # The same cap on rules checked by the training code (5,000 bad transactions).
    cid = world.customers()[0]
    tx = transactions_json(world.raw, cid)[:1] * 600
    bad = [dict(t, TransactionId=f"TransactionId_{i}", Value=0.5) for i, t in enumerate(tx)]
    resp = client.post("/v1/score", json={"customer_id": cid, "transactions": bad})
    err = assert_error(resp, 422, "validation_error")
    assert len(err["details"]) == MAX_DETAILS + 1
    assert err["details"][-1]["type"] == "details_truncated"


def test_error_bodies_never_echo_the_callers_keys(client: FlaskClient, world: World) -> None:
    key = "<img src=x onerror=alert(1)>CUSTOMER-SECRET-4406"
    for body in (
        {"customer_id": world.customers()[0], key: 1},
        {"customers": [{"customer_id": world.customers()[0], key: 1}]},
        {"customer_id": world.customers()[0], "transactions": [{key: "x"}]},
    ):
        path = "/v1/score/batch" if "customers" in body else "/v1/score"
        resp = client.post(path, json=body)
        err = assert_error(resp, 422, "validation_error")
        text = resp.get_data(as_text=True)
        assert "CUSTOMER-SECRET" not in text and "onerror" not in text and "<img" not in text
        assert any(d["type"] == "extra_forbidden" for d in err["details"])


# -- the champion's inputs must fit what the API serves (issue 15.15) ------------------------------
def test_a_champion_trained_on_other_inputs_is_not_served(
    world: World, make_app: Callable[..., Flask]
) -> None:
    from builders import register, synthetic_label, train_model

    from registry import Registry

    app = make_app(world.url)
    client = app.test_client()
    X = world.snapshot[["recency_days", "n_tx"]].rename(columns={"n_tx": "Region_code"})
    model = train_model(X, synthetic_label(world.snapshot))
    with Registry(world.url) as reg:
        info = register(reg, model, X, tag="byo")
        reg.promote(MODEL_NAME, info.version, actor="tests", reason="bring your own labels")
    assert app.extensions["bati"].holder.refresh() is True
    err = assert_error(client.get("/ready"), 503, "input_schema_mismatch")
    assert "Region_code" in err["message"]
    for body in (
        {"customer_id": world.customers()[0]},
        {
            "customer_id": world.customers()[0],
            "transactions": transactions_json(world.raw, world.customers()[0]),
        },
    ):
        err = assert_error(client.post("/v1/score", json=body), 409, "input_schema_mismatch")
    assert_error(
        client.post("/v1/score/batch", json={"customers": [{"customer_id": world.customers()[0]}]}),
        409,
        "input_schema_mismatch",
    )


# -- the API never creates or migrates schema (issue 15.4, 15.5) -----------------------------------
def _tables(url: str) -> set[str]:
    from sqlalchemy import create_engine, inspect

    engine = create_engine(url)
    try:
        return set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


def test_api_never_migrates_and_rides_out_a_recreated_database(
    world: World, make_app: Callable[..., Flask]
) -> None:
    app = make_app(world.url)
    client = app.test_client()
    state = app.extensions["bati"]
    path = Path(world.url.removeprefix("sqlite:///"))
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    path.touch()  # dropped and recreated empty while serving (its sessions ended)
    state.registry().engine.dispose()
    assert state.holder.refresh() is False
    assert _tables(world.url) == set()  # the API created no table
    ready = client.get("/ready")
    assert ready.status_code == 200 and ready.get_json()["model_version"] == 1
    assert "registry migrate" in ready.get_json()["registry_error"]
    assert client.post("/v1/score", json={"customer_id": world.customers()[0]}).status_code == 200
    err = assert_error(client.get("/v1/models"), 503, "schema_not_current")
    assert "registry migrate" in err["message"] and str(path) not in err["message"]
    # A fresh worker on the empty database: 503 naming the problem, still no table created.
    fresh = make_app(world.url).test_client()
    err = assert_error(fresh.get("/ready"), 503, "no_champion")
    assert "registry migrate" in err["message"]
    assert _tables(world.url) == set()
    # The operator migrates and retrains: every worker recovers without a restart.
    build_world(world.url)
    assert state.holder.refresh() is True
    assert client.get("/ready").get_json()["registry_error"] is None
    assert client.get("/v1/models").status_code == 200


def test_schema_newer_than_the_code_is_503_with_one_line(
    world: World, make_app: Callable[..., Flask]
) -> None:
    from sqlalchemy import create_engine, text

    app = make_app(world.url)
    client = app.test_client()
    engine = create_engine(world.url)
    with engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '9999_future'"))
    engine.dispose()
    app.extensions["bati"].registry_failed()  # what a failed poll does
    err = assert_error(client.get("/v1/models"), 503, "schema_not_current")
    assert "newer than this code (9999_future >" in err["message"]
    assert "upgrade the code" in err["message"] and "\n" not in err["message"]
    assert_error(client.get("/v1/models/champion"), 503, "schema_not_current")
    assert client.post("/v1/score", json={"customer_id": world.customers()[0]}).status_code == 200


# -- one registry handle per app, closed with it (issue 12.5) --------------------------------------
def test_one_registry_handle_per_app_closed_with_it(world: World) -> None:
    app = create_app({"db_url": world.url, "admin_token": ADMIN_TOKEN, "start_background": False})
    state = app.extensions["bati"]
    client = app.test_client()
    assert client.get("/v1/models").status_code == 200
    reg = state.registry()
    assert state.holder.refresh() is False and state.registry() is reg  # the holder shares it
    assert client.post("/v1/score", json={"customer_id": world.customers()[0]}).status_code == 200
    state.close()
    assert reg.closed
    state.close()  # idempotent (gunicorn's worker_exit, then interpreter exit)


# -- scorecard, monitoring, reports, metrics, logs (issues 14 and 17) ---------------------------
def test_scorecard_points_table_is_served(world: World, make_app: Callable[..., Flask]) -> None:
    from builders import register, synthetic_label

    from credit.scoring import CreditRiskModel
    from credit.woe_scorecard import WoEScorecard
    from registry import Registry

    X = world.snapshot
    y = synthetic_label(X)
    card = CreditRiskModel.from_search(WoEScorecard().fit(X, y), X, y, 0.5, model_name="sc")
    expected = card.points_table()
    with Registry(world.url) as reg:
        version = register(reg, card, X, tag="scorecard").version
    client = make_app(world.url).test_client()
    resp = client.get(f"/v1/models/{version}/scorecard")
    assert resp.status_code == 200, resp.get_data(as_text=True)
    body = resp.get_json()
    assert body["version"] == version and len(body["rows"]) == len(expected)
    first = body["rows"][0]
    assert set(first) == {"feature", "bin", "count", "event_rate", "woe", "iv", "points"}
    assert [r["feature"] for r in body["rows"]] == list(expected["feature"])
    assert [r["points"] for r in body["rows"]] == pytest.approx(list(expected["points"]))
    assert_error(client.get("/v1/models/1/scorecard"), 404, "not_a_scorecard")
    assert_error(client.get("/v1/models/99/scorecard"), 404, "unknown_version")


def test_scorecard_serves_the_table_stored_with_the_version(
    world: World, make_app: Callable[..., Flask]
) -> None:
    """What the retrain flow stores (``extra["points_table"]``) is served as is."""
    from builders import synthetic_label, train_model

    from registry import Registry

    X = world.snapshot
    model = train_model(X, synthetic_label(X), C=0.3)
    stored = [
        {"feature": "amount_sum", "bin": "(-inf, 10)", "count": 5, "event_rate": None,
         "woe": 0.0, "iv": 0.0, "points": 12.5},
    ]  # fmt: skip
    with Registry(world.url) as reg:
        version = reg.register(
            MODEL_NAME,
            model,
            metrics={"roc_auc": 0.7},
            params={},
            features=list(model.feature_names_),
            input_schema={},
            data_fingerprint="stored-points",
            n_rows=len(X),
            extra={"points_table": stored},
        ).version
    resp = make_app(world.url).test_client().get(f"/v1/models/{version}/scorecard")
    assert resp.status_code == 200, resp.get_data(as_text=True)
    assert resp.get_json()["rows"] == stored


def test_monitoring_returns_latest_figures_and_open_breaches(
    world: World, client: FlaskClient
) -> None:
    from registry import Registry, write_monitoring

    breach = {"metric": "feature_psi:amount_sum", "value": 0.31, "threshold": 0.25, "level": "act"}
    with Registry(world.url) as reg:
        write_monitoring(
            reg,
            kind="stability",
            figures={"score_psi": 0.4},
            breaches=[dict(breach, value=0.5)],
            model_name=MODEL_NAME,
            model_version=1,
            as_of="2019-02-01T00:00:00Z",
            run_id="r1",
        )
        write_monitoring(
            reg,
            kind="stability",
            figures={"score_psi": 0.02, "max_feature_psi": 0.31},
            breaches=[breach],
            model_name=MODEL_NAME,
            model_version=1,
            as_of="2019-02-02T00:00:00Z",
            run_id="r2",
        )
        write_monitoring(
            reg,
            kind="decay",
            figures={"auc": 0.74},
            model_name=MODEL_NAME,
            model_version=1,
            as_of="2019-01-01T00:00:00Z",
            run_id="r0",
        )
        write_monitoring(reg, kind="stability", figures={}, model_name="other-model")
    assert_error(client.get("/v1/monitoring"), 401, "unauthorized")
    resp = client.get("/v1/monitoring", headers=ADMIN_AUTH)
    assert resp.status_code == 200, resp.get_data(as_text=True)
    body = resp.get_json()
    assert body["model_name"] == MODEL_NAME and body["served_version"] == 1
    assert body["stability"]["run_id"] == "r2" and body["stability"]["figures"]["score_psi"] == 0.02
    assert body["decay"]["figures"] == {"auc": 0.74} and body["decay"]["breaches"] == []
    assert body["open_breaches"] == [
        {
            **breach,
            "kind": "stability",
            "model_version": 1,
            "run_id": "r2",
            "as_of": body["stability"]["as_of"],
        }
    ]
    assert [r["run_id"] for r in body["history"]] == ["r0", "r2", "r1"]  # newest first
    assert len(client.get("/v1/monitoring?limit=1", headers=ADMIN_AUTH).get_json()["history"]) == 1
    assert_error(client.get("/v1/monitoring?limit=x", headers=ADMIN_AUTH), 400, "bad_limit")


@pytest.fixture
def runs(tmp_path: Path) -> Path:
    """A runs folder with one run's reports, a file outside it and a symlink escaping it."""
    root = tmp_path / "runs"
    run = root / "run-1"
    (run / "evaluation").mkdir(parents=True)
    (run / "eda_report.html").write_text("<html><body><h1>EDA</h1></body></html>")
    (run / "model_card.md").write_text("# Model card\n")
    (run / "candidates.csv").write_text("name,auc\nlogreg,0.8\n")
    (run / "evaluation" / "roc.png").write_bytes(b"\x89PNG\r\n\x1a\nfake")
    (run / "notes.txt").write_text("not a report type")
    (run / ".hidden.html").write_text("hidden")
    (tmp_path / "secret.html").write_text("SECRET OUTSIDE")
    (run / "escape.html").symlink_to(tmp_path / "secret.html")
    (root / "run-2").symlink_to(tmp_path)  # a run folder that is a link out of the root
    return root


def test_reports_are_served_read_only_behind_the_admin_token(
    world: World, make_app: Callable[..., Flask], runs: Path
) -> None:
    from credit.report_links import signed_path, signed_url

    client = make_app(world.url, runs_dir=str(runs)).test_client()
    types = {
        "eda_report.html": "text/html",
        "model_card.md": "text/markdown",
        "candidates.csv": "text/csv",
        "evaluation/roc.png": "image/png",
    }
    for name, mime in types.items():
        resp = client.get(f"/reports/run-1/{name}", headers=ADMIN_AUTH)
        assert resp.status_code == 200 and resp.mimetype == mime, name
        assert resp.data == (runs / "run-1" / name).read_bytes()
        assert "sandbox" in resp.headers["Content-Security-Policy"]
        assert_error(client.get(f"/reports/run-1/{name}"), 401, "unauthorized")
        assert client.post(f"/reports/run-1/{name}", headers=ADMIN_AUTH).status_code == 405
    bad_token = {"Authorization": "Bearer " + "x" * 40}
    assert_error(client.get("/reports/run-1/eda_report.html", headers=bad_token), 403)
    # A signed link opens that one file (a browser cannot send the header), until it expires.
    link = signed_url("run-1", "eda_report.html", base_url="http://h:1", token=ADMIN_TOKEN)
    assert link is not None and link.startswith("http://h:1/reports/run-1/eda_report.html?")
    assert ADMIN_TOKEN not in link
    path = signed_path("run-1", "eda_report.html", token=ADMIN_TOKEN)
    assert client.get(path).status_code == 200
    other = path.replace("eda_report.html", "model_card.md")
    assert_error(client.get(other), 403, "forbidden")
    assert_error(client.get(path[:-2] + ("00" if path[-2:] != "00" else "11")), 403)
    expired = signed_path("run-1", "eda_report.html", token=ADMIN_TOKEN, ttl_seconds=1)
    time.sleep(2.1)
    assert "expired" in assert_error(client.get(expired), 403)["message"]
    wrong_key = signed_path("run-1", "eda_report.html", token="y" * 40)
    assert_error(client.get(wrong_key), 403, "forbidden")
    assert signed_url("run-1", "x.html", token="") is None  # no token: reports are off
    # Path traversal, hidden files, other types, links out of the folder: all 404, never read.
    for attempt in (
        "/reports/run-1/../secret.html",
        "/reports/run-1/%2e%2e/secret.html",
        "/reports/run-1/evaluation/../../secret.html",
        "/reports/run-1/evaluation/%2E%2E/%2E%2E/secret.html",
        "/reports/..%2fsecret.html/x.html",
        "/reports/%2e%2e/secret.html",
        "/reports/run-1/..%5c..%5csecret.html",
        "/reports/run-1/escape.html",
        "/reports/run-2/secret.html",
        "/reports/run-1/.hidden.html",
        "/reports/run-1/notes.txt",
        "/reports/run-1/missing.html",
        "/reports/run-9/eda_report.html",
        "/reports/run-1/eda_report.html%00.png",
    ):
        resp = client.get(attempt, headers=ADMIN_AUTH)
        assert resp.status_code == 404, attempt
        assert b"SECRET OUTSIDE" not in resp.data
    merged = client.get("/reports/run-1//etc/passwd.html", headers=ADMIN_AUTH)  # slashes merged
    assert merged.status_code == 308 and merged.location.endswith("/reports/run-1/etc/passwd.html")


def test_metrics_text_format_counts_requests_and_scores(client: FlaskClient, world: World) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    def samples() -> dict[tuple[str, tuple], float]:
        text = client.get("/metrics").get_data(as_text=True)
        return {
            (s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text)
            for s in family.samples
        }

    key = (
        "bati_http_requests_total",
        (("method", "POST"), ("route", "/v1/score"), ("status", "200")),
    )
    before = samples()
    cid = world.customers()[0]
    result = client.post("/v1/score", json={"customer_id": cid}).get_json()
    client.post("/v1/score", json={"customer_id": "CustomerId_999999999"})
    after = samples()
    assert after[key] - before.get(key, 0.0) == 1
    miss = (
        "bati_http_requests_total",
        (("method", "POST"), ("route", "/v1/score"), ("status", "404")),
    )
    assert after[miss] - before.get(miss, 0.0) == 1
    decision = "approved" if result["approved"] else "declined"
    band = ("bati_scores_total", (("band", result["band"]), ("decision", decision)))
    assert after[band] - before.get(band, 0.0) == 1
    assert after[("bati_served_model_version", (("model_name", MODEL_NAME),))] == 1
    assert ("bati_prediction_log_queue_depth", ()) in after
    assert ("bati_prediction_log_dropped_total", ()) in after
    assert ("bati_model_reloads_total", ()) in after
    assert not any(cid in str(k) for k in after)


def test_access_log_is_json_with_the_server_request_id(
    client: FlaskClient, world: World, caplog: pytest.LogCaptureFixture
) -> None:
    from api.logs import JsonFormatter

    cid = world.customers()[0]
    with caplog.at_level(logging.INFO, logger="api.access"):
        resp = client.post(
            "/v1/score", json={"customer_id": cid}, headers={"X-Request-ID": "caller-7"}
        )
        client.get("/reports/run-1/x.html?sig=s3cr3t&expires=1", headers=ADMIN_AUTH)
    lines = [JsonFormatter().format(r) for r in caplog.records if r.name == "api.access"]
    first = json.loads(lines[0])
    assert set(first) == {
        "ts",
        "level",
        "logger",
        "message",
        "request_id",
        "route",
        "method",
        "status",
        "duration_ms",
    }
    assert first["request_id"] == resp.headers["X-Request-ID"] == resp.get_json()["request_id"]
    assert (first["route"], first["status"], first["level"]) == ("/v1/score", 200, "info")
    assert first["duration_ms"] > 0 and first["ts"].endswith("+00:00")
    text = "\n".join(lines)
    for secret in (cid, "caller-7", ADMIN_TOKEN, "s3cr3t", "run-1"):
        assert secret not in text


def test_documented_example_bodies_work_as_they_are(client: FlaskClient, world: World) -> None:
    """Issue 17 item 7: every request body example of /openapi.json (what /docs pre-fills)
    answers 200 on a fresh world: the example customer is one of the served snapshot."""
    spec = client.get("/openapi.json").get_json()
    schemas = spec["components"]["schemas"]
    posted = 0
    for path, ops in spec["paths"].items():
        for method, op in ops.items():
            body = op.get("requestBody", {}).get("content", {}).get("application/json")
            if body is None:
                continue
            schema = schemas[body["schema"]["$ref"].rsplit("/", 1)[-1]]
            examples = schema.get("examples") or [
                {k: v["examples"][0] for k, v in schema["properties"].items() if "examples" in v}
            ]
            for example in examples:
                url = path.replace("{version}", "2")
                resp = client.open(url, method=method.upper(), json=example, headers=ADMIN_AUTH)
                assert resp.status_code == 200, (path, example, resp.get_data(as_text=True))
                posted += 1
    assert posted >= 5  # score x2, batch, promote, rollback
    example = schemas["ScoreRequest"]["examples"][0]["customer_id"]
    assert example in world.customers()
    batch = schemas["BatchRequest"]["examples"][0]["customers"]
    assert {"customer_id"} == set(batch[0]) and "transactions" in batch[1]
    page = client.get("/docs").get_data(as_text=True)
    assert example in page and "CustomerId_4406" not in page
