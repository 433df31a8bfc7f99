from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Response, status

from service.api.deps import SessionDep, SettingsDep, UpdatesWriter
from service.errors import ERROR_RESPONSES
from service.presenters import job_public
from service.schemas import JobPublic, UpdateCreate
from service.submission import submit_update

router = APIRouter(prefix="/updates", tags=["updates"], responses=ERROR_RESPONSES)


@router.post("", status_code=status.HTTP_202_ACCEPTED, response_model=JobPublic,
             responses={200: {"model": JobPublic, "description": "Replay of an earlier request (Idempotency-Key)"}})
def create_update(body: UpdateCreate, session: SessionDep, settings: SettingsDep, principal: UpdatesWriter,
                  response: Response,
                  idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key", min_length=1,
                                                                max_length=150)] = None) -> JobPublic:
    """Submit documents: the batch and its job are stored, then the job is queued for a worker.

    The same ``Idempotency-Key`` with the same body returns the first job (200); with another
    body it is refused (409).
    """
    submitted = submit_update(session, settings, principal, body, idempotency_key)
    if not submitted.created:
        response.status_code = status.HTTP_200_OK
    return job_public(session, settings, submitted.job)
