"""``Client``: updates, jobs and models of a running DiSC service, as typed objects.

Results are the API's own response schemas (``service.schemas``), validated on arrival.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, Literal

import httpx
from pydantic import BaseModel

from disc_client._transport import Transport
from disc_client.errors import APIConnectionError, ArtifactError, WaitTimeout
from service.schemas import (
    AliasHistoryPublic,
    AliasMovePublic,
    DocumentIn,
    Hyperparameters,
    JobEventPublic,
    JobEventsPublic,
    JobPublic,
    JobsPublic,
    LineagePublic,
    LineagesPublic,
    ProbeIn,
    PromotionIn,
    ScoreHistoryPublic,
    VersionPublic,
    VersionsPublic,
)

DEFAULT_URL = "http://127.0.0.1:8000"
TERMINAL_STATUSES = frozenset({"succeeded", "failed", "cancelled"})


class _Auto:
    def __repr__(self) -> str:
        return "AUTO"


AUTO: Any = _Auto()
"""``idempotency_key=AUTO`` (the default): a fresh key per call, reused by that call's retries."""


def _plain(item: Any) -> Any:
    return item.model_dump(mode="json", exclude_unset=True) if isinstance(item, BaseModel) else item


def _quote(segment: str | int) -> str:
    from urllib.parse import quote

    return quote(str(segment), safe="")


class Client:
    """A client of one DiSC service.

    ``base_url`` and ``api_key`` default to ``DISC_URL`` and ``DISC_API_KEY``. Requests that
    fail with 429, 502, 503, 504 or a lost connection are retried up to ``max_retries`` times
    (see ``disc_client._transport`` for which requests are safe to repeat).
    """

    def __init__(self, base_url: str | None = None, api_key: str | None = None, *, timeout: float = 60.0,
                 max_retries: int = 3, backoff_s: float = 0.5, max_retry_wait_s: float = 60.0) -> None:
        self.base_url = (base_url or os.environ.get("DISC_URL") or DEFAULT_URL).rstrip("/")
        api_key = api_key if api_key is not None else os.environ.get("DISC_API_KEY")
        self._transport = Transport(self.base_url, api_key, timeout=timeout, max_retries=max_retries,
                                    backoff_s=backoff_s, max_retry_wait_s=max_retry_wait_s)
        self.updates = Updates(self._transport)
        self.jobs = Jobs(self._transport)
        self.models = Models(self._transport)

    def close(self) -> None:
        self._transport.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


class Updates:
    def __init__(self, transport: Transport) -> None:
        self._t = transport

    def create(self, documents: Iterable[str | Mapping[str, Any] | DocumentIn], *,
               probes: Iterable[Mapping[str, Any] | ProbeIn] | None = None, lineage: str | None = None,
               method: str | None = None, hyperparameters: Mapping[str, Any] | Hyperparameters | None = None,
               promotion: Mapping[str, Any] | PromotionIn | None = None,
               idempotency_key: str | None = AUTO) -> JobPublic:
        """Submit documents (plain strings or ``{"text", "id", "metadata"}``); returns the queued job.

        The service validates everything (its 422 comes back as ``InvalidRequestError`` naming the
        ``param``). With an idempotency key — one is made up unless you pass yours, or ``None`` —
        a retried or repeated call returns the first call's job instead of a second one.
        """
        body: dict[str, Any] = {"documents": [{"text": d} if isinstance(d, str) else _plain(d) for d in documents]}
        for name, value in (("lineage", lineage), ("method", method), ("hyperparameters", hyperparameters),
                            ("promotion", promotion)):
            if value is not None:
                body[name] = _plain(value)
        if probes is not None:
            body["probes"] = [_plain(p) for p in probes]
        headers = {}
        if idempotency_key is AUTO:
            idempotency_key = f"disc-client-{uuid.uuid4()}"
        if idempotency_key is not None:
            headers["Idempotency-Key"] = idempotency_key
        response = self._t.request("POST", "/updates", json=body, headers=headers,
                                   repeatable=idempotency_key is not None)
        return JobPublic.model_validate(response.json())


class JobPages:
    """The jobs matching a filter, newest first, fetched a page at a time as you iterate."""

    def __init__(self, transport: Transport, params: dict[str, Any]) -> None:
        self._t, self._params = transport, params

    def pages(self) -> Iterator[JobsPublic]:
        cursor = None
        while True:
            params = dict(self._params, **({"cursor": cursor} if cursor else {}))
            page = JobsPublic.model_validate(self._t.request("GET", "/jobs", params=params).json())
            yield page
            cursor = page.next_cursor
            if not cursor:
                return

    def __iter__(self) -> Iterator[JobPublic]:
        for page in self.pages():
            yield from page.data


class Jobs:
    def __init__(self, transport: Transport) -> None:
        self._t = transport

    def retrieve(self, job_id: str) -> JobPublic:
        return JobPublic.model_validate(self._t.request("GET", f"/jobs/{_quote(job_id)}").json())

    def list(self, *, lineage: str | None = None, status: str | None = None, page_size: int = 50) -> JobPages:
        params: dict[str, Any] = {"limit": page_size}
        if lineage is not None:
            params["lineage"] = lineage
        if status is not None:
            params["status"] = status
        return JobPages(self._t, params)

    def events(self, job_id: str) -> list[JobEventPublic]:
        response = self._t.request("GET", f"/jobs/{_quote(job_id)}/events")
        return JobEventsPublic.model_validate(response.json()).data

    def cancel(self, job_id: str) -> JobPublic:
        """Ask the job to stop: a queued one is cancelled at once, a running one at the worker's next step."""
        return JobPublic.model_validate(self._t.request("POST", f"/jobs/{_quote(job_id)}/cancel").json())

    def wait(self, job_id: str, *, progress: Callable[[JobPublic], None] | None = None,
             poll_interval_s: float = 1.0, timeout_s: float | None = None) -> JobPublic:
        """Poll until the job has ended; ``progress(job)`` is called whenever its status or progress changes."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        seen = None
        while True:
            job = self.retrieve(job_id)
            news = (job.status, job.progress, job.cancel_requested)
            if progress is not None and news != seen:
                progress(job)
            seen = news
            if job.status in TERMINAL_STATUSES:
                return job
            if deadline is not None and time.monotonic() >= deadline:
                raise WaitTimeout(f"job {job_id} is still {job.status} after {timeout_s:g} s", job)
            time.sleep(poll_interval_s)


class Models:
    def __init__(self, transport: Transport) -> None:
        self._t = transport

    def lineages(self) -> list[LineagePublic]:
        return LineagesPublic.model_validate(self._t.request("GET", "/models").json()).data

    def latest(self, lineage: str | None = None) -> VersionPublic:
        """The version ``latest`` points at (the key's or the service's default lineage if none is named)."""
        params = {"lineage": lineage} if lineage else None
        return VersionPublic.model_validate(self._t.request("GET", "/models/latest", params=params).json())

    def versions(self, lineage: str) -> list[VersionPublic]:
        response = self._t.request("GET", f"/models/{_quote(lineage)}/versions")
        return VersionsPublic.model_validate(response.json()).data

    def scores(self, lineage: str, metrics: Iterable[str] | None = None) -> ScoreHistoryPublic:
        """Scores over the lineage's versions, oldest first: ``metrics`` (default: every one recorded).

        Each point has the version's number, ``created_at``, ``state``, ``is_latest`` and ``scores``
        (null where a version lacks a metric). A name no version has and no evaluation records is
        refused (``InvalidRequestError``, code ``unknown_metric``).
        """
        params = {"metric": list(metrics)} if metrics else None
        response = self._t.request("GET", f"/models/{_quote(lineage)}/scores", params=params)
        return ScoreHistoryPublic.model_validate(response.json())

    def retrieve(self, lineage: str, version: int | Literal["latest"]) -> VersionPublic:
        if version == "latest":
            return self.latest(lineage)
        response = self._t.request("GET", f"/models/{_quote(lineage)}/versions/{int(version)}")
        return VersionPublic.model_validate(response.json())

    def promote(self, lineage: str, version: int) -> VersionPublic:
        """Point ``latest`` at ``version``: roll back, or forward to a candidate."""
        response = self._t.request("POST", f"/models/{_quote(lineage)}/versions/{int(version)}/promote")
        return VersionPublic.model_validate(response.json())

    def history(self, lineage: str) -> list[AliasMovePublic]:
        response = self._t.request("GET", f"/models/{_quote(lineage)}/aliases/latest/history")
        return AliasHistoryPublic.model_validate(response.json()).data

    def download(self, lineage: str, version: int | Literal["latest"] = "latest", dest: str | os.PathLike = ".",
                 *, model_card: bool = True) -> Path:
        """Download a version's artifact into the folder ``dest`` (created; must be absent or empty).

        The archive is checked member by member, unpacked beside ``dest`` and moved into place only
        after its files hash to the version's recorded ``artifact_sha256`` (``ArtifactError``
        otherwise). With ``model_card`` a ``README.md`` model card from the version's record
        replaces the artifact's own, so the folder reads as a Hugging Face model repository.
        """
        from disc_client import download
        from disc_client.model_card import CARD_FILE, render_model_card

        record = self.retrieve(lineage, version)
        target = Path(dest)
        download.prepare_destination(target)
        with download.staging_beside(target) as staging:
            archive = staging / "artifact.tar.gz"
            path = f"/models/{_quote(record.lineage)}/versions/{record.version}/artifact"
            with self._t.stream("GET", path) as response, archive.open("wb") as handle:
                announced = response.headers.get("X-Artifact-SHA256")
                if announced and announced != record.artifact_sha256:
                    raise ArtifactError(f"the service sent an artifact with sha256 {announced}, not the "
                                        f"{record.artifact_sha256} of version {record.version}")
                if response.status_code in (302, 303, 307, 308) and "location" in response.headers:
                    # Object storage: the bytes come from a presigned URL, which carries its own
                    # authorisation and must not get this API's key.
                    _download_to(response.headers["location"], handle, path)
                else:
                    _write_body(response, handle, path)
            folder = download.unpack_verified(archive, staging, record.artifact_sha256)
            if model_card:
                (folder / CARD_FILE).write_text(render_model_card(record), encoding="utf-8")
            download.move_into_place(folder, target)
        return target


def _write_body(response: httpx.Response, handle, path: str) -> None:
    try:
        for chunk in response.iter_bytes(1 << 20):
            handle.write(chunk)
    except httpx.TransportError as exc:
        raise APIConnectionError(f"the download of {path} broke off: {type(exc).__name__}: {exc}") from exc


def _download_to(url: str, handle, path: str) -> None:
    try:
        with httpx.stream("GET", url, timeout=60.0) as response:
            if response.status_code != 200:
                raise APIConnectionError(f"the artifact store answered {response.status_code} for the download "
                                         f"of {path} (the link may have expired; ask again)")
            _write_body(response, handle, path)
    except httpx.TransportError as exc:
        raise APIConnectionError(f"the artifact store could not be reached for {path}: "
                                 f"{type(exc).__name__}: {exc}") from exc
