"""The lineage lock: one job at a time adds the next version to a lineage, so it never forks."""

from __future__ import annotations

import fcntl
import time
from collections.abc import Callable

from sqlalchemy import select
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from store import storage
from store.models import Lineage
from store.settings import Settings
from worker.outcomes import JobCancelled

LOCK_POLL_S = 1.0


class LineageLock:
    """Exclusive right to add the next version to one lineage, for one job at a time.

    PostgreSQL: ``SELECT … FOR NO KEY UPDATE`` on the lineage row, held by a session of its own
    until the new version is committed in that same transaction. NO KEY UPDATE (not FOR UPDATE)
    because inserting a row that references the lineage (a new job, the new version) takes a
    KEY SHARE lock, which FOR UPDATE would block: the API could not accept updates for a lineage
    that is training, and the registering transaction would wait on itself.
    SQLite: an exclusive ``flock`` on a file beside the artifacts (one machine, many processes);
    a write transaction would lock the whole database for the length of the training.
    Waiting polls, so a cancellation ends the wait.
    """

    def __init__(self, session_factory: sessionmaker[Session], settings: Settings, lineage_id: int,
                 should_stop: Callable[[], bool]):
        self.session_factory = session_factory
        self.settings = settings
        self.lineage_id = lineage_id
        self.should_stop = should_stop
        self.session: Session | None = None
        self._file = None

    def __enter__(self) -> LineageLock:
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()

    @property
    def on_postgresql(self) -> bool:
        return self.session_factory.kw["bind"].dialect.name == "postgresql"

    def acquire(self) -> None:
        while True:
            if self._try_acquire():
                return
            if self.should_stop():
                raise JobCancelled()
            time.sleep(LOCK_POLL_S)

    def _try_acquire(self) -> bool:
        if self.on_postgresql:
            session = self.session_factory()
            try:
                session.execute(select(Lineage.id).where(Lineage.id == self.lineage_id)
                                .with_for_update(key_share=True, nowait=True))
            except OperationalError as exc:
                session.rollback()
                session.close()
                if getattr(exc.orig, "sqlstate", None) == "55P03":  # lock_not_available
                    return False
                raise
            self.session = session
            return True
        path = storage.lock_path(self.settings, f"lineage-{self.lineage_id}")
        path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(path, "a+")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            return False
        self._file = handle
        # Registration happens in a session of its own on SQLite; the file lock spans it.
        self.session = self.session_factory()
        return True

    def release(self) -> None:
        if self.session is not None:
            self.session.rollback()
            self.session.close()
            self.session = None
        if self._file is not None:
            fcntl.flock(self._file, fcntl.LOCK_UN)
            self._file.close()
            self._file = None
