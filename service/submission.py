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
from service.schemas import PromotionIn, UpdateCreate
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


def check_promotion_authority(body: UpdateCreate, settings: Settings, principal: Principal) -> None:
    """A promotion looser than the server's (policy ``always``, wider bounds) overrides the
    operator's gate, so it needs ``models:promote``; a tighter one is any writer's choice."""
    promotion = body.promotion
    if promotion is None or "models:promote" in principal.scopes:
        return
    looser = []
    if promotion.policy == "always":
        looser.append(("promotion.policy", "policy 'always'"))
    for field, server, wider in (
            ("max_retention_kl_vs_parent", settings.promote_max_retention_kl_vs_parent, lambda v, s: v > s),
            ("max_retention_kl_vs_base", settings.promote_max_retention_kl_vs_base, lambda v, s: v > s),
            ("min_format_compliance", settings.promote_min_format_compliance, lambda v, s: v < s)):
        value = getattr(promotion, field)
        if value is not None and wider(value, server):
            looser.append((f"promotion.{field}", f"{field} {value} (the server's is {server})"))
    if looser:
        raise ApiError(403, "forbidden", f"a promotion looser than the server's ({', '.join(w for _, w in looser)}) "
                       "needs the scope 'models:promote'", looser[0][0])


ADAPTER_SHAPE_OPTIONS = ("lora_r", "lora_alpha", "lora_dropout")


def check_adapter_shape(session: Session, body: UpdateCreate, lineage_name: str) -> None:
    """A lineage with a usable version chains onto its adapter, whose shape is fixed: asking
    for another shape would be accepted and not honoured, so it is refused (422). (A job
    queued behind the lineage's first one chains too; the engine then records the shape it
    applied, never the one asked.)"""
    if body.hyperparameters is None:
        return
    asked = [name for name in ADAPTER_SHAPE_OPTIONS if getattr(body.hyperparameters, name) is not None]
    if asked and repo.newest_usable_version(session, lineage_name) is not None:
        raise ApiError(422, "validation_error", f"lineage {lineage_name!r} already has a version; a new version "
                       f"continues its adapter, so {', '.join(asked)} cannot be chosen (leave them out)",
                       f"hyperparameters.{asked[0]}")


def canonical_request(body: UpdateCreate, lineage_name: str) -> dict:
    """The request as it will be carried out: defaults filled in, nulls (= the default) and
    option objects that change nothing left out, the lineage resolved."""
    canonical = body.model_dump(mode="json", exclude_none=True)
    for name, no_change in (("hyperparameters", {}), ("promotion", PromotionIn().model_dump(exclude_none=True))):
        if canonical.get(name) == no_change:
            canonical.pop(name)
    return {**canonical, "lineage": lineage_name}


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
    if unknown := body.unknown_probe_documents():
        index, document_id = unknown[0]
        raise ApiError(422, "validation_error", f"probes[{index}].document_id {document_id!r} names no document "
                       "of this batch", f"probes[{index}].document_id")
    check_promotion_authority(body, settings, principal)
    check_adapter_shape(session, body, lineage_name)
    payload = body.model_dump(mode="json", exclude_unset=True)
    # The hash is over the request as validated, defaults filled in: a body that spells out a
    # default ("method": "disc", the key's own lineage) is the same request as one leaving it out.
    body_hash = repo.request_hash(canonical_request(body, lineage_name))
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
        # Marked as sent in the same commit (the send follows it); a failed send clears the mark.
        repo.mark_enqueued(session, job)
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
        queue.enqueue_job(job.id, settings, base_model=job.lineage.base_model)
    except Exception:  # broker down: the reconciler re-sends queued jobs that were never enqueued
        log.exception("could not send job %s to the broker; it stays queued", job.id)
        job.enqueued_at = None
        repo.add_job_event(session, job, "enqueue_failed", "the broker was unreachable; the job will be re-sent")
        session.commit()
