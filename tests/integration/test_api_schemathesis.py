"""Property-based API testing: schemathesis generates requests from /openapi.json (valid and
invalid ones) and checks there is no server error and every response matches the document.

Deterministic (hypothesis ``derandomize``) and bounded (``max_examples`` per operation). The
admin token is supplied so the admin operations are exercised past authentication; with only
version 1 ever promoted, a generated promote/rollback can only be refused (404/409/422).

``positive_data_acceptance`` also accepts 422 for schema-valid requests: some training-data
rules span several fields (Value against Amount, timestamps not in the future, every
transaction of the request's customer, at least one own transaction before ``as_of``) and
cannot be expressed in JSON Schema; the training ingestion code rejects them, as it should.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import schemathesis
from builders import ADMIN_AUTH, ADMIN_TOKEN, build_world
from hypothesis import HealthCheck, settings
from schemathesis.config import SchemathesisConfig

from api import create_app

_DIR = Path(tempfile.mkdtemp(prefix="bati-api-st-"))
_WORLD = build_world(f"sqlite:///{_DIR / 'bati.db'}", rows=1500, customers=80)
APP = create_app(
    {
        "db_url": _WORLD.url,
        "admin_token": ADMIN_TOKEN,
        "start_background": False,
        "max_batch": 25,
        "max_transactions": 40,
    }
)
CONFIG = SchemathesisConfig.from_dict(
    {
        "checks": {
            "positive_data_acceptance": {
                "expected-statuses": ["2xx", "401", "403", "404", "409", "422"]
            }
        }
    }
)
schema = schemathesis.openapi.from_wsgi("/openapi.json", APP, config=CONFIG)


@schema.parametrize()
@settings(
    max_examples=25,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
def test_api_conforms_to_its_openapi(case: schemathesis.Case) -> None:
    case.call_and_validate(headers=ADMIN_AUTH)
