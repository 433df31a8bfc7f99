"""GET /jobs (paging, filters), GET /jobs/{id}, cancellation and events."""

from __future__ import annotations

from store import repo
from store.db import session_scope
from store.models import JobStatus


def submit(client, lineage="news", text="A fact.") -> dict:
    response = client.post("/updates", json={"documents": [{"text": text}], "lineage": lineage})
    assert response.status_code == 202, response.text
    return response.json()


def set_status(settings, job_id: str, status: JobStatus) -> None:
    with session_scope(settings) as session:
        repo.get_job(session, job_id).status = status


def test_get_job_and_unknown_job(api):
    with api.client(api.key()) as client:
        job = submit(client)
        fetched = client.get(f"/jobs/{job['id']}")
        missing = client.get("/jobs/0123456789abcdef0123456789abcdef")
    assert fetched.status_code == 200 and fetched.json()["id"] == job["id"]
    assert fetched.json()["parent_version"] is None and fetched.json()["attempts"] == 0
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"


def test_cursor_paging_visits_every_job_once_newest_first(api):
    with api.client(api.key()) as client:
        ids = [submit(client, text=f"fact {i}")["id"] for i in range(7)]
        seen, cursor, pages = [], None, 0
        while True:
            params = {"limit": 3} | ({"cursor": cursor} if cursor else {})
            page = client.get("/jobs", params=params).json()
            seen += [j["id"] for j in page["data"]]
            pages += 1
            cursor = page["next_cursor"]
            if cursor is None:
                break
        bad = client.get("/jobs", params={"cursor": "not-a-cursor"})
    assert seen == list(reversed(ids)) and pages == 3
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "invalid_cursor"


def test_filters_by_status_and_lineage(api):
    with api.client(api.key()) as client:
        a = submit(client, lineage="alpha")
        b = submit(client, lineage="beta")
        set_status(api.settings, b["id"], JobStatus.running)
        by_lineage = client.get("/jobs", params={"lineage": "alpha"}).json()["data"]
        by_status = client.get("/jobs", params={"status": "running"}).json()["data"]
        bad_status = client.get("/jobs", params={"status": "sleeping"})
        unknown_lineage = client.get("/jobs", params={"lineage": "nowhere"})
    assert [j["id"] for j in by_lineage] == [a["id"]]
    assert [j["id"] for j in by_status] == [b["id"]]
    assert bad_status.status_code == 422 and bad_status.json()["error"]["param"] == "status"
    assert unknown_lineage.status_code == 404 and unknown_lineage.json()["error"]["param"] == "lineage"


def test_cancel_queued_job_at_once(api):
    with api.client(api.key()) as client:
        job = submit(client)
        cancelled = client.post(f"/jobs/{job['id']}/cancel")
        again = client.post(f"/jobs/{job['id']}/cancel")
        events = client.get(f"/jobs/{job['id']}/events").json()["data"]
    assert cancelled.status_code == 200
    assert cancelled.json()["status"] == "cancelled" and cancelled.json()["finished_at"] is not None
    assert again.status_code == 409 and again.json()["error"]["code"] == "job_finished"
    assert [e["kind"] for e in events] == ["created", "cancelled"]


def test_cancel_running_job_sets_the_flag_for_the_worker(api):
    with api.client(api.key()) as client:
        job = submit(client)
        set_status(api.settings, job["id"], JobStatus.running)
        response = client.post(f"/jobs/{job['id']}/cancel")
    assert response.status_code == 200
    assert response.json()["status"] == "running" and response.json()["cancel_requested"] is True
    with session_scope(api.settings) as session:
        assert repo.get_job(session, job["id"]).cancel_requested is True
