"""Registering the new version: version, scores, alias move and the job's success, one transaction."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from store import repo
from store.db import begin_writing
from store.models import Job, JobStatus, Lineage, utcnow
from worker.job_record import ACTIVE, JobInput, JobRecord
from worker.outcomes import ClaimLost, JobCancelled
from worker.parent import NextVersion
from worker.promotion import PromotionDecision
from worker.training import TrainedVersion


def register_version(session: Session, record: JobRecord, job: JobInput, next_version: NextVersion,
                     trained: TrainedVersion, config, scores: dict, decision: PromotionDecision) -> int:
    """Commit the version in the lineage lock's transaction and apply the promotion decision
    (``latest`` moves only here or by an explicit promote); returns the version's id."""
    from disc_engine.artifacts import artifact_kind, read_meta

    # The job row is read, then the version written, in one transaction: on SQLite it must hold
    # the write lock from its start, or a heartbeat committed in between makes the write fail.
    begin_writing(session)
    row = session.scalar(select(Job).where(Job.id == record.job_id).with_for_update())
    if row.attempts != record.attempt or row.status not in ACTIVE:
        raise ClaimLost(f"job {record.job_id} changed hands before registration")
    if row.cancel_requested:
        raise JobCancelled()
    number, result = next_version.number, trained.result
    lineage = session.get(Lineage, job.lineage_id)
    version = repo.create_version(
        session, lineage=lineage, parent=next_version.parent, job_id=record.job_id, method=config.method,
        base_model=job.base_model, base_model_checksum=read_meta(result.artifact_dir).get("base_model_checksum"),
        artifact_kind=artifact_kind(result.artifact_dir), artifact_uri=trained.key,
        artifact_sha256=trained.sha256, config=read_meta(result.artifact_dir).get("config", config.to_dict()),
        train_metrics=result.metrics,
        train_report=result.report.to_dict(), number=number)
    repo.set_scores(session, version, scores)
    now = utcnow()
    if decision.promote:
        repo.move_alias(session, lineage, version, reason="policy", actor=f"job {record.job_id}")
        repo.add_job_event(session, row, "promoted", f"version {number} is now latest ({decision.reason})")
    else:
        repo.add_job_event(session, row, "candidate", f"version {number} {decision.reason}")
    row.status = JobStatus.succeeded
    row.result_version_id = version.id
    row.finished_at = now
    row.heartbeat_at = now
    row.progress = {**(row.progress or {}), "stage": "done"}
    repo.add_job_event(session, row, "succeeded", f"version {number} registered",
                       {"version": number, "version_id": version.id, "promoted": decision.promote})
    session.commit()
    return version.id
