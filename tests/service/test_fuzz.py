"""Property-based fuzzing of every operation in the OpenAPI document (schemathesis).

No generated request may produce a 5xx, every error must use the common shape, and a request
that is refused must leave the database exactly as it was.
"""

from __future__ import annotations

import tempfile

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error

from service.app import create_app
from store import repo
from store.db import session_scope
from store.settings import Settings
from store.models import (Alias, AliasHistory, ApiKey, Document, EvaluationScore, Job, JobEvent, Lineage,
                          ModelVersion, UpdateBatch)

TABLES = (Lineage, UpdateBatch, Document, Job, JobEvent, ModelVersion, EvaluationScore, Alias, AliasHistory, ApiKey)


@pytest.fixture
def fuzz_target(api):
    headers = api.key()
    with api.client(headers) as client:  # something to find: a lineage, a job, a cancelled job
        job = client.post("/updates", json={"documents": [{"text": "A fact."}]}).json()
        client.post("/updates", json={"documents": [{"text": "Another."}]})
        client.post(f"/jobs/{job['id']}/cancel")
    return api, headers


def _openapi() -> dict:
    # The document does not depend on settings, so it is taken from an app that is never served;
    # each operation's test then calls a live server (the `api` fixture) over HTTP.
    with tempfile.TemporaryDirectory() as home:
        return create_app(Settings(home=home)).openapi()


schema = schemathesis.openapi.from_dict(_openapi())


def row_counts(settings_) -> dict[str, int]:
    with session_scope(settings_) as session:
        return {t.__tablename__: repo.count_rows(session, t) for t in TABLES}


@schema.parametrize()
@settings(max_examples=30, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                 HealthCheck.filter_too_much])
def test_no_server_errors_and_refusals_change_nothing(case, fuzz_target):
    api, headers = fuzz_target
    before = row_counts(api.settings)
    response = case.call(base_url=api.url, headers=headers)
    case.validate_response(response, checks=[not_a_server_error])
    if response.status_code >= 400:
        error = response.json()["error"]
        assert set(error) == {"code", "message", "param"} and error["code"] and error["message"]
        assert row_counts(api.settings) == before
