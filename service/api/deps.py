"""Shared dependencies as typed aliases: settings, a database session, the caller and its scopes."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session

from service.auth import Principal, authenticate
from store.settings import Settings


def get_settings(request: Request) -> Settings:
    return request.app.state.settings


SettingsDep = Annotated[Settings, Depends(get_settings)]


def get_session(request: Request) -> Iterator[Session]:
    # Handlers commit explicitly; whatever they leave uncommitted is rolled back on close.
    with request.app.state.session_factory() as session:
        yield session


SessionDep = Annotated[Session, Depends(get_session)]

# auto_error=False: a missing header is answered by our own 401 in the common error shape.
_bearer = HTTPBearer(auto_error=False, description="An API key from `disc keys create`.")


def get_principal(session: SessionDep, settings: SettingsDep,
                  credentials: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)],
                  request: Request) -> Principal:
    # ``credentials`` only declares the scheme in OpenAPI; the raw header gives exact 401 messages.
    # A request with a body was authenticated by the gate (service.middleware) before it was read.
    gated = getattr(request.state, "principal", None)
    if gated is not None:
        return gated
    return authenticate(session, settings, request.headers.get("authorization"))


PrincipalDep = Annotated[Principal, Depends(get_principal)]


def _scoped(scope: str):
    def require(principal: PrincipalDep) -> Principal:
        principal.require(scope)
        return principal

    require.__name__ = f"require_{scope.replace(':', '_')}"
    require.required_scope = scope  # read by the auth gate, which checks it before the body is read
    return Annotated[Principal, Depends(require)]


UpdatesWriter = _scoped("updates:write")
JobsReader = _scoped("jobs:read")
ModelsReader = _scoped("models:read")
ModelsPromoter = _scoped("models:promote")
