"""Schema migrations from code: `disc db upgrade`, the start-up check of `disc serve`, tests.

The Alembic scripts live in ``migrations/`` at the repository root; the configuration is built
here rather than read from alembic.ini, so these work from any working directory.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from store.db import make_engine
from store.settings import Settings, get_settings

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"


class DatabaseNotMigrated(RuntimeError):
    pass


def alembic_config(database_url: str | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    url = database_url or get_settings().database_url
    # ConfigParser interpolation: a literal % in a password must be doubled.
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def upgrade(settings: Settings | None = None, revision: str = "head") -> None:
    command.upgrade(alembic_config((settings or get_settings()).database_url), revision)


def downgrade(settings: Settings | None = None, revision: str = "base") -> None:
    command.downgrade(alembic_config((settings or get_settings()).database_url), revision)


def head_revision() -> str:
    return ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()


def current_revision(database_url: str) -> str | None:
    engine = make_engine(database_url)
    try:
        with engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()
    finally:
        engine.dispose()


def check_up_to_date(settings: Settings | None = None) -> None:
    """Raise DatabaseNotMigrated unless the database is at the newest revision."""
    url = (settings or get_settings()).database_url
    current, head = current_revision(url), head_revision()
    if current != head:
        state = "has no schema" if current is None else f"is at revision {current}, the code expects {head}"
        raise DatabaseNotMigrated(f"the database {_safe(url)} {state}: run `disc db upgrade`")


def _safe(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)
