"""The real `disc serve` process under an attacker's load: memory before authentication, and a
SIGTERM while clients dribble their bodies."""

from __future__ import annotations

import signal
import socket
import time

import psutil

from benchmarks.api_memory import measure, tiny_objects_body
from store import repo


def test_large_bodies_cost_no_memory_until_the_caller_is_allowed(deployment):
    deployment.serve()
    server = deployment.processes[-1]
    body = tiny_objects_body(8.8)           # a million tiny objects: ~140 MB each once parsed
    with deployment.session() as session:
        _, reader = repo.create_api_key(session, name="reader", scopes=["jobs:read"])
    anonymous = measure(deployment.url, server.popen.pid, "no key", body, {}, concurrency=8)
    unscoped = measure(deployment.url, server.popen.pid, "no scope", body, {"Authorization": f"Bearer {reader}"},
                       concurrency=8)
    writer = measure(deployment.url, server.popen.pid, "writer", body, deployment.headers, concurrency=8)
    # Refused callers are answered from their headers (a client that saw the connection close
    # before its upload ended reports 0); the writer's bodies are read and refused by shape.
    assert set(anonymous.statuses) <= {401, 0} and 401 in anonymous.statuses, anonymous.line()
    assert set(unscoped.statuses) <= {403, 0} and 403 in unscoped.statuses, unscoped.line()
    assert writer.statuses == [413] * 8, writer.line()
    assert anonymous.growth_mib < 25 and unscoped.growth_mib < 25, (anonymous.line(), unscoped.line())
    # Eight bodies held at once, as bytes, and nothing parsed: well under what parsing one costs.
    assert writer.growth_mib < 8 * 8.8 * 1.6 + 25, writer.line()


def test_sigterm_ends_the_api_within_its_deadline_despite_slow_clients(deployment):
    deployment.env["DISC_SHUTDOWN_TIMEOUT_S"] = "2"
    process = deployment.serve()
    host, port = deployment.url.removeprefix("http://").split(":")
    token = deployment.headers["Authorization"]
    slow = []
    for _ in range(20):  # each announces a body and sends one byte of it
        sock = socket.create_connection((host, int(port)), timeout=5)
        sock.sendall(f"POST /updates HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     f"Authorization: {token}\r\nContent-Length: 100000\r\n\r\n{{".encode())
        slow.append(sock)
    time.sleep(0.5)
    started = time.monotonic()
    process.popen.send_signal(signal.SIGTERM)
    process.popen.wait(timeout=30)
    elapsed = time.monotonic() - started
    for sock in slow:
        sock.close()
    assert elapsed < 10, f"the API took {elapsed:.1f} s to stop"
    assert not psutil.pid_exists(process.popen.pid) or psutil.Process(process.popen.pid).status() == "zombie"
