"""Delivery: the record is committed before the message is sent, lost messages are sent again,
and the same Idempotency-Key never creates two jobs."""

from __future__ import annotations

import threading

import httpx
import redis
from sqlalchemy import func, select

from store import repo
from store.models import Document, Job, JobStatus, UpdateBatch

from .conftest import documents


def _count(deployment, model) -> int:
    with deployment.session() as session:
        return session.scalar(select(func.count()).select_from(model))


def test_documents_and_job_are_committed_before_the_message_is_sent(deployment):
    deployment.serve()
    broker = redis.Redis.from_url(deployment.settings.broker_url)

    job = deployment.submit(documents(3), lineage="committed")

    # No worker runs: the only copy of the message is in the broker, and the record is complete.
    assert broker.llen("updates") == 1
    with deployment.session() as session:
        row = session.get(Job, job["id"])
        assert row.status == JobStatus.queued and row.enqueued_at is not None
        texts = list(session.scalars(select(Document.text).where(Document.batch_id == row.batch_id)
                                     .order_by(Document.position)))
    assert texts == documents(3)


def test_a_lost_message_is_sent_again_by_the_reconciler_and_the_job_completes(deployment):
    deployment.serve()
    broker = redis.Redis.from_url(deployment.settings.broker_url)
    lost = deployment.submit(documents(2), lineage="lost-message")
    # The broker loses the message (a Redis restart without persistence does exactly this).
    broker.flushdb()
    # A job committed by an API that died before sending anything: never enqueued at all.
    with deployment.session() as session:
        lineage = repo.get_or_create_lineage(session, "never-sent", deployment.settings.base_model)
        never_sent = repo.create_update(session, lineage=lineage, documents=[{"text": t} for t in documents(2)],
                                        method="disc", promotion={"policy": "always"}).id

    deployment.worker()

    for job_id in (lost["id"], never_sent):
        job = deployment.wait_terminal(job_id, timeout_s=180)
        assert job["status"] == "succeeded", job
        assert job["attempts"] == 1
        assert job["result_version"]["version"] == 1
        kinds = [e["kind"] for e in deployment.events(job_id)]
        assert "resent" in kinds, kinds


def test_concurrent_requests_with_one_idempotency_key_create_exactly_one_job(deployment):
    deployment.serve()
    body = {"documents": [{"text": t} for t in documents(2)], "lineage": "idempotent"}
    barrier = threading.Barrier(8)
    answers: list[httpx.Response] = []
    lock = threading.Lock()

    def post() -> None:
        with deployment.client() as client:
            barrier.wait()
            response = client.post("/updates", json=body, headers={"Idempotency-Key": "same-key"})
        with lock:
            answers.append(response)

    threads = [threading.Thread(target=post) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    statuses = sorted(r.status_code for r in answers)
    assert len(answers) == 8 and statuses.count(202) == 1 and statuses.count(200) == 7, \
        [(r.status_code, r.text[:200]) for r in answers]
    assert len({r.json()["id"] for r in answers}) == 1
    assert _count(deployment, Job) == 1
    assert _count(deployment, UpdateBatch) == 1
    assert _count(deployment, Document) == 2
    # The replays send nothing: one message for one job.
    assert redis.Redis.from_url(deployment.settings.broker_url).llen("updates") == 1
