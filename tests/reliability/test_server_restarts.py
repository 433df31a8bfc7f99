"""The broker or the database restarted under a running service: every accepted job still ends
with exactly one version. Runs against this suite's private servers only (see servers.py)."""

from __future__ import annotations

import time

from sqlalchemy import select

from store import repo
from store.models import Job, JobEvent

from .conftest import documents

ALWAYS = {"policy": "always"}


def _version_numbers(deployment, lineage: str) -> list[int]:
    with deployment.session() as session:
        return [v.number for v in repo.list_versions(session, lineage)]


def test_a_redis_restart_loses_messages_but_no_job(deployment):
    deployment.serve()
    deployment.worker()
    running = deployment.submit(documents(12, topic="Busy"), lineage="redis-running", promotion=ALWAYS)["id"]
    waiting = deployment.submit(documents(12, topic="Waiting"), lineage="redis-waiting", promotion=ALWAYS)["id"]
    deployment.wait_job(running, lambda j: j["status"] == "running" and j["progress"]["documents_done"] > 0,
                        timeout_s=180, what="training progress")

    # No persistence: the waiting job's message and the running job's unacknowledged one are gone.
    deployment.redis.stop()
    try:
        # Accepted while the broker is down: committed, the send fails, the client still gets its job.
        started = time.monotonic()
        during = deployment.submit(documents(12, topic="During"), lineage="redis-during", promotion=ALWAYS)
        assert time.monotonic() - started < 15, "POST /updates hung on the unreachable broker"
        assert during["status"] == "queued"
        with deployment.session() as session:
            assert session.get(Job, during["id"]).enqueued_at is None
            kinds = list(session.scalars(select(JobEvent.kind).where(JobEvent.job_id == during["id"])))
        assert "enqueue_failed" in kinds
        time.sleep(2)
    finally:
        deployment.redis.start()

    for job_id, lineage in ((running, "redis-running"), (waiting, "redis-waiting"), (during["id"], "redis-during")):
        job = deployment.wait_terminal(job_id, timeout_s=240)
        assert job["status"] == "succeeded", job
        assert job["attempts"] == 1, job
        assert _version_numbers(deployment, lineage) == [1]


def test_a_postgresql_restart_during_training_is_recovered_without_loss(deployment):
    deployment.serve()
    worker = deployment.worker()
    texts = documents(12, topic="Database")
    job_id = deployment.submit(texts, lineage="pg-restart", promotion=ALWAYS)["id"]
    deployment.wait_job(job_id, lambda j: j["status"] == "running" and j["progress"]["documents_done"] > 0,
                        timeout_s=180, what="training progress")

    deployment.postgres.restart(mode="fast", down_s=3)   # every open connection is cut

    # The API's pooled connections were cut too: it answers again without being restarted.
    deadline = time.monotonic() + 20
    while True:
        try:
            job = deployment.job(job_id)
            break
        except AssertionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)
    after = deployment.submit(documents(12, topic="After"), lineage="pg-after", promotion=ALWAYS)["id"]

    # The attempt that lost its connections gives the job up without recording an outcome;
    # its heartbeat then ages (DISC_STALE_HEARTBEAT_S) and the reconciler sends it again.
    worker.wait_for_log(f"job {job_id}: database unreachable", timeout_s=180)
    if deployment.job(job_id)["status"] == "running":
        deployment.backdate_heartbeat(job_id, seconds=3600)

    job = deployment.wait_terminal(job_id, timeout_s=240)
    assert job["status"] == "succeeded", job
    assert job["attempts"] == 2, job
    assert _version_numbers(deployment, "pg-restart") == [1]
    with deployment.session() as session:
        row = session.get(Job, job_id)
        stored = [d.text for d in row.batch.documents]
    assert stored == texts
    assert deployment.wait_terminal(after, timeout_s=240)["status"] == "succeeded"
    assert _version_numbers(deployment, "pg-after") == [1]
