"""SQLite (the embedded default) with two writers: a transaction that reads, then writes."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import text
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import sessionmaker

from store.db import begin_writing, make_engine


@pytest.fixture
def sessions(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'record.db'}")
    with engine.begin() as connection:
        connection.exec_driver_sql("CREATE TABLE counter (name TEXT PRIMARY KEY, value INTEGER)")
        connection.exec_driver_sql("INSERT INTO counter VALUES ('jobs', 0), ('beats', 0)")
    yield sessionmaker(bind=engine)
    engine.dispose()


def _bump(session, name: str) -> None:
    session.execute(text("UPDATE counter SET value = value + 1 WHERE name = :n"), {"n": name})


def test_a_deferred_reader_cannot_write_after_another_commit(sessions):
    # Why registration begins as a writer: WAL refuses to upgrade a stale read snapshot at once.
    with sessions() as registering, sessions() as heartbeat:
        registering.execute(text("SELECT value FROM counter WHERE name = 'jobs'")).scalar()
        _bump(heartbeat, "beats")
        heartbeat.commit()
        with pytest.raises(OperationalError, match="locked"):
            _bump(registering, "jobs")


def test_a_transaction_begun_writing_lets_the_other_writer_wait_instead(sessions):
    with sessions() as registering:
        begin_writing(registering)
        before = registering.execute(text("SELECT value FROM counter WHERE name = 'jobs'")).scalar()
        finished = threading.Event()

        def beat():
            with sessions() as heartbeat:
                _bump(heartbeat, "beats")   # waits for the write lock under the busy timeout
                heartbeat.commit()
            finished.set()

        thread = threading.Thread(target=beat)
        thread.start()
        assert not finished.wait(0.5)      # the heartbeat waits while registration holds the lock
        _bump(registering, "jobs")
        registering.commit()
        thread.join(timeout=30)
        assert finished.is_set()
    with sessions() as session:
        values = dict(session.execute(text("SELECT name, value FROM counter")).all())
    assert values == {"jobs": before + 1, "beats": 1}
