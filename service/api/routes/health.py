from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from service.api.deps import SettingsDep
from service.health import check_broker, check_database
from service.schemas import HealthPublic

router = APIRouter(tags=["health"])


@router.get("/healthz", response_model=HealthPublic)
def healthz() -> HealthPublic:
    """The process is alive (no dependencies checked)."""
    return HealthPublic(status="ok")


@router.get("/readyz", response_model=HealthPublic, responses={503: {"model": HealthPublic}})
def readyz(request: Request, settings: SettingsDep) -> JSONResponse:
    """Ready to take requests: the database and the broker answer (503 otherwise)."""
    checks = {"database": check_database(request.app.state.engine), "broker": check_broker(settings)}
    ready = all(v == "ok" for v in checks.values())
    body = HealthPublic(status="ok" if ready else "unavailable", checks=checks)
    return JSONResponse(body.model_dump(), status_code=200 if ready else 503)
