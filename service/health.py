"""Readiness probes of the database and the broker; each answers "ok" or the reason it is not."""

from __future__ import annotations

import logging

from sqlalchemy import Engine, create_engine, text

from store.settings import Settings

log = logging.getLogger(__name__)
PROBE_TIMEOUT_S = 2


def check_database(engine: Engine) -> str:
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
        return "ok"
    except Exception as exc:
        log.warning("database not ready: %s", exc)
        return f"unreachable ({type(exc).__name__})"


def check_broker(settings: Settings) -> str:
    try:
        if settings.is_embedded_broker:
            # kombu's SQLAlchemy transport keeps its queue in a SQLite file: open it and query.
            engine = create_engine(settings.broker_url.removeprefix("sqla+"),
                                   connect_args={"timeout": PROBE_TIMEOUT_S})
            try:
                with engine.connect() as connection:
                    connection.execute(text("SELECT 1"))
            finally:
                engine.dispose()
        else:
            import redis

            client = redis.Redis.from_url(settings.broker_url, socket_timeout=PROBE_TIMEOUT_S,
                                          socket_connect_timeout=PROBE_TIMEOUT_S)
            try:
                client.ping()
            finally:
                client.close()
        return "ok"
    except Exception as exc:
        log.warning("broker not ready: %s", exc)
        return f"unreachable ({type(exc).__name__})"
