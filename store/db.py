"""Engines and sessions from the settings.

SQLite is the embedded default and is shared by two processes (API and worker): WAL lets a
reader proceed while the other process writes, ``busy_timeout`` makes a writer wait for the
lock instead of failing at once, and foreign keys are off in SQLite unless asked for.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from store.settings import Settings, get_settings

SQLITE_BUSY_TIMEOUT_MS = 30_000


def _configure_sqlite(dbapi_connection, _record) -> None:
    # pysqlite opens transactions lazily and commits on its own around SAVEPOINT, which breaks
    # nested transactions; hand transaction control to SQLAlchemy (see _begin_sqlite).
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


# The execution option that makes a session's next SQLite transaction take the write lock at
# BEGIN (``begin_writing``).
SQLITE_BEGIN_OPTION = "sqlite_begin"


def _begin_sqlite(connection) -> None:
    # Deferred BEGIN by default: a transaction that only reads never blocks the other process.
    mode = connection.get_execution_options().get(SQLITE_BEGIN_OPTION, "")
    connection.exec_driver_sql(f"BEGIN {mode}".strip())


def begin_writing(session: Session) -> None:
    """Start ``session``'s next transaction as a writer. On SQLite (WAL) a deferred transaction
    that read first cannot upgrade to a write once another connection has committed since its
    read: that fails at once with "database is locked", busy timeout or not. BEGIN IMMEDIATE
    takes the write lock first, waiting for it under the busy timeout. Elsewhere, nothing."""
    if session.get_bind().dialect.name == "sqlite":
        session.rollback()
        session.connection(execution_options={SQLITE_BEGIN_OPTION: "IMMEDIATE"})


def make_engine(url: str) -> Engine:
    """An engine for ``url``; for SQLite the folder is created and the pragmas set on every connection."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": SQLITE_BUSY_TIMEOUT_MS / 1000})
        event.listen(engine, "connect", _configure_sqlite)
        event.listen(engine, "begin", _begin_sqlite)
        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=20)


_engines: dict[str, Engine] = {}


def get_engine(settings: Settings | None = None) -> Engine:
    """One shared engine per database URL in this process."""
    url = (settings or get_settings()).database_url
    if url not in _engines:
        _engines[url] = make_engine(url)
    return _engines[url]


def session_factory(settings: Settings | None = None) -> sessionmaker[Session]:
    # expire_on_commit=False: objects stay readable after commit (the API answers from them).
    return sessionmaker(bind=get_engine(settings), expire_on_commit=False)


@contextmanager
def session_scope(settings: Settings | None = None) -> Iterator[Session]:
    """A session that commits on success and rolls back on any exception."""
    session = session_factory(settings)()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


def dispose_engines() -> None:
    """Close every pooled connection (tests dropping databases, forked worker processes)."""
    while _engines:
        _engines.popitem()[1].dispose()
