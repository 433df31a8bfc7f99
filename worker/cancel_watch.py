"""Cancellation, read from the job's row at safe points."""

from __future__ import annotations

import math
import time

from worker.job_record import JobRecord
from worker.outcomes import JobCancelled

CANCEL_POLL_S = 1.0


class CancelWatch:
    """``should_stop`` for the trainer: reads the job's cancel flag at most once a second."""

    def __init__(self, record: JobRecord, poll_s: float = CANCEL_POLL_S):
        self.record = record
        self.poll_s = poll_s
        self._checked = -math.inf
        self._requested = False

    def __call__(self) -> bool:
        if not self._requested and time.monotonic() - self._checked >= self.poll_s:
            self._requested = self.record.cancel_requested()
            self._checked = time.monotonic()
        return self._requested

    def check(self) -> None:
        """Raise JobCancelled if cancellation was requested (always reads the database)."""
        self._checked = -math.inf
        if self():
            raise JobCancelled()
