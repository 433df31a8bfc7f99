"""What a request to the API costs next to a bare route, in wall time and in server CPU time.

Starts a throwaway database on the local PostgreSQL, a private redis-server and ``disc serve``
(as ``benchmarks/service_load.py`` does), submits one update to have a job, and starts the
baseline ``benchmarks/bare_route.py`` (one route reading that job's row by primary key, same
driver, same pool, same uvicorn). Then, one client with a kept-alive connection, sequentially:

* ``GET /rows/{id}`` on the bare route, ``GET /healthz``, ``GET /jobs/{id}`` with its API key,
  ``POST /updates`` of 3 and of 100 documents: median and 95th-percentile latency, and the
  server process's CPU time per request (user + system, from /proc: steadier than latency on a
  shared machine). The ratios to the bare route are the figures to read.
* requests per second of ``GET /jobs/{id}`` with 50 concurrent clients against 1, 2 and 4
  uvicorn worker processes (the load generator runs on the same cores: read it as a floor).

    .venv/bin/python benchmarks/api_overhead.py                  # ~2 minutes
    .venv/bin/python benchmarks/api_overhead.py --requests 300 --workers 1
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import statistics
import subprocess
import sys
import time
import types
from pathlib import Path

import httpx
import psutil

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from benchmarks.service_load import document, percentile, start_stack  # noqa: E402
from disc_cli.processes import free_port  # noqa: E402


def _tree_cpu_seconds(pid: int) -> float:
    process = psutil.Process(pid)
    total = 0.0
    for member in [process, *process.children(recursive=True)]:
        try:
            times = member.cpu_times()
            total += times.user + times.system
        except psutil.NoSuchProcess:
            continue
    return total


def _measure(client: httpx.Client, pid: int, count: int, send) -> dict:
    for _ in range(min(20, count)):  # warm the pools and caches
        send(client)
    latencies = []
    cpu_before = _tree_cpu_seconds(pid)
    for _ in range(count):
        started = time.perf_counter()
        response = send(client)
        latencies.append((time.perf_counter() - started) * 1000)
        if response.status_code >= 400:
            raise RuntimeError(f"{response.request.method} {response.request.url}: {response.status_code} "
                               f"{response.text[:300]}")
    cpu_ms = (_tree_cpu_seconds(pid) - cpu_before) * 1000 / count
    return {"p50_ms": statistics.median(latencies), "p95_ms": percentile(latencies, 95), "cpu_ms": cpu_ms}


def _serve_pid(url: str) -> int:
    port = int(url.rsplit(":", 1)[1])
    for connection in psutil.net_connections(kind="tcp"):
        if connection.laddr and connection.laddr.port == port and connection.status == psutil.CONN_LISTEN:
            return connection.pid
    raise RuntimeError(f"no process listens on port {port}")


def _start_uvicorn(args: list[str], env: dict) -> tuple[subprocess.Popen, str]:
    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "uvicorn", *args, "--port", str(port), "--log-level",
                                "warning"], env=env, cwd=REPO_ROOT, start_new_session=True,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            httpx.get(url + "/", timeout=1)
            return process, url
        except httpx.TransportError:
            time.sleep(0.1)
    raise RuntimeError(f"uvicorn {args} did not start")


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)


async def _throughput(url: str, headers: dict, path: str, clients: int, seconds: float) -> float:
    done = 0
    deadline = time.monotonic() + seconds

    async def one(http: httpx.AsyncClient) -> None:
        nonlocal done
        while time.monotonic() < deadline:
            response = await http.get(path)
            response.raise_for_status()
            done += 1

    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=url, headers=headers, limits=limits, timeout=30) as http:
        started = time.monotonic()
        await asyncio.gather(*(one(http) for _ in range(clients)))
        return done / (time.monotonic() - started)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=1000, help="sequential requests per measured route")
    parser.add_argument("--workers", type=int, nargs="*", default=[1, 2, 4], help="uvicorn processes to load")
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=10, help="length of each throughput run")
    parser.add_argument("--postgres-admin-url", default=os.environ.get(
        "DISC_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres"))
    args = parser.parse_args()

    stack = start_stack(types.SimpleNamespace(postgres_admin_url=args.postgres_admin_url, broker_url=None,
                                              serve_workers=1))
    rows: dict[str, dict] = {}
    throughput: dict[int, float] = {}
    try:
        headers = {"Authorization": f"Bearer {stack.token}"}
        small = {"documents": [{"text": document(0, j)} for j in range(3)]}
        large = {"documents": [{"text": document(1, j, words=60)} for j in range(100)]}
        with httpx.Client(base_url=stack.url, headers=headers, timeout=30) as client:
            job_id = client.post("/updates", json=small).json()["id"]
        env = {**os.environ, "DISC_DATABASE_URL": stack.database_url, "PYTHONPATH": str(REPO_ROOT)}
        bare, bare_url = _start_uvicorn(["benchmarks.bare_route:create_app", "--factory"], env)
        try:
            with httpx.Client(base_url=bare_url, timeout=30) as client:
                rows["bare route: GET one row by key"] = _measure(
                    client, bare.pid, args.requests, lambda c: c.get(f"/rows/{job_id}"))
        finally:
            _stop(bare)
        pid = _serve_pid(stack.url)
        with httpx.Client(base_url=stack.url, headers=headers, timeout=30) as client:
            rows["GET /healthz"] = _measure(client, pid, args.requests, lambda c: c.get("/healthz"))
            rows["GET /jobs/{id} (authenticated)"] = _measure(
                client, pid, args.requests, lambda c: c.get(f"/jobs/{job_id}"))
            rows["POST /updates, 3 documents"] = _measure(
                client, pid, max(args.requests // 5, 20), lambda c: c.post("/updates", json=small))
            rows["POST /updates, 100 documents"] = _measure(
                client, pid, max(args.requests // 20, 20), lambda c: c.post("/updates", json=large))
        # Throughput with more uvicorn processes: restarted over the same database.
        for workers in args.workers:
            serve_env = {**env, "DISC_BROKER_URL": "redis://127.0.0.1:1/0", "DISC_HOME": "/tmp"}
            serve, serve_url = _start_uvicorn(["service.app:create_app", "--factory", "--workers", str(workers)],
                                              serve_env)
            try:
                throughput[workers] = asyncio.run(_throughput(serve_url, headers, f"/jobs/{job_id}", args.clients,
                                                              args.seconds))
            finally:
                _stop(serve)
    finally:
        stack.close()

    bare_row = rows["bare route: GET one row by key"]
    print(f"{'route':<36} {'p50 ms':>7} {'p95 ms':>7} {'CPU ms/req':>10} {'wall vs bare':>12} {'CPU vs bare':>11}")
    for name, row in rows.items():
        print(f"{name:<36} {row['p50_ms']:>7.2f} {row['p95_ms']:>7.2f} {row['cpu_ms']:>10.2f} "
              f"{row['p50_ms'] / bare_row['p50_ms']:>11.2f}x {row['cpu_ms'] / bare_row['cpu_ms']:>10.2f}x")
    print(f"\nGET /jobs/{{id}} with {args.clients} concurrent clients, {args.seconds:.0f} s each:")
    for workers, rate in throughput.items():
        print(f"  {workers} uvicorn worker{'s' if workers > 1 else ' '}  {rate:7.0f} requests/s")
    load = os.getloadavg()
    print(f"\nload average at the end: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} ({os.cpu_count()} cores)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
