"""Helpers of artifact storage: names, checksums, atomic writes, the streamed tar.gz, and the
layout of the local artifact folder (``DISC_ARTIFACT_DIR``), which ``store.artifact_store``'s
local backend uses and tests inspect. Everything that reads or writes artifacts goes through
``store.artifact_store``.

Layout under the artifact folder (the same keys name objects in an S3 store)::

    <lineage>/v<n>-<job id>/      one model version's artifact (never overwritten)
    .checkpoints/<job id>/        training checkpoints, so a redelivered job resumes
    .eval-cache/                  evaluation caches shared by jobs (base-model answers)
    .locks/                       lock files serialising jobs of one lineage on SQLite

(``.locks/`` only on the embedded default's SQLite; ``.checkpoints/<job>/ckpt-N`` are keys.)
The database stores an artifact's key, so no process depends on where another keeps its files,
and its sha256 (``directory_sha256``) so that a reader can tell a complete artifact from a
damaged one.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import tarfile
import zlib
from collections.abc import Iterator
from pathlib import Path, PurePosixPath

# Atomic writes have one definition, in the engine's torch-free ``disc_engine.files``; the store's
# callers use them from here.
from disc_engine.files import (  # noqa: F401
    atomic_directory,
    fsync_dir,
    fsync_tree,
    write_bytes_atomically,
    write_text_atomically,
)
from store.settings import Settings

CHUNK_BYTES = 1 << 20
# Written beside an artifact's files by the artifact store (``store.artifact_store``); it
# describes the files and is not one of them, so checksums and archives leave it out.
MANIFEST_NAME = ".disc-manifest.json"
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


class ArtifactCorrupt(Exception):
    """An artifact's files do not match the checksum recorded for it."""


class ArtifactMissing(ArtifactCorrupt):
    """An artifact recorded in the database is not on disk."""


# -- paths -------------------------------------------------------------------------------------

def artifact_root(settings: Settings) -> Path:
    return Path(settings.artifact_dir)


def safe_name(name: str) -> str:
    """A lineage name as one path component: no separators, no leading dots."""
    cleaned = _UNSAFE.sub("_", name).lstrip(".")
    return cleaned or "_"


def version_relpath(lineage_name: str, number: int, job_id: str) -> str:
    """Where version ``number`` of a lineage lives, relative to the artifact folder (the stored URI)."""
    return f"{safe_name(lineage_name)}/v{number}-{job_id}"


def resolve_artifact(settings: Settings, uri: str) -> Path:
    """The directory for a stored artifact URI (relative to the artifact folder, or absolute)."""
    path = Path(uri)
    if path.is_absolute():
        return path
    relative = PurePosixPath(uri)
    if ".." in relative.parts:
        raise ArtifactMissing(f"artifact URI {uri!r} points outside the artifact folder")
    return artifact_root(settings) / relative


def checkpoint_dir(settings: Settings, job_id: str) -> Path:
    return artifact_root(settings) / ".checkpoints" / job_id


def lock_path(settings: Settings, name: str) -> Path:
    return artifact_root(settings) / ".locks" / f"{safe_name(name)}.lock"


# -- checksums ---------------------------------------------------------------------------------

def artifact_files(root: Path) -> list[tuple[str, Path]]:
    """(relative POSIX name, path) of every file of an artifact directory, in name order."""
    found = []
    for directory, subdirs, files in os.walk(root):
        subdirs.sort()
        for name in files:
            full = Path(directory) / name
            relative = full.relative_to(root).as_posix()
            if relative != MANIFEST_NAME:
                found.append((relative, full))
    return sorted(found)


def update_directory_digest(digest, relative: str, size: int) -> None:
    """Feed one file's name and size to a directory digest; its bytes follow."""
    encoded = relative.encode("utf-8")
    digest.update(len(encoded).to_bytes(4, "big"))
    digest.update(encoded)
    digest.update(size.to_bytes(8, "big"))


def directory_sha256(path: str | os.PathLike) -> str:
    """sha256 over every file of a directory: relative POSIX name, size and bytes, in name order.

    Names and sizes are part of the digest so that renaming a file, or moving bytes from one
    file to the next, changes it.
    """
    root = Path(path)
    if not root.is_dir():
        raise ArtifactMissing(f"artifact directory {root} does not exist")
    digest = hashlib.sha256()
    for relative, full in artifact_files(root):
        update_directory_digest(digest, relative, full.stat().st_size)
        with full.open("rb") as handle:
            for block in iter(lambda: handle.read(CHUNK_BYTES), b""):
                digest.update(block)
    return digest.hexdigest()


def verify_artifact(path: str | os.PathLike, expected_sha256: str) -> None:
    """Raise ``ArtifactMissing``/``ArtifactCorrupt`` unless the directory hashes to ``expected_sha256``."""
    actual = directory_sha256(path)
    if actual != expected_sha256:
        raise ArtifactCorrupt(
            f"artifact {path} has sha256 {actual[:12]}…, but {expected_sha256[:12]}… was recorded")




def remove_tree(path: str | os.PathLike) -> None:
    """Remove a directory if present (artifacts of cancelled or failed jobs, finished checkpoints)."""
    shutil.rmtree(path, ignore_errors=True)


# -- download ----------------------------------------------------------------------------------

_BLOCK = tarfile.BLOCKSIZE


def iter_tar_gz(path: str | os.PathLike, *, arcname: str | None = None) -> Iterator[bytes]:
    """Stream a gzip-compressed tar of a directory, chunk by chunk, without a temporary file.

    Memory stays at about one read chunk however large the weights are; members are stored under
    ``arcname`` (default: the directory's name) in name order with fixed owner and mode, so the
    same directory always gives the same archive members.
    """
    root = Path(path)
    if not root.is_dir():
        raise ArtifactMissing(f"artifact directory {root} does not exist")
    prefix = arcname if arcname is not None else root.name
    compressor = zlib.compressobj(6, zlib.DEFLATED, 31)  # wbits 31: gzip container

    def emit(data: bytes) -> bytes:
        return compressor.compress(data)

    def header(name: str, *, size: int = 0, directory: bool = False, mtime: float = 0) -> bytes:
        info = tarfile.TarInfo(name)
        info.size = size
        info.mtime = int(mtime)
        info.mode = 0o755 if directory else 0o644
        info.type = tarfile.DIRTYPE if directory else tarfile.REGTYPE
        info.uid = info.gid = 0
        info.uname = info.gname = ""
        return info.tobuf(format=tarfile.PAX_FORMAT)

    out = emit(header(prefix, directory=True, mtime=root.stat().st_mtime))
    if out:
        yield out
    for relative, full in artifact_files(root):
        stat = full.stat()
        pending = [emit(header(f"{prefix}/{relative}", size=stat.st_size, mtime=stat.st_mtime))]
        written = 0
        with full.open("rb") as handle:
            for block in iter(lambda: handle.read(CHUNK_BYTES), b""):
                written += len(block)
                pending.append(emit(block))
                chunk = b"".join(pending)
                pending = []
                if chunk:
                    yield chunk
        if written != stat.st_size:
            raise ArtifactCorrupt(f"{full} changed size while it was being archived")
        remainder = written % _BLOCK
        if remainder:
            pending.append(emit(b"\0" * (_BLOCK - remainder)))
        chunk = b"".join(pending)
        if chunk:
            yield chunk
    # Two zero blocks mark the end of a tar archive.
    tail = emit(b"\0" * (2 * _BLOCK)) + compressor.flush()
    yield tail
