"""What happens to a request before its body is parsed, outermost first.

1. ``AuthGateMiddleware``: a request that carries a body (POST, PUT, PATCH) to a route that
   needs a scope is authenticated from its headers alone; without a valid key (401) or the
   route's scope (403) it is answered before one byte of its body is read, so an anonymous
   client cannot make the API buffer or parse anything.
2. ``BodyLimitMiddleware``: the body is read under a size limit and a deadline. ``Content-Length``
   is checked first; a body without it (chunked) is counted as it streams and refused as soon as
   it passes the limit; a body that does not arrive within the deadline is refused (408). The
   raw bytes are then checked to be UTF-8 and, for JSON, small enough in values and nesting
   (``service.json_shape``) before any Python object is built from them.
"""

from __future__ import annotations

import asyncio
import codecs
import logging

from starlette.concurrency import run_in_threadpool
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.errors import ApiError, error_response
from service.json_shape import ShapeError, check_shape

log = logging.getLogger(__name__)

_BODY_METHODS = {"POST", "PUT", "PATCH"}
# The answer ends the connection: the unread rest of the body is never drained.
_CLOSE = {"Connection": "close"}


def route_scope(route) -> str | None:
    """The scope a route's dependencies require (``deps._scoped``), or None for an open route."""
    pending = list(getattr(getattr(route, "dependant", None), "dependencies", []))
    while pending:
        dependant = pending.pop()
        scope = getattr(dependant.call, "required_scope", None)
        if scope is not None:
            return scope
        pending.extend(dependant.dependencies)
    return None


class AuthGateMiddleware:
    def __init__(self, app: ASGIApp, *, routes, settings, session_factory) -> None:
        # Only routes that need a scope and take a body are gated; ``routes`` are the API's own
        # route objects (each with its full path), which match a request scope on their own.
        self.routes = [(route, scope) for route in routes
                       if (scope := route_scope(route)) is not None and set(route.methods) & _BODY_METHODS]
        self.app, self.settings, self.session_factory = app, settings, session_factory

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in _BODY_METHODS or self.settings.auth_disabled:
            await self.app(scope, receive, send)
            return
        required = next((needed for route, needed in self.routes if route.matches(scope)[0] == Match.FULL), None)
        if required is None:
            await self.app(scope, receive, send)
            return
        authorization = dict(scope.get("headers") or []).get(b"authorization")
        try:
            principal = await run_in_threadpool(
                self._authenticate, authorization.decode("latin-1") if authorization is not None else None)
            principal.require(required)
        except ApiError as exc:
            response = error_response(exc.status, exc.code, exc.message, exc.param, {**(exc.headers or {}), **_CLOSE})
            await response(scope, receive, send)
            return
        except Exception:  # the record is unreachable: nobody can be authenticated now
            log.exception("authentication failed for want of the database")
            await error_response(503, "unavailable", "the service cannot check API keys right now; retry later",
                                 headers={"Retry-After": "5", **_CLOSE})(scope, receive, send)
            return
        # The route's own dependency takes the caller from here instead of looking the key up again.
        scope.setdefault("state", {})["principal"] = principal
        await self.app(scope, receive, send)

    def _authenticate(self, authorization: str | None):
        from service.auth import authenticate

        with self.session_factory() as session:
            return authenticate(session, self.settings, authorization)


class BodyLimitMiddleware:
    def __init__(self, app: ASGIApp, *, max_bytes: int, max_json_values: int, max_json_depth: int,
                 read_timeout_s: float) -> None:
        self.app, self.max_bytes = app, max_bytes
        self.max_json_values, self.max_json_depth, self.read_timeout_s = max_json_values, max_json_depth, read_timeout_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in _BODY_METHODS:
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length")
        if declared is not None:
            if not declared.isdigit():
                await error_response(400, "invalid_body", "Content-Length is not a number",
                                     headers=_CLOSE)(scope, receive, send)
                return
            if int(declared) > self.max_bytes:
                await self._too_large(scope, receive, send)
                return
        try:
            async with asyncio.timeout(self.read_timeout_s):
                body = await self._read(receive)
        except TimeoutError:
            await error_response(408, "request_timeout", f"the request body did not arrive within "
                                 f"{self.read_timeout_s:g} s", headers=_CLOSE)(scope, receive, send)
            return
        except _TooLarge:
            await self._too_large(scope, receive, send)
            return
        except _NotUtf8 as exc:
            response = error_response(400, "invalid_body", f"request body is not valid UTF-8 (byte {exc.args[0]})",
                                      headers=_CLOSE)
            await response(scope, receive, send)
            return
        if body is None:  # the client went away
            return
        if b"json" in headers.get(b"content-type", b"application/json"):
            try:
                check_shape(body, max_values=self.max_json_values, max_depth=self.max_json_depth)
            except ShapeError as exc:
                await error_response(413, "payload_too_large", str(exc))(scope, receive, send)
                return
        await self.app(scope, _replay(body, receive), send)

    async def _read(self, receive: Receive) -> bytes | None:
        # UTF-8 is checked chunk by chunk as the body arrives; the decoded text is not kept.
        utf8, chunks, size = codecs.getincrementaldecoder("utf-8")(), [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return None
            chunk = message.get("body", b"")
            try:
                utf8.decode(chunk, final=not message.get("more_body", False))
            except UnicodeDecodeError as exc:
                raise _NotUtf8(size + exc.start) from None
            size += len(chunk)
            if size > self.max_bytes:
                raise _TooLarge()
            chunks.append(chunk)
            if not message.get("more_body", False):
                body = b"".join(chunks)
                chunks.clear()
                return body

    async def _too_large(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = error_response(413, "payload_too_large",
                                  f"request body exceeds the limit of {self.max_bytes} bytes", headers=_CLOSE)
        await response(scope, receive, send)


class _TooLarge(Exception):
    pass


class _NotUtf8(Exception):
    pass


def _replay(body: bytes, upstream: Receive) -> Receive:
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        # Afterwards only a real disconnect may arrive; answering one early would abort responses.
        return await upstream()

    return receive
