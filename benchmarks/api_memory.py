"""Peak memory of the API process while it is sent large bodies, with and without a key.

Starts ``disc serve`` (the settings come from the environment: ``DISC_DATABASE_URL`` and so
on; by default a fresh embedded home in a temporary folder), then sends N concurrent
``POST /updates`` whose body is a JSON array of small objects (the shape that costs most
memory per byte once parsed) and samples the server's resident set size every 20 ms:

* no key: answered 401 by the auth gate before the body is read;
* a key without ``updates:write``: 403, also before the body is read;
* a writer's key: the body is read (under the size limit) and refused by the value-count
  check on the raw bytes (413) before any Python object is built from it.

    python -m benchmarks.api_memory --concurrency 8 --megabytes 8.8

Prints one line per case: answers, RSS before, peak, and the growth.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx
import psutil

from disc_cli.processes import disc_argv

REPO_ROOT = Path(__file__).resolve().parents[1]


def tiny_objects_body(megabytes: float) -> bytes:
    item = b'{"a":1},'
    count = int(megabytes * 1_000_000) // len(item)
    return b'{"documents":[' + item * (count - 1) + b'{"a":1}]}'


@dataclass
class Case:
    name: str
    statuses: list[int]
    rss_before_mib: float
    rss_peak_mib: float

    @property
    def growth_mib(self) -> float:
        return self.rss_peak_mib - self.rss_before_mib

    def line(self) -> str:
        answers = ", ".join(f"{s}×{self.statuses.count(s)}" for s in sorted(set(self.statuses)))
        return (f"{self.name:<22} answers {answers:<10} RSS before {self.rss_before_mib:7.1f} MiB  "
                f"peak {self.rss_peak_mib:7.1f} MiB  growth {self.growth_mib:7.1f} MiB")


def tree_rss(process: psutil.Process) -> int:
    total = 0
    for p in [process, *process.children(recursive=True)]:
        try:
            total += p.memory_info().rss
        except psutil.NoSuchProcess:
            pass
    return total


def measure(url: str, pid: int, name: str, body: bytes, headers: dict[str, str], concurrency: int) -> Case:
    """Send ``concurrency`` copies of ``body`` at once; the server's peak RSS while they are handled."""
    process = psutil.Process(pid)
    before = tree_rss(process)
    peak, stop = before, threading.Event()

    def sample() -> None:
        nonlocal peak
        while not stop.is_set():
            peak = max(peak, tree_rss(process))
            time.sleep(0.02)

    def post(_: int) -> int:
        try:
            with httpx.Client(timeout=120) as client:
                return client.post(f"{url}/updates", content=body,
                                   headers={"Content-Type": "application/json", **headers}).status_code
        except httpx.TransportError:
            # The server may answer and close before the whole body was sent: a refusal that
            # the client saw as a broken pipe. It is counted as 0.
            return 0

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    with ThreadPoolExecutor(concurrency) as pool:
        statuses = list(pool.map(post, range(concurrency)))
    time.sleep(0.3)
    stop.set()
    sampler.join()
    return Case(name, statuses, before / 2**20, peak / 2**20)


def start_server(env: dict[str, str], port: int) -> subprocess.Popen:
    argv = disc_argv("serve", "--port", str(port), "--log-level", "warning")
    # A file, not a pipe: a pipe nobody reads would stall a server that logs much.
    log = tempfile.TemporaryFile()
    server = subprocess.Popen(argv, env=env, cwd=REPO_ROOT, stdout=subprocess.DEVNULL, stderr=log)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200:
                return server
        except httpx.TransportError:
            time.sleep(0.1)
        if server.poll() is not None:
            log.seek(0)
            raise RuntimeError(f"disc serve exited: {log.read().decode(errors='replace')[-2000:]}")
    raise TimeoutError("disc serve did not answer within 60 s")


def create_key(env: dict[str, str], scopes: str) -> str:
    result = subprocess.run(disc_argv("keys", "create", "--name", "memory", "--scopes", scopes), env=env,
                            cwd=REPO_ROOT, capture_output=True, text=True, check=True)
    return result.stdout.strip()


def run(env: dict[str, str], *, concurrency: int, megabytes: float, port: int) -> list[Case]:
    body = tiny_objects_body(megabytes)
    reader = {"Authorization": f"Bearer {create_key(env, 'jobs:read')}"}
    writer = {"Authorization": f"Bearer {create_key(env, 'updates:write')}"}
    server = start_server(env, port)
    try:
        url = f"http://127.0.0.1:{port}"
        return [measure(url, server.pid, "no key", body, {}, concurrency),
                measure(url, server.pid, "key without the scope", body, reader, concurrency),
                measure(url, server.pid, "writer's key", body, writer, concurrency)]
    finally:
        server.terminate()
        server.wait(timeout=30)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--megabytes", type=float, default=8.8, help="size of each body (below the 10 MB limit)")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--json", action="store_true", help="print the cases as JSON")
    args = parser.parse_args(argv)
    env = dict(os.environ)
    with tempfile.TemporaryDirectory() as home:
        if "DISC_DATABASE_URL" not in env:
            env["DISC_HOME"] = home
            subprocess.run(disc_argv("db", "upgrade"), env=env, cwd=REPO_ROOT,
                           check=True, capture_output=True)
        cases = run(env, concurrency=args.concurrency, megabytes=args.megabytes, port=args.port)
    print(f"{args.concurrency} concurrent bodies of {args.megabytes} MB (JSON arrays of tiny objects)")
    for case in cases:
        print(json.dumps(case.__dict__ | {"growth_mib": case.growth_mib}) if args.json else case.line())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
