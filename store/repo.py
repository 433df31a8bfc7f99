"""Repository functions: every one takes a session and none commits.

The caller owns the transaction, so "batch + documents + job" is one commit in the API and
"version + scores + alias move" is one commit in the worker.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, joinedload, selectinload

from store.models import (
    Alias,
    AliasHistory,
    ApiKey,
    Document,
    EvaluationScore,
    Job,
    JobEvent,
    JobStatus,
    Lineage,
    ModelVersion,
    UpdateBatch,
    VersionState,
    utcnow,
)
from store.names import LINEAGE_NAME, LINEAGE_NAME_RULE

LATEST = "latest"


class RepoError(Exception):
    """Base of the record's refusals; ``code`` is machine-readable."""

    code = "conflict"


class VersionRejected(RepoError):
    code = "version_rejected"


class JobAlreadyFinished(RepoError):
    code = "job_finished"


class InvalidCursor(RepoError):
    code = "invalid_cursor"


# --- lineages ---------------------------------------------------------------------------------

def get_lineage(session: Session, name: str) -> Lineage | None:
    return session.scalar(select(Lineage).where(Lineage.name == name))


def get_or_create_lineage(session: Session, name: str, base_model: str) -> Lineage:
    """The lineage called ``name``, created over ``base_model`` on first use (safe under races)."""
    lineage = get_lineage(session, name)
    if lineage is not None:
        return lineage
    try:
        with session.begin_nested():
            lineage = Lineage(name=name, base_model=base_model)
            session.add(lineage)
    except IntegrityError:  # another request created it between our select and insert
        lineage = get_lineage(session, name)
        if lineage is None:
            raise
    return lineage


@dataclass(frozen=True)
class LineageSummary:
    lineage: Lineage
    version_count: int
    latest_version: int | None


def list_lineages(session: Session, name: str | None = None) -> list[LineageSummary]:
    """Every lineage (or only ``name``) by name, with its number of versions and where ``latest`` points."""
    counts = (select(ModelVersion.lineage_id, func.count().label("versions"))
              .group_by(ModelVersion.lineage_id).subquery())
    latest = (select(Alias.lineage_id, ModelVersion.number)
              .join(ModelVersion, Alias.version_id == ModelVersion.id)
              .where(Alias.name == LATEST).subquery())
    query = (select(Lineage, counts.c.versions, latest.c.number)
             .outerjoin(counts, counts.c.lineage_id == Lineage.id)
             .outerjoin(latest, latest.c.lineage_id == Lineage.id)
             .order_by(Lineage.name))
    if name is not None:
        query = query.where(Lineage.name == name)
    return [LineageSummary(lineage, versions or 0, number) for lineage, versions, number in session.execute(query)]


# --- update batches and jobs ------------------------------------------------------------------

def request_hash(body: Any) -> str:
    """sha256 of a JSON value in canonical form: equal bodies hash equal whatever their key order."""
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def text_sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def create_update(session: Session, *, lineage: Lineage, documents: Sequence[dict[str, Any]], method: str,
                  hyperparameters: dict[str, Any] | None = None, probes: list[dict[str, Any]] | None = None,
                  promotion: dict[str, Any] | None = None, idempotency_key: str | None = None,
                  body_hash: str = "", api_key_id: int | None = None) -> Job:
    """Add a batch, its documents (``{"text", "id"?, "metadata"?}``) and a queued job; flushes, never commits.

    The parent version is left unset: the worker fixes it when it starts, as the lineage's newest
    version that is not rejected (candidates included), so jobs queued back to back chain one
    after the other.
    """
    batch = UpdateBatch(lineage_id=lineage.id, idempotency_key=idempotency_key, request_hash=body_hash,
                        api_key_id=api_key_id)
    batch.documents = [
        Document(position=i, external_id=doc.get("id"), text=doc["text"], metadata_=doc.get("metadata"),
                 sha256=text_sha256(doc["text"]))
        for i, doc in enumerate(documents)
    ]
    job = Job(batch=batch, lineage=lineage, method=method, hyperparameters=dict(hyperparameters or {}),
              probes=probes, promotion=promotion, status=JobStatus.queued, attempts=0, cancel_requested=False,
              progress={"documents_done": 0, "documents_total": len(documents)})
    session.add_all([batch, job])
    session.flush()
    add_job_event(session, job, "created", f"{len(documents)} documents queued for {lineage.name}")
    return job


def find_idempotent_job(session: Session, idempotency_key: str) -> tuple[Job, str] | None:
    """The job created under ``idempotency_key`` and the hash of the body that created it."""
    row = session.execute(
        select(Job, UpdateBatch.request_hash).join(UpdateBatch, Job.batch_id == UpdateBatch.id)
        .where(UpdateBatch.idempotency_key == idempotency_key)).first()
    return (row[0], row[1]) if row else None


def mark_enqueued(session: Session, job: Job) -> None:
    job.enqueued_at = utcnow()


def get_job(session: Session, job_id: str, *, with_versions: bool = False) -> Job | None:
    """A job; ``with_versions`` loads its lineage and versions in the same query (to present it)."""
    if not with_versions:
        return session.get(Job, job_id)
    return session.get(Job, job_id, options=[joinedload(Job.lineage), joinedload(Job.parent_version),
                                             joinedload(Job.result_version)])


@dataclass(frozen=True)
class Page:
    items: list[Any]
    next_cursor: str | None


_ROW_ID = re.compile(r"[0-9a-f]{32}")


def is_row_id(value: str) -> bool:
    """Whether ``value`` has the shape of a job, batch or document id (``new_id``)."""
    return bool(_ROW_ID.fullmatch(value))


def _encode_cursor(created_at: datetime, row_id: str) -> str:
    raw = json.dumps([created_at.isoformat(), row_id]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        created_at, row_id = json.loads(raw)
        if not isinstance(row_id, str) or not _ROW_ID.fullmatch(row_id):
            raise ValueError("not a row id")  # e.g. NUL, which PostgreSQL would refuse in a query
        return datetime.fromisoformat(created_at), row_id
    except (ValueError, TypeError) as exc:
        raise InvalidCursor(f"cursor {cursor!r} is not one this API returned") from exc


def list_jobs(session: Session, *, limit: int = 50, cursor: str | None = None, status: JobStatus | None = None,
              lineage: str | None = None) -> Page:
    """Jobs newest first; ``next_cursor`` resumes after the last one (stable under concurrent inserts)."""
    query = (select(Job)
             .options(selectinload(Job.lineage), selectinload(Job.parent_version),
                      selectinload(Job.result_version).selectinload(ModelVersion.scores))
             .order_by(Job.created_at.desc(), Job.id.desc()))
    if status is not None:
        query = query.where(Job.status == status)
    if lineage is not None:
        query = query.join(Lineage, Job.lineage_id == Lineage.id).where(Lineage.name == lineage)
    if cursor:
        created_at, job_id = _decode_cursor(cursor)
        query = query.where(or_(Job.created_at < created_at, and_(Job.created_at == created_at, Job.id < job_id)))
    rows = list(session.scalars(query.limit(limit + 1)))
    more = len(rows) > limit
    rows = rows[:limit]
    next_cursor = _encode_cursor(rows[-1].created_at, rows[-1].id) if more and rows else None
    return Page(rows, next_cursor)


def count_rows(session: Session, model: type) -> int:
    return session.scalar(select(func.count()).select_from(model)) or 0


def add_job_event(session: Session, job: Job, kind: str, message: str = "",
                  data: dict[str, Any] | None = None) -> JobEvent:
    event = JobEvent(job_id=job.id, kind=kind, message=message, data=data)
    session.add(event)
    session.flush()
    return event


def list_job_events(session: Session, job_id: str) -> list[JobEvent]:
    return list(session.scalars(select(JobEvent).where(JobEvent.job_id == job_id).order_by(JobEvent.id)))


def request_cancel(session: Session, job: Job, actor: str | None = None) -> Job:
    """A queued job is cancelled at once; a running one is flagged for the worker to stop.

    Raises JobAlreadyFinished for a job that has already ended. The job row is re-read under a
    row lock first: a worker committing the job's result holds that lock, so a cancel arriving in
    that window waits and then sees the job ended, instead of flagging a finished job.
    """
    session.refresh(job, with_for_update=True)
    if job.status.is_terminal:
        raise JobAlreadyFinished(f"job {job.id} has already ended ({job.status.value})")
    job.cancel_requested = True
    if job.status == JobStatus.queued:
        job.status = JobStatus.cancelled
        job.finished_at = utcnow()
        add_job_event(session, job, "cancelled", "cancelled before it started", {"actor": actor})
    else:
        add_job_event(session, job, "cancel_requested", "the worker stops at its next step", {"actor": actor})
    return job


# --- model versions and scores ----------------------------------------------------------------

def _lineage_of(session: Session, lineage: Lineage | str) -> Lineage | None:
    return get_lineage(session, lineage) if isinstance(lineage, str) else lineage


def list_versions(session: Session, lineage: Lineage | str) -> list[ModelVersion]:
    """Every version of a lineage, candidates and rejected ones included, oldest first."""
    found = _lineage_of(session, lineage)
    if found is None:
        return []
    return list(session.scalars(select(ModelVersion).options(selectinload(ModelVersion.scores))
                                .where(ModelVersion.lineage_id == found.id).order_by(ModelVersion.number)))


def get_version(session: Session, lineage: Lineage | str, number: int) -> ModelVersion | None:
    found = _lineage_of(session, lineage)
    if found is None:
        return None
    return session.scalar(select(ModelVersion).options(selectinload(ModelVersion.scores))
                          .where(ModelVersion.lineage_id == found.id, ModelVersion.number == number))


def next_version_number(session: Session, lineage: Lineage) -> int:
    current = session.scalar(select(func.max(ModelVersion.number)).where(ModelVersion.lineage_id == lineage.id))
    return (current or 0) + 1


def create_version(session: Session, *, lineage: Lineage, parent: ModelVersion | None, job_id: str | None,
                   method: str, base_model: str, artifact_kind: str, artifact_uri: str, artifact_sha256: str,
                   base_model_checksum: str | None = None, config: dict[str, Any] | None = None,
                   train_metrics: dict[str, Any] | None = None, train_report: dict[str, Any] | None = None,
                   state: VersionState = VersionState.candidate, number: int | None = None) -> ModelVersion:
    """Register version ``number`` (default: the next free one) of ``lineage``; flushes, never commits."""
    version = ModelVersion(
        lineage_id=lineage.id, number=number if number is not None else next_version_number(session, lineage),
        parent_version_id=parent.id if parent else None, job_id=job_id, method=method, base_model=base_model,
        base_model_checksum=base_model_checksum, artifact_kind=artifact_kind, artifact_uri=artifact_uri,
        artifact_sha256=artifact_sha256, state=state, config=config, train_metrics=train_metrics,
        train_report=train_report)
    session.add(version)
    session.flush()
    return version


def set_scores(session: Session, version: ModelVersion, scores: dict[str, float | None]) -> None:
    """Record (or overwrite) evaluation scores by name."""
    existing = {s.name: s for s in session.scalars(select(EvaluationScore)
                                                   .where(EvaluationScore.version_id == version.id))}
    for name, value in scores.items():
        value = None if value is None else float(value)
        if name in existing:
            existing[name].value = value
        else:
            session.add(EvaluationScore(version_id=version.id, name=name, value=value))
    session.flush()
    session.expire(version, ["scores"])


def version_scores(session: Session, version: ModelVersion) -> dict[str, float | None]:
    rows = session.scalars(select(EvaluationScore).where(EvaluationScore.version_id == version.id))
    return {s.name: s.value for s in rows}


@dataclass(frozen=True)
class VersionScores:
    """One version's point in its lineage's score history: every score it has, by name."""

    id: int
    number: int
    created_at: datetime
    state: VersionState
    scores: dict[str, float | None]


def score_history(session: Session, lineage: Lineage | str) -> list[VersionScores]:
    """Every version of a lineage, oldest first, with all its scores: one query, no artifact or parent rows."""
    found = _lineage_of(session, lineage)
    if found is None:
        return []
    rows = session.execute(
        select(ModelVersion.id, ModelVersion.number, ModelVersion.created_at, ModelVersion.state,
               EvaluationScore.name, EvaluationScore.value)
        .outerjoin(EvaluationScore, EvaluationScore.version_id == ModelVersion.id)
        .where(ModelVersion.lineage_id == found.id)
        .order_by(ModelVersion.number, EvaluationScore.name))
    history: dict[int, VersionScores] = {}
    for version_id, number, created_at, state, name, value in rows:
        entry = history.get(version_id)
        if entry is None:
            entry = history[version_id] = VersionScores(version_id, number, created_at, state, {})
        if name is not None:  # a version without any score still has its place in the history
            entry.scores[name] = value
    return list(history.values())


# --- aliases ----------------------------------------------------------------------------------

def get_alias(session: Session, lineage: Lineage | str, name: str = LATEST) -> Alias | None:
    found = _lineage_of(session, lineage)
    if found is None:
        return None
    return session.scalar(select(Alias).where(Alias.lineage_id == found.id, Alias.name == name))


def newest_usable_version(session: Session, lineage: Lineage | str) -> ModelVersion | None:
    """The lineage's newest version that is not rejected: the parent (and teacher) of its next one."""
    found = _lineage_of(session, lineage)
    if found is None:
        return None
    return session.scalar(select(ModelVersion)
                          .where(ModelVersion.lineage_id == found.id, ModelVersion.state != VersionState.rejected)
                          .order_by(ModelVersion.number.desc()).limit(1))


def latest_version(session: Session, lineage: Lineage | str) -> ModelVersion | None:
    """The version the lineage's ``latest`` alias points at, or None before the first promotion."""
    alias = get_alias(session, lineage, LATEST)
    return alias.version if alias is not None else None


def move_alias(session: Session, lineage: Lineage | str, version: ModelVersion, reason: str,
               actor: str | None = None, alias_name: str = LATEST) -> AliasHistory | None:
    """Point ``alias_name`` of ``lineage`` at ``version`` and record the move; flushes, never commits.

    The version's state becomes ``promoted``. Moving onto the version the alias already names
    records nothing and returns None, so a retried promotion is harmless. Raises
    VersionRejected for a rejected version and ValueError for a version of another lineage.
    """
    found = _lineage_of(session, lineage)
    if found is None:
        raise ValueError(f"unknown lineage {lineage!r}")
    if version.lineage_id != found.id:
        raise ValueError(f"version {version.number} does not belong to lineage {found.name!r}")
    if version.state == VersionState.rejected:
        raise VersionRejected(f"version {version.number} of {found.name!r} was rejected and cannot be promoted")
    alias, previous = _locked_alias(session, found, alias_name, version)
    if alias is None:
        return None
    session.flush()
    version.state = VersionState.promoted
    entry = AliasHistory(alias_id=alias.id, from_version_id=previous, to_version_id=version.id, reason=reason,
                         actor=actor)
    session.add(entry)
    session.flush()
    session.expire(alias, ["version"])
    return entry


def _locked_alias(session: Session, lineage: Lineage, alias_name: str,
                  version: ModelVersion) -> tuple[Alias | None, int | None]:
    """The alias row, locked and pointed at ``version``, and the version id it named before;
    (None, id) when it already named ``version``.

    A row lock cannot serialize two *first* promotions (there is no row yet), so the first
    insert runs in a savepoint: the loser of the race sees the unique constraint, rolls back
    to the savepoint and takes the winner's row, locked, like any later move.
    """
    query = select(Alias).where(Alias.lineage_id == lineage.id, Alias.name == alias_name).with_for_update()
    alias = session.scalar(query)
    if alias is None:
        try:
            with session.begin_nested():
                alias = Alias(lineage_id=lineage.id, name=alias_name, version_id=version.id, updated_at=utcnow())
                session.add(alias)
            return alias, None
        except IntegrityError:
            alias = session.scalar(query.execution_options(populate_existing=True))
    if alias.version_id == version.id:
        return None, alias.version_id
    previous = alias.version_id
    alias.version_id = version.id
    alias.updated_at = utcnow()
    return alias, previous


def alias_history(session: Session, lineage: Lineage | str, alias_name: str = LATEST) -> list[AliasHistory]:
    """Every move of the alias, oldest first."""
    alias = get_alias(session, lineage, alias_name)
    if alias is None:
        return []
    return list(session.scalars(select(AliasHistory).where(AliasHistory.alias_id == alias.id)
                                .order_by(AliasHistory.id)))


def version_numbers(session: Session, version_ids: Iterable[int | None]) -> dict[int, int]:
    """Map version ids to their numbers (for answers that show numbers, not ids)."""
    ids = {i for i in version_ids if i is not None}
    if not ids:
        return {}
    rows = session.execute(select(ModelVersion.id, ModelVersion.number).where(ModelVersion.id.in_(ids)))
    return {row[0]: row[1] for row in rows}


# --- API keys ---------------------------------------------------------------------------------

SCOPES = ("updates:write", "jobs:read", "models:read", "models:promote")
KEY_PREFIX = "disc_"


def hash_api_key(token: str) -> str:
    # The token carries 256 random bits, so a plain sha256 cannot be brute-forced; no salt needed.
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def create_api_key(session: Session, *, name: str, scopes: Iterable[str],
                   lineage: str | None = None) -> tuple[ApiKey, str]:
    """A new key and its token; the token is shown once and only its hash is stored."""
    scopes = sorted(set(scopes))
    unknown = [s for s in scopes if s not in SCOPES]
    if unknown:
        raise ValueError(f"unknown scope(s) {', '.join(unknown)}; known: {', '.join(SCOPES)}")
    if not scopes:
        raise ValueError("a key needs at least one scope")
    if not name or len(name) > 100 or not name.isprintable():
        raise ValueError(f"key name must be 1..100 printable characters; got {len(name)} characters")
    if lineage is not None and not LINEAGE_NAME.fullmatch(lineage):
        raise ValueError(f"lineage {lineage!r} is not a lineage name: {LINEAGE_NAME_RULE}")
    token = KEY_PREFIX + secrets.token_urlsafe(32)
    key = ApiKey(name=name, prefix=token[:12], key_hash=hash_api_key(token), scopes=scopes, lineage=lineage)
    session.add(key)
    session.flush()
    return key, token


def verify_api_key(session: Session, token: str) -> ApiKey | None:
    """The live (not revoked) key for ``token``, or None."""
    key = session.scalar(select(ApiKey).where(ApiKey.key_hash == hash_api_key(token)))
    if key is None or key.revoked_at is not None:
        return None
    return key


def list_api_keys(session: Session) -> list[ApiKey]:
    return list(session.scalars(select(ApiKey).order_by(ApiKey.id)))


def revoke_api_key(session: Session, key_id: int) -> ApiKey | None:
    key = session.get(ApiKey, key_id)
    if key is not None and key.revoked_at is None:
        key.revoked_at = utcnow()
    return key
