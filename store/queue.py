"""The job queue: one Celery configuration shared by the API (which only sends) and the worker.

The API never imports the worker package or torch: it sends the task by name. Long jobs need
late acknowledgement (a worker that dies mid-job leaves the message to be redelivered),
prefetch 1 (a busy worker holds no other job), and a Redis visibility timeout above the
longest job (otherwise Redis redelivers a job that is still running).
"""

from __future__ import annotations

from collections.abc import Sequence

from celery import Celery

from store.settings import Settings, get_settings

RUN_UPDATE_JOB = "disc.run_update_job"
UPDATES_QUEUE = "updates"


def make_celery(settings: Settings | None = None, *, include: Sequence[str] = ()) -> Celery:
    """The app with the queue's configuration; ``include`` names task modules a worker imports at start."""
    settings = settings or get_settings()
    if settings.is_embedded_broker:
        settings.home.mkdir(parents=True, exist_ok=True)
    app = Celery("disc", broker=settings.broker_url, include=list(include))
    app.conf.update(
        task_acks_late=True,
        task_reject_on_worker_lost=True,  # bounded: the job's attempts counter caps redeliveries
        worker_prefetch_multiplier=1,
        task_default_queue=UPDATES_QUEUE,
        task_routes={RUN_UPDATE_JOB: {"queue": UPDATES_QUEUE}},
        broker_transport_options=_transport_options(settings),
        broker_connection_retry_on_startup=True,
        task_ignore_result=True,  # results live in the database, not the broker
        worker_hijack_root_logger=False,
    )
    return app


def _transport_options(settings: Settings) -> dict:
    # kombu's SQLAlchemy transport hands every transport option to create_engine(), which
    # refuses Redis's ``visibility_timeout``; that transport has no such timeout anyway.
    if settings.is_embedded_broker:
        return {}
    return {"visibility_timeout": settings.visibility_timeout_s}


_senders: dict[str, Celery] = {}  # one producer app per broker URL; connections are pooled inside


def queue_for(base_model: str | None, settings: Settings) -> str:
    """The queue of a lineage's jobs: its base model's (``DISC_BASE_MODEL_QUEUES``) or ``updates``."""
    return settings.base_model_queues.get(base_model or "", UPDATES_QUEUE)


def enqueue_job(job_id: str, settings: Settings | None = None, *, base_model: str | None = None) -> None:
    """Send a job id to the workers that serve its base model. Call only after the job's
    transaction has committed."""
    settings = settings or get_settings()
    if settings.broker_url not in _senders:
        _senders[settings.broker_url] = make_celery(settings)
    _senders[settings.broker_url].send_task(RUN_UPDATE_JOB, args=[job_id], queue=queue_for(base_model, settings))
