"""Accepting an update: limits, idempotency, one transaction, then the broker.

The rows are committed before the job id is sent, so a worker never receives an id it cannot
read. If the broker is unreachable the job stays queued without ``enqueued_at`` and the
worker's reconciler sends it later; the client still gets its job.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from service.auth import Principal
from service.errors import ApiError
from service.schemas import UpdateCreate
from store import queue, repo
from store.models import Job
from store.settings import Settings

log = logging.getLogger(__name__)


@dataclass
class Submitted:
    job: Job
    created: bool


def check_limits(body: UpdateCreate, settings: Settings) -> None:
    """Refuse (413) batches over the configured sizes; every document is named by its index."""
    if len(body.documents) > settings.max_documents_per_batch:
        raise ApiError(413, "payload_too_large", f"{len(body.documents)} documents; at most "
                       f"{settings.max_documents_per_batch} per batch", "documents")
    total = 0
    for i, document in enumerate(body.documents):
        if len(document.text) > settings.max_document_chars:
            raise ApiError(413, "payload_too_large", f"document {i} has {len(document.text)} characters; at most "
                           f"{settings.max_document_chars}", f"documents[{i}].text")
        total += len(document.text)
    if total > settings.max_batch_chars:
        raise ApiError(413, "payload_too_large", f"the batch has {total} characters; at most "
                       f"{settings.max_batch_chars}", "documents")
    if body.probes and len(body.probes) > settings.max_probes_per_batch:
        raise ApiError(413, "payload_too_large", f"{len(body.probes)} probes; at most "
                       f"{settings.max_probes_per_batch}", "probes")


def _replay(session: Session, scoped_key: str, body_hash: str) -> Submitted | None:
    found = repo.find_idempotent_job(session, scoped_key)
    if found is None:
        return None
    job, stored_hash = found
    if stored_hash != body_hash:
        raise ApiError(409, "idempotency_conflict", "this Idempotency-Key was already used with a different "
                       "request body", "Idempotency-Key")
    return Submitted(job, created=False)


def submit_update(session: Session, settings: Settings, principal: Principal, body: UpdateCreate,
                  idempotency_key: str | None) -> Submitted:
    lineage_name = body.lineage or principal.default_lineage(settings)
    principal.check_lineage(lineage_name)
    check_limits(body, settings)
    payload = body.model_dump(mode="json", exclude_unset=True)
    body_hash = repo.request_hash(payload)
    scoped_key = principal.idempotency_scope(idempotency_key) if idempotency_key else None
    if scoped_key and (replayed := _replay(session, scoped_key, body_hash)):
        return replayed
    try:
        lineage = repo.get_or_create_lineage(session, lineage_name, settings.base_model)
        job = repo.create_update(
            session, lineage=lineage, documents=payload["documents"], method=body.method,
            hyperparameters=_without_nulls(body.hyperparameters), probes=payload.get("probes"),
            promotion=_without_nulls(body.promotion), idempotency_key=scoped_key, body_hash=body_hash,
            api_key_id=principal.key_id)
        session.commit()
    except IntegrityError:
        # A concurrent request with the same Idempotency-Key committed first.
        session.rollback()
        if scoped_key and (replayed := _replay(session, scoped_key, body_hash)):
            return replayed
        raise
    _enqueue(session, settings, job)
    return Submitted(job, created=True)


def _without_nulls(model) -> dict | None:
    # An explicit null means "the default": the worker then applies the engine's or the settings'.
    return model.model_dump(mode="json", exclude_none=True) if model is not None else None


def _enqueue(session: Session, settings: Settings, job: Job) -> None:
    try:
        queue.enqueue_job(job.id, settings)
    except Exception:  # broker down: the reconciler re-sends queued jobs that were never enqueued
        log.exception("could not send job %s to the broker; it stays queued", job.id)
        repo.add_job_event(session, job, "enqueue_failed", "the broker was unreachable; the job will be re-sent")
    else:
        repo.mark_enqueued(session, job)
    session.commit()
