"""Liveness, readiness (database and broker) and the OpenAPI document."""

from __future__ import annotations

import httpx

from disc_cli.processes import free_port
from service.app import create_app
from store.db import dispose_engines
from tests.service.server_helpers import run_server


def test_healthz_and_readyz(api):
    with api.client() as client:
        alive = client.get("/healthz")
        ready = client.get("/readyz")
    assert alive.status_code == 200 and alive.json()["status"] == "ok"
    assert ready.status_code == 200 and ready.json()["checks"] == {"database": "ok", "broker": "ok"}


def test_readyz_is_503_when_the_broker_is_down(service_settings):
    settings = service_settings.model_copy(update={"broker_url": f"redis://127.0.0.1:{free_port()}/0"})
    server, thread = run_server(create_app(settings), port := free_port())
    try:
        response = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=30)
    finally:
        server.should_exit = True
        thread.join(timeout=10)
    assert response.status_code == 503
    assert response.json()["status"] == "unavailable"
    assert response.json()["checks"]["database"] == "ok"
    assert response.json()["checks"]["broker"].startswith("unreachable")


def test_readyz_on_the_embedded_default(tmp_path):
    from store import migrate
    from store.settings import Settings

    settings = Settings(home=tmp_path, auth_disabled=True)
    migrate.upgrade(settings)
    server, thread = run_server(create_app(settings), port := free_port())
    try:
        response = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=30)
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        dispose_engines()
    assert response.status_code == 200 and response.json()["checks"] == {"database": "ok", "broker": "ok"}


def test_openapi_and_docs_are_served(api):
    with api.client() as client:
        schema = client.get("/openapi.json").json()
        docs = client.get("/docs")
        unknown = client.get("/no/such/thing")
    assert {"/updates", "/jobs/{job_id}", "/models/latest", "/models/{lineage}/versions/{number}/artifact"} \
        <= set(schema["paths"])
    assert "HTTPBearer" in schema["components"]["securitySchemes"]
    assert docs.status_code == 200 and "swagger" in docs.text.lower()
    assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "not_found"
