"""Python client of the DiSC update service: submit documents, follow jobs, fetch model versions.

    from disc_client import Client

    with Client("http://127.0.0.1:8000", api_key="disc_…") as client:   # or DISC_URL, DISC_API_KEY
        job = client.updates.create(["Varo Tenkel founded Blissem Labs in Orvik."], lineage="support-bot")
        job = client.jobs.wait(job.id, progress=lambda j: print(j.status, j.progress.documents_done))
        path = client.models.download("support-bot", job.result_version.version, "support-bot-v1")

Results are the API's own schemas (``JobPublic``, ``VersionPublic``…); failures are
``DiscError`` subclasses carrying the API's ``code``, ``message`` and ``param``. Needs httpx and
pydantic only: torch is imported by nothing here.
"""

from disc_client.client import AUTO, DEFAULT_URL, TERMINAL_STATUSES, Client, JobPages
from disc_client.errors import (
                                APIConnectionError,
                                APIError,
                                ArtifactError,
                                AuthenticationError,
                                ConflictError,
                                DestinationExists,
                                DiscError,
                                InvalidRequestError,
                                NotFoundError,
                                PermissionDeniedError,
                                RateLimitError,
                                ServerError,
                                WaitTimeout,
)
from service.schemas import (
                                AliasMovePublic,
                                JobEventPublic,
                                JobPublic,
                                JobsPublic,
                                LineagePublic,
                                ProgressPublic,
                                ScoreHistoryPublic,
                                VersionPublic,
                                VersionScoresPublic,
)

__all__ = [
    "AUTO", "DEFAULT_URL", "TERMINAL_STATUSES", "Client", "JobPages",
    "APIConnectionError", "APIError", "ArtifactError", "AuthenticationError", "ConflictError", "DestinationExists",
    "DiscError", "InvalidRequestError", "NotFoundError", "PermissionDeniedError", "RateLimitError", "ServerError",
    "WaitTimeout",
    "AliasMovePublic", "JobEventPublic", "JobPublic", "JobsPublic", "LineagePublic", "ProgressPublic",
    "ScoreHistoryPublic", "VersionPublic", "VersionScoresPublic",
]
