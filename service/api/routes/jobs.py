from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query

from service.api.deps import JobsReader, SessionDep, SettingsDep, UpdatesWriter
from service.auth import Principal
from service.errors import ERROR_RESPONSES, ApiError, not_found
from service.presenters import event_public, job_public
from service.schemas import JobEventsPublic, JobPublic, JobsPublic, JobStatusName, LineageName
from store import repo
from store.models import Job, JobStatus

router = APIRouter(prefix="/jobs", tags=["jobs"], responses=ERROR_RESPONSES)

JobId = Annotated[str, Path(max_length=64)]


def _visible_job(session, principal: Principal, job_id: str, *, with_versions: bool = False) -> Job:
    # Ids are 32 hex digits; anything else (NUL included, which PostgreSQL refuses) names no job.
    job = repo.get_job(session, job_id, with_versions=with_versions) if repo.is_row_id(job_id) else None
    if job is None or not principal.can_see(job):
        raise not_found(f"job {job_id!r}", "job_id")
    return job


@router.get("", response_model=JobsPublic)
def list_jobs(session: SessionDep, settings: SettingsDep, principal: JobsReader,
              limit: Annotated[int, Query(ge=1, le=200)] = 50,
              cursor: Annotated[str | None, Query(max_length=500)] = None,
              status: JobStatusName | None = None, lineage: LineageName | None = None) -> JobsPublic:
    """Jobs, newest first; pass ``next_cursor`` back as ``cursor`` for the next page."""
    if lineage is not None:
        principal.check_lineage(lineage)
        if repo.get_lineage(session, lineage) is None:
            raise not_found(f"lineage {lineage!r}", "lineage")
    lineage = lineage or principal.lineage
    try:
        page = repo.list_jobs(session, limit=limit, cursor=cursor, lineage=lineage,
                              status=JobStatus(status) if status else None)
    except repo.InvalidCursor as exc:
        raise ApiError(400, "invalid_cursor", str(exc), "cursor") from exc
    return JobsPublic(data=[job_public(session, settings, j) for j in page.items], next_cursor=page.next_cursor)


@router.get("/{job_id}", response_model=JobPublic)
def get_job(job_id: JobId, session: SessionDep, settings: SettingsDep, principal: JobsReader) -> JobPublic:
    """Status and progress of a job; on success ``result_version`` is the version it produced."""
    # One query for the job, its lineage and versions: a poll every second should cost little.
    return job_public(session, settings, _visible_job(session, principal, job_id, with_versions=True))


@router.post("/{job_id}/cancel", response_model=JobPublic)
def cancel_job(job_id: JobId, session: SessionDep, settings: SettingsDep, principal: UpdatesWriter) -> JobPublic:
    """A queued job is cancelled at once; a running one stops at the worker's next step. Ended jobs: 409."""
    job = _visible_job(session, principal, job_id)
    try:
        repo.request_cancel(session, job, actor=principal.name)
    except repo.JobAlreadyFinished as exc:
        raise ApiError(409, "job_finished", str(exc), "job_id") from exc
    session.commit()
    return job_public(session, settings, job)


@router.get("/{job_id}/events", response_model=JobEventsPublic)
def job_events(job_id: JobId, session: SessionDep, principal: JobsReader) -> JobEventsPublic:
    """What happened to a job, oldest first: status changes, progress, retries, errors."""
    job = _visible_job(session, principal, job_id)
    return JobEventsPublic(data=[event_public(e) for e in repo.list_job_events(session, job.id)])
