"""Durable, all-or-nothing writes: the one home of write-to-a-temporary-then-rename.

Standard library only, in the lowest layer, so the engine (artifacts, merges, checkpoints, the
evaluation cache) and the store (storage, the artifact store) publish files the same way: a
reader sees the old content or the new, never a part, and a crash leaves at most a hidden
staging entry beside the target.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def fsync_dir(directory: str | os.PathLike) -> None:
    """Make a rename or a new entry in ``directory`` durable."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_tree(root: str | os.PathLike) -> None:
    """Flush every file and folder under ``root`` to disk (before the rename that publishes it)."""
    for directory, _, files in os.walk(root):
        for name in files:
            fd = os.open(os.path.join(directory, name), os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        fsync_dir(directory)


def write_bytes_atomically(path: str | os.PathLike, data: bytes) -> None:
    """Write a file so that readers see the old content or the new one, never a part."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, staging = tempfile.mkstemp(prefix=f".{target.name}-", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(staging, target)
        fsync_dir(target.parent)
    except BaseException:
        Path(staging).unlink(missing_ok=True)
        raise


def write_text_atomically(path: str | os.PathLike, text: str) -> None:
    write_bytes_atomically(path, text.encode("utf-8"))


@contextmanager
def atomic_directory(target: str | os.PathLike, *, replace: str = "never") -> Iterator[Path]:
    """Yield an empty staging directory beside ``target``; on success it is flushed and renamed
    to ``target``. On an exception it is removed and ``target`` is left untouched.

    ``replace``: ``"never"`` (the target must not exist: artifacts are immutable once written),
    ``"empty"`` (an existing empty folder is taken over, e.g. one a caller created for ``--out``)
    or ``"always"`` (an existing target is removed first; for checkpoints, which a rerun rewrites).
    """
    final = Path(target)
    if final.exists() and not (replace == "always" or (replace == "empty" and final.is_dir()
                                                        and not any(final.iterdir()))):
        raise FileExistsError(f"{final} already exists" + (" and is not empty" if replace == "empty" else ""))
    final.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{final.name}-", dir=final.parent))
    try:
        yield staging
        fsync_tree(staging)
        if final.exists():
            if replace == "always":
                shutil.rmtree(final)
            else:
                final.rmdir()
        os.rename(staging, final)
        fsync_dir(final.parent)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
