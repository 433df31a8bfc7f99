"""The baseline of ``benchmarks/api_overhead.py``: the least a route reading one job can do.

One FastAPI route that reads a job's row by primary key through the product's own engine and
session factory (SQLAlchemy, psycopg 3, the same pool settings) and returns two fields, served
by uvicorn like ``disc serve``: no authentication, no middleware, no response model.

    DISC_DATABASE_URL=postgresql://… uvicorn benchmarks.bare_route:create_app --factory
"""

from __future__ import annotations

from fastapi import FastAPI, HTTPException

from store.db import session_factory
from store.models import Job
from store.settings import get_settings


def create_app() -> FastAPI:
    app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)
    sessions = session_factory(get_settings())

    @app.get("/rows/{job_id}")
    def read_row(job_id: str) -> dict:
        with sessions() as session:
            job = session.get(Job, job_id)
            if job is None:
                raise HTTPException(404)
            return {"id": job.id, "status": job.status.value}

    return app
