"""A real S3 HTTP server for tests and benchmarks: moto's standalone server in a process of its own.

moto keeps objects in memory; this launcher saves them to a state file when it is stopped with
SIGTERM and loads them when it starts, so a test can stop the store (an outage: connections are
refused) and start it again with its objects, as a real store's restart would keep them.

    python -m tests.s3server PORT STATE_FILE
"""

from __future__ import annotations

import os
import pickle
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from disc_cli.processes import free_port

REGION = "us-east-1"
ACCESS_KEY = "disc-test"
SECRET_KEY = "disc-test-secret"



class S3TestServer:
    """Start, stop and restart one moto S3 server on a free loopback port."""

    def __init__(self, root: str | os.PathLike | None = None, address: str = "127.0.0.1"):
        self.address = address  # a veth address serves other test hosts (network namespaces) too
        self.root = Path(root or tempfile.mkdtemp(prefix="disc-s3-"))
        self.root.mkdir(parents=True, exist_ok=True)
        self.state = self.root / "state.pickle"
        self.log = self.root / "server.log"
        self.port = free_port()
        self.proc: subprocess.Popen | None = None

    @property
    def endpoint(self) -> str:
        return f"http://{self.address}:{self.port}"

    def environment(self) -> dict[str, str]:
        """The standard AWS variables that point a client at this server."""
        return {"AWS_ENDPOINT_URL": self.endpoint, "AWS_ACCESS_KEY_ID": ACCESS_KEY,
                "AWS_SECRET_ACCESS_KEY": SECRET_KEY, "AWS_DEFAULT_REGION": REGION}

    def start(self) -> None:
        repo_root = Path(__file__).resolve().parents[1]
        env = {**os.environ, "PYTHONPATH": f"{repo_root}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen([sys.executable, "-m", "tests.s3server", str(self.port), str(self.state),
                                          self.address],
                                         stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the S3 test server exited: {self.log.read_text()[-2000:]}")
            try:
                with socket.create_connection((self.address, self.port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.1)
        raise TimeoutError("the S3 test server did not start")

    def stop(self) -> None:
        """Stop the server, keeping its objects for the next start."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def destroy(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.proc = None
        self.state.unlink(missing_ok=True)

    def client(self):
        import boto3

        return boto3.client("s3", endpoint_url=self.endpoint, aws_access_key_id=ACCESS_KEY,
                            aws_secret_access_key=SECRET_KEY, region_name=REGION)


def _serve(port: int, state: Path, address: str) -> None:
    from moto.s3.models import s3_backends
    from moto.server import ThreadedMotoServer

    backend = s3_backends["123456789012"]["aws"]
    if state.exists():
        backend.buckets.update(pickle.loads(state.read_bytes()))
    server = ThreadedMotoServer(ip_address=address, port=port, verbose=False)
    server.start()
    stopped = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopped.set())
    stopped.wait()
    server.stop()
    staging = state.with_suffix(".tmp")
    staging.write_bytes(pickle.dumps(backend.buckets))
    os.replace(staging, state)


if __name__ == "__main__":
    _serve(int(sys.argv[1]), Path(sys.argv[2]), sys.argv[3] if len(sys.argv) > 3 else "127.0.0.1")
