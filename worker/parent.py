"""Choosing the parent: version n of a lineage is trained from version n−1, its teacher."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import update
from sqlalchemy.orm import Session, sessionmaker

from store import repo, storage
from store.artifact_store import Fetched
from store.models import Lineage, ModelVersion, VersionState
from worker.artifacts import JobArtifacts
from worker.job_record import JobInput, JobRecord
from worker.outcomes import JobFailed, short_message


@dataclass
class NextVersion:
    """The version this job adds: its number, and the parent it is trained from (None: the base)."""
    number: int
    parent: ModelVersion | None
    parent_dir: Path | None
    parent_fetched: Fetched | None = None  # pins the parent's copy in the host's cache

    def release(self) -> None:
        if self.parent_fetched is not None:
            self.parent_fetched.release()
            self.parent_fetched = None


def current_version(session: Session, lineage_id: int) -> ModelVersion | None:
    """The lineage's newest usable version: the parent (and teacher) of the next one."""
    return repo.newest_usable_version(session, session.get(Lineage, lineage_id))


def choose_parent(session: Session, session_factory: sessionmaker[Session], record: JobRecord, job: JobInput,
                  artifacts: JobArtifacts) -> NextVersion:
    """The next version's number and its parent, fetched from the artifact store to this host and
    checked against its recorded checksum.

    ``session`` is the lineage lock's. A damaged parent is marked rejected and the job fails, so
    the next update builds on the newest intact version.
    """
    parent = current_version(session, job.lineage_id)
    # Numbers never repeat, even after a rejected version: its parent is the newest intact one.
    number = repo.next_version_number(session, session.get(Lineage, job.lineage_id))
    parent_dir = fetched = None
    if parent is not None:
        try:
            fetched = artifacts.fetch_parent(parent.artifact_uri, parent.artifact_sha256)
            parent_dir = fetched.path
        except storage.ArtifactCorrupt as exc:
            _reject_version(session_factory, parent.id)
            raise JobFailed("artifact_corrupt", short_message(
                f"the parent, version {parent.number}, failed its artifact check ({exc}); it is now "
                "rejected, and the next update builds on the newest intact version")) from exc
    record.update(parent_version_id=parent.id if parent is not None else None,
                  progress={"stage": "training", "documents_done": 0, "documents_total": len(job.documents)})
    record.event("parent", f"training version {number} from "
                 + (f"version {parent.number}" if parent is not None else f"the base {job.base_model}"),
                 {"version": number, "parent_version": parent.number if parent is not None else None})
    return NextVersion(number=number, parent=parent, parent_dir=parent_dir, parent_fetched=fetched)


def _reject_version(session_factory: sessionmaker[Session], version_id: int) -> None:
    """Mark a version whose artifact is damaged or gone as rejected, so no update builds on it.

    Its own session: the lineage lock's transaction stays open until the new version commits.
    """
    with session_factory() as session:
        session.execute(update(ModelVersion).where(ModelVersion.id == version_id)
                        .values(state=VersionState.rejected))
        session.commit()
