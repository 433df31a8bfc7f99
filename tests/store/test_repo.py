"""Repository functions on both databases the product runs on: PostgreSQL and SQLite."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from store import migrate, repo
from store.db import dispose_engines, get_engine, session_scope
from store.models import AliasHistory, JobStatus, VersionState
from store.settings import Settings


@pytest.fixture(params=["postgresql", "sqlite"])
def settings(request, tmp_path) -> Settings:
    if request.param == "postgresql":
        url = request.getfixturevalue("postgres_url")
    else:
        url = f"sqlite:///{tmp_path / 'disc.sqlite'}"
    settings = Settings(database_url=url, home=tmp_path)
    migrate.upgrade(settings)
    yield settings
    dispose_engines()


def add_version(session, lineage, state=VersionState.candidate, parent=None):
    return repo.create_version(session, lineage=lineage, parent=parent, job_id=None,
                               method="disc", base_model="base", artifact_kind="lora",
                               artifact_uri=f"{lineage.name}/v", artifact_sha256="0" * 64, state=state)


def test_sqlite_connections_use_wal_foreign_keys_and_busy_timeout(tmp_path):
    settings = Settings(home=tmp_path)
    with get_engine(settings).connect() as connection:
        assert connection.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert connection.execute(text("PRAGMA foreign_keys")).scalar() == 1
        assert connection.execute(text("PRAGMA busy_timeout")).scalar() >= 1000
    dispose_engines()


def test_create_update_is_one_unit_with_the_callers_transaction(settings):
    with session_scope(settings) as session:
        lineage = repo.get_or_create_lineage(session, "news", "base")
        job = repo.create_update(session, lineage=lineage, documents=[{"text": "a"}, {"text": "b", "id": "x"}],
                                 method="disc", idempotency_key="1:k", body_hash="h")
        session.rollback()  # nothing was committed by the repository itself
    with session_scope(settings) as session:
        assert repo.get_job(session, job.id) is None and repo.get_lineage(session, "news") is None
        lineage = repo.get_or_create_lineage(session, "news", "base")
        job = repo.create_update(session, lineage=lineage, documents=[{"text": "a"}], method="sft",
                                 idempotency_key="1:k", body_hash="h")
    with session_scope(settings) as session:
        found, body_hash = repo.find_idempotent_job(session, "1:k")
        assert found.id == job.id and body_hash == "h" and found.status == JobStatus.queued
        assert found.batch.documents[0].sha256 == repo.text_sha256("a")
        assert repo.find_idempotent_job(session, "1:other") is None


def test_move_alias_records_every_move_and_ignores_repeats(settings):
    with session_scope(settings) as session:
        lineage = repo.get_or_create_lineage(session, "news", "base")
        v1 = add_version(session, lineage)
        assert repo.latest_version(session, lineage) is None
        first = repo.move_alias(session, lineage, v1, reason="policy", actor="worker")
        assert first.from_version_id is None and v1.state == VersionState.promoted
        assert repo.move_alias(session, "news", v1, reason="policy") is None  # retried promotion
        v2 = add_version(session, lineage)
        repo.move_alias(session, "news", v2, reason="policy")
        repo.move_alias(session, lineage, v1, reason="manual", actor="ops")
    with session_scope(settings) as session:
        assert repo.latest_version(session, "news").number == 1
        moves = [(h.from_version_id, h.to_version_id, h.reason) for h in repo.alias_history(session, "news")]
        assert moves == [(None, v1.id, "policy"), (v1.id, v2.id, "policy"), (v2.id, v1.id, "manual")]


def test_move_alias_refuses_rejected_and_foreign_versions(settings):
    with session_scope(settings) as session:
        news = repo.get_or_create_lineage(session, "news", "base")
        other = repo.get_or_create_lineage(session, "other", "base")
        rejected = add_version(session, news, state=VersionState.rejected)
        foreign = add_version(session, other)
        with pytest.raises(repo.VersionRejected):
            repo.move_alias(session, news, rejected, reason="manual")
        with pytest.raises(ValueError, match="does not belong"):
            repo.move_alias(session, news, foreign, reason="manual")
        assert repo.count_rows(session, AliasHistory) == 0


def test_version_numbers_and_scores(settings):
    with session_scope(settings) as session:
        lineage = repo.get_or_create_lineage(session, "news", "base")
        v1 = add_version(session, lineage)
        v2 = add_version(session, lineage, parent=v1)
        repo.set_scores(session, v2, {"probe_accuracy": 0.25, "retention_kl_vs_parent": None})
        repo.set_scores(session, v2, {"probe_accuracy": 0.75})
    with session_scope(settings) as session:
        assert [v.number for v in repo.list_versions(session, "news")] == [1, 2]
        assert repo.get_version(session, "news", 2).parent_version_id == v1.id
        assert repo.version_scores(session, v2) == {"probe_accuracy": 0.75, "retention_kl_vs_parent": None}
        assert repo.list_versions(session, "nowhere") == [] and repo.get_version(session, "nowhere", 1) is None


def test_list_jobs_pages_newest_first_with_filters(settings):
    with session_scope(settings) as session:
        news = repo.get_or_create_lineage(session, "news", "base")
        other = repo.get_or_create_lineage(session, "other", "base")
        jobs = [repo.create_update(session, lineage=news if i % 2 == 0 else other, documents=[{"text": str(i)}],
                                   method="disc") for i in range(5)]
        jobs[0].status = JobStatus.failed
    with session_scope(settings) as session:
        first = repo.list_jobs(session, limit=2)
        second = repo.list_jobs(session, limit=2, cursor=first.next_cursor)
        third = repo.list_jobs(session, limit=2, cursor=second.next_cursor)
        ids = [j.id for page in (first, second, third) for j in page.items]
        assert ids == [j.id for j in reversed(jobs)] and third.next_cursor is None
        assert [j.id for j in repo.list_jobs(session, lineage="news").items] == [jobs[4].id, jobs[2].id, jobs[0].id]
        assert [j.id for j in repo.list_jobs(session, status=JobStatus.failed).items] == [jobs[0].id]
        with pytest.raises(repo.InvalidCursor):
            repo.list_jobs(session, cursor="%%%")


def test_api_keys_store_only_a_hash_and_can_be_revoked(settings):
    with session_scope(settings) as session:
        key, token = repo.create_api_key(session, name="ci", scopes=["jobs:read"], lineage="news")
        assert token not in (key.key_hash, key.prefix) and key.key_hash == repo.hash_api_key(token)
        with pytest.raises(ValueError, match="unknown scope"):
            repo.create_api_key(session, name="bad", scopes=["root"])
    with session_scope(settings) as session:
        assert repo.verify_api_key(session, token).lineage == "news"
        assert repo.verify_api_key(session, token + "x") is None
        repo.revoke_api_key(session, key.id)
    with session_scope(settings) as session:
        assert repo.verify_api_key(session, token) is None
