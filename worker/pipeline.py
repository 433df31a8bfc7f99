"""One update job, start to end: claim → choose parent → train → evaluate → register → promote.

This module tells the job's story; each mechanism lives in a module of its own (``claim``,
``heartbeat``, ``cancel_watch``, ``lineage_lock``, ``parent``, ``training``, ``evaluation``,
``promotion``, ``registration``). Plain functions over a ``sessionmaker`` and ``Settings``, so the
Celery task is one line and tests call ``run_job`` directly.

Delivery is at-least-once, so every step is safe to repeat: the claim runs a job once and drops
duplicates, training resumes from the job's checkpoints, and every later write is fenced by the
attempt number. Jobs of one lineage are serialised by the lineage lock, held from choosing the
parent until the new version is committed, so two jobs never pick the same parent.
"""

from __future__ import annotations

import logging

from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from store.artifact_store import StoreUnavailable
from store.models import JobStatus, utcnow
from store.settings import Settings
from worker.artifacts import JobArtifacts
from worker.cancel_watch import CancelWatch
from worker.claim import claim_job
from worker.evaluation import evaluate_version
from worker.heartbeat import Heartbeat
from worker.job_record import JobRecord, lineage_name_of, read_job, remove_job_files
from worker.lineage_lock import LineageLock
from worker.model_cache import default_device
from worker.outcomes import ClaimLost, JobCancelled, Outcome, classify_failure
from worker.parent import choose_parent
from worker.promotion import check_policy, decide_promotion
from worker.registration import register_version
from worker.training import discarded_on_failure, train_version

log = logging.getLogger("disc.worker")


def run_job(job_id: str, *, session_factory: sessionmaker[Session], settings: Settings,
            device: str | None = None, worker_name: str | None = None) -> Outcome:
    """Run one delivery of a job to its end; returns what became of it. ``worker_name`` (the
    Celery node's) is recorded in the job's events, so an operator sees which machine ran it.

    Never raises for the job's own failures (they are recorded); a database that cannot be
    reached is raised, leaving the job to be re-sent once its heartbeat is stale.
    """
    claim = claim_job(session_factory, settings, job_id)
    if isinstance(claim, Outcome):
        return claim
    record = JobRecord(session_factory, job_id, claim.attempt)
    record.event("resumed" if claim.resumed else "started",
                 f"attempt {claim.attempt} of {settings.job_max_attempts}"
                 + (f" on {worker_name}" if worker_name else ""),
                 {"attempt": claim.attempt, "worker": worker_name})
    log.info("job %s: attempt %d started", job_id, claim.attempt)
    try:
        with Heartbeat(record):
            version_number, key = run_claimed(record, session_factory, settings, device)
        log.info("job %s succeeded: version %d", job_id, version_number)
        remove_job_files(settings, job_id, lineage_name_of(session_factory, job_id), keep=key)
        return Outcome.succeeded
    except ClaimLost:
        log.warning("job %s: attempt %d was superseded by another worker; its work is dropped",
                    job_id, claim.attempt)
        return Outcome.skipped
    except (OperationalError, InterfaceError):
        # The database is unreachable: nothing can be recorded. The job stays running, its
        # heartbeat goes stale and the reconciler sends it again (bounded by job_max_attempts).
        log.exception("job %s: database unreachable; left for redelivery", job_id)
        raise
    except StoreUnavailable as exc:
        # The artifact store is down (or failing): nothing half-written is visible (a version
        # counts only once its manifest is written), and the job's checkpoints in the store are
        # kept. The job goes back to the queue; the reconciler sends it again after
        # reconcile_after_s, and job_max_attempts bounds how long an outage is waited out.
        log.warning("job %s: artifact store unavailable (%s); queued again", job_id, exc)
        _queue_again(record, settings, str(exc))
        return Outcome.retrying
    except JobCancelled:
        _end(record, settings, JobStatus.cancelled, "cancelled", "cancelled on request")
        log.info("job %s cancelled", job_id)
        return Outcome.cancelled
    except Exception as exc:
        code, message = classify_failure(exc)
        log.error("job %s failed (%s): %s", job_id, code, message, exc_info=True)
        _end(record, settings, JobStatus.failed, "failed", message, error={"code": code, "message": message})
        return Outcome.failed
    # Anything else (SystemExit, KeyboardInterrupt: the worker is stopping) propagates with the job
    # left running; its heartbeat goes stale and it resumes from its checkpoints on redelivery.


def run_claimed(record: JobRecord, session_factory: sessionmaker[Session], settings: Settings,
                device: str | None) -> tuple[int, str]:
    """Train, evaluate and register a claimed attempt; returns the new version's number and key."""
    stop = CancelWatch(record)
    stop.check()
    job = read_job(session_factory, record.job_id)
    config = job.train_config(settings.update_defaults)
    check_policy(job.promotion)
    device = device or settings.worker_device or default_device()

    artifacts = JobArtifacts(settings, record.job_id, record.attempt)
    record.update(progress={"stage": "waiting", "documents_done": 0, "documents_total": len(job.documents)})
    with LineageLock(session_factory, settings, job.lineage_id, stop) as lock:
        next_version = choose_parent(lock.session, session_factory, record, job, artifacts)
        try:
            trained = train_version(record, job, config, next_version, stop, device, artifacts)
            with discarded_on_failure(artifacts, trained):
                scores = evaluate_version(record, settings, job, config, next_version, trained, stop, device)
                decision = decide_promotion(job.promotion, scores, settings)
                version_id = register_version(lock.session, record, job, next_version, trained, config, scores,
                                              decision)
        finally:
            next_version.release()
            artifacts.remove_scratch()
    log.info("job %s: version %d (id %d) %s", record.job_id, next_version.number, version_id,
             "promoted" if decision.promote else "kept as a candidate")
    return next_version.number, trained.key


def _end(record: JobRecord, settings: Settings, status: JobStatus, kind: str, message: str,
         error: dict | None = None) -> None:
    """Record a cancelled or failed attempt and remove what it left on disk."""
    try:
        record.update(status=status, error=error, finished_at=utcnow(), heartbeat_at=utcnow())
        record.event(kind, message, error)
    except ClaimLost:
        log.warning("job %s: not recording %s, another attempt owns the job", record.job_id, kind)
        return
    remove_job_files(settings, record.job_id, lineage_name_of(record.session_factory, record.job_id))


def _queue_again(record: JobRecord, settings: Settings, reason: str) -> None:
    """Hand a job back to the queue after a transient failure, keeping its checkpoints."""
    try:
        record.update(status=JobStatus.queued, enqueued_at=utcnow(), heartbeat_at=None, progress=None)
        record.event("retrying", f"the artifact store is unavailable ({reason}); the job is queued again",
                     {"code": "artifact_store_unavailable", "attempt": record.attempt})
    except ClaimLost:
        log.warning("job %s: not queuing again, another attempt owns the job", record.job_id)
        return
    JobArtifacts(settings, record.job_id, record.attempt).remove_scratch()
