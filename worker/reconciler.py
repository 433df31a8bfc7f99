"""Re-send jobs the broker lost or whose worker died.

The database, not the broker, is the record of what must run. A job can be committed and never
reach the broker (the API stopped between the two), a broker can lose messages (Redis without
persistence), and a worker can die mid-job (the late-acknowledged message returns only after the
Redis visibility timeout, hours later). ``reconcile`` finds such jobs and sends their ids again.
Sending twice is harmless: the pipeline's claim runs a job once and drops the duplicate.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import timedelta

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from store import repo
from store.models import Job, JobStatus, utcnow
from store.settings import Settings

log = logging.getLogger("disc.reconciler")

RECONCILE_EVERY_S = 30.0


def reconcile(session_factory: sessionmaker[Session], settings: Settings, *,
              send: Callable[[str, Settings], None] | None = None) -> list[str]:
    """Send again every job that should be running and is not; returns their ids.

    - queued, and sent longer than ``settings.reconcile_after_s`` ago (or never sent and
      created that long ago): the message was lost or the API never sent it;
    - running or evaluating with a heartbeat older than ``settings.stale_heartbeat_s``: its worker died.

    A job is sent at most once per ``reconcile_after_s`` (``enqueued_at`` is moved forward), so a
    long queue behind a busy worker grows by at most one duplicate per job per period.
    """
    if send is None:
        from worker.celery_app import send_job as send
    now = utcnow()
    overdue = now - timedelta(seconds=settings.reconcile_after_s)
    stale = now - timedelta(seconds=settings.stale_heartbeat_s)
    last_sent = func.coalesce(Job.enqueued_at, Job.created_at)
    with session_factory() as session:
        candidates = list(session.scalars(
            select(Job.id).where(
                last_sent < overdue,
                or_(Job.status == JobStatus.queued,
                    and_(Job.status.in_((JobStatus.running, JobStatus.evaluating)),
                         or_(Job.heartbeat_at.is_(None), Job.heartbeat_at < stale))))
            .order_by(Job.created_at)))

    resent = []
    for job_id in candidates:
        with session_factory() as session:
            # Moving enqueued_at first, conditionally, keeps two reconcilers from both sending.
            claimed = session.execute(
                update(Job).where(Job.id == job_id, func.coalesce(Job.enqueued_at, Job.created_at) < overdue,
                                  Job.status.in_((JobStatus.queued, JobStatus.running, JobStatus.evaluating)))
                .values(enqueued_at=now))
            if claimed.rowcount != 1:
                session.rollback()
                continue
            job = session.get(Job, job_id)
            reason = "its message was not picked up" if job.status == JobStatus.queued \
                else "its worker stopped sending heartbeats"
            repo.add_job_event(session, job, "resent", f"sent to the workers again: {reason}",
                               {"status": job.status.value, "attempts": job.attempts})
            base_model = job.lineage.base_model
            session.commit()
        try:
            send(job_id, settings, base_model)
        except Exception:
            log.exception("could not re-send job %s; the next pass tries again", job_id)
            with session_factory() as session:
                session.execute(update(Job).where(Job.id == job_id).values(enqueued_at=None))
                session.commit()
            continue
        log.info("re-sent job %s (%s)", job_id, reason)
        resent.append(job_id)
    return resent


class ReconcilerThread(threading.Thread):
    """Runs ``reconcile`` at start and then every ``every_s`` seconds until stopped.

    Lives inside ``disc worker`` so that deployments need no separate scheduler; several workers
    each running one is safe (see ``reconcile``).
    """

    def __init__(self, session_factory: sessionmaker[Session], settings: Settings,
                 every_s: float = RECONCILE_EVERY_S):
        super().__init__(name="disc-reconciler", daemon=True)
        self.session_factory = session_factory
        self.settings = settings
        self.every_s = every_s
        self._stop_event = threading.Event()

    def run(self) -> None:
        while True:
            try:
                reconcile(self.session_factory, self.settings)
            except Exception:
                log.exception("reconciliation pass failed; retrying in %.0f s", self.every_s)
            if self._stop_event.wait(self.every_s):
                return

    def stop(self) -> None:
        self._stop_event.set()
