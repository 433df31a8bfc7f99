"""A worker host's local cache of fetched directories, keyed by their checksum.

Layout under the cache folder::

    entries/<sha256>/     one complete directory (a parent adapter, a checkpoint's base…)
    locks/<sha256>.lock   flock: shared while a process uses the entry, exclusive to fill or evict it
    staging/              fills in progress (renamed into entries/ when complete)
    cache.lock            flock: exclusive while evicting

Several worker processes of one host may share the folder: a fill happens once (the others wait
on the entry's lock and then find it), and an entry in use (a shared lock held) is never
evicted. The bound is on the sum of entries' sizes; the least recently used (oldest mtime of the
entry directory, touched on every use) go first.
"""

from __future__ import annotations

import fcntl
import os
import re
import shutil
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

_SHA256 = re.compile(r"^[0-9a-f]{64}$")


@dataclass
class CacheStats:
    hits: int = 0
    misses: int = 0
    evicted: int = 0

    @property
    def hit_rate(self) -> float | None:
        total = self.hits + self.misses
        return self.hits / total if total else None


class CacheEntry:
    """A pinned entry: its directory stays until ``release``."""

    def __init__(self, path: Path, handle, hit: bool):
        self.path = path
        self.hit = hit
        self._handle = handle

    def release(self) -> None:
        if self._handle is not None:
            fcntl.flock(self._handle, fcntl.LOCK_UN)
            self._handle.close()
            self._handle = None


class ContentCache:
    def __init__(self, root: str | os.PathLike, max_bytes: int):
        self.root = Path(root)
        self.max_bytes = max_bytes
        self.stats = CacheStats()
        self._lock = threading.Lock()

    def _entry(self, sha256: str) -> Path:
        if not _SHA256.match(sha256):
            raise ValueError(f"cache keys are sha256 hex digests; got {sha256!r}")
        return self.root / "entries" / sha256

    def _lock_file(self, sha256: str):
        path = self.root / "locks" / f"{sha256}.lock"
        path.parent.mkdir(parents=True, exist_ok=True)
        return open(path, "a+")

    def get(self, sha256: str, fill: Callable[[Path], None], *, count: bool = True) -> CacheEntry:
        """The entry for ``sha256``, filled by ``fill(empty_directory)`` if absent.

        ``fill`` must leave a complete, verified directory (or raise: nothing is kept). With
        ``count=False`` (a writer seeding the cache) the use is left out of the hit statistics.
        """
        entry = self._entry(sha256)
        handle = self._lock_file(sha256)
        try:
            fcntl.flock(handle, fcntl.LOCK_SH)
            if entry.is_dir():
                return self._pinned(entry, handle, hit=True, count=count)
            # Absent: take the entry's lock exclusively to fill it (or find another process did).
            fcntl.flock(handle, fcntl.LOCK_EX)
            if not entry.is_dir():
                self._fill(entry, fill)
                hit = False
            else:
                hit = True
            fcntl.flock(handle, fcntl.LOCK_SH)
            pinned = self._pinned(entry, handle, hit=hit, count=count)
        except BaseException:
            handle.close()
            raise
        if not hit:
            self.evict(keep=sha256)
        return pinned

    def _pinned(self, entry: Path, handle, hit: bool, count: bool = True) -> CacheEntry:
        os.utime(entry)  # least recently used = oldest mtime
        if count:
            with self._lock:
                if hit:
                    self.stats.hits += 1
                else:
                    self.stats.misses += 1
        return CacheEntry(entry, handle, hit)

    def _fill(self, entry: Path, fill: Callable[[Path], None]) -> None:
        staging_root = self.root / "staging"
        staging_root.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f"{entry.name[:12]}-", dir=staging_root))
        try:
            fill(staging)
            entry.parent.mkdir(parents=True, exist_ok=True)
            os.rename(staging, entry)
        finally:
            shutil.rmtree(staging, ignore_errors=True)

    def size_bytes(self) -> int:
        return sum(size for _, size, _ in self._entries())

    def _entries(self) -> list[tuple[Path, int, float]]:
        root = self.root / "entries"
        if not root.is_dir():
            return []
        found = []
        for entry in root.iterdir():
            try:
                mtime = entry.stat().st_mtime
                size = sum(f.stat().st_size for f in entry.rglob("*") if f.is_file())
            except FileNotFoundError:
                continue  # evicted by another process meanwhile
            found.append((entry, size, mtime))
        return found

    def evict(self, keep: str | None = None) -> int:
        """Remove least recently used entries not in use until the cache fits its bound."""
        self.root.mkdir(parents=True, exist_ok=True)
        evicted = 0
        with open(self.root / "cache.lock", "a+") as guard:
            fcntl.flock(guard, fcntl.LOCK_EX)
            entries = sorted(self._entries(), key=lambda e: e[2])
            total = sum(size for _, size, _ in entries)
            for entry, size, _ in entries:
                if total <= self.max_bytes:
                    break
                if entry.name == keep:
                    continue
                handle = self._lock_file(entry.name)
                try:
                    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    handle.close()
                    continue  # in use by a job of this host
                try:
                    doomed = self.root / "staging" / f"evicted-{entry.name[:12]}-{time.monotonic_ns()}"
                    doomed.parent.mkdir(parents=True, exist_ok=True)
                    os.rename(entry, doomed)
                    shutil.rmtree(doomed, ignore_errors=True)
                    total -= size
                    evicted += 1
                finally:
                    fcntl.flock(handle, fcntl.LOCK_UN)
                    handle.close()
        with self._lock:
            self.stats.evicted += evicted
        return evicted
