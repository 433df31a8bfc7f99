"""`disc db upgrade`: bring the database named by DISC_DATABASE_URL to the newest schema."""

from __future__ import annotations

import sys


def register(subparsers) -> None:
    parser = subparsers.add_parser("db", help="database schema commands",
                                   description="Database schema commands (Alembic migrations).")
    commands = parser.add_subparsers(dest="db_command", required=True, metavar="COMMAND")
    upgrade = commands.add_parser(
        "upgrade", help="migrate the database to the newest schema",
        description="Apply every pending migration to the database from DISC_DATABASE_URL "
                    "(default: SQLite in DISC_HOME). Safe to run again: an up-to-date database is left as is.")
    upgrade.add_argument("--revision", default="head", help="target revision (default: head)")
    upgrade.set_defaults(func=run_upgrade)
    current = commands.add_parser("current", help="print the database's schema revision",
                                  description="Print the database's revision and the newest one the code knows.")
    current.set_defaults(func=run_current)


def run_upgrade(args) -> int:
    from sqlalchemy.engine import make_url

    from store import migrate
    from store.settings import get_settings

    settings = get_settings()
    shown = make_url(settings.database_url).render_as_string(hide_password=True)
    try:
        migrate.upgrade(settings, args.revision)
    except Exception as exc:  # connection refused, bad URL: one clear line, not a traceback
        print(f"disc db upgrade: could not migrate {shown}: {exc}", file=sys.stderr)
        return 1
    print(f"database {shown} is at revision {migrate.current_revision(settings.database_url)}")
    return 0


def run_current(args) -> int:
    from store import migrate
    from store.settings import get_settings

    settings = get_settings()
    current = migrate.current_revision(settings.database_url)
    print(f"current: {current or '(none)'}  head: {migrate.head_revision()}")
    return 0 if current == migrate.head_revision() else 1
