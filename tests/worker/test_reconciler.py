"""The reconciler re-sends, through real Redis, exactly the jobs that are lost or orphaned."""

from __future__ import annotations

import base64
import json
from datetime import timedelta

import pytest
from sqlalchemy import update

from store import repo
from store.models import Job, JobStatus, utcnow
from store.queue import UPDATES_QUEUE
from worker.claim import Claim, claim_job
from worker.heartbeat import aware
from worker.reconciler import reconcile


@pytest.fixture
def env_with_redis(pg_env, redis_url):
    pg_env.settings.broker_url = redis_url
    return pg_env


def _queued_job_ids(redis_url: str) -> list[str]:
    import redis

    client = redis.Redis.from_url(redis_url)
    ids = []
    for raw in client.lrange(UPDATES_QUEUE, 0, -1):
        message = json.loads(raw)
        args, _kwargs, _embed = json.loads(base64.b64decode(message["body"]))
        assert message["headers"]["task"] == "disc.run_update_job"
        ids.append(args[0])
    return ids


def _set(env, job_id: str, **values) -> None:
    with env.session_factory() as session:
        session.execute(update(Job).where(Job.id == job_id).values(**values))
        session.commit()


def test_resends_lost_and_orphaned_jobs_only(env_with_redis, redis_url):
    env = env_with_redis
    now = utcnow()
    long_ago = now - timedelta(seconds=env.settings.reconcile_after_s + 60)
    stale = now - timedelta(seconds=env.settings.stale_heartbeat_s + 60)

    lost = env.add_job()                      # sent long ago, never picked up
    _set(env, lost, enqueued_at=long_ago)
    never_sent = env.add_job()                # committed, the API stopped before sending
    _set(env, never_sent, enqueued_at=None, created_at=long_ago)
    orphaned = env.add_job()                  # running, its worker died
    _set(env, orphaned, status=JobStatus.running, attempts=1, enqueued_at=long_ago, heartbeat_at=stale)
    fresh = env.add_job()                     # just sent: give the workers time
    alive = env.add_job()                     # running with a live worker
    _set(env, alive, status=JobStatus.running, attempts=1, enqueued_at=long_ago, heartbeat_at=now)
    finished = env.add_job()
    _set(env, finished, status=JobStatus.succeeded, enqueued_at=long_ago)
    just_created = env.add_job()
    _set(env, just_created, enqueued_at=None)

    resent = reconcile(env.session_factory, env.settings)

    assert sorted(resent) == sorted([lost, never_sent, orphaned])
    assert sorted(_queued_job_ids(redis_url)) == sorted(resent)
    with env.session_factory() as session:
        for job_id in resent:
            job = session.get(Job, job_id)
            assert aware(job.enqueued_at) >= now
            assert [e.kind for e in repo.list_job_events(session, job_id)][-1] == "resent"
        assert session.get(Job, fresh).status == JobStatus.queued

    # Sent once per period: an immediate second pass sends nothing more.
    assert reconcile(env.session_factory, env.settings) == []
    assert len(_queued_job_ids(redis_url)) == 3


def test_a_resent_orphan_is_resumed_by_the_claim(env_with_redis):
    env = env_with_redis
    job_id = env.add_job()
    stale = utcnow() - timedelta(seconds=env.settings.stale_heartbeat_s + 60)
    _set(env, job_id, status=JobStatus.evaluating, attempts=1, heartbeat_at=stale,
         enqueued_at=stale)
    assert reconcile(env.session_factory, env.settings) == [job_id]
    assert claim_job(env.session_factory, env.settings, job_id) == Claim(attempt=2, resumed=True)


def test_failed_send_is_retried_on_the_next_pass(env_with_redis):
    env = env_with_redis
    job_id = env.add_job()
    _set(env, job_id, enqueued_at=None, created_at=utcnow() - timedelta(hours=1))

    def broker_down(_job_id, _settings, _base_model):
        raise ConnectionError("broker unreachable")

    assert reconcile(env.session_factory, env.settings, send=broker_down) == []
    assert reconcile(env.session_factory, env.settings) == [job_id]
