"""The artifact store: where model versions, training checkpoints and evaluation caches live.

One small interface, chosen by ``DISC_ARTIFACT_URL``:

- ``file:///path`` — a folder (the embedded default: ``DISC_ARTIFACT_DIR`` when no URL is set);
- ``s3://bucket/prefix`` — any S3-compatible object store, endpoint and credentials from the
  standard ``AWS_ENDPOINT_URL``, ``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``,
  ``AWS_DEFAULT_REGION`` (``store.s3_store``).

A key (``support-bot/v3-<job>``, ``.checkpoints/<job>/ckpt-000000010``) names one directory. It
is *committed* once its manifest — every file's size and sha256, and the directory's checksum —
is written: the manifest is written last, so a reader never sees a half-written key, and a key
without a manifest is garbage that ``delete`` removes. Nothing outside this module and its
backends builds a path or an object name for an artifact.

Small immutable values (the evaluation's reference answers, keyed by content) are plain
objects: ``put_bytes``/``get_bytes``/``list_names``.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import uuid
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from urllib.parse import urlparse

from store import storage
from store.settings import Settings

MANIFEST_NAME = storage.MANIFEST_NAME
MANIFEST_FORMAT = "disc-artifact-manifest/1"
CHECKPOINTS_PREFIX = ".checkpoints/"
EVAL_CACHE_PREFIX = ".eval-cache/evaluation/"


class StoreError(Exception):
    """The artifact store refused a request (bad configuration, missing bucket, no permission)."""


class StoreUnavailable(StoreError):
    """The artifact store could not be reached or answered with a server error: retry later."""


ArtifactMissing = storage.ArtifactMissing
ArtifactCorrupt = storage.ArtifactCorrupt


# --- keys --------------------------------------------------------------------------------------

def version_key(lineage_name: str, number: int, job_id: str) -> str:
    """The key of version ``number`` of a lineage (the ``artifact_uri`` recorded for it)."""
    return storage.version_relpath(lineage_name, number, job_id)


def checkpoints_prefix(job_id: str) -> str:
    return f"{CHECKPOINTS_PREFIX}{storage.safe_name(job_id)}/"


def check_key(key: str) -> str:
    """A key is a relative POSIX path without ``..``, empty or absolute parts."""
    parts = PurePosixPath(key).parts
    if not key or key.startswith("/") or not parts or any(p in ("..", ".", "") for p in parts):
        raise ArtifactMissing(f"artifact key {key!r} is not a relative path inside the store")
    return "/".join(parts)


# --- manifests ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class ManifestFile:
    path: str
    size: int
    sha256: str


@dataclass(frozen=True)
class Archive:
    """A stored tar.gz of the directory (S3 only), what a presigned download hands out."""
    name: str
    size: int
    sha256: str


@dataclass(frozen=True)
class Manifest:
    key: str
    directory_sha256: str
    files: tuple[ManifestFile, ...]
    archive: Archive | None = None
    created_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat())
    format: str = MANIFEST_FORMAT

    @property
    def total_bytes(self) -> int:
        return sum(f.size for f in self.files)

    def to_json(self) -> bytes:
        return json.dumps(asdict(self), indent=1, sort_keys=True).encode("utf-8")

    @classmethod
    def from_json(cls, data: bytes, key: str) -> Manifest:
        try:
            raw = json.loads(data)
            if raw.get("format") != MANIFEST_FORMAT:
                raise ValueError(f"format {raw.get('format')!r}")
            archive = raw.get("archive")
            return cls(key=raw["key"], directory_sha256=raw["directory_sha256"],
                       files=tuple(ManifestFile(**f) for f in raw["files"]),
                       archive=Archive(**archive) if archive else None,
                       created_at=raw["created_at"], format=raw["format"])
        except (ValueError, KeyError, TypeError) as exc:
            raise ArtifactCorrupt(f"the manifest of {key} is unreadable ({exc})") from exc

    @classmethod
    def of_directory(cls, key: str, root: Path, archive: Archive | None = None) -> Manifest:
        """Hash every file once: its own sha256 and its share of the directory checksum."""
        directory = hashlib.sha256()
        files = []
        for relative, full in storage.artifact_files(root):
            size = full.stat().st_size
            storage.update_directory_digest(directory, relative, size)
            own = hashlib.sha256()
            with full.open("rb") as handle:
                for block in iter(lambda: handle.read(storage.CHUNK_BYTES), b""):
                    own.update(block)
                    directory.update(block)
            files.append(ManifestFile(relative, size, own.hexdigest()))
        return cls(key=key, directory_sha256=directory.hexdigest(), files=tuple(files), archive=archive)

    def check_against(self, expected_sha256: str | None) -> None:
        if expected_sha256 is not None and self.directory_sha256 != expected_sha256:
            raise ArtifactCorrupt(f"artifact {self.key} has sha256 {self.directory_sha256[:12]}…, "
                                  f"but {expected_sha256[:12]}… was recorded")


def verify_files(root: Path, manifest: Manifest) -> None:
    """Raise ArtifactCorrupt unless ``root`` holds exactly the manifest's files with their hashes."""
    found = {relative: full for relative, full in storage.artifact_files(root)}
    listed = {f.path for f in manifest.files}
    if set(found) != listed:
        extra, missing = sorted(set(found) - listed), sorted(listed - set(found))
        raise ArtifactCorrupt(f"artifact {manifest.key}: files differ from its manifest "
                              f"(missing {missing[:3]}, unexpected {extra[:3]})")
    actual = Manifest.of_directory(manifest.key, root)
    if actual.files != manifest.files or actual.directory_sha256 != manifest.directory_sha256:
        bad = [f.path for f, g in zip(manifest.files, actual.files) if f != g]
        raise ArtifactCorrupt(f"artifact {manifest.key}: {', '.join(bad[:3]) or 'its files'} "
                              "do not match the manifest's sha256")


# --- results handed to callers ---------------------------------------------------------------

class Fetched:
    """A committed key's directory on local disk, valid until ``release`` (a cache entry stays
    pinned against eviction while held)."""

    def __init__(self, path: Path, manifest: Manifest | None, *, hit: bool = True, release=None):
        self.path = path
        self.manifest = manifest
        self.hit = hit
        self._release = release

    def release(self) -> None:
        if self._release is not None:
            self._release()
            self._release = None

    def __enter__(self) -> Fetched:
        return self

    def __exit__(self, *exc) -> None:
        self.release()


@dataclass
class Download:
    """How the API hands out a version: a URL to redirect to, or a stream of tar.gz bytes."""
    redirect_url: str | None = None
    chunks: Iterator[bytes] | None = None
    archive_sha256: str | None = None


# --- the interface -----------------------------------------------------------------------------

class ArtifactStore(ABC):
    url: str

    @abstractmethod
    def publish(self, source: str | os.PathLike, key: str, *, download_name: str | None = None) -> Manifest:
        """Copy a finished local directory to ``key`` and commit it (manifest last).

        Replaces whatever the key held (a half-upload of a dead attempt included). With
        ``download_name`` (a version, not a checkpoint), a backend that serves downloads by URL
        also stores the tar.gz, its top folder named so.
        """

    @abstractmethod
    def read_manifest(self, key: str) -> Manifest | None:
        """The committed manifest of ``key``; None if the key is not committed."""

    @abstractmethod
    def fetch(self, key: str, *, expected_sha256: str | None = None,
              into: str | os.PathLike | None = None) -> Fetched:
        """A committed key as a local directory whose bytes were checked against the manifest
        (and the recorded checksum, if given): the shared cache's copy, or a copy ``into`` a
        new directory the caller then owns."""

    @abstractmethod
    def verify(self, key: str, expected_sha256: str) -> Manifest | None:
        """Raise ArtifactMissing/ArtifactCorrupt unless ``key`` is committed, complete and
        matches ``expected_sha256``. Remote backends check the manifest and every object's size
        without reading the bytes (``fetch`` reads and hashes them)."""

    @abstractmethod
    def open_download(self, key: str, expected_sha256: str, *, filename: str) -> Download:
        """A verified version as a tar.gz: a stream, or a short-lived URL to redirect to."""

    @abstractmethod
    def delete(self, key: str) -> None:
        """Remove a key, committed or not: the manifest first, so readers stop seeing it at once."""

    @abstractmethod
    def list_keys(self, prefix: str) -> dict[str, bool]:
        """Keys one level under ``prefix`` ("<prefix><name>"), each with whether it is committed."""

    @abstractmethod
    def put_bytes(self, name: str, data: bytes) -> None:
        """Store a small value under ``name`` (overwriting it as a whole)."""

    @abstractmethod
    def get_bytes(self, name: str) -> bytes | None:
        """A value stored with ``put_bytes``; None if absent."""

    @abstractmethod
    def list_names(self, prefix: str) -> list[str]:
        """Names of the values stored under ``prefix``."""

    # -- shared behaviour ----------------------------------------------------------------------

    def delete_uncommitted(self, prefix: str) -> list[str]:
        """Remove every key under ``prefix`` that has no manifest (half-written by a dead writer)."""
        removed = [key for key, committed in self.list_keys(prefix).items() if not committed]
        for key in removed:
            self.delete(key)
        return removed

    def delete_prefix(self, prefix: str) -> None:
        for key in self.list_keys(prefix):
            self.delete(key)


# --- the local folder --------------------------------------------------------------------------

class LocalArtifactStore(ArtifactStore):
    """A folder (local disk, or one mounted by every process). The atomic rename of a staged
    directory that already holds its manifest is the commit; downloads stream from the folder."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)
        self.url = self.root.resolve().as_uri()

    def path(self, key: str) -> Path:
        return self.root / check_key(key)

    def publish(self, source, key, *, download_name=None) -> Manifest:
        source = Path(source)
        target = self.path(key)
        manifest = Manifest.of_directory(check_key(key), source)
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
        try:
            for relative, full in storage.artifact_files(source):
                destination = staging / relative
                destination.parent.mkdir(parents=True, exist_ok=True)
                link_or_copy(full, destination)
            (staging / MANIFEST_NAME).write_bytes(manifest.to_json())
            storage.fsync_tree(staging)
            if target.exists():
                self._retire(target)
            os.rename(staging, target)
            storage.fsync_dir(target.parent)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return manifest

    def _retire(self, target: Path) -> None:
        # Renamed aside before removal, so no reader sees a directory that is half deleted.
        aside = target.with_name(f".{target.name}-old-{uuid.uuid4().hex[:8]}")
        os.rename(target, aside)
        shutil.rmtree(aside, ignore_errors=True)

    def read_manifest(self, key) -> Manifest | None:
        directory = self.path(key)
        try:
            return Manifest.from_json((directory / MANIFEST_NAME).read_bytes(), key)
        except FileNotFoundError:
            if directory.is_dir() and not directory.name.startswith("."):
                # A directory written before manifests existed: the rename already committed it.
                return Manifest.of_directory(key, directory)
            return None

    def fetch(self, key, *, expected_sha256=None, into=None) -> Fetched:
        directory = self.path(key)
        if into is None:
            if expected_sha256 is not None:
                storage.verify_artifact(directory, expected_sha256)
            elif not directory.is_dir():
                raise ArtifactMissing(f"artifact {key} is not in the store")
            return Fetched(directory, None)
        manifest = self.read_manifest(key)
        if manifest is None:
            raise ArtifactMissing(f"artifact {key} is not in the store")
        manifest.check_against(expected_sha256)
        destination = Path(into)
        destination.mkdir(parents=True, exist_ok=True)
        for item in manifest.files:
            (destination / item.path).parent.mkdir(parents=True, exist_ok=True)
            link_or_copy(directory / item.path, destination / item.path)
        verify_files(destination, manifest)
        return Fetched(destination, manifest, hit=False)

    def verify(self, key, expected_sha256) -> Manifest | None:
        storage.verify_artifact(self.path(key), expected_sha256)
        return None

    def open_download(self, key, expected_sha256, *, filename) -> Download:
        directory = self.path(key)
        storage.verify_artifact(directory, expected_sha256)
        return Download(chunks=storage.iter_tar_gz(directory, arcname=filename))

    def delete(self, key) -> None:
        target = self.path(key)
        if target.exists():
            (target / MANIFEST_NAME).unlink(missing_ok=True)
            self._retire(target)

    def delete_prefix(self, prefix: str) -> None:
        super().delete_prefix(prefix)
        folder = self.root / prefix
        if prefix.endswith("/") and folder.is_dir() and not any(folder.iterdir()):
            folder.rmdir()  # a job's emptied checkpoint folder

    def list_keys(self, prefix) -> dict[str, bool]:
        base = self.root / prefix if prefix else self.root
        if not base.is_dir():
            return {}
        found = {}
        for child in sorted(base.iterdir()):
            if not child.is_dir() or child.name.startswith("."):
                continue  # staging directories of writers in progress are not keys yet
            # The rename of a staged directory that already holds its manifest is the commit,
            # so every directory under its final name is committed.
            found[f"{prefix}{child.name}"] = True
        return found

    def put_bytes(self, name, data) -> None:
        storage.write_bytes_atomically(self.path(name), data)

    def get_bytes(self, name) -> bytes | None:
        try:
            return self.path(name).read_bytes()
        except FileNotFoundError:
            return None

    def list_names(self, prefix) -> list[str]:
        base = self.root / prefix
        if not base.is_dir():
            return []
        return sorted(f"{prefix}{p.name}" for p in base.iterdir() if p.is_file() and not p.name.startswith("."))


def link_or_copy(source: Path, destination: Path) -> None:
    # A hard link costs nothing on one filesystem, and every file here is written once and never
    # modified in place (writers replace files by rename), so sharing the inode is safe.
    try:
        os.link(source, destination)
    except OSError:
        shutil.copyfile(source, destination)


# --- choosing a backend ------------------------------------------------------------------------

def _local(settings: Settings, parsed) -> ArtifactStore:
    if parsed.netloc not in ("", "localhost"):
        raise StoreError(f"file URLs name a local folder (file:///path); got host {parsed.netloc!r}")
    return LocalArtifactStore(Path(parsed.path))


def _s3(settings: Settings, parsed) -> ArtifactStore:
    from store.s3_store import S3ArtifactStore

    if not parsed.netloc:
        raise StoreError("an s3:// artifact URL needs a bucket: s3://bucket/prefix")
    return S3ArtifactStore(bucket=parsed.netloc, prefix=parsed.path.strip("/"), settings=settings)


BACKENDS = {"file": _local, "s3": _s3}

_stores: dict[tuple, ArtifactStore] = {}


def open_store(settings: Settings) -> ArtifactStore:
    """The store named by the settings; one instance (and S3 connection pool) per process and URL."""
    url = settings.artifact_store_url
    cache_key = (url, str(settings.cache_dir), settings.cache_max_bytes)
    if cache_key not in _stores:
        parsed = urlparse(url)
        try:
            backend = BACKENDS[parsed.scheme]
        except KeyError:
            raise StoreError(f"DISC_ARTIFACT_URL must start with one of "
                             f"{', '.join(s + '://' for s in BACKENDS)}; got {url!r}") from None
        _stores[cache_key] = backend(settings, parsed)
    return _stores[cache_key]
