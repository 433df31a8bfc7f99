"""Delivery: the record is committed before the message is sent, lost messages are sent again,
and the same Idempotency-Key never creates two jobs."""

from __future__ import annotations

import base64
import json
import threading
import time

import httpx
import psycopg
import redis
from sqlalchemy import func, select

from store import repo
from store.models import Document, Job, UpdateBatch

from .conftest import documents


def _count(deployment, model) -> int:
    with deployment.session() as session:
        return session.scalar(select(func.count()).select_from(model))


def test_documents_and_job_are_committed_before_the_message_is_sent(deployment):
    deployment.serve()
    broker = redis.Redis.from_url(deployment.settings.broker_url)
    seen: list[tuple[str, int | None, str | None]] = []   # (job id, documents, status) when its message arrived
    stop = threading.Event()

    def consume() -> None:
        # Plays the fastest possible worker: reads the record the instant a message appears.
        with psycopg.connect(deployment.settings.database_url.replace("+psycopg", ""), autocommit=True) as db:
            while not stop.is_set():
                popped = broker.brpop(["updates"], timeout=0.2)
                if popped is None:
                    continue
                message = json.loads(popped[1])
                [job_id], _, _ = json.loads(base64.b64decode(message["body"]))
                row = db.execute("SELECT j.status, (SELECT count(*) FROM documents d WHERE d.batch_id = j.batch_id) "
                                 "FROM jobs j WHERE j.id = %s", (job_id,)).fetchone()
                seen.append((job_id, row[1] if row else None, row[0] if row else None))

    consumer = threading.Thread(target=consume)
    consumer.start()
    try:
        submitted = [deployment.submit(documents(3), lineage="committed")["id"] for _ in range(10)]
        deadline = time.monotonic() + 30
        while len(seen) < len(submitted) and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        stop.set()
        consumer.join(timeout=10)

    assert sorted(job_id for job_id, _, _ in seen) == sorted(submitted)
    assert all(count == 3 and status == "queued" for _, count, status in seen), seen


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
