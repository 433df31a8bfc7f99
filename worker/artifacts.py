"""A job's files: a private scratch folder on this host, and the shared artifact store.

A worker trains into its own scratch folder (``DISC_WORK_DIR/jobs/<job>-attempt-<n>``) and
shares work with other hosts only through the artifact store (``store.artifact_store``): each checkpoint is
published as it is written, so a job whose worker died resumes on any machine; the finished
version is published (manifest last) before it is registered, so the record never names an
artifact that is not complete in the store; parents are fetched through the host's
content-addressed cache. Nothing else in the worker builds an artifact path.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

from store import storage
from store.artifact_store import (
    EVAL_CACHE_PREFIX,
    ArtifactStore,
    Fetched,
    Manifest,
    checkpoints_prefix,
    open_store,
    version_key,
)
from store.settings import Settings

log = logging.getLogger("disc.worker")

EVAL_CACHE_ROOT = EVAL_CACHE_PREFIX.removesuffix("evaluation/")


class PrefixedValues:
    """The store's small values under one prefix: what the evaluation's cache reads and writes."""

    def __init__(self, store: ArtifactStore, prefix: str):
        self.store = store
        self.prefix = prefix

    def get_bytes(self, name: str) -> bytes | None:
        return self.store.get_bytes(self.prefix + name)

    def put_bytes(self, name: str, data: bytes) -> None:
        self.store.put_bytes(self.prefix + name, data)


def evaluation_cache(settings: Settings) -> PrefixedValues:
    """Reference answers of parents and bases, shared by every worker through the store."""
    return PrefixedValues(open_store(settings), EVAL_CACHE_ROOT)


class JobArtifacts:
    """Where one job's artifacts are made, shared and cleaned up."""

    def __init__(self, settings: Settings, job_id: str, attempt: int | None = None):
        self.settings = settings
        self.job_id = job_id
        self.store = open_store(settings)
        # One folder per attempt: a superseded attempt still running on this host never shares
        # files with its successor.
        self.jobs_dir = Path(settings.work_dir) / "jobs"
        self.scratch = self.jobs_dir / f"{storage.safe_name(job_id)}-attempt-{attempt or 0}"

    # -- the parent ------------------------------------------------------------------------------

    def fetch_parent(self, key: str, sha256: str) -> Fetched:
        """The parent version's directory on this host, checked against its recorded checksum
        (ArtifactMissing / ArtifactCorrupt otherwise). Release it when the job is done."""
        return self.store.fetch(key, expected_sha256=sha256)

    # -- checkpoints -----------------------------------------------------------------------------

    @property
    def checkpoint_dir(self) -> Path:
        return self.scratch / "checkpoints"

    def restore_checkpoint(self) -> str | None:
        """Bring the job's newest committed checkpoint from the store into the local checkpoint
        folder (replacing whatever a dead attempt left here); returns its name, if any."""
        shutil.rmtree(self.checkpoint_dir, ignore_errors=True)
        self.checkpoint_dir.mkdir(parents=True, exist_ok=True)
        committed = sorted(key for key, done in self.store.list_keys(checkpoints_prefix(self.job_id)).items()
                           if done)
        if not committed:
            return None
        newest = committed[-1]
        name = newest.rsplit("/", 1)[-1]
        self.store.fetch(newest, into=self.checkpoint_dir / name)
        return name

    def share_checkpoint(self, directory: Path) -> None:
        """Publish a checkpoint the trainer just wrote, then drop the older ones from the store."""
        prefix = checkpoints_prefix(self.job_id)
        key = prefix + directory.name
        self.store.publish(directory, key)
        for older in self.store.list_keys(prefix):
            if older < key:
                self.store.delete(older)

    # -- the new version -------------------------------------------------------------------------

    def output_dir(self) -> Path:
        """An empty folder the trainer writes the new version into."""
        out = self.scratch / "version"
        storage.remove_tree(out)
        self.scratch.mkdir(parents=True, exist_ok=True)
        return out

    def publish_version(self, directory: str | Path, lineage_name: str, number: int) -> tuple[str, Manifest]:
        """Copy the finished version into the store and commit it; returns its key and manifest.
        The key is what the record names; the manifest's checksum is the one it records."""
        key = version_key(lineage_name, number, self.job_id)
        manifest = self.store.publish(directory, key, download_name=f"{storage.safe_name(lineage_name)}-v{number}")
        return key, manifest

    def discard_version(self, key: str) -> None:
        """Remove a published version nobody registered."""
        try:
            self.store.delete(key)
        except Exception:
            log.exception("job %s: could not remove unregistered version %s; cleanup retries it", self.job_id, key)

    # -- cleanup ---------------------------------------------------------------------------------

    def remove_scratch(self) -> None:
        storage.remove_tree(self.scratch)

    def remove_all(self, lineage_name: str | None, keep: str | None = None) -> None:
        """Checkpoints, scratch files (of every attempt on this host) and every version key of
        this job except ``keep`` (the one registered, if any) — what a finished, failed or
        cancelled job leaves behind."""
        for folder in self.jobs_dir.glob(f"{storage.safe_name(self.job_id)}-attempt-*"):
            storage.remove_tree(folder)
        self.store.delete_prefix(checkpoints_prefix(self.job_id))
        if lineage_name is None:
            return
        lineage_prefix = storage.safe_name(lineage_name) + "/"
        for key in self.store.list_keys(lineage_prefix):
            if key.endswith(f"-{self.job_id}") and key != keep:
                self.store.delete(key)
