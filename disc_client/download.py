"""Unpacking a downloaded artifact safely and checking it against the version's recorded checksum.

The archive is unpacked into a staging folder beside the destination and moved into place
only once its files hash to the ``artifact_sha256`` the service recorded when the version was
written, so a destination is either absent or a complete, verified artifact. Only regular
files and folders under the archive's one top folder are accepted: no links, devices,
absolute names or ``..``.
"""

from __future__ import annotations

import os
import shutil
import tarfile
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path, PurePosixPath

from disc_client.errors import ArtifactError, DestinationExists


def checked_members(archive: tarfile.TarFile) -> tuple[str, list[tarfile.TarInfo]]:
    """The archive's top folder and its members, refusing anything that could land outside it."""
    members = archive.getmembers()
    tops = set()
    for member in members:
        name = PurePosixPath(member.name)
        if name.is_absolute() or ".." in name.parts or not name.parts or "\\" in member.name:
            raise ArtifactError(f"the artifact archive holds an unsafe name {member.name!r}")
        if not (member.isreg() or member.isdir()):
            raise ArtifactError(f"the artifact archive holds {member.name!r}, which is not a plain file or folder")
        tops.add(name.parts[0])
    if len(tops) != 1:
        raise ArtifactError(f"the artifact archive should hold one top folder, not {len(tops)}")
    (top,) = tops
    return top, members


def prepare_destination(dest: Path) -> None:
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise DestinationExists(f"{dest} already exists and is not an empty folder")
    dest.parent.mkdir(parents=True, exist_ok=True)


@contextmanager
def staging_beside(dest: Path) -> Iterator[Path]:
    """A temporary folder on the destination's file system (so the final move is a rename)."""
    staging = Path(tempfile.mkdtemp(prefix=f".{dest.name}-", dir=dest.parent))
    try:
        yield staging
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def unpack_verified(archive_path: Path, staging: Path, expected_sha256: str) -> Path:
    """Unpack into ``staging`` and check the checksum; returns the unpacked artifact folder."""
    from store.storage import directory_sha256  # the one definition of an artifact's checksum

    unpacked = staging / "unpacked"
    try:
        with tarfile.open(archive_path, mode="r:gz") as archive:
            top, members = checked_members(archive)
            archive.extractall(unpacked, members=members, filter="data")
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise ArtifactError(f"the downloaded artifact is not a readable tar.gz: {exc}") from exc
    folder = unpacked / top
    actual = directory_sha256(folder)
    if actual != expected_sha256:
        raise ArtifactError(f"the downloaded artifact has sha256 {actual}, but the service recorded "
                            f"{expected_sha256}: refusing it")
    return folder


def move_into_place(folder: Path, dest: Path) -> None:
    if dest.exists():
        dest.rmdir()  # empty, checked by prepare_destination
    os.rename(folder, dest)
