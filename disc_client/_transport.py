"""HTTP with retries: what is retried, how long to wait, and when a request must not be sent twice.

* 429, 502, 503, 504 and lost connections are retried with exponential backoff and jitter;
  a ``Retry-After`` header (seconds or an HTTP date) sets the wait instead, up to
  ``max_retry_wait``.
* GETs are always safe to repeat. A POST is repeated only when it carries an Idempotency-Key,
  so the service answers the repeat with the first result instead of doing the work twice
  (``POST /updates``). Other POSTs (cancel, promote) are sent once, except when the connection
  could not even be opened: then nothing was sent.
"""

from __future__ import annotations

import email.utils
import logging
import random
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import httpx

from disc_client.errors import APIConnectionError, error_from_response

log = logging.getLogger("disc_client")

RETRY_STATUSES = frozenset({429, 502, 503, 504})
# Failures before a single byte of the request went out: repeating is always safe.
_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header: ``"3"`` or ``"Wed, 21 Oct 2026 07:28:00 GMT"``."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            moment = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        seconds = (moment - (now or datetime.now(UTC))).total_seconds()
    return max(0.0, seconds) if seconds == seconds else None  # NaN is no wait


class Transport:
    def __init__(self, base_url: str, api_key: str | None, *, timeout: float, max_retries: int,
                 backoff_s: float = 0.5, max_backoff_s: float = 20.0, max_retry_wait_s: float = 60.0,
                 http: httpx.Client | None = None) -> None:
        headers = {"User-Agent": "disc-client/0.1", "Accept": "application/json"}
        if api_key:
            headers["Authorization"] = f"Bearer {api_key}"
        self.base_url = base_url.rstrip("/")
        self.max_retries = max_retries
        self.backoff_s, self.max_backoff_s, self.max_retry_wait_s = backoff_s, max_backoff_s, max_retry_wait_s
        self.http = http or httpx.Client(base_url=self.base_url, timeout=timeout, headers=headers)
        if http is not None:
            self.http.headers.update(headers)

    def close(self) -> None:
        self.http.close()

    def _delay(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return min(retry_after, self.max_retry_wait_s)
        ceiling = min(self.max_backoff_s, self.backoff_s * 2 ** attempt)
        return ceiling * (0.5 + random.random() / 2)

    def request(self, method: str, path: str, *, repeatable: bool | None = None, **kwargs: Any) -> httpx.Response:
        """Send, retrying as the module says; raise the API's error as an exception."""
        with self._send(method, path, repeatable=repeatable, stream=False, **kwargs) as response:
            return response

    @contextmanager
    def stream(self, method: str, path: str, **kwargs: Any) -> Iterator[httpx.Response]:
        """Like ``request`` but the body is left unread, for downloads."""
        with self._send(method, path, repeatable=None, stream=True, **kwargs) as response:
            yield response

    @contextmanager
    def _send(self, method: str, path: str, *, repeatable: bool | None, stream: bool,
              **kwargs: Any) -> Iterator[httpx.Response]:
        if repeatable is None:
            repeatable = method.upper() in ("GET", "HEAD")
        attempt = 0
        while True:
            try:
                request = self.http.build_request(method, path, **kwargs)
                response = self.http.send(request, stream=stream)
            except httpx.TransportError as exc:
                if attempt < self.max_retries and (repeatable or isinstance(exc, _NOT_SENT)):
                    wait = self._delay(attempt, None)
                    log.info("%s %s: %s; retrying in %.1f s", method, path, type(exc).__name__, wait)
                    time.sleep(wait)
                    attempt += 1
                    continue
                raise APIConnectionError(f"{method} {self.base_url}{path}: {type(exc).__name__}: {exc}"
                                         + (f" (after {attempt} retries)" if attempt else "")) from exc
            if response.status_code < 400:
                try:
                    yield response
                finally:
                    response.close()
                return
            retry_after = parse_retry_after(response.headers.get("Retry-After"))
            if stream:
                response.read()
            response.close()
            if response.status_code in RETRY_STATUSES and repeatable and attempt < self.max_retries:
                wait = self._delay(attempt, retry_after)
                log.info("%s %s: HTTP %s; retrying in %.1f s", method, path, response.status_code, wait)
                time.sleep(wait)
                attempt += 1
                continue
            raise error_from_response(response, retry_after)
