"""Training progress, written to the job's row at most once per interval."""

from __future__ import annotations

import math
import time

from store.models import utcnow
from worker.job_record import JobRecord

PROGRESS_INTERVAL_S = 2.0


class ProgressReporter:
    """Turns the trainer's progress callbacks into at most one database write per interval."""

    def __init__(self, record: JobRecord, interval_s: float = PROGRESS_INTERVAL_S):
        self.record = record
        self.interval_s = interval_s
        self._last_write = -math.inf
        self._started = time.monotonic()
        self._first_done: int | None = None

    @property
    def resumed_at(self) -> int:
        """Documents already done when this attempt's training began (from a checkpoint)."""
        return self._first_done or 0

    def __call__(self, progress) -> None:
        if progress.stage == "preparing":
            self._preparing(progress)
            return
        first = self._first_done is None
        if first:
            # A resumed run starts mid-way: the rate counts only this attempt's documents.
            self._first_done = progress.documents_done - 1
        now = time.monotonic()
        final = progress.documents_done >= progress.documents_total
        # The first training document is written at once, however recently preparing was.
        if not (first or final) and now - self._last_write < self.interval_s:
            return
        self._last_write = now
        done_here = progress.documents_done - self._first_done
        elapsed = now - self._started
        remaining = progress.documents_total - progress.documents_done
        eta = remaining * elapsed / done_here if done_here > 0 else None
        self.record.update(progress={
            "stage": "training",
            "documents_done": progress.documents_done,
            "documents_total": progress.documents_total,
            "step": progress.step,
            "epoch": progress.epoch,
            "loss": progress.loss if math.isfinite(progress.loss) else None,
            "tokens_per_second": round(progress.tokens_per_second, 2),
            "eta_seconds": round(eta, 1) if eta is not None else None,
        }, heartbeat_at=utcnow())

    def _preparing(self, progress) -> None:
        now = time.monotonic()
        if progress.documents_done < progress.documents_total and now - self._last_write < self.interval_s:
            return
        self._last_write = now
        # Its own count: documents_done/documents_total keep meaning training progress for clients.
        self.record.update(progress={"stage": "preparing", "documents_prepared": progress.documents_done,
                                     "documents_to_prepare": progress.documents_total}, heartbeat_at=utcnow())
