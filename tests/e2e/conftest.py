"""End-to-end fixtures: the real `disc` processes (migrate, worker, API) over HTTP.

Every child runs in its own process group and is killed at teardown whatever happened; when a
test fails, the children's logs are printed with its report.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from disc_cli.processes import Child, disc_argv, free_port

SCOPES = "updates:write,jobs:read,models:read,models:promote"
TERMINAL = ("succeeded", "failed", "cancelled")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"report_{report.when}", report)


@pytest.fixture(scope="session")
def shared_eval_cache(tmp_path_factory) -> Path:
    """One evaluation cache for the run: a base model's reference answers are computed once."""
    return tmp_path_factory.mktemp("e2e-eval-cache")


class Stack:
    """A migrated database, a worker and the API, started as `disc` subprocesses."""

    def __init__(self, root: Path, env: dict[str, str]):
        self.root = root
        self.env = env
        self.children: list[Child] = []
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.headers: dict[str, str] = {}

    def disc(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
        result = subprocess.run(disc_argv(*args), env=self.env, capture_output=True, text=True, timeout=timeout)
        assert result.returncode == 0, f"disc {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}"
        return result

    def start(self, *, with_key: bool) -> Stack:
        self.disc("db", "upgrade")
        if with_key:
            token = self.disc("keys", "create", "--name", "e2e", "--scopes", SCOPES).stdout.strip().splitlines()[-1]
            self.headers = {"Authorization": f"Bearer {token}"}
        self.children.append(Child("worker", disc_argv("worker", "--loglevel", "info", "--reconcile-every", "2"),
                                   self.env, self.root / "worker.log"))
        self.children.append(Child("api", disc_argv("serve", "--port", str(self.port), "--log-level", "info"),
                                   self.env, self.root / "api.log"))
        deadline = time.monotonic() + 120
        with self.client() as client:
            while True:
                self.check_alive()
                try:
                    if client.get("/healthz").status_code == 200:
                        return self
                except httpx.TransportError:
                    pass
                assert time.monotonic() < deadline, "the API did not come up within 120 s"
                time.sleep(0.3)

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.base_url, headers=self.headers, timeout=60)

    def check_alive(self) -> None:
        for child in self.children:
            assert child.alive(), f"the {child.name} exited with status {child.proc.returncode}"

    def wait_for_job(self, client: httpx.Client, job_id: str, timeout_s: float = 1200) -> dict:
        deadline = time.monotonic() + timeout_s
        while True:
            response = client.get(f"/jobs/{job_id}")
            assert response.status_code == 200, response.text
            job = response.json()
            if job["status"] in TERMINAL:
                return job
            self.check_alive()
            assert time.monotonic() < deadline, f"job {job_id} still {job['status']} after {timeout_s:.0f} s"
            time.sleep(1.0)

    def stop(self) -> None:
        for child in reversed(self.children):
            child.stop(grace_s=10)

    def logs(self) -> str:
        return "\n".join(f"----- {child.name} log ({child.log_path}) -----\n{child.tail(200)}"
                         for child in self.children)


def base_env(tmp_path: Path, shared_eval_cache: Path, model: str, **overrides: str) -> dict[str, str]:
    """The environment of every child: DISC_* from the test only, never from the caller's shell."""
    artifacts = tmp_path / "artifacts"
    artifacts.mkdir(parents=True, exist_ok=True)
    (artifacts / ".eval-cache").symlink_to(shared_eval_cache, target_is_directory=True)
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("DISC_") or k in ("DISC_MODEL_CACHE", "DISC_UPDATE_DEFAULTS")}
    env.update({"DISC_HOME": str(tmp_path / "home"), "DISC_ARTIFACT_DIR": str(artifacts),
                "DISC_BASE_MODEL": model, "PYTHONUNBUFFERED": "1",
                # The working tree, importable from the children whatever the caller's directory.
                "PYTHONPATH": os.pathsep.join([str(Path(__file__).resolve().parents[2]), env.get("PYTHONPATH", "")])})
    env.update(overrides)
    return env


@pytest.fixture
def stack_factory(request, tmp_path):
    stacks: list[Stack] = []

    def make(env: dict[str, str], *, with_key: bool) -> Stack:
        stack = Stack(tmp_path, env)
        stacks.append(stack)
        return stack.start(with_key=with_key)

    yield make
    for stack in stacks:
        stack.stop()
    failed = any(getattr(getattr(request.node, f"report_{when}", None), "failed", False)
                 for when in ("setup", "call"))
    if failed:
        for stack in stacks:
            sys.stdout.write(stack.logs() + "\n")
