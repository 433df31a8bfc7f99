"""The workers' local cache: keyed by checksum, bounded by size (least recently used out first),
one fill when several processes of a host ask at once, entries in use never evicted."""

from __future__ import annotations

import multiprocessing
import os
import time
from pathlib import Path

import pytest

from store.content_cache import ContentCache

A, B, C = ("a" * 64), ("b" * 64), ("c" * 64)


def _filler(size: int, calls: list | None = None):
    def fill(directory: Path) -> None:
        if calls is not None:
            calls.append(directory)
        (directory / "weights").write_bytes(b"x" * size)
    return fill


def test_entries_are_filled_once_then_hit(tmp_path):
    cache = ContentCache(tmp_path, max_bytes=10_000)
    calls = []
    first = cache.get(A, _filler(100, calls))
    second = cache.get(A, _filler(100, calls))
    assert len(calls) == 1 and first.path == second.path == tmp_path / "entries" / A
    assert (first.hit, second.hit) == (False, True) and cache.stats.hit_rate == 0.5
    first.release(), second.release()


def test_least_recently_used_entries_go_first_and_entries_in_use_stay(tmp_path):
    cache = ContentCache(tmp_path, max_bytes=250)
    cache.get(A, _filler(100)).release()
    time.sleep(0.01)
    pinned_b = cache.get(B, _filler(100))
    time.sleep(0.01)
    cache.get(A, _filler(100)).release()  # A is now the most recently used
    time.sleep(0.01)
    cache.get(C, _filler(100)).release()  # 300 bytes > 250: B is oldest but in use, so A goes
    assert sorted(p.name for p in (tmp_path / "entries").iterdir()) == [B, C]
    pinned_b.release()
    cache.get(A, _filler(100)).release()  # now B, unpinned and oldest, is evicted
    assert sorted(p.name for p in (tmp_path / "entries").iterdir()) == [A, C]
    assert cache.size_bytes() <= 250 and cache.stats.evicted == 2


def test_a_failed_fill_leaves_nothing(tmp_path):
    cache = ContentCache(tmp_path, max_bytes=1000)

    def broken(directory: Path) -> None:
        (directory / "half").write_bytes(b"x")
        raise OSError("download interrupted")

    with pytest.raises(OSError):
        cache.get(A, broken)
    assert not (tmp_path / "entries" / A).exists() and list((tmp_path / "staging").iterdir()) == []


def test_keys_must_be_checksums(tmp_path):
    with pytest.raises(ValueError):
        ContentCache(tmp_path, 10).get("../escape", _filler(1))


def _fetch_in_another_process(root: str, log: str, start: float) -> None:
    while time.time() < start:
        time.sleep(0.001)

    def slow_fill(directory: Path) -> None:
        with open(log, "a") as out:
            out.write(f"{os.getpid()}\n")
        time.sleep(0.5)  # long enough that the other process asks while this one fills
        (directory / "weights").write_bytes(b"y" * 10)

    entry = ContentCache(root, max_bytes=1000).get(A, slow_fill)
    assert (entry.path / "weights").read_bytes() == b"y" * 10
    entry.release()


def test_processes_of_one_host_fill_an_entry_once(tmp_path):
    log = tmp_path / "fills.log"
    start = time.time() + 1.0
    context = multiprocessing.get_context("spawn")
    processes = [context.Process(target=_fetch_in_another_process, args=(str(tmp_path / "cache"), str(log), start))
                 for _ in range(3)]
    for process in processes:
        process.start()
    for process in processes:
        process.join(timeout=60)
    assert [p.exitcode for p in processes] == [0, 0, 0]
    assert len(log.read_text().split()) == 1
