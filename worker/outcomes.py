"""What becomes of one delivery of a job, and the exceptions that end an attempt."""

from __future__ import annotations

import enum

ERROR_MESSAGE_CHARS = 500


class Outcome(str, enum.Enum):
    succeeded = "succeeded"
    failed = "failed"
    cancelled = "cancelled"
    skipped = "skipped"   # nothing to do: unknown, already finished, or running elsewhere
    retrying = "retrying"  # handed back to the queue after a transient failure (the artifact store)


class JobFailed(Exception):
    """Ends the job as failed with a machine-readable code and a message fit for clients."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


class JobCancelled(Exception):
    """The job's cancellation was requested; raised at the next safe point."""


class ClaimLost(Exception):
    """Another worker claimed this job after us (our heartbeat was taken for dead)."""


def classify_failure(exc: BaseException) -> tuple[str, str]:
    """(code, message) for a failure; the message names the problem, never a traceback."""
    import torch

    from disc_engine.artifacts import ArtifactError
    from store import storage

    if isinstance(exc, JobFailed):
        return exc.code, exc.message
    if isinstance(exc, (torch.OutOfMemoryError, MemoryError)):
        return ("out_of_memory", "the worker ran out of memory training or evaluating this update; "
                "use fewer or shorter documents, a smaller model or a larger machine")
    from disc_engine.trainer import NothingTrained, TrainingDiverged

    if isinstance(exc, TrainingDiverged):
        return "training_diverged", short_message(str(exc))
    if isinstance(exc, NothingTrained):
        return "nothing_to_train", short_message(str(exc))
    from store.artifact_store import StoreError

    if isinstance(exc, StoreError):
        return "artifact_store_error", short_message(str(exc))
    if isinstance(exc, storage.ArtifactCorrupt):
        return "artifact_corrupt", short_message(str(exc))
    if isinstance(exc, ArtifactError):
        return "artifact_error", short_message(str(exc))
    if isinstance(exc, ValueError):
        return "invalid_input", short_message(str(exc))
    return "internal_error", short_message(f"{type(exc).__name__}: {exc}")


def short_message(message: str) -> str:
    message = " ".join(message.split())
    return message if len(message) <= ERROR_MESSAGE_CHARS else message[:ERROR_MESSAGE_CHARS - 1] + "…"
