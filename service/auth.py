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

import threading
import time
from collections import OrderedDict
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


class KeyCache:
    """Callers of recently verified keys, for ``DISC_API_KEY_CACHE_S`` seconds.

    A poll of ``GET /jobs/{id}`` every second would otherwise look its key up every second.
    Only valid keys are kept (an unknown token is looked up every time), keyed by the token's
    sha256 and the database, bounded in size; a revoked key stops working on every API process
    within the lifetime of its entry.
    """

    MAX_ENTRIES = 10_000

    def __init__(self) -> None:
        self._entries: OrderedDict[tuple[str, str], tuple[float, Principal]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: tuple[str, str]) -> Principal | None:
        with self._lock:
            found = self._entries.get(key)
            if found is None:
                return None
            if found[0] <= time.monotonic():
                del self._entries[key]
                return None
            return found[1]

    def put(self, key: tuple[str, str], principal: Principal, ttl_s: float) -> None:
        with self._lock:
            self._entries[key] = (time.monotonic() + ttl_s, principal)
            self._entries.move_to_end(key)
            while len(self._entries) > self.MAX_ENTRIES:
                self._entries.popitem(last=False)


KEY_CACHE = KeyCache()


def authenticate(session: Session, settings: Settings, authorization: str | None) -> Principal:
    """The caller behind an ``Authorization`` header value; raises 401 ApiError if none is valid."""
    if settings.auth_disabled:
        return ANONYMOUS
    if not authorization:
        raise _unauthorized("missing Authorization header; send 'Authorization: Bearer <API key>'")
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise _unauthorized("Authorization header must be 'Bearer <API key>'")
    cache_key = (settings.database_url, repo.hash_api_key(token.strip()))
    if settings.api_key_cache_s > 0 and (cached := KEY_CACHE.get(cache_key)) is not None:
        return cached
    key = repo.verify_api_key(session, token.strip())
    if key is None:
        raise _unauthorized("invalid or revoked API key")
    principal = Principal(key_id=key.id, name=key.name, scopes=frozenset(key.scopes), lineage=key.lineage)
    if settings.api_key_cache_s > 0:
        KEY_CACHE.put(cache_key, principal, settings.api_key_cache_s)
    return principal
