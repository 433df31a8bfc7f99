"""API keys: 401 without a valid key, 403 without the scope, lineage-limited keys stay in their lineage."""

from __future__ import annotations

import httpx
import pytest

from disc_cli.processes import free_port
from service.app import UnsafeConfiguration, create_app
from store import migrate, repo
from store.db import dispose_engines, session_scope
from store.settings import Settings
from tests.service.server_helpers import run_server

DOC = {"documents": [{"text": "A fact."}]}


def test_missing_and_invalid_keys_are_401(api):
    with api.client() as client:
        missing = client.get("/jobs")
        wrong_scheme = client.get("/jobs", headers={"Authorization": "Basic abc"})
        invalid = client.get("/jobs", headers={"Authorization": "Bearer disc_nope"})
        post = client.post("/updates", json=DOC)
    for response in (missing, wrong_scheme, invalid, post):
        assert response.status_code == 401
        assert response.json()["error"]["code"] == "unauthorized"
        assert response.headers["www-authenticate"] == "Bearer"


def test_revoked_key_is_401(api):
    headers = api.key()
    with session_scope(api.settings) as session:
        key = repo.verify_api_key(session, headers["Authorization"].split()[1])
        repo.revoke_api_key(session, key.id)
    with api.client(headers) as client:
        assert client.get("/jobs").status_code == 401


def test_a_key_revoked_while_in_use_stops_working_within_the_cache_lifetime(service_settings):
    import time

    settings = service_settings.model_copy(update={"api_key_cache_s": 1.0})
    server, thread = run_server(create_app(settings), port := free_port())
    try:
        with session_scope(settings) as session:
            key, token = repo.create_api_key(session, name="short-lived", scopes=["jobs:read"])
            session.flush()
            key_id = key.id
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30,
                          headers={"Authorization": f"Bearer {token}"}) as client:
            assert client.get("/jobs").status_code == 200   # verified once, then remembered
            with session_scope(settings) as session:
                repo.revoke_api_key(session, key_id)
            revoked_at = time.monotonic()
            while client.get("/jobs").status_code == 200:
                assert time.monotonic() - revoked_at < settings.api_key_cache_s + 0.5, \
                    "a revoked key kept working past the cache lifetime"
                time.sleep(0.05)
            assert client.get("/jobs").json()["error"]["code"] == "unauthorized"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def test_missing_scope_is_403(api):
    with api.client(api.key(scopes=["jobs:read", "models:read"])) as reader:
        post = reader.post("/updates", json=DOC)
        promote = reader.post("/models/default/versions/1/promote")
        listing = reader.get("/jobs")
    assert post.status_code == 403 and post.json()["error"]["code"] == "forbidden"
    assert "updates:write" in post.json()["error"]["message"]
    assert promote.status_code == 403
    assert listing.status_code == 200


def test_lineage_limited_key_cannot_touch_other_lineages(api):
    with api.client(api.key()) as admin:
        other_job = admin.post("/updates", json=DOC | {"lineage": "other"}).json()
    with api.client(api.key(lineage="mine")) as limited:
        own = limited.post("/updates", json=DOC)           # defaults to the key's lineage
        foreign_post = limited.post("/updates", json=DOC | {"lineage": "other"})
        foreign_job = limited.get(f"/jobs/{other_job['id']}")
        foreign_cancel = limited.post(f"/jobs/{other_job['id']}/cancel")
        foreign_list = limited.get("/jobs", params={"lineage": "other"})
        listing = limited.get("/jobs").json()["data"]
        foreign_models = limited.get("/models/other/versions")
        foreign_latest = limited.get("/models/latest", params={"lineage": "other"})
    assert own.status_code == 202 and own.json()["lineage"] == "mine"
    for response in (foreign_post, foreign_list, foreign_models, foreign_latest):
        assert response.status_code == 403 and response.json()["error"]["code"] == "forbidden"
    # Job ids of other lineages look exactly like ids that do not exist.
    for response in (foreign_job, foreign_cancel):
        assert response.status_code == 404 and response.json()["error"]["code"] == "not_found"
    assert [j["lineage"] for j in listing] == ["mine"]
    with session_scope(api.settings) as session:
        assert repo.get_job(session, other_job["id"]).status.value == "queued"


def test_auth_disabled_runs_open_in_development_on_sqlite(tmp_path):
    settings = Settings(home=tmp_path, auth_disabled=True)
    migrate.upgrade(settings)
    server, thread = run_server(create_app(settings), port := free_port())
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}") as client:
            posted = client.post("/updates", json=DOC)
            listed = client.get("/jobs")
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        dispose_engines()
    assert posted.status_code == 202 and posted.json()["lineage"] == "default"
    assert listed.status_code == 200 and [j["id"] for j in listed.json()["data"]] == [posted.json()["id"]]


def test_production_refuses_to_start_without_auth(tmp_path):
    with pytest.raises(UnsafeConfiguration, match="DISC_ALLOW_UNAUTHENTICATED_PRODUCTION"):
        create_app(Settings(home=tmp_path, environment="production", auth_disabled=True))
    forced = Settings(home=tmp_path, environment="production", auth_disabled=True,
                      allow_unauthenticated_production=True)
    assert create_app(forced).state.settings is forced
