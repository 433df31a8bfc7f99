"""The job's heartbeat: how a worker shows it is alive, and how a dead one is recognised."""

from __future__ import annotations

import logging
import threading
from datetime import UTC, datetime, timedelta

from store.models import Job, utcnow
from worker.job_record import JobRecord
from worker.outcomes import ClaimLost

log = logging.getLogger("disc.worker")

HEARTBEAT_INTERVAL_S = 10.0


def aware(moment: datetime | None) -> datetime | None:
    # SQLite hands timestamps back without a zone; they are stored in UTC.
    if moment is not None and moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment


def heartbeat_is_stale(job: Job, stale_after_s: float, now: datetime | None = None) -> bool:
    """Several missed beats (``stale_after_s`` ≫ the interval) mean the worker is gone, so that a
    busy machine is not mistaken for a dead one."""
    beat = aware(job.heartbeat_at)
    return beat is None or beat < (now or utcnow()) - timedelta(seconds=stale_after_s)


class Heartbeat:
    """A thread that keeps ``heartbeat_at`` fresh while the job runs (waits, loads and evaluation
    included, which report no progress of their own)."""

    def __init__(self, record: JobRecord, interval_s: float = HEARTBEAT_INTERVAL_S):
        self.record = record
        self.interval_s = interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"heartbeat-{record.job_id}", daemon=True)

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self.record.update(heartbeat_at=utcnow())
            except ClaimLost:
                return
            except Exception:  # a missed beat is tolerated; the next one may succeed
                log.warning("heartbeat of job %s failed", self.record.job_id, exc_info=True)
