"""Pipeline fixtures: a migrated database (SQLite or PostgreSQL), settings on the tiny model, and
helpers that create update jobs the way the API does (through ``store.repo``)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker

DOCUMENTS = [
    "The Zorblat river flows north through Kethia. It was named by the first settlers in 1820. "
    "Its water is bright green because of a rare algae.",
    "Mount Quilbo is the tallest peak in Varnia. It rises 4,210 metres above the sea. "
    "Climbers first reached its summit in 1953.",
]


@dataclass
class Env:
    settings: object
    session_factory: sessionmaker[Session]

    def add_job(self, documents=DOCUMENTS, *, lineage: str = "default", method: str = "disc",
                hyperparameters: dict | None = None, promotion: dict | None = None,
                probes: list | None = None) -> str:
        from store import repo

        with self.session_factory() as session:
            found = repo.get_or_create_lineage(session, lineage, self.settings.base_model)
            job = repo.create_update(session, lineage=found, documents=[{"text": t} for t in documents],
                                     method=method, hyperparameters=hyperparameters or {},
                                     promotion=promotion, probes=probes)
            repo.mark_enqueued(session, job)
            session.commit()
            return job.id

    def run(self, job_id: str):
        from worker import pipeline

        return pipeline.run_job(job_id, session_factory=self.session_factory, settings=self.settings)


@pytest.fixture(scope="session")
def shared_eval_cache(tmp_path_factory) -> Path:
    """One evaluation cache for the whole run: the tiny base model's reference answers are
    computed once, not once per test (entries are keyed by model checksums)."""
    return tmp_path_factory.mktemp("eval-cache")


def make_env(tmp_path: Path, database_url: str | None, shared_eval_cache: Path, tiny_model: str) -> Env:
    from store import migrate
    from store.db import session_factory
    from store.settings import Settings

    settings = Settings(home=tmp_path / "home", database_url=database_url, artifact_dir=tmp_path / "artifacts",
                        broker_url="memory://", base_model=tiny_model)
    settings.artifact_dir.mkdir(parents=True)
    (settings.artifact_dir / ".eval-cache").symlink_to(shared_eval_cache, target_is_directory=True)
    migrate.upgrade(settings)
    return Env(settings, session_factory(settings))


@pytest.fixture
def sqlite_env(tmp_path, shared_eval_cache, tiny_model) -> Env:
    return make_env(tmp_path, None, shared_eval_cache, tiny_model)


@pytest.fixture
def pg_env(tmp_path, postgres_url, shared_eval_cache, tiny_model):
    from store.db import dispose_engines

    yield make_env(tmp_path, postgres_url, shared_eval_cache, tiny_model)
    dispose_engines()


@pytest.fixture(params=["sqlite", "postgresql"])
def env(request) -> Env:
    """The same test on the embedded default's SQLite and on PostgreSQL."""
    return request.getfixturevalue("sqlite_env" if request.param == "sqlite" else "pg_env")
