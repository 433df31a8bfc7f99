"""The worker's Celery app: the shared queue configuration (``store.queue``) plus the task.

``celery -A worker.celery_app worker -Q updates`` and ``disc worker`` both load this module.
"""

from __future__ import annotations

from celery import Celery

from store.queue import RUN_UPDATE_JOB, UPDATES_QUEUE, make_celery
from store.settings import Settings, get_settings


def make_worker_celery(settings: Settings) -> Celery:
    app = make_celery(settings)
    if settings.is_embedded_broker:
        # kombu's SQLAlchemy transport passes every transport option on to create_engine(),
        # which refuses ``visibility_timeout`` (a Redis option); the transport has no such timeout.
        app.conf.broker_transport_options = {}
    return app


app = make_worker_celery(get_settings())

_senders: dict[str, Celery] = {}


def send_job(job_id: str, settings: Settings) -> None:
    """Send a job id to the workers (used by the reconciler)."""
    if settings.broker_url not in _senders:
        _senders[settings.broker_url] = make_worker_celery(settings)
    _senders[settings.broker_url].send_task(RUN_UPDATE_JOB, args=[job_id], queue=UPDATES_QUEUE)


# Registers run_update_job on ``app``; imported last because the task module imports ``app``.
from worker import tasks  # noqa: E402,F401
