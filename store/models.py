"""SQLAlchemy 2 models of the record: lineages, batches, documents, jobs and their events,
model versions and their scores, aliases (`latest`) and their history, API keys.

Portable between PostgreSQL (production, tests) and SQLite (the embedded default): JSON
columns, string UUID keys generated in Python, timezone-aware UTC timestamps.
"""

from __future__ import annotations

import enum
import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Enum,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    return datetime.now(UTC)


def new_id() -> str:
    return uuid.uuid4().hex


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


# BigInteger primary keys autoincrement on SQLite only as INTEGER: this variant keeps both happy.
BigIntPK = BigInteger().with_variant(Integer(), "sqlite")


class JobStatus(str, enum.Enum):
    queued = "queued"
    running = "running"
    evaluating = "evaluating"
    succeeded = "succeeded"
    failed = "failed"
    cancelled = "cancelled"

    @property
    def is_terminal(self) -> bool:
        return self in (JobStatus.succeeded, JobStatus.failed, JobStatus.cancelled)


class VersionState(str, enum.Enum):
    candidate = "candidate"   # evaluated, kept with its scores, not `latest`
    promoted = "promoted"     # has been `latest` at some point
    rejected = "rejected"     # artifact missing or corrupt; never served


def _enum(cls: type[enum.Enum], name: str) -> Enum:
    # Stored as plain strings (no native PostgreSQL enum) so new states need no type migration.
    return Enum(cls, name=name, native_enum=False, length=16, validate_strings=True)


class Lineage(Base):
    """A named chain of model versions over one base model."""

    __tablename__ = "lineages"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    base_model: Mapped[str] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    versions: Mapped[list[ModelVersion]] = relationship(back_populates="lineage", order_by="ModelVersion.number")


class UpdateBatch(Base):
    """One POST /updates: its documents, its idempotency key and the hash of the request body."""

    __tablename__ = "update_batches"
    __table_args__ = (UniqueConstraint("idempotency_key", name="uq_update_batches_idempotency_key"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    lineage_id: Mapped[int] = mapped_column(ForeignKey("lineages.id"), index=True)
    idempotency_key: Mapped[str | None] = mapped_column(String(200))
    request_hash: Mapped[str] = mapped_column(String(64))
    api_key_id: Mapped[int | None] = mapped_column(ForeignKey("api_keys.id"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    documents: Mapped[list[Document]] = relationship(back_populates="batch", order_by="Document.position")


class Document(Base):
    __tablename__ = "documents"
    __table_args__ = (UniqueConstraint("batch_id", "position", name="uq_documents_batch_id_position"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    batch_id: Mapped[str] = mapped_column(ForeignKey("update_batches.id", ondelete="CASCADE"), index=True)
    position: Mapped[int] = mapped_column(Integer)
    external_id: Mapped[str | None] = mapped_column(String(200))
    text: Mapped[str] = mapped_column(Text)
    metadata_: Mapped[dict[str, Any] | None] = mapped_column("metadata", JSON)
    sha256: Mapped[str] = mapped_column(String(64))

    batch: Mapped[UpdateBatch] = relationship(back_populates="documents")


class Job(Base):
    """An adaptation job: train one new version of a lineage from one batch."""

    __tablename__ = "jobs"
    __table_args__ = (Index("ix_jobs_status_created_at", "status", "created_at"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    batch_id: Mapped[str] = mapped_column(ForeignKey("update_batches.id"), unique=True)
    lineage_id: Mapped[int] = mapped_column(ForeignKey("lineages.id"), index=True)
    method: Mapped[str] = mapped_column(String(16))
    hyperparameters: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    probes: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON)
    promotion: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    status: Mapped[JobStatus] = mapped_column(_enum(JobStatus, "job_status"), default=JobStatus.queued)
    progress: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    error: Mapped[dict[str, Any] | None] = mapped_column(JSON)  # {"code", "message"}
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    parent_version_id: Mapped[int | None] = mapped_column(ForeignKey("model_versions.id"))
    result_version_id: Mapped[int | None] = mapped_column(ForeignKey("model_versions.id"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    enqueued_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    heartbeat_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    batch: Mapped[UpdateBatch] = relationship()
    lineage: Mapped[Lineage] = relationship()
    parent_version: Mapped[ModelVersion | None] = relationship(foreign_keys=[parent_version_id])
    result_version: Mapped[ModelVersion | None] = relationship(foreign_keys=[result_version_id])
    events: Mapped[list[JobEvent]] = relationship(back_populates="job", order_by="JobEvent.id")


class JobEvent(Base):
    """Append-only log of what happened to a job (status changes, progress, retries, errors)."""

    __tablename__ = "job_events"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(32))
    message: Mapped[str] = mapped_column(Text, default="")
    data: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    job: Mapped[Job] = relationship(back_populates="events")


class ModelVersion(Base):
    """Version n of a lineage: trained from version n−1 (its teacher), with an artifact and scores."""

    __tablename__ = "model_versions"
    __table_args__ = (UniqueConstraint("lineage_id", "number", name="uq_model_versions_lineage_id_number"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    lineage_id: Mapped[int] = mapped_column(ForeignKey("lineages.id"), index=True)
    number: Mapped[int] = mapped_column(Integer)
    parent_version_id: Mapped[int | None] = mapped_column(ForeignKey("model_versions.id"))
    job_id: Mapped[str | None] = mapped_column(
        ForeignKey("jobs.id", use_alter=True, name="fk_model_versions_job_id_jobs"))
    method: Mapped[str] = mapped_column(String(16))
    base_model: Mapped[str] = mapped_column(String(500))
    base_model_checksum: Mapped[str | None] = mapped_column(String(64))
    artifact_kind: Mapped[str] = mapped_column(String(8))  # lora | full
    artifact_uri: Mapped[str] = mapped_column(String(1000))
    artifact_sha256: Mapped[str] = mapped_column(String(64))
    state: Mapped[VersionState] = mapped_column(_enum(VersionState, "version_state"), default=VersionState.candidate)
    config: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    train_metrics: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    train_report: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    lineage: Mapped[Lineage] = relationship(back_populates="versions")
    parent: Mapped[ModelVersion | None] = relationship(remote_side=[id])
    scores: Mapped[list[EvaluationScore]] = relationship(back_populates="version", order_by="EvaluationScore.name")


class EvaluationScore(Base):
    __tablename__ = "evaluation_scores"
    __table_args__ = (UniqueConstraint("version_id", "name", name="uq_evaluation_scores_version_id_name"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    version_id: Mapped[int] = mapped_column(ForeignKey("model_versions.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(64))
    value: Mapped[float | None] = mapped_column(Float)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    version: Mapped[ModelVersion] = relationship(back_populates="scores")


class Alias(Base):
    """A movable name (``latest``) pointing at one version of a lineage."""

    __tablename__ = "aliases"
    __table_args__ = (UniqueConstraint("lineage_id", "name", name="uq_aliases_lineage_id_name"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    lineage_id: Mapped[int] = mapped_column(ForeignKey("lineages.id"), index=True)
    name: Mapped[str] = mapped_column(String(64))
    version_id: Mapped[int] = mapped_column(ForeignKey("model_versions.id"))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    version: Mapped[ModelVersion] = relationship()
    history: Mapped[list[AliasHistory]] = relationship(back_populates="alias", order_by="AliasHistory.id")


class AliasHistory(Base):
    """Every move of an alias, kept: promotion by policy, roll back, roll forward."""

    __tablename__ = "alias_history"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    alias_id: Mapped[int] = mapped_column(ForeignKey("aliases.id", ondelete="CASCADE"), index=True)
    from_version_id: Mapped[int | None] = mapped_column(ForeignKey("model_versions.id"))
    to_version_id: Mapped[int] = mapped_column(ForeignKey("model_versions.id"))
    reason: Mapped[str] = mapped_column(String(32))  # policy | manual
    actor: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    alias: Mapped[Alias] = relationship(back_populates="history")


class ApiKey(Base):
    """An API key: only its sha256 is stored; scopes and an optional single-lineage restriction."""

    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(100))
    prefix: Mapped[str] = mapped_column(String(16), index=True)
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    scopes: Mapped[list[str]] = mapped_column(JSON)
    lineage: Mapped[str | None] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
