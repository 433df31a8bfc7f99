"""A real API server (uvicorn on a free port) over a fresh PostgreSQL database and Redis."""

from __future__ import annotations

from dataclasses import dataclass

import httpx
import pytest

from disc_cli.processes import free_port
from service.app import create_app
from store import migrate, repo
from store.db import dispose_engines, session_scope
from store.settings import Settings
from tests.service.server_helpers import run_server

ALL_SCOPES = list(repo.SCOPES)


@dataclass
class Api:
    url: str
    settings: Settings

    def key(self, scopes=ALL_SCOPES, lineage: str | None = None, name: str = "test") -> dict[str, str]:
        """Headers carrying a new API key with ``scopes`` (and a lineage restriction if given)."""
        with session_scope(self.settings) as session:
            _, token = repo.create_api_key(session, name=name, scopes=scopes, lineage=lineage)
        return {"Authorization": f"Bearer {token}"}

    def client(self, headers: dict[str, str] | None = None) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers=headers or {}, timeout=30)


@pytest.fixture
def service_settings(postgres_url, redis_url, tmp_path) -> Settings:
    settings = Settings(
        database_url=postgres_url, broker_url=redis_url, home=tmp_path, artifact_dir=tmp_path / "artifacts",
        public_url="http://api.test", max_documents_per_batch=5, max_document_chars=1000, max_batch_chars=3000,
        max_request_bytes=20_000, max_probes_per_batch=3)
    migrate.upgrade(settings)
    yield settings
    dispose_engines()


@pytest.fixture
def api(service_settings) -> Api:
    server, thread = run_server(create_app(service_settings), port := free_port())
    yield Api(f"http://127.0.0.1:{port}", service_settings)
    server.should_exit = True
    thread.join(timeout=10)
