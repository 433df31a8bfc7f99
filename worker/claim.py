"""Claiming a job: a compare-and-set on (status, attempts).

Delivery is at-least-once (late acknowledgement, the reconciler re-sending), so a claim refuses
a job another worker is visibly running (fresh heartbeat) and accepts one whose worker died
(stale heartbeat); past ``job_max_attempts`` the job fails instead.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from sqlalchemy import update
from sqlalchemy.orm import Session, sessionmaker

from store import repo
from store.models import Job, JobStatus, utcnow
from store.settings import Settings
from worker.heartbeat import heartbeat_is_stale
from worker.job_record import ACTIVE, lineage_name_of, remove_job_files
from worker.outcomes import Outcome

log = logging.getLogger("disc.worker")


@dataclass
class Claim:
    attempt: int
    resumed: bool


def claim_job(session_factory: sessionmaker[Session], settings: Settings, job_id: str) -> Claim | Outcome:
    """Take the job for this worker, or say why not (an Outcome).

    A queued job is claimed; so is a running one whose heartbeat is stale (its worker died and
    this is the redelivery). A job running with a fresh heartbeat belongs to a live worker.
    """
    with session_factory() as session:
        job = session.get(Job, job_id)
        if job is None:
            log.warning("job %s does not exist; message dropped", job_id)
            return Outcome.skipped
        if job.status.is_terminal:
            log.info("job %s already %s; message dropped", job_id, job.status.value)
            return Outcome.skipped
        if job.status in ACTIVE and not heartbeat_is_stale(job, settings.stale_heartbeat_s):
            log.info("job %s is running on a live worker; duplicate message dropped", job_id)
            return Outcome.skipped
        observed_status, observed_attempts = job.status, job.attempts

    if observed_attempts >= settings.job_max_attempts:
        _finish_unclaimed(session_factory, settings, job_id, observed_status, observed_attempts,
                          JobStatus.failed, "failed",
                          error={"code": "too_many_attempts",
                                 "message": f"the job was started {observed_attempts} times without finishing "
                                            f"(limit {settings.job_max_attempts})"})
        return Outcome.failed
    now = utcnow()
    with session_factory() as session:
        result = session.execute(
            update(Job)
            .where(Job.id == job_id, Job.status == observed_status, Job.attempts == observed_attempts)
            .values(status=JobStatus.running, attempts=observed_attempts + 1, started_at=now,
                    heartbeat_at=now, error=None))
        session.commit()
    if result.rowcount != 1:
        log.info("job %s was claimed by another worker first", job_id)
        return Outcome.skipped
    return Claim(attempt=observed_attempts + 1, resumed=observed_status in ACTIVE)


def _finish_unclaimed(session_factory, settings, job_id, observed_status, observed_attempts,
                      status: JobStatus, kind: str, error: dict | None = None) -> None:
    with session_factory() as session:
        result = session.execute(
            update(Job)
            .where(Job.id == job_id, Job.status == observed_status, Job.attempts == observed_attempts)
            .values(status=status, error=error, finished_at=utcnow()))
        if result.rowcount == 1:
            repo.add_job_event(session, session.get(Job, job_id), kind,
                               error["message"] if error else "", error)
        session.commit()
    remove_job_files(settings, job_id, lineage_name_of(session_factory, job_id))
