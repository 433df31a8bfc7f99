"""Alembic environment: the URL from store.settings (or the one the caller put on the config),
the metadata from store.models.

SQLite cannot ALTER most things in place, so migrations run in batch mode there (copy, alter,
swap); on PostgreSQL batch mode is a no-op.
"""

from __future__ import annotations

from alembic import context

from store.db import make_engine
from store.models import Base
from store.settings import get_settings, sqlalchemy_url

config = context.config
target_metadata = Base.metadata


def _url() -> str:
    return sqlalchemy_url(config.get_main_option("sqlalchemy.url") or get_settings().database_url)


def _configure(**kwargs) -> None:
    context.configure(target_metadata=target_metadata, render_as_batch=True, compare_type=True, **kwargs)


def run_migrations_offline() -> None:
    _configure(url=_url(), literal_binds=True, dialect_opts={"paramstyle": "named"})
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _configure(connection=connection)
        with context.begin_transaction():
            context.run_migrations()
        return
    engine = make_engine(_url())
    try:
        with engine.connect() as connection:
            _configure(connection=connection)
            with context.begin_transaction():
                context.run_migrations()
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
