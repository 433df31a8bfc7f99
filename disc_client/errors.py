"""Exceptions of the client. An API refusal carries the API's own ``code``, ``message`` and ``param``.

The class follows the HTTP status, so callers can catch a kind of failure
(``except NotFoundError``) and still branch on the exact ``code`` (``no_promoted_version``).
"""

from __future__ import annotations

import httpx


class DiscError(Exception):
    """Base of every error this package raises."""


class APIConnectionError(DiscError):
    """The service could not be reached (refused, reset, timed out), retries included."""


class APIError(DiscError):
    """The API answered with an error: ``{"error": {"code", "message", "param"}}``."""

    def __init__(self, status: int, code: str, message: str, param: str | None = None,
                 retry_after: float | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.param = status, code, message, param
        self.retry_after = retry_after

    def __str__(self) -> str:
        where = f" (param: {self.param})" if self.param else ""
        return f"{self.status} {self.code}: {self.message}{where}"


class InvalidRequestError(APIError):
    """400, 413, 422: the request itself is wrong; sending it again will not help."""


class AuthenticationError(APIError):
    """401: no key, or a key the service does not know (or has revoked)."""


class PermissionDeniedError(APIError):
    """403: the key lacks a scope, or is limited to another lineage."""


class NotFoundError(APIError):
    """404: no such job, lineage or version (``no_promoted_version`` before the first promotion)."""


class ConflictError(APIError):
    """409: the job has ended, the version is rejected, the Idempotency-Key was used for another body…"""


class RateLimitError(APIError):
    """429, after the retries the client was allowed."""


class ServerError(APIError):
    """5xx (503 unavailable, 500 internal), after the retries the client was allowed."""


class ArtifactError(DiscError):
    """A downloaded artifact does not match its recorded checksum, or its archive is unsafe."""


class DestinationExists(DiscError):
    """The folder to download into already holds files."""


class WaitTimeout(DiscError):
    """A job did not end within the time given to ``jobs.wait``."""

    def __init__(self, message: str, job) -> None:
        super().__init__(message)
        self.job = job


_BY_STATUS: dict[int, type[APIError]] = {
    400: InvalidRequestError, 401: AuthenticationError, 403: PermissionDeniedError, 404: NotFoundError,
    409: ConflictError, 413: InvalidRequestError, 422: InvalidRequestError, 429: RateLimitError,
}


def error_from_response(response: httpx.Response, retry_after: float | None = None) -> APIError:
    """The exception for an error answer; bodies outside the API's shape (a proxy's page) still give one."""
    code, message, param = "http_error", f"HTTP {response.status_code} {response.reason_phrase}".strip(), None
    try:
        detail = response.json().get("error")
    except (ValueError, AttributeError):
        detail = None
    if isinstance(detail, dict):
        code = str(detail.get("code") or code)
        message = str(detail.get("message") or message)
        param = detail.get("param")
    status = response.status_code
    cls = _BY_STATUS.get(status) or (ServerError if status >= 500 else APIError)
    return cls(status, code, message, param, retry_after=retry_after)
