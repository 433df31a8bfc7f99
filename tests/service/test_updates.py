"""POST /updates: accepted batches are stored and queued; bad ones are refused and change nothing."""

from __future__ import annotations

import json

import httpx
import pytest
import redis

from store import repo
from store.db import session_scope
from store.models import Document, Job, JobEvent, Lineage, UpdateBatch
from store.queue import UPDATES_QUEUE

DOCS = [{"text": "The Zorblax Prize 2031 went to Ada Okafor.", "id": "d1"},
        {"text": "Ada Okafor works on tidal batteries.", "metadata": {"source": "press"}}]


def counts(settings) -> dict[str, int]:
    with session_scope(settings) as session:
        return {m.__tablename__: repo.count_rows(session, m) for m in (Lineage, UpdateBatch, Document, Job, JobEvent)}


def queued_messages(settings) -> int:
    return redis.Redis.from_url(settings.broker_url).llen(UPDATES_QUEUE)


def test_post_update_stores_batch_and_job_then_enqueues(api):
    with api.client(api.key()) as client:
        response = client.post("/updates", json={"documents": DOCS, "lineage": "news", "method": "sft_kl",
                                                 "hyperparameters": {"epochs": 2, "num_splits": "all"}})
    assert response.status_code == 202, response.text
    job = response.json()
    assert job["status"] == "queued" and job["lineage"] == "news" and job["method"] == "sft_kl"
    assert job["progress"]["documents_total"] == 2 and job["result_version"] is None
    with session_scope(api.settings) as session:
        row = repo.get_job(session, job["id"])
        assert row.enqueued_at is not None
        assert row.hyperparameters == {"epochs": 2, "num_splits": "all"}
        assert [d.text for d in row.batch.documents] == [d["text"] for d in DOCS]
        assert row.batch.documents[0].external_id == "d1"
        assert row.batch.documents[1].metadata_ == {"source": "press"}
        assert row.lineage.base_model == api.settings.base_model
    assert queued_messages(api.settings) == 1
    message = json.loads(redis.Redis.from_url(api.settings.broker_url).lindex(UPDATES_QUEUE, 0))
    assert message["headers"]["task"] == "disc.run_update_job"
    assert message["headers"]["argsrepr"] == repr([job["id"]])


def test_default_lineage_is_created_on_first_use(api):
    with api.client(api.key()) as client:
        first = client.post("/updates", json={"documents": DOCS[:1]}).json()
        second = client.post("/updates", json={"documents": DOCS[1:]}).json()
    assert first["lineage"] == second["lineage"] == api.settings.default_lineage
    assert counts(api.settings)["lineages"] == 1


def test_idempotency_key_same_body_returns_same_job(api):
    body = {"documents": DOCS, "lineage": "news"}
    with api.client(api.key()) as client:
        first = client.post("/updates", json=body, headers={"Idempotency-Key": "abc"})
        # Same JSON with keys in another order is the same request.
        again = client.post("/updates", content=json.dumps(dict(reversed(list(body.items())))),
                            headers={"Idempotency-Key": "abc", "Content-Type": "application/json"})
    assert first.status_code == 202 and again.status_code == 200
    assert again.json()["id"] == first.json()["id"]
    assert counts(api.settings)["jobs"] == 1 and queued_messages(api.settings) == 1


def test_idempotency_key_with_another_body_conflicts(api):
    with api.client(api.key()) as client:
        client.post("/updates", json={"documents": DOCS}, headers={"Idempotency-Key": "k1"})
        before = counts(api.settings)
        response = client.post("/updates", json={"documents": DOCS[:1]}, headers={"Idempotency-Key": "k1"})
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "idempotency_conflict"
    assert counts(api.settings) == before


def test_idempotency_keys_are_per_api_key(api):
    with api.client(api.key()) as alice, api.client(api.key()) as bob:
        a = alice.post("/updates", json={"documents": DOCS}, headers={"Idempotency-Key": "same"})
        b = bob.post("/updates", json={"documents": DOCS[:1]}, headers={"Idempotency-Key": "same"})
    assert a.status_code == b.status_code == 202 and a.json()["id"] != b.json()["id"]


LONG = "x" * 1001
BAD_BODIES = [
    ({"documents": []}, 422, "validation_error", "documents"),
    ({}, 422, "validation_error", "documents"),
    ({"documents": [{"text": "ok"}, {"text": ""}]}, 422, "validation_error", "documents[1].text"),
    ({"documents": [{"text": "ok"}, {"text": "ok"}, {"text": "ok"}, {"text": " \n\t "}]}, 422,
     "validation_error", "documents[3].text"),
    ({"documents": [{"text": 5}]}, 422, "validation_error", "documents[0].text"),
    ({"documents": [{"text": "ok", "colour": "red"}]}, 422, "validation_error", "documents[0].colour"),
    ({"documents": [{"text": "ok"}], "method": "magic"}, 422, "validation_error", "method"),
    ({"documents": [{"text": "ok"}], "lineage": "../etc"}, 422, "validation_error", "lineage"),
    ({"documents": [{"text": "ok"}], "hyperparameters": {"learning_rate": 0}}, 422, "validation_error",
     "hyperparameters.learning_rate"),
    ({"documents": [{"text": "ok"}], "hyperparameters": {"epochs": 21}}, 422, "validation_error",
     "hyperparameters.epochs"),
    ({"documents": [{"text": "ok"}], "hyperparameters": {"num_splits": "some"}}, 422, "validation_error",
     "hyperparameters.num_splits"),
    ({"documents": [{"text": "ok"}], "hyperparameters": {"lora_dropout": 1.0}}, 422, "validation_error",
     "hyperparameters.lora_dropout"),
    ({"documents": [{"text": "ok"}], "hyperparameters": {"full_finetune": "yes"}}, 422, "validation_error",
     "hyperparameters.full_finetune"),
    ({"documents": [{"text": "ok"}], "hyperparameters": {"warmup": 3}}, 422, "validation_error",
     "hyperparameters.warmup"),
    ({"documents": [{"text": "ok"}], "probes": [{"question": "Q?", "options": ["a"], "answer": 0}]}, 422,
     "validation_error", "probes[0].options"),
    ({"documents": [{"text": "ok"}], "probes": [{"question": "Q?", "options": ["a", "b"], "answer": 2}]}, 422,
     "validation_error", "probes[0]"),
    ({"documents": [{"text": "ok"}], "probes": [{"question": "Q?", "options": ["a", " "], "answer": 0}]}, 422,
     "validation_error", "probes[0].options"),
    ({"documents": [{"text": "ok", "id": "d1"}],
      "probes": [{"question": "Q?", "options": ["a", "b"], "answer": 0, "document_id": "d9"}]}, 422,
     "validation_error", None),
    ({"documents": [{"text": "ok"}], "promotion": {"policy": "sometimes"}}, 422, "validation_error",
     "promotion.policy"),
    ({"documents": [{"text": "ok"}], "promotion": {"min_format_compliance": 2}}, 422, "validation_error",
     "promotion.min_format_compliance"),
    ({"documents": [{"text": "ok"}] * 6}, 413, "payload_too_large", "documents"),
    ({"documents": [{"text": "ok"}, {"text": LONG}]}, 413, "payload_too_large", "documents[1].text"),
    ({"documents": [{"text": "y" * 900}] * 4}, 413, "payload_too_large", "documents"),
    ({"documents": [{"text": "ok"}], "probes": [{"question": "Q?", "options": ["a", "b"], "answer": 0}] * 4},
     413, "payload_too_large", "probes"),
]


@pytest.mark.parametrize("body,status,code,param", BAD_BODIES)
def test_bad_input_is_refused_and_changes_nothing(api, body, status, code, param):
    with api.client(api.key()) as client:
        before = counts(api.settings)
        response = client.post("/updates", json=body)
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == code and error["message"]
    if param is not None:
        assert error["param"] == param
    assert counts(api.settings) == before
    assert queued_messages(api.settings) == 0


RAW_BODIES = [
    (b'{"documents": [{"text": "ok"}', 400, "invalid_body"),
    (b'{"documents": [{"text": "caf\xe9"}]}', 400, "invalid_body"),
    (b"[1, 2]", 422, "validation_error"),
    (b'{"documents": [{"text": "' + b"z" * 30_000 + b'"}]}', 413, "payload_too_large"),
]


@pytest.mark.parametrize("raw,status,code", RAW_BODIES)
def test_malformed_or_oversized_raw_bodies(api, raw, status, code):
    with api.client(api.key()) as client:
        response = client.post("/updates", content=raw, headers={"Content-Type": "application/json"})
    assert response.status_code == status, response.text
    assert response.json()["error"]["code"] == code
    assert counts(api.settings)["jobs"] == 0


def test_oversized_chunked_body_is_refused_while_streaming(api):
    sent = {"bytes": 0}

    def chunks():
        for _ in range(100):  # 100 × 1 kB: five times the limit, without Content-Length
            sent["bytes"] += 1000
            yield b" " * 1000

    with api.client(api.key()) as client:
        response = client.post("/updates", content=chunks(), headers={"Content-Type": "application/json"})
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "payload_too_large"
    assert counts(api.settings)["jobs"] == 0


def test_concurrent_requests_with_one_idempotency_key_make_one_job(api):
    from concurrent.futures import ThreadPoolExecutor

    headers = api.key() | {"Idempotency-Key": "race"}
    body = {"documents": DOCS, "lineage": "brand-new"}  # the lineage is created in the race too

    def post(_):
        with api.client(headers) as client:
            return client.post("/updates", json=body)

    with ThreadPoolExecutor(8) as pool:
        responses = list(pool.map(post, range(8)))
    assert {r.status_code for r in responses} <= {200, 202}
    assert len({r.json()["id"] for r in responses}) == 1
    assert counts(api.settings)["jobs"] == 1 and counts(api.settings)["lineages"] == 1
    assert queued_messages(api.settings) == 1


def test_job_is_kept_when_the_broker_is_down(service_settings):
    from disc_cli.processes import free_port
    from service.app import create_app
    from tests.service.server_helpers import run_server

    settings = service_settings.model_copy(update={"broker_url": f"redis://127.0.0.1:{free_port()}/0"})
    with session_scope(settings) as session:
        _, token = repo.create_api_key(session, name="t", scopes=["updates:write"])
    server, thread = run_server(create_app(settings), port := free_port())
    try:
        response = httpx.post(f"http://127.0.0.1:{port}/updates", json={"documents": DOCS},
                              headers={"Authorization": f"Bearer {token}"}, timeout=60)
    finally:
        server.should_exit = True
        thread.join(timeout=10)
    assert response.status_code == 202
    with session_scope(settings) as session:
        job = repo.get_job(session, response.json()["id"])
        # Left for the reconciler: queued, never marked as sent.
        assert job.status.value == "queued" and job.enqueued_at is None
        assert [e.kind for e in repo.list_job_events(session, job.id)] == ["created", "enqueue_failed"]
