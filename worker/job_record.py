"""The job's record: what it asks for, and writes about one claimed attempt, each fenced by the
attempt number so that a worker that lost its claim cannot overwrite its successor's work."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from store.models import Document, Job, JobEvent, JobStatus, Lineage
from store.settings import Settings
from worker.outcomes import ClaimLost, JobFailed

log = logging.getLogger("disc.worker")

ACTIVE = (JobStatus.running, JobStatus.evaluating)


@dataclass
class JobInput:
    lineage_id: int
    lineage_name: str
    base_model: str
    method: str
    hyperparameters: dict
    probes: list[dict] | None
    promotion: dict | None
    documents: list[str]

    def train_config(self, defaults: dict | None = None):
        """The trainer's options for this job: the request's, over the operator's ``defaults``
        (``DISC_UPDATE_DEFAULTS``), over the engine's; bad options fail the job as invalid input."""
        from disc_engine.options import TrainConfig

        try:
            return TrainConfig.from_dict({**(defaults or {}), **self.hyperparameters, "method": self.method})
        except ValueError as exc:
            raise JobFailed("invalid_input", str(exc)) from exc


def read_job(session_factory: sessionmaker[Session], job_id: str) -> JobInput:
    with session_factory() as session:
        job = session.get(Job, job_id)
        lineage = session.get(Lineage, job.lineage_id)
        texts = list(session.scalars(select(Document.text).where(Document.batch_id == job.batch_id)
                                     .order_by(Document.position)))
        return JobInput(lineage_id=lineage.id, lineage_name=lineage.name, base_model=lineage.base_model,
                        method=job.method, hyperparameters=dict(job.hyperparameters or {}),
                        probes=job.probes, promotion=job.promotion, documents=texts)


class JobRecord:
    """Writes about one claimed attempt of a job, each fenced by the attempt number."""

    def __init__(self, session_factory: sessionmaker[Session], job_id: str, attempt: int):
        self.session_factory = session_factory
        self.job_id = job_id
        self.attempt = attempt

    def _fenced(self):
        return (Job.id == self.job_id) & (Job.attempts == self.attempt)

    def update(self, *, require_active: bool = True, **values) -> None:
        """Update the job's row; raise ClaimLost if another attempt owns it now."""
        condition = self._fenced()
        if require_active:
            condition = condition & Job.status.in_(ACTIVE)
        with self.session_factory() as session:
            result = session.execute(update(Job).where(condition).values(**values))
            session.commit()
        if result.rowcount != 1:
            raise ClaimLost(f"job {self.job_id} attempt {self.attempt} no longer owns the job")

    def event(self, kind: str, message: str = "", data: dict | None = None) -> None:
        # A bare INSERT, no read first: on SQLite a transaction that reads and then writes fails
        # at once (no busy wait) when another connection committed in between.
        with self.session_factory() as session:
            session.add(JobEvent(job_id=self.job_id, kind=kind, message=message, data=data))
            session.commit()

    def cancel_requested(self) -> bool:
        with self.session_factory() as session:
            return bool(session.scalar(select(Job.cancel_requested).where(Job.id == self.job_id)))


def remove_job_files(settings: Settings, job_id: str, lineage_name: str | None,
                     keep: str | None = None) -> None:
    """Checkpoints, scratch files and any unregistered version this job (or a dead attempt of it)
    left, here and in the artifact store; ``keep`` is the registered version's key. Best effort:
    a store that cannot be reached leaves the garbage for the next cleanup."""
    from worker.artifacts import JobArtifacts

    try:
        JobArtifacts(settings, job_id).remove_all(lineage_name, keep=keep)
    except Exception:
        log.exception("job %s: could not remove its files from the artifact store", job_id)


def lineage_name_of(session_factory: sessionmaker[Session], job_id: str) -> str | None:
    with session_factory() as session:
        return session.scalar(select(Lineage.name).join(Job, Job.lineage_id == Lineage.id)
                              .where(Job.id == job_id))
