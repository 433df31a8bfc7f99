"""API keys: ``Authorization: Bearer <token>``, scopes, and single-lineage keys.

Scopes: ``updates:write`` (submit and cancel updates), ``jobs:read``, ``models:read``,
``models:promote``. A key may be limited to one lineage. Such a key:

* gets **403 forbidden** whenever the request names another lineage (in the path, the query
  or the body) — the client asked for something it knows about and is not allowed;
* gets **404 not_found** for a job id of another lineage, exactly as for an id that does not
  exist, so ids reveal nothing about other lineages;
* lists only its own lineage's jobs, and its updates go to its lineage by default.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy.orm import Session

from service.errors import ApiError
from store import repo
from store.models import Job
from store.settings import Settings

ALL_SCOPES = frozenset(repo.SCOPES)


@dataclass(frozen=True)
class Principal:
    """Who is calling: a key's id, name, scopes and optional lineage; or the open development mode."""

    key_id: int | None
    name: str
    scopes: frozenset[str] = field(default=ALL_SCOPES)
    lineage: str | None = None

    def require(self, scope: str) -> None:
        if scope not in self.scopes:
            raise ApiError(403, "forbidden", f"this API key lacks the scope {scope!r}")

    def check_lineage(self, lineage: str, param: str = "lineage") -> None:
        if self.lineage is not None and lineage != self.lineage:
            raise ApiError(403, "forbidden", f"this API key may only use lineage {self.lineage!r}", param)

    def can_see(self, job: Job) -> bool:
        return self.lineage is None or job.lineage.name == self.lineage

    def default_lineage(self, settings: Settings) -> str:
        return self.lineage or settings.default_lineage

    def idempotency_scope(self, key: str) -> str:
        # Keys are per caller: two clients choosing the same Idempotency-Key never collide.
        return f"{self.key_id or 0}:{key}"


ANONYMOUS = Principal(key_id=None, name="anonymous")


def _unauthorized(message: str) -> ApiError:
    return ApiError(401, "unauthorized", message, headers={"WWW-Authenticate": "Bearer"})


def authenticate(session: Session, settings: Settings, authorization: str | None) -> Principal:
    """The caller behind an ``Authorization`` header value; raises 401 ApiError if none is valid."""
    if settings.auth_disabled:
        return ANONYMOUS
    if not authorization:
        raise _unauthorized("missing Authorization header; send 'Authorization: Bearer <API key>'")
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise _unauthorized("Authorization header must be 'Bearer <API key>'")
    key = repo.verify_api_key(session, token.strip())
    if key is None:
        raise _unauthorized("invalid or revoked API key")
    return Principal(key_id=key.id, name=key.name, scopes=frozenset(key.scopes), lineage=key.lineage)
