"""One error shape for every failure: ``{"error": {"code", "message", "param"}}``.

FastAPI's own answers (422 validation, 404 unknown route, 405, malformed JSON) are converted
to it, so a client handles errors by ``code`` alone.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger(__name__)


class ErrorDetail(BaseModel):
    code: str
    message: str
    param: str | None = None


class ErrorBody(BaseModel):
    error: ErrorDetail


class ApiError(Exception):
    """Raise from handlers and dependencies; rendered in the common error shape."""

    def __init__(self, status: int, code: str, message: str, param: str | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.param, self.headers = status, code, message, param, headers


def not_found(what: str, param: str | None = None, code: str = "not_found") -> ApiError:
    return ApiError(404, code, f"{what} not found", param)


def error_response(status: int, code: str, message: str, param: str | None = None,
                   headers: dict[str, str] | None = None) -> JSONResponse:
    body = {"error": {"code": code, "message": message, "param": param}}
    return JSONResponse(body, status_code=status, headers=headers)


def param_from_loc(loc: Sequence[Any]) -> str | None:
    """("body", "documents", 3, "text") -> "documents[3].text"; ("query", "limit") -> "limit"."""
    parts = list(loc[1:] if loc and loc[0] in ("body", "query", "path", "header") else loc)
    out = ""
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        elif _FIELD_NAME.match(str(part)) and part not in _UNION_TAGS:
            out += f".{part}" if out else str(part)
        # else: pydantic's tags for union members and validators ("constrained-int", "literal['all']")
    return out or None


_FIELD_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")
_UNION_TAGS = {"int", "float", "str", "bool", "none", "constrained-int", "constrained-float", "constrained-str"}

_HTTP_CODES = {400: "invalid_body", 401: "unauthorized", 403: "forbidden", 404: "not_found",
               405: "method_not_allowed", 406: "not_acceptable", 413: "payload_too_large",
               415: "unsupported_media_type"}


async def _api_error(_: Request, exc: ApiError) -> JSONResponse:
    return error_response(exc.status, exc.code, exc.message, exc.param, exc.headers)


async def _validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
    errors = exc.errors()
    first = errors[0] if errors else {"loc": (), "msg": "invalid request", "type": ""}
    if first.get("type") == "json_invalid":
        detail = (first.get("ctx") or {}).get("error", "malformed JSON")
        return error_response(400, "invalid_body", f"request body is not valid JSON: {detail}")
    param = param_from_loc(first.get("loc", ()))
    message = str(first.get("msg", "invalid value"))
    if param:
        message = f"{param}: {message}"
    # A value failing every member of a union yields one error per member: count places, not errors.
    others = {param_from_loc(e.get("loc", ())) for e in errors} - {param}
    if others:
        message += f" (and problems with {len(others)} more field{'s' if len(others) > 1 else ''})"
    return error_response(422, "validation_error", message, param)


async def _http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
    code = _HTTP_CODES.get(exc.status_code, "http_error")
    message = exc.detail if isinstance(exc.detail, str) else "request failed"
    if exc.status_code == 404 and message == "Not Found":
        message = "no such endpoint"
    return error_response(exc.status_code, code, message, headers=getattr(exc, "headers", None))


async def _unhandled(request: Request, exc: Exception) -> JSONResponse:
    # Exception text can carry paths, SQL or secrets: log it, answer with a generic message.
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return error_response(500, "internal_error", "internal error; the server log has the details")


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unhandled)


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorBody, "description": description}
    for status, description in [(400, "Malformed body"), (401, "Missing or invalid API key"),
                                (403, "Missing scope or another lineage"), (404, "Not found"),
                                (409, "Conflict"), (413, "Payload too large"), (422, "Invalid input")]
}
