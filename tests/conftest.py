"""Fixtures shared by the whole suite: the tiny model, and throwaway PostgreSQL/Redis spaces.

Every test module that needs PostgreSQL gets a database of its own (created and dropped here),
so tests never share state through a live database.
"""

from __future__ import annotations

import os
import uuid

import pytest

# The tiny model is random: the product's update defaults (several epochs under a retention
# budget; disc_engine/options.py) would only slow the service and worker tests down, so their
# processes run one plain epoch. The defaults themselves run in tests/engine/test_budget.py and,
# on the real model, in tests/e2e/test_update_flow.py::test_update_on_the_default_model.
TEST_UPDATE_DEFAULTS = '{"epochs": 1, "retention_budget_kl": null}'
os.environ.setdefault("DISC_UPDATE_DEFAULTS", TEST_UPDATE_DEFAULTS)

POSTGRES_ADMIN_URL = os.environ.get("DISC_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_TEST_URL = os.environ.get("DISC_TEST_REDIS", "redis://127.0.0.1:6379")


@pytest.fixture(scope="session")
def tiny_model() -> str:
    """Name of the tiny random model (SmolLM2 tokenizer); built once and cached."""
    from disc_engine.models import TINY_MODEL, resolve_model_path

    resolve_model_path(TINY_MODEL)
    return TINY_MODEL


def _admin_execute(sql: str) -> None:
    import psycopg

    with psycopg.connect(POSTGRES_ADMIN_URL.replace("postgresql://", "postgresql://", 1), autocommit=True) as conn:
        conn.execute(sql)


@pytest.fixture
def postgres_url_factory():
    """Create fresh, empty PostgreSQL databases; all are dropped after the test."""
    created: list[str] = []

    def make() -> str:
        name = f"disc_test_{uuid.uuid4().hex[:12]}"
        _admin_execute(f'CREATE DATABASE "{name}"')
        created.append(name)
        return POSTGRES_ADMIN_URL.rsplit("/", 1)[0] + "/" + name

    yield make
    for name in created:
        _admin_execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def postgres_url(postgres_url_factory) -> str:
    """A fresh, empty PostgreSQL database for one test."""
    return postgres_url_factory()


@pytest.fixture
def redis_url() -> str:
    """A Redis logical database of its own (1..15, chosen at random), flushed before and after."""
    import random

    import redis

    url = f"{REDIS_TEST_URL}/{random.randint(1, 15)}"
    client = redis.Redis.from_url(url)
    client.flushdb()
    yield url
    client.flushdb()


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory):
    """A real S3 HTTP server (moto's, in its own process) shared by the session; tests use
    buckets of their own. Tests that stop or restart the store start a private one instead."""
    from tests.s3server import S3TestServer

    server = S3TestServer(tmp_path_factory.mktemp("s3"))
    server.start()
    yield server
    server.destroy()


@pytest.fixture
def s3_bucket(s3_server, monkeypatch) -> str:
    """A fresh bucket on the shared S3 server, with the AWS variables pointing at it."""
    for name, value in s3_server.environment().items():
        monkeypatch.setenv(name, value)
    bucket = f"disc-test-{uuid.uuid4().hex[:12]}"
    s3_server.client().create_bucket(Bucket=bucket)
    return bucket
