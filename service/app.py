"""The application factory: ``create_app(settings)``; uvicorn runs ``service.app:create_app --factory``."""

from __future__ import annotations

from fastapi import FastAPI

from service.api.routes import health, jobs, models, ui, updates
from service.errors import install_error_handlers
from service.middleware import AuthGateMiddleware, BodyLimitMiddleware
from store.db import get_engine, session_factory
from store.settings import Settings, get_settings

API_DESCRIPTION = """
Submit documents; a worker distils them into a new version of the model (DiSC: Distillation
via Split Contexts); read progress, scores and artifacts.

**Authentication.** `Authorization: Bearer <key>` with a key from `disc keys create`. Scopes:
`updates:write` (submit, cancel), `jobs:read`, `models:read`, `models:promote`. A key limited
to one lineage gets 403 when a request names another lineage, and 404 for job ids of other
lineages (as for ids that do not exist).

**Errors.** Always `{"error": {"code", "message", "param"}}`; `param` names the offending
field, e.g. `documents[3].text`. Codes include `validation_error`, `invalid_body`,
`payload_too_large`, `idempotency_conflict`, `unauthorized`, `forbidden`, `not_found`,
`no_promoted_version`, `unknown_metric`, `job_finished`, `version_rejected`,
`artifact_corrupt`.
"""


class UnsafeConfiguration(RuntimeError):
    pass


def check_safe(settings: Settings) -> None:
    """Production must authenticate unless the operator explicitly says otherwise."""
    if settings.environment == "production" and settings.auth_disabled \
            and not settings.allow_unauthenticated_production:
        raise UnsafeConfiguration(
            "refusing to start: DISC_AUTH_DISABLED=true with DISC_ENVIRONMENT=production would leave the API "
            "open; unset DISC_AUTH_DISABLED, or set DISC_ALLOW_UNAUTHENTICATED_PRODUCTION=true to accept that")


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    check_safe(settings)
    app = FastAPI(
        title="DiSC knowledge-update service",
        version="0.1.0",
        description=API_DESCRIPTION,
        **({} if settings.api_docs else {"docs_url": None, "redoc_url": None, "openapi_url": None}),
    )
    app.state.settings = settings
    app.state.engine = get_engine(settings)
    app.state.session_factory = session_factory(settings)
    install_error_handlers(app)
    routers = (updates.router, jobs.router, models.router, health.router, ui.router)
    for router in routers:
        app.include_router(router)
    # Added last = runs first: the key is checked before the body is read.
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_request_bytes,
                       max_json_values=settings.max_json_values, max_json_depth=settings.max_json_depth,
                       read_timeout_s=settings.body_read_timeout_s)
    app.add_middleware(AuthGateMiddleware, routes=[r for router in routers for r in router.routes], settings=settings,
                       session_factory=app.state.session_factory)
    return app
