"""The worker's Celery app: the shared queue configuration (``store.queue``) plus the task.

``celery -A worker.celery_app worker -Q updates`` and ``disc worker`` both load this module; the
worker imports the task module (``include``) when it starts, so nothing here imports it back.
"""

from __future__ import annotations

from store.queue import enqueue_job, make_celery
from store.settings import Settings, get_settings

app = make_celery(get_settings(), include=["worker.tasks"])


def send_job(job_id: str, settings: Settings, base_model: str | None = None) -> None:
    """Send a job id to the workers of its base model (used by the reconciler)."""
    enqueue_job(job_id, settings, base_model=base_model)
