"""Load on the HTTP API: many clients submitting small updates while others poll their jobs.

By default the script starts everything it needs on loopback and removes it at the end: a
fresh database on the local PostgreSQL (``--postgres-admin-url``), a private ``redis-server`` on
a free port, an API key, and ``disc serve``. With ``--url`` (and ``--token``) it targets a
running API instead; ``--database-url`` then lets it count rows.

Phase 1: ``--clients`` concurrent clients each submit ``--batches`` small batches (each with
its own Idempotency-Key), while ``--pollers`` clients read GET /jobs/{id} of accepted jobs.
Every client then re-sends its last request with the same key: the answer must be the same
job. Every job is then cancelled through the API, which ends a queued job at once.

Why cancel instead of running a worker: a worker trains and evaluates a real model for each
job (tens of seconds each even on the tiny test model with two CPU cores), so a thousand jobs
would take hours and measure the trainer, not the API. The API's latency does not depend on
workers (it only writes rows and sends a message), and cancellation drives every job to a
terminal state through the same record a worker writes.

Checks (the script exits 1 if one fails): every batch accepted exactly once (one job, one
batch row and its documents per request, replays return the first job), every job terminal.

Phase 2: ``--large-requests`` sequential POST /updates of ``--large-documents`` documents each;
reports their median latency (target: under 50 ms).

    .venv/bin/python benchmarks/service_load.py                 # 50 clients x 20 batches
    .venv/bin/python benchmarks/service_load.py --clients 5 --batches 4 --large-requests 5
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from disc_cli.processes import free_port

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

TERMINAL = {"succeeded", "failed", "cancelled"}



def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of a non-empty list."""
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(q / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


def document(i: int, j: int, words: int = 40) -> str:
    rng = random.Random(i * 100_003 + j)
    vocabulary = ["river", "bridge", "valley", "copper", "market", "harbour", "council", "winter", "festival",
                  "mill", "orchard", "lantern", "archive", "tower", "ferry", "glacier"]
    sentences = []
    for s in range(max(1, words // 10)):
        picked = " ".join(rng.choice(vocabulary) for _ in range(8))
        sentences.append(f"Record {i}-{j}-{s}: the {picked} of Quell{i} was noted in {1800 + s}.")
    return " ".join(sentences)


# --- the system under test ----------------------------------------------------------------------

@dataclass
class Stack:
    """What the benchmark started and must remove."""

    url: str
    token: str
    database_url: str | None
    log_path: Path | None = None
    cleanups: list = field(default_factory=list)

    def close(self) -> None:
        while self.cleanups:
            try:
                self.cleanups.pop()()
            except Exception as exc:  # clean up the rest regardless
                print(f"cleanup step failed: {exc}", file=sys.stderr)


def start_stack(args) -> Stack:
    import psycopg
    import redis

    from store import migrate, repo
    from store.db import dispose_engines, session_scope
    from store.settings import Settings

    stack = Stack(url="", token="", database_url=None)
    try:
        work = Path(tempfile.mkdtemp(prefix="disc-load-"))
        stack.cleanups.append(lambda: shutil.rmtree(work, ignore_errors=True))

        name = f"disc_load_{uuid.uuid4().hex[:10]}"
        with psycopg.connect(args.postgres_admin_url, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')

        def drop_database() -> None:
            dispose_engines()
            with psycopg.connect(args.postgres_admin_url, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

        stack.cleanups.append(drop_database)
        database_url = args.postgres_admin_url.rsplit("/", 1)[0] + "/" + name
        stack.database_url = database_url

        if args.broker_url:
            broker_url = args.broker_url
        else:
            port = free_port()
            redis_proc = subprocess.Popen(
                ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                 "--dir", str(work)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)

            def stop_redis() -> None:
                redis_proc.kill()
                redis_proc.wait(timeout=30)

            stack.cleanups.append(stop_redis)
            broker_url = f"redis://127.0.0.1:{port}/0"
            deadline = time.monotonic() + 30
            while True:
                try:
                    redis.Redis.from_url(broker_url).ping()
                    break
                except redis.ConnectionError:
                    if time.monotonic() > deadline or redis_proc.poll() is not None:
                        raise RuntimeError("the private redis-server did not start") from None
                    time.sleep(0.1)

        settings = Settings(database_url=database_url, broker_url=broker_url, home=work,
                            artifact_dir=work / "artifacts")
        migrate.upgrade(settings)
        with session_scope(settings) as session:
            _, stack.token = repo.create_api_key(session, name="service-load", scopes=list(repo.SCOPES))

        port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("DISC_")}
        env.update({"DISC_DATABASE_URL": database_url, "DISC_BROKER_URL": broker_url, "DISC_HOME": str(work),
                    "DISC_ARTIFACT_DIR": str(work / "artifacts"), "PYTHONPATH": str(REPO_ROOT)})
        stack.log_path = work / "serve.log"
        log = open(stack.log_path, "wb")
        serve = subprocess.Popen(
            [sys.executable, "-m", "disc_cli.main", "serve", "--port", str(port), "--log-level", "warning",
             "--workers", str(args.serve_workers)],
            env=env, cwd=REPO_ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)

        def stop_serve() -> None:
            if serve.poll() is None:
                os.killpg(serve.pid, signal.SIGTERM)
                try:
                    serve.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    os.killpg(serve.pid, signal.SIGKILL)
                    serve.wait(timeout=15)
            log.close()

        stack.cleanups.append(stop_serve)
        stack.url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{stack.url}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if serve.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"disc serve did not become ready:\n{(work / 'serve.log').read_text()[-2000:]}")
            time.sleep(0.2)
        return stack
    except BaseException:
        stack.close()
        raise


# --- load -----------------------------------------------------------------------------------------

@dataclass
class Results:
    post_ms: list[float] = field(default_factory=list)
    get_ms: list[float] = field(default_factory=list)
    cancel_ms: list[float] = field(default_factory=list)
    large_post_ms: list[float] = field(default_factory=list)
    job_ids: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    replays_matched: int = 0
    phase1_seconds: float = 0.0


def small_body(client: int, batch: int, documents: int) -> dict:
    return {"documents": [{"text": document(client * 1000 + batch, j), "id": f"c{client}-b{batch}-d{j}"}
                          for j in range(documents)],
            "lineage": f"load-{client % 5}"}


async def submitter(http: httpx.AsyncClient, client: int, args, results: Results, accepted: list[str]) -> None:
    last: tuple[str, dict, str] | None = None
    for batch in range(args.batches):
        body = small_body(client, batch, args.documents)
        key = f"load-{client}-{batch}"
        started = time.perf_counter()
        try:
            response = await http.post("/updates", json=body, headers={"Idempotency-Key": key})
        except httpx.TransportError as exc:
            results.errors.append(f"POST /updates {key}: {type(exc).__name__} {exc}")
            continue
        results.post_ms.append((time.perf_counter() - started) * 1000)
        if response.status_code != 202:
            results.errors.append(f"POST /updates {key}: {response.status_code} {response.text[:200]}")
            continue
        job_id = response.json()["id"]
        results.job_ids.append(job_id)
        accepted.append(job_id)
        last = (key, body, job_id)
    if last is not None:
        key, body, job_id = last
        try:
            response = await http.post("/updates", json=body, headers={"Idempotency-Key": key})
        except httpx.TransportError as exc:
            results.errors.append(f"replay of {key}: {type(exc).__name__} {exc}")
            return
        if response.status_code == 200 and response.json()["id"] == job_id:
            results.replays_matched += 1
        else:
            results.errors.append(f"replay of {key}: {response.status_code} {response.text[:200]}")


async def poller(http: httpx.AsyncClient, accepted: list[str], done: asyncio.Event, results: Results,
                 rng: random.Random) -> None:
    while not done.is_set():
        if not accepted:
            await asyncio.sleep(0.01)
            continue
        job_id = rng.choice(accepted)
        started = time.perf_counter()
        try:
            response = await http.get(f"/jobs/{job_id}")
        except httpx.TransportError as exc:
            results.errors.append(f"GET /jobs/{job_id}: {type(exc).__name__} {exc}")
            continue
        results.get_ms.append((time.perf_counter() - started) * 1000)
        if response.status_code != 200:
            results.errors.append(f"GET /jobs/{job_id}: {response.status_code} {response.text[:200]}")


async def cancel_all(http: httpx.AsyncClient, job_ids: list[str], results: Results, concurrency: int) -> None:
    semaphore = asyncio.Semaphore(concurrency)

    async def cancel(job_id: str) -> None:
        async with semaphore:
            started = time.perf_counter()
            try:
                response = await http.post(f"/jobs/{job_id}/cancel")
            except httpx.TransportError as exc:
                results.errors.append(f"cancel {job_id}: {type(exc).__name__} {exc}")
                return
            results.cancel_ms.append((time.perf_counter() - started) * 1000)
            if response.status_code not in (200, 409):   # 409: it had already ended
                results.errors.append(f"cancel {job_id}: {response.status_code} {response.text[:200]}")

    await asyncio.gather(*(cancel(job_id) for job_id in job_ids))


async def run_load(url: str, token: str, args, results: Results) -> None:
    headers = {"Authorization": f"Bearer {token}"}
    # uvicorn closes a keep-alive connection after 5 s idle; dropping ours first avoids sending a
    # request on a connection the server is closing (a ReadError no retry may safely repeat).
    limits = httpx.Limits(max_connections=args.clients + args.pollers + 10, keepalive_expiry=2.0)
    timeout = httpx.Timeout(60.0)
    async with httpx.AsyncClient(base_url=url, headers=headers, limits=limits, timeout=timeout) as http:
        accepted: list[str] = []
        done = asyncio.Event()
        rng = random.Random(0)
        started = time.perf_counter()
        pollers = [asyncio.create_task(poller(http, accepted, done, results, rng)) for _ in range(args.pollers)]
        await asyncio.gather(*(submitter(http, c, args, results, accepted) for c in range(args.clients)))
        results.phase1_seconds = time.perf_counter() - started
        done.set()
        await asyncio.gather(*pollers)

        await cancel_all(http, results.job_ids, results, concurrency=args.clients)

        large = {"documents": [{"text": document(10**6 + j, j, words=args.large_words)}
                               for j in range(args.large_documents)], "lineage": "load-large"}
        for i in range(args.large_requests):
            started = time.perf_counter()
            try:
                response = await http.post("/updates", json=large, headers={"Idempotency-Key": f"large-{i}"})
            except httpx.TransportError as exc:
                results.errors.append(f"large POST {i}: {type(exc).__name__} {exc}")
                continue
            results.large_post_ms.append((time.perf_counter() - started) * 1000)
            if response.status_code != 202:
                results.errors.append(f"large POST {i}: {response.status_code} {response.text[:200]}")
            else:
                results.job_ids.append(response.json()["id"])
        await cancel_all(http, results.job_ids[-args.large_requests:], results, concurrency=4)


# --- verification ---------------------------------------------------------------------------------

def verify_rows(database_url: str, args, results: Results) -> list[str]:
    """Count what the database holds against what was accepted; returns the failed checks."""
    from sqlalchemy import func, select

    from store.db import session_scope
    from store.models import Document, Job, JobStatus, UpdateBatch
    from store.settings import Settings

    settings = Settings(database_url=database_url)
    expected_jobs = args.clients * args.batches + args.large_requests
    expected_documents = args.clients * args.batches * args.documents + args.large_requests * args.large_documents
    problems = []
    with session_scope(settings) as session:
        jobs = session.scalar(select(func.count()).select_from(Job))
        batches = session.scalar(select(func.count()).select_from(UpdateBatch))
        keys = session.scalar(select(func.count(func.distinct(UpdateBatch.idempotency_key))))
        documents = session.scalar(select(func.count()).select_from(Document))
        open_jobs = session.scalar(select(func.count()).select_from(Job).where(
            Job.status.notin_([JobStatus.succeeded, JobStatus.failed, JobStatus.cancelled])))
    for label, found, expected in (("jobs", jobs, expected_jobs), ("update batches", batches, expected_jobs),
                                   ("distinct idempotency keys", keys, expected_jobs),
                                   ("documents", documents, expected_documents)):
        if found != expected:
            problems.append(f"{label}: {found} rows, expected {expected}")
    if open_jobs:
        problems.append(f"{open_jobs} jobs are not in a terminal state")
    print(f"rows: {jobs} jobs, {batches} batches, {documents} documents; {open_jobs} not terminal")
    return problems


async def verify_terminal_over_http(url: str, token: str, job_ids: list[str]) -> list[str]:
    headers = {"Authorization": f"Bearer {token}"}
    semaphore = asyncio.Semaphore(20)
    problems: list[str] = []
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=60) as http:
        async def check(job_id: str) -> None:
            async with semaphore:
                status = (await http.get(f"/jobs/{job_id}")).json().get("status")
                if status not in TERMINAL:
                    problems.append(f"job {job_id} is {status}")

        await asyncio.gather(*(check(j) for j in job_ids))
    return problems


def summary(label: str, values: list[float]) -> str:
    if not values:
        return f"{label:<34} (no samples)"
    return (f"{label:<34} n={len(values):>5}  p50={percentile(values, 50):7.1f} ms  "
            f"p99={percentile(values, 99):7.1f} ms  max={max(values):7.1f} ms")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", help="target this running API instead of starting one (needs --token)")
    parser.add_argument("--token", help="API key for --url (scopes updates:write and jobs:read)")
    parser.add_argument("--database-url", help="with --url: the API's database, to count rows")
    parser.add_argument("--postgres-admin-url", default=os.environ.get(
        "DISC_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres"),
        help="where a throwaway database is created when the script starts the API")
    parser.add_argument("--broker-url", help="Redis to use instead of a private redis-server")
    parser.add_argument("--serve-workers", type=int, default=1, help="uvicorn processes of the started API")
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--batches", type=int, default=20, help="batches per client")
    parser.add_argument("--documents", type=int, default=3, help="documents per small batch")
    parser.add_argument("--pollers", type=int, default=10)
    parser.add_argument("--large-requests", type=int, default=30)
    parser.add_argument("--large-documents", type=int, default=100)
    parser.add_argument("--large-words", type=int, default=60, help="words per document of the large batch")
    parser.add_argument("--max-seconds", type=float, default=600, help="give up (exit 2) after this long")
    args = parser.parse_args(argv)
    if args.url and not args.token:
        parser.error("--url needs --token")

    stack = Stack(args.url, args.token, args.database_url) if args.url else start_stack(args)
    results = Results()
    try:
        try:
            asyncio.run(asyncio.wait_for(run_load(stack.url, stack.token, args, results), args.max_seconds))
        except TimeoutError:
            print(f"gave up after {args.max_seconds:.0f} s", file=sys.stderr)
            return 2
        problems = list(results.errors)
        if results.replays_matched != args.clients:
            problems.append(f"{results.replays_matched} of {args.clients} replays returned the first job")
        if len(set(results.job_ids)) != len(results.job_ids):
            problems.append("two requests with different keys were given the same job")
        if stack.database_url:
            problems += verify_rows(stack.database_url, args, results)
        else:
            problems += asyncio.run(verify_terminal_over_http(stack.url, stack.token, results.job_ids))

        submitted = args.clients * args.batches
        print(f"\n{args.clients} clients x {args.batches} batches of {args.documents} documents, "
              f"{args.pollers} pollers, API at {stack.url}")
        print(summary("POST /updates (small batch)", results.post_ms))
        print(summary("GET /jobs/{id}", results.get_ms))
        print(summary("POST /jobs/{id}/cancel", results.cancel_ms))
        print(summary(f"POST /updates ({args.large_documents} documents)", results.large_post_ms))
        print(f"phase 1: {results.phase1_seconds:.1f} s; {submitted / results.phase1_seconds:.0f} updates/s, "
              f"{len(results.get_ms) / results.phase1_seconds:.0f} job reads/s, "
              f"{(submitted + len(results.get_ms)) / results.phase1_seconds:.0f} requests/s in all")
        if problems:
            print(f"\nFAILED CHECKS ({len(problems)}):\n  " + "\n  ".join(problems[:20]), file=sys.stderr)
            if stack.log_path is not None and stack.log_path.exists():
                print(f"--- end of the API's log\n{stack.log_path.read_text(errors='replace')[-3000:]}",
                      file=sys.stderr)
            return 1
        print(f"checks: all {submitted + args.large_requests} batches accepted exactly once "
              f"({args.clients} replays returned the first job); every job ended (cancelled)")
        return 0
    finally:
        stack.close()


if __name__ == "__main__":
    sys.exit(main())
