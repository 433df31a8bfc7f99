"""The migrations build exactly the schema the models describe, and can be undone and redone."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect

from store import migrate
from store.db import make_engine
from store.models import Base
from store.settings import Settings


def _drift(url: str) -> list:
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            return compare_metadata(context, Base.metadata)
    finally:
        engine.dispose()


def _tables(url: str) -> set[str]:
    engine = make_engine(url)
    try:
        return set(inspect(engine).get_table_names()) - {"alembic_version"}
    finally:
        engine.dispose()


def _round_trip(url: str) -> None:
    settings = Settings(database_url=url)
    with pytest.raises(migrate.DatabaseNotMigrated, match="disc db upgrade"):
        migrate.check_up_to_date(settings)

    migrate.upgrade(settings)
    assert _tables(url) == set(Base.metadata.tables)
    assert _drift(url) == []
    migrate.check_up_to_date(settings)

    migrate.downgrade(settings, "base")
    assert _tables(url) == set()
    assert migrate.current_revision(url) is None

    migrate.upgrade(settings)
    assert _drift(url) == []
    assert migrate.current_revision(url) == migrate.head_revision()


def test_postgres_upgrade_downgrade_upgrade_without_drift(postgres_url):
    _round_trip(postgres_url)


def test_sqlite_upgrade_downgrade_upgrade_without_drift(tmp_path):
    _round_trip(f"sqlite:///{tmp_path / 'disc.sqlite'}")
