"""A whole deployment per test: private PostgreSQL and Redis, `disc serve` and `disc worker` processes.

The fault tests stop and restart the database and the broker, so every test here talks to
servers of its own (``servers.py``): the ``postgres_url`` and ``redis_url`` fixtures of the
root conftest are overridden to point at them. Every process started here runs in a process
group of its own and is killed with its group at teardown, whatever the test did.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
import redis

from disc_cli.processes import disc_argv, free_port
from store import migrate, repo
from store.db import dispose_engines, session_scope
from store.settings import Settings

from .servers import PrivatePostgres, PrivateRedis

REPO_ROOT = Path(__file__).resolve().parents[2]
TERMINAL = ("succeeded", "failed", "cancelled")
# Small enough that a lost message is re-sent within a few seconds of a test's wait.
RECONCILE_AFTER_S = 3
RECONCILE_EVERY_S = 1.0


# --- private servers -----------------------------------------------------------------------------

def serving(server):
    """A fixture's body for a private server: started for the fixture's scope, destroyed after it
    whatever the tests did."""
    try:
        server.start()
        yield server
    finally:
        server.destroy()


def wait_for(condition, timeout_s: float, what: str, poll_s: float = 0.05):
    """``condition()``'s first truthy value, polled; AssertionError naming ``what`` on timeout."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(poll_s)
    raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}")


@pytest.fixture(scope="session")
def private_postgres():
    yield from serving(PrivatePostgres())


@pytest.fixture(scope="session")
def private_redis():
    yield from serving(PrivateRedis())


@pytest.fixture
def postgres_url(private_postgres):
    """A fresh database on the private cluster, dropped after the test."""
    name = f"disc_rel_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(private_postgres.admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield private_postgres.admin_url.rsplit("/", 1)[0] + "/" + name
    dispose_engines()
    if not private_postgres.is_running():  # a test that stopped it and failed before restarting
        private_postgres.start()
    with psycopg.connect(private_postgres.admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def redis_url(private_redis):
    if private_redis.proc is None:
        private_redis.start()
    url = f"{private_redis.url}/0"
    redis.Redis.from_url(url).flushdb()
    yield url
    if private_redis.proc is None:
        private_redis.start()
    redis.Redis.from_url(url).flushdb()


# --- processes -----------------------------------------------------------------------------------

class Process:
    """A `disc` subprocess in its own process group, its output in a log file."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], log_path: Path):
        self.name = name
        self.log_path = log_path
        self._log = open(log_path, "ab")
        self.popen = subprocess.Popen(argv, env=env, cwd=REPO_ROOT, stdout=self._log, stderr=subprocess.STDOUT,
                                      start_new_session=True)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def alive(self) -> bool:
        return self.popen.poll() is None

    def wait_for_log(self, text: str, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if text in self.log():
                return
            if not self.alive():
                raise RuntimeError(f"{self.name} exited ({self.popen.returncode}) before logging {text!r}:\n"
                                   f"{self.log()[-3000:]}")
            time.sleep(0.1)
        raise TimeoutError(f"{self.name} did not log {text!r} within {timeout_s:.0f} s:\n{self.log()[-3000:]}")

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Signal the whole process group (Celery and uvicorn start children of their own)."""
        if self.popen.poll() is None:
            try:
                os.killpg(self.popen.pid, sig)
            except ProcessLookupError:
                pass
        try:
            self.popen.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.popen.pid, signal.SIGKILL)
            self.popen.wait(timeout=30)
        self._log.close()


class Deployment:
    """One test's service: settings, the environment its processes share, and helpers over HTTP."""

    def __init__(self, settings: Settings, env: dict[str, str], logs: Path, private_postgres: PrivatePostgres,
                 private_redis: PrivateRedis):
        self.settings = settings
        self.env = env
        self.logs = logs
        self.postgres = private_postgres
        self.redis = private_redis
        self.processes: list[Process] = []
        self.url: str | None = None
        self.headers: dict[str, str] = {}

    # processes

    def _start(self, name: str, args: list[str], extra_env: dict[str, str] | None = None,
               wrap: Callable[[list[str]], list[str]] | None = None) -> Process:
        env = {**self.env, **(extra_env or {})}
        argv = disc_argv(*args)
        process = Process(name, wrap(argv) if wrap else argv, env,
                          self.logs / f"{name}-{len(self.processes)}.log")
        self.processes.append(process)
        return process

    def serve(self, env: dict[str, str] | None = None) -> Process:
        port = free_port()
        process = self._start("serve", ["serve", "--port", str(port), "--log-level", "warning"], env)
        self.url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.url}/healthz", timeout=2).status_code == 200:
                    return process
            except httpx.TransportError:
                pass
            if not process.alive():
                raise RuntimeError(f"disc serve exited:\n{process.log()[-3000:]}")
            time.sleep(0.1)
        raise TimeoutError(f"disc serve did not answer within 60 s:\n{process.log()[-3000:]}")

    def worker(self, *extra: str, env: dict[str, str] | None = None, wait: bool = True,
               wrap: Callable[[list[str]], list[str]] | None = None) -> Process:
        """A ``disc worker``; ``wrap`` turns its command line into one run elsewhere (another host)."""
        process = self._start("worker", ["worker", "--loglevel", "info",
                                         "--reconcile-every", str(RECONCILE_EVERY_S), *extra], env, wrap)
        if wait:
            process.wait_for_log(" ready.", timeout_s=120)
        return process

    def stop_all(self) -> None:
        for process in self.processes:
            process.kill()

    # HTTP

    def client(self) -> httpx.Client:
        assert self.url, "start the API first (deployment.serve())"
        return httpx.Client(base_url=self.url, headers=self.headers, timeout=30)

    def submit(self, documents: list[str], *, lineage: str = "default", idempotency_key: str | None = None,
               **body: Any) -> dict:
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
        payload = {"documents": [{"text": text} for text in documents], "lineage": lineage, **body}
        with self.client() as client:
            response = client.post("/updates", json=payload, headers=headers)
        assert response.status_code in (200, 202), response.text
        return response.json()

    def job(self, job_id: str) -> dict:
        with self.client() as client:
            response = client.get(f"/jobs/{job_id}")
        assert response.status_code == 200, response.text
        return response.json()

    def events(self, job_id: str) -> list[dict]:
        with self.client() as client:
            response = client.get(f"/jobs/{job_id}/events")
        assert response.status_code == 200, response.text
        return response.json()["data"]

    def wait_job(self, job_id: str, predicate: Callable[[dict], bool], timeout_s: float,
                 what: str = "the expected state") -> dict:
        deadline = time.monotonic() + timeout_s
        job: dict = {}
        while time.monotonic() < deadline:
            try:
                job = self.job(job_id)
            except httpx.TransportError:  # the API's database may be restarting
                time.sleep(0.2)
                continue
            if predicate(job):
                return job
            if job["status"] in TERMINAL:
                break
            time.sleep(0.2)
        raise AssertionError(f"job {job_id} did not reach {what} within {timeout_s:.0f} s; last seen: {job}\n"
                             f"events: {self._safe_events(job_id)}\n{self.worker_logs()}")

    def wait_terminal(self, job_id: str, timeout_s: float = 120) -> dict:
        return self.wait_job(job_id, lambda j: j["status"] in TERMINAL, timeout_s, "a terminal status")

    def _safe_events(self, job_id: str) -> list:
        try:
            return [(e["kind"], e["message"]) for e in self.events(job_id)]
        except Exception as exc:  # the report of a failure must not fail itself
            return [f"events unavailable: {exc}"]

    def worker_logs(self, chars: int = 4000) -> str:
        return "\n".join(f"--- {p.log_path.name}\n{p.log()[-chars:]}" for p in self.processes if p.name == "worker")

    # the record, read directly

    def session(self):
        return session_scope(self.settings)

    def backdate_heartbeat(self, job_id: str, seconds: float) -> None:
        """Make a running job look abandoned, as it will once its dead worker's heartbeat is old."""
        from store.models import Job

        with self.session() as session:
            job = session.get(Job, job_id)
            past = datetime.now(UTC) - timedelta(seconds=seconds)
            job.heartbeat_at = past
            job.enqueued_at = past


@pytest.fixture(scope="session")
def shared_eval_cache(tmp_path_factory) -> Path:
    """The tiny base model's reference answers, computed by the first job and reused by the rest
    (cache entries are keyed by model checksums, so sharing cannot mix models)."""
    return tmp_path_factory.mktemp("eval-cache")


@pytest.fixture
def deployment(postgres_url, redis_url, tiny_model, tmp_path, private_postgres, private_redis, shared_eval_cache):
    """Settings and environment for a service over the private servers; an API key with every scope.

    Processes are started by the test (``deployment.serve()``, ``deployment.worker()``), so each
    test decides what runs when; all of them are killed at teardown.
    """
    home = tmp_path / "home"
    settings = Settings(database_url=postgres_url, broker_url=redis_url, home=home,
                        artifact_dir=home / "artifacts", base_model=tiny_model,
                        reconcile_after_s=RECONCILE_AFTER_S)
    migrate.upgrade(settings)
    settings.artifact_dir.mkdir(parents=True)
    (settings.artifact_dir / ".eval-cache").symlink_to(shared_eval_cache, target_is_directory=True)
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("DISC_") or k in ("DISC_MODEL_CACHE", "DISC_UPDATE_DEFAULTS")}
    env.update({
        "DISC_DATABASE_URL": postgres_url,
        "DISC_BROKER_URL": redis_url,
        "DISC_HOME": str(home),
        "DISC_ARTIFACT_DIR": str(home / "artifacts"),
        "DISC_BASE_MODEL": tiny_model,
        "DISC_RECONCILE_AFTER_S": str(RECONCILE_AFTER_S),
        "PYTHONPATH": str(REPO_ROOT),
        # Two cores are shared by everything on a test machine: one thread per worker keeps
        # the processes of one test from starving each other.
        "OMP_NUM_THREADS": "1",
        "TOKENIZERS_PARALLELISM": "false",
    })
    logs = tmp_path / "logs"
    logs.mkdir()
    deployment = Deployment(settings, env, logs, private_postgres, private_redis)
    with session_scope(settings) as session:
        _, token = repo.create_api_key(session, name="reliability", scopes=list(repo.SCOPES))
    deployment.headers = {"Authorization": f"Bearer {token}"}
    try:
        yield deployment
    finally:
        deployment.stop_all()
        dispose_engines()


def documents(count: int, topic: str = "Zorblat") -> list[str]:
    """Distinct small documents of several sentences (DiSC splits at sentence boundaries)."""
    return [f"{topic} fact {i}: the river Quell{i} flows north through the valley of Marn{i}. "
            f"Its water is green because of copper in the hills. Fishermen of Marn{i} sell eels at dawn. "
            f"The bridge over it was built in {1800 + i}."
            for i in range(count)]
