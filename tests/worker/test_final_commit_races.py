"""Races in the worker's final commit on PostgreSQL: a manual promote and a cancel landing while
a job registers its version. Each race is made to happen, not hoped for: one side holds its
transaction open and the test waits until the other is seen blocked on its lock
(``pg_stat_activity``) before letting the first commit."""

from __future__ import annotations

import threading
import time

import pytest
from sqlalchemy import text

from store import repo, storage
from store.models import JobStatus
from worker.outcomes import Outcome


def _wait_for_lock_waiters(env, count: int, timeout_s: float = 120.0) -> None:
    """Until ``count`` sessions of this test's database wait on a row or index lock."""
    query = text("SELECT count(*) FROM pg_stat_activity "
                 "WHERE datname = current_database() AND wait_event_type = 'Lock'")
    deadline = time.monotonic() + timeout_s
    with env.session_factory() as session:
        while time.monotonic() < deadline:
            if session.scalar(query) >= count:
                return
            session.rollback()
            time.sleep(0.1)
    raise AssertionError(f"fewer than {count} sessions ever waited on a lock")


def _run_in_thread(target) -> tuple[threading.Thread, dict]:
    result: dict = {}

    def run() -> None:
        try:
            result["value"] = target()
        except BaseException as exc:  # handed to the test thread
            result["error"] = exc

    thread = threading.Thread(target=run)
    thread.start()
    return thread, result


def _first_version_as_candidate(env) -> None:
    assert env.run(env.add_job(promotion={"policy": "never"})) == Outcome.succeeded
    with env.session_factory() as session:
        assert repo.latest_version(session, "default") is None


def _history(env) -> list[tuple[int | None, int]]:
    with env.session_factory() as session:
        numbers = {v.id: v.number for v in repo.list_versions(session, "default")}
        return [(numbers.get(e.from_version_id), numbers[e.to_version_id])
                for e in repo.alias_history(session, "default")]


def _open_manual_first_promote(env):
    """A session that has promoted version 1 as the lineage's first ``latest`` and not committed:
    its alias row exists only inside that transaction."""
    session = env.session_factory()
    version = repo.get_version(session, "default", 1)
    assert repo.move_alias(session, "default", version, reason="manual", actor="operator") is not None
    return session


def test_a_worker_s_auto_promotion_racing_a_manual_first_promote_moves_latest_after_it(pg_env):
    env = pg_env
    _first_version_as_candidate(env)
    job_id = env.add_job(promotion={"policy": "always"})
    manual = _open_manual_first_promote(env)
    try:
        worker, outcome = _run_in_thread(lambda: env.run(job_id))
        _wait_for_lock_waiters(env, 1)   # the worker's insert of the first alias waits on ours
        manual.commit()
    finally:
        manual.close()
    worker.join(timeout=120)
    assert outcome == {"value": Outcome.succeeded}
    with env.session_factory() as session:
        assert repo.latest_version(session, "default").number == 2
    # Both moves are recorded, in commit order: nothing lost, no unique-constraint failure.
    assert _history(env) == [(None, 1), (1, 2)]


def test_a_cancel_arriving_while_the_version_commits_waits_and_is_refused(pg_env):
    env = pg_env
    _first_version_as_candidate(env)
    job_id = env.add_job(promotion={"policy": "always"})
    manual = _open_manual_first_promote(env)   # holds the worker inside its final transaction

    def cancel() -> None:
        with env.session_factory() as session:
            repo.request_cancel(session, repo.get_job(session, job_id), actor="operator")
            session.commit()

    try:
        worker, outcome = _run_in_thread(lambda: env.run(job_id))
        _wait_for_lock_waiters(env, 1)
        canceller, cancelled = _run_in_thread(cancel)
        _wait_for_lock_waiters(env, 2)   # the cancel waits on the job row the worker has locked
        manual.commit()
    finally:
        manual.close()
    worker.join(timeout=120)
    canceller.join(timeout=120)
    assert outcome == {"value": Outcome.succeeded}
    assert isinstance(cancelled.get("error"), repo.JobAlreadyFinished)
    with env.session_factory() as session:
        job = repo.get_job(session, job_id)
        assert job.status == JobStatus.succeeded and not job.cancel_requested
        assert "cancel_requested" not in [e.kind for e in repo.list_job_events(session, job_id)]
        assert repo.latest_version(session, "default").number == 2


@pytest.mark.parametrize("committed_before_registration", [True, False])
def test_a_cancel_landing_just_before_the_final_commit_leaves_no_version(pg_env, monkeypatch,
                                                                         committed_before_registration):
    """The cancel is flagged after evaluation, either committed before registration begins or
    still open (holding the job row) when it does; either way the version is never registered."""
    import worker.pipeline

    env = pg_env
    job_id = env.add_job()
    reached, resume = threading.Event(), threading.Event()
    real_register = worker.pipeline.register_version

    def register_after_pause(*args, **kwargs):
        reached.set()
        assert resume.wait(timeout=120)
        return real_register(*args, **kwargs)

    monkeypatch.setattr(worker.pipeline, "register_version", register_after_pause)
    running, outcome = _run_in_thread(lambda: env.run(job_id))
    assert reached.wait(timeout=300)
    session = env.session_factory()
    try:
        repo.request_cancel(session, repo.get_job(session, job_id), actor="operator")
        if committed_before_registration:
            session.commit()
            resume.set()
        else:
            resume.set()
            _wait_for_lock_waiters(env, 1)   # registration waits for the cancel's transaction
            session.commit()
    finally:
        resume.set()
        session.close()
    running.join(timeout=120)
    assert outcome == {"value": Outcome.cancelled}
    with env.session_factory() as session:
        assert repo.get_job(session, job_id).status == JobStatus.cancelled
        assert repo.list_versions(session, "default") == []
        assert repo.get_alias(session, "default", repo.LATEST) is None
    leftovers = [p for p in env.settings.artifact_dir.rglob("*") if p.is_dir() and job_id in p.name]
    assert leftovers == [] and not storage.checkpoint_dir(env.settings, job_id).exists()
