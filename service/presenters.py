"""Database rows to response bodies (numbers instead of internal ids, URLs for artifacts)."""

from __future__ import annotations

from sqlalchemy.orm import Session

from service.schemas import (
    AliasMovePublic,
    JobErrorPublic,
    JobEventPublic,
    JobPublic,
    LineagePublic,
    ProgressPublic,
    ScoreHistoryPublic,
    VersionPublic,
    VersionScoresPublic,
)
from store import repo
from store.models import AliasHistory, Job, JobEvent, Lineage, ModelVersion
from store.settings import Settings


def artifact_url(settings: Settings, lineage: str, number: int) -> str:
    return f"{settings.public_url.rstrip('/')}/models/{lineage}/versions/{number}/artifact"


def version_public(session: Session, settings: Settings, version: ModelVersion,
                   latest_id: int | None = None) -> VersionPublic:
    lineage = version.lineage.name
    if latest_id is None:
        latest = repo.get_alias(session, version.lineage)
        latest_id = latest.version_id if latest else None
    return VersionPublic(
        lineage=lineage, version=version.number,
        parent_version=version.parent.number if version.parent is not None else None,
        base_model=version.base_model, method=version.method, state=version.state.value,
        is_latest=version.id == latest_id, created_at=version.created_at,
        scores={s.name: s.value for s in version.scores}, artifact_kind=version.artifact_kind,
        artifact_url=artifact_url(settings, lineage, version.number), artifact_sha256=version.artifact_sha256,
        job_id=version.job_id)


def score_history_public(lineage: Lineage, history: list[repo.VersionScores], metrics: list[str],
                         latest_id: int | None) -> ScoreHistoryPublic:
    """``metrics`` of every version in ``history``; a metric a version lacks is null, never left out."""
    latest = next((entry.number for entry in history if entry.id == latest_id), None)
    return ScoreHistoryPublic(
        lineage=lineage.name, base_model=lineage.base_model, latest_version=latest, metrics=metrics,
        data=[VersionScoresPublic(version=entry.number, created_at=entry.created_at, state=entry.state.value,
                                  is_latest=entry.id == latest_id,
                                  scores={name: entry.scores.get(name) for name in metrics})
              for entry in history])


def job_public(session: Session, settings: Settings, job: Job) -> JobPublic:
    progress = dict(job.progress or {})
    error = JobErrorPublic(code=str(job.error.get("code", "error")), message=str(job.error.get("message", ""))) \
        if job.error else None
    return JobPublic(
        id=job.id, status=job.status.value, lineage=job.lineage.name, method=job.method,
        progress=ProgressPublic(**{k: v for k, v in progress.items() if k in ProgressPublic.model_fields}),
        cancel_requested=job.cancel_requested, created_at=job.created_at, started_at=job.started_at,
        finished_at=job.finished_at, error=error, attempts=job.attempts,
        parent_version=job.parent_version.number if job.parent_version is not None else None,
        result_version=version_public(session, settings, job.result_version) if job.result_version else None)


def event_public(event: JobEvent) -> JobEventPublic:
    return JobEventPublic(id=event.id, kind=event.kind, message=event.message, data=event.data,
                          created_at=event.created_at)


def alias_moves_public(session: Session, entries: list[AliasHistory], alias: str) -> list[AliasMovePublic]:
    numbers = repo.version_numbers(session, [i for e in entries for i in (e.from_version_id, e.to_version_id)])
    return [AliasMovePublic(alias=alias, from_version=numbers.get(e.from_version_id) if e.from_version_id else None,
                            to_version=numbers[e.to_version_id], reason=e.reason, actor=e.actor,
                            created_at=e.created_at) for e in entries]


def lineage_public(summary: repo.LineageSummary) -> LineagePublic:
    lineage = summary.lineage
    return LineagePublic(name=lineage.name, base_model=lineage.base_model, created_at=lineage.created_at,
                         version_count=summary.version_count, latest_version=summary.latest_version)
