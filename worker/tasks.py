"""The one task: run an update job, given only its id. The work lives in ``worker.pipeline``."""

from __future__ import annotations

from disc_engine.models import keep_bases_loaded
from store.db import session_factory
from store.queue import RUN_UPDATE_JOB
from store.settings import get_settings
from worker import pipeline
from worker.celery_app import app

# A worker serves job after job of the same few bases: keep them in memory rather than read and
# convert them from disk for every job (benchmarks/scaling.py measures the difference).
keep_bases_loaded()


@app.task(name=RUN_UPDATE_JOB, bind=True)
def run_update_job(self, job_id: str) -> str:
    settings = get_settings()
    return pipeline.run_job(job_id, session_factory=session_factory(settings), settings=settings,
                            worker_name=self.request.hostname).value
