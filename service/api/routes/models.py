from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated

from fastapi import APIRouter, Query
from fastapi import Path as PathParam
from fastapi.responses import RedirectResponse, StreamingResponse

from service.api.deps import ModelsPromoter, ModelsReader, SessionDep, SettingsDep
from service.auth import Principal
from service.errors import ERROR_RESPONSES, ApiError, not_found
from service.presenters import alias_moves_public, lineage_public, score_history_public, version_public
from service.schemas import (
    KNOWN_METRICS,
    AliasHistoryPublic,
    LineageName,
    LineagesPublic,
    MetricName,
    ScoreHistoryPublic,
    VersionPublic,
    VersionsPublic,
)
from store import repo, storage
from store.artifact_store import StoreError, StoreUnavailable, open_store
from store.models import Lineage, ModelVersion

router = APIRouter(prefix="/models", tags=["models"], responses=ERROR_RESPONSES)

LineagePath = Annotated[LineageName, PathParam()]
VersionNumber = Annotated[int, PathParam(ge=1, le=2**31 - 1)]
Metrics = Annotated[list[MetricName] | None, Query(max_length=50, description=(
    "A metric to return; repeat for several (`?metric=a&metric=b`). Left out: every metric some version "
    "has. Besides those, the names every evaluation records are accepted: " + ", ".join(KNOWN_METRICS) + "."))]


def _lineage(session, principal: Principal, name: str) -> Lineage:
    principal.check_lineage(name)
    lineage = repo.get_lineage(session, name)
    if lineage is None:
        raise not_found(f"lineage {name!r}", "lineage")
    return lineage


def _version(session, principal: Principal, lineage: str, number: int) -> ModelVersion:
    version = repo.get_version(session, _lineage(session, principal, lineage), number)
    if version is None:
        raise not_found(f"version {number} of lineage {lineage!r}", "version")
    return version


@contextmanager
def _store_errors(lineage: str, number: int) -> Iterator[None]:
    """The artifact store's failures as API errors: damaged (409), unreachable (503)."""
    try:
        yield
    except storage.ArtifactCorrupt as exc:
        raise ApiError(409, "artifact_corrupt", f"the artifact of version {number} of "
                       f"{lineage!r} is missing or damaged") from exc
    except StoreUnavailable as exc:
        raise ApiError(503, "artifact_store_unavailable", f"the artifact store cannot be reached "
                       f"({exc}); try again shortly", headers={"Retry-After": "5"}) from exc
    except StoreError as exc:
        raise ApiError(503, "artifact_store_error", str(exc)) from exc


def _verified_artifact(settings, version: ModelVersion) -> None:
    with _store_errors(version.lineage.name, version.number):
        open_store(settings).verify(version.artifact_uri, version.artifact_sha256)


@router.get("", response_model=LineagesPublic)
def list_lineages(session: SessionDep, principal: ModelsReader) -> LineagesPublic:
    """Every lineage by name (a single-lineage key sees its own), with its version count and ``latest``."""
    return LineagesPublic(data=[lineage_public(s) for s in repo.list_lineages(session, principal.lineage)])


@router.get("/latest", response_model=VersionPublic)
def latest(session: SessionDep, settings: SettingsDep, principal: ModelsReader,
           lineage: LineageName | None = None) -> VersionPublic:
    """The version ``latest`` points at (default lineage unless ``?lineage=``); 404 no_promoted_version if none."""
    name = lineage or principal.default_lineage(settings)
    principal.check_lineage(name)
    version = repo.latest_version(session, name)
    if version is None:
        raise not_found(f"a promoted version of lineage {name!r}", "lineage", code="no_promoted_version")
    return version_public(session, settings, version, latest_id=version.id)


@router.get("/{lineage}/versions", response_model=VersionsPublic)
def list_versions(lineage: LineagePath, session: SessionDep, settings: SettingsDep,
                  principal: ModelsReader) -> VersionsPublic:
    """Every version of a lineage, oldest first, candidates and rejected ones included."""
    found = _lineage(session, principal, lineage)
    alias = repo.get_alias(session, found)
    latest_id = alias.version_id if alias else -1
    return VersionsPublic(data=[version_public(session, settings, v, latest_id)
                                for v in repo.list_versions(session, found)])


@router.get("/{lineage}/scores", response_model=ScoreHistoryPublic)
def score_history(lineage: LineagePath, session: SessionDep, principal: ModelsReader,
                  metric: Metrics = None) -> ScoreHistoryPublic:
    """Scores over versions, for a chart: every version oldest first with the requested metrics.

    Candidates and rejected versions are included (``state`` says which), and a metric a version
    lacks is null. ``retention_kl_vs_base`` is each version's drift from the lineage's base model
    over the whole chain, the figure ``DISC_PROMOTE_MAX_RETENTION_KL_VS_BASE`` bounds;
    ``retention_kl_vs_parent`` is the step from its parent. A name that no version has and no
    evaluation records is refused (422 unknown_metric).
    """
    found = _lineage(session, principal, lineage)
    history = repo.score_history(session, found)
    recorded = sorted({name for entry in history for name in entry.scores})
    metrics = list(dict.fromkeys(metric)) if metric else recorded
    unknown = [name for name in metrics if name not in recorded and name not in KNOWN_METRICS]
    if unknown:
        names = ", ".join(repr(name) for name in unknown)
        plural = "s" if len(unknown) > 1 else ""
        raise ApiError(422, "unknown_metric", f"no version of {lineage!r} has the metric{plural} {names} and no "
                       f"evaluation records {'them' if plural else 'it'}; known: "
                       f"{', '.join(sorted({*recorded, *KNOWN_METRICS}))}", "metric")
    alias = repo.get_alias(session, found)
    return score_history_public(found, history, metrics, alias.version_id if alias else None)


@router.get("/{lineage}/versions/{number}", response_model=VersionPublic)
def get_version(lineage: LineagePath, number: VersionNumber, session: SessionDep, settings: SettingsDep,
                principal: ModelsReader) -> VersionPublic:
    return version_public(session, settings, _version(session, principal, lineage, number))


@router.get("/{lineage}/versions/{number}/artifact", response_class=StreamingResponse,
            responses={200: {"content": {"application/gzip": {}}, "description": "tar.gz of the artifact"},
                       307: {"description": "object storage: a short-lived presigned URL of the tar.gz"}})
def download_artifact(lineage: LineagePath, number: VersionNumber, session: SessionDep, settings: SettingsDep,
                      principal: ModelsReader):
    """The version's artifact directory (weights or adapter, meta.json) as a tar.gz.

    From a local artifact folder the bytes are streamed; from object storage the answer is a 307
    to a presigned URL valid for ``DISC_ARTIFACT_LINK_TTL_S``, so the bytes do not flow through
    the API (fetch it without this API's Authorization header). Either way ``X-Artifact-SHA256``
    is the recorded checksum of the unpacked directory, which a client checks after unpacking.
    The store is checked first: a missing or damaged artifact is refused (409 artifact_corrupt)
    rather than sent as a broken download.
    """
    version = _version(session, principal, lineage, number)
    sha256, key = version.artifact_sha256, version.artifact_uri
    session.close()  # release the connection now rather than hold it for the whole download
    name = f"{storage.safe_name(lineage)}-v{number}"
    with _store_errors(lineage, number):
        download = open_store(settings).open_download(key, sha256, filename=name)
    headers = {"X-Artifact-SHA256": sha256}
    if download.redirect_url is not None:
        if download.archive_sha256:
            headers["X-Archive-SHA256"] = download.archive_sha256
        return RedirectResponse(download.redirect_url, status_code=307, headers=headers)
    return StreamingResponse(download.chunks, media_type="application/gzip",
                             headers={"Content-Disposition": f'attachment; filename="{name}.tar.gz"', **headers})


@router.post("/{lineage}/versions/{number}/promote", response_model=VersionPublic)
def promote(lineage: LineagePath, number: VersionNumber, session: SessionDep, settings: SettingsDep,
            principal: ModelsPromoter) -> VersionPublic:
    """Point ``latest`` at this version: roll back to an older one or forward to a candidate.

    Refused (409) for a rejected version and for one whose artifact is missing or damaged.
    """
    version = _version(session, principal, lineage, number)
    _verified_artifact(settings, version)
    try:
        repo.move_alias(session, version.lineage, version, reason="manual", actor=principal.name)
    except repo.VersionRejected as exc:
        raise ApiError(409, "version_rejected", str(exc), "version") from exc
    session.commit()
    return version_public(session, settings, version, latest_id=version.id)


@router.get("/{lineage}/aliases/latest/history", response_model=AliasHistoryPublic)
def latest_history(lineage: LineagePath, session: SessionDep, principal: ModelsReader) -> AliasHistoryPublic:
    """Every move of ``latest``, oldest first: promotions by policy, roll backs, roll forwards."""
    found = _lineage(session, principal, lineage)
    entries = repo.alias_history(session, found, repo.LATEST)
    return AliasHistoryPublic(data=alias_moves_public(session, entries, repo.LATEST))
