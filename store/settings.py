"""Settings from the environment (prefix ``DISC_``), one class for every process.

With nothing set, everything points into ``DISC_HOME`` (``./.disc``): SQLite for the record,
kombu's SQLAlchemy transport over SQLite for the broker, a local artifact folder — the
embedded default that needs no server. Production sets ``DISC_DATABASE_URL`` (PostgreSQL)
and ``DISC_BROKER_URL`` (Redis).
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_BASE_MODEL = "SmolLM2-135M-Instruct"


def sqlalchemy_url(url: str) -> str:
    """Accept plain ``postgresql://`` URLs and route them to the psycopg 3 driver."""
    for plain in ("postgresql://", "postgres://"):
        if url.startswith(plain):
            return "postgresql+psycopg://" + url[len(plain):]
    return url


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="DISC_", extra="ignore")

    environment: Literal["development", "production"] = Field(
        "development", description="production refuses unsafe settings (no authentication).")
    home: Path = Field(Path(".disc"), description="Folder for the embedded default's files.")
    database_url: str | None = Field(None, description="postgresql://… or sqlite:///path; "
                                                      "default: SQLite in DISC_HOME.")
    broker_url: str | None = Field(None, description="redis://host:port/n, or the embedded SQLite transport "
                                                    "by default.")
    artifact_dir: Path | None = Field(None, description="The local artifact folder when DISC_ARTIFACT_URL is not "
                                                       "set; default DISC_HOME/artifacts.")
    artifact_url: str | None = Field(
        None, description="Where versions, checkpoints and evaluation caches live: file:///path or "
                          "s3://bucket/prefix (endpoint and credentials from the standard AWS_* variables). "
                          "Default: file:// of DISC_ARTIFACT_DIR.")
    artifact_link_ttl_s: int = Field(900, ge=10, le=7 * 24 * 3600,
                                     description="Lifetime of the presigned URL an S3 download redirects to.")
    artifact_public_endpoint: str | None = Field(
        None, description="S3 endpoint put in presigned download URLs when clients reach the store by "
                          "another address than the API does (default: AWS_ENDPOINT_URL).")
    work_dir: Path | None = Field(None, description="A worker's private scratch folder (training output, "
                                                    "local checkpoints); default DISC_HOME/work.")
    cache_dir: Path | None = Field(None, description="A worker's local cache of fetched artifacts, keyed by "
                                                     "checksum and shared by the worker processes of one host; "
                                                     "default DISC_HOME/cache.")
    cache_max_bytes: int = Field(20 * 1024**3, ge=0, description="Size bound of the local cache; least recently "
                                                                 "used entries are evicted past it.")
    base_model: str = Field(DEFAULT_BASE_MODEL, description="Base model of new lineages: a Hugging Face id, a "
                                                            "local path or the default's name.")
    default_lineage: str = Field("default", description="Lineage used when an update names none.")
    base_model_queues: dict[str, str] = Field(
        default_factory=dict,
        description="Queues per base model, as JSON ({\"SmolLM2-135M-Instruct\": \"smollm\"}): a job of a lineage "
                    "on a listed base model goes to its queue, every other job to 'updates'; a worker "
                    "consumes the queues of the models it serves (disc worker --queue).")
    worker_device: str | None = Field(None, description="Device a worker trains on (cpu, cuda, cuda:N); default "
                                                        "the first GPU if there is one. Set by disc worker --device.")
    public_url: str = Field("", description="Prefix for artifact URLs in API answers (empty: relative URLs).")

    # Authentication
    auth_disabled: bool = Field(False, description="Accept unauthenticated requests (development only unless forced).")
    allow_unauthenticated_production: bool = Field(
        False, description="Let production start with auth_disabled; without it the API refuses to start.")

    api_key_cache_s: float = Field(
        5.0, ge=0, le=300, description="Seconds a verified API key is remembered by an API process (0: look "
                                       "it up on every request); a revoked key stops working within this long.")
    api_docs: bool = Field(True, description="Serve the interactive docs and the OpenAPI document (/docs, /redoc, "
                                             "/openapi.json) without a key; false closes them (404).")

    update_defaults: dict[str, Any] = Field(
        default_factory=dict,
        description="Training options every update gets unless its request sets them, as JSON "
                    "(e.g. {\"epochs\": 2}); options left out here are the engine's defaults. A null "
                    "retention_budget_kl here turns the budget off.")

    # Input limits
    max_documents_per_batch: int = Field(1000, ge=1)
    max_document_chars: int = Field(200_000, ge=1)
    max_batch_chars: int = Field(5_000_000, ge=1)
    max_request_bytes: int = Field(10_000_000, ge=1)
    max_probes_per_batch: int = Field(1000, ge=0)
    max_json_values: int = Field(100_000, ge=1, description="Most values (objects, arrays, scalars) a request "
                                                            "body may hold; checked on the raw bytes before parsing.")
    max_json_depth: int = Field(64, ge=2, description="Deepest nesting of a request body, checked before parsing.")
    body_read_timeout_s: float = Field(30.0, gt=0, description="A request body not fully received within this "
                                                               "long is refused (408) and its memory released.")
    shutdown_timeout_s: float = Field(20.0, gt=0, description="On SIGTERM, requests in flight get this long "
                                                              "to finish before connections are closed.")

    # Worker and delivery
    visibility_timeout_s: int = Field(6 * 3600, ge=60, description="Redis redelivery timeout: above the longest job.")
    job_max_attempts: int = Field(3, ge=1, description="A job failing this many times ends as failed.")
    reconcile_after_s: int = Field(60, ge=1, description="A queued job not picked up after this long is sent again.")
    stale_heartbeat_s: float = Field(120.0, ge=15, description=(
        "A running job whose heartbeat (every 10 s) is older than this belongs to a dead worker and is taken up "
        "again."))

    # Promotion policy: a new version becomes `latest` only within these retention bounds.
    # Above the engine's retention budget (0.3, measured on 16 prompts while training) by half again,
    # for the evaluation's own, larger prompt sample: a budgeted version passes unless it drifted.
    promote_max_retention_kl_vs_parent: float = Field(0.45, ge=0)
    promote_max_retention_kl_vs_base: float = Field(2.0, ge=0)
    promote_min_format_compliance: float = Field(0.0, ge=0, le=1)

    @model_validator(mode="after")
    def _fill_defaults(self) -> Settings:
        if self.database_url is None:
            self.database_url = f"sqlite:///{(self.home / 'disc.sqlite').resolve()}"
        if self.broker_url is None:
            self.broker_url = f"sqla+sqlite:///{(self.home / 'broker.sqlite').resolve()}"
        if self.artifact_dir is None:
            self.artifact_dir = (self.home / "artifacts").resolve()
        if self.work_dir is None:
            self.work_dir = (self.home / "work").resolve()
        if self.cache_dir is None:
            self.cache_dir = (self.home / "cache").resolve()
        self.database_url = sqlalchemy_url(self.database_url)
        return self

    @field_validator("update_defaults")
    @classmethod
    def _engine_accepts(cls, defaults: dict[str, Any]) -> dict[str, Any]:
        from disc_engine.options import TrainConfig  # torch-free

        TrainConfig.from_dict(defaults)  # a ValueError naming the option
        return defaults

    @property
    def artifact_store_url(self) -> str:
        return self.artifact_url or Path(self.artifact_dir).resolve().as_uri()

    @property
    def is_embedded_broker(self) -> bool:
        return self.broker_url.startswith("sqla+")


@lru_cache
def get_settings() -> Settings:
    return Settings()
